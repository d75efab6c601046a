"""Test accuracy (R^2) of DNNClassifier's (DNNRegressor's) defaults against
MLPClassifier (MLPRegressor) and others.

Where bench.py measures speed at fixed settings, this script measures what a
user gets from the defaults: each model is built with its defaults (but
``random_state=0``, and the CPU for RealMLP) and scored on 15 small
classification data sets by stratified 5-fold cross-validation (shuffled,
``random_state=0``): the four data sets bundled with scikit-learn, the
TensorFlow Playground's problems (moons at three sizes, circles, XOR,
spirals, a 4x4 checkerboard) and ``make_classification`` problems (20 and
200 features, a 9:1 imbalanced one, 10 classes). Every data set is drawn
with a fixed seed, so every run scores the same rows.

Models (``--models`` picks some, in this order):

- ``mlp``: ``StandardScaler`` then scikit-learn's ``MLPClassifier``;
- ``dnn``: ``StandardScaler`` then skdnn's ``DNNClassifier``;
- ``hgb``: ``HistGradientBoostingClassifier`` on the raw features, the usual
  strong baseline for tables;
- ``realmlp``: pytabkit's ``RealMLP_TD_Classifier`` on the raw features (it
  preprocesses them itself) on the CPU: a network with tuned defaults
  ("Better by Default", NeurIPS 2024). pytabkit is no dependency of skdnn;
  where it does not import, the column is reported as skipped. Install it
  into the same environment with the repository's pin of torch's CPU build:
  ``pip install -c constraints.txt ".[quality]"`` (the ``quality`` extra).

``--dnn NAME=JSON`` (repeatable) adds a DNNClassifier with those constructor
parameters, so a candidate default is compared without editing this file:
``--dnn deep='{"hidden_layer_sizes": [256, 256, 256]}'``.

For each model and data set it reports the mean test accuracy over the folds
and the fit time summed over the folds (``fit`` alone, on one thread: torch,
OpenMP and BLAS are each limited to one, so that times compare across models
and machines with any number of cores), then per model the mean accuracy
over the data sets, the data set where it falls furthest below MLPClassifier
and its fastest and slowest data set.

``--task regression`` scores the regressors instead, by the R^2 of
shuffled 5-fold cross-validation on 9 regression sets: scikit-learn's
diabetes, the three Friedman problems, ``make_regression`` with 100 features
(20 informative), ``make_sparse_uncorrelated``, a sine surface and the
Playground's plane and multi-Gaussian. The models are the same four, each a
regressor: ``mlp`` and ``dnn`` after a StandardScaler and with the target
standardized (``TransformedTargetRegressor``), as their documentation
advises, ``hgb`` and ``realmlp`` (``RealMLP_TD_Regressor``) as they are.

Run: ``python benchmarks/quality.py [--task regression] [--models mlp dnn
hgb] [--sets iris xor] [--folds 5] [--json quality.json] [--rst
quality.rst]``. On 2 cores, mlp,
dnn and hgb take about a minute in all and realmlp about 8 minutes more.
``--quick`` (2 folds, 3 small data sets) is a smoke test. Tests never
assert on these numbers; this script is where accuracy is measured.
"""

import argparse
import datetime
import importlib.metadata
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
    make_circles,
    make_classification,
    make_friedman1,
    make_friedman2,
    make_friedman3,
    make_moons,
    make_regression,
    make_sparse_uncorrelated,
)
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from skdnn import DNNClassifier, DNNRegressor
from skdnn.datasets import make_multi_gaussian, make_plane, make_spiral, make_xor

# This directory's bench.py, also where this file is loaded by its path.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import describe_machine, list_table_head  # noqa: E402


def _bundled(loader):
    def data():
        return loader(return_X_y=True)

    data.__doc__ = f"scikit-learn's {loader.__name__[5:]} data set."
    return data


def _moons(n_samples):
    def data():
        return make_moons(n_samples, noise=0.3, random_state=0)

    data.__doc__ = f"make_moons, {n_samples} rows, noise 0.3."
    return data


def _circles():
    """make_circles, 500 rows, noise 0.2, factor 0.5."""
    return make_circles(500, noise=0.2, factor=0.5, random_state=0)


def _xor():
    """The Playground's XOR, 500 rows; labels read up to 0.5 away."""
    return make_xor(500, noise=0.1, random_state=0)


def _spiral():
    """The Playground's two spirals, 500 rows, noise 0.3."""
    return make_spiral(500, noise=0.3, random_state=0)


def _checkerboard():
    """A 4x4 checkerboard on the unit square, 1,000 uniform points."""
    X = np.random.default_rng(0).uniform(size=(1_000, 2))
    y = np.floor(4 * X).astype(np.int64).sum(axis=1) % 2
    return X, y


def _classification(**params):
    def data():
        return make_classification(**params, random_state=0)

    data.__doc__ = f"make_classification({params})."
    return data


# Name -> a function returning (X, y), always the same rows.
SETS = {
    "iris": _bundled(load_iris),
    "wine": _bundled(load_wine),
    "breast_cancer": _bundled(load_breast_cancer),
    "digits": _bundled(load_digits),
    "moons_150": _moons(150),
    "moons": _moons(500),
    "moons_2000": _moons(2_000),
    "circles": _circles,
    "xor": _xor,
    "spiral": _spiral,
    "checkerboard": _checkerboard,
    "classif_3c_20f": _classification(
        n_samples=1_000, n_features=20, n_informative=5, n_classes=3
    ),
    "classif_200f": _classification(n_samples=1_500, n_features=200, n_informative=15),
    "imbalanced_9to1": _classification(
        n_samples=1_000, n_features=20, weights=[0.9, 0.1]
    ),
    "classif_10c": _classification(
        n_samples=2_000, n_features=20, n_informative=10, n_classes=10
    ),
}
QUICK_SETS = ["iris", "wine", "moons_150"]


def _mlp():
    return make_pipeline(StandardScaler(), MLPClassifier(random_state=0))


def _dnn(**params):
    return make_pipeline(StandardScaler(), DNNClassifier(random_state=0, **params))


def _hgb():
    return HistGradientBoostingClassifier(random_state=0)


def _realmlp():
    from pytabkit import RealMLP_TD_Classifier

    # n_threads: one, as for every model here (see main); the rest defaults.
    return RealMLP_TD_Classifier(device="cpu", random_state=0, n_threads=1)


MODELS = {"mlp": _mlp, "dnn": _dnn, "hgb": _hgb, "realmlp": _realmlp}
DESCRIPTIONS = {
    "mlp": "StandardScaler + MLPClassifier(random_state=0)",
    "dnn": "StandardScaler + DNNClassifier(random_state=0)",
    "hgb": "HistGradientBoostingClassifier(random_state=0)",
    "realmlp": "RealMLP_TD_Classifier(device='cpu', random_state=0, n_threads=1)",
}


# Regression: each model as its documentation advises a user to run it. The
# networks see standardized features and a standardized target
# (TransformedTargetRegressor): an unscaled target (Friedman #2's reaches
# 1,700) stalls any network trained from a small initialisation, and
# MLPRegressor's and DNNRegressor's documentation both say to scale it.
# Gradient boosting needs neither; RealMLP scales both itself.


def _friedman(maker, noise):
    def data():
        return maker(n_samples=2_000, noise=noise, random_state=0)

    data.__doc__ = f"{maker.__name__}, 2,000 rows, noise {noise}."
    return data


def _linear_100f():
    """make_regression: 1,000 rows, 100 features of which 20 informative,
    noise 50 (a linear target that many features make noisy to learn)."""
    X, y = make_regression(
        n_samples=1_000, n_features=100, n_informative=20, noise=50.0, random_state=0
    )
    return X, y


def _sparse_uncorrelated():
    """make_sparse_uncorrelated: 1,000 rows, 10 features, 4 of them used."""
    return make_sparse_uncorrelated(n_samples=1_000, random_state=0)


def _sine_surface():
    """A 2-D surface, sin(x1) cos(x2) on [-3, 3]^2, 1,000 rows, noise 0.1."""
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, size=(1_000, 2))
    y = np.sin(X[:, 0]) * np.cos(X[:, 1]) + rng.normal(scale=0.1, size=1_000)
    return X, y


def _playground(maker):
    def data():
        return maker(1_000, noise=0.2, random_state=0)

    data.__doc__ = f"The Playground's {maker.__name__[5:]}, 1,000 rows, noise 0.2."
    return data


REGRESSION_SETS = {
    "diabetes": _bundled(load_diabetes),
    "friedman1": _friedman(make_friedman1, 1.0),
    "friedman2": _friedman(make_friedman2, 50.0),
    "friedman3": _friedman(make_friedman3, 0.1),
    "linear_100f": _linear_100f,
    "sparse_uncorrelated": _sparse_uncorrelated,
    "sine_surface": _sine_surface,
    "plane": _playground(make_plane),
    "multi_gaussian": _playground(make_multi_gaussian),
}
REGRESSION_QUICK_SETS = ["diabetes", "sine_surface"]


def _scaled_target(regressor):
    return TransformedTargetRegressor(
        make_pipeline(StandardScaler(), regressor), transformer=StandardScaler()
    )


def _realmlp_regressor():
    from pytabkit import RealMLP_TD_Regressor

    return RealMLP_TD_Regressor(device="cpu", random_state=0, n_threads=1)


REGRESSION_MODELS = {
    "mlp": lambda: _scaled_target(MLPRegressor(random_state=0)),
    "dnn": lambda **params: _scaled_target(DNNRegressor(random_state=0, **params)),
    "hgb": lambda: HistGradientBoostingRegressor(random_state=0),
    "realmlp": _realmlp_regressor,
}
REGRESSION_DESCRIPTIONS = {
    "mlp": "StandardScaler + MLPRegressor(random_state=0), target standardized",
    "dnn": "StandardScaler + DNNRegressor(random_state=0), target standardized",
    "hgb": "HistGradientBoostingRegressor(random_state=0)",
    "realmlp": "RealMLP_TD_Regressor(device='cpu', random_state=0, n_threads=1)",
}


class Task:
    """What differs between the classification and the regression runs."""

    def __init__(self, name, sets, quick_sets, models, descriptions, metric, cv):
        self.name, self.sets, self.quick_sets = name, sets, quick_sets
        self.models, self.descriptions = models, descriptions
        # The key of each cell's fold scores; ``score`` computes it.
        self.metric, self.cv = metric, cv


TASKS = {
    "classification": Task(
        "classification", SETS, QUICK_SETS, MODELS, DESCRIPTIONS, "accuracy",
        lambda folds: StratifiedKFold(n_splits=folds, shuffle=True, random_state=0),
    ),
    "regression": Task(
        "regression", REGRESSION_SETS, REGRESSION_QUICK_SETS, REGRESSION_MODELS,
        REGRESSION_DESCRIPTIONS, "r2",
        lambda folds: KFold(n_splits=folds, shuffle=True, random_state=0),
    ),
}  # fmt: skip
CLASSIFICATION = TASKS["classification"]


def _skipped(names):
    """Models of ``names`` that cannot run here, with the reason."""
    if "realmlp" not in names:
        return {}
    try:
        import pytabkit  # noqa: F401
    except ImportError as error:
        return {"realmlp": f"pytabkit does not import: {error}"}
    return {}


def _dnn_variant(text):
    """``NAME=JSON`` from the command line -> (name, DNNClassifier parameters)."""
    name, sep, params = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=JSON, got {text!r}")
    try:
        params = json.loads(params)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"{name}: {error}") from None
    if not isinstance(params, dict):
        raise argparse.ArgumentTypeError(f"{name}: JSON must be an object")
    # JSON has no tuples; the estimator's contract wants them.
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return name, params


def describe(names, task=CLASSIFICATION):
    """Rows, features and (for classification) classes of each data set."""
    out = {}
    for name in names:
        X, y = task.sets[name]()
        out[name] = {"rows": X.shape[0], "features": X.shape[1]}
        if task.metric == "accuracy":
            out[name]["classes"] = len(np.unique(y))
    return out


def run(set_names, makers, folds, task=CLASSIFICATION):
    """Cross-validate each model of ``makers`` (name -> factory) on each set:
    each cell holds the fold scores (``score``: accuracy or R^2) under the
    task's metric name, their mean, and the fit seconds."""
    metric = task.metric
    results = {}
    for set_name in set_names:
        X, y = task.sets[set_name]()
        cv = task.cv(folds)
        row = {m: {metric: [], "fold_fit_seconds": []} for m in makers}
        # Models alternate fold by fold, so that a change in machine load
        # hits all of them.
        for train, test in cv.split(X, y):
            for model_name, make in makers.items():
                model = make()
                start = time.perf_counter()
                model.fit(X[train], y[train])
                row[model_name]["fold_fit_seconds"].append(time.perf_counter() - start)
                row[model_name][metric].append(float(model.score(X[test], y[test])))
        for cell in row.values():
            cell[f"mean_{metric}"] = statistics.fmean(cell[metric])
            cell["fit_seconds"] = sum(cell["fold_fit_seconds"])
        results[set_name] = row
        print(
            f"{set_name}: "
            + ", ".join(f"{m} {c[f'mean_{metric}']:.3f}" for m, c in row.items()),
            file=sys.stderr,
            flush=True,
        )
    return results


def _pair(item, key):
    return {"set": item[0], key: item[1]}


def summary(results, models, metric="accuracy"):
    """Per model: mean score, worst set against mlp, fastest and slowest
    set, and its largest fit time as a fraction of realmlp's on a set (the
    issue's target for the defaults: at most 1/5)."""
    key = f"mean_{metric}"
    out = {}
    for model in models:
        acc = {s: row[model][key] for s, row in results.items()}
        fit = {s: row[model]["fit_seconds"] for s, row in results.items()}
        entry = {
            key: statistics.fmean(acc.values()),
            "fastest": _pair(min(fit.items(), key=lambda kv: kv[1]), "seconds"),
            "slowest": _pair(max(fit.items(), key=lambda kv: kv[1]), "seconds"),
            "worst_vs_mlp": None,
        }
        if "mlp" in models and model != "mlp":
            gaps = {s: acc[s] - results[s]["mlp"][key] for s in acc}
            worst = min(gaps.items(), key=lambda kv: kv[1])
            entry["worst_vs_mlp"] = _pair(worst, "difference")
        if "realmlp" in models and model != "realmlp":
            ratios = {s: fit[s] / results[s]["realmlp"]["fit_seconds"] for s in fit}
            slowest = max(ratios.items(), key=lambda kv: kv[1])
            entry["slowest_vs_realmlp"] = _pair(slowest, "time_ratio")
        out[model] = entry
    return out


def _table(title, results, models, key, fmt, mean_fmt=None):
    width = max(len(s) for s in [*results, title]) + 2
    lines = [f"{title:{width}}" + "".join(f"{m:>12}" for m in models)]
    for set_name, row in results.items():
        cells = "".join(f"{fmt.format(row[m][key]):>12}" for m in models)
        lines.append(f"{set_name:{width}}{cells}")
    means = [statistics.fmean(row[m][key] for row in results.values()) for m in models]
    fmt = mean_fmt or fmt
    lines.append(f"{'mean':{width}}" + "".join(f"{fmt.format(v):>12}" for v in means))
    return lines


def report(results, models, sets, skipped, folds, metric="accuracy"):
    """The plain text tables and per-model lines."""
    width = max(len(s) for s in [*sets, "data set"]) + 2
    columns = [c for c in ("rows", "features", "classes") if c in next(iter(
        sets.values()))]  # fmt: skip
    lines = [f"{'data set':{width}}" + "".join(f"{c:>9}" for c in columns)]
    lines += [
        f"{s:{width}}" + "".join(f"{d[c]:>9}" for c in columns) for s, d in sets.items()
    ]
    lines.append("")
    lines += _table(f"{metric}, {folds} folds", results, models, f"mean_{metric}",
                    "{:.3f}")  # fmt: skip
    lines.append("")
    lines += _table("fit seconds, all folds", results, models, "fit_seconds", "{:.2f}")
    lines.append("")
    for model, entry in summary(results, models, metric).items():
        fast, slow = entry["fastest"], entry["slowest"]
        line = (
            f"{model}: mean {metric} {entry[f'mean_{metric}']:.4f}; fit "
            f"{fast['seconds']:.2f} s ({fast['set']}) to {slow['seconds']:.2f} s "
            f"({slow['set']})"
        )
        if entry["worst_vs_mlp"] is not None:
            worst = entry["worst_vs_mlp"]
            line += f"; worst against mlp {worst['difference']:+.3f} ({worst['set']})"
        if "slowest_vs_realmlp" in entry:
            slow = entry["slowest_vs_realmlp"]
            line += (
                f"; at most {slow['time_ratio']:.2f} of realmlp's time ({slow['set']})"
            )
        lines.append(line)
    lines += [f"{m}: skipped, {why}" for m, why in skipped.items()]
    return "\n".join(lines)


def _rst(results, models, sets, skipped, machine, date, folds, metric="accuracy"):
    """Scores and fit time as reStructuredText list-tables, for the docs."""
    title, what = {
        "accuracy": ("Test accuracy", "Mean test accuracy of stratified"),
        "r2": ("Test R^2", "Mean test R^2 of"),
    }[metric]
    lines = [
        f"Measured on {date} with ``python benchmarks/quality.py``: "
        f"{machine['processor']}, one thread per fit, {machine['platform']}; "
        f"Python {machine['python']}, torch {machine['torch']}, scikit-learn "
        f"{machine['scikit-learn']}, skdnn {machine['skdnn']}"
        + (f", pytabkit {machine['pytabkit']}" if machine["pytabkit"] else "")
        + f". {what} {folds}-fold cross-validation, "
        "and fit seconds summed over the folds.",
        "",
    ]
    if skipped:
        lines += [
            f"Not run: {', '.join(f'{m} ({w})' for m, w in skipped.items())}.",
            "",
        ]
    tables = [
        (title, f"mean_{metric}", "{:.3f}"),
        ("Fit, seconds over all folds", "fit_seconds", "{:.2f}"),
    ]
    for title, key, fmt in tables:
        lines += list_table_head(title, "data set", models)
        for set_name, row in results.items():
            d = sets[set_name]
            classes = f", {d['classes']} classes" if "classes" in d else ""
            lines.append(f"   * - {set_name} ({d['rows']} x {d['features']}{classes})")
            lines += [f"     - {fmt.format(row[m][key])}" for m in models]
        lines.append("   * - mean")
        for m in models:
            mean = statistics.fmean(row[m][key] for row in results.values())
            lines.append(f"     - {fmt.format(mean)}")
        lines.append("")
    return "\n".join(lines)


def _machine():
    try:
        pytabkit_version = importlib.metadata.version("pytabkit")
    except importlib.metadata.PackageNotFoundError:
        pytabkit_version = None
    return describe_machine(pytabkit=pytabkit_version)


def _parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--task", default="classification", choices=list(TASKS),
        help="the data sets and models: classifiers (default) or regressors",
    )  # fmt: skip
    parser.add_argument(
        "--models", nargs="*", default=list(MODELS), choices=list(MODELS)
    )
    parser.add_argument(
        "--dnn",
        action="append",
        default=[],
        type=_dnn_variant,
        metavar="NAME=JSON",
        help="also a DNNClassifier (DNNRegressor) with these parameters (repeatable)",
    )
    parser.add_argument(
        "--sets", nargs="*", default=None, choices=[*SETS, *REGRESSION_SETS]
    )
    parser.add_argument("--folds", type=int, default=None)
    parser.add_argument(
        "--quick", action="store_true", help="2 folds, 2-3 small sets: a smoke test"
    )
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument(
        "--rst", default=None, help="write the tables here, for the docs"
    )
    return parser


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    task = TASKS[args.task]
    set_names = args.sets or (task.quick_sets if args.quick else list(task.sets))
    unknown = [s for s in set_names if s not in task.sets]
    if unknown:
        parser.error(f"--sets {unknown}: not data sets of the {task.name} task")
    folds = args.folds or (2 if args.quick else 5)
    models = [m for m in task.models if m in args.models]
    skipped = _skipped(models)
    makers = {m: task.models[m] for m in models if m not in skipped}
    descriptions = dict(task.descriptions)
    for name, params in args.dnn:
        if name in descriptions:
            parser.error(f"--dnn {name}: the name is taken")
        makers[name] = lambda p=params: task.models["dnn"](**p)
        descriptions[name] = f"{task.descriptions['dnn']}, **{json.dumps(params)}"
    warnings.simplefilter("ignore", ConvergenceWarning)
    # pytabkit's Lightning uses a torch name torch 2.13 deprecates, and says so
    # on every fit.
    warnings.filterwarnings(
        "ignore", category=FutureWarning, module="pytorch_lightning"
    )
    torch.set_num_threads(1)
    sets = describe(set_names, task)
    date = datetime.date.today().isoformat()
    machine = _machine()
    with threadpool_limits(1):
        # A first fit of each model pays one-time costs (imports, torch's
        # first calls) that no later fit pays; it is not timed.
        X, y = task.sets[task.quick_sets[0]]()
        for make in makers.values():
            make().fit(X, y)
        results = run(set_names, makers, folds, task)
    names = list(makers)
    print(json.dumps(machine))
    print(report(results, names, sets, skipped, folds, task.metric))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "date": date,
                    "machine": machine,
                    "task": task.name,
                    "folds": folds,
                    "sets": sets,
                    "models": {n: descriptions[n] for n in names},
                    "skipped": skipped,
                    "summary": summary(results, names, task.metric),
                    "results": results,
                },
                f,
                indent=2,
            )
    if args.rst:
        with open(args.rst, "w") as f:
            f.write(
                _rst(results, names, sets, skipped, machine, date, folds, task.metric)
            )


if __name__ == "__main__":
    main()
