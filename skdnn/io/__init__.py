"""Saving fitted models safely: safetensors and JSON instead of pickle.

:func:`dump` writes a fitted :class:`~skdnn.DNNClassifier` to one
`safetensors <https://huggingface.co/docs/safetensors>`_ file: the weights
and biases as tensors, the parameters, classes and fitted attributes as JSON
in the header's metadata. :func:`load` reads it back without running any
code from the file, which makes it safe for files from untrusted sources,
unlike pickle and joblib.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from ._safe import dump, load

__all__ = ["dump", "load"]
