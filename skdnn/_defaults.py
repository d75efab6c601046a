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

DNNRegressor has its own tuned values (:data:`TUNED_REGRESSION`, its
``_tuned_defaults``), with two more 'auto' parameters, ``early_stopping``
and ``target_scaling``, whose MLPRegressor values are False.
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

# DNNRegressor's, measured the same way on benchmarks/quality.py's 9
# regression sets (5-fold, target standardized; docs/accuracy.rst): the same
# network and values, but early stopping and batches of 128. Without early
# stopping the network overfits the smaller sets (diabetes: R^2 0.283 against
# MLPRegressor's 0.456, mean of 7 sets 0.835); with it, 0.435 and 0.859, and
# batches of 128 lift diabetes to 0.482 (mean 0.867; 200: 0.440). Patience
# 20 gained 0.001 at 1.6 times the time, dropout 0.3 lost friedman1 0.01.
# The target is scaled inside the fit (it changes nothing on these sets,
# whose target comes standardized, but keeps early stopping from giving up on
# a target far from 0: training R^2 -0.11 without, 0.80 with, on
# scikit-learn's check data of mean 4.4).
TUNED_REGRESSION = {
    **TUNED,
    "batch_size": 128,
    "early_stopping": True,
    "target_scaling": True,
}

# MLPClassifier's and MLPRegressor's, for a network of the user's ('auto'
# batch_size: min(200, n_samples), as theirs).
MLP = {
    "hidden_layer_sizes": (100,),
    "dropout": 0.0,
    "input_scaling": 0.0,
    "alpha": 1e-4,
    "batch_size": "auto",
    "early_stopping": False,
    "target_scaling": False,
}


def tuned(estimator):
    """Whether ``estimator`` trains skdnn's tuned network."""
    return isinstance(estimator.hidden_layer_sizes, str) and estimator.solver == "adam"


def resolved(estimator, name):
    """The value ``estimator`` trains with for parameter ``name``: its own,
    or, where it is ``'auto'``, its kind's tuned one (``_tuned_defaults``,
    :data:`TUNED` for a classifier) or MLPClassifier's (see the module's
    docstring)."""
    value = getattr(estimator, name)
    if not (isinstance(value, str) and value == "auto"):
        return value
    if tuned(estimator):
        return getattr(estimator, "_tuned_defaults", TUNED)[name]
    return MLP[name]
