"""The Playground: the TensorFlow Playground, live, on skdnn's estimators.

``skdnn-playground`` (or ``python -m skdnn.playground``) starts a local web
server and opens its page: pick a toy data set or upload a CSV file, choose
the input features, the hidden layers, their dropout, the optimizer and its
rate, press play, and watch every neuron learn. Each picture is drawn from a
real :class:`~skdnn.DNNClassifier` or :class:`~skdnn.DNNRegressor` trained
with ``partial_fit``, and "Copy as Python" gives the scikit-learn code that
trains the same network. It needs the ``playground`` extra: ``pip install
"skdnn[playground]"``.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from ._app import create_app
from ._cli import main

__all__ = ["create_app", "main"]
