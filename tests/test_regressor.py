"""Behaviour tests for DNNRegressor: MLPRegressor's contract, and what the
classifier adds, working the same for a regressor."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import make_friedman1, make_regression
from sklearn.ensemble import StackingRegressor
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_poisson_deviance, r2_score
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.multioutput import MultiOutputRegressor
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skdnn._base
import skdnn._device as device_module
import skdnn._engine.trainer
from skdnn import DNNClassifier, DNNRegressor
from skdnn._defaults import resolved

CONVERGENCE = "ignore::sklearn.exceptions.ConvergenceWarning"
pytestmark = pytest.mark.filterwarnings(CONVERGENCE)


def _data(n_samples=120, n_features=5, n_targets=1, seed=0):
    X, y = make_regression(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=3,
        n_targets=n_targets,
        noise=5.0,
        random_state=seed,
    )
    return X, y / y.std()


def _counts(n_samples=150, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_samples, 3))
    return X, rng.poisson(np.exp(0.5 * X[:, 0] - 0.3 * X[:, 1])).astype(float)


def _same_weights(a, b):
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_array_equal(p, q)


# ------------------------------------------------------------------ drop-in


def test_accepts_every_mlpregressor_parameter_with_its_position():
    ours = DNNRegressor().get_params()
    assert set(MLPRegressor().get_params()) <= set(ours)
    # loss first and positional, as MLPRegressor's.
    assert DNNRegressor("poisson", (8,)).get_params()["loss"] == "poisson"
    assert DNNRegressor("poisson", (8,)).hidden_layer_sizes == (8,)
    added = set(ours) - set(MLPRegressor().get_params())
    assert added == {
        "dropout",
        "n_init",
        "input_scaling",
        "target_scaling",
        "device",
        "n_threads",
    }


def test_mlpregressor_params_train_mlpregressors_network():
    X, y = _data()
    reg = DNNRegressor(**MLPRegressor().get_params()).set_params(max_iter=2)
    reg.fit(X, y)
    assert [W.shape[1] for W in reg.module_.weights[:-1]] == [100]
    assert reg.module_.dropout == (0.0,)
    assert reg.module_.input_scaling == 0.0


# MLPRegressor's parameters whose default skdnn changed ('auto' selects the
# tuned network; see _defaults.py and the docstring).
CHANGED_DEFAULTS = {
    "hidden_layer_sizes": "auto",
    "alpha": "auto",
    "early_stopping": "auto",
}


@pytest.mark.parametrize("name", sorted(MLPRegressor().get_params()))
def test_default_equals_mlpregressor_default_or_is_a_documented_change(name):
    ours = DNNRegressor().get_params()[name]
    assert ours == CHANGED_DEFAULTS.get(name, MLPRegressor().get_params()[name])


@pytest.mark.parametrize(
    "params, expected",
    [
        ({}, dict(alpha=1e-3, batch_size=128, early_stopping=True, dropout=0.15,
                  input_scaling=24.0, hidden_layer_sizes=(128, 128, 128),
                  target_scaling=True)),
        ({"hidden_layer_sizes": (100,)},
         dict(alpha=1e-4, batch_size="auto", early_stopping=False, dropout=0.0,
              input_scaling=0.0, target_scaling=False)),
        ({"solver": "sgd"}, dict(early_stopping=False, hidden_layer_sizes=(100,))),
    ],
)  # fmt: skip
def test_auto_values_follow_the_network_and_solver(params, expected):
    reg = DNNRegressor(**params)
    assert {name: resolved(reg, name) for name in expected} == expected


def test_default_fit_stops_early_and_partial_fit_does_not():
    X, y = _data(n_samples=200)
    fitted = DNNRegressor(max_iter=3, random_state=0).fit(X, y)
    assert len(fitted.validation_scores_) == 3 and fitted.best_loss_ is None
    # 'auto' holds out a split only of at least 10 samples (10% of 100).
    small = DNNRegressor(max_iter=3, random_state=0).fit(X[:90], y[:90])
    assert small.validation_scores_ is None
    enough = DNNRegressor(max_iter=3, random_state=0).fit(X[:100], y[:100])
    assert len(enough.validation_scores_) == 3
    with pytest.raises(ValueError, match="validation set is too small"):
        DNNRegressor(early_stopping=True, max_iter=3).fit(X[:10], y[:10])
    partial = DNNRegressor(random_state=0).partial_fit(X, y)
    assert partial.validation_scores_ is None and partial.best_loss_ is not None
    # An explicit early_stopping=True is refused by partial_fit, as by
    # MLPRegressor's.
    with pytest.raises(ValueError, match="early_stopping=True"):
        DNNRegressor(early_stopping=True).partial_fit(X, y)


@pytest.mark.parametrize(
    "loss, schedule, n_targets",
    [
        ("squared_error", dict(learning_rate="constant"), 1),
        ("squared_error", dict(learning_rate="invscaling", learning_rate_init=0.05), 1),
        ("squared_error", dict(learning_rate="constant"), 3),
        ("poisson", dict(learning_rate="constant", learning_rate_init=0.005), 1),
    ],
)
def test_sgd_takes_mlpregressors_steps_from_the_same_weights(
    fit_from_the_same_weights, loss, schedule, n_targets
):
    # The same start, data order and batches: the final weights are
    # MLPRegressor's, and so are the losses of each epoch, except that
    # MLPRegressor reports the squared error averaged over a multi-output
    # target's outputs (its gradient is the sum's, which both train).
    if loss == "poisson":
        X, y = _counts(n_samples=90)
    else:
        X, y = _data(n_samples=90, n_features=4, n_targets=n_targets)
    params = dict(
        loss=loss,
        hidden_layer_sizes=(7, 5),
        solver="sgd",
        shuffle=False,
        batch_size=30,
        max_iter=15,
        tol=0.0,
        n_iter_no_change=1000,
        random_state=0,
        learning_rate_init=0.01,
    )
    params.update(schedule)
    ours, theirs = fit_from_the_same_weights(
        DNNRegressor(**params, n_init=1), MLPRegressor(**params), X, y
    )
    assert ours.n_iter_ == theirs.n_iter_
    if n_targets == 1:
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-10)
    for a, b in zip(
        ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9)


# ------------------------------------------------------- targets and output


def test_one_output_predicts_1d_and_several_predict_2d():
    X, y = _data(n_targets=3)
    multi = DNNRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
    assert multi.n_outputs_ == 3 and multi.predict(X).shape == (len(X), 3)
    single = DNNRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(
        X, y[:, 0]
    )
    assert single.n_outputs_ == 1 and single.predict(X).shape == (len(X),)


def test_column_target_warns_and_is_raveled():
    X, y = _data()
    with pytest.warns(DataConversionWarning):
        reg = DNNRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(
            X, y[:, None]
        )
    ref = DNNRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(X, y)
    np.testing.assert_array_equal(reg.predict(X), ref.predict(X))


@pytest.mark.parametrize(
    "dtype, torch_dtype", [(np.float32, torch.float32), (np.float64, torch.float64)]
)
def test_computes_in_the_dtype_of_x(dtype, torch_dtype):
    X, y = _data()
    reg = DNNRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(
        X.astype(dtype), y
    )
    assert all(p.dtype == torch_dtype for p in reg.module_.parameters())
    assert reg.predict(X.astype(dtype)).dtype == dtype


@pytest.mark.parametrize(
    "loss, link", [("squared_error", lambda z: z), ("poisson", np.exp)]
)
def test_predict_is_the_output_activation_of_the_modules_output(loss, link):
    X, y = _counts()
    reg = DNNRegressor(loss, hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(
        X, y
    )
    assert reg.out_activation_ == {"squared_error": "identity", "poisson": "exp"}[loss]
    with torch.no_grad():
        raw = reg.module_(torch.as_tensor(X)).numpy()[:, 0]
    np.testing.assert_allclose(reg.predict(X), link(raw), rtol=1e-12)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
def test_lbfgs_loss_is_the_half_deviance_plus_penalty_of_the_final_weights(loss):
    X, y = _counts()
    alpha = 0.01
    reg = DNNRegressor(
        loss,
        hidden_layer_sizes=(6,),
        solver="lbfgs",
        alpha=alpha,
        max_iter=50,
        random_state=0,
    ).fit(X, y)
    pred = reg.predict(X)
    if loss == "squared_error":
        data = 0.5 * np.mean((pred - y) ** 2)
    else:
        data = 0.5 * mean_poisson_deviance(y, pred)
    penalty = alpha / (2 * len(y)) * sum((W**2).sum() for W in reg.coefs_)
    assert reg.loss_ == pytest.approx(data + penalty, rel=1e-6)


def test_poisson_fits_counts_better_than_the_mean():
    X, y = _counts(n_samples=400)
    reg = DNNRegressor(
        "poisson", hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0
    )
    reg.fit(X, y)
    assert (reg.predict(X) > 0).all()
    baseline = mean_poisson_deviance(y, np.full_like(y, y.mean()))
    assert mean_poisson_deviance(y, reg.predict(X)) < 0.8 * baseline


def test_score_is_r2_with_sample_weights():
    X, y = _data()
    w = np.random.RandomState(0).uniform(0.5, 2, size=len(y))
    reg = DNNRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, y)
    assert reg.score(X, y, w) == pytest.approx(
        r2_score(y, reg.predict(X), sample_weight=w)
    )


# ---------------------------------------------------------- bad input


def _assert_refused_before_any_work(monkeypatch, fit, match):
    calls = []
    monkeypatch.setattr(skdnn._base.BaseDNN, "_start_fit", lambda *a: calls.append(a))
    with pytest.raises(ValueError, match=match):
        fit()
    assert calls == []


@pytest.mark.parametrize(
    "loss, bad_y, match",
    [
        ("squared_error", lambda y: np.where(np.arange(len(y)) == 3, np.nan, y), "NaN"),
        (
            "squared_error",
            lambda y: np.where(np.arange(len(y)) == 3, np.inf, y),
            "infinity",
        ),
        ("squared_error", lambda y: np.array(["a"] * len(y)), "numeric target"),
        (
            "squared_error",
            lambda y: np.array(["1.5"] * (len(y) - 1) + ["x"], dtype=object),
            "numeric target",
        ),
        ("poisson", lambda y: y - 10.0, r"loss='poisson' needs target values >= 0"),
    ],
)
def test_bad_targets_raise_a_clear_error_before_any_work(
    monkeypatch, loss, bad_y, match
):
    X, y = _counts()
    reg = DNNRegressor(loss, hidden_layer_sizes=(4,), max_iter=2)
    _assert_refused_before_any_work(monkeypatch, lambda: reg.fit(X, bad_y(y)), match)


def test_partial_fit_refuses_another_number_of_outputs_and_leaves_the_model():
    X, y = _data(n_targets=2)
    reg = DNNRegressor(hidden_layer_sizes=(8,), random_state=0).partial_fit(X, y)
    before = reg.predict(X)
    with pytest.raises(ValueError, match="y has 1 output.* fitted with 2"):
        reg.partial_fit(X, y[:, 0])
    np.testing.assert_array_equal(reg.predict(X), before)
    assert reg.n_iter_ == 1


def test_warm_start_refuses_another_loss():
    X, y = _counts()
    reg = DNNRegressor(
        hidden_layer_sizes=(8,), max_iter=3, warm_start=True, random_state=0
    ).fit(X, y)
    with pytest.raises(ValueError, match="loss='poisson'"):
        reg.set_params(loss="poisson").fit(X, y)


def test_partial_fit_learns_over_several_calls():
    X, y = _data(n_samples=300)
    reg = DNNRegressor(
        hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0
    )
    scores = []
    for _ in range(30):
        reg.partial_fit(X, y)
        scores.append(reg.score(X, y))
    assert len(reg.loss_curve_) == 30 and reg.t_ == 30 * len(y)
    assert scores[-1] > max(scores[0], 0.0) + 0.2


# --------------------------------------- what the classifier has, the same


def test_same_int_random_state_gives_bit_identical_fits():
    X, y = _data()
    params = dict(hidden_layer_sizes=(8, 8), dropout=0.2, max_iter=10, random_state=3)
    _same_weights(DNNRegressor(**params).fit(X, y), DNNRegressor(**params).fit(X, y))


def test_early_stopping_follows_the_validation_r2_and_keeps_the_best_weights():
    X, y = make_friedman1(n_samples=200, noise=3.0, random_state=0)
    params = dict(
        hidden_layer_sizes=(64, 64),
        early_stopping=True,
        n_iter_no_change=8,
        learning_rate_init=0.01,
        validation_fraction=0.25,
        random_state=0,
        n_init=1,
    )
    stopped = DNNRegressor(max_iter=300, **params).fit(X, y)
    assert stopped.n_iter_ < 300
    assert len(stopped.validation_scores_) == len(stopped.validation_loss_curve_)
    best_epoch = int(np.argmax(stopped.validation_scores_)) + 1
    assert stopped.best_validation_score_ == max(stopped.validation_scores_)
    assert best_epoch < stopped.n_iter_
    # The validation split is train_test_split's with the fit's random state:
    # the kept model's R^2 on it is the best validation score.
    rng = np.random.RandomState(0)
    rng.randint(np.iinfo(np.int32).max)  # the torch seed, drawn first
    _, X_val, _, y_val = train_test_split(X, y, test_size=0.25, random_state=rng)
    assert stopped.score(X_val, y_val) == pytest.approx(
        stopped.best_validation_score_, rel=1e-9
    )
    until_best = DNNRegressor(max_iter=best_epoch, **params).fit(X, y)
    _same_weights(stopped, until_best)


def test_ctrl_c_keeps_exactly_the_completed_epochs(monkeypatch):
    X, y = _data()
    params = dict(hidden_layer_sizes=(8,), random_state=0, n_init=1)
    real = skdnn._engine.trainer._step
    steps = []

    def step(*args, **kwargs):
        steps.append(1)
        if len(steps) == 3 * 1 + 1:  # one batch per epoch: after 3 epochs
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(skdnn._engine.trainer, "_step", step)
    interrupted = DNNRegressor(batch_size=len(y), max_iter=50, **params)
    with pytest.warns(UserWarning, match="interrupted by user after 3 "):
        interrupted.fit(X, y)
    monkeypatch.undo()
    three = DNNRegressor(batch_size=len(y), max_iter=3, **params).fit(X, y)
    assert interrupted.n_iter_ == 3 and interrupted.loss_curve_ == three.loss_curve_
    _same_weights(interrupted, three)


def test_divergence_warns_and_leaves_a_usable_model():
    X, y = _data()
    reg = DNNRegressor(
        hidden_layer_sizes=(32, 32),
        solver="sgd",
        learning_rate_init=10.0,
        momentum=0.0,
        max_iter=50,
        random_state=0,
    )
    with pytest.warns(ConvergenceWarning, match="diverged"):
        reg.fit(X, y * 1e3)
    assert np.isfinite(reg.loss_curve_).all()
    assert np.isfinite(reg.predict(X)).all()


@pytest.mark.parametrize(
    "params",
    [
        dict(),
        dict(solver="lbfgs", max_iter=20),
        dict(loss="poisson", input_scaling=4.0),
    ],
)
def test_pickle_round_trip_is_bit_identical(params):
    X, y = _counts()
    base = dict(hidden_layer_sizes=(8,), max_iter=10, random_state=0)
    reg = DNNRegressor(**{**base, **params}).fit(X, y)
    loaded = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(loaded.predict(X), reg.predict(X))
    assert loaded.get_params() == reg.get_params()
    assert loaded.loss_curve_ == reg.loss_curve_


def test_model_fitted_on_cuda_loads_on_cpu_with_warning(monkeypatch):
    monkeypatch.setattr(device_module, "_cuda_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)
    X, y = _data()
    reg = DNNRegressor(
        hidden_layer_sizes=(8,), max_iter=5, random_state=0, device="cpu"
    ).fit(X, y)
    expected = reg.predict(X)
    reg.device_ = torch.device("cuda")  # as if fitted on a GPU server
    saved = pickle.dumps(reg)
    with pytest.warns(UserWarning, match=r"(?s)(?=.*cuda)(?=.*CPU)"):
        loaded = pickle.loads(saved)
    assert loaded.device_ == torch.device("cpu")
    np.testing.assert_array_equal(loaded.predict(X), expected)


def test_dataframe_input_sets_feature_names_and_checks_them():
    X, y = _data()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    reg = DNNRegressor(hidden_layer_sizes=(8,), max_iter=3, random_state=0).fit(
        frame, pd.Series(y)
    )
    assert list(reg.feature_names_in_) == list(frame.columns)
    with pytest.raises(ValueError, match="feature names"):
        reg.predict(frame.rename(columns={"f0": "g0"}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reg.predict(frame)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_input_gives_the_dense_model(solver):
    X, y = _data()
    X[np.abs(X) < 0.7] = 0.0
    params = dict(
        hidden_layer_sizes=(8,), solver=solver, max_iter=10, random_state=0, n_init=1
    )
    dense = DNNRegressor(**params).fit(X, y)
    sparse = DNNRegressor(**params).fit(scipy.sparse.csr_matrix(X), y)
    np.testing.assert_allclose(sparse.predict(X), dense.predict(X), rtol=1e-10)


def test_warm_start_continues_from_the_fitted_weights():
    X, y = _data()
    params = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, n_init=1)
    reg = DNNRegressor(warm_start=True, **params).fit(X, y)
    first = reg.loss_curve_[:]
    reg.fit(X, y)
    assert reg.loss_curve_[:5] == first and len(reg.loss_curve_) == 10
    assert reg.loss_curve_[5] < first[0]


# --------------------------------------------------- in scikit-learn's tools


def test_works_in_scikit_learns_meta_estimators():
    X, y = make_friedman1(n_samples=300, noise=0.5, random_state=0)
    net = DNNRegressor(
        hidden_layer_sizes=(16,), max_iter=60, learning_rate_init=0.01, random_state=0
    )
    pipe = make_pipeline(StandardScaler(), net)
    ttr = TransformedTargetRegressor(pipe, transformer=StandardScaler()).fit(X, y)
    assert ttr.score(X, y) > 0.7
    scores = cross_val_score(ttr, X, y, cv=3)
    assert scores.shape == (3,) and (scores > 0.5).all()
    search = GridSearchCV(ttr, {"regressor__dnnregressor__alpha": [1e-4, 1e-2]}, cv=2)
    assert search.fit(X, y).best_params_["regressor__dnnregressor__alpha"] in (
        1e-4,
        1e-2,
    )
    Y = np.c_[y, -y]
    multi = MultiOutputRegressor(clone(pipe)).fit(X, Y / Y.std())
    assert multi.predict(X).shape == (len(X), 2)
    stack = StackingRegressor([("net", clone(ttr)), ("ridge", Ridge())], cv=2)
    assert stack.fit(X, y).score(X, y) > 0.7


def test_a_classifier_and_a_regressor_are_told_apart():
    from sklearn.base import is_classifier, is_regressor

    assert is_regressor(DNNRegressor()) and not is_classifier(DNNRegressor())
    assert is_classifier(DNNClassifier()) and not is_regressor(DNNClassifier())


# ---------------------------------------------------------- target scaling


def _forward(coefs, intercepts, X):
    h = X
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        h = h @ W + b
        if i < len(coefs) - 1:
            h = np.maximum(h, 0.0)
    return h[:, 0]


def test_target_scaling_trains_on_a_target_far_from_0():
    # A target about 100 from 0: unscaled, the default network's early
    # stopping gives up before its output gets there.
    X, y = _data(n_samples=200)
    y = y - y.min() + 100.0
    params = dict(hidden_layer_sizes=(32, 32), early_stopping=True, random_state=0)
    scaled = DNNRegressor(target_scaling=True, **params).fit(X, y)
    unscaled = DNNRegressor(target_scaling=False, **params).fit(X, y)
    assert scaled.score(X, y) > 0.8 > unscaled.score(X, y)


@pytest.mark.parametrize("loss, link", [("squared_error", lambda z: z),
                                        ("poisson", np.exp)])  # fmt: skip
def test_target_scaling_folds_into_coefs_and_intercepts(loss, link):
    X, y = _counts()
    reg = DNNRegressor(loss, hidden_layer_sizes=(8, 4), target_scaling=True,
                       max_iter=20, random_state=0).fit(X, 20 * y)  # fmt: skip
    # coefs_ and intercepts_ are in the units of y: they predict as predict.
    expected = reg.predict(X)
    np.testing.assert_allclose(
        link(_forward(reg.coefs_, reg.intercepts_, X)), expected, rtol=1e-9
    )
    # Assigning them moves the scaling into the network and keeps the model.
    reg.coefs_, reg.intercepts_ = reg.coefs_, reg.intercepts_
    assert reg._y_scaler is None
    np.testing.assert_allclose(reg.predict(X), expected, rtol=1e-9)


def test_warm_start_and_partial_fit_keep_the_first_fits_scaling():
    X, y = _data()
    reg = DNNRegressor(hidden_layer_sizes=(8,), target_scaling=True, warm_start=True,
                       max_iter=3, random_state=0).fit(X, y + 5.0)  # fmt: skip
    shift, scale = reg._y_scaler
    assert shift == pytest.approx(np.mean(y + 5.0)) and scale == pytest.approx(y.std())
    reg.fit(X, 3 * y)
    np.testing.assert_array_equal(reg._y_scaler[0], shift)
    reg.partial_fit(X, 3 * y)
    np.testing.assert_array_equal(reg._y_scaler[1], scale)
