"""The learnable input scale (``input_scaling``): training, prediction, state."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning

from skdnn import DNNClassifier, io
from skdnn._engine.losses import loss_for_output
from skdnn._training import batch_loss


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _data():
    # Few informative features among many: what the scale is for.
    return make_classification(300, 12, n_informative=3, n_redundant=0, random_state=0)


def _clf(**params):
    return DNNClassifier((16, 8), max_iter=15, random_state=0, device="cpu", **params)


def test_default_trains_no_scale():
    X, y = _data()
    clf = _clf().fit(X, y)
    assert clf.module_.scale() is None
    assert "input_scale.0" not in clf.module_.state_dict()
    # The same network as before the parameter existed: coefs_ are the
    # module's weights themselves.
    assert np.shares_memory(clf.coefs_[0], clf.module_.weights[0].detach().numpy())


def test_scale_trains_and_prediction_folds_it_into_coefs():
    X, y = _data()
    clf = _clf(input_scaling=12.0).fit(X, y)
    scale = clf.module_.scale().numpy()
    assert scale.shape == (X.shape[1],)
    # It moved from 1, unequally across features.
    assert np.abs(scale - 1).max() > 0.05 and scale.std() > 0.01
    raw = clf.module_.weights[0].detach().numpy()
    assert_allclose(clf.coefs_[0], scale[:, None] * raw)
    # predict_proba through coefs_ is the module's own forward pass.
    with torch.no_grad():
        logits = clf.module_(torch.from_numpy(X)).numpy()
    assert_allclose(clf.predict_proba(X)[:, 1], 1 / (1 + np.exp(-logits[:, 0])))


def test_full_batch_sgd_step_follows_the_autograd_gradient():
    """Through fit: one full-batch SGD step moves u, the weights and biases by
    -learning_rate times autograd's gradient of the batch loss of
    MLPModule's forward pass (X times ``input_scaling * u``)."""
    X, y = _data()
    lr, alpha = 0.05, 1e-2
    clf = DNNClassifier(
        (5,), solver="sgd", momentum=0.0, batch_size=len(X), shuffle=False,
        learning_rate_init=lr, alpha=alpha, max_iter=1, warm_start=True,
        input_scaling=6.0, random_state=0, device="cpu",
    )  # fmt: skip
    clf.fit(X, y)
    module = clf.module_
    before = [p.detach().clone() for p in module.parameters()]
    weights = list(module.weights)
    loss = batch_loss(
        module(torch.from_numpy(X)),
        torch.from_numpy(y.reshape(-1, 1).astype(np.float64)),
        None,
        loss=loss_for_output("logistic"),
        weights=weights,
        alpha=alpha,
    )
    grads = torch.autograd.grad(loss, list(module.parameters()))
    clf.fit(X, y)
    for start, grad, after in zip(before, grads, module.parameters(), strict=True):
        assert_allclose(after.detach(), start - lr * grad, rtol=1e-9, atol=1e-12)
    assert len(grads) == 5  # two weights, two biases, the scale's u


def test_state_carries_over_pickle_and_continued_fits():
    X, y = _data()
    clf = _clf(input_scaling=12.0, warm_start=True).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    assert_array_equal(copy.module_.scale(), clf.module_.scale())
    clf.fit(X, y)
    copy.fit(X, y)
    assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    assert_array_equal(copy.module_.scale(), clf.module_.scale())
    copy.partial_fit(X, y)
    assert not np.array_equal(copy.module_.scale(), clf.module_.scale())


def test_changing_input_scaling_for_a_continued_fit_is_refused():
    X, y = _data()
    clf = _clf(input_scaling=12.0, warm_start=True).fit(X, y)
    clf.set_params(input_scaling=6.0)
    with pytest.raises(ValueError, match="input_scaling=12.0.*input_scaling=6.0"):
        clf.fit(X, y)
    with pytest.raises(ValueError, match="input_scaling"):
        clf.partial_fit(X, y)


def test_assigning_coefs_resets_the_scale():
    X, y = _data()
    clf = _clf(input_scaling=12.0).fit(X, y)
    new = [np.ones_like(W) for W in clf.coefs_]
    clf.coefs_ = new
    assert_allclose(clf.module_.scale(), 1.0)
    assert_array_equal(clf.coefs_[0], new[0])


def test_safe_file_round_trip_keeps_the_scale(tmp_path):
    X, y = _data()
    clf = _clf(input_scaling=12.0).fit(X, y)
    path = tmp_path / "model.skdnn"
    io.dump(clf, path)
    loaded = io.load(path)
    assert_array_equal(loaded.module_.scale(), clf.module_.scale())
    assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    loaded.set_params(warm_start=True).fit(X, y)  # it continues


def test_lbfgs_trains_the_scale():
    X, y = _data()
    clf = _clf(input_scaling=6.0, solver="lbfgs").fit(X, y)
    assert np.abs(clf.module_.scale().numpy() - 1).max() > 0.01
    assert clf.score(X, y) > 0.8


def test_restarts_train_the_scale_and_keep_the_best():
    X, y = _data()
    one = _clf(input_scaling=6.0, n_init=1).fit(X, y)
    best = _clf(input_scaling=6.0, n_init=4).fit(X, y)
    assert np.abs(best.module_.scale().numpy() - 1).max() > 0.01
    # Restart 0 is the n_init=1 fit: the best ends no higher.
    assert best.loss_ <= one.loss_


def test_negative_input_scaling_is_refused_before_any_work():
    X, y = _data()
    clf = _clf(input_scaling=-1.0)
    with pytest.raises(ValueError, match="input_scaling"):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")
