"""Copy as Python: the scikit-learn code that trains the page's network."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import inspect

from ._data import DOMAIN, GENERATORS, N_SAMPLES, generator_call
from ._state import FEATURES

FILENAME = "playground_network.py"


def _literal(value):
    # Python literals as a formatter writes them: double-quoted strings.
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _estimator_lines(estimator, epochs):
    """The estimator's parameters that differ from its defaults, one a line."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(type(estimator)).parameters.items()
    }
    comments = {
        "max_iter": "the epochs trained on the page"
        if epochs
        else "the page trained none; fit trains at least one",
        "n_iter_no_change": "never stop before them",
    }
    params = estimator.get_params(deep=False)
    lines = []
    # The signature's order, which the estimator's docs follow.
    for name, default in defaults.items():
        value = max(epochs, 1) if name in comments else params[name]
        if name not in comments and value == default:
            continue
        comment = f"  # {comments[name]}" if name in comments else ""
        lines.append(f"        {name}={_literal(value)},{comment}")
    return lines


def _data_lines(state, table, columns):
    if state["dataset"] == "csv":
        sep = "" if table.delimiter == "," else f", sep={_literal(table.delimiter)}"
        return (
            ["import pandas as pd"],
            [
                f"data = pd.read_csv({_literal(table.name)}{sep})  # the file uploaded "
                "to the Playground",
                f"X = data[[{_literal(columns['x1'])}, {_literal(columns['x2'])}]]"
                ".to_numpy(dtype=float)",
                f"y = data[{_literal(columns['target'])}].to_numpy()",
            ],
        )
    call = generator_call(
        state["dataset"],
        N_SAMPLES[state["problem"]],
        state["noise"] / 100,
        state["seed"],
    )
    return [GENERATORS[state["dataset"]][1]], [f"X, y = {call}"]


def export_python(state, estimator, *, epochs, test_score, table=None):
    """The script that trains the page's network from scratch.

    Parameters
    ----------
    state : dict
        The page's normalised state.
    estimator : DNNClassifier or DNNRegressor
        The page's network, whose parameters the script copies.
    epochs : int
        Epochs trained on the page: the script's ``max_iter``.
    test_score : float or None
        The page's test accuracy or R^2, quoted in the script's docstring.
    table : Table, default=None
        The uploaded file, for ``dataset='csv'``.

    Returns
    -------
    code : str
    """
    classifier = state["problem"] == "classification"
    data_imports, data_lines = _data_lines(state, table, state["csv"])
    names = ", ".join(FEATURES[name][0] for name in state["features"])
    expressions = ", ".join(FEATURES[name][1] for name in state["features"])
    layers = ", ".join(str(n) for n in state["layers"]) or "none"
    metric = "accuracy" if classifier else "R^2"
    quoted = "" if test_score is None else f" (test {metric} {test_score:.3f} there)"
    preprocessing = ["FunctionTransformer"]
    steps = ["    FunctionTransformer(playground_features),"]
    data = state["dataset"]
    if data == "csv":
        preprocessing.append("MinMaxScaler")
        steps.insert(0, f"    MinMaxScaler(feature_range={DOMAIN!r}),")
        data = f"the uploaded file {table.name}"
    lines = [
        '"""The network of the skdnn Playground, as scikit-learn code.',
        "",
        f"Data: {data}; features {names}; hidden layers: {layers};",
        f"trained for {epochs} epochs on the page{quoted}.",
        '"""',
        "",
        "import warnings",
        "",
        "import numpy as np",
        *[line for line in data_imports if line.startswith("import ")],
        *sorted(
            [
                "from sklearn.exceptions import ConvergenceWarning",
                "from sklearn.model_selection import train_test_split",
                "from sklearn.pipeline import make_pipeline",
                f"from sklearn.preprocessing import {', '.join(preprocessing)}",
                *[line for line in data_imports if line.startswith("from sklearn")],
            ]
        ),
        "",
        f"from skdnn import {type(estimator).__name__}",
        *[line for line in data_imports if line.startswith("from skdnn")],
        "",
        *data_lines,
        "X_train, X_test, y_train, y_test = train_test_split(",
        f"    X, y, train_size={state['train_ratio'] / 100}, "
        f"random_state={state['seed']}",
        ")",
        "",
        "",
        "def playground_features(X):",
        f'    """The input layer: {names}."""',
        "    x1, x2 = X[:, 0], X[:, 1]",
        f"    return np.column_stack([{expressions}])",
        "",
        "",
        "model = make_pipeline(",
        *steps,
        f"    {type(estimator).__name__}(",
        *_estimator_lines(estimator, epochs),
        "    ),",
        ")",
        "# fit trains the page's epochs and stops at max_iter on purpose.",
        'warnings.filterwarnings("ignore", category=ConvergenceWarning)',
        "model.fit(X_train, y_train)",
        f'print(f"test {metric}: {{model.score(X_test, y_test):.3f}}")',
        "",
    ]
    return "\n".join(lines)
