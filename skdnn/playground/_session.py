"""One browser tab's Playground: its data, its network and its training.

The network is a real :class:`~skdnn.DNNClassifier` or
:class:`~skdnn.DNNRegressor` at the end of a scikit-learn Pipeline whose first
steps compute the input layer's features; the page's training is that
estimator's ``partial_fit``, one epoch per call, and its pictures are the
estimator's own values on a grid of the plane.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import base64
import threading
import warnings

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler

from .._classifier import DNNClassifier
from .._regressor import DNNRegressor
from ..inspection._network import _layer_values
from ..model_selection import validation_curve
from ._data import (
    DOMAIN,
    csv_domain,
    guess_columns,
    make_dataset,
    parse_csv,
    table_data,
)
from ._export import FILENAME, export_python
from ._state import ACTIVATIONS, normalize_state, transform_features

# Heat maps: the small neurons' and the output's side, in grid points.
NEURON_RESOLUTION = 24
OUTPUT_RESOLUTION = 64
MAX_EPOCHS_PER_STEP = 50
CURVE_DROPOUT = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
CURVE_FOLDS = 3


def network_params(state, epochs=1):
    """The estimator's parameters for a state, every 'auto' resolved.

    ``max_iter`` and ``n_iter_no_change`` are ``epochs``: a ``fit`` of the
    exported code trains exactly the page's number of epochs. The page itself
    calls ``partial_fit``, which reads neither.
    """
    epochs = max(int(epochs), 1)
    params = {
        "hidden_layer_sizes": tuple(state["layers"]),
        "activation": ACTIVATIONS[state["activation"]],
        "solver": state["optimizer"],
        "alpha": float(state["regularization_rate"]),
        "batch_size": state["batch_size"],
        "learning_rate_init": float(state["learning_rate"]),
        "max_iter": epochs,
        "n_iter_no_change": epochs,
        "random_state": state["seed"],
        # The page's network is the Playground's: one dropout rate per hidden
        # layer, no input scaling, one network (no restarts).
        "dropout": tuple(state["dropout"]) if state["layers"] else 0.0,
        "n_init": 1,
        "input_scaling": 0.0,
        # Toy networks train fastest on one CPU thread, and a server with
        # several tabs open gives each training one thread.
        "device": "cpu",
        "n_threads": 1,
    }
    if state["optimizer"] == "sgd":
        # The Playground's plain gradient descent, without momentum.
        params.update(momentum=0.0, nesterovs_momentum=False)
    if state["problem"] == "regression":
        # The toy targets lie in [-1, 1]; a CSV file's may be anywhere.
        params.update(early_stopping=False, target_scaling=state["dataset"] == "csv")
    return params


def network_state(estimator):
    """The controls an estimator's parameters set: ``network_params`` undone.

    The keys of the state that the network itself determines (problem,
    layers, dropout, activation, optimizer, learning rate, L2 rate, batch size
    and seed), read from ``estimator.get_params()``; a state's network and
    the network of the code it exports give the same.
    """
    params = estimator.get_params(deep=False)
    layers = [int(n) for n in params["hidden_layer_sizes"]]
    dropout = params["dropout"]
    rates = [float(p) for p in dropout] if np.ndim(dropout) else [float(dropout)]
    return {
        "problem": "classification" if is_classifier(estimator) else "regression",
        "layers": layers,
        "dropout": rates * len(layers) if len(rates) == 1 else rates,
        "activation": {v: k for k, v in ACTIVATIONS.items()}[params["activation"]],
        "optimizer": params["solver"],
        "learning_rate": params["learning_rate_init"],
        "regularization_rate": params["alpha"],
        "batch_size": params["batch_size"],
        "seed": params["random_state"],
    }


def make_network(state, epochs=1):
    """The page's pipeline: [scaling,] features, network."""
    estimator = DNNClassifier if state["problem"] == "classification" else DNNRegressor
    steps = []
    if state["dataset"] == "csv":
        # A file's columns may be in any unit; the features (sin, squares)
        # and the Playground's rates expect the toy sets' [-6, 6].
        steps.append(MinMaxScaler(feature_range=DOMAIN))
    steps.append(
        FunctionTransformer(
            transform_features, kw_args={"features": list(state["features"])}
        )
    )
    steps.append(estimator(**network_params(state, epochs)))
    return make_pipeline(*steps)


def _encode(values):
    """A map for the page: values in [-1, 1] as base64 bytes."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    scaled = np.clip((values + 1.0) * 127.5, 0, 255)
    return base64.b64encode(np.rint(scaled).astype(np.uint8).tobytes()).decode()


def _grid(domain, resolution):
    # Row 0 at the top (largest x2), column 0 at the left (smallest x1).
    x1 = np.linspace(*domain[0], resolution)
    x2 = np.linspace(*domain[1], resolution)[::-1]
    g1, g2 = np.meshgrid(x1, x2)
    return np.column_stack([g1.ravel(), g2.ravel()])


def _rounded(array, decimals=4):
    # JSON has no inf or NaN: a diverged network's weights are drawn at the
    # largest finite size instead.
    array = np.nan_to_num(np.asarray(array, dtype=np.float64), nan=0.0)
    return np.round(array, decimals).tolist()


def _finite(value):
    return float(value) if np.isfinite(value) else None


class Session:
    """A tab's data, network and history; every method holds its lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.table = None
        self.state = None

    def reset(self, raw_state):
        """A fresh network on freshly generated data; the frame with points."""
        state = normalize_state(raw_state)
        if state["dataset"] == "csv":
            if self.table is None:
                raise ValueError("Upload a CSV file before choosing dataset='csv'.")
            X, y = table_data(self.table, state["csv"], state["problem"])
            domain = csv_domain(X)
        else:
            X, y = make_dataset(state)
            domain = [DOMAIN, DOMAIN]
        split = train_test_split(
            X, y, train_size=state["train_ratio"] / 100, random_state=state["seed"]
        )
        pipeline = make_network(state)
        preprocess = pipeline[:-1]
        X_train = preprocess.fit_transform(split[0])
        # Everything is checked: only now does the tab's network change.
        self.state, self.pipeline, self.domain = state, pipeline, domain
        self.data_table = self.table if state["dataset"] == "csv" else None
        self.X_train_raw, self.X_test_raw, self.y_train, self.y_test = split
        self.X_train, self.X_test = X_train, preprocess.transform(split[1])
        self.classifier = state["problem"] == "classification"
        self.classes = np.unique(y) if self.classifier else None
        # The toy targets lie in [-1, 1]; a file's regression target is
        # drawn on the scale of its largest magnitude.
        self.scale = 1.0
        if not self.classifier and state["dataset"] == "csv":
            self.scale = max(float(np.abs(y).max()), 1e-12)
        self.grid_neurons = preprocess.transform(_grid(domain, NEURON_RESOLUTION))
        self.grid_output = preprocess.transform(_grid(domain, OUTPUT_RESOLUTION))
        self.epoch = 0
        self.history = []
        self._initialise()
        self._evaluate()
        frame = self.frame(list(self.history))
        frame.update(state=state, points=self._points(), domain=self._domain())
        if self.classifier:
            frame["classes"] = [str(c) for c in self.classes]
        return frame

    @property
    def network(self):
        return self.pipeline[-1]

    def _initialise(self):
        # What partial_fit does before its first epoch: check the rows, set up
        # the labels and draw the initial weights from random_state. The page
        # shows this untrained network as epoch 0, and the first partial_fit
        # goes on from it.
        network = self.network
        classes = self.classes if self.classifier else None
        fit = network._checked_input(self.X_train, self.y_train, None, False, classes)
        network._start_fit(fit)

    def step(self, epochs=1):
        """Train ``epochs`` more epochs with ``partial_fit``; the new frame."""
        if not 1 <= epochs <= MAX_EPOCHS_PER_STEP:
            raise ValueError(
                f"epochs={epochs!r} is not valid: expected an integer from 1 to "
                f"{MAX_EPOCHS_PER_STEP}."
            )
        for _ in range(epochs):
            self._epoch()
        # The page keeps the history: a step sends only its own epochs', so
        # that a long training's frames do not grow.
        return self.frame(self.history[-epochs:])

    def _epoch(self):
        network = self.network
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            network.partial_fit(self.X_train, self.y_train)
        self.epoch += 1
        self._evaluate()

    def _evaluate(self):
        """The epoch's losses (into the history) and scores, from one
        prediction of each set."""
        network = self.network
        losses, self.scores = [], {}
        for name, X, y in (
            ("train", self.X_train, self.y_train),
            ("test", self.X_test, self.y_test),
        ):
            loss = score = None
            if len(y) and self.classifier:
                proba = network.predict_proba(X)
                loss = _finite(log_loss(y, proba, labels=self.classes))
                predicted = network.classes_[np.argmax(proba, axis=1)]
                score = _finite(accuracy_score(y, predicted)) if len(y) > 1 else None
            elif len(y):
                predicted = network.predict(X)
                loss = _finite(mean_squared_error(y, predicted))
                score = _finite(r2_score(y, predicted)) if len(y) > 1 else None
            losses.append(loss)
            self.scores[name] = score
        self.scores["name"] = "accuracy" if self.classifier else "R²"
        self.history.append([self.epoch, *losses])

    def frame(self, history):
        """What the page draws: losses, heat maps and weights; ``history``,
        the rows of the history it has not seen."""
        network = self.network
        _, train_loss, test_loss = self.history[-1]
        return {
            "epoch": self.epoch,
            "loss": {"train": train_loss, "test": test_loss},
            "score": dict(self.scores),
            "history": history,
            "columns": self._columns(),
            "weights": [_rounded(W) for W in network.coefs_],
            "biases": [_rounded(b) for b in network.intercepts_],
        }

    def _columns(self):
        network = self.network
        values = _layer_values(network, self.grid_neurons)
        inputs = values[0]
        # Each feature's map on its own scale, as the Playground draws them.
        spread = np.maximum(np.abs(inputs).max(axis=0), 1e-12)
        columns = [
            {
                "kind": "input",
                "names": list(self.state["features"]),
                "resolution": NEURON_RESOLUTION,
                "maps": [_encode(column) for column in (inputs / spread).T],
            }
        ]
        for rate, hidden in zip(self.state["dropout"], values[1:-1], strict=True):
            columns.append(
                {
                    "kind": "hidden",
                    "dropout": rate,
                    "resolution": NEURON_RESOLUTION,
                    "maps": [_encode(column) for column in hidden.T],
                }
            )
        columns.append(
            {
                "kind": "output",
                "resolution": OUTPUT_RESOLUTION,
                "maps": [_encode(self._output_values())],
            }
        )
        return columns

    def _output_values(self):
        network = self.network
        if self.classifier:
            return 2.0 * network.predict_proba(self.grid_output)[:, 1] - 1.0
        return network.predict(self.grid_output) / self.scale

    def _points(self):
        def rows(X, y):
            if self.classifier:
                y = np.where(y == self.classes[1], 1.0, -1.0)
            else:
                y = y / self.scale
            return _rounded(np.column_stack([X, y])) if len(y) else []

        return {
            "train": rows(self.X_train_raw, self.y_train),
            "test": rows(self.X_test_raw, self.y_test),
        }

    def _domain(self):
        return {"x1": list(self.domain[0]), "x2": list(self.domain[1])}

    def upload(self, data, name):
        """Keep an uploaded CSV file; its columns and a guess at their roles."""
        table = parse_csv(data, name)
        self.table = table
        return {
            "columns": table.columns,
            "rows": len(table.rows),
            "guess": guess_columns(table),
        }

    def export(self):
        """Copy as Python: the script that trains this network from scratch."""
        code = export_python(
            self.state,
            self.network,
            epochs=self.epoch,
            test_score=self.scores["test"],
            table=self.data_table,
        )
        return {"code": code, "filename": FILENAME}

    def curve(self):
        """Train and test score over dropout: what it does to overfitting.

        Each rate is trained for the page's epochs (at least 100, at most
        300) on each of 3 folds of the training set, all in one batch
        (:func:`skdnn.model_selection.validation_curve`).
        """
        if not self.state["layers"]:
            raise ValueError(
                "Dropout acts on hidden layers: add one before drawing the "
                "dropout curve."
            )
        epochs = min(max(self.epoch, 100), 300)
        pipeline = clone(self.pipeline)
        step = pipeline.steps[-1][0]
        pipeline.set_params(
            **{f"{step}__max_iter": epochs, f"{step}__n_iter_no_change": epochs}
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            train, test = validation_curve(
                pipeline,
                self.X_train_raw,
                self.y_train,
                param_name=f"{step}__dropout",
                param_range=CURVE_DROPOUT,
                cv=CURVE_FOLDS,
            )
        return {
            "param": "dropout",
            "values": CURVE_DROPOUT,
            # A failed fit scores NaN (scikit-learn's error_score): no point.
            "train": [_finite(round(v, 4)) for v in train.mean(axis=1)],
            "test": [_finite(round(v, 4)) for v in test.mean(axis=1)],
            "metric": "accuracy" if self.classifier else "R²",
            "epochs": epochs,
        }
