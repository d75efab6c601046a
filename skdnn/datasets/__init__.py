"""Toy 2-D data sets of the TensorFlow Playground.

:func:`make_xor`, :func:`make_spiral` and :func:`make_circle` generate the
Playground's "exclusive or", "spiral" and "circle" classification data sets,
:func:`make_plane` and :func:`make_multi_gaussian` its "plane" and "multi
Gaussian" regression data sets. Its
"Gaussian" data set is :func:`sklearn.datasets.make_blobs` with
``centers=[(-2, -2), (2, 2)]`` (see ``skdnn.datasets._playground``).
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from ._playground import (
    make_circle,
    make_multi_gaussian,
    make_plane,
    make_spiral,
    make_xor,
)

__all__ = [
    "make_circle",
    "make_multi_gaussian",
    "make_plane",
    "make_spiral",
    "make_xor",
]
