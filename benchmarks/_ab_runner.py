"""One measurement for ``benchmarks/ab.py``: time the fits of one workload.

Not meant to be run by hand. ``ab.py`` starts this script in a fresh process
with ``PYTHONPATH`` set to the root of the tree being measured, so that
``import skdnn`` resolves to that tree's package, and with ``--bench-dir``
naming the directory whose ``bench.py`` and ``search.py`` define the
workloads (the after tree's, for both sides). The script does one untimed
warm-up fit, then times ``--fits`` fits, and prints one line,
``AB_RESULT {json}``, on stdout.

Parameters (command line)
-------------------------
--workload : {"W1", "W2", "W3", "W4"}
--tree : path
    Root of the tree being measured; every loaded ``skdnn`` module must come
    from its ``skdnn/`` directory, or the script exits with status 3.
--bench-dir : path
    Directory holding the ``bench.py`` and ``search.py`` to use.
--fits : int
    Timed fits after the warm-up.
--seed : int
    Seed of the first timed fit (W1-W3); the next ones take the next seeds.
"""

import argparse
import importlib
import json
import os
import sys
import time
import warnings
from pathlib import Path

MARKER = "AB_RESULT "


def _inside(path, directory):
    return Path(path).resolve().is_relative_to(Path(directory).resolve())


def _skdnn_files():
    """Files of every loaded skdnn module (namespace packages have none)."""
    return {
        name: getattr(module, "__file__", None)
        for name, module in sorted(sys.modules.items())
        if name == "skdnn" or name.startswith("skdnn.")
    }


def _fail(message):
    # Status 3, told apart by ab.py from a crash in the fit.
    print(f"_ab_runner: {message}", file=sys.stderr, flush=True)
    sys.exit(3)


def _check_tree(tree):
    stray = {
        name: file
        for name, file in _skdnn_files().items()
        if file is not None and not _inside(file, Path(tree) / "skdnn")
    }
    if stray:
        _fail(
            f"skdnn modules loaded from outside {tree}/skdnn: {stray}; "
            f"sys.path = {sys.path}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", required=True)
    parser.add_argument("--tree", required=True)
    parser.add_argument("--bench-dir", required=True)
    parser.add_argument("--fits", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    # sys.path[0] is this script's directory, whose bench.py may not be the
    # after tree's (with --after REV). Replace it by the directory asked for;
    # it holds no skdnn/, so PYTHONPATH, which comes next, still decides where
    # skdnn is imported from, ahead of the editable install's finder (that one
    # is appended to sys.meta_path, after the path-based finder).
    sys.path[0] = str(Path(args.bench_dir).resolve())

    import skdnn  # only now that sys.path is set

    # Refuse before any work if the import went to the wrong tree.
    _check_tree(args.tree)
    bench = importlib.import_module("bench")
    if not _inside(bench.__file__, args.bench_dir):
        _fail(f"bench imported from {bench.__file__}")

    import torch
    from sklearn.exceptions import ConvergenceWarning

    # As bench.py and search.py do: the epoch budget is fixed, convergence
    # warnings are expected.
    warnings.simplefilter("ignore", ConvergenceWarning)

    if args.workload == "W4":
        search = importlib.import_module("search")
        if not _inside(search.__file__, args.bench_dir):
            _fail(f"search imported from {search.__file__}")
        from sklearn.model_selection import StratifiedKFold

        # What search.py times for skdnn: the batched search's fit, refit
        # included, on W1's training rows and 5 stratified folds. Its
        # estimator has random_state=0, so every fit is the same computation.
        make = search.CONTENDERS["skdnn batched, dropout"]
        X_train, _, y_train, _ = search.W1["data"]()
        cv = StratifiedKFold(5)

        def model(seed):
            return make(cv)

        seeds = [None] * args.fits
    else:
        spec = bench.WORKLOADS[args.workload]
        X_train, _, y_train, _ = spec["data"]()

        def model(seed):
            return bench._dnn(spec, seed)

        seeds = [args.seed + i for i in range(args.fits)]

    # One untimed fit, the same as the timed ones: torch's first optimizer
    # imports its compiler stack, the BLAS libraries warm up at these shapes,
    # and the allocator grows its pools.
    model(args.seed).fit(X_train, y_train)
    seconds = []
    for seed in seeds:
        estimator = model(seed)
        start = time.perf_counter()
        estimator.fit(X_train, y_train)
        seconds.append(time.perf_counter() - start)
    # Modules imported lazily during the fits are checked too.
    _check_tree(args.tree)
    result = {
        "workload": args.workload,
        "seconds": seconds,
        "seeds": seeds,
        "skdnn_file": skdnn.__file__,
        "skdnn_modules": _skdnn_files(),
        "bench_file": bench.__file__,
        "skdnn_version": skdnn.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "pid": os.getpid(),
    }
    print(MARKER + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
