"""Behaviour tests for device handling and torch threads.

Accelerators are simulated by patching skdnn._device's availability checks, so
these tests give the same answers on machines with and without a GPU and never
touch real CUDA or MPS.
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification
from threadpoolctl import threadpool_info, threadpool_limits

import skdnn._device as device_module
from skdnn import DNNClassifier
from skdnn._device import blas_threads, n_threads_for, resolve_device

CONVERGENCE = "ignore::sklearn.exceptions.ConvergenceWarning"


def make_data(n_samples=60, n_features=4):
    return make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=3,
        n_redundant=0,
        random_state=0,
    )


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(device_module, "_cuda_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


# ------------------------------------------------- loading without the GPU


@pytest.mark.filterwarnings(CONVERGENCE)
def test_model_fitted_on_cuda_loads_on_cpu_with_warning(no_accelerator):
    X, y = make_data()
    clf = DNNClassifier((8, 6), max_iter=5, random_state=0, device="cpu").fit(X, y)
    proba = clf.predict_proba(X)
    clf.device_ = torch.device("cuda")  # as if fitted on a GPU server
    saved = pickle.dumps(clf)

    with pytest.warns(UserWarning, match=r"(?s)(?=.*cuda)(?=.*CPU)"):
        loaded = pickle.loads(saved)

    assert loaded.device_ == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in loaded.module_.parameters())
    assert np.array_equal(loaded.predict_proba(X), proba)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_model_fitted_on_cpu_loads_without_warning():
    X, y = make_data()
    clf = DNNClassifier((8, 6), max_iter=5, random_state=0, device="cpu").fit(X, y)
    saved = pickle.dumps(clf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = pickle.loads(saved)
    assert loaded.device_ == torch.device("cpu")
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))


# -------------------------------------------------------- choosing a device


@pytest.mark.parametrize(
    "device, pattern",
    [
        ("cuda", r"(?s)(?=.*'cuda')(?=.*CUDA is not available)"),
        ("cuda:0", r"(?s)(?=.*'cuda:0')(?=.*CUDA is not available)"),
        (torch.device("cuda"), r"(?s)(?=.*'cuda')(?=.*CUDA is not available)"),
        ("mps", r"(?s)(?=.*'mps')(?=.*MPS is not available)"),
    ],
    ids=["cuda", "cuda:0", "torch.device-cuda", "mps"],
)
def test_unavailable_accelerator_raises_clear_error_at_fit(
    device, pattern, no_accelerator
):
    X, y = make_data()
    clf = DNNClassifier((4,), max_iter=2, device=device)
    with pytest.raises(ValueError, match=pattern):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")


@pytest.mark.parametrize(
    "device", ["tpu", "gpu", "cuda:one", "cpu:", "cpu\n", "cuda:0\n"]
)
def test_unknown_device_string_raises_value_error(device):
    X, y = make_data()
    with pytest.raises(ValueError) as excinfo:
        DNNClassifier((4,), max_iter=2, device=device).fit(X, y)
    message = str(excinfo.value)
    assert "device" in message
    assert repr(device) in message


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "device", ["cpu", torch.device("cpu"), "auto"], ids=["cpu", "torch.device", "auto"]
)
def test_fit_on_cpu(device, no_accelerator):
    X, y = make_data()
    clf = DNNClassifier((4,), max_iter=2, device=device).fit(X, y)
    assert clf.device_ == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in clf.module_.parameters())


@pytest.mark.parametrize(
    "cuda, mps, expected",
    [(True, False, "cuda"), (True, True, "cuda"), (False, True, "mps")],
)
def test_auto_prefers_cuda_then_mps(cuda, mps, expected, monkeypatch):
    monkeypatch.setattr(device_module, "_cuda_available", lambda: cuda)
    monkeypatch.setattr(device_module, "_mps_available", lambda: mps)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("auto") == torch.device(expected)


def test_auto_without_accelerator_is_cpu(no_accelerator):
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_index_is_checked_against_device_count(monkeypatch):
    monkeypatch.setattr(device_module, "_cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ValueError, match="'cuda:1'"):
        resolve_device("cuda:1")


# ------------------------------------------------------------------ threads


@pytest.mark.parametrize(
    "n_threads, device, macs_per_step, expected",
    [
        ("auto", "cpu", 1_000, 1),
        ("auto", "cpu", 10**9, None),
        (3, "cpu", 1_000, 3),
        (3, "cpu", 10**9, 3),
        (None, "cpu", 1_000, None),
        ("auto", "cuda", 1_000, None),
        (3, "cuda", 1_000, None),
    ],
)
def test_n_threads_for(n_threads, device, macs_per_step, expected):
    result = n_threads_for(
        n_threads, device=torch.device(device), macs_per_step=macs_per_step
    )
    assert result == expected


@pytest.fixture
def two_threads_recorded(monkeypatch):
    """Start from two torch threads; record every later set_num_threads call."""
    previous = torch.get_num_threads()
    set_num_threads = torch.set_num_threads
    set_num_threads(2)
    calls = []

    def record(n):
        calls.append(n)
        set_num_threads(n)

    monkeypatch.setattr(torch, "set_num_threads", record)
    yield calls
    set_num_threads(previous)


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("n_threads", [1, "auto"])
def test_small_network_fits_with_one_thread_then_restores_count(
    n_threads, solver, two_threads_recorded
):
    X, y = make_data()
    DNNClassifier((4,), solver=solver, max_iter=3, n_threads=n_threads).fit(X, y)
    assert two_threads_recorded == [1, 2]
    assert torch.get_num_threads() == 2


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_n_threads_none_leaves_torch_threads_alone(solver, two_threads_recorded):
    X, y = make_data()
    DNNClassifier((4,), solver=solver, max_iter=3, n_threads=None).fit(X, y)
    assert two_threads_recorded == []
    assert torch.get_num_threads() == 2


@pytest.mark.filterwarnings(CONVERGENCE)
def test_large_network_keeps_torch_threads(two_threads_recorded):
    X, y = make_data(n_samples=200, n_features=20)
    DNNClassifier((300, 300), max_iter=1).fit(X, y)
    assert two_threads_recorded == []
    assert torch.get_num_threads() == 2


def _blas_counts():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_blas_limits_of_overlapping_blocks_restore_the_counts_from_before():
    # Blocks in several Python threads overlap in any order; the BLAS limit
    # is process-wide. Here the first block ends while the second runs.
    with threadpool_limits(3, user_api="blas"):
        first, second = blas_threads(2), blas_threads(1)
        first.__enter__()
        assert set(_blas_counts()) == {2}
        second.__enter__()  # the smallest limit holds while both run
        assert set(_blas_counts()) == {1}
        first.__exit__(None, None, None)
        assert set(_blas_counts()) == {1}
        second.__exit__(None, None, None)
        assert set(_blas_counts()) == {3}
        # A larger limit ending last: the smaller one holds until it ends.
        first, second = blas_threads(1), blas_threads(2)
        first.__enter__()
        second.__enter__()
        assert set(_blas_counts()) == {1}
        first.__exit__(None, None, None)
        assert set(_blas_counts()) == {2}
        second.__exit__(None, None, None)
        assert set(_blas_counts()) == {3}
