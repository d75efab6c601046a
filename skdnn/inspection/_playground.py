"""plot_playground: the TensorFlow Playground's lesson as one grid of pictures."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.inspection import DecisionBoundaryDisplay
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch, check_random_state

from .._classifier import DNNClassifier
from .._compat import HasMethods, Interval, validate_params
from ..datasets import make_circle, make_spiral, make_xor
from ._colors import BLUE, ORANGE, diverging_cmap


def _gaussians(n_samples, noise, random_state):
    # The Playground's two Gaussians are scikit-learn's blobs; its noise
    # slider sets their variance (see skdnn.datasets._playground).
    return make_blobs(
        n_samples,
        centers=[(-2.0, -2.0), (2.0, 2.0)],
        cluster_std=np.sqrt(0.5 + 7.0 * noise),
        random_state=random_state,
    )


def _moons(n_samples, noise, random_state):
    return make_moons(n_samples, noise=noise, random_state=random_state)


# The rows of the grid, in the lesson's order.
DATASETS = {
    "xor": make_xor,
    "circle": make_circle,
    "spiral": make_spiral,
    "gaussians": _gaussians,
    "moons": _moons,
}


def _default_estimator():
    # The Playground's tanh; L-BFGS fits these small networks in a fraction of
    # a second, and the small penalty smooths the spiral's regions between
    # its arms.
    return DNNClassifier(
        activation="tanh", solver="lbfgs", alpha=0.01, max_iter=2000, random_state=0
    )


def _architecture_name(sizes):
    if len(sizes) == 0:
        return "no hidden layer"
    layers = "1 hidden layer" if len(sizes) == 1 else f"{len(sizes)} hidden layers"
    return f"{layers} {tuple(sizes)}"


def _playground_axes(hidden_layer_sizes, axes):
    """The columns' architectures and the grid's Axes, checked.

    ``axes`` None: a new figure's, one row per data set and one column per
    architecture.
    """
    import matplotlib.pyplot as plt

    architectures = [tuple(sizes) for sizes in hidden_layer_sizes]
    shape = (len(DATASETS), len(architectures))
    if axes is None:
        figure, axes = plt.subplots(
            *shape,
            figsize=(3.0 * shape[1], 3.0 * shape[0]),
            squeeze=False,
            constrained_layout=True,
        )
    axes = np.asarray(axes, dtype=object)
    if axes.shape != shape:
        raise ValueError(
            f"axes must have shape {shape} (data sets, architectures); got "
            f"{axes.shape}."
        )
    return architectures, axes


def _draw_cell(ax, model, X, parts, *, grid_resolution, cmap):
    """Draw a fitted model's decision regions over ``X``, then the points.

    ``parts`` are ``(X_part, y_part, edge)``: points drawn with that edge
    colour. Returns the :class:`~sklearn.inspection.DecisionBoundaryDisplay`.
    """
    display = DecisionBoundaryDisplay.from_estimator(
        model,
        X,
        grid_resolution=grid_resolution,
        eps=0.1 * np.ptp(X, axis=0).max(),
        response_method="predict_proba",
        cmap=cmap,
        levels=np.linspace(0, 1, 11),
        vmin=0,
        vmax=1,
        alpha=0.7,
        ax=ax,
    )
    for X_part, y_part, edge in parts:
        ax.scatter(
            X_part[:, 0],
            X_part[:, 1],
            c=np.where(y_part == model.classes_[1], BLUE, ORANGE),
            s=10,
            edgecolors=edge,
            linewidths=0.4,
        )
    return display


def _label_cell(ax, score, *, architecture, dataset):
    """Title a cell with its test accuracy, and label the grid's edges.

    ``architecture`` heads the title (the top row's cells) and ``dataset`` is
    the y label (the left column's); None for the other cells.
    """
    title = f"test accuracy {score:.2f}"
    if architecture is not None:
        title = f"{_architecture_name(architecture)}\n{title}"
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("" if dataset is None else dataset, fontsize="large")


@validate_params(
    {
        "estimator": [HasMethods(["fit", "predict_proba"]), None],
        "hidden_layer_sizes": ["array-like"],
        "n_samples": [Interval(Integral, 4, None, closed="left")],
        "noise": [Interval(Real, 0, None, closed="left")],
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "grid_resolution": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
        "axes": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
def plot_playground(
    estimator=None,
    *,
    hidden_layer_sizes=((), (4,), (16, 16)),
    n_samples=400,
    noise=0.1,
    test_size=0.5,
    grid_resolution=100,
    random_state=0,
    axes=None,
):
    """Draw the Playground's lesson: which networks solve which data sets.

    A grid of decision regions: one row per data set (xor, circle, spiral,
    gaussians, moons), one column per architecture (by default no hidden
    layer, one, two). Each cell fits a copy of the estimator on half of the
    data set, draws its decision regions with scikit-learn's
    :class:`~sklearn.inspection.DecisionBoundaryDisplay` and the points
    (test points with a black edge), and gives the accuracy on the test half
    in its title. Without a hidden layer the network is a linear model, and
    only the gaussians are separated by a straight line; XOR needs a hidden
    layer, the spiral more.

    Parameters
    ----------
    estimator : estimator instance, default=None
        The classifier to fit, cloned for each cell with its
        ``hidden_layer_sizes`` set to each architecture. None uses
        ``DNNClassifier(activation="tanh", solver="lbfgs", alpha=0.01,
        max_iter=2000, random_state=0)``.

    hidden_layer_sizes : sequence of tuple of int, default=((), (4,), (16, 16))
        One architecture per column; ``()`` has no hidden layer.

    n_samples : int, default=400
        Number of points of each data set.

    noise : float, default=0.1
        Noise of each data set: the Playground's noise for xor, circle and
        spiral (see :mod:`skdnn.datasets`), the variance ``0.5 + 7 * noise``
        of the gaussians as in the Playground, and the standard deviation of
        the Gaussian noise of :func:`~sklearn.datasets.make_moons`.

    test_size : float, default=0.5
        Fraction of each data set held out to score the network.

    grid_resolution : int, default=100
        Number of grid points along each feature in each cell.

    random_state : int, RandomState instance or None, default=0
        Determines the data sets and their splits (the estimator's own
        ``random_state`` determines its fits).

    axes : array-like of matplotlib Axes of shape (5, n_architectures), \
            default=None
        Axes to draw on; None creates a new figure.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        With these keys:

        - ``displays``: ndarray of shape (5, n_architectures) of
          :class:`~sklearn.inspection.DecisionBoundaryDisplay`.
        - ``test_scores``: ndarray of shape (5, n_architectures), the test
          accuracies.
        - ``estimators``: ndarray of shape (5, n_architectures), the fitted
          estimators.
        - ``datasets``: list of the 5 data set names, the rows.
        - ``figure``: the matplotlib Figure.

    See Also
    --------
    NetworkDisplay : One network's neurons and connections.
    skdnn.datasets.make_xor : The Playground's "exclusive or" data set.

    Notes
    -----
    The fits' ConvergenceWarnings are silenced: the lesson is in the picture,
    and a network that cannot fit a data set (no hidden layer on XOR) is
    expected there.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from skdnn.inspection import plot_playground
    >>> result = plot_playground(grid_resolution=20)
    >>> result.datasets
    ['xor', 'circle', 'spiral', 'gaussians', 'moons']
    >>> result.test_scores.shape
    (5, 3)
    >>> result.test_scores[0].round(1)  # xor: a straight line cannot do
    array([0.5, 1. , 1. ])
    >>> print(result.displays[0, 0].ax_.get_title())
    no hidden layer
    test accuracy 0.5...
    >>> plt.close(result.figure)
    """
    architectures, axes = _playground_axes(hidden_layer_sizes, axes)
    estimator = _default_estimator() if estimator is None else estimator
    shape = axes.shape

    rng = check_random_state(random_state)
    displays = np.empty(shape, dtype=object)
    scores = np.empty(shape)
    estimators = np.empty(shape, dtype=object)
    cmap = diverging_cmap()
    for row, (name, make) in enumerate(DATASETS.items()):
        X, y = make(n_samples, noise=noise, random_state=rng)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=test_size, random_state=rng, stratify=y
        )
        for column, sizes in enumerate(architectures):
            model = clone(estimator).set_params(hidden_layer_sizes=sizes)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(X_train, y_train)
            scores[row, column] = model.score(X_test, y_test)
            estimators[row, column] = model
            ax = axes[row, column]
            parts = [(X_train, y_train, "white"), (X_test, y_test, "black")]
            displays[row, column] = _draw_cell(
                ax, model, X, parts, grid_resolution=grid_resolution, cmap=cmap
            )
            _label_cell(
                ax,
                scores[row, column],
                architecture=sizes if row == 0 else None,
                dataset=name if column == 0 else None,
            )
    return Bunch(
        displays=displays,
        test_scores=scores,
        estimators=estimators,
        datasets=list(DATASETS),
        figure=axes[0, 0].figure,
    )
