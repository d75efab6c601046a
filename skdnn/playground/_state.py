"""The Playground's state: every control of the page, checked and normalised.

The page keeps the state and mirrors it in its URL; the server rebuilds the
data and the network from it. Every value is checked here, before any work,
and a bad one is answered with a message that names the control, the value
and what the control takes.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import math
from numbers import Real

import numpy as np

# The input layer's features, in the page's order: (label, expression of the
# columns x1 and x2). The expressions are the exported code's, and
# ``transform_features`` computes the same values.
FEATURES = {
    "x1": ("X₁", "x1"),
    "x2": ("X₂", "x2"),
    "x1^2": ("X₁²", "x1**2"),
    "x2^2": ("X₂²", "x2**2"),
    "x1x2": ("X₁X₂", "x1 * x2"),
    "sinx1": ("sin(X₁)", "np.sin(x1)"),
    "sinx2": ("sin(X₂)", "np.sin(x2)"),
}

_FEATURE_FUNCTIONS = {
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1^2": lambda x1, x2: x1**2,
    "x2^2": lambda x1, x2: x2**2,
    "x1x2": lambda x1, x2: x1 * x2,
    "sinx1": lambda x1, x2: np.sin(x1),
    "sinx2": lambda x1, x2: np.sin(x2),
}

DATASETS = {
    "classification": ["circle", "xor", "gauss", "spiral"],
    "regression": ["plane", "multigauss"],
}

# The TensorFlow Playground's menus, and its defaults but for the optimizer:
# Adam, which the Playground lacks, trains its toy networks in fewer epochs
# at its default rate.
CHOICES = {
    "problem": ["classification", "regression"],
    "dataset": DATASETS,
    "noise": list(range(0, 55, 5)),
    "train_ratio": list(range(10, 100, 10)),
    "batch_size": [1, 30],
    "features": list(FEATURES),
    "feature_labels": {name: label for name, (label, _) in FEATURES.items()},
    "max_layers": 6,
    "max_neurons": 8,
    "dropout": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5],
    "activation": ["relu", "tanh", "sigmoid", "linear"],
    "optimizer": ["sgd", "adam"],
    "learning_rate": [1e-5, 1e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    "regularization_rate": [0.0, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
}

DEFAULTS = {
    "problem": "classification",
    "dataset": "circle",
    "noise": 0,
    "train_ratio": 50,
    "batch_size": 10,
    "features": ["x1", "x2"],
    "layers": [4, 2],
    "dropout": [0.0, 0.0],
    "activation": "tanh",
    "optimizer": "adam",
    "learning_rate": 0.03,
    "regularization_rate": 0.0,
    "seed": 1,
    "show_test": False,
    "discretize": False,
    "csv": None,
}

MAX_SEED = 999_999

# The estimator's name for each of the page's activations.
ACTIVATIONS = {
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "logistic",
    "linear": "identity",
}


def transform_features(X, features):
    """The input layer: the chosen features of the points ``X`` (n, 2)."""
    x1, x2 = X[:, 0], X[:, 1]
    return np.column_stack([_FEATURE_FUNCTIONS[name](x1, x2) for name in features])


def _fail(key, value, expected):
    raise ValueError(f"{key}={value!r} is not valid: expected {expected}.")


def _choice(key, value, choices):
    # Numbers from the URL may come as 0.030000000000000002 or as strings.
    for choice in choices:
        if value == choice:
            return choice
        if isinstance(choice, Real) and not isinstance(value, bool):
            try:
                if math.isclose(float(value), choice, rel_tol=1e-9):
                    return choice
            except (TypeError, ValueError):
                pass
    _fail(key, value, f"one of {choices}")


def _integer(key, value, low, high):
    if isinstance(value, bool):
        _fail(key, value, f"an integer from {low} to {high}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        _fail(key, value, f"an integer from {low} to {high}")
    if not number.is_integer() or not low <= number <= high:
        _fail(key, value, f"an integer from {low} to {high}")
    return int(number)


def _boolean(key, value):
    if isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1", "true", "false"):
        return value in (1, "1", "true")
    _fail(key, value, "true or false")


def _list(key, value):
    if isinstance(value, str):
        return [item for item in value.split(",") if item != ""]
    if isinstance(value, (list, tuple)):
        return list(value)
    _fail(key, value, "a list")


def _layers(value):
    expected = (
        f"0 to {CHOICES['max_layers']} hidden layers of 1 to "
        f"{CHOICES['max_neurons']} neurons each"
    )
    layers = _list("layers", value)
    if len(layers) > CHOICES["max_layers"]:
        _fail("layers", value, expected)
    try:
        return [_integer("layers", n, 1, CHOICES["max_neurons"]) for n in layers]
    except ValueError:
        # The message names the whole list, as the page and the URL hold it.
        _fail("layers", value, expected)


def _features(value):
    features = [
        _choice("features", name, CHOICES["features"])
        for name in _list("features", value)
    ]
    if not features:
        _fail("features", value, "at least one input feature")
    # The page's order, once each: the exported code and the URL then agree.
    return [name for name in FEATURES if name in features]


def _csv_columns(value):
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"x1", "x2", "target"}:
        _fail("csv", value, "an object with the columns 'x1', 'x2' and 'target'")
    if not all(isinstance(column, str) for column in value.values()):
        _fail("csv", value, "column names")
    return dict(value)


def normalize_state(raw):
    """Check a (possibly partial) state and fill in the defaults.

    Parameters
    ----------
    raw : dict
        The page's state; missing keys take the defaults, unknown keys are
        ignored (a URL from a later version still opens).

    Returns
    -------
    state : dict
        Every key of ``DEFAULTS``, each value checked.

    Raises
    ------
    ValueError
        Naming the first control whose value is not one it takes.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"The state must be a JSON object; got {raw!r}.")
    value = {**DEFAULTS, **{k: v for k, v in raw.items() if k in DEFAULTS}}
    state = {"problem": _choice("problem", value["problem"], CHOICES["problem"])}
    datasets = DATASETS[state["problem"]]
    if "problem" in raw and "dataset" not in raw:
        value["dataset"] = datasets[0]
    state["dataset"] = _choice("dataset", value["dataset"], [*datasets, "csv"])
    state["noise"] = _choice("noise", value["noise"], CHOICES["noise"])
    state["train_ratio"] = _choice(
        "train_ratio", value["train_ratio"], CHOICES["train_ratio"]
    )
    state["batch_size"] = _integer(
        "batch_size", value["batch_size"], *CHOICES["batch_size"]
    )
    state["features"] = _features(value["features"])
    state["layers"] = _layers(value["layers"])
    dropout = _list("dropout", value["dropout"])
    if "dropout" not in raw and "layers" in raw:
        dropout = [0.0] * len(state["layers"])
    if len(dropout) != len(state["layers"]):
        _fail(
            "dropout",
            value["dropout"],
            f"one rate per hidden layer ({len(state['layers'])})",
        )
    state["dropout"] = [_choice("dropout", p, CHOICES["dropout"]) for p in dropout]
    for key in ("activation", "optimizer", "learning_rate", "regularization_rate"):
        state[key] = _choice(key, value[key], CHOICES[key])
    state["seed"] = _integer("seed", value["seed"], 0, MAX_SEED)
    state["show_test"] = _boolean("show_test", value["show_test"])
    state["discretize"] = _boolean("discretize", value["discretize"])
    state["csv"] = _csv_columns(value["csv"]) if state["dataset"] == "csv" else None
    if state["dataset"] == "csv" and state["csv"] is None:
        _fail("csv", None, "the columns of the uploaded file for dataset='csv'")
    return state
