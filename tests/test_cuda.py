"""Behaviour of DNNClassifier and the batched searches on a CUDA GPU.

Every test here carries the ``cuda`` marker: tests/conftest.py skips them
where ``torch.cuda.is_available()`` is False, and ``pytest -m cuda`` (as
benchmarks/gpu_check.sh runs it) selects them alone. Each would fail if the GPU
path were broken: a fit that stayed on the CPU, predictions that came back as
torch tensors, a training loop whose arithmetic differs from the CPU's beyond
rounding, a pickle that loses the device, or dropout masks that are not seeded
by ``random_state``.

The initial weights and the shuffles are drawn from the estimator's numpy
random state whatever the device (``skdnn._network.init_params`` and
``rng.permutation`` in ``skdnn._fitting.fit_stochastic``), so a fit without
dropout follows the same path on the GPU as on the CPU, up to rounding: in
float64 the two agree far more closely than the tolerances below. Dropout
masks come from a torch generator on the fit's device, and torch's CUDA and
CPU generators draw different numbers from one seed: fits with dropout are
compared only with fits on the same device.
"""

import pickle

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.model_selection import StratifiedKFold, train_test_split

from skdnn import DNNClassifier
from skdnn.model_selection import GridSearchCV

pytestmark = [
    pytest.mark.cuda,
    # Short fits on purpose: whether they converge is not what is tested.
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

# n_iter_no_change above max_iter: every fit runs every epoch, so that a
# rounding difference in the loss cannot stop a CPU fit and its CUDA twin at
# different epochs.
EPOCHS = 30
COMMON = dict(max_iter=EPOCHS, n_iter_no_change=EPOCHS + 1, random_state=0)


def blobs(n_classes=3, cluster_std=1.0, dtype=np.float64):
    X, y = make_blobs(
        n_samples=400,
        n_features=4,
        centers=n_classes,
        cluster_std=cluster_std,
        random_state=0,
    )
    return train_test_split(X.astype(dtype), y, test_size=0.25, random_state=0)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "auto"])
def test_fit_trains_on_the_gpu_and_predicts_numpy_arrays(device):
    X_train, X_test, y_train, y_test = blobs()
    clf = DNNClassifier((16,), learning_rate_init=0.01, device=device, **COMMON)
    clf.fit(X_train, y_train)

    # 'auto' picks CUDA first where there is one.
    assert clf.device_.type == "cuda"
    assert all(p.device.type == "cuda" for p in clf.module_.parameters())
    labels = clf.predict(X_test)
    proba = clf.predict_proba(X_test)
    assert isinstance(labels, np.ndarray)
    assert isinstance(proba, np.ndarray)
    assert labels.shape == y_test.shape
    assert set(labels) <= set(clf.classes_)
    assert proba.shape == (len(X_test), len(clf.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(clf.classes_[proba.argmax(axis=1)], labels)
    assert all(isinstance(W, np.ndarray) for W in clf.coefs_)
    assert clf.score(X_test, y_test) > 0.9


@pytest.mark.parametrize("n_classes", [2, 3], ids=["binary", "multiclass"])
def test_gpu_and_cpu_fits_agree_in_float64(n_classes):
    X_train, X_test, y_train, _ = blobs(n_classes, cluster_std=2.0)
    params = dict(hidden_layer_sizes=(16, 8), batch_size=32, **COMMON)
    on_gpu = DNNClassifier(device="cuda", **params).fit(X_train, y_train)
    on_cpu = DNNClassifier(device="cpu", **params).fit(X_train, y_train)

    assert on_gpu.device_.type == "cuda"
    assert on_cpu.device_.type == "cpu"
    assert on_gpu.coefs_[0].dtype == np.float64
    assert on_gpu.n_iter_ == on_cpu.n_iter_ == EPOCHS
    np.testing.assert_allclose(on_gpu.loss_curve_, on_cpu.loss_curve_, rtol=1e-6)
    for got, expected in zip(on_gpu.coefs_, on_cpu.coefs_, strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_allclose(
        on_gpu.predict_proba(X_test), on_cpu.predict_proba(X_test), atol=1e-6
    )
    # The fits trained: agreeing on the initial weights alone would not do.
    assert on_gpu.loss_curve_[-1] < 0.9 * on_gpu.loss_curve_[0]


def test_pickle_round_trip_of_a_gpu_model_keeps_its_predictions():
    X_train, X_test, y_train, _ = blobs()
    clf = DNNClassifier((16,), device="cuda", **COMMON).fit(X_train, y_train)
    restored = pickle.loads(pickle.dumps(clf))

    assert restored.device_.type == "cuda"
    assert all(p.device.type == "cuda" for p in restored.module_.parameters())
    np.testing.assert_array_equal(
        restored.predict_proba(X_test), clf.predict_proba(X_test)
    )
    np.testing.assert_array_equal(restored.predict(X_test), clf.predict(X_test))


def test_batched_search_on_the_gpu_picks_what_it_picks_on_the_cpu():
    # Overlapping classes and a grid whose candidates score differently.
    X, _, y, _ = blobs(cluster_std=3.0)
    grid = {"hidden_layer_sizes": [(4,), (16,)], "learning_rate_init": [1e-3, 3e-2]}
    cv = StratifiedKFold(3)
    searches = {
        device: GridSearchCV(
            DNNClassifier(batch_size=32, device=device, **COMMON), grid, cv=cv
        ).fit(X, y)
        for device in ("cuda", "cpu")
    }
    gpu, cpu = searches["cuda"], searches["cpu"]

    assert gpu.batched_ and cpu.batched_
    assert gpu.best_estimator_.device_.type == "cuda"
    assert gpu.best_params_ == cpu.best_params_
    # Scores are accuracies: equal, unless rounding moves a test sample
    # across the decision boundary; this allows one such sample per fold.
    one_sample = 1 / min(len(test) for _, test in cv.split(X, y))
    np.testing.assert_allclose(
        gpu.cv_results_["mean_test_score"],
        cpu.cv_results_["mean_test_score"],
        atol=one_sample,
    )
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-6)


def test_dropout_on_the_gpu_is_reproducible_with_random_state():
    X_train, X_test, y_train, _ = blobs(cluster_std=2.0)

    def fitted(**params):
        clf = DNNClassifier((32, 32), dropout=0.3, device="cuda", **COMMON)
        return clf.set_params(**params).fit(X_train, y_train).predict_proba(X_test)

    first = fitted()
    # Bit-identical is promised on the CPU only; on the GPU the same seed
    # must still give the same masks and so, up to rounding, the same fit.
    np.testing.assert_allclose(fitted(), first, rtol=0, atol=1e-8)
    # The masks are drawn and applied: another seed, or no dropout, trains
    # another network.
    assert not np.allclose(fitted(random_state=1), first, atol=1e-4)
    assert not np.allclose(fitted(dropout=0.0), first, atol=1e-4)
