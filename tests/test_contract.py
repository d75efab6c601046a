"""Behaviour tests for DNNClassifier's contract: reproducibility, global random
state, persistence, parameter validation, failed fits and scikit-learn tools."""

import copy
import pickle

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from skdnn import DNNClassifier

CONVERGENCE = "ignore::sklearn.exceptions.ConvergenceWarning"


def make_data(n_samples=60, n_features=4, n_classes=2, seed=0):
    return make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=3,
        n_redundant=0,
        n_classes=n_classes,
        random_state=seed,
    )


def assert_same_fit(a, b, X):
    """Bit-identical weights, loss curve and probabilities."""
    assert len(a.coefs_) == len(b.coefs_)
    for W_a, W_b in zip(a.coefs_, b.coefs_, strict=True):
        assert np.array_equal(W_a, W_b)
    for b_a, b_b in zip(a.intercepts_, b.intercepts_, strict=True):
        assert np.array_equal(b_a, b_b)
    assert np.array_equal(a.loss_curve_, b.loss_curve_)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))


# Each setting draws random numbers somewhere else: initial weights, shuffles
# and dropout masks (adam), shuffles alone (sgd), initial weights alone
# (lbfgs), and the validation split (early stopping).
REPRODUCIBLE_SETTINGS = {
    "adam-dropout-shuffle": dict(solver="adam", dropout=0.3, shuffle=True),
    "sgd": dict(solver="sgd", learning_rate_init=0.05, shuffle=True),
    "lbfgs": dict(solver="lbfgs"),
    "early-stopping": dict(
        solver="adam", dropout=0.2, early_stopping=True, n_iter_no_change=2
    ),
}


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "params", REPRODUCIBLE_SETTINGS.values(), ids=REPRODUCIBLE_SETTINGS.keys()
)
def test_same_int_random_state_gives_bit_identical_fits(params):
    X, y = make_data()
    fits = [
        DNNClassifier((8, 6), max_iter=8, batch_size=16, random_state=3, **params).fit(
            X, y
        )
        for _ in range(2)
    ]
    assert_same_fit(*fits, X)
    if params.get("early_stopping"):
        assert np.array_equal(fits[0].validation_scores_, fits[1].validation_scores_)


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "params", REPRODUCIBLE_SETTINGS.values(), ids=REPRODUCIBLE_SETTINGS.keys()
)
def test_different_random_state_gives_different_weights(params):
    X, y = make_data()
    a, b = (
        DNNClassifier((8, 6), max_iter=8, batch_size=16, random_state=seed, **params)
        .fit(X, y)
        .coefs_
        for seed in (0, 1)
    )
    assert not np.array_equal(a[0], b[0])


@pytest.mark.filterwarnings(CONVERGENCE)
def test_random_state_instance_gives_reproducible_fits():
    X, y = make_data()

    def fit(seed):
        return DNNClassifier(
            (8,), dropout=0.2, max_iter=5, random_state=np.random.RandomState(seed)
        ).fit(X, y)

    assert_same_fit(fit(7), fit(7), X)
    assert not np.array_equal(fit(7).coefs_[0], fit(8).coefs_[0])


# These tests are about numpy's legacy global generator, hence the noqa.
def _numpy_state_equal(a, b):
    return all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("random_state", [0, None])
@pytest.mark.parametrize(
    "params",
    [
        dict(dropout=0.3),
        dict(dropout=0.3, early_stopping=True, n_iter_no_change=2),
        dict(solver="lbfgs"),
    ],
    ids=["dropout", "early-stopping", "lbfgs"],
)
def test_fit_leaves_global_random_generators_unchanged(random_state, params):
    X, y = make_data()
    np.random.seed(123)  # noqa: NPY002
    torch.manual_seed(123)
    numpy_before = np.random.get_state()  # noqa: NPY002
    torch_before = torch.get_rng_state()
    clf = DNNClassifier((8, 6), max_iter=5, random_state=random_state, **params)
    clf.fit(X, y).predict_proba(X)
    assert _numpy_state_equal(np.random.get_state(), numpy_before)  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), torch_before)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_fit_with_int_random_state_ignores_global_seeds():
    X, y = make_data()
    fits = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)  # noqa: NPY002
        torch.manual_seed(global_seed)
        fits.append(
            DNNClassifier(
                (8, 6),
                dropout=0.3,
                early_stopping=True,
                n_iter_no_change=2,
                max_iter=5,
                random_state=0,
            ).fit(X, y)
        )
    assert_same_fit(*fits, X)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_fit_without_random_state_does_not_read_global_seeds():
    # Were the global generators the source, equal global seeds would give
    # equal networks.
    X, y = make_data()
    coefs = []
    for _ in range(2):
        np.random.seed(0)  # noqa: NPY002
        torch.manual_seed(0)
        coefs.append(DNNClassifier((8,), max_iter=2).fit(X, y).coefs_[0])
    assert not np.array_equal(*coefs)


# ---------------------------------------------------------------- persistence


def _fitted(**params):
    X, y = make_data(n_classes=3)
    params = dict(hidden_layer_sizes=(8, 6), max_iter=5, random_state=0) | params
    return DNNClassifier(**params).fit(X, y), X, y


def _joblib_round_trip(clf, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(clf, path)
    return joblib.load(path)


ROUND_TRIPS = {
    "pickle": lambda clf, tmp_path: pickle.loads(pickle.dumps(clf)),
    "joblib": _joblib_round_trip,
    "deepcopy": lambda clf, tmp_path: copy.deepcopy(clf),
}


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("round_trip", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip_gives_identical_predictions(round_trip, solver, tmp_path):
    clf, X, _ = _fitted(solver=solver)
    loaded = round_trip(clf, tmp_path)
    assert loaded is not clf
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert np.array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.get_params() == clf.get_params()


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("round_trip", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_loaded_model_continues_partial_fit_with_optimizer_state(
    round_trip, solver, tmp_path
):
    # The optimizer's moments travel with the model: a loaded copy takes the
    # same next steps as the original.
    clf, X, y = _fitted(solver=solver)
    loaded = round_trip(clf, tmp_path)
    for _ in range(2):
        clf.partial_fit(X, y)
        loaded.partial_fit(X, y)
    assert_same_fit(clf, loaded, X)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_partial_fit_steps_depend_on_optimizer_state():
    # Guards the test above: a fresh Adam optimizer would take other steps, so
    # equal results there do show that the state survived.
    clf, X, y = _fitted()
    loaded = pickle.loads(pickle.dumps(clf))
    loaded._optimizer = None
    clf.partial_fit(X, y)
    loaded.partial_fit(X, y)
    assert not np.array_equal(clf.coefs_[0], loaded.coefs_[0])


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("round_trip", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_loaded_model_continues_with_warm_start(round_trip, tmp_path):
    clf, X, y = _fitted()
    loaded = round_trip(clf, tmp_path)
    before = clf.coefs_[0].copy()
    for model in (clf, loaded):
        model.set_params(warm_start=True, max_iter=3).fit(X, y)
    assert_same_fit(clf, loaded, X)
    assert not np.array_equal(loaded.coefs_[0], before)
    assert loaded.n_iter_ == 3


@pytest.mark.filterwarnings(CONVERGENCE)
def test_clone_gives_unfitted_estimator_with_equal_params():
    clf, X, _ = _fitted(dropout=(0.1, 0.2), device="cpu", n_threads=1)
    cloned = clone(clf)
    assert cloned.get_params() == clf.get_params()
    assert not hasattr(cloned, "module_")
    assert not hasattr(cloned, "coefs_")
    assert not hasattr(cloned, "classes_")
    with pytest.raises(Exception, match="not fitted"):
        cloned.predict(X)


# ---------------------------------------------------------- parameter checks


INVALID_PARAMS = [
    (dict(dropout=1.0), "dropout", "1.0"),
    (dict(dropout=-0.1), "dropout", "-0.1"),
    (dict(hidden_layer_sizes=(4, 4), dropout=[0.2]), "dropout", "[0.2]"),
    (dict(hidden_layer_sizes=(4, 4), dropout=[0.2, 1.0]), "dropout", "[0.2, 1.0]"),
    (dict(hidden_layer_sizes=(4, 0)), "hidden_layer_sizes", "(4, 0)"),
    (dict(hidden_layer_sizes=0), "hidden_layer_sizes", "0"),
    (dict(device="tpu"), "device", "'tpu'"),
    (dict(solver="foo"), "solver", "'foo'"),
    (dict(alpha=-1), "alpha", "-1"),
    (dict(n_threads=0), "n_threads", "0"),
]


@pytest.mark.parametrize(
    "params, name, value", INVALID_PARAMS, ids=[str(p[0]) for p in INVALID_PARAMS]
)
def test_invalid_hyperparameter_error_names_parameter_and_value(params, name, value):
    X, y = make_data()
    with pytest.raises(ValueError) as excinfo:
        DNNClassifier(max_iter=2, **params).fit(X, y)
    message = str(excinfo.value)
    assert name in message
    assert value in message


def test_dropout_with_lbfgs_is_rejected():
    X, y = make_data()
    with pytest.raises(ValueError, match=r"(?i)lbfgs|l-bfgs|stochastic solver"):
        DNNClassifier((4,), solver="lbfgs", dropout=0.2, max_iter=2).fit(X, y)


# ------------------------------------------- a failed fit changes nothing


def _bad_fits(X, y):
    rng = np.random.RandomState(0)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    return {
        "nan-in-X": lambda clf: clf.fit(X_nan, y),
        "continuous-y": lambda clf: clf.fit(X, rng.normal(size=len(y))),
        "other-n-features-warm-start": lambda clf: clf.set_params(warm_start=True).fit(
            np.hstack([X, X]), y
        ),
        "other-n-features-partial-fit": lambda clf: clf.partial_fit(X[:, :2], y),
        "single-class": lambda clf: clf.fit(X, np.zeros_like(y)),
        "invalid-dropout": lambda clf: clf.set_params(dropout=1.0).fit(X, y),
        "dropout-count": lambda clf: clf.set_params(dropout=[0.1, 0.1, 0.1]).fit(X, y),
        "negative-sample-weight": lambda clf: clf.fit(
            X, y, sample_weight=-np.ones(len(y))
        ),
        "unseen-class-partial-fit": lambda clf: clf.partial_fit(X, y + 5),
        "unknown-device": lambda clf: clf.set_params(device="tpu").fit(X, y),
        # Fails late, after the checks: in the validation split of a warm start
        # that also changes the dropout rates.
        "validation-split-too-small": lambda clf: clf.set_params(
            warm_start=True,
            early_stopping=True,
            validation_fraction=0.01,
            dropout=0.5,
        ).fit(X, y),
    }


BAD_FIT_NAMES = list(_bad_fits(np.zeros((4, 4)), np.zeros(4)))


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("bad_fit", BAD_FIT_NAMES)
def test_failed_fit_leaves_fitted_model_unchanged(bad_fit):
    X, y = make_data()
    clf = DNNClassifier((5, 3), max_iter=5, random_state=0).fit(X, y)
    params = clf.get_params()
    state = pickle.dumps(clf)
    keys = set(clf.__dict__)
    n_features = clf.n_features_in_
    classes = clf.classes_.copy()
    coefs = [W.copy() for W in clf.coefs_]
    intercepts = [b.copy() for b in clf.intercepts_]
    loss_curve = list(clf.loss_curve_)
    n_iter, t = clf.n_iter_, clf.t_
    proba = clf.predict_proba(X)

    with pytest.raises(ValueError):
        _bad_fits(X, y)[bad_fit](clf)

    assert set(clf.__dict__) == keys
    assert clf.n_features_in_ == n_features
    assert np.array_equal(clf.classes_, classes)
    for W, W_before in zip(clf.coefs_, coefs, strict=True):
        assert np.array_equal(W, W_before)
    for b, b_before in zip(clf.intercepts_, intercepts, strict=True):
        assert np.array_equal(b, b_before)
    assert clf.loss_curve_ == loss_curve
    assert (clf.n_iter_, clf.t_) == (n_iter, t)
    assert np.array_equal(clf.predict_proba(X), proba)
    assert np.array_equal(clf.predict(X), classes[proba.argmax(axis=1)])
    assert clf.module_.dropout == (0.0, 0.0)
    assert not clf.module_.training
    # Everything else, the optimizer state included: set_params is the
    # caller's change, not the fit's, so it is undone first.
    assert pickle.dumps(clf.set_params(**params)) == state


# ------------------------------------------------- scikit-learn integration


@pytest.mark.filterwarnings(CONVERGENCE)
def test_pipeline_with_scaler():
    X, y = make_data(n_samples=90)
    pipe = make_pipeline(
        StandardScaler(),
        DNNClassifier((8,), learning_rate_init=0.03, max_iter=50, random_state=0),
    )
    pipe.fit(X, y)
    assert isinstance(pipe, Pipeline)
    assert pipe.predict(X).shape == y.shape
    assert set(pipe.predict(X)) <= set(y)
    assert pipe.predict_proba(X).shape == (len(y), 2)
    assert pipe.score(X, y) > 0.7


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("labels", [None, np.array(["cat", "dog", "eel"])])
def test_grid_search_over_dropout_in_pipeline(labels):
    X, y = make_data(n_samples=90, n_classes=3)
    if labels is not None:
        y = labels[y]
    pipe = make_pipeline(
        StandardScaler(), DNNClassifier((8,), max_iter=20, random_state=0)
    )
    grid = {"dnnclassifier__dropout": [0.0, 0.3]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert search.best_params_["dnnclassifier__dropout"] in (0.0, 0.3)
    assert len(search.cv_results_["mean_test_score"]) == 2
    predicted = search.predict(X)
    assert predicted.dtype == y.dtype
    assert set(predicted) <= set(y)
    assert np.array_equal(search.classes_, np.unique(y))


@pytest.mark.filterwarnings(CONVERGENCE)
def test_cross_val_score_gives_three_scores():
    X, y = make_data(n_samples=90)
    scores = cross_val_score(
        DNNClassifier((8,), max_iter=20, random_state=0), X, y, cv=3
    )
    assert scores.shape == (3,)
    assert np.all((scores >= 0) & (scores <= 1))


# --------------------------------------------------------- the tutorial


@pytest.mark.filterwarnings(CONVERGENCE)
def test_tutorial_xor_median_accuracy():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(1000, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=42)
    accuracies = [
        DNNClassifier(
            hidden_layer_sizes=(6, 4),
            activation="relu",
            solver="adam",
            batch_size=32,
            max_iter=100,
            random_state=seed,
        )
        .fit(X_train, y_train)
        .score(X_test, y_test)
        for seed in range(5)
    ]
    assert np.median(accuracies) >= 0.97, accuracies
