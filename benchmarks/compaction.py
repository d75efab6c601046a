"""A batched early-stopping search, with and without training its running models alone.

In a batched search whose models stop at different epochs, the engine's
epoch loop trains the running models alone once at most half of its batch
still runs (``skdnn._engine.epochs._COMPACT_FRACTION``; 0 turns it off).
This times the same search both ways in one process, alternating, checks
that both give the same ``cv_results_``, and prints the medians and the
median paired ratio: a 3 x 3 grid over ``alpha`` and ``learning_rate_init``
with ``early_stopping=True``, 3 folds of 2,000 x 20 rows, (64, 64) units.

Run: ``python benchmarks/compaction.py [--repeats N]``.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold

import skdnn._engine.epochs as epochs
from skdnn import DNNClassifier
from skdnn.model_selection import GridSearchCV

GRID = {"alpha": [1e-5, 1e-3, 1e-1], "learning_rate_init": [1e-3, 3e-3, 1e-2]}


def _search(X, y, fraction):
    """Seconds of one search with this compaction fraction, and its scores."""
    epochs._COMPACT_FRACTION = fraction
    clf = DNNClassifier(
        (64, 64), early_stopping=True, max_iter=200, n_iter_no_change=5,
        random_state=0,
    )  # fmt: skip
    search = GridSearchCV(clf, GRID, cv=StratifiedKFold(3), refit=False)
    start = time.perf_counter()
    search.fit(X, y)
    seconds = time.perf_counter() - start
    if not search.batched_:
        raise RuntimeError("the search was not batched")
    return seconds, search.cv_results_["mean_test_score"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = make_classification(2000, 20, n_informative=10, random_state=0)
    default = epochs._COMPACT_FRACTION
    _search(X, y, default)  # untimed: one-time costs
    times = {default: [], 0.0: []}
    ratios = []
    for i in range(args.repeats):
        order = (default, 0.0) if i % 2 == 0 else (0.0, default)
        results = {fraction: _search(X, y, fraction) for fraction in order}
        np.testing.assert_allclose(results[default][1], results[0.0][1])
        for fraction, (seconds, _) in results.items():
            times[fraction].append(seconds)
        ratios.append(results[default][0] / results[0.0][0])
    print(
        f"running models alone: median {statistics.median(times[default]):.3f} s; "
        f"the whole batch: {statistics.median(times[0.0]):.3f} s; median paired "
        f"ratio {statistics.median(ratios):.3f} over {args.repeats} pairs"
    )


if __name__ == "__main__":
    main()
