"""The Playground's data: its toy data sets, and the user's own CSV file."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import csv
import io
import math
from dataclasses import dataclass

import numpy as np

from ..datasets import (
    make_circle,
    make_multi_gaussian,
    make_plane,
    make_spiral,
    make_xor,
)

# The Playground's "Gaussian" set is scikit-learn's blobs (see skdnn.datasets),
# so the exported code calls make_blobs too.
from ..inspection._playground import _gaussians as _gauss

# The TensorFlow Playground's numbers of points.
N_SAMPLES = {"classification": 500, "regression": 1200}

# The toy sets' plane, on which the heat maps are drawn.
DOMAIN = (-6.0, 6.0)

# An upload is refused beyond these, before it is parsed: the page is for
# small 2-D data sets, and each frame predicts on every point.
UPLOAD_BYTES = 1_000_000
UPLOAD_ROWS = 10_000
MIN_ROWS = 10

# Values a CSV file writes for "missing".
_MISSING = {"", "na", "nan", "n/a", "null", "none", "?"}


# Each data set: its generator, and the import and call the exported code
# writes (``{n}``, ``{noise}`` and ``{seed}`` filled in).
GENERATORS = {
    "circle": (make_circle, "from skdnn.datasets import make_circle", None),
    "xor": (make_xor, "from skdnn.datasets import make_xor", None),
    "spiral": (make_spiral, "from skdnn.datasets import make_spiral", None),
    "plane": (make_plane, "from skdnn.datasets import make_plane", None),
    "multigauss": (
        make_multi_gaussian,
        "from skdnn.datasets import make_multi_gaussian",
        None,
    ),
    "gauss": (
        _gauss,
        "from sklearn.datasets import make_blobs",
        "make_blobs(\n    {n},\n    centers=[(-2, -2), (2, 2)],\n"
        "    cluster_std=np.sqrt(0.5 + 7 * {noise}),\n    random_state={seed},\n)",
    ),
}


def generator_call(dataset, n_samples, noise, seed):
    """The exported code's call that generates ``dataset``."""
    function, _, template = GENERATORS[dataset]
    if template is None:
        return (
            f"{function.__name__}(n_samples={n_samples}, noise={noise}, "
            f"random_state={seed})"
        )
    return template.format(n=n_samples, noise=noise, seed=seed)


def make_dataset(state):
    """The points and labels or targets of a toy data set."""
    function = GENERATORS[state["dataset"]][0]
    n_samples = N_SAMPLES[state["problem"]]
    return function(n_samples, noise=state["noise"] / 100, random_state=state["seed"])


@dataclass
class Table:
    """An uploaded CSV file: its header and its rows, as text."""

    columns: list
    rows: list
    name: str = "data.csv"
    delimiter: str = ","

    def column(self, name):
        index = self.columns.index(name)
        return [row[index] for row in self.rows]


def _number(text):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_csv(data, name="data.csv"):
    """Read an uploaded CSV file, or say why it cannot be used.

    Parameters
    ----------
    data : bytes
        The file, at most ``UPLOAD_BYTES`` long.
    name : str, default="data.csv"
        The file's name, for the exported code.

    Returns
    -------
    table : Table

    Raises
    ------
    ValueError
        With a message for the page: not text, no header, fewer than three
        columns, ragged rows, too few or too many rows.
    """
    if len(data) > UPLOAD_BYTES:
        raise ValueError(
            f"The file is {len(data):,} bytes; the Playground takes files of at "
            f"most {UPLOAD_BYTES:,} bytes."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("The file is not a text (UTF-8) CSV file.") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ValueError("The file is empty.")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(row)]
    header = [name.strip() for name in rows[0]]
    if all(_number(name) is not None for name in header):
        raise ValueError(
            "The file has no header: its first row, "
            f"{', '.join(header)}, must name the columns."
        )
    if len(header) < 3:
        raise ValueError(
            f"The file has {len(header)} column(s) ({', '.join(header)}); the "
            "Playground needs two numeric feature columns and a label or target "
            "column."
        )
    if len(set(header)) < len(header) or "" in header:
        raise ValueError(
            f"The header names a column twice or leaves one unnamed: "
            f"{', '.join(header)}."
        )
    body = rows[1:]
    if len(body) > UPLOAD_ROWS:
        raise ValueError(
            f"The file has {len(body):,} rows; the Playground takes at most "
            f"{UPLOAD_ROWS:,}."
        )
    if len(body) < MIN_ROWS:
        raise ValueError(
            f"The file has {len(body)} data row(s); the Playground needs at "
            f"least {MIN_ROWS}."
        )
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"Line {line} has {len(row)} fields where the header has {len(header)}."
            )
    rows = [[field.strip() for field in row] for row in body]
    return Table(header, rows, name, dialect.delimiter)


def guess_columns(table):
    """The first two numeric columns as features; as target, the last other
    column with two values (a label), else the last other column."""
    numeric = [
        name
        for name in table.columns
        if all(_number(value) is not None for value in table.column(name))
    ]
    x1, x2 = (numeric + [c for c in table.columns if c not in numeric])[:2]
    others = [c for c in table.columns if c not in (x1, x2)]
    labels = [c for c in others if len(set(table.column(c))) == 2]
    return {"x1": x1, "x2": x2, "target": (labels or others)[-1]}


def _numeric_column(table, name, role):
    values = []
    for line, text in enumerate(table.column(name), start=2):
        if text.lower() in _MISSING:
            raise ValueError(
                f"The {role} column {name!r} has a missing value on line {line}."
            )
        value = _number(text)
        if value is None:
            raise ValueError(
                f"The {role} column {name!r} must be numeric; line {line} holds "
                f"{text!r}."
            )
        values.append(value)
    return np.asarray(values)


def _labels(table, name):
    labels = table.column(name)
    for line, text in enumerate(labels, start=2):
        if text.lower() in _MISSING:
            raise ValueError(
                f"The label column {name!r} has a missing value on line {line}."
            )
    numbers = [_number(text) for text in labels]
    if all(value is not None for value in numbers):
        # Numeric labels keep their numeric order and type: 0 and 1, not "0".
        y = np.asarray(numbers)
        if np.all(y == np.round(y)):
            y = y.astype(np.int64)
    else:
        y = np.asarray(labels, dtype=object)
    classes = np.unique(y)
    if len(classes) < 2:
        raise ValueError(
            f"The label column {name!r} holds one class ({classes[0]!r}); a "
            "classifier needs two."
        )
    if len(classes) > 2:
        shown = ", ".join(repr(c) for c in classes[:5].tolist())
        raise ValueError(
            f"The label column {name!r} holds {len(classes)} classes ({shown}"
            f"{', ...' if len(classes) > 5 else ''}); the Playground draws two. "
            "For a numeric target, choose the regression problem."
        )
    return y


def table_data(table, columns, problem):
    """The points and labels (or targets) of the chosen columns of a table.

    Raises
    ------
    ValueError
        For an unknown or repeated column, a missing or non-numeric value,
        one class, or more than two.
    """
    for role in ("x1", "x2", "target"):
        if columns[role] not in table.columns:
            raise ValueError(
                f"The file has no column {columns[role]!r} (for {role}); its "
                f"columns are {', '.join(table.columns)}."
            )
    if len(set(columns.values())) < 3:
        raise ValueError(
            "Choose three different columns for x1, x2 and the "
            f"{'label' if problem == 'classification' else 'target'}."
        )
    X = np.column_stack(
        [
            _numeric_column(table, columns["x1"], "feature"),
            _numeric_column(table, columns["x2"], "feature"),
        ]
    )
    if problem == "classification":
        y = _labels(table, columns["target"])
    else:
        y = _numeric_column(table, columns["target"], "target")
    return X, y


def csv_domain(X):
    """The plane drawn for a CSV file: its points' range, 5% wider each side."""
    low, high = X.min(axis=0), X.max(axis=0)
    margin = np.where(high > low, 0.05 * (high - low), 1.0)
    return [
        (float(lo), float(hi))
        for lo, hi in zip(low - margin, high + margin, strict=True)
    ]
