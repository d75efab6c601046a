"""Toy 2-D classification data sets of the TensorFlow Playground.

:func:`make_xor`, :func:`make_spiral` and :func:`make_circle` generate the
Playground's "exclusive or", "spiral" and "circle" data sets. Its
"Gaussian" data set is :func:`sklearn.datasets.make_blobs` with
``centers=[(-2, -2), (2, 2)]`` (see ``skdnn.datasets._playground``).
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from ._playground import make_circle, make_spiral, make_xor

__all__ = ["make_circle", "make_spiral", "make_xor"]
