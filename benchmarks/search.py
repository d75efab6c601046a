"""Searches and curves batched by skdnn against scikit-learn's sequential ones.

Each workload runs every contender once untimed (torch's and the BLAS
libraries' first calls at these shapes, and joblib's worker processes, are
paid there; W5's and W6's first runs stop after 2 epochs), then the
contenders alternately, run by run, so that a change in machine load hits
all; it prints the median times over the repeats, their
ratios to the batched contender (the first), and how far the batched results
are from scikit-learn's.

- W4, a grid search over dropout. The tutorial's XOR (800 training rows), a
  2-6-4-1 ReLU network, batch 32, 100 epochs, 5-fold cross-validation with
  refit (W1 of benchmarks/bench.py). Contenders, on the same folds: skdnn's
  GridSearchCV over DNNClassifier, dropout in [0, 0.1, ..., 0.5], the 30 fits
  trained as one batched computation; scikit-learn's GridSearchCV over
  DNNClassifier on the same grid, 30 sequential fits; scikit-learn's
  GridSearchCV over MLPClassifier with 6 alpha values. Targets: at most 0.25
  of the MLPClassifier search, at least 10x faster than the sequential
  DNNClassifier search, mean test scores within 0.05 of it. Each
  DNNClassifier fit trains one network (``n_init=1``), as MLPClassifier's
  does; ``--n-init auto`` times the default instead, where each fit of this
  narrow network trains six restarts and keeps the best.
- W5, a realistic randomized search: make_classification(n_samples=5000,
  n_features=20, random_state=0), 24 candidates drawn (random_state=0) over
  dropout (uniform on 0..0.5), alpha (log-uniform on 1e-5..1e-1),
  learning_rate_init (log-uniform on 1e-4..1e-2) and hidden_layer_sizes in
  (64,), (64, 64) and (128, 64), 3-fold cross-validation with refit, of
  DNNClassifier(early_stopping=True, max_iter=50, random_state=0, n_init=1,
  device="cpu"), so every fit stops on its own validation score. Contenders,
  on the same candidates and folds: skdnn's RandomizedSearchCV (batched), and
  scikit-learn's with n_jobs=1 and with n_jobs=2. Targets: at least 6x faster
  than n_jobs=1 and faster than n_jobs=2, the same best_params_, mean test
  scores within 0.01 of n_jobs=1's.
- W6, a validation curve over dropout in np.linspace(0, 0.5, 6), 5-fold, on
  W2's digits network of benchmarks/bench.py (its 1,347 training rows,
  64-128-64-10, batch 64, 50 epochs, one network a fit): skdnn's
  validation_curve (batched) against scikit-learn's (sequential). Target: at
  least 4x faster; also prints the largest difference of test scores.

The medians, with the run's date, repeats and score differences, are merged
into ``--json`` (default benchmarks/search.json; the workloads not run keep
their earlier numbers), which is then written as a table into ``--rst``
(default benchmarks/search.rst) and drawn by benchmarks/plot_search.py.

Run: ``python benchmarks/search.py [--repeats 5] [--only W4 W5 W6]
[--n-init auto]``.
"""

import argparse
import datetime
import json
import os
import statistics
import time
import warnings

import numpy as np
import sklearn.model_selection
import torch
from bench import WORKLOADS, _dnn, describe_machine, list_table_head
from scipy.stats import loguniform, uniform
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier

from skdnn import DNNClassifier
from skdnn.model_selection import GridSearchCV, RandomizedSearchCV, validation_curve

HERE = os.path.dirname(os.path.abspath(__file__))

# W4 is W1's data and network, from benchmarks/bench.py.
W1 = WORKLOADS["W1"]
EPOCHS = W1["epochs"]
DROPOUT = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
ALPHA = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0]

W5_SPACE = {
    "dropout": uniform(0, 0.5),
    "alpha": loguniform(1e-5, 1e-1),
    "learning_rate_init": loguniform(1e-4, 1e-2),
    "hidden_layer_sizes": [(64,), (64, 64), (128, 64)],
}
W5_MAX_ITER = 50
# The epochs of the untimed first runs of W5 and W6.
WARM_UP_EPOCHS = 2

W6_RANGE = np.linspace(0, 0.5, 6)


# Set from --n-init.
N_INIT = [1]


def _network(estimator, **params):
    # n_iter_no_change above the epoch budget: every fit runs every epoch.
    return estimator(
        W1["hidden"],
        batch_size=W1["batch"],
        max_iter=EPOCHS,
        n_iter_no_change=EPOCHS + 1,
        random_state=0,
        **params,
    )


def _w4_dnn():
    return _network(DNNClassifier, n_init=N_INIT[0])


def _w4_mlp():
    return _network(MLPClassifier)


W4_SEARCHES = {
    "skdnn batched, dropout": lambda cv: GridSearchCV(
        _w4_dnn(), {"dropout": DROPOUT}, cv=cv
    ),
    "sklearn sequential, DNNClassifier dropout": lambda cv: (
        sklearn.model_selection.GridSearchCV(_w4_dnn(), {"dropout": DROPOUT}, cv=cv)
    ),
    "sklearn sequential, MLPClassifier alpha": lambda cv: (
        sklearn.model_selection.GridSearchCV(_w4_mlp(), {"alpha": ALPHA}, cv=cv)
    ),
}


def _w5_data():
    return make_classification(n_samples=5000, n_features=20, random_state=0)


def _w5_estimator(estimator=DNNClassifier, max_iter=W5_MAX_ITER, random_state=0):
    # ``estimator``: another copy of the class, as in bench._dnn.
    return estimator(
        early_stopping=True,
        max_iter=max_iter,
        random_state=random_state,
        n_init=1,
        device="cpu",
    )


def _w5_searcher(search, estimator, **kwargs):
    return search(estimator, W5_SPACE, n_iter=24, cv=3, random_state=0, **kwargs)


def _w5_search(search, **kwargs):
    def make(max_iter):
        return _w5_searcher(search, _w5_estimator(max_iter=max_iter), **kwargs)

    return make


W5_SEARCHES = {
    "skdnn batched": _w5_search(RandomizedSearchCV),
    "sklearn, n_jobs=1": _w5_search(
        sklearn.model_selection.RandomizedSearchCV, n_jobs=1
    ),
    "sklearn, n_jobs=2": _w5_search(
        sklearn.model_selection.RandomizedSearchCV, n_jobs=2
    ),
}

W6_CURVES = {
    "skdnn batched": validation_curve,
    "sklearn sequential": sklearn.model_selection.validation_curve,
}


def _measure(contenders, repeats, *, warm_ups=None, describe=None):
    """Median seconds of each contender and its last result.

    ``contenders`` maps names to functions of no argument that do the timed
    work and return its result; ``warm_ups``, to the untimed first runs
    (default: the contenders themselves); ``describe``, called on each
    result, says what to print after its time.
    """
    for run in (warm_ups or contenders).values():
        run()
    times = {name: [] for name in contenders}
    last = {}
    for _ in range(repeats):
        for name, run in contenders.items():
            start = time.perf_counter()
            last[name] = run()
            times[name].append(time.perf_counter() - start)
            said = f", {describe(last[name])}" if describe else ""
            print(f"{name}: {times[name][-1]:.2f} s{said}", flush=True)
    return {name: statistics.median(t) for name, t in times.items()}, last


def _print_medians(medians):
    batched = next(iter(medians.values()))
    print()
    for name, seconds in medians.items():
        print(f"{name:45s} median {seconds:7.3f} s  ({seconds / batched:5.1f}x)")


def run_w4(repeats):
    X_train, X_test, y_train, y_test = W1["data"]()
    cv = StratifiedKFold(5)
    contenders = {
        name: lambda make=make: make(cv).fit(X_train, y_train)
        for name, make in W4_SEARCHES.items()
    }
    medians, searches = _measure(
        contenders,
        repeats,
        describe=lambda s: (
            f"best {s.best_params_}, test accuracy {s.score(X_test, y_test):.3f}"
        ),
    )
    _print_medians(medians)
    batched, sequential, mlp = medians.values()
    print(f"batched / MLPClassifier search: {batched / mlp:.3f} (target <= 0.25)")
    print(f"sequential / batched:           {sequential / batched:.1f}x (target >= 10)")
    names = list(W4_SEARCHES)
    difference = (
        searches[names[0]].cv_results_["mean_test_score"]
        - searches[names[1]].cv_results_["mean_test_score"]
    )
    print(
        "mean test scores, batched - sequential, per dropout value: "
        + ", ".join(f"{d}: {s:+.4f}" for d, s in zip(DROPOUT, difference, strict=True))
    )
    gap = float(np.abs(difference).max())
    print(f"largest |difference|: {gap:.4f} (target <= 0.05)")
    return {"seconds": medians, "n_init": N_INIT[0], "max_abs_score_difference": gap}


def run_w5(repeats):
    X, y = _w5_data()
    medians, searches = _measure(
        {
            name: lambda make=make: make(W5_MAX_ITER).fit(X, y)
            for name, make in W5_SEARCHES.items()
        },
        repeats,
        warm_ups={
            name: lambda make=make: make(WARM_UP_EPOCHS).fit(X, y)
            for name, make in W5_SEARCHES.items()
        },
        describe=lambda s: (
            f"best {_rounded(s.best_params_)}, best score {s.best_score_:.4f}"
        ),
    )
    _print_medians(medians)
    batched, one_job, two_jobs = medians.values()
    print(f"n_jobs=1 / batched: {one_job / batched:.1f}x (target >= 6)")
    print(f"n_jobs=2 / batched: {two_jobs / batched:.1f}x (target > 1)")
    first, *others = searches.values()
    print(f"batched search reported batched_ {first.batched_}")
    equal = {}
    for name, search in zip(list(W5_SEARCHES)[1:], others, strict=True):
        equal[name] = first.best_params_ == search.best_params_
        print(f"best_params_ equal to {name}'s: {equal[name]}")
    gap = float(
        np.abs(
            first.cv_results_["mean_test_score"]
            - others[0].cv_results_["mean_test_score"]
        ).max()
    )
    print(f"largest |difference| of mean test scores, n_jobs=1: {gap:.4f} "
          "(target <= 0.01)")  # fmt: skip
    return {
        "seconds": medians,
        "batched_": bool(first.batched_),
        "best_params_equal": equal,
        "max_abs_score_difference": gap,
    }


def _rounded(params):
    # float() as well: numpy's floats print as np.float64(...).
    return {
        k: round(float(v), 5) if isinstance(v, float) else v for k, v in params.items()
    }


def _w6_curve(function, estimator, X, y):
    return function(estimator, X, y, param_name="dropout", param_range=W6_RANGE, cv=5)


def run_w6(repeats):
    spec = WORKLOADS["W2"]
    X_train, _, y_train, _ = spec["data"]()

    def curve(function, epochs):
        estimator = _dnn(spec, 0).set_params(max_iter=epochs)
        return _w6_curve(function, estimator, X_train, y_train)

    medians, curves = _measure(
        {n: lambda f=f: curve(f, spec["epochs"]) for n, f in W6_CURVES.items()},
        repeats,
        warm_ups={
            n: lambda f=f: curve(f, WARM_UP_EPOCHS) for n, f in W6_CURVES.items()
        },
        describe=lambda c: (
            "mean test scores " + ", ".join(f"{s:.3f}" for s in c[1].mean(axis=1))
        ),
    )
    _print_medians(medians)
    batched, sequential = medians.values()
    print(f"sequential / batched: {sequential / batched:.1f}x (target >= 4)")
    (_, batched_test), (_, sequential_test) = curves.values()
    gap = float(np.abs(batched_test - sequential_test).max())
    print(f"largest |difference| of test scores: {gap:.4f}")
    return {"seconds": medians, "max_abs_score_difference": gap}


RUNS = {"W4": run_w4, "W5": run_w5, "W6": run_w6}


def _notes(name, row):
    """What a workload's row says beyond its times, in a sentence."""
    gap = row["max_abs_score_difference"]
    if name == "W5":
        equal = ", ".join(
            f"{'equal' if same else 'not equal'} to {contender}'s"
            for contender, same in row["best_params_equal"].items()
        )
        return (
            f"W5: ``batched_`` {row['batched_']}; ``best_params_`` {equal}; "
            f"largest difference of mean test scores from n_jobs=1's: {gap:.4f}."
        )
    what = "test scores" if name == "W6" else "mean test scores"
    # W4 with --n-init auto times six restarts a fit.
    n_init = f" (``n_init={row['n_init']!r}``)" if row.get("n_init", 1) != 1 else ""
    return (
        f"{name}{n_init}: largest difference of {what}, batched against "
        f"sequential: {gap:.4f}."
    )


def _rst(data):
    """The results as a reStructuredText table, for the docs."""
    machine = data["machine"]
    lines = [
        f"Measured with ``python benchmarks/search.py``: {machine['processor']}, "
        f"{machine['cpu_count']} cores ({machine['torch_threads']} torch threads); "
        f"Python {machine['python']}, torch {machine['torch']}, scikit-learn "
        f"{machine['scikit-learn']}, skdnn {machine['skdnn']}. Medians; the "
        "ratio is each contender's time over the batched one's.",
        "",
        *list_table_head(
            "Searches and curves, seconds",
            "workload",
            ["contender", "date (runs)", "seconds", "ratio"],
        ),
    ]
    for name, row in data["results"].items():
        batched = next(iter(row["seconds"].values()))
        for contender, seconds in row["seconds"].items():
            lines += [
                f"   * - {name}",
                f"     - {contender}",
                f"     - {row['date']} ({row['repeats']})",
                f"     - {seconds:.3f}",
                f"     - {seconds / batched:.1f}",
            ]
    lines.append("")
    lines += [_notes(name, row) for name, row in data["results"].items()]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=list(RUNS), choices=list(RUNS))
    parser.add_argument(
        "--n-init",
        default="1",
        help="W4's DNNClassifier n_init: 1 (one network a fit) or auto",
    )
    parser.add_argument("--json", default=os.path.join(HERE, "search.json"))
    parser.add_argument("--rst", default=os.path.join(HERE, "search.rst"))
    args = parser.parse_args()
    N_INIT[0] = args.n_init if args.n_init == "auto" else int(args.n_init)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    date = datetime.date.today().isoformat()
    results = {}
    for name in args.only:
        print(f"\n{name}", flush=True)
        row = RUNS[name](args.repeats)
        results[name] = {"date": date, "repeats": args.repeats, **row}
    earlier = {}
    if os.path.exists(args.json):
        with open(args.json) as f:
            earlier = json.load(f)["results"]
    data = {
        "machine": describe_machine(
            cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None
        ),
        "results": {
            name: results.get(name, earlier.get(name))
            for name in RUNS
            if name in results or name in earlier
        },
    }
    with open(args.json, "w") as f:
        json.dump(data, f, indent=2)
    with open(args.rst, "w") as f:
        f.write(_rst(data))


if __name__ == "__main__":
    main()
