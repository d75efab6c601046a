"""A/B fit speed in one process: two versions of skdnn, fit by fit, alternating.

``benchmarks/ab.py`` runs each side in fresh processes; on a shared virtual
machine, whose speed drifts by a factor of two within minutes, a difference
of 5% then needs hundreds of processes. This script puts both versions in
one process instead, so that each pair of fits (before, then after, or the
reverse) runs seconds apart, and reports the median of the paired ratios.

The *before* code is a git worktree of ``--before`` (default ``HEAD``), the
*after* code this checkout's working tree (or ``--after``, a directory or a
commit), as with ``ab.py``. Each tree's ``skdnn`` package is copied under a
temporary directory as ``skdnn_before`` and ``skdnn_after``: skdnn imports
itself only relatively, so each copy is a complete, separate skdnn, with its
own module state, and both share torch, numpy and their thread pools, as two
fits in one process do. The workloads are the *after* tree's
``benchmarks/bench.py`` (W1-W3, through ``bench._dnn``) and ``search.py``
(W4: the batched dropout search, refit included; W5: the batched randomized
search; W6: the batched validation curve over dropout), built with each
copy's classes. One untimed fit of each side comes first.

Usage: ``python benchmarks/ab_paired.py [--before REV] [--after TREE_OR_REV]
[--repeats 20] [--only W1 W2 W3 W4] [--json PATH]``. The verdicts are
``ab.py``'s, on the median paired ratio. ``--only`` also takes W5, W6, S1,
S2 and M1 (see :func:`_extra_data`): sparse input, and masks past the
trainer's bound.
"""

import argparse
import importlib
import json
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ab  # noqa: E402  (this directory's ab.py, for its worktrees and verdicts)

SIDES = ("before", "after")


def _load_copies(trees, root):
    """Import each tree's skdnn as skdnn_<side>, copied under ``root``."""
    for side, tree in trees.items():
        shutil.copytree(Path(tree) / "skdnn", root / f"skdnn_{side}")
    sys.path.insert(0, str(root))
    packages = {}
    for side in trees:
        package = importlib.import_module(f"skdnn_{side}")
        model_selection = importlib.import_module(f"skdnn_{side}.model_selection")
        packages[side] = (package, model_selection)
    return packages


def _extra_data(name):
    """The data of a workload outside bench.py's, and its estimator's settings.

    S1: sparse X, wide (1% of 4,000 x 2,000 set); S2: sparse X, narrow (5%
    of 4,000 x 200); M1: dense X whose epoch's dropout masks pass the
    trainer's bound (20,000 x 20 rows, (512, 512), dropout 0.2).
    """
    import numpy as np
    import scipy.sparse

    rng = np.random.RandomState(0)
    if name == "M1":
        X = rng.normal(size=(20_000, 20))
        y = (X[:, 0] * X[:, 1] > 0).astype(int)
        return X, y, dict(hidden_layer_sizes=(512, 512), dropout=0.2, max_iter=2)
    shape, density = {"S1": ((4000, 2000), 0.01), "S2": ((4000, 200), 0.05)}[name]
    X = scipy.sparse.random(*shape, density=density, format="csr", random_state=rng)
    y = (
        np.asarray(X[:, : shape[1] // 2].sum(axis=1)).ravel()
        > 0.5 * density * shape[1] / 2
    )
    return X, y.astype(int), dict(hidden_layer_sizes=(64,), max_iter=10)


EXTRA = ("S1", "S2", "M1")


def _fits(packages, bench_dir, name):
    """Each side's fit of workload ``name``, as a callable of the seed."""
    sys.path.insert(0, str(bench_dir))
    bench = importlib.import_module("bench")
    if name in EXTRA:
        X, y, params = _extra_data(name)

        def fit_of(package, model_selection):
            def fit(seed):
                clf = package.DNNClassifier(
                    random_state=seed,
                    **params,
                    **bench.one_network(package.DNNClassifier),
                )
                return clf.fit(X, y)

            return fit

    elif name == "W4":
        search = importlib.import_module("search")
        from sklearn.model_selection import StratifiedKFold

        X, _, y, _ = search.W1["data"]()

        def fit_of(package, model_selection):
            def fit(seed):
                estimator = search._network(
                    package.DNNClassifier, **bench.one_network(package.DNNClassifier)
                )
                grid = {"dropout": search.DROPOUT}
                cv = StratifiedKFold(5)
                return model_selection.GridSearchCV(estimator, grid, cv=cv).fit(X, y)

            return fit
    elif name == "W5":
        search = importlib.import_module("search")
        X, y = search._w5_data()

        def fit_of(package, model_selection):
            def fit(seed):
                estimator = search._w5_estimator(
                    package.DNNClassifier, random_state=seed
                )
                search_class = model_selection.RandomizedSearchCV
                return search._w5_searcher(search_class, estimator).fit(X, y)

            return fit

    elif name == "W6":
        search = importlib.import_module("search")
        spec = bench.WORKLOADS["W2"]
        X, _, y, _ = spec["data"]()

        def fit_of(package, model_selection):
            def fit(seed):
                estimator = bench._dnn(spec, seed, package.DNNClassifier)
                return search._w6_curve(
                    model_selection.validation_curve, estimator, X, y
                )

            return fit
    else:
        spec = bench.WORKLOADS[name]
        X, _, y, _ = spec["data"]()

        def fit_of(package, model_selection):
            def fit(seed):
                return bench._dnn(spec, seed, package.DNNClassifier).fit(X, y)

            return fit

    return {side: fit_of(*packages[side]) for side in packages}


def _measure(fits, repeats):
    seconds = {side: [] for side in SIDES}
    ratios = []
    for side in SIDES:
        fits[side](0)  # untimed: first calls at these shapes, allocator pools
    for repeat in range(repeats):
        pair = {}
        # ABBA, so that running first or second favours neither side.
        for side in SIDES if repeat % 2 == 0 else SIDES[::-1]:
            start = time.perf_counter()
            fits[side](repeat)
            pair[side] = time.perf_counter() - start
            seconds[side].append(pair[side])
        ratios.append(pair["after"] / pair["before"])
    return seconds, ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD")
    parser.add_argument("--after", default=None)
    parser.add_argument("--repeats", type=int, default=20, help="pairs of fits")
    parser.add_argument("--only", nargs="+", default=list(ab.WORKLOADS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # ConvergenceWarning: fixed epoch budgets
    repo = Path(ab._git("rev-parse", "--show-toplevel", cwd=HERE))
    worktrees = ab.Worktrees(repo)
    try:
        trees = {"before": worktrees.add(args.before, "before")}
        if args.after is None:
            trees["after"] = repo
        elif Path(args.after).is_dir():
            trees["after"] = Path(args.after).resolve()
        else:
            trees["after"] = worktrees.add(args.after, "after")
        labels = {"before": args.before, "after": args.after or "working tree"}
        described = {
            side: ab._describe(tree, f"{side} ({labels[side]})")
            for side, tree in trees.items()
        }
        for info in described.values():
            print(ab._tree_line(info), flush=True)
        packages = _load_copies(trees, worktrees.root / "packages")
    finally:
        # The copies are imported; the worktrees are no longer needed.
        worktrees.close()

    rows, results = [], {}
    for name in args.only:
        seconds, ratios = _measure(
            _fits(packages, trees["after"] / "benchmarks", name), args.repeats
        )
        paired = statistics.median(ratios)
        results[name] = {"seconds": seconds, "ratios": ratios, "paired_median": paired}
        before, after = (statistics.median(seconds[s]) for s in SIDES)
        rows.append(
            f"| {name} | {before:.3f} | {after:.3f} | {paired:.3f} | "
            f"{min(seconds['before']):.3f} / {min(seconds['after']):.3f} | "
            f"{ab._verdict(paired)} |"
        )
        print(f"{name}: paired after/before {paired:.3f}", flush=True)
    print()
    print(f"{args.repeats} pairs of fits per workload, in one process, ABBA order")
    print()
    print(
        "| workload | before median s | after median s | paired after/before, "
        "median | fastest before / after s | verdict |"
    )
    print("|---|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"trees": described, "arguments": vars(args), "results": results},
                f,
                indent=2,
            )
    return (
        1
        if any(ab._verdict(r["paired_median"]) == "SLOWER" for r in results.values())
        else 0
    )


if __name__ == "__main__":
    sys.exit(main())
