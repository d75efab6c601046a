"""Searches, cross-validation and out-of-core training on a Dask cluster.

A real ``distributed.LocalCluster`` of two worker processes on 127.0.0.1,
started once for the module, runs scikit-learn's joblib calls through joblib's
'dask' backend; the results must equal a run in this process, bit for bit,
since CPU fits with an int ``random_state`` are deterministic. Fits in Dask's
and loky's worker processes must not take more torch threads than their share
of the cores.
"""

import os
import sys
import warnings

import cloudpickle
import dask.array as da
import joblib
import numpy as np
import pytest
import torch
from dask.utils import key_split
from dask_ml.wrappers import Incremental
from distributed import Client, LocalCluster, get_task_stream
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from torch.overrides import TorchFunctionMode

import skdnn.model_selection
from skdnn import DNNClassifier
from skdnn.datasets import make_xor

# Functions of this module run on Dask and loky workers, where the module
# cannot be imported by name (tox imports it from its path, with
# --import-mode=importlib): cloudpickle must send them by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
try:  # joblib before 1.6 pickles for loky with a cloudpickle of its own.
    from joblib.externals import cloudpickle as joblib_cloudpickle
except ImportError:
    pass
else:
    joblib_cloudpickle.register_pickle_by_value(sys.modules[__name__])

# What a machine's environment may set to limit the threads of the workers
# it starts; tox sets the first two to 1.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@pytest.fixture(scope="module")
def client():
    # The workers start without this process's thread limits, so that the
    # thread test sees what Dask itself gives a worker, not what tox set.
    with pytest.MonkeyPatch.context() as env:
        for variable in THREAD_VARIABLES:
            env.delenv(variable, raising=False)
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        )
    with cluster, Client(cluster) as client:
        yield client


def small_classifier(**params):
    return DNNClassifier(
        hidden_layer_sizes=(8,),
        batch_size=32,
        learning_rate_init=0.03,
        max_iter=30,
        n_iter_no_change=np.inf,
        random_state=0,
        **params,
    )


def workers_used(task_stream):
    return {task["worker"] for task in task_stream.data}


def test_grid_search_on_dask_equals_local_search(client):
    X, y = make_xor(240, noise=0.1, random_state=0)
    grid = {"dropout": [0.0, 0.2, 0.4, 0.6]}
    cv = KFold(3, shuffle=True, random_state=0)
    local = GridSearchCV(small_classifier(), grid, cv=cv).fit(X, y)

    with get_task_stream(client) as tasks, joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(small_classifier(), grid, cv=cv, n_jobs=-1).fit(X, y)

    assert workers_used(tasks) == set(client.scheduler_info()["workers"])
    for split in range(3):
        key = f"split{split}_test_score"
        assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert remote.best_params_ == local.best_params_
    assert_array_equal(remote.predict(X), local.predict(X))
    assert local.best_score_ > 0.9


def test_cross_val_score_on_dask_equals_local_scores(client):
    X, y = make_xor(240, noise=0.1, random_state=1)
    clf = small_classifier(dropout=0.2)
    local = cross_val_score(clf, X, y, cv=4)

    with get_task_stream(client) as tasks, joblib.parallel_config(backend="dask"):
        remote = cross_val_score(clf, X, y, cv=4, n_jobs=-1)

    assert workers_used(tasks) == set(client.scheduler_info()["workers"])
    assert_array_equal(remote, local)
    assert local.mean() > 0.9


def test_batched_search_spreads_its_chunks_over_dask_workers(client):
    # skdnn's batched search: its batch is split into chunks, one job each,
    # each chunk trained as one batch on a worker.
    X, y = make_xor(240, noise=0.1, random_state=0)
    grid = {"dropout": [0.0, 0.2, 0.4, 0.6], "alpha": [1e-4, 1e-2]}
    cv = KFold(3, shuffle=True, random_state=0)
    local = skdnn.model_selection.GridSearchCV(small_classifier(), grid, cv=cv)
    local.fit(X, y)

    with get_task_stream(client) as tasks, joblib.parallel_config(backend="dask"):
        remote = skdnn.model_selection.GridSearchCV(
            small_classifier(), grid, cv=cv, n_jobs=-1, verbose=1
        ).fit(X, y)

    assert remote.batched_
    chunks = [task for task in tasks.data if "_train_chunk" in key_split(task["key"])]
    assert len(chunks) >= 2
    assert workers_used(tasks) == set(client.scheduler_info()["workers"])
    # Each model's numbers depend on its own data and draws alone, not on
    # which models share its batch: the same results, bit for bit.
    for key in local.cv_results_:
        if "time" not in key:
            assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert_array_equal(remote.predict(X), local.predict(X))


class ThreadCounts(TorchFunctionMode):
    """Record torch's thread count at every torch call made under it."""

    def __init__(self):
        super().__init__()
        self.counts = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.counts.add(torch.get_num_threads())
        return func(*args, **(kwargs or {}))


def threads_during_fit(hidden_layer_sizes):
    """The process a fit ran in, and the torch thread counts it ran with."""
    X, y = make_xor(256, random_state=0)
    clf = DNNClassifier(hidden_layer_sizes, batch_size=256, max_iter=1, random_state=0)
    with warnings.catch_warnings(), ThreadCounts() as record:
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return os.getpid(), record.counts


# (8,): one thread from n_threads='auto'. (256, 256) at batch 256: 17 million
# multiply-adds per step, where 'auto' keeps the worker's torch setting.
SIZES = [(8,), (256, 256)]


@pytest.mark.parametrize("hidden_layer_sizes", SIZES, ids=["small", "large"])
def test_dask_workers_fit_with_one_torch_thread(client, hidden_layer_sizes):
    # Dask pickles a task with the standard pickle when it can, which would
    # send threads_during_fit by name; a lambda makes it use cloudpickle,
    # which sends this module's functions by value.
    futures = [
        client.submit(
            lambda: threads_during_fit(hidden_layer_sizes), workers=[w], pure=False
        )
        for w in client.scheduler_info()["workers"]
    ]
    results = [future.result(timeout=120) for future in futures]
    # Two worker processes with one task thread each: one torch thread per fit
    # keeps them to a core each.
    assert [threads for _, threads in results] == [{1}, {1}]
    pids = {pid for pid, _ in results}
    assert len(pids) == 2 and os.getpid() not in pids


@pytest.mark.parametrize("hidden_layer_sizes", SIZES, ids=["small", "large"])
def test_loky_workers_share_the_cores(monkeypatch, hidden_layer_sizes):
    for variable in THREAD_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    n_jobs = 2
    results = joblib.Parallel(n_jobs=n_jobs, backend="loky")(
        joblib.delayed(threads_during_fit)(hidden_layer_sizes) for _ in range(n_jobs)
    )
    # joblib gives each loky worker cpu_count() // n_jobs threads.
    cores_each = max(joblib.cpu_count() // n_jobs, 1)
    assert all(max(threads) <= cores_each for _, threads in results), results
    assert os.getpid() not in {pid for pid, _ in results}


def xor_blocks(n_samples, block_rows, random_state):
    X, y = make_xor(n_samples, random_state=random_state)
    return (
        da.from_array(X, chunks=(block_rows, 2)),
        da.from_array(y, chunks=block_rows),
    )


def test_incremental_on_dask_arrays_equals_a_loop_over_the_blocks(client):
    X, y = xor_blocks(2_000, block_rows=250, random_state=0)
    clf = DNNClassifier((16,), learning_rate_init=0.01, random_state=0)
    n_passes = 4

    incremental = Incremental(clf, scoring="accuracy", shuffle_blocks=False)
    with get_task_stream(client) as tasks:
        for _ in range(n_passes):
            incremental.partial_fit(X, y, classes=[0, 1])

    local = DNNClassifier(**clf.get_params())
    for _ in range(n_passes):
        for block in range(X.numblocks[0]):
            X_block, y_block = X.blocks[block].compute(), y.blocks[block].compute()
            local.partial_fit(X_block, y_block, classes=[0, 1])

    # One partial_fit task per block and pass, each on a worker.
    fits = [task for task in tasks.data if key_split(task["key"]) == "fit"]
    assert len(fits) >= n_passes * X.numblocks[0]
    fitted = incremental.estimator_
    assert fitted.t_ == local.t_ == n_passes * 2_000
    for remote_weights, local_weights in zip(fitted.coefs_, local.coefs_, strict=True):
        assert_array_equal(remote_weights, local_weights)

    X_test, y_test = xor_blocks(1_000, block_rows=250, random_state=1)
    assert incremental.score(X_test, y_test) > 0.95
