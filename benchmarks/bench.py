"""Fit and predict speed of DNNClassifier against MLPClassifier and plain PyTorch.

Every contender trains the same architecture for the same epochs with the same
batch size and Adam, in this one process, alternating run by run; the table
gives medians and ratios to MLPClassifier. Workloads:

- W1, the tutorial's XOR: 2-6-4-1 ReLU network, 800 training rows, batch 32,
  100 epochs.
- W2, digits: 64-128-64-10, dropout 0.2 for DNNClassifier (MLPClassifier has
  none), batch 64, 50 epochs.
- W3, 100,000 x 100 float32, 5 classes: (256, 256), batch 256, 5 epochs. Also
  reports the matmul-bound time: the forward and backward matrix products of
  every training step, timed with torch.mm at these shapes right before and
  after each of DNNClassifier's fits, and the fit's ratio to it.

- R1, regression: make_friedman1, 20,000 rows (16,000 to train), target
  standardized, (256, 256), batch 256, 20 epochs, against MLPRegressor and a
  plain PyTorch loop on the squared error: fit and predict seconds, test R^2.

Also: predict_proba on each test set, W1's fit time with another process
keeping one core busy, and test accuracies; where a CUDA GPU is available, W3
with ten times the rows on the GPU against the CPU.

Run: ``python benchmarks/bench.py [--repeats 5] [--json results.json]
[--rst results.rst] [--only W1 W2 R1]``; ``--rst`` writes the tables the docs'
Performance page shows. Tests never assert on time; this script is where speed is
measured.
"""

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import time
import warnings
from itertools import pairwise

import numpy as np
import sklearn
import torch
from sklearn.datasets import load_digits, make_classification, make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor

import skdnn
from skdnn import DNNClassifier, DNNRegressor


def _xor():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(1_000, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return train_test_split(X, y, test_size=0.2, random_state=42)


def _digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, random_state=0)


def _large(n_samples=125_000):
    X, y = make_classification(
        n_samples=n_samples,
        n_features=100,
        n_informative=40,
        n_classes=5,
        random_state=0,
    )
    return train_test_split(X.astype(np.float32), y, test_size=0.2, random_state=0)


def _friedman():
    X, y = make_friedman1(n_samples=20_000, noise=1.0, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2,
                                                        random_state=0)  # fmt: skip
    # Standardized with the training rows' statistics, as
    # TransformedTargetRegressor(transformer=StandardScaler()) would.
    mean, std = y_train.mean(), y_train.std()
    return X_train, X_test, (y_train - mean) / std, (y_test - mean) / std


WORKLOADS = {
    "W1": dict(data=_xor, hidden=(6, 4), batch=32, epochs=100, dropout=0.0),
    "W2": dict(data=_digits, hidden=(128, 64), batch=64, epochs=50, dropout=0.2),
    "W3": dict(data=_large, hidden=(256, 256), batch=256, epochs=5, dropout=0.0),
    "R1": dict(data=_friedman, hidden=(256, 256), batch=256, epochs=20, dropout=0.0,
               regression=True),
}  # fmt: skip


def _mlp(spec, seed):
    # n_iter_no_change above the epoch budget: every contender runs every epoch.
    estimator = MLPRegressor if spec.get("regression") else MLPClassifier
    return estimator(
        hidden_layer_sizes=spec["hidden"],
        batch_size=spec["batch"],
        max_iter=spec["epochs"],
        n_iter_no_change=spec["epochs"] + 1,
        random_state=seed,
    )


def one_network(estimator):
    """The parameters that make ``estimator`` train one network a fit."""
    return {"n_init": 1} if "n_init" in estimator().get_params() else {}


def _dnn(spec, seed, estimator=None):
    # ``estimator``: another copy of the class (benchmarks/ab_paired.py times
    # two versions of skdnn in one process, the older without n_init).
    # n_init=1: one network a fit, the work of every other contender; W1's
    # (6, 4) network would otherwise train n_init='auto''s six restarts.
    if estimator is None:
        estimator = DNNRegressor if spec.get("regression") else DNNClassifier
    return estimator(
        hidden_layer_sizes=spec["hidden"],
        batch_size=spec["batch"],
        max_iter=spec["epochs"],
        n_iter_no_change=spec["epochs"] + 1,
        dropout=spec["dropout"],
        random_state=seed,
        **one_network(estimator),
    )


class TorchLoop:
    """The plain PyTorch loop a user would write: nn.Sequential, autograd, Adam."""

    def __init__(self, spec, seed):
        self.spec, self.seed = spec, seed

    def fit(self, X, y):
        spec = self.spec
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        X = torch.from_numpy(X)
        if spec.get("regression"):
            # One output on the squared error (MSELoss: the mean, half of
            # which is MLPRegressor's loss; Adam's steps are nearly the same).
            self.classes_, n_outputs = None, 1
            y, loss_fn = torch.from_numpy(y).to(X.dtype)[:, None], torch.nn.MSELoss()
        else:
            self.classes_ = np.unique(y)
            n_outputs, loss_fn = len(self.classes_), torch.nn.CrossEntropyLoss()
            y = torch.from_numpy(np.searchsorted(self.classes_, y))
        layers, width = [], X.shape[1]
        for units in spec["hidden"]:
            layers += [torch.nn.Linear(width, units), torch.nn.ReLU()]
            if spec["dropout"]:
                layers.append(torch.nn.Dropout(spec["dropout"]))
            width = units
        layers.append(torch.nn.Linear(width, n_outputs))
        self.model = torch.nn.Sequential(*layers).to(X.dtype)
        optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=True)
        self.model.train()
        for _ in range(spec["epochs"]):
            order = torch.randperm(len(X), generator=generator)
            for start in range(0, len(X), spec["batch"]):
                rows = order[start : start + spec["batch"]]
                optimizer.zero_grad(set_to_none=True)
                loss_fn(self.model(X[rows]), y[rows]).backward()
                optimizer.step()
        self.model.eval()
        return self

    def predict_proba(self, X):
        with torch.inference_mode():
            return torch.softmax(self.model(torch.from_numpy(X)), dim=1).numpy()

    def predict(self, X):
        with torch.inference_mode():
            return self.model(torch.from_numpy(X)).numpy()[:, 0]

    def score(self, X, y):
        if self.classes_ is None:
            return float(r2_score(y, self.predict(X)))
        return float(np.mean(self.classes_[self.predict_proba(X).argmax(1)] == y))


CONTENDERS = {
    "MLPClassifier": _mlp,
    "DNNClassifier": _dnn,
    "PyTorch loop": TorchLoop,
}
# A regression workload's contenders, by the same makers.
REGRESSION_NAMES = {
    "MLPClassifier": "MLPRegressor",
    "DNNClassifier": "DNNRegressor",
    "PyTorch loop": "PyTorch loop",
}


def contender_names(spec):
    """Each contender's name in ``spec``'s rows, in CONTENDERS's order."""
    if spec.get("regression"):
        return REGRESSION_NAMES
    return {name: name for name in CONTENDERS}


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _matmul_bound(spec, n_features, n_classes, n_samples, dtype):
    """A fit's matrix products alone, at its shapes, every one by torch.mm.

    Returns a function that runs them (every step's forward and backward
    products, into preallocated outputs, so that it times the products and
    not the allocation and page faults of their outputs) and returns its
    seconds, and the floating-point operations it does.
    """
    units = [n_features, *spec["hidden"], n_classes]
    batch = spec["batch"]
    weights = [torch.randn(a, b, dtype=dtype) for a, b in pairwise(units)]
    acts = [torch.randn(batch, a, dtype=dtype) for a in units]
    outs = [torch.empty(batch, b, dtype=dtype) for b in units[1:]]
    grads = [torch.empty_like(W) for W in weights]
    ups = [torch.empty(batch, a, dtype=dtype) for a in units[:-1]]
    products = []
    for i, W in enumerate(weights):
        products.append((acts[i], W, outs[i]))  # forward
        products.append((acts[i].T, acts[i + 1], grads[i]))  # weight gradient
        if i:
            products.append((acts[i + 1], W.T, ups[i]))  # input gradient
    steps = spec["epochs"] * -(-n_samples // batch)

    def seconds():
        start = time.perf_counter()
        for _ in range(steps):
            for a, b, out in products:
                torch.mm(a, b, out=out)
        return time.perf_counter() - start

    macs = sum(a * b * (3 if i else 2) for i, (a, b) in enumerate(pairwise(units)))
    return seconds, 2.0 * macs * batch * steps


def _spin(stop):
    while not stop.is_set():
        pass


def run_gpu(repeats):
    """W3 with ten times the rows, on the CUDA GPU and on the CPU.

    Returns None where there is no CUDA GPU.
    """
    if not torch.cuda.is_available():
        return None
    spec = WORKLOADS["W3"]
    X_train, X_test, y_train, y_test = _large(n_samples=1_250_000)
    row = {"rows": len(X_train), "epochs": spec["epochs"]}
    for device in ("cuda", "cpu"):
        _dnn(spec, 0).set_params(device=device, max_iter=1).fit(
            X_train[:1024], y_train[:1024]
        )
        times = []
        for seed in range(repeats if device == "cuda" else 1):
            model = _dnn(spec, seed).set_params(device=device)
            times.append(_timed(lambda m=model: m.fit(X_train, y_train)))
        seconds = statistics.median(times)
        row[device] = {
            "fit_seconds": seconds,
            "rows_per_second": len(X_train) * spec["epochs"] / seconds,
            "test_accuracy": model.score(X_test, y_test),
        }
    return row


def run(names, repeats):
    return {name: _run_workload(WORKLOADS[name], repeats, name) for name in names}


def _keys(spec):
    """A row's keys of prediction time and test score."""
    if spec.get("regression"):
        return "predict_seconds", "test_r2"
    return "predict_proba_seconds", "test_accuracy"


def _run_workload(spec, repeats, name):
    X_train, X_test, y_train, y_test = spec["data"]()
    predict_key, score_key = _keys(spec)
    method = predict_key.removesuffix("_seconds")  # predict_proba or predict
    fit_times = {c: [] for c in CONTENDERS}
    predict_times = {c: [] for c in CONTENDERS}
    accuracy = {c: [] for c in CONTENDERS}
    # A first fit pays one-time costs (torch imports its compiler stack
    # when the first optimizer is made); it is not timed.
    _dnn(spec, 0).set_params(max_iter=1, batch_size=32).fit(X_train[:64], y_train[:64])
    bound, bound_times, bound_flops = None, [], 0.0
    if name == "W3":
        # The products alone are timed right before and after each of
        # DNNClassifier's fits, and the fit set against their mean: the
        # shared machine's speed drifts by half within minutes (the fit took
        # 2.0 to 3.3 s over ten fits while the products took 1.6 to 1.9 s),
        # and a bound timed apart from the fits measures the drift.
        bound, bound_flops = _matmul_bound(
            spec, X_train.shape[1], len(np.unique(y_train)), len(X_train),
            torch.float32,
        )  # fmt: skip
        bound()
    for seed in range(repeats):
        for contender, make in CONTENDERS.items():
            model = make(spec, seed)
            paired = bound is not None and contender == "DNNClassifier"
            before = bound() if paired else None
            fit_times[contender].append(_timed(lambda m=model: m.fit(X_train, y_train)))
            if paired:
                bound_times.append((before + bound()) / 2)
            predict = getattr(model, method)
            predict_times[contender].append(
                min(_timed(lambda p=predict: p(X_test)) for _ in range(5))
            )
            accuracy[contender].append(model.score(X_test, y_test))
    names = contender_names(spec)
    row = {
        "fit_seconds": {names[c]: statistics.median(t) for c, t in fit_times.items()},
        predict_key: {names[c]: statistics.median(t) for c, t in predict_times.items()},
        score_key: {names[c]: statistics.median(a) for c, a in accuracy.items()},
    }
    if bound is not None:
        fits = fit_times["DNNClassifier"]
        row["matmul_bound"] = {
            "seconds": statistics.median(bound_times),
            "GFLOP/s": bound_flops / statistics.median(bound_times) / 1e9,
            "fit_ratios": [f / b for f, b in zip(fits, bound_times, strict=True)],
        }
    if name == "W1":
        stop = multiprocessing.Event()
        spinner = multiprocessing.Process(target=_spin, args=(stop,))
        spinner.start()
        busy = [
            _timed(lambda s=seed: _dnn(spec, s).fit(X_train, y_train))
            for seed in range(repeats)
        ]
        stop.set()
        spinner.join()
        row["dnn_fit_seconds_one_core_busy"] = statistics.median(busy)
    return row


def _groups(results):
    """The results split into classification and regression workloads, each
    with its table titles: (results, [(title, key, cell format)])."""
    out = []
    for regression in (False, True):
        rows = {
            n: r for n, r in results.items()
            if bool(WORKLOADS[n].get("regression")) == regression
        }  # fmt: skip
        if rows:
            spec = next(WORKLOADS[n] for n in rows)
            predict_key, score_key = _keys(spec)
            base = next(iter(contender_names(spec).values()))
            out.append((rows, base, [
                ("Fit, seconds", "fit_seconds", "{:.3f} ({:.2f})"),
                (f"{predict_key.removesuffix('_seconds')} on the test set, seconds",
                 predict_key, "{:.5f} ({:.2f})"),
                ("Test R^2" if regression else "Test accuracy", score_key, "{:.3f}"),
            ]))  # fmt: skip
    return out


def _print_table(results):
    for rows, base_name, tables in _groups(results):
        for title, key, cell in tables:
            names = list(next(iter(rows.values()))[key])
            ratio = "(ratio)" if "(" in cell else "(median)"
            print(f"\n{title + ' ' + ratio:40}" + "".join(f"{c:>22}" for c in names))
            for name, row in rows.items():
                base = row[key][base_name]
                cells = "".join(
                    f"{cell.format(v, v / base):>22}" for v in row[key].values()
                )
                print(f"{name:40}{cells}")
    print()
    if "W3" in results:
        for line in _bound_lines(results["W3"]):
            print(line)
    if "W1" in results:
        row = results["W1"]
        idle = row["fit_seconds"]["DNNClassifier"]
        busy = row["dnn_fit_seconds_one_core_busy"]
        print(
            f"W1 DNNClassifier fit with one core busy: {busy:.3f} s, "
            f"{busy / idle:.2f}x idle"
        )


def _bound_lines(row):
    """W3's fit against its products alone, timed around it."""
    bound = row["matmul_bound"]
    ratios = bound["fit_ratios"]
    return [
        f"W3 matmul-bound time, every product by torch.mm "
        f"({bound['GFLOP/s']:.0f} GFLOP/s): {bound['seconds']:.3f} s (median); "
        f"DNNClassifier's fit, each against the bound timed around it: "
        f"{statistics.median(ratios):.2f}x at the median ({min(ratios):.2f}x to "
        f"{max(ratios):.2f}x)"
    ]


def _gpu_sentence(gpu):
    if gpu is None:
        return (
            "W3 with ten times the rows on a CUDA GPU: not run, this machine has "
            "no CUDA GPU."
        )
    cuda, cpu = gpu["cuda"], gpu["cpu"]
    return (
        f"W3 with ten times the rows ({gpu['rows']:,} training rows, "
        f"{gpu['epochs']} epochs): {cuda['fit_seconds']:.2f} s on the CUDA GPU, "
        f"{cuda['rows_per_second']:,.0f} rows per second, against "
        f"{cpu['fit_seconds']:.2f} s on the CPU ({cpu['rows_per_second']:,.0f} "
        f"rows per second), {cpu['fit_seconds'] / cuda['fit_seconds']:.1f} times "
        f"faster; test accuracy {cuda['test_accuracy']:.3f} and "
        f"{cpu['test_accuracy']:.3f}."
    )


def list_table_head(title, first, columns):
    """The lines that open a reStructuredText list-table: its title and its
    header row, ``first`` then ``columns``; each body row follows as
    ``"   * - name"`` and one ``"     - cell"`` per column."""
    return [
        f".. list-table:: {title}",
        "   :header-rows: 1",
        "",
        f"   * - {first}",
        *(f"     - {c}" for c in columns),
    ]


def _rst(results, machine, date):
    """The results as reStructuredText tables, for the docs' Performance page."""
    lines = [
        f"Measured on {date} with ``python benchmarks/bench.py``: "
        f"{machine['processor']}, {machine['cpu_count']} cores "
        f"({machine['torch_threads']} torch threads), {machine['platform']}; "
        f"Python {machine['python']}, torch {machine['torch']}, scikit-learn "
        f"{machine['scikit-learn']}, skdnn {machine['skdnn']}"
        + (f", CUDA {machine['cuda']}" if machine["cuda"] else ", no GPU")
        + ". Medians; in parentheses, the ratio to MLPClassifier (MLPRegressor).",
        "",
    ]
    for rows, base_name, tables in _groups(results):
        for title, key, cell in tables:
            names = list(next(iter(rows.values()))[key])
            lines += list_table_head(title, "workload", names)
            for name, row in rows.items():
                base = row[key][base_name]
                lines.append(f"   * - {name}")
                lines += [
                    f"     - {cell.format(v, v / base)}" for v in row[key].values()
                ]
            lines.append("")
    if "W3" in results:
        lines += [f"{line}." for line in _bound_lines(results["W3"])]
    if "W1" in results:
        row = results["W1"]
        idle = row["fit_seconds"]["DNNClassifier"]
        busy = row["dnn_fit_seconds_one_core_busy"]
        lines.append(
            f"With another process keeping one core busy, W1's fit takes "
            f"{busy:.3f} s, {busy / idle:.2f} times its time on an idle machine."
        )
    return "\n".join(lines) + "\n"


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(**extra):
    """The machine and versions a benchmark ran on, and ``extra``, for its JSON."""
    return {
        "platform": platform.platform(),
        "processor": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
        "skdnn": skdnn.__version__,
        **extra,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=list(WORKLOADS))
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument(
        "--rst", default=None, help="write the tables here, for the docs"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    results = run(args.only, args.repeats)
    gpu = run_gpu(args.repeats) if "W3" in args.only else None
    machine = describe_machine(
        cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None
    )
    print(json.dumps(machine))
    _print_table(results)
    # The GPU's sentence only where W3, which it extends, ran.
    gpu_line = _gpu_sentence(gpu) + "\n" if "W3" in args.only else ""
    print(gpu_line)
    date = datetime.date.today().isoformat()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"date": date, "machine": machine, "results": results, "gpu": gpu},
                f,
                indent=2,
            )
    if args.rst:
        with open(args.rst, "w") as f:
            f.write(_rst(results, machine, date) + "\n" + gpu_line)


if __name__ == "__main__":
    main()
