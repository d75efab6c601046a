"""skdnn._compat: each private torch operation has a public fallback.

Every fit below runs twice, with torch's private symbol and with it removed
(set to None, as ``_compat`` leaves it where a torch release lacks it), and
the two fits agree within rounding.
"""

import numpy as np
import pytest
import sklearn.base
import torch
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.datasets import make_classification

import skdnn._compat
from skdnn import DNNClassifier, DNNRegressor
from skdnn._network import MLPModule

PRIVATE = [
    "_THRESHOLD_BACKWARD",
    "_SIGMOID_BACKWARD",
    "_TANH_BACKWARD",
    "_LOG_SOFTMAX_OUT",
    "_FUSED_ADAM",
]

# Fits that run through every private operation: the engine's Adam (fused
# kernel or tensor operations) and SGD, L-BFGS's objective, each hidden
# activation's backward, softmax and logistic outputs, dropout.
FITS = [
    dict(activation="relu", dropout=0.2),
    dict(activation="logistic"),
    dict(activation="tanh", solver="sgd"),
    dict(activation="relu", solver="sgd", dropout=0.3),
    dict(activation="tanh", solver="lbfgs"),
]


def _fit(n_classes, **params):
    X, y = make_classification(
        n_samples=120, n_features=6, n_informative=4, n_classes=n_classes,
        random_state=0,
    )  # fmt: skip
    clf = DNNClassifier((7, 5), max_iter=15, batch_size=20, random_state=0, **params)
    return clf.fit(X, y), X


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", PRIVATE)
@pytest.mark.parametrize("params", FITS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_fits_without_a_private_symbol_equal_those_with_it(
    name, params, n_classes, monkeypatch
):
    assert getattr(skdnn._compat, name) is not None, "this torch has it"
    with_it, X = _fit(n_classes, **params)
    monkeypatch.setattr(skdnn._compat, name, None)
    without, _ = _fit(n_classes, **params)
    for a, b in zip(with_it.coefs_, without.coefs_, strict=True):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    assert_allclose(with_it.loss_curve_, without.loss_curve_, rtol=1e-9)
    assert_allclose(with_it.predict_proba(X), without.predict_proba(X), rtol=1e-9)


@pytest.mark.parametrize(
    "fallback, private",
    [
        (
            lambda g, out, gi: skdnn._compat.threshold_backward(
                g, out, 0, grad_input=gi
            ),
            lambda g, out: torch.ops.aten.threshold_backward(g, out, 0),
        ),
        (
            lambda g, out, gi: skdnn._compat.sigmoid_backward(g, out, grad_input=gi),
            torch.ops.aten.sigmoid_backward,
        ),
        (
            lambda g, out, gi: skdnn._compat.tanh_backward(g, out, grad_input=gi),
            torch.ops.aten.tanh_backward,
        ),
    ],
)
@pytest.mark.parametrize("in_place", [False, True])
def test_gradient_fallbacks_equal_torchs_kernels(
    fallback, private, in_place, monkeypatch
):
    for name in PRIVATE:
        monkeypatch.setattr(skdnn._compat, name, None)
    generator = torch.Generator().manual_seed(0)
    grad = torch.randn(50, 7, generator=generator, dtype=torch.float64)
    out = torch.rand(50, 7, generator=generator, dtype=torch.float64) - 0.3
    expected = private(grad, out)
    target = grad.clone() if in_place else torch.empty_like(grad)
    result = fallback(target if in_place else grad, out, target)
    assert result.data_ptr() == target.data_ptr()
    assert_allclose(result, expected, rtol=1e-15, atol=1e-17)


def test_log_softmax_fallback_writes_into_out(monkeypatch):
    monkeypatch.setattr(skdnn._compat, "_LOG_SOFTMAX_OUT", None)
    logits = torch.randn(4, 3, 9, dtype=torch.float64)
    out = torch.empty_like(logits)
    result = skdnn._compat.log_softmax_into(logits, 1, out=out)
    assert result.data_ptr() == out.data_ptr()
    assert torch.equal(out, torch.log_softmax(logits, 1))


def test_a_missing_private_operation_is_none_not_an_import_error():
    assert skdnn._compat._aten("no_such_operation_anywhere", "out") is None
    assert skdnn._compat._aten("threshold_backward", "no_such_overload") is None
    assert skdnn._compat._aten("threshold_backward", "grad_input") is not None


def test_parameter_lists_without_their_private_dict_give_the_same_layers():
    module = MLPModule(
        [np.ones((2, 3)), np.ones((3, 1))], [np.zeros(3), np.zeros(1)],
        activation="relu", dropout=(0.0,),
    )  # fmt: skip
    weights, biases = module.layers()

    class Plain(list):
        """A list of Parameters, without ParameterList's _parameters."""

    assert skdnn._compat.parameter_values(Plain(module.weights)) == weights
    assert skdnn._compat.parameter_values(module.biases) == biases
    assert all(isinstance(p, torch.nn.Parameter) for p in weights + biases)


@pytest.mark.parametrize("estimator", [DNNClassifier, DNNRegressor])
def test_parameter_names_without_scikit_learns_private_reader_are_the_same(
    estimator, monkeypatch
):
    names = sklearn.base.BaseEstimator._get_param_names.__func__(estimator)
    assert estimator._get_param_names() == names
    assert sorted(estimator().get_params()) == names
    # Computed once per class: a fresh cache, with the private reader gone.
    skdnn._compat._param_names.cache_clear()
    monkeypatch.delattr(sklearn.base.BaseEstimator, "_get_param_names")
    try:
        assert skdnn._compat.param_names(estimator) == names
        model = clone(estimator(dropout=0.3))
        assert model.get_params()["dropout"] == 0.3
    finally:
        skdnn._compat._param_names.cache_clear()
