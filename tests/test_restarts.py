"""n_init: a fit's networks trained from several initial weights as one batch."""

import contextlib
import io
import warnings

import numpy as np
import pytest
import scipy.sparse
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV as SklearnGridSearchCV
from sklearn.model_selection import train_test_split

from skdnn import DNNClassifier
from skdnn._batched import keep_best, prepare_fit, train_restarts
from skdnn._restarts import n_restarts
from skdnn.model_selection import GridSearchCV

CONVERGENCE = "ignore::sklearn.exceptions.ConvergenceWarning"
# The stacked and the single network's fits differ in the order of
# summation only (see test_search.py).
TOL = 1e-9


def _xor(n_samples=200, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, (n_samples, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def _clf(**params):
    settings = dict(
        hidden_layer_sizes=(6, 4), batch_size=32, max_iter=15,
        learning_rate_init=0.03, random_state=0, device="cpu",
    )  # fmt: skip
    return DNNClassifier(**{**settings, **params})


def _n_networks(clf, X, y):
    return 1 + len(prepare_fit(clf, X, y).restarts)


@pytest.mark.parametrize(
    "params, expected",
    [
        (dict(), 6),
        (dict(solver="sgd"), 6),
        (dict(hidden_layer_sizes=(31, 8)), 6),
        (dict(hidden_layer_sizes=(32, 8)), 1),
        (dict(hidden_layer_sizes=()), 1),
        (dict(solver="lbfgs"), 1),
        (dict(n_init=1), 1),
        (dict(hidden_layer_sizes=(100,), n_init=3), 3),
    ],
)
def test_auto_restarts_narrow_networks_only(params, expected):
    X, y = _xor()
    assert _n_networks(_clf(**params), X, y) == expected


def test_auto_trains_one_network_on_sparse_input_and_in_partial_fit():
    X, y = _xor()
    assert _n_networks(_clf(), scipy.sparse.csr_matrix(X), y) == 1
    clf = _clf()
    fit = clf._checked_input(X, y, None, True, np.array([0, 1]))
    assert n_restarts(clf, fit) == 1


def test_lbfgs_with_several_starts_is_refused_before_any_work():
    X, y = _xor()
    clf = _clf(solver="lbfgs", n_init=3)
    with pytest.raises(ValueError, match=r"n_init=3 needs a stochastic solver"):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "params", [dict(), dict(dropout=0.2), dict(solver="sgd", dropout=(0.3, 0.0))]
)
def test_first_restart_is_the_fit_of_one_network(params):
    X, y = _xor()
    one = _clf(n_init=1, **params).fit(X, y)
    clf = _clf(n_init=4, **params)
    fit = prepare_fit(clf, X, y)
    twins = [twin for twin, _ in fit.restarts]
    run = train_restarts(clf, fit)
    assert_allclose(run.progress.curve(0), one.loss_curve_, rtol=TOL)
    # Each restart starts from its own weights, and trains.
    starts = [clf.coefs_[0], *(twin.coefs_[0] for twin in twins)]
    for a in range(len(starts)):
        for b in range(a):
            assert not np.allclose(starts[a], starts[b])
    finals = [run.progress.curve(j)[-1] for j in range(4)]
    kept = keep_best(clf, run, 0)
    assert clf.loss_ == min(finals) == finals[kept]
    assert clf.loss_ <= one.loss_ * (1 + TOL)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_the_fit_keeps_the_network_of_lowest_loss_and_is_reproducible():
    X, y = _xor()
    a, b = _clf(n_init=5).fit(X, y), _clf(n_init=5).fit(X, y)
    for W_a, W_b in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_,
                        strict=True):  # fmt: skip
        assert_array_equal(W_a, W_b)
    assert a.loss_ == a.loss_curve_[-1]
    single = [_clf(n_init=1).fit(X, y).loss_]
    assert a.loss_ <= min(single) * (1 + TOL)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_with_early_stopping_the_best_validation_score_is_kept():
    X, y = _xor(300)
    clf = _clf(n_init=4, early_stopping=True, max_iter=20)
    fit = prepare_fit(clf, X, y)
    run = train_restarts(clf, fit)
    best = run.progress.best_score.copy()
    keep_best(clf, run, 0)
    assert clf.best_validation_score_ == best.max()
    # The restarts do not all score alike: the choice is a real one.
    assert best.min() < best.max()


def test_restarts_rescue_the_tutorials_stuck_random_state():
    # The tutorial's XOR and network; random_state=2's initial weights leave
    # one network stuck on every draw of the data.
    rng = np.random.default_rng(1000)
    X = rng.uniform(-1, 1, size=(1000, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    tutorial = dict(
        hidden_layer_sizes=(6, 4), activation="relu", solver="adam",
        learning_rate_init=1e-3, batch_size=32, max_iter=100, alpha=0.0,
        random_state=2,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = DNNClassifier(**tutorial, n_init=1).fit(X_train, y_train)
        default = DNNClassifier(**tutorial).fit(X_train, y_train)
    assert one.score(X_test, y_test) < 0.8
    assert default.score(X_test, y_test) > 0.95


class _CtrlCAtLine(io.StringIO):
    """A stdout that raises KeyboardInterrupt, once, as a verbose fit prints
    its epochs' line ``n``."""

    def __init__(self, n):
        super().__init__()
        self.n = n
        self.lines = 0

    def write(self, text):
        if text.startswith("Restart ") and "Iteration" in text:
            self.lines += 1
            if self.lines == self.n:
                raise KeyboardInterrupt
        return super().write(text)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_ctrl_c_keeps_the_best_network_of_the_complete_epochs():
    X, y = _xor()
    interrupted = _clf(n_init=3, max_iter=30, verbose=True)
    # Three networks print a line each once an epoch is recorded: line 10
    # is the first network's after epoch 4.
    with contextlib.redirect_stdout(_CtrlCAtLine(10)):
        with pytest.warns(UserWarning, match="interrupted by user after 4 "):
            interrupted.fit(X, y)
    four = _clf(n_init=3, max_iter=4).fit(X, y)
    assert interrupted.n_iter_ == 4
    assert interrupted.loss_curve_ == four.loss_curve_
    for W_a, W_b in zip(interrupted.coefs_, four.coefs_, strict=True):
        assert_array_equal(W_a, W_b)
    assert np.isfinite(interrupted.predict_proba(X)).all()


@pytest.mark.filterwarnings(CONVERGENCE)
def test_when_every_restart_diverges_one_network_trains_as_fit_does():
    X, y = _xor()
    params = dict(solver="sgd", learning_rate_init=1e8, momentum=0.0, max_iter=5)
    with pytest.warns(ConvergenceWarning, match="Training diverged") as many:
        restarts = _clf(n_init=3, **params).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="Training diverged") as single:
        one = _clf(n_init=1, **params).fit(X, y)
    assert [str(w.message) for w in many] == [str(w.message) for w in single]
    for W_a, W_b in zip(restarts.coefs_, one.coefs_, strict=True):
        assert_array_equal(W_a, W_b)
    assert restarts.loss_curve_ == one.loss_curve_


@pytest.mark.filterwarnings(CONVERGENCE)
def test_verbose_prints_each_restarts_epochs_and_the_kept_one(capsys):
    X, y = _xor()
    clf = _clf(n_init=3, max_iter=4, n_iter_no_change=100, verbose=True).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 * 4 + 1
    assert sum(line.startswith("Restart 2: Iteration") for line in lines) == 4
    assert lines[-1].startswith("Kept restart ") and lines[-1].endswith(" of 3.")
    assert clf.n_iter_ == 4


@pytest.mark.filterwarnings(CONVERGENCE)
def test_a_batched_search_over_n_init_equals_the_sequential_one():
    X, y = _xor(240)
    grid = {"n_init": [1, 3], "learning_rate_init": [0.01, 0.03]}
    batched = GridSearchCV(_clf(), grid, cv=3).fit(X, y)
    sequential = SklearnGridSearchCV(_clf(), grid, cv=3).fit(X, y)
    assert_allclose(
        batched.cv_results_["mean_test_score"],
        sequential.cv_results_["mean_test_score"],
        atol=1e-12,
    )
    assert_allclose(
        batched.best_estimator_.loss_curve_,
        sequential.best_estimator_.loss_curve_,
        rtol=TOL,
    )
