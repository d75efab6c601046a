"""DNNClassifier on a CUDA GPU against the CPU: one large fit and one batched search.

Workloads, each timed on the CUDA GPU and on the CPU of the same machine:

- W3 with ten times the rows: 1,000,000 training rows x 100 float32
  features, 5 classes, a (256, 256) network, batch 256, 5 epochs (W3 of
  benchmarks/bench.py, timed by its ``run_gpu``).
- A batched search of 100 networks: skdnn's GridSearchCV over W2's network
  (digits, 64-128-64-10, batch 64, 50 epochs), 5 dropout rates x 5 alpha
  values x 4 folds, without refit, trained as batched computations.

Each device first runs an untimed warm-up (CUDA's context, cuBLAS's handles
and the kernels' first loads are paid once per process, not per fit). The
GPU's time is the median of ``--repeats`` runs; the CPU, many times slower,
runs each workload once, at the same size. The table gives seconds and the
speedup, CPU time over GPU time.

Without a CUDA GPU it says so and exits with status 0: there is nothing to
compare. ``--quick`` shrinks every workload (W3 to a hundredth of its rows,
the search to 2 x 2 candidates, 2 folds and 2 epochs, one run each) for a
smoke run of the script itself; its times mean nothing.

Run: ``python benchmarks/gpu_bench.py [--quick] [--repeats 3] [--json PATH]``;
benchmarks/gpu_check.sh runs it after the ``cuda`` tests.
"""

import argparse
import contextlib
import datetime
import json
import statistics
import sys
import time
import warnings

import bench
import torch
from bench import WORKLOADS, _dnn, run_gpu
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold

from skdnn.model_selection import GridSearchCV

NO_GPU = "no CUDA GPU: torch.cuda.is_available() is False; nothing to benchmark"

# The search: W2's data and network, a grid of 25 candidates over 4 folds.
SEARCH = WORKLOADS["W2"]
DROPOUT = [0.0, 0.1, 0.2, 0.3, 0.4]
ALPHA = [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
FOLDS = 4

# --quick: W3's rows divided by this, and a search of 2 x 2 candidates over 2
# folds and 2 epochs.
QUICK_ROWS_DIVISOR = 100
QUICK_GRID = {"dropout": DROPOUT[:2], "alpha": ALPHA[:2]}
QUICK_FOLDS = 2
QUICK_EPOCHS = 2


@contextlib.contextmanager
def _w3_rows_divided_by(divisor):
    """Make bench.run_gpu draw a ``divisor``-th of its rows, for --quick.

    run_gpu names its row count itself; shrinking the data it asks bench's
    ``_large`` for keeps its timing code the one both scripts run.
    """
    full = bench._large
    bench._large = lambda n_samples: full(n_samples=n_samples // divisor)
    try:
        yield
    finally:
        bench._large = full


def _synchronized(device):
    # CUDA runs kernels asynchronously: a timer stopped before the device is
    # done would time the launches, not the work.
    if device == "cuda":
        torch.cuda.synchronize()


def _search(device, *, quick, epochs=None):
    if epochs is None:
        epochs = QUICK_EPOCHS if quick else SEARCH["epochs"]
    # n_iter_no_change above the epoch budget: every network runs every
    # epoch, on both devices, so both do the same work.
    estimator = _dnn(SEARCH, 0).set_params(
        device=device, max_iter=epochs, n_iter_no_change=epochs + 1
    )
    grid = QUICK_GRID if quick else {"dropout": DROPOUT, "alpha": ALPHA}
    folds = QUICK_FOLDS if quick else FOLDS
    # No refit: exactly the grid's fits, candidates x folds, are trained.
    return GridSearchCV(estimator, grid, cv=StratifiedKFold(folds), refit=False)


def run_search(repeats, *, quick):
    """The batched search's seconds on each device, and what it found."""
    X_train, _, y_train, _ = SEARCH["data"]()
    row = {}
    for device in ("cuda", "cpu"):
        # Untimed: a one-epoch search pays the device's one-time costs.
        _search(device, quick=quick, epochs=1).fit(X_train, y_train)
        _synchronized(device)
        times = []
        for _ in range(repeats if device == "cuda" else 1):
            search = _search(device, quick=quick)
            start = time.perf_counter()
            search.fit(X_train, y_train)
            _synchronized(device)
            times.append(time.perf_counter() - start)
        if not search.batched_:
            # A sequential search would time something else than this
            # benchmark claims to.
            raise RuntimeError(f"the search on {device} was not batched")
        n_networks = len(search.cv_results_["params"]) * search.n_splits_
        row[device] = {
            "seconds": statistics.median(times),
            "runs": len(times),
            "networks": n_networks,
            "best_params": search.best_params_,
            "best_score": float(search.best_score_),
        }
        print(
            f"search on {device}: {n_networks} networks, "
            f"{row[device]['seconds']:.2f} s (median of {len(times)}), "
            f"best {search.best_params_} ({search.best_score_:.3f})",
            flush=True,
        )
    return row


def _table(w3, search, spec):
    """The markdown table's rows: workload, CPU seconds, CUDA seconds, speedup."""
    cuda_runs = search["cuda"]["runs"]
    rows = [
        (
            f"W3 x10 rows: fit, {w3['rows']:,} x 100 float32, "
            f"{spec['hidden']}, batch {spec['batch']}, {w3['epochs']} epochs "
            f"(cpu: 1 run; cuda: median of {w3['cuda_runs']})",
            w3["cpu"]["fit_seconds"],
            w3["cuda"]["fit_seconds"],
        ),
        (
            f"batched GridSearchCV: {search['cuda']['networks']} networks, "
            f"W2 {SEARCH['hidden']} (cpu: 1 run; cuda: median of {cuda_runs})",
            search["cpu"]["seconds"],
            search["cuda"]["seconds"],
        ),
    ]
    lines = [
        "| workload | cpu s | cuda s | speedup |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, cpu, cuda in rows:
        lines.append(f"| {name} | {cpu:.2f} | {cuda:.2f} | {cpu / cuda:.1f}x |")
    table = [
        {
            "workload": name,
            "cpu_seconds": cpu,
            "cuda_seconds": cuda,
            "speedup": cpu / cuda,
        }
        for name, cpu, cuda in rows
    ]
    return "\n".join(lines), table


def _machine():
    return bench.describe_machine(
        torch_cuda=torch.version.cuda, gpu=torch.cuda.get_device_name()
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="GPU runs per workload (median)"
    )
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a very small smoke run; times mean nothing",
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_GPU)
        return 0
    repeats = 1 if args.quick else args.repeats
    warnings.simplefilter("ignore", ConvergenceWarning)
    machine = _machine()
    print(json.dumps(machine), flush=True)

    spec = WORKLOADS["W3"]
    rows = contextlib.nullcontext()
    if args.quick:
        rows = _w3_rows_divided_by(QUICK_ROWS_DIVISOR)
    with rows:
        w3 = run_gpu(repeats)
    w3["cuda_runs"] = repeats
    print(
        f"W3 x10 rows: {w3['cuda']['fit_seconds']:.2f} s on cuda, "
        f"{w3['cpu']['fit_seconds']:.2f} s on cpu",
        flush=True,
    )
    search = run_search(repeats, quick=args.quick)

    text, table = _table(w3, search, spec)
    print()
    if args.quick:
        print("--quick: shrunken workloads; the times say nothing of speed.\n")
    print(text)
    print(
        f"\nW3 test accuracy: cuda {w3['cuda']['test_accuracy']:.3f}, "
        f"cpu {w3['cpu']['test_accuracy']:.3f}. Search best_params_: "
        f"cuda {search['cuda']['best_params']}, cpu {search['cpu']['best_params']}."
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "date": datetime.date.today().isoformat(),
                    "quick": args.quick,
                    "machine": machine,
                    "table": table,
                    "w3": w3,
                    "search": search,
                },
                f,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
