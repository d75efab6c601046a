"""skdnn.model_selection's batched successive halving, cross-validation and
curves: each returns what scikit-learn's returns (keys, shapes, and values,
up to rounding, without dropout), and a fit that fails records its
error_score as scikit-learn's does while the others go on."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn
import sklearn.model_selection as sklearn_ms
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import loguniform
from sklearn.datasets import make_friedman1
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skdnn._batched
import skdnn.model_selection
import skdnn.model_selection._batch
from skdnn import DNNClassifier, DNNRegressor
from skdnn._batched import batching_refusal, prepare_fit
from skdnn._compat import (
    _NoCallbacks,
    check_search_input,
    root_callback_context,
    routed_search_params,
)
from skdnn.model_selection import _progress

# Batched and sequential fits differ in the order of summation only (see
# test_search.py's TOL); the scores computed from them agree as closely.
TOL = 1e-9


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _xor(n_samples=240, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-1, 1, (n_samples, 2))
    return X, np.where(X[:, 0] * X[:, 1] > 0, "same", "other")


# The small, quick network every test here starts from.
_SETTINGS = dict(
    batch_size=32,
    max_iter=12,
    learning_rate_init=0.03,
    dropout=0.0,
    random_state=0,
    device="cpu",
)


def _clf(**params):
    return DNNClassifier(**{"hidden_layer_sizes": (6,), **_SETTINGS, **params})


def _reg(**params):
    return DNNRegressor(**{"hidden_layer_sizes": (8,), **_SETTINGS, **params})


def _friedman(n_samples=200):
    return make_friedman1(n_samples=n_samples, noise=0.3, random_state=0)


def _assert_same_results(ours, theirs):
    """cv_results_ or a function's dict: the same keys, and equal values
    (times aside, which differ; estimators compared by their weights)."""
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        a, b = ours[key], theirs[key]
        if "time" in key:
            assert np.shape(a) == np.shape(b)
        elif key == "estimator":
            for x, z in zip(a, b, strict=True):
                for u, v in zip(x.coefs_, z.coefs_, strict=True):
                    assert_allclose(u, v, rtol=TOL, atol=TOL)
        elif key == "indices":
            for part in ("train", "test"):
                for u, v in zip(a[part], b[part], strict=True):
                    assert_array_equal(u, v)
        elif key == "params" or np.asarray(a).dtype.kind in "OUS":
            assert list(a) == list(b), key
        else:
            assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float),
                            rtol=TOL, atol=TOL, err_msg=key)  # fmt: skip


# ------------------------------------------------------- successive halving


def _halving_searches():
    grid = {"hidden_layer_sizes": [(4,), (6,), (8, 4)], "alpha": [1e-4, 1e-2, 1.0]}
    space = {
        "alpha": loguniform(1e-5, 1.0),
        "learning_rate_init": loguniform(1e-3, 0.1),
    }
    return [
        ("HalvingGridSearchCV", _clf(), {"param_grid": grid}, _xor),
        ("HalvingRandomSearchCV", _clf(),
         {"param_distributions": space, "n_candidates": 9}, _xor),
        ("HalvingGridSearchCV", _reg(),
         {"param_grid": {"alpha": [1e-4, 1e-1, 10.0], "batch_size": [16, 64]}},
         _friedman),
        # The resource is a parameter; lbfgs candidates are fitted one by one.
        ("HalvingGridSearchCV", _clf(),
         {"param_grid": {"alpha": [1e-4, 1e-2], "solver": ["adam", "lbfgs"]},
          "resource": "max_iter", "max_resources": 24, "min_resources": 6}, _xor),
    ]  # fmt: skip


@pytest.mark.parametrize("name, estimator, settings, data", _halving_searches())
def test_halving_searches_equal_scikit_learns(name, estimator, settings, data):
    X, y = data()
    ours = getattr(skdnn.model_selection, name)(estimator, random_state=0, **settings)
    theirs = getattr(sklearn_ms, name)(estimator, random_state=0, **settings)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert ours.batched_
    for attribute in ("n_resources_", "n_candidates_", "n_iterations_",
                      "n_remaining_candidates_", "best_index_", "best_params_",
                      "min_resources_", "max_resources_"):  # fmt: skip
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert ours.best_score_ == pytest.approx(theirs.best_score_, rel=TOL)
    _assert_same_results(ours.cv_results_, theirs.cv_results_)
    # The refitted best candidates predict alike.
    assert_allclose(
        _numeric(ours.predict(X[:20])), _numeric(theirs.predict(X[:20])), rtol=TOL
    )


def _numeric(predictions):
    """Class labels as codes, a regressor's predictions as they are."""
    if predictions.dtype.kind in "OUS":
        return np.unique(predictions, return_inverse=True)[1]
    return predictions


def test_halving_search_batches_each_rung_and_says_what_it_cannot(capsys):
    X, y = _xor()
    grid = {"alpha": [1e-4, 1e-2, 1.0], "solver": ["adam", "lbfgs"]}
    search = skdnn.model_selection.HalvingGridSearchCV(
        _clf(), grid, random_state=0, verbose=1
    ).fit(X, y)
    out = capsys.readouterr().out
    # The first rung's three lbfgs candidates go one by one, and say why.
    assert "Fitting 3 candidates sequentially: a candidate has solver='lbfgs'" in out
    assert "in one batch" in out
    assert search.batched_ and len(search.n_candidates_) >= 2


@pytest.mark.parametrize(
    "name, settings",
    [
        ("HalvingGridSearchCV", {"random_state": 0}),
        ("GridSearchCV", {}),
    ],
)
def test_sparse_input_is_batched(name, settings):
    # Each network multiplies its own CSR rows (scipy's products, one per
    # network and step) inside the batch: scikit-learn's results.
    import scipy.sparse

    rng = np.random.RandomState(0)
    X = scipy.sparse.random(240, 40, density=0.1, random_state=rng, format="csr")
    y = np.where(X[:, :20].sum(axis=1).A.ravel() > X[:, 20:].sum(axis=1).A.ravel(),
                 "left", "right")  # fmt: skip
    model = _clf(early_stopping=True, max_iter=30, dropout=0.1)
    grid = {"alpha": [1e-4, 1e-2, 1.0], "learning_rate_init": [0.01, 0.03]}
    ours = getattr(skdnn.model_selection, name)(model, grid, **settings).fit(X, y)
    theirs = getattr(sklearn_ms, name)(model, grid, **settings).fit(X, y)
    assert ours.batched_
    _assert_same_results(ours.cv_results_, theirs.cv_results_)
    assert_array_equal(ours.predict(X), theirs.predict(X))


def test_halving_search_falls_back_whole_under_metadata_routing(capsys):
    X, y = _xor()
    with sklearn.config_context(enable_metadata_routing=True):
        search = skdnn.model_selection.HalvingGridSearchCV(
            _clf(), {"alpha": [1e-4, 1e-2]}, random_state=0, verbose=1
        ).fit(X, y)
    assert not search.batched_
    assert "Not batching the search: metadata routing" in capsys.readouterr().out
    assert hasattr(search, "best_estimator_")


# --------------------------------------------------- cross-validation, curves


def test_cross_validate_equals_scikit_learns_with_every_option():
    X, y = _xor()
    settings = dict(
        cv=4, scoring=["accuracy", "neg_log_loss"], return_train_score=True,
        return_estimator=True, return_indices=True,
    )  # fmt: skip
    ours = skdnn.model_selection.cross_validate(_clf(), X, y, **settings)
    theirs = sklearn_ms.cross_validate(_clf(), X, y, **settings)
    _assert_same_results(ours, theirs)
    # Each estimator is the fold's fitted model, ready to predict.
    assert ours["estimator"][0].predict(X[:3]).dtype == y.dtype


def test_cross_val_score_of_a_pipeline_regressor_equals_scikit_learns():
    X, y = _friedman()
    pipeline = make_pipeline(StandardScaler(), _reg())
    groups = np.arange(len(y)) % 5
    ours = skdnn.model_selection.cross_val_score(
        pipeline, X, y, groups=groups, cv=GroupKFold(5), scoring="r2"
    )
    theirs = sklearn_ms.cross_val_score(
        pipeline, X, y, groups=groups, cv=GroupKFold(5), scoring="r2"
    )
    assert ours.shape == (5,)
    assert_allclose(ours, theirs, rtol=TOL)


def test_validation_curve_equals_scikit_learns():
    X, y = _xor()
    settings = dict(param_name="alpha", param_range=[1e-4, 1e-2, 1.0, 5.0], cv=3)
    ours = skdnn.model_selection.validation_curve(_clf(), X, y, **settings)
    theirs = sklearn_ms.validation_curve(_clf(), X, y, **settings)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape == (4, 3)
        assert_allclose(a, b, rtol=TOL)


def test_validation_curve_over_a_pipelines_architecture():
    # Values that change the network's shape make a batch each.
    X, y = _friedman()
    pipeline = make_pipeline(StandardScaler(), _reg())
    settings = dict(
        param_name="dnnregressor__hidden_layer_sizes",
        param_range=[(4,), (8,), (8, 4)], cv=KFold(3),
    )  # fmt: skip
    ours = skdnn.model_selection.validation_curve(pipeline, X, y, **settings)
    theirs = sklearn_ms.validation_curve(pipeline, X, y, **settings)
    for a, b in zip(ours, theirs, strict=True):
        assert_allclose(a, b, rtol=TOL)


@pytest.mark.parametrize("shuffle", [False, True])
def test_learning_curve_equals_scikit_learns(shuffle):
    X, y = _xor()
    settings = dict(
        cv=3, train_sizes=[0.2, 0.5, 1.0], shuffle=shuffle, random_state=0,
        return_times=True,
    )  # fmt: skip
    ours = skdnn.model_selection.learning_curve(_clf(), X, y, **settings)
    theirs = sklearn_ms.learning_curve(_clf(), X, y, **settings)
    assert len(ours) == len(theirs) == 5
    assert_array_equal(ours[0], theirs[0])
    for a, b in zip(ours[1:3], theirs[1:3], strict=True):
        assert a.shape == (3, 3)
        assert_allclose(a, b, rtol=TOL)
    assert ours[3].shape == ours[4].shape == (3, 3)
    assert (ours[3] > 0).all()


@pytest.mark.parametrize("function", ["cross_validate", "learning_curve"])
def test_functions_batch_sample_weights_as_scikit_learn_gives_them(function):
    X, y = _xor()
    weight = np.random.RandomState(0).uniform(0.1, 3.0, len(y))
    settings = dict(cv=3, params={"sample_weight": weight})
    if function == "learning_curve":
        settings["train_sizes"] = [0.5, 1.0]
    else:
        settings["return_train_score"] = True
    ours = getattr(skdnn.model_selection, function)(_clf(), X, y, **settings)
    theirs = getattr(sklearn_ms, function)(_clf(), X, y, **settings)
    plain = getattr(skdnn.model_selection, function)(
        _clf(), X, y, **{**settings, "params": None}
    )
    if function == "learning_curve":
        for a, b in zip(ours, theirs, strict=True):
            assert_allclose(a, b, rtol=TOL)
        assert not np.allclose(ours[2], plain[2])
    else:
        _assert_same_results(ours, theirs)
        assert not np.allclose(ours["test_score"], plain["test_score"])


def test_functions_fall_back_to_scikit_learns_and_say_so(capsys):
    X, y = _xor()
    with sklearn.config_context(enable_metadata_routing=True):
        ours = skdnn.model_selection.cross_val_score(_clf(), X, y, cv=3, verbose=1)
        theirs = sklearn_ms.cross_val_score(_clf(), X, y, cv=3)
    assert_allclose(ours, theirs)
    assert "Not batching cross_validate: metadata routing" in capsys.readouterr().out
    # partial_fit on growing rows is scikit-learn's own loop.
    ours = skdnn.model_selection.learning_curve(
        _clf(), X, y, cv=3, train_sizes=[0.5, 1.0], exploit_incremental_learning=True
    )
    theirs = sklearn_ms.learning_curve(
        _clf(), X, y, cv=3, train_sizes=[0.5, 1.0], exploit_incremental_learning=True
    )
    for a, b in zip(ours, theirs, strict=True):
        assert_allclose(a, b)


def test_functions_check_their_parameters_before_any_work():
    X, y = _xor()
    with pytest.raises(ValueError, match="'cv' parameter of cross_validate"):
        skdnn.model_selection.cross_validate(_clf(), X, y, cv="five")
    with pytest.raises(ValueError, match="'param_name' parameter of validation"):
        skdnn.model_selection.validation_curve(
            _clf(), X, y, param_name=3, param_range=[1]
        )
    with pytest.raises(ValueError, match="'shuffle' parameter of learning_curve"):
        skdnn.model_selection.learning_curve(_clf(), X, y, shuffle="yes")


# ------------------------------------------------------------ per-fit errors


def _one_class_first_fold(n_samples=60):
    """Folds whose first training rows hold one class, which a classifier
    refuses: that fit fails, the other does not."""
    X, y = _xor(n_samples)
    cv = [
        (np.flatnonzero(y == "same"), np.flatnonzero(y == "other")),
        (np.arange(0, n_samples, 2), np.arange(1, n_samples, 2)),
    ]
    return X, y, cv


def test_a_failing_fit_records_error_score_as_scikit_learn_does():
    X, y, cv = _one_class_first_fold()
    with pytest.warns(FitFailedWarning, match="1 fits failed"):
        ours = skdnn.model_selection.cross_validate(_clf(), X, y, cv=cv, error_score=-1)
    with pytest.warns(FitFailedWarning, match="1 fits failed"):
        theirs = sklearn_ms.cross_validate(_clf(), X, y, cv=cv, error_score=-1)
    assert ours["test_score"][0] == -1
    _assert_same_results(ours, theirs)
    with pytest.raises(ValueError, match="class"):
        skdnn.model_selection.cross_validate(_clf(), X, y, cv=cv, error_score="raise")


def test_a_batch_that_raises_is_fitted_one_by_one(monkeypatch, capsys):
    # Which of a batch's models made it raise is unknown: each is then
    # fitted alone, and only a fit that raises on its own records its
    # error_score.
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(skdnn.model_selection._batch, "train_batched", broken)
    X, y = _xor()
    grid = {"alpha": [1e-4, 1e-2]}
    ours = skdnn.model_selection.GridSearchCV(_clf(), grid, cv=3, verbose=1).fit(X, y)
    assert "raised RuntimeError('out of memory, say'); fitting them one by one" in (
        capsys.readouterr().out
    )
    theirs = sklearn_ms.GridSearchCV(_clf(), grid, cv=3).fit(X, y)
    _assert_same_results(ours.cv_results_, theirs.cv_results_)
    assert np.isfinite(ours.cv_results_["mean_test_score"]).all()


def test_a_diverging_fit_gives_what_scikit_learns_search_gives():
    X, y = _friedman()
    # SGD at a rate of 1000 overflows within a few epochs: the batch hands
    # those fits to fit, which handles the divergence.
    grid = {"learning_rate_init": [0.01, 1e3]}
    model = _reg(solver="sgd", n_init=1)
    ours = skdnn.model_selection.GridSearchCV(model, grid, cv=3, error_score=-5.0)
    theirs = sklearn_ms.GridSearchCV(model, grid, cv=3, error_score=-5.0)
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        ours.fit(X, y)
    with warnings.catch_warnings(record=True) as theirs_warned:
        warnings.simplefilter("always")
        theirs.fit(X, y)
    _assert_same_results(ours.cv_results_, theirs.cv_results_)
    assert ours.best_params_ == {"learning_rate_init": 0.01}
    messages = sorted({str(w.message)[:60] for w in theirs_warned})
    assert any("Training diverged" in message for message in messages)
    assert sorted({str(w.message)[:60] for w in ours_warned}) == messages


# ---------------------------------------------------- scikit-learn's privates


def test_searches_run_where_scikit_learn_has_no_callback_contexts(monkeypatch):
    class Plain:
        pass

    context = root_callback_context(Plain(), 2)
    assert isinstance(context, _NoCallbacks)
    assert context.subcontext(task_name="x").call_on_fit_task_begin() is context
    assert context.call_on_fit_task_end() is None
    check_search_input(Plain(), None, None, {})  # nothing to check, no error
    # Without scikit-learn's router: groups to the splitter, the rest to fit.
    weight, groups = np.ones(3), np.arange(3)
    fit, split, score = routed_search_params(
        Plain(), {"sample_weight": weight, "groups": groups}
    )
    assert fit == {"sample_weight": weight} and score == {}
    assert split == {"groups": groups}
    # scikit-learn's router gives the weights to a scorer that takes them.
    search = skdnn.model_selection.GridSearchCV(_clf(), {"alpha": [1.0]})
    fit, split, score = routed_search_params(
        search, {"sample_weight": weight, "groups": groups}
    )
    assert fit == score == {"sample_weight": weight}

    # A halving search through the fallback: the same results.
    monkeypatch.setattr(
        skdnn.model_selection._search, "root_callback_context",
        lambda search, n: _NoCallbacks(),
    )  # fmt: skip
    X, y = _xor()
    grid = {"alpha": [1e-4, 1e-2, 1.0]}
    ours = skdnn.model_selection.HalvingGridSearchCV(_clf(), grid, random_state=0)
    theirs = sklearn_ms.HalvingGridSearchCV(_clf(), grid, random_state=0)
    _assert_same_results(ours.fit(X, y).cv_results_, theirs.fit(X, y).cv_results_)


# ------------------------------------------------------------ memory budget


def _resident_mib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads Linux's peak RSS counter"
)
def test_a_search_stays_within_its_memory_budget():
    # 24 candidates x 5 folds of 16,000 x 150 float64 rows: unchunked, the
    # batch's epoch grids alone would take 2.3 GB. Within a budget of 128 MiB,
    # chunks of about seven models are trained one after another.
    rng = np.random.RandomState(0)
    X = rng.standard_normal((20_000, 150))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    model = _clf(hidden_layer_sizes=(8,), max_iter=1, n_init=1, batch_size=256)
    grid = {"alpha": list(np.logspace(-5, 0, 24))}
    budget = 128
    search = skdnn.model_selection.GridSearchCV(model, grid, cv=5, refit=False)
    search.fit(X[:500], y[:500])  # torch's and the search's code, loaded
    spy = _Spy()
    with sklearn.config_context(working_memory=budget), spy:
        Path("/proc/self/clear_refs").write_text("5")  # resets the peak
        before = _resident_mib("VmRSS")
        search.fit(X, y)
        extra = _resident_mib("VmHWM") - before
    assert sum(spy.sizes) > 16 * budget * 2**20  # what one batch would take
    assert len(spy.chunks) >= 16
    # The budget, and the folds' rows (5 x 16,000 x 150 float64, 92 MiB),
    # which every fit of a fold reads, and the test rows' copies (23 MiB).
    assert extra < budget + 92 + 23 + 40, f"{extra:.0f} MiB"
    theirs = sklearn_ms.GridSearchCV(model, grid, cv=5, refit=False).fit(X, y)
    _assert_same_results(search.cv_results_, theirs.cv_results_)


class _Spy:
    """Records the memory estimates and chunks of the searches run under it."""

    def __enter__(self):
        self.sizes, self.chunks = [], []
        self._patch = pytest.MonkeyPatch()
        batch = skdnn.model_selection._batch
        sizes, chunks = batch.training_bytes, batch.memory_chunks

        def training_bytes(*args):
            size = sizes(*args)
            self.sizes.append(size[0] + size[1][1])
            return size

        def memory_chunks(*args):
            result = chunks(*args)
            self.chunks.extend(result)
            return result

        self._patch.setattr(batch, "training_bytes", training_bytes)
        self._patch.setattr(batch, "memory_chunks", memory_chunks)
        return self

    def __exit__(self, *exc):
        self._patch.undo()


# ----------------------------------------------------------------- progress


class _RecordingBar:
    """tqdm's interface, recording what a progress bar is told."""

    bars = []

    def __init__(self, total, desc, unit, leave):
        self.total, self.desc, self.epochs, self.postfix = total, desc, 0, None
        self.closed = False
        self.bars.append(self)

    def set_postfix(self, refresh=True, **values):
        self.postfix = values

    def update(self, n):
        self.epochs += n

    def close(self):
        self.closed = True


def test_verbose_search_shows_its_progress_through_tqdm(monkeypatch, capsys):
    import tqdm.auto  # the tests' extra installs it

    X, y = _xor()
    search = skdnn.model_selection.GridSearchCV(
        _clf(max_iter=5, n_init=1), {"alpha": [1e-4, 1e-2]}, cv=3, verbose=1,
        refit=False,
    )  # fmt: skip
    search.fit(X, y)
    assert "Batch 1 of 1" in capsys.readouterr().err  # tqdm's own bar

    monkeypatch.setattr(tqdm.auto, "tqdm", _RecordingBar)
    _RecordingBar.bars.clear()
    search.fit(X, y)
    assert "Training 6 fits (6 networks) in one batch." in capsys.readouterr().out
    (bar,) = _RecordingBar.bars
    assert (bar.desc, bar.total, bar.epochs) == ("Batch 1 of 1", 5, 5)
    assert bar.postfix == {"training": "0/6"} and bar.closed


def test_progress_without_tqdm_prints_plain_lines(monkeypatch, capsys):
    # Where tqdm is not installed, its import fails: plain lines instead.
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    progress = _progress.BatchProgress("Batch 2 of 3", 10, 8, interval=0.0)
    assert progress.bar is None
    for n_running in (10, 10, 7, 0):
        progress(n_running)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("Batch 2 of 3: epoch 3/8, 7 of 10 networks training")
    assert lines[2].endswith(" s left") and "elapsed" in lines[2]
    assert lines[3].endswith("done")
    # The time left: the mean epoch's time (4 in 3 s) times the epochs that
    # may still run (4 of 8).
    assert "at most 3.0 s left" in progress.line(3, elapsed=3.0)


def test_plain_progress_lines_are_spaced_out(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    progress = _progress.BatchProgress("Batch 1 of 1", 4, 100, interval=3600.0)
    for _ in range(99):
        progress(4)
    progress(0)
    # Within the hour, only the last line.
    assert capsys.readouterr().out.splitlines() == [
        progress.line(0, elapsed=float(progress.last - progress.start))
    ]


# ------------------------------------------------ batch only where it pays


def test_large_networks_train_one_by_one_on_the_cpu_and_say_why(monkeypatch, capsys):
    # One network's step above the measured limit per thread: the fits are
    # trained one by one (each with its restarts), with the same results.
    X, y = _xor()
    monkeypatch.setattr(skdnn._batched, "_BATCH_MAX_MACS_PER_THREAD", 100)
    grid = {"alpha": [1e-4, 1e-2]}
    ours = skdnn.model_selection.GridSearchCV(_clf(n_threads=1), grid, cv=3, verbose=1)
    ours.fit(X, y)
    printed = capsys.readouterr().out
    assert "Training 6 fits (36 networks) one by one, not batched: a network's" in (
        printed
    )
    assert "up to which batching pays on the CPU" in printed
    theirs = sklearn_ms.GridSearchCV(_clf(n_threads=1), grid, cv=3).fit(X, y)
    _assert_same_results(ours.cv_results_, theirs.cv_results_)


def test_the_batching_rule_follows_the_step_size_and_threads():
    X, y = _xor(400)
    small = _clf(hidden_layer_sizes=(32, 32), batch_size=64, n_threads=1)
    large = _clf(hidden_layer_sizes=(256, 256), batch_size=200, n_threads=1)
    fits = {m: prepare_fit(m, X, y) for m in (small, large)}
    assert batching_refusal(small, fits[small], 20) is None
    reason = batching_refusal(large, fits[large], 20)
    assert "13.3 million multiply-adds" in reason and "(1 thread)" in reason
    # Four threads take four times the limit.
    large.set_params(n_threads=4)
    assert batching_refusal(large, fits[large], 20) is None


def test_early_stopping_per_network_in_a_validation_curve():
    # Each fit draws its own validation split and stops on its own score: a
    # curve over patience stops its networks at different epochs, as
    # scikit-learn's sequential fits do.
    X, y = _friedman(300)
    model = _reg(early_stopping=True, max_iter=60, tol=1e-3)
    settings = dict(param_name="n_iter_no_change", param_range=[1, 3, 8], cv=3)
    ours = skdnn.model_selection.validation_curve(model, X, y, **settings)
    theirs = sklearn_ms.validation_curve(model, X, y, **settings)
    for a, b in zip(ours, theirs, strict=True):
        assert_allclose(a, b, rtol=TOL)
    epochs = {
        n: _reg(early_stopping=True, max_iter=60, tol=1e-3, n_iter_no_change=n)
        .fit(X, y)
        .n_iter_
        for n in (1, 8)
    }
    assert epochs[1] < epochs[8] < 60
