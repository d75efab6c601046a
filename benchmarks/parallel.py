"""Wall time of a small grid search with n_jobs=1 against n_jobs=2 (loky).

GridSearchCV over DNNClassifier on bench.py's W1 workload (XOR, 800
training rows, a 2-6-4-1 ReLU network, batch 32, 100 epochs): 6 dropout rates
times 5 folds, 30 fits, then the refit of the best. Three ways, alternating
run by run:

- ``n_jobs=1``: every fit in this process.
- ``n_jobs=2``, cold: the loky worker processes are started anew, and each
  imports PyTorch, as in the first parallel search of a session.
- ``n_jobs=2``, warm: the workers of the previous search are reused.

Prints the medians and their ratios to ``n_jobs=1``, and the load average
before and after (another busy process slows the parallel runs most).

Run: ``python benchmarks/parallel.py [--repeats 3]``. Tests never assert on
time; this script is where the speed-up is measured.
"""

import argparse
import os
import platform
import statistics
import time

import joblib
import numpy as np
import sklearn
import torch
from bench import _xor
from joblib.externals.loky import get_reusable_executor
from sklearn.model_selection import GridSearchCV, StratifiedKFold

import skdnn
from skdnn import DNNClassifier

RATES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def _search(n_jobs):
    clf = DNNClassifier(
        (6, 4),
        batch_size=32,
        max_iter=100,
        n_iter_no_change=np.inf,
        random_state=0,
    )
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    return GridSearchCV(clf, {"dropout": RATES}, cv=cv, n_jobs=n_jobs)


def _seconds(n_jobs, X, y):
    search = _search(n_jobs)
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start, search.cv_results_["mean_test_score"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X, _, y, _ = _xor()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"joblib.cpu_count() {joblib.cpu_count()}, python "
        f"{platform.python_version()}, torch {torch.__version__}, scikit-learn "
        f"{sklearn.__version__}, joblib {joblib.__version__}, skdnn "
        f"{skdnn.__version__}"
    )
    print(
        f"{len(RATES)} candidates x 5 folds on {len(y)} rows, medians of "
        f"{args.repeats} runs; load average before: {os.getloadavg()}"
    )
    _search(1).set_params(cv=2).fit(X, y)  # first fits of a process run slower
    times = {"n_jobs=1": [], "n_jobs=2, cold": [], "n_jobs=2, warm": []}
    for _ in range(args.repeats):
        seconds, serial = _seconds(1, X, y)
        times["n_jobs=1"].append(seconds)
        get_reusable_executor().shutdown(wait=True)
        seconds, cold = _seconds(2, X, y)
        times["n_jobs=2, cold"].append(seconds)
        seconds, warm = _seconds(2, X, y)
        times["n_jobs=2, warm"].append(seconds)
        # The same fits wherever they run: only the time may differ.
        assert np.array_equal(serial, cold) and np.array_equal(serial, warm)
    baseline = statistics.median(times["n_jobs=1"])
    for name, runs in times.items():
        median = statistics.median(runs)
        print(
            f"{name:15} {median:6.2f} s  speed-up {baseline / median:4.2f}  "
            f"runs: {', '.join(f'{t:.2f}' for t in runs)}"
        )
    workers = joblib.Parallel(n_jobs=2)(
        joblib.delayed(torch.get_num_threads)() for _ in range(2)
    )
    print(f"torch threads: here {torch.get_num_threads()}, loky workers {workers}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
