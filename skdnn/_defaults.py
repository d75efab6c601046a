"""skdnn's default network, and the 'auto' values that select it.

``DNNClassifier()`` trains a network measured more accurate than
MLPClassifier's on ``benchmarks/quality.py``'s 15 data sets, while
``DNNClassifier(**MLPClassifier().get_params())`` still trains
MLPClassifier's network. scikit-learn cannot tell a parameter left at its
default from one passed with the same value, so the two are told apart by
``hidden_layer_sizes``: with its default, ``'auto'``, and the default solver,
'adam', the parameters left at ``'auto'`` take the values tuned with that
network (:data:`TUNED`); with an architecture of the user's, MLPClassifier's
(:data:`MLP`), so that choosing a network keeps MLPClassifier's meaning of
everything else. The tuned values were measured with Adam alone: 'sgd' and
'lbfgs' take MLPClassifier's network and values for 'auto' (under SGD the
input scale would learn ``input_scaling**2`` times as fast, and L-BFGS on
three layers of 128 costs many times MLPClassifier's one of 100).
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

# Measured with benchmarks/quality.py (stratified 5-fold, 15 sets, one
# thread): mean test accuracy 0.909 against MLPClassifier's 0.840,
# HistGradientBoosting's 0.900 and RealMLP-TD's 0.909; see docs/accuracy.rst.
TUNED = {
    "hidden_layer_sizes": (128, 128, 128),
    "dropout": 0.15,
    "input_scaling": 24.0,
    "alpha": 1e-3,
    "batch_size": 64,
}

# MLPClassifier's, for a network of the user's ('auto' batch_size: min(200,
# n_samples), as MLPClassifier's 'auto').
MLP = {
    "hidden_layer_sizes": (100,),
    "dropout": 0.0,
    "input_scaling": 0.0,
    "alpha": 1e-4,
    "batch_size": "auto",
}


def tuned(estimator):
    """Whether ``estimator`` trains skdnn's tuned network."""
    return isinstance(estimator.hidden_layer_sizes, str) and estimator.solver == "adam"


def resolved(estimator, name):
    """The value ``estimator`` trains with for parameter ``name``: its own,
    or, where it is ``'auto'``, the tuned one or MLPClassifier's (see the
    module's docstring)."""
    value = getattr(estimator, name)
    if not (isinstance(value, str) and value == "auto"):
        return value
    return (TUNED if tuned(estimator) else MLP)[name]
