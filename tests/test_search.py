"""The batched searches against scikit-learn's sequential ones."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import sklearn.model_selection
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import loguniform
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import make_friedman1
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import skdnn._engine.masks
from skdnn import DNNClassifier, DNNRegressor
from skdnn._batched import prepare_fit, stacked_model, train_batched
from skdnn._engine.masks import _EpochMasks
from skdnn._engine.optim import make_adam, make_sgd
from skdnn._engine.trainer import Trainer, batch_layout, epoch_rows
from skdnn.model_selection import GridSearchCV, RandomizedSearchCV

# float64 after 100 epochs of Adam: the batched and sequential fits differ in
# the order of summation only (bmm against mm, a tensor learning rate), a few
# ulps per step, which Adam's normalised steps do not amplify on these
# well-conditioned problems; 1e-9 is a thousand times the largest gap seen.
TOL = 1e-9


def _xor(n_samples=200, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, (n_samples, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def _blobs(n_samples=150, seed=0):
    rng = np.random.RandomState(seed)
    y = np.arange(n_samples) % 3
    X = rng.normal(size=(n_samples, 4)) + y[:, None]
    return X, np.array(["a", "b", "c"])[y]


def _clf(**params):
    settings = dict(
        hidden_layer_sizes=(6, 4),
        batch_size=32,
        max_iter=15,
        learning_rate_init=0.03,
        random_state=0,
        device="cpu",
    )
    return DNNClassifier(**{**settings, **params})


def _assert_same_fit(batched, sequential):
    assert batched.n_iter_ == sequential.n_iter_
    assert_allclose(batched.loss_curve_, sequential.loss_curve_, rtol=TOL)
    for a, b in zip(batched.coefs_, sequential.coefs_, strict=True):
        assert_allclose(a, b, rtol=TOL, atol=TOL)
    for a, b in zip(batched.intercepts_, sequential.intercepts_, strict=True):
        assert_allclose(a, b, rtol=TOL, atol=TOL)
    assert batched.t_ == sequential.t_
    if sequential.validation_scores_ is not None:  # early stopping ran
        assert batched.best_loss_ is None
        assert_allclose(
            batched.validation_scores_, sequential.validation_scores_, rtol=TOL
        )
        assert_allclose(
            batched.validation_loss_curve_,
            sequential.validation_loss_curve_,
            rtol=TOL,
        )
        assert batched.best_validation_score_ == pytest.approx(
            sequential.best_validation_score_, rel=TOL
        )
    else:
        assert_allclose(batched.best_loss_, sequential.best_loss_, rtol=TOL)
    if sequential.solver == "sgd":
        rates = [m._optimizer.param_groups[0]["lr"] for m in (batched, sequential)]
        assert rates[0] == pytest.approx(rates[1], rel=TOL)


@pytest.mark.parametrize("numpy_products", [True, False])
@pytest.mark.parametrize("data", [_xor, _blobs])
@pytest.mark.parametrize(
    "params",
    [
        {"alpha": 1e-4},
        {"alpha": 0.5, "learning_rate_init": 0.001},
        {"class_weight": "balanced", "batch_size": 50},
        {"batch_size": "auto", "random_state": 3, "shuffle": False},
        {"max_iter": 200, "tol": 1e-2, "n_iter_no_change": 2},
        {"dropout": 0.3},
        {"dropout": (0.0, 0.5), "batch_size": 17, "activation": "tanh"},
        {"early_stopping": True, "max_iter": 80, "n_iter_no_change": 3},
        {"early_stopping": True, "validation_fraction": 0.3, "tol": 0.0,
         "class_weight": "balanced", "dropout": 0.2},
        {"solver": "sgd", "learning_rate_init": 0.1},
        {"solver": "sgd", "learning_rate": "invscaling", "power_t": 0.3,
         "learning_rate_init": 0.2, "nesterovs_momentum": False},
        {"solver": "sgd", "learning_rate": "adaptive", "max_iter": 60,
         "tol": 1e-2, "n_iter_no_change": 1, "learning_rate_init": 0.2},
        {"solver": "sgd", "momentum": 0.0, "early_stopping": True, "max_iter": 40},
        {"input_scaling": 12.0},
        {"input_scaling": 6.0, "early_stopping": True, "max_iter": 60,
         "dropout": 0.2},
    ],
)  # fmt: skip
def test_batched_models_equal_sequential_fits(data, params, numpy_products):
    X, y = data()
    # Unequal row counts, batch counts and last-batch sizes per model.
    rows = [np.arange(0, 120), np.arange(30, 143), np.arange(5, 150, 2)]
    models = [clone(_clf(**params)) for _ in rows]
    models[1].set_params(alpha=2e-3, learning_rate_init=0.01)
    if "dropout" in params:
        # Each model its own rate, one of them none: the same batch.
        models[1].set_params(dropout=0.0)
        models[2].set_params(dropout=0.1)
    prepared = [prepare_fit(m, X[r], y[r]) for m, r in zip(models, rows, strict=True)]
    diverged = train_batched(models, prepared, numpy_products=numpy_products)
    assert not diverged.any()
    for model, r in zip(models, rows, strict=True):
        _assert_same_fit(model, clone(model).fit(X[r], y[r]))
        assert_allclose(
            model.predict_proba(X),
            clone(model).fit(X[r], y[r]).predict_proba(X),
            rtol=1e-7,
        )


@pytest.mark.parametrize("numpy_products", [True, False])
def test_models_of_one_seed_share_draws_and_equal_their_fits(numpy_products):
    # One random_state and the same rows: the same torch seed and RandomState
    # stream for every model, so the trainer draws each permutation and each
    # dropout bit once per group of models. Models 0, 1, 3 and 4 draw alike
    # (model 3 gathers its smaller batches' bits from a copy), model 2 drops
    # only its second layer, model 5 nothing; model 0, the group's first,
    # stops long before the others.
    X, y = _blobs()
    models = [
        _clf(dropout=0.3, max_iter=60, tol=1e-1, n_iter_no_change=2),
        _clf(dropout=0.1, max_iter=60),
        _clf(dropout=(0.0, 0.5), max_iter=60),
        _clf(dropout=0.2, batch_size=20, max_iter=60),
        _clf(dropout=0.4, max_iter=60),
        _clf(dropout=0.0, max_iter=60),
    ]
    prepared = [prepare_fit(m, X, y) for m in models]
    assert len({p.torch_seed for p in prepared}) == 1
    with pytest.warns(ConvergenceWarning):
        diverged = train_batched(models, prepared, numpy_products=numpy_products)
    assert not diverged.any()
    assert models[0].n_iter_ < models[1].n_iter_
    for model in models:
        _assert_same_fit(model, clone(model).fit(X, y))


def test_random_state_instances_advance_as_in_their_fits():
    # A RandomState passed as random_state is the caller's, and each fit
    # advances it: clones with equal states must each draw their own
    # shuffles, not share one model's.
    X, y = _xor()
    models = [_clf(random_state=np.random.RandomState(5), tol=t) for t in (1e-1, 0)]
    models += [clone(models[1])]
    prepared = [prepare_fit(m, X, y) for m in models]
    with pytest.warns(ConvergenceWarning):
        train_batched(models, prepared)
    for model in models:
        twin = clone(model).set_params(random_state=np.random.RandomState(5))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            twin.fit(X, y)
        _assert_same_fit(model, twin)
        assert_array_equal(
            model.random_state.get_state()[1], twin.random_state.get_state()[1]
        )
        assert model.random_state.get_state()[2] == twin.random_state.get_state()[2]


def test_models_prepared_like_another_equal_those_checked_afresh():
    # A search checks each fold's data once; the fold's other candidates
    # take the checks' results and set what validate_data sets.
    X, y = _blobs()
    X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    first = _clf()
    checked = prepare_fit(first, X, y)
    alike, afresh = _clf(dropout=0.2, alpha=0.1), _clf(dropout=0.2, alpha=0.1)
    shared = prepare_fit(alike, X, y, like=checked)
    own = prepare_fit(afresh, X, y)
    for name in ("n_features_in_", "feature_names_in_", "classes_", "n_outputs_"):
        assert_array_equal(getattr(alike, name), getattr(afresh, name))
    for name in ("X", "y", "target"):
        assert_array_equal(getattr(shared, name), getattr(own, name))
    assert shared.torch_seed == own.torch_seed
    with pytest.warns(ConvergenceWarning):
        train_batched([alike], [shared])
    _assert_same_fit(alike, clone(afresh).fit(X, y))
    with pytest.warns(UserWarning, match="feature names"):
        alike.predict(X.to_numpy())


def test_batched_models_stop_on_their_own():
    X, y = _xor()
    models = [_clf(max_iter=300, tol=t, n_iter_no_change=2) for t in (1e-1, 0.0)]
    prepared = [prepare_fit(m, X, y) for m in models]
    train_batched(models, prepared)
    n_iter = [m.n_iter_ for m in models]
    assert n_iter[0] < n_iter[1]
    for model in models:
        _assert_same_fit(model, clone(model).fit(X, y))


def test_dropout_masks_drawn_in_several_blocks_equal_the_fits(monkeypatch):
    # fit draws an epoch's masks in blocks of at most _MASK_VALUES values;
    # here blocks of 2 batches (of unequal sizes per model), so that the
    # batched trainer must follow each model's blocks to draw its masks.
    monkeypatch.setattr(skdnn._engine.masks, "_MASK_VALUES", 2 * 32 * 10)
    X, y = _blobs()
    rows = [np.arange(0, 150), np.arange(0, 100)]
    models = [_clf(dropout=0.3, batch_size=32), _clf(dropout=0.2, batch_size=20)]
    prepared = [prepare_fit(m, X[r], y[r]) for m, r in zip(models, rows, strict=True)]
    assert len(skdnn._engine.masks.mask_blocks(150, 32, [6, 4], [0.3, 0.3])) == 3
    train_batched(models, prepared)
    for model, r in zip(models, rows, strict=True):
        _assert_same_fit(model, clone(model).fit(X[r], y[r]))


def test_partial_fit_after_a_batched_fit_continues_adam_as_after_fit():
    X, y = _xor()
    model = _clf(dropout=0.2, max_iter=5)
    train_batched([model], [prepare_fit(model, X, y)])
    sequential = clone(model).fit(X, y)
    for fitted in (model, sequential):
        state = fitted._optimizer.state[fitted._flat]
        assert state["step"].item() == 5 * 7
    for _ in range(3):
        model.partial_fit(X[:50], y[:50])
        sequential.partial_fit(X[:50], y[:50])
    _assert_same_fit(model, sequential)


def _sequential(estimator, grid, **kwargs):
    return sklearn.model_selection.GridSearchCV(estimator, grid, **kwargs)


@pytest.mark.parametrize("return_train_score", [False, True])
def test_cv_results_keys_and_shapes_equal_sklearn(return_train_score):
    X, y = _xor()
    grid = {"alpha": [1e-4, 1e-2], "dropout": [0.0, 0.2]}
    kwargs = dict(cv=3, return_train_score=return_train_score)
    ours = GridSearchCV(_clf(), grid, **kwargs).fit(X, y)
    theirs = _sequential(_clf(), grid, **kwargs).fit(X, y)
    assert ours.batched_
    assert sorted(ours.cv_results_) == sorted(theirs.cv_results_)
    for key, value in theirs.cv_results_.items():
        assert np.shape(ours.cv_results_[key]) == np.shape(value), key
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    assert ours.n_splits_ == theirs.n_splits_ == 3
    assert set(ours.best_params_) == {"alpha", "dropout"}


@pytest.mark.parametrize(
    "grid",
    [
        {"alpha": [1e-4, 1e-1], "learning_rate_init": [0.01, 0.03]},
        # Two groups of models: with an input scale and without.
        {"alpha": [1e-4, 1e-1], "input_scaling": [0.0, 12.0]},
    ],
)
def test_search_without_dropout_equals_sequential_search(grid):
    X, y = _blobs()
    ours = GridSearchCV(_clf(), grid, cv=4, return_train_score=True).fit(X, y)
    theirs = _sequential(_clf(), grid, cv=4, return_train_score=True).fit(X, y)
    for key in theirs.cv_results_:
        if key.startswith(("split", "mean_t", "std_t", "rank_")):
            assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], err_msg=key)
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_score_ == theirs.best_score_
    _assert_same_fit(ours.best_estimator_, theirs.best_estimator_)


@pytest.mark.parametrize(
    "base, grid",
    [
        (
            {"early_stopping": True, "max_iter": 60, "n_iter_no_change": 3},
            {"alpha": [1e-4, 1e-1], "learning_rate_init": [0.01, 0.03]},
        ),
        (
            {"solver": "sgd", "learning_rate_init": 0.1, "max_iter": 40},
            {"learning_rate": ["constant", "invscaling", "adaptive"],
             "early_stopping": [False, True]},
        ),
    ],
)  # fmt: skip
def test_early_stopping_and_sgd_searches_are_batched_and_equal_sequential(base, grid):
    X, y = _blobs()
    ours = GridSearchCV(_clf(**base), grid, cv=3, return_train_score=True)
    ours.fit(X, y)
    assert ours.batched_
    theirs = _sequential(_clf(**base), grid, cv=3, return_train_score=True)
    theirs.fit(X, y)
    for key in theirs.cv_results_:
        if key.startswith(("split", "mean_t", "std_t", "rank_")):
            assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], err_msg=key)
    assert ours.best_params_ == theirs.best_params_
    _assert_same_fit(ours.best_estimator_, theirs.best_estimator_)


@pytest.mark.parametrize("pipeline", [False, True])
def test_search_with_dropout_equals_sequential_search(pipeline):
    X, y = _blobs()
    estimator = _clf(max_iter=10)
    grid = {"dropout": [0.0, 0.2, 0.4], "alpha": [1e-4, 1e-1]}
    if pipeline:
        estimator = make_pipeline(StandardScaler(), estimator)
        grid = {f"dnnclassifier__{k}": v for k, v in grid.items()}
    ours = GridSearchCV(estimator, grid, cv=3, return_train_score=True).fit(X, y)
    theirs = _sequential(estimator, grid, cv=3, return_train_score=True).fit(X, y)
    assert ours.batched_
    for key in theirs.cv_results_:
        if key.startswith(("split", "mean_t", "std_t", "rank_")):
            assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], err_msg=key)
    assert ours.best_params_ == theirs.best_params_
    best, expected = ours.best_estimator_, theirs.best_estimator_
    if pipeline:
        assert_allclose(best[0].mean_, expected[0].mean_)
        best, expected = best[-1], expected[-1]
    _assert_same_fit(best, expected)
    assert_allclose(
        ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-7, atol=1e-12
    )


def _counting_fits(monkeypatch):
    """A list that DNNClassifier.fit appends to at each call."""
    fits = []
    real_fit = DNNClassifier.fit

    def fit(self, *args, **kwargs):
        fits.append(self)
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(DNNClassifier, "fit", fit)
    return fits


@pytest.mark.parametrize("pipeline", [False, True])
def test_refits_trained_ahead_equal_fit_and_warn_as_it_does(pipeline, monkeypatch):
    # Small networks: every candidate's refit joins the cross-validation's
    # batch, and the best one becomes best_estimator_ without a fit of its
    # own; it warns, once, as its fit would have.
    X, y = _blobs()
    # One network a fit: with n_init's restarts the rule weighs six (see
    # test_refits_ahead_count_restarts).
    estimator = _clf(max_iter=10, n_init=1)
    grid = {"dropout": [0.0, 0.3], "alpha": [1e-4, 1e-1]}
    if pipeline:
        estimator = make_pipeline(StandardScaler(), estimator)
        grid = {f"dnnclassifier__{k}": v for k, v in grid.items()}
    with pytest.warns(ConvergenceWarning) as theirs_warned:
        theirs = _sequential(estimator, grid, cv=3).fit(X, y)
    fits = _counting_fits(monkeypatch)
    with pytest.warns(ConvergenceWarning) as ours_warned:
        ours = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    assert ours.batched_ and not fits
    assert len(ours_warned) == len(theirs_warned) == 4 * 3 + 1
    assert ours.best_params_ == theirs.best_params_
    assert ours.refit_time_ > 0
    best, expected = ours.best_estimator_, theirs.best_estimator_
    if pipeline:
        assert_allclose(best[0].mean_, expected[0].mean_)
        best, expected = best[-1], expected[-1]
    _assert_same_fit(best, expected)
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-7)


def test_refits_ahead_count_restarts(monkeypatch, capsys):
    # The setting where one network a fit trains its refits ahead (above),
    # with n_init's six restarts a fit: the refits' restarts would cost more
    # in the batch than one refit after it, so the best one is fitted after.
    X, y = _blobs()
    grid = {"alpha": [1e-4, 1e-3, 1e-2, 1e-1]}
    estimator = _clf(max_iter=10, n_init=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs = _sequential(estimator, grid, cv=3).fit(X, y)
        fits = _counting_fits(monkeypatch)
        ours = GridSearchCV(estimator, grid, cv=3, verbose=1).fit(X, y)
    assert "Training 12 fits (72 networks) in one batch." in capsys.readouterr().out
    assert len(fits) == 1 and fits[0] is not estimator
    _assert_same_fit(ours.best_estimator_, theirs.best_estimator_)


@pytest.mark.parametrize("refit", [True, False])
def test_refits_of_larger_networks_are_fitted_after(refit, monkeypatch, capsys):
    # A network whose own work outweighs a step's overhead: training every
    # candidate's refit would cost more than fitting the best one after.
    X, y = _blobs()
    fits = _counting_fits(monkeypatch)
    grid = {"alpha": [1e-4, 1e-1, 1.0]}
    estimator = _clf(hidden_layer_sizes=(200, 200), max_iter=3, batch_size=64)
    ours = GridSearchCV(estimator, grid, cv=3, refit=refit, verbose=1).fit(X, y)
    assert "Training 9 fits (9 networks) in one batch." in capsys.readouterr().out
    assert len(fits) == int(refit)
    if refit:
        theirs = _sequential(estimator, grid, cv=3).fit(X, y)
        _assert_same_fit(ours.best_estimator_, theirs.best_estimator_)


def test_caching_pipeline_search_equals_sequential_search(tmp_path):
    # A caching Pipeline fits clones of its transformers (all but the last
    # of a slice) and keeps them in its own list of steps.
    X, y = _xor()
    pipeline = make_pipeline(
        StandardScaler(), MinMaxScaler(), _clf(max_iter=5), memory=str(tmp_path)
    )
    grid = {"dnnclassifier__dropout": [0.0, 0.3]}
    ours = GridSearchCV(pipeline, grid, cv=2).fit(X, y)
    theirs = _sequential(pipeline, grid, cv=2).fit(X, y)
    assert ours.batched_
    _assert_same_fit(ours.best_estimator_[-1], theirs.best_estimator_[-1])
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-7)


@pytest.mark.parametrize("seed", [0, "instance"])
def test_randomized_search_draws_sklearns_candidates_and_equals_its_search(seed):
    X, y = _blobs()
    distributions = {
        "alpha": loguniform(1e-5, 1e-1),
        "learning_rate_init": loguniform(1e-2, 5e-2),
    }

    def random_state():
        return np.random.RandomState(3) if seed == "instance" else seed

    kwargs = dict(n_iter=3, cv=3, return_train_score=True)
    ours = RandomizedSearchCV(
        _clf(), distributions, random_state=random_state(), **kwargs
    ).fit(X, y)
    theirs = sklearn.model_selection.RandomizedSearchCV(
        _clf(), distributions, random_state=random_state(), **kwargs
    ).fit(X, y)
    assert ours.batched_
    assert sorted(ours.cv_results_) == sorted(theirs.cv_results_)
    # The same candidates: checking whether they can be batched drew from a
    # copy of the random state.
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    for key in theirs.cv_results_:
        if key.startswith(("split", "mean_t", "std_t", "rank_")):
            assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], err_msg=key)
    assert ours.best_params_ == theirs.best_params_


def test_randomized_search_falls_back_with_sklearns_candidates(capsys):
    X, y = _xor()
    distributions = {"alpha": loguniform(1e-5, 1e-1)}
    kwargs = dict(n_iter=2, cv=2, random_state=np.random.RandomState(0))
    ours = RandomizedSearchCV(
        _clf(solver="lbfgs"), distributions, verbose=1, **kwargs
    ).fit(X, y)
    kwargs["random_state"] = np.random.RandomState(0)
    theirs = sklearn.model_selection.RandomizedSearchCV(
        _clf(solver="lbfgs"), distributions, **kwargs
    ).fit(X, y)
    assert not ours.batched_
    assert "Not batching" in capsys.readouterr().out
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]


def test_folds_of_unequal_size_get_exactly_their_rows():
    X, y = _xor(101)
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(_clf(), {"alpha": [1e-4]}, cv=cv).fit(X, y)
    for split, (train, test) in enumerate(cv.split(X, y)):
        alone = clone(_clf()).fit(X[train], y[train])
        assert_allclose(
            search.cv_results_[f"split{split}_test_score"][0],
            alone.score(X[test], y[test]),
        )
    assert {len(train) for train, _ in cv.split(X, y)} == {67, 68}


@pytest.mark.parametrize("data", [_xor, _blobs])
def test_twins_get_the_epoch_rows_of_each_their_own(data):
    # Models given one X array with the same targets and batch size (a
    # search's candidates on a fold) are twins: each epoch's rows are
    # gathered once for each twin group and copied to every twin. Their
    # grids must be those of each model's own rows (class indices too), and
    # an epoch whose twins visit their rows in different orders is gathered
    # model by model.
    X, y = data(101)
    fold_rows = [slice(0, 60), slice(0, 60), slice(40, 101), slice(0, 60),
                 slice(40, 101)]  # fmt: skip
    models = [_clf(alpha=a, n_init=1) for a in (1e-4, 1e-3, 1e-4, 1e-2, 1e-2)]
    # As a search prepares them: each fold's data checked once.
    prepared, first = [], {}
    for model, rows in zip(models, fold_rows, strict=True):
        like = first.get(rows.start)
        prepared.append(prepare_fit(model, X[rows], y[rows], like=like))
        first.setdefault(rows.start, prepared[-1])
    trainer = Trainer(
        [stacked_model(m) for m in models], prepared, batch_sizes=[32] * 5,
    )  # fmt: skip
    twins = trainer.twins
    assert twins is not None and twins.leaders.tolist() == [0, 2]
    assert twins.index.tolist() == [0, 0, 1, 0, 1]
    rng = np.random.RandomState(0)
    order = {n: rng.permutation(n) for n in (60, 61)}
    orders = [order[p.X.shape[0]] for p in prepared]
    assert twins.take(orders)
    # Their slots in use hold what the model-by-model gather puts there
    # (padding slots hold some row of the data: they weigh nothing).
    valid = torch.from_numpy(trainer.layout[1])
    by_twins = trainer.X_epoch[valid], trainer.t_epoch[valid]
    trainer.X_epoch.zero_(), trainer.t_epoch.zero_()
    trainer._take_epoch(epoch_rows(orders, trainer.layout, offsets=trainer.row_offsets))
    torch.testing.assert_close(
        by_twins, (trainer.X_epoch[valid], trainer.t_epoch[valid]), rtol=0, atol=0
    )
    # Each model's slots hold its own rows and targets, in its order.
    assert twins.take(orders)
    valid = trainer.layout[1]
    for m, p in enumerate(prepared):
        visited = orders[m][: valid[:, m].sum()]
        assert_array_equal(trainer.X_epoch[:, m].numpy()[valid[:, m]], p.X[visited])
        targets = trainer.t_epoch[:, m].numpy()[valid[:, m]]
        assert_array_equal(
            targets.reshape(len(visited), -1)[:, 0],
            p.target[visited].reshape(len(visited), -1)[:, 0],
        )
    # Twins 0 and 1 in different orders: not taken as twins.
    orders[1] = rng.permutation(60)
    assert not twins.take(orders)


def test_grid_over_architectures_forms_separate_batches(capsys):
    X, y = _xor()
    grid = {"hidden_layer_sizes": [(4,), (6, 4)], "alpha": [1e-4, 1e-3]}
    ours = GridSearchCV(_clf(), grid, cv=3, verbose=1).fit(X, y)
    printed = capsys.readouterr().out
    # 2 x 3 folds, and each candidate's refit, trained ahead in its batch;
    # n_init='auto' gives each fit of these narrow networks 6 networks.
    ahead = "in one batch, 2 of them refits ahead."
    assert printed.count(f"Training 8 fits (48 networks) {ahead}") == 2
    theirs = _sequential(_clf(), grid, cv=3).fit(X, y)
    assert_allclose(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )


@pytest.mark.parametrize(
    "grid, batched, said",
    [
        # One candidate of two cannot be batched: it alone is sequential.
        ({"solver": ["lbfgs", "adam"]}, True,
         "Fitting 1 candidates sequentially: a candidate has solver='lbfgs'"),
        # None can: the whole search is scikit-learn's.
        ({"warm_start": [True]}, False, "Not batching the search: a candidate "
         "has warm_start=True"),
    ],
)  # fmt: skip
def test_unbatchable_candidates_fall_back_and_say_so(grid, batched, said, capsys):
    X, y = _xor()
    search = GridSearchCV(_clf(), grid, cv=3, verbose=1).fit(X, y)
    assert search.batched_ == batched
    assert said in capsys.readouterr().out
    theirs = _sequential(_clf(), grid, cv=3).fit(X, y)
    assert_allclose(
        search.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )


@pytest.mark.parametrize("pipeline", [False, True])
def test_sample_weights_and_groups_are_batched_as_scikit_learn_routes_them(pipeline):
    # scikit-learn's search gives each fit its training rows' weights, the
    # scorer (accuracy takes weights) its test rows', and the splitter the
    # groups.
    X, y = _xor()
    weight = np.random.RandomState(0).uniform(0.1, 3.0, len(y))
    groups = np.arange(len(y)) % 4
    estimator = make_pipeline(StandardScaler(), _clf()) if pipeline else _clf()
    name = "dnnclassifier__" if pipeline else ""
    grid = {f"{name}alpha": [1e-4, 1e-1], f"{name}class_weight": [None, "balanced"]}
    params = {f"{name}sample_weight": weight, "groups": groups}
    cv = sklearn.model_selection.GroupKFold(4)
    ours = GridSearchCV(estimator, grid, cv=cv, return_train_score=True)
    ours.fit(X, y, **params)
    theirs = _sequential(estimator, grid, cv=cv, return_train_score=True)
    theirs.fit(X, y, **params)
    assert ours.batched_
    for key in theirs.cv_results_:
        if key.startswith("param"):
            assert list(ours.cv_results_[key]) == list(theirs.cv_results_[key])
        elif "time" not in key:
            assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], rtol=TOL)
    # The weights change the fits: unweighted, other scores.
    plain = GridSearchCV(estimator, grid, cv=cv).fit(X, y, groups=groups)
    assert not np.allclose(
        plain.cv_results_["mean_test_score"], ours.cv_results_["mean_test_score"]
    )
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-7)


def test_other_fit_params_fall_back():
    X, y = _xor()
    search = GridSearchCV(_clf(), {"alpha": [1e-4]}, cv=3, error_score=-1.0)
    # scikit-learn's own search: every fit refuses the parameter.
    with pytest.raises(ValueError, match="unexpected keyword argument 'shuffle'"):
        search.fit(X, y, shuffle=True)
    assert not search.batched_


def test_pipeline_with_scaler():
    X, y = _xor()
    X = X * [100.0, 0.01] + 5
    pipe = make_pipeline(StandardScaler(), _clf())
    grid = {"dnnclassifier__alpha": [1e-4, 1e-2]}
    ours = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    theirs = _sequential(pipe, grid, cv=3).fit(X, y)
    assert ours.batched_
    assert_allclose(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )
    assert ours.best_params_ == theirs.best_params_
    assert ours.score(X, y) == theirs.score(X, y)


@pytest.mark.parametrize("refit", [True, False])
def test_grid_over_earlier_pipeline_steps_is_batched(refit, monkeypatch):
    # Each setting of the earlier steps is fitted once per fold (and once on
    # the whole data for the refits trained ahead), whatever the model's
    # candidates; settings that change the features make batches of their
    # own.
    X, y = _xor()
    X = np.c_[X, X[:, :1] ** 2] * [100.0, 0.01, 1.0] + 5
    pipe = make_pipeline(StandardScaler(), PCA(random_state=0), _clf())
    scalers = [StandardScaler(), MinMaxScaler()]
    grid = {
        "standardscaler": scalers,
        "pca__n_components": [2, 3],
        "dnnclassifier__alpha": [1e-4, 1e-1],
    }
    fitted = []
    fit_transform = PCA.fit_transform

    def counting(self, X, y=None):
        fitted.append(self.n_components)
        return fit_transform(self, X, y)

    monkeypatch.setattr(PCA, "fit_transform", counting)
    ours = GridSearchCV(pipe, grid, cv=3, refit=refit).fit(X, y)
    batched_fits = len(fitted)
    theirs = _sequential(pipe, grid, cv=3, refit=refit).fit(X, y)
    assert ours.batched_
    # 2 scalers x 2 PCA settings x 3 folds, and at most one per setting on
    # the whole data; scikit-learn's fits one per candidate and fold.
    assert 12 <= batched_fits <= 16 and len(fitted) - batched_fits >= 24
    for key in theirs.cv_results_:
        if key.startswith("param"):
            assert [str(v) for v in ours.cv_results_[key]] == [
                str(v) for v in theirs.cv_results_[key]
            ]
        elif "time" not in key:
            assert_allclose(ours.cv_results_[key], theirs.cv_results_[key], rtol=TOL)
    if refit:
        assert str(ours.best_params_) == str(theirs.best_params_)
        assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-7)
        assert isinstance(ours.best_estimator_[0], type(theirs.best_estimator_[0]))


def test_grid_replacing_the_pipelines_model_falls_back(capsys):
    X, y = _xor()
    pipe = make_pipeline(StandardScaler(), _clf())
    grid = {"dnnclassifier": [_clf(), _clf(alpha=1.0)]}
    search = GridSearchCV(pipe, grid, cv=3, verbose=1)
    assert not search.fit(X, y).batched_
    assert "replaces the Pipeline's model" in capsys.readouterr().out


@pytest.mark.parametrize("refit", ["accuracy", False])
def test_multimetric_scoring(refit):
    X, y = _blobs()
    grid = {"alpha": [1e-4, 1e-1]}
    scoring = ["accuracy", "neg_log_loss"]
    kwargs = dict(cv=StratifiedKFold(3), scoring=scoring, refit=refit)
    ours = GridSearchCV(_clf(), grid, **kwargs).fit(X, y)
    theirs = _sequential(_clf(), grid, **kwargs).fit(X, y)
    assert ours.batched_ and ours.multimetric_
    assert sorted(ours.cv_results_) == sorted(theirs.cv_results_)
    for name in scoring:
        assert_allclose(
            ours.cv_results_[f"mean_test_{name}"],
            theirs.cv_results_[f"mean_test_{name}"],
            rtol=1e-7,
        )
    assert hasattr(ours, "best_estimator_") == bool(refit)


def test_callable_scoring():
    X, y = _xor()

    def half_accuracy(estimator, X, y):
        return 0.5 * estimator.score(X, y)

    ours = GridSearchCV(_clf(), {"alpha": [1e-4]}, cv=3, scoring=half_accuracy)
    theirs = _sequential(_clf(), {"alpha": [1e-4]}, cv=3, scoring=half_accuracy)
    assert_allclose(ours.fit(X, y).best_score_, theirs.fit(X, y).best_score_)


def test_failing_fold_gets_error_score():
    X, y = _xor(60)
    # Sorted labels and unshuffled folds: the first fold's training rows
    # hold one class only, which DNNClassifier refuses.
    order = np.argsort(y, kind="stable")
    X, y = X[order], y[order]
    cv = [
        (np.flatnonzero(y == 0), np.flatnonzero(y == 1)),
        (np.arange(0, 60, 2), np.arange(1, 60, 2)),
    ]
    search = GridSearchCV(_clf(), {"alpha": [1e-4]}, cv=cv, error_score=-1.0)
    with pytest.warns(FitFailedWarning, match="fits failed"):
        search.fit(X, y)
    assert search.batched_
    assert search.cv_results_["split0_test_score"][0] == -1.0
    assert search.cv_results_["split1_test_score"][0] > 0


# ------------------------------------------------------------- DNNRegressor


def _reg(**params):
    settings = dict(
        hidden_layer_sizes=(6, 4),
        batch_size=32,
        max_iter=15,
        learning_rate_init=0.03,
        dropout=0.0,
        random_state=0,
        device="cpu",
    )
    return DNNRegressor(**{**settings, **params})


def _regression(target="1-D", n_samples=150):
    X, y = make_friedman1(n_samples=n_samples, noise=0.3, random_state=0)
    if target == "multi-output":
        y = np.c_[y, 10 * X[:, 0] * X[:, 1]]
    elif target == "poisson":
        rng = np.random.RandomState(0)
        y = rng.poisson(np.exp(X[:, 0] + X[:, 1] - X[:, 2])).astype(float)
    return X, y


def _counting_regressor_fits(monkeypatch):
    """A list of the row count of each DNNRegressor.fit call."""
    rows = []
    real_fit = DNNRegressor.fit

    def fit(self, X, *args, **kwargs):
        rows.append(len(X))
        return real_fit(self, X, *args, **kwargs)

    monkeypatch.setattr(DNNRegressor, "fit", fit)
    return rows


def _assert_search_equals_sequential(ours, theirs, X):
    """Scores, ranks and choice within TOL, the refit's fit and predictions."""
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    for key in theirs.cv_results_:
        if key.startswith(("split", "mean_t", "std_t", "rank_")):
            assert_allclose(
                ours.cv_results_[key], theirs.cv_results_[key], rtol=TOL,
                atol=TOL, err_msg=key,
            )  # fmt: skip
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_score_ == pytest.approx(theirs.best_score_, rel=TOL, abs=TOL)
    best, expected = ours.best_estimator_, theirs.best_estimator_
    if hasattr(best, "steps"):
        assert_allclose(best[0].mean_, expected[0].mean_)
        best, expected = best[-1], expected[-1]
    _assert_same_fit(best, expected)
    assert_allclose(ours.predict(X), theirs.predict(X), rtol=TOL, atol=TOL)


def _assert_folds_batched(rows, n_samples):
    # Every cross-validation fit trained in the batch: DNNRegressor.fit ran
    # for the best candidate's refit at most, on the whole data.
    assert rows in ([], [n_samples])


@pytest.mark.parametrize("target", ["1-D", "multi-output", "poisson"])
@pytest.mark.parametrize(
    "grid",
    [
        {"alpha": [1e-4, 1e-1], "learning_rate_init": [0.01, 0.03]},
        # Two architectures: two batches.
        {"alpha": [1e-4, 1e-1], "hidden_layer_sizes": [(6,), (6, 4)]},
        # Each fold's own target scaling, and none, in one grid.
        {"alpha": [1e-4, 1e-1], "target_scaling": [False, True]},
    ],
)
def test_regressor_search_is_batched_and_equals_sequential_search(
    target, grid, monkeypatch
):
    X, y = _regression(target)
    loss = "poisson" if target == "poisson" else "squared_error"
    kwargs = dict(cv=3, return_train_score=True)
    theirs = _sequential(_reg(loss=loss), grid, **kwargs).fit(X, y)
    rows = _counting_regressor_fits(monkeypatch)
    ours = GridSearchCV(_reg(loss=loss), grid, **kwargs).fit(X, y)
    assert ours.batched_
    _assert_folds_batched(rows, len(X))
    _assert_search_equals_sequential(ours, theirs, X)
    assert ours.best_estimator_.predict(X).shape == y.shape


def test_regressor_pipeline_search_is_batched_and_equals_sequential_search(
    monkeypatch,
):
    X, y = _regression()
    # Features of very different scales, which the scaler evens out.
    X[:, 0] *= 100.0
    X[:, 1] *= 0.01
    pipe = make_pipeline(StandardScaler(), _reg())
    grid = {
        "dnnregressor__alpha": [1e-4, 1e-1],
        "dnnregressor__learning_rate_init": [0.01, 0.03],
    }
    theirs = _sequential(pipe, grid, cv=3).fit(X, y)
    rows = _counting_regressor_fits(monkeypatch)
    ours = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert ours.batched_
    _assert_folds_batched(rows, len(X))
    _assert_search_equals_sequential(ours, theirs, X)


def test_randomized_search_of_a_regressor_equals_sklearns(monkeypatch):
    X, y = _regression("multi-output")
    distributions = {
        "alpha": loguniform(1e-5, 1e-1),
        "learning_rate_init": loguniform(1e-2, 5e-2),
    }
    kwargs = dict(n_iter=4, cv=3, random_state=0)
    theirs = sklearn.model_selection.RandomizedSearchCV(
        _reg(), distributions, **kwargs
    ).fit(X, y)
    rows = _counting_regressor_fits(monkeypatch)
    ours = RandomizedSearchCV(_reg(), distributions, **kwargs).fit(X, y)
    assert ours.batched_
    _assert_folds_batched(rows, len(X))
    _assert_search_equals_sequential(ours, theirs, X)


def test_regressor_search_with_early_stopping_is_batched_and_equals_sequential(
    monkeypatch,
):
    # Each model stops on its own validation R^2, as its fit does.
    X, y = _regression()
    estimator = _reg(early_stopping=True, max_iter=60, n_iter_no_change=3)
    grid = {"alpha": [1e-4, 1e-1], "learning_rate_init": [0.01, 0.03]}
    theirs = _sequential(estimator, grid, cv=3).fit(X, y)
    rows = _counting_regressor_fits(monkeypatch)
    ours = GridSearchCV(estimator, grid, cv=3).fit(X, y)
    assert ours.batched_
    _assert_folds_batched(rows, len(X))
    assert ours.best_estimator_.validation_scores_
    _assert_search_equals_sequential(ours, theirs, X)


def test_regressor_search_with_regression_scorers_equals_sklearns():
    X, y = _regression()
    grid = {"alpha": [1e-4, 1e-1], "learning_rate_init": [0.01, 0.03]}
    scoring = ["r2", "neg_mean_absolute_error"]
    kwargs = dict(cv=3, scoring=scoring, refit="neg_mean_absolute_error")
    ours = GridSearchCV(_reg(), grid, **kwargs).fit(X, y)
    theirs = _sequential(_reg(), grid, **kwargs).fit(X, y)
    assert ours.batched_ and ours.multimetric_
    for name in scoring:
        assert_allclose(
            ours.cv_results_[f"mean_test_{name}"],
            theirs.cv_results_[f"mean_test_{name}"],
            rtol=TOL,
        )
    assert ours.best_params_ == theirs.best_params_


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_regressor_grid_over_loss_checks_the_targets_for_each_loss(capsys):
    # Negative targets: the Poisson candidates must fail as their fits do,
    # by the regressor's check, not train on the squared error candidates'
    # checked data.
    X, y = _regression(n_samples=90)
    y = y - y.mean()
    grid = {"loss": ["squared_error", "poisson"]}
    with pytest.warns(FitFailedWarning, match="3 fits failed"):
        ours = GridSearchCV(_reg(), grid, cv=3, verbose=1).fit(X, y)
    printed = capsys.readouterr().out
    assert ours.batched_
    # One batch: the squared error's three fits and its refit.
    assert printed.count("Training") == 1
    assert "Training 4 fits" in printed
    with pytest.warns(FitFailedWarning):
        theirs = _sequential(_reg(), grid, cv=3).fit(X, y)
    assert np.isnan(ours.cv_results_["mean_test_score"][1])
    assert_allclose(
        ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"]
    )


@pytest.mark.parametrize(
    "estimator, grid",
    [
        (
            MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0),
            {"alpha": [1e-4]},
        ),
        (
            TransformedTargetRegressor(_reg(), transformer=StandardScaler()),
            {"regressor__alpha": [1e-4]},
        ),
    ],
)
def test_other_regressors_fall_back_and_say_so(estimator, grid, capsys):
    X, y = _regression(n_samples=90)
    search = GridSearchCV(estimator, grid, cv=2, verbose=1).fit(X, y)
    assert not search.batched_
    assert "not a DNNClassifier or a DNNRegressor" in capsys.readouterr().out


@pytest.mark.parametrize("n_rows, batch", [([10, 7, 13], [4, 4, 5]), ([5], [5])])
def test_epoch_rows_are_each_models_batches_in_order(n_rows, batch):
    rng = np.random.RandomState(0)
    orders = [rng.permutation(n) for n in n_rows]
    layout = batch_layout(np.array(n_rows), np.array(batch))
    index = epoch_rows(orders, layout)
    _, valid = layout
    offsets = np.concatenate([[0], np.cumsum(n_rows)[:-1]])
    n_steps = max(-(-n // b) for n, b in zip(n_rows, batch, strict=True))
    assert index.shape == valid.shape == (n_steps, len(n_rows), max(batch))
    for m, (order, b) in enumerate(zip(orders, batch, strict=True)):
        for s in range(n_steps):
            expected = offsets[m] + order[s * b : (s + 1) * b]
            assert index[s, m][valid[s, m]].tolist() == expected.tolist()
            # Padding holds a real row (its share of the batch is 0).
            assert (index[s, m][~valid[s, m]] == index[0, 0, 0]).all()
        # Every row once per epoch.
        assert sorted(index[:, m][valid[:, m]]) == list(
            offsets[m] + np.arange(len(order))
        )


def _every(step, n_models):
    return np.ones(n_models, dtype=bool)


def _some(step, n_models):
    return (np.arange(n_models) + step) % 3 != 0


def _stopping(step, n_models):
    return np.arange(n_models) < max(1, n_models - step // 4)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("active", [_every, _some, _stopping])
@pytest.mark.parametrize("learning_rates", [[1e-2] * 5, [1e-3, 1e-2, 1e-3, 0.1, 1e-2]])
def test_batched_adam_equals_torch_adam_per_model(fused, active, learning_rates):
    if fused and not hasattr(torch, "_fused_adam_"):
        pytest.skip("torch has no fused Adam kernel")
    n_models, n_steps = len(learning_rates), 30
    generator = torch.Generator().manual_seed(0)
    initial = torch.randn(n_models, 11, generator=generator, dtype=torch.float64)
    grads = torch.randn(n_steps, n_models, 11, generator=generator, dtype=torch.float64)
    flat, grad = initial.clone(), torch.zeros_like(initial)
    adam = make_adam(
        flat=flat,
        grad=grad,
        learning_rates=learning_rates,
        beta_1=0.9,
        beta_2=0.99,
        eps=1e-8,
        fused=fused,
    )
    # Planned as the trainer plans them, an epoch of 10 steps at a time.
    active_steps = np.array([active(step, n_models) for step in range(n_steps)])
    plans = [
        plan
        for start in range(0, n_steps, 10)
        for plan in adam.epoch(active_steps[start : start + 10])
    ]
    params = [torch.nn.Parameter(row.clone()) for row in initial]
    optimizers = [
        torch.optim.Adam([p], lr=lr, betas=(0.9, 0.99), eps=1e-8, fused=True)
        for p, lr in zip(params, learning_rates, strict=True)
    ]
    for step, (stepping, plan) in enumerate(zip(active_steps, plans, strict=True)):
        grad.copy_(grads[step])
        adam.apply(plan)
        for m in np.flatnonzero(stepping):
            params[m].grad = grads[step, m].clone()
            optimizers[m].step()
    for m, param in enumerate(params):
        if fused and len(set(learning_rates)) > 1:
            # No two neighbours share a rate: each model's row is a tensor
            # of its own, as in torch.optim.Adam(fused=True), bit for bit.
            assert torch.equal(flat[m], param.detach())
        else:
            # One call over every model (or the hand-written update) rounds
            # some elements differently.
            assert_allclose(flat[m], param.detach(), rtol=1e-12)


@pytest.mark.parametrize(
    "momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)]
)
@pytest.mark.parametrize("active", [_every, _some, _stopping])
def test_batched_sgd_equals_torch_sgd_per_model(momentum, nesterov, active):
    learning_rates = [1e-3, 1e-2, 1e-3, 0.1, 1e-2]
    n_models, n_steps = len(learning_rates), 30
    generator = torch.Generator().manual_seed(0)
    initial = torch.randn(n_models, 11, generator=generator, dtype=torch.float64)
    grads = torch.randn(n_steps, n_models, 11, generator=generator, dtype=torch.float64)
    flat, grad = initial.clone(), torch.zeros_like(initial)
    sgd = make_sgd(
        flat=flat,
        grad=grad,
        learning_rates=learning_rates,
        momentum=momentum,
        nesterov=nesterov,
    )
    active_steps = np.array([active(step, n_models) for step in range(n_steps)])
    plans = sgd.epoch(active_steps)
    params = [torch.nn.Parameter(row.clone()) for row in initial]
    optimizers = [
        torch.optim.SGD([p], lr=lr, momentum=momentum, nesterov=nesterov)
        for p, lr in zip(params, learning_rates, strict=True)
    ]
    for step, (stepping, plan) in enumerate(zip(active_steps, plans, strict=True)):
        if step == 20:
            # A new rate for every model, as SGD's schedules set between
            # epochs; the buffers as torch's SGD keeps them.
            sgd.learning_rates.mul_(0.5)
            for optimizer in optimizers:
                optimizer.param_groups[0]["lr"] *= 0.5
        grad.copy_(grads[step])
        sgd.apply(plan)
        for m in np.flatnonzero(stepping):
            params[m].grad = grads[step, m].clone()
            optimizers[m].step()
    for m, param in enumerate(params):
        assert_allclose(flat[m], param.detach(), rtol=1e-12, atol=1e-15)
        if momentum and active_steps[:, m].any():
            buffer = optimizers[m].state[param]["momentum_buffer"]
            assert_allclose(sgd.momentum_buffer[m], buffer, rtol=1e-12)


def test_epoch_masks_drop_at_each_models_rate():
    rates = np.array([[0.0, 0.5], [0.25, 0.0], [0.5, 0.1]])
    n_rows, batch = np.array([2000, 1500, 1800]), np.array([49, 30, 45])
    layout = batch_layout(n_rows, batch)
    masks = _EpochMasks(
        layout=layout,
        batch=batch,
        widths=[7, 5],
        rates=rates,
        generators=[torch.Generator().manual_seed(k) for k in range(3)],
        dtype=torch.float64,
    )
    running = np.ones(3, dtype=bool)
    masks.draw(running)
    first = {i: mask.clone() for i, mask in masks.masks.items()}
    masks.draw(running)
    valid = torch.from_numpy(layout[1])
    for i, mask in masks.masks.items():
        assert not torch.equal(mask, first[i])
        for m, rate in enumerate(rates[:, i]):
            # (steps, units, slots), feature-major as the trainer's activations
            values = mask[:, m].transpose(1, 2)[valid[:, m]]
            kept = values != 0
            applied = min(round(rate * 65536), 65535) / 65536
            assert torch.all(values[kept] == 1.0 / (1.0 - applied))
            assert abs(1 - kept.double().mean().item() - rate) < 0.02


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_models_sharing_draws_get_the_masks_of_their_own_draws(dtype):
    # Models 0, 2, 3, 4 and 5 share a seed (a fold's candidates), each its
    # own rate, 0 included; model 4 has a smaller batch, so its bits are
    # gathered; model 1, between them, has another seed. Drawn once
    # per group and shared (seeds given), every model's masks are those of
    # its own draws (seeds None: each model draws and converts its own).
    rates = np.array(
        [[0.5, 0.1], [0.3, 0.3], [0.0, 0.2], [0.25, 0.0], [0.4, 0.4], [0.5, 0.5]]
    )
    n_rows, batch = np.full(6, 96), np.array([32, 32, 32, 32, 24, 32])
    seeds = [7, 8, 7, 7, 7, 7]
    layout = batch_layout(n_rows, batch)
    masks = {}
    for shared in (False, True):
        masks[shared] = _EpochMasks(
            layout=layout, batch=batch, widths=[5, 3], rates=rates, dtype=dtype,
            seeds=seeds if shared else None,
            generators=[torch.Generator().manual_seed(s) for s in seeds],
        )  # fmt: skip
    # Models 0, 4 (gathering its bits from a copy of model 0's) and 5 draw
    # alike; 2 and 3 drop on other layers.
    assert [list(g) for g in masks[True].groups] == [[0, 4, 5], [1], [2], [3]]
    valid = torch.from_numpy(layout[1])
    running = np.ones(6, dtype=bool)
    for _ in range(2):
        for epoch in masks.values():
            epoch.draw(running)
        for i in (0, 1):
            for m in range(6):
                # (steps, units, slots): the slots in use (padding is unused).
                mask = [
                    e.masks[i][:, m].transpose(1, 2)[valid[:, m]]
                    for e in masks.values()
                ]
                assert torch.equal(*mask), (i, m)
                assert torch.all(mask[0] == 1) == (rates[m, i] == 0)


def test_a_stopped_model_draws_no_more_masks():
    layout = batch_layout(np.array([64, 64]), np.array([32, 32]))
    masks = _EpochMasks(
        layout=layout,
        batch=np.array([32, 32]),
        widths=[4],
        rates=np.array([[0.5], [0.5]]),
        generators=[torch.Generator().manual_seed(0) for _ in range(2)],
        dtype=torch.float64,
    )
    masks.draw(np.array([True, True]))
    mask = masks.masks[0]
    assert torch.equal(mask[:, 0], mask[:, 1])
    masks.draw(np.array([True, False]))
    second = mask[:, 0].clone()
    masks.draw(np.array([True, True]))
    # Model 1 drew its second epoch's masks only now: model 0's of before.
    assert torch.equal(mask[:, 1], second)


@pytest.mark.parametrize("shared_rows", [False, True])
def test_batched_sparse_fits_equal_sequential_fits(shared_rows):
    # Each network multiplies its own CSR rows in the batch; models given the
    # same sparse X (a fold's candidates) store it once.
    X = scipy.sparse.random(200, 30, density=0.1, random_state=0, format="csr")
    sums = np.asarray(X.sum(axis=1)).ravel()
    y = (sums > np.median(sums)).astype(int)
    rows = [np.arange(0, 120), np.arange(30, 143), np.arange(5, 200, 2)]
    if shared_rows:
        rows = [rows[0]] * 3
    models = [_clf(dropout=0.2), _clf(alpha=2e-3, dropout=0.0), _clf(dropout=0.1)]
    if shared_rows:
        data = (X[rows[0]], y[rows[0]])
        prepared = [prepare_fit(m, *data) for m in models]
    else:
        prepared = [
            prepare_fit(m, X[r], y[r]) for m, r in zip(models, rows, strict=True)
        ]
    assert not train_batched(models, prepared).any()
    for model, r in zip(models, rows, strict=True):
        _assert_same_fit(model, clone(model).fit(X[r], y[r]))
