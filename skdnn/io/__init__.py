"""Saving fitted models safely: safetensors and JSON instead of pickle.

:func:`dump` writes a fitted :class:`~skdnn.DNNClassifier` or
:class:`~skdnn.DNNRegressor` to one
`safetensors <https://huggingface.co/docs/safetensors>`_ file: the weights
and biases as tensors, the estimator's kind, its parameters, a classifier's
classes and the fitted attributes as JSON in the header's metadata.
:func:`load` reads it back without running any code from the file, and
checks every value and every declared size before using it, which makes it
safe for files from untrusted sources, unlike pickle and joblib.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from ._safe import dump, load

__all__ = ["dump", "load"]
