"""NetworkDisplay: the TensorFlow Playground's picture of a network on 2-D input.

A classifier's output is drawn as decision regions, a regressor's as a heat
map of its prediction; everything else is drawn alike.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import torch
from sklearn.base import is_classifier, is_regressor
from sklearn.inspection import DecisionBoundaryDisplay
from sklearn.utils.validation import (
    assert_all_finite,
    check_array,
    check_is_fitted,
    column_or_1d,
)

from .._network import ACTIVATIONS, OUTPUT_PROBA
from ._colors import BLUE, ORANGE, diverging_cmap

# What fits on a figure: panels of more units than this per layer are too
# small to read, and more hidden layers make the figure too wide.
_MAX_UNITS = 16
_MAX_HIDDEN_LAYERS = 8

# Layout in data units of the canvas Axes: neuron panels are _PANEL wide,
# rows of neurons 1 apart, columns of neurons _COLUMN_GAP apart.
_PANEL = 0.8
_COLUMN_GAP = 2.4
_MAX_LINEWIDTH = 4.0
_INCHES_PER_UNIT = 0.55
# Lighter regions than points, so that the points stand out.
_REGION_ALPHA = 0.6
# A regressor's heat map: its number of colour bands, and the room its
# colorbar and the colorbar's tick labels take right of it.
_PREDICTION_LEVELS = 21
_COLORBAR_WIDTH = 0.25
_COLORBAR_ROOM = 1.7

# The output layer's values from its raw output: a classifier's
# probabilities, a regressor's prediction.
_OUTPUTS = {**OUTPUT_PROBA, "identity": lambda z: z, "exp": torch.exp}


def _check_drawable(estimator):
    """Raise a clear error unless ``estimator`` is a network NetworkDisplay draws."""
    check_is_fitted(estimator)
    name = type(estimator).__name__
    classifier = is_classifier(estimator)
    if not (classifier or is_regressor(estimator)):
        raise ValueError(
            "NetworkDisplay draws a fitted multi-layer perceptron classifier or "
            f"regressor such as DNNClassifier or DNNRegressor; {name} is neither "
            "a classifier nor a regressor."
        )
    needed = ("coefs_", "intercepts_", "activation", "out_activation_")
    needed += ("classes_",) if classifier else ()
    missing = [attr for attr in needed if not hasattr(estimator, attr)]
    if missing:
        kind = "classifier" if classifier else "regressor"
        example = "DNNClassifier" if classifier else "DNNRegressor"
        raise ValueError(
            f"NetworkDisplay draws a fitted multi-layer perceptron {kind} such "
            f"as {example}; {name} has no {missing}."
        )
    if estimator.n_features_in_ != 2:
        raise ValueError(
            "NetworkDisplay draws networks on 2-D input; this network has "
            f"n_features_in_={estimator.n_features_in_}."
        )
    widths = [W.shape[1] for W in estimator.coefs_]
    if len(widths) - 1 > _MAX_HIDDEN_LAYERS:
        raise ValueError(
            f"The network has {len(widths) - 1} hidden layers; NetworkDisplay "
            f"draws at most {_MAX_HIDDEN_LAYERS}."
        )
    too_wide = {i + 1: w for i, w in enumerate(widths) if w > _MAX_UNITS}
    if too_wide:
        raise ValueError(
            f"Too many units to draw: layer(s) {too_wide} (layer: units; the "
            f"output layer is layer {len(widths)}) exceed NetworkDisplay's "
            f"limit of {_MAX_UNITS} units per layer."
        )
    if classifier and estimator.out_activation_ == "logistic" and widths[-1] > 1:
        raise ValueError(
            "NetworkDisplay draws binary and multiclass classifiers; this "
            f"network has {widths[-1]} logistic outputs (a multilabel target)."
        )
    if not classifier and widths[-1] > 1:
        raise ValueError(
            "NetworkDisplay draws regressors of a single output, as one heat "
            f"map; this network has {widths[-1]} outputs (a multi-output target)."
        )


def _check_points(estimator, X, y):
    """X and y, checked against the network; y as labels or as targets."""
    X = check_array(X, dtype=np.float64)
    if X.shape[1] != 2:
        raise ValueError(
            f"X must have the network's 2 features; got X with {X.shape[1]}."
        )
    if y is None:
        return X, y
    y = column_or_1d(y)
    if len(y) != len(X):
        raise ValueError(
            f"X and y have different numbers of samples: {len(X)} and {len(y)}."
        )
    if is_classifier(estimator):
        unknown = np.setdiff1d(y, estimator.classes_)
        if len(unknown):
            raise ValueError(
                f"y has labels {unknown.tolist()} that are not among the "
                f"classes {estimator.classes_.tolist()}."
            )
        return X, y
    if y.dtype.kind not in "biuf":
        raise ValueError(
            f"y must hold the regressor's numeric targets; got y of dtype "
            f"{y.dtype} (for instance {y[:3].tolist()})."
        )
    y = y.astype(np.float64)
    assert_all_finite(y, input_name="y")
    return X, y


def _layer_values(estimator, X_grid):
    """Value of every neuron over the grid, layer by layer, input included.

    Hidden neurons give their activation and output neurons a classifier's
    probability or a regressor's prediction, computed from ``coefs_`` and
    ``intercepts_`` as the network computes them.
    """
    activation = ACTIVATIONS[estimator.activation]
    h = torch.as_tensor(X_grid, dtype=torch.float64)
    values = [h.numpy()]
    layers = list(zip(estimator.coefs_, estimator.intercepts_, strict=True))
    with torch.no_grad():
        for i, (W, b) in enumerate(layers):
            W = torch.as_tensor(np.asarray(W, dtype=np.float64))
            b = torch.as_tensor(np.asarray(b, dtype=np.float64))
            h = torch.addmm(b, h, W)
            if i < len(layers) - 1:
                h = activation(h)
            else:
                h = _OUTPUTS[estimator.out_activation_](h)
            values.append(h.numpy())
    return values


class NetworkDisplay:
    """The TensorFlow Playground's picture of a network on 2-D input.

    The network is drawn as columns of neurons, input on the left. Each neuron
    is a small heat map of its value over the input plane: the input neurons
    show the features themselves, hidden neurons their activation, output
    neurons the probability of their class (a classifier's) or the prediction
    (a regressor's). Connections are blue for positive weights and orange for
    negative ones, as wide as the weight's magnitude. On the right, drawn by
    scikit-learn's :class:`~sklearn.inspection.DecisionBoundaryDisplay`, a
    classifier's decision regions with the points of X coloured by their
    class, or a regressor's prediction over the plane as a heat map with a
    colorbar and the points of X coloured by their target.

    It is best created with :meth:`from_estimator`. All parameters are stored
    as attributes.

    Parameters
    ----------
    xx0 : ndarray of shape (grid_resolution, grid_resolution)
        First feature over the grid, from :func:`numpy.meshgrid`.

    xx1 : ndarray of shape (grid_resolution, grid_resolution)
        Second feature over the grid.

    layer_values : list of ndarray of shape (grid_resolution ** 2, n_units)
        Value of each neuron at each grid point, one array per layer, input
        layer first, output layer last (the probabilities of the classes; a
        single column, the probability of ``classes[1]``, for a binary
        classifier; the single column of the prediction for a regressor).

    coefs : list of ndarray of shape (n_units_in, n_units_out)
        Weights of each layer.

    classes : ndarray of shape (n_classes,) or None
        The class labels of a classifier; None for a regressor, whose output
        is drawn as a heat map of its prediction.

    activation : str
        Name of the hidden activation.

    out_activation : str
        Name of the output activation.

    X : ndarray of shape (n_samples, 2), default=None
        Points drawn over the decision regions or the prediction.

    y : ndarray of shape (n_samples,), default=None
        Labels of X, from ``classes``, or a regressor's targets of X; None
        draws all points alike.

    feature_names : list of str, default=None
        Names of the two features; None uses "x0" and "x1".

    Attributes
    ----------
    neuron_axes_ : list of list of matplotlib Axes
        One panel per neuron, one list per layer, input layer first.

    connections_ : list of matplotlib LineCollection
        One collection per weight matrix, one line per weight, in the order
        of ``coefs[i].ravel()``.

    decision_boundary_ : sklearn.inspection.DecisionBoundaryDisplay
        A classifier's decision regions, or a regressor's prediction over the
        plane (scikit-learn draws regressors too); its ``surface_`` is the
        filled contour plot.

    colorbar_ : matplotlib Colorbar or None
        A regressor's colour scale of the prediction and the targets; None
        for a classifier.

    scatter_ : matplotlib PathCollection or None
        The points of X, or None when X is None.

    ax_ : matplotlib Axes
        The canvas, with its axis turned off, that holds the panels.

    figure_ : matplotlib Figure
        Figure containing the display.

    See Also
    --------
    LossCurveDisplay : Training and validation curves.
    plot_playground : The Playground's lesson: data sets by architectures.

    Notes
    -----
    Each hidden neuron's heat map has its own colour scale, centred on 0, so
    that its shape shows even when its values are small: orange below 0,
    white at 0, blue above. A ReLU neuron is white where it is off. Output
    probabilities run from orange (0) through white (0.5) to blue (1). A
    regressor's output neuron, heat map and points share one colour scale
    from the lowest to the highest of its predictions over the plane and the
    targets y: orange at the lowest, white midway, blue at the highest.

    A network fits on a figure with at most 16 units per layer (input,
    hidden and output layers alike; for the output layer, classes of a
    multiclass target) and at most 8 hidden layers; :meth:`from_estimator`
    raises a ValueError for larger ones, and for regressors of several
    outputs.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from skdnn import DNNClassifier
    >>> from skdnn.datasets import make_xor
    >>> from skdnn.inspection import NetworkDisplay
    >>> X, y = make_xor(n_samples=200, random_state=0)
    >>> clf = DNNClassifier(hidden_layer_sizes=(6, 4), activation="tanh",
    ...                     solver="lbfgs", random_state=0).fit(X, y)
    >>> display = NetworkDisplay.from_estimator(clf, X, y)
    >>> [len(panels) for panels in display.neuron_axes_]
    [2, 6, 4, 1]
    >>> plt.close(display.figure_)

    A regressor's output is a heat map of its prediction:

    >>> from skdnn import DNNRegressor
    >>> from skdnn.datasets import make_plane
    >>> X, y = make_plane(n_samples=200, noise=0.1, random_state=0)
    >>> reg = DNNRegressor(hidden_layer_sizes=(4,), activation="tanh",
    ...                    solver="lbfgs", random_state=0).fit(X, y)
    >>> display = NetworkDisplay.from_estimator(reg, X, y)
    >>> [len(panels) for panels in display.neuron_axes_]
    [2, 4, 1]
    >>> display.decision_boundary_.ax_.get_title()
    'prediction'
    >>> plt.close(display.figure_)
    """

    def __init__(
        self,
        *,
        xx0,
        xx1,
        layer_values,
        coefs,
        classes,
        activation,
        out_activation,
        X=None,
        y=None,
        feature_names=None,
    ):
        self.xx0 = xx0
        self.xx1 = xx1
        self.layer_values = layer_values
        self.coefs = coefs
        self.classes = classes
        self.activation = activation
        self.out_activation = out_activation
        self.X = X
        self.y = y
        self.feature_names = feature_names

    def plot(self, ax=None):
        """Draw the network.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to use as the canvas; its axis is turned off and the panels
            are drawn inside it. None creates a new figure sized to the
            network.

        Returns
        -------
        display : NetworkDisplay
            The display, with the artists as attributes.
        """
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        sizes = [values.shape[1] for values in self.layer_values]
        rows = [(n - 1) / 2 - np.arange(n) for n in sizes]
        columns = _COLUMN_GAP * np.arange(len(sizes))
        side = float(np.clip(max(sizes), 3.0, 5.0))
        # Room for the output labels, P(class) or "prediction", and the
        # decision panel's y-axis tick labels and name.
        longest = max(len(label) for label in self._output_labels())
        left = columns[-1] + _PANEL / 2 + 0.25 * longest + 1.4
        half_height = max(max(sizes) / 2, side / 2)
        # Room for the input names on the left, the decision panel's x-axis
        # below, the column headers above, and a regressor's colorbar.
        right = left + side + 0.2
        right += 0.0 if self.classes is not None else _COLORBAR_ROOM
        xlim = (-_PANEL / 2 - 0.8, right)
        ylim = (-half_height - 1.0, half_height + 1.0)

        if ax is None:
            width, height = np.ptp(xlim), np.ptp(ylim)
            fig, ax = plt.subplots(
                figsize=(_INCHES_PER_UNIT * width, _INCHES_PER_UNIT * height)
            )
            fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.99)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal")
        ax.set_axis_off()

        cmap = diverging_cmap()
        output_norm = self._output_norm()
        self.neuron_axes_ = [
            [
                self._draw_neuron(
                    ax, (columns[layer], row), values, (layer, unit), output_norm, cmap
                )
                for unit, row in enumerate(rows[layer])
            ]
            for layer, values in enumerate(self.layer_values)
        ]
        self.connections_ = self._draw_connections(ax, columns, rows)
        self._draw_headers(ax, columns, half_height)
        panel = ax.inset_axes([left, -side / 2, side, side], transform=ax.transData)
        self.colorbar_ = None
        if self.classes is None:
            style = self._draw_prediction(panel, output_norm, cmap)
            colorbar_ax = ax.inset_axes(
                [left + side + 0.2, -side / 2, _COLORBAR_WIDTH, side],
                transform=ax.transData,
            )
            # Round ticks: by default a contour plot's colorbar ticks its levels.
            self.colorbar_ = ax.figure.colorbar(
                self.decision_boundary_.surface_, cax=colorbar_ax, ticks=MaxNLocator(6)
            )
        else:
            style = self._draw_decision(panel, cmap)
        self.scatter_ = self._draw_points(panel, style)
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    def _output_labels(self):
        """The output neurons' names: P(class) of each class, or "prediction"."""
        if self.classes is None:
            return ["prediction"]
        return [f"P({c})" for c in self.classes]

    def _output_norm(self):
        """The output layer's colour scale.

        Probabilities run from 0 to 1. A regressor's predictions and targets
        share one scale, so that a point's colour matches the heat map's
        where the prediction is right.
        """
        from matplotlib.colors import Normalize

        if self.classes is not None:
            return Normalize(0.0, 1.0)
        values = self.layer_values[-1].ravel()
        if self.y is not None:
            values = np.concatenate([values, self.y])
        low, high = float(values.min()), float(values.max())
        if high - low <= 1e-12 * max(abs(low), abs(high), 1.0):
            # A constant prediction still needs a scale of some width.
            low, high = low - 0.5, high + 0.5
        return Normalize(low, high)

    def _draw_neuron(self, ax, centre, layer_values, position, output_norm, cmap):
        from matplotlib.colors import CenteredNorm

        (x, y), (layer, unit) = centre, position
        values = layer_values[:, unit]
        panel = ax.inset_axes(
            [x - _PANEL / 2, y - _PANEL / 2, _PANEL, _PANEL], transform=ax.transData
        )
        if layer == len(self.layer_values) - 1:
            norm = output_norm
        else:
            norm = CenteredNorm(0.0, halfrange=max(np.abs(values).max(), 1e-12))
        panel.imshow(
            values.reshape(self.xx0.shape),
            origin="lower",
            extent=(self.xx0.min(), self.xx0.max(), self.xx1.min(), self.xx1.max()),
            aspect="auto",
            cmap=cmap,
            norm=norm,
        )
        panel.set_xticks([])
        panel.set_yticks([])
        if layer == 0:
            names = ["x0", "x1"] if self.feature_names is None else self.feature_names
            ax.text(x - _PANEL / 2 - 0.1, y, names[unit], ha="right", va="center")
        elif layer == len(self.layer_values) - 1:
            # A binary network's one output is the probability of classes[1].
            labels = self._output_labels()
            label = labels[-1] if layer_values.shape[1] == 1 else labels[unit]
            ax.text(x + _PANEL / 2 + 0.1, y, label, ha="left", va="center")
        return panel

    def _draw_connections(self, ax, columns, rows):
        from matplotlib.collections import LineCollection

        largest = max(float(np.abs(W).max()) for W in self.coefs) or 1.0
        collections = []
        for layer, W in enumerate(self.coefs):
            x_from = columns[layer] + _PANEL / 2
            x_to = columns[layer + 1] - _PANEL / 2
            segments = [
                [(x_from, y_from), (x_to, y_to)]
                for y_from in rows[layer]
                for y_to in rows[layer + 1]
            ]
            weights = np.asarray(W).ravel()
            collection = LineCollection(
                segments,
                colors=np.where(weights > 0, BLUE, ORANGE),
                linewidths=_MAX_LINEWIDTH * np.abs(weights) / largest,
                alpha=0.8,
                zorder=1,
            )
            ax.add_collection(collection)
            collections.append(collection)
        return collections

    def _draw_headers(self, ax, columns, half_height):
        n_hidden = len(self.layer_values) - 2
        headers = ["input"]
        headers += [f"hidden {i + 1}\n{self.activation}" for i in range(n_hidden)]
        headers.append(f"output\n{self.out_activation}")
        for x, header in zip(columns, headers, strict=True):
            ax.text(x, half_height + 0.1, header, ha="center", va="bottom")

    def _output_display(self, n_classes):
        """The output over the grid, in a DecisionBoundaryDisplay to plot."""
        names = ["x0", "x1"] if self.feature_names is None else self.feature_names
        response = self.layer_values[-1].reshape(*self.xx0.shape, -1)
        return DecisionBoundaryDisplay(
            xx0=self.xx0,
            xx1=self.xx1,
            n_classes=n_classes,
            response=response[..., 0] if response.shape[-1] == 1 else response,
            xlabel=names[0],
            ylabel=names[1],
        )

    def _draw_prediction(self, panel, norm, cmap):
        """Draw a regressor's heat map; return the points' colours."""
        # scikit-learn draws a regressor's prediction as a binary classifier's
        # response: n_classes=2 by its convention.
        self.decision_boundary_ = self._output_display(n_classes=2)
        self.decision_boundary_.plot(
            ax=panel,
            cmap=cmap,
            levels=np.linspace(norm.vmin, norm.vmax, _PREDICTION_LEVELS),
            norm=norm,
            alpha=_REGION_ALPHA,
        )
        panel.set_title("prediction")
        # The points' colours: their targets on the heat map's scale.
        return dict(c=self.y, cmap=cmap, norm=norm)

    def _draw_decision(self, panel, cmap):
        """Draw a classifier's decision regions; return the points' colours."""
        from matplotlib.colors import ListedColormap

        binary = self.layer_values[-1].shape[1] == 1
        self.decision_boundary_ = self._output_display(n_classes=len(self.classes))
        if binary:
            self.decision_boundary_.plot(
                ax=panel,
                cmap=cmap,
                levels=np.linspace(0, 1, 11),
                vmin=0,
                vmax=1,
                alpha=_REGION_ALPHA,
            )
            colors = ListedColormap([ORANGE, BLUE])
        else:
            self.decision_boundary_.plot(ax=panel, alpha=_REGION_ALPHA)
            colors = ListedColormap(self.decision_boundary_.multiclass_colors_)
        panel.set_title("decision regions")
        codes = None if self.y is None else np.searchsorted(self.classes, self.y)
        return dict(c=codes, cmap=colors, vmin=0, vmax=len(self.classes) - 1)

    def _draw_points(self, panel, style):
        """The points of X, coloured by ``style`` or, without y, all alike."""
        if self.X is None:
            return None
        if self.y is None:
            style = dict(color="0.2")
        return panel.scatter(
            self.X[:, 0], self.X[:, 1], s=16, edgecolors="white", linewidths=0.5,
            **style,
        )  # fmt: skip

    @classmethod
    def from_estimator(
        cls, estimator, X, y=None, *, grid_resolution=50, eps=None, ax=None
    ):
        """Draw a fitted network on 2-D input.

        Parameters
        ----------
        estimator : estimator instance
            A fitted :class:`~skdnn.DNNClassifier` or
            :class:`~skdnn.DNNRegressor` (or scikit-learn's MLPClassifier or
            MLPRegressor) with 2 input features, a binary or multiclass
            target for a classifier, a single output for a regressor, at most
            16 units per layer and at most 8 hidden layers.

        X : array-like of shape (n_samples, 2)
            Points drawn over the decision regions or the prediction; their
            range, widened by ``eps``, is the plane every neuron is drawn
            over.

        y : array-like of shape (n_samples,), default=None
            Labels of X (a classifier's classes) or targets of X (numbers, for
            a regressor), which colour the points; None draws them alike.

        grid_resolution : int, default=50
            Number of grid points along each feature.

        eps : float, default=None
            Margin added to each side of X's range; None adds 10% of the
            range.

        ax : matplotlib Axes, default=None
            Axes to use as the canvas. None creates a new figure.

        Returns
        -------
        display : NetworkDisplay
            The display, with the artists as attributes.
        """
        _check_drawable(estimator)
        X, y = _check_points(estimator, X, y)
        if grid_resolution < 2:
            raise ValueError(
                f"grid_resolution must be at least 2; got {grid_resolution}."
            )
        low, high = X.min(axis=0), X.max(axis=0)
        # A margin even when X has a single value along a feature.
        margin = (
            np.maximum(0.1 * (high - low), 1e-3) if eps is None else np.full(2, eps)
        )
        xx0, xx1 = np.meshgrid(
            np.linspace(low[0] - margin[0], high[0] + margin[0], grid_resolution),
            np.linspace(low[1] - margin[1], high[1] + margin[1], grid_resolution),
        )
        names = getattr(estimator, "feature_names_in_", None)
        display = cls(
            xx0=xx0,
            xx1=xx1,
            layer_values=_layer_values(estimator, np.c_[xx0.ravel(), xx1.ravel()]),
            coefs=[np.asarray(W) for W in estimator.coefs_],
            classes=estimator.classes_ if is_classifier(estimator) else None,
            activation=estimator.activation,
            out_activation=estimator.out_activation_,
            X=X,
            y=y,
            feature_names=None if names is None else [str(n) for n in names],
        )
        return display.plot(ax=ax)
