"""The TensorFlow Playground's toy data sets.

The Playground (https://playground.tensorflow.org) offers four classification
data sets and two regression data sets, all on 2-D points. Its regression
sets, "Plane" and "Multi Gaussian", are :func:`make_plane` and
:func:`make_multi_gaussian`. Of its classification sets, two are not in
scikit-learn and are generated here:

- "Exclusive or": :func:`make_xor`.
- "Spiral": :func:`make_spiral`.

One differs from its scikit-learn namesake and is generated here:

- "Circle": :func:`make_circle`. scikit-learn's
  :func:`~sklearn.datasets.make_circles` puts the points *on* two concentric
  circles and moves them with Gaussian noise; the Playground fills a disc and a
  ring around it, and its noise changes labels, not positions.

One is scikit-learn's, and skdnn has no copy of it:

- "Gaussian": two isotropic Gaussians of ``n_samples // 2`` points each,
  centred on (-2, -2) and (2, 2), with variance ``0.5 + 7 * noise`` (noise in
  [0, 0.5]). That is ``sklearn.datasets.make_blobs(n_samples,
  centers=[(-2, -2), (2, 2)], cluster_std=np.sqrt(0.5 + 7 * noise))``, which
  labels the points around (-2, -2) 0 and those around (2, 2) 1.

The Playground's class labels are -1 and 1; here they are 0 and 1, as in
scikit-learn, with 1 for the Playground's positive class. Its regression
targets are kept as they are. Its noise slider runs from 0 to 50%, that is
``noise`` from 0 to 0.5.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral, Real

import numpy as np
from sklearn.utils import check_random_state

from .._compat import Interval, validate_params

# Half-width of the Playground's square of XOR points, and how far it pushes
# each coordinate away from 0 so that no point sits on an axis.
_XOR_HALF_WIDTH = 5.0
_XOR_PADDING = 0.3

# The Playground's circle: a disc of radius 2.5 (class 1) in a ring from 3.5
# to 5 (class 0); labels come from the distance to the centre, 2.5.
_CIRCLE_RADIUS = 5.0
_CIRCLE_INNER = 0.5 * _CIRCLE_RADIUS
_CIRCLE_RING_START = 0.7 * _CIRCLE_RADIUS

# The Playground's spirals: radius 0 to 5 over 1.75 turns.
_SPIRAL_RADIUS = 5.0
_SPIRAL_TURNS = 1.75

# The regression sets' points fill the square [-6, 6]^2, and their noise
# moves the point at which the target is read by up to 6 * noise.
_REGRESSION_HALF_WIDTH = 6.0

# "Plane": the target is x0 + x1 mapped linearly from [-10, 10] to [-1, 1].
_PLANE_SCALE = 10.0

# "Multi Gaussian": six bumps (centre x0, centre x1, sign) in two rows; each
# falls linearly from 1 at its centre to 0 at distance 2.
_GAUSSIANS = np.array(
    [
        [-4.0, 2.5, 1.0],
        [0.0, 2.5, -1.0],
        [4.0, 2.5, 1.0],
        [-4.0, -2.5, -1.0],
        [0.0, -2.5, 1.0],
        [4.0, -2.5, -1.0],
    ]
)
_GAUSSIAN_RADIUS = 2.0

_COMMON_CONSTRAINTS = {
    "n_samples": [Interval(Integral, 1, None, closed="left")],
    "noise": [Interval(Real, 0, None, closed="left")],
    "random_state": ["random_state"],
}


def _shuffled(X, y, shuffle, generator):
    if not shuffle:
        return X, y
    order = generator.permutation(len(y))
    return X[order], y[order]


@validate_params(_COMMON_CONSTRAINTS, prefer_skip_nested_validation=True)
def make_xor(n_samples=100, *, noise=0.0, random_state=None):
    """Generate the Playground's "exclusive or" data set.

    Points are uniform in the square ``[-5, 5]^2``, each coordinate then
    pushed 0.3 further from 0, so that no point lies within 0.3 of an axis.
    A point is labelled 1 when its coordinates have the same sign (first and
    third quadrants) and 0 otherwise. No straight line separates the classes.

    As in the Playground, noise moves the point at which the label is read,
    not the point itself: the label is that of the point plus a shift drawn
    uniformly from ``[-5 * noise, 5 * noise]`` in each coordinate. Points
    near the axes then carry the other quadrant's label.

    Parameters
    ----------
    n_samples : int, default=100
        Number of points.

    noise : float, default=0.0
        Label noise; the Playground's slider spans 0 to 0.5. With 0, every
        label is its quadrant's.

    random_state : int, RandomState instance or None, default=None
        Determines the points and the noise. Pass an int for reproducible
        output across calls.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
        The points, each coordinate in ``[-5.3, -0.3]`` or ``[0.3, 5.3]``.

    y : ndarray of shape (n_samples,)
        The labels, 0 or 1. Each is 1 with probability 1/2, so the classes are
        balanced on average, not exactly.

    See Also
    --------
    make_spiral : The Playground's two interleaved spirals.
    make_circle : The Playground's disc inside a ring.

    Examples
    --------
    >>> from skdnn.datasets import make_xor
    >>> X, y = make_xor(n_samples=4, random_state=0)
    >>> X
    array([[ 0.788...,  2.452...],
           [ 1.327...,  0.748...],
           [-1.063...,  1.758...],
           [-0.924...,  4.217...]])
    >>> y
    array([1, 1, 0, 0])
    """
    generator = check_random_state(random_state)
    X = generator.uniform(-_XOR_HALF_WIDTH, _XOR_HALF_WIDTH, size=(n_samples, 2))
    X += np.where(X > 0, _XOR_PADDING, -_XOR_PADDING)
    shift = generator.uniform(-_XOR_HALF_WIDTH, _XOR_HALF_WIDTH, size=(n_samples, 2))
    read_at = X + noise * shift
    y = (read_at[:, 0] * read_at[:, 1] >= 0).astype(np.intp)
    return X, y


@validate_params(
    {**_COMMON_CONSTRAINTS, "shuffle": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def make_spiral(n_samples=100, *, noise=0.0, shuffle=True, random_state=None):
    """Generate the Playground's two interleaved spirals.

    Each class is an Archimedean spiral of 1.75 turns whose radius grows from
    0 to 5; the class-0 spiral is the class-1 spiral turned by half a turn.
    Points are evenly spaced along each spiral, as in the Playground, and
    noise moves each coordinate by a shift drawn uniformly from ``[-noise,
    noise]``. scikit-learn has no spiral data set.

    Parameters
    ----------
    n_samples : int, default=100
        Number of points: ``n_samples // 2`` of class 0, the rest of class 1.

    noise : float, default=0.0
        Largest shift of a coordinate; the Playground's slider spans 0 to 0.5.

    shuffle : bool, default=True
        Whether to shuffle the points. Without shuffling and without noise the
        output is the same on every call: class-0 points from the centre out,
        then class-1 points.

    random_state : int, RandomState instance or None, default=None
        Determines the noise and the shuffling. Pass an int for reproducible
        output across calls.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
        The points, at distance less than ``5 + noise * sqrt(2)`` from the
        origin.

    y : ndarray of shape (n_samples,)
        The labels: ``n_samples // 2`` zeros and ``n_samples - n_samples // 2``
        ones.

    See Also
    --------
    make_xor : The Playground's "exclusive or" data set.
    make_circle : The Playground's disc inside a ring.

    Examples
    --------
    >>> import numpy as np
    >>> from skdnn.datasets import make_spiral
    >>> X, y = make_spiral(n_samples=6, shuffle=False)
    >>> np.hypot(X[:, 0], X[:, 1]).round(2)
    array([0.  , 1.67, 3.33, 0.  , 1.67, 3.33])
    >>> y
    array([0, 0, 0, 1, 1, 1])
    >>> X, y = make_spiral(n_samples=200, noise=0.1, random_state=0)
    >>> X.shape, np.bincount(y)
    ((200, 2), array([100, 100]))
    """
    generator = check_random_state(random_state)
    n_class_0 = n_samples // 2
    points, labels = [], []
    for label, (n, offset) in enumerate(
        [(n_class_0, np.pi), (n_samples - n_class_0, 0.0)]
    ):
        along = np.arange(n) / max(n, 1)
        radius = _SPIRAL_RADIUS * along
        angle = _SPIRAL_TURNS * 2 * np.pi * along + offset
        points.append(np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]))
        labels.append(np.full(n, label, dtype=np.intp))
    X = np.concatenate(points)
    X += noise * generator.uniform(-1, 1, size=X.shape)
    return _shuffled(X, np.concatenate(labels), shuffle, generator)


@validate_params(
    {**_COMMON_CONSTRAINTS, "shuffle": ["boolean"]},
    prefer_skip_nested_validation=True,
)
def make_circle(n_samples=100, *, noise=0.0, shuffle=True, random_state=None):
    """Generate the Playground's "circle" data set: a disc inside a ring.

    Half the points fill a disc of radius 2.5 around the origin; the other
    half fill the ring between radii 3.5 and 5. A point's radius and angle
    are uniform, so the disc is denser near its centre. A point is labelled 1
    when it is within 2.5 of the origin, 0 otherwise.

    As in the Playground, noise moves the point at which the label is read,
    not the point itself: the label is that of the point plus a shift drawn
    uniformly from ``[-5 * noise, 5 * noise]`` in each coordinate.

    This is not scikit-learn's :func:`~sklearn.datasets.make_circles`, whose
    points lie on two circles and whose noise moves them.

    Parameters
    ----------
    n_samples : int, default=100
        Number of points: ``n_samples // 2`` in the ring, the rest in the disc.

    noise : float, default=0.0
        Label noise; the Playground's slider spans 0 to 0.5.

    shuffle : bool, default=True
        Whether to shuffle the points; without it, the ring's points come
        first.

    random_state : int, RandomState instance or None, default=None
        Determines the points, the noise and the shuffling. Pass an int for
        reproducible output across calls.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
        The points, at distance at most 5 from the origin, none between 2.5
        and 3.5.

    y : ndarray of shape (n_samples,)
        The labels. Without noise, ``n_samples // 2`` zeros (the ring) and
        ``n_samples - n_samples // 2`` ones (the disc); noise changes some.

    See Also
    --------
    make_xor : The Playground's "exclusive or" data set.
    make_spiral : The Playground's two interleaved spirals.
    sklearn.datasets.make_circles : Points on two concentric circles.

    Examples
    --------
    >>> import numpy as np
    >>> from skdnn.datasets import make_circle
    >>> X, y = make_circle(n_samples=6, random_state=0)
    >>> np.hypot(X[:, 0], X[:, 1]).round(2)
    array([1.61, 4.4 , 1.36, 1.06, 4.57, 4.32])
    >>> y
    array([1, 0, 1, 1, 0, 0])
    """
    generator = check_random_state(random_state)
    n_ring = n_samples // 2
    radius = np.concatenate(
        [
            generator.uniform(_CIRCLE_RING_START, _CIRCLE_RADIUS, n_ring),
            generator.uniform(0, _CIRCLE_INNER, n_samples - n_ring),
        ]
    )
    angle = generator.uniform(0, 2 * np.pi, n_samples)
    X = np.column_stack([radius * np.sin(angle), radius * np.cos(angle)])
    shift = generator.uniform(-_CIRCLE_RADIUS, _CIRCLE_RADIUS, size=X.shape)
    read_at = X + noise * shift
    y = (np.hypot(read_at[:, 0], read_at[:, 1]) < _CIRCLE_INNER).astype(np.intp)
    return _shuffled(X, y, shuffle, generator)


def _regression_points(n_samples, noise, generator):
    """The Playground's regression points, and where their targets are read.

    Points are uniform in ``[-6, 6]^2``; the target is read at the point
    plus a shift uniform in ``[-6 * noise, 6 * noise]^2``.
    """
    half = _REGRESSION_HALF_WIDTH
    X = generator.uniform(-half, half, size=(n_samples, 2))
    shift = generator.uniform(-half, half, size=(n_samples, 2))
    return X, X + noise * shift


@validate_params(_COMMON_CONSTRAINTS, prefer_skip_nested_validation=True)
def make_plane(n_samples=100, *, noise=0.0, random_state=None):
    """Generate the Playground's "plane" regression data set.

    Points are uniform in the square ``[-6, 6]^2`` and the target is a
    tilted plane, ``(x0 + x1) / 10``: the Playground maps ``x0 + x1`` from
    ``[-10, 10]`` to ``[-1, 1]``, so the corners reach -1.2 and 1.2. A
    linear model fits it exactly.

    As in the Playground, noise moves the point at which the target is read,
    not the point itself: the target is that of the point plus a shift drawn
    uniformly from ``[-6 * noise, 6 * noise]`` in each coordinate.

    Parameters
    ----------
    n_samples : int, default=100
        Number of points.

    noise : float, default=0.0
        Target noise; the Playground's slider spans 0 to 0.5. With 0, every
        target is ``(x0 + x1) / 10``.

    random_state : int, RandomState instance or None, default=None
        Determines the points and the noise. Pass an int for reproducible
        output across calls.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
        The points, each coordinate in ``[-6, 6]``.

    y : ndarray of shape (n_samples,)
        The targets, in ``[-1.2 * (1 + noise), 1.2 * (1 + noise)]``.

    See Also
    --------
    make_multi_gaussian : The Playground's other regression data set.
    sklearn.datasets.make_regression : Random linear regression problems.

    Examples
    --------
    >>> from skdnn.datasets import make_plane
    >>> X, y = make_plane(n_samples=3, random_state=0)
    >>> X
    array([[ 0.585...,  2.582...],
           [ 1.233...,  0.538...],
           [-0.916...,  1.750...]])
    >>> y
    array([0.316..., 0.177..., 0.083...])
    >>> X, y = make_plane(n_samples=3, noise=0.1, random_state=0)
    >>> y - X.sum(axis=1) / 10  # the noise
    array([0.039..., 0.041..., 0.038...])
    """
    generator = check_random_state(random_state)
    X, read_at = _regression_points(n_samples, noise, generator)
    return X, read_at.sum(axis=1) / _PLANE_SCALE


@validate_params(_COMMON_CONSTRAINTS, prefer_skip_nested_validation=True)
def make_multi_gaussian(n_samples=100, *, noise=0.0, random_state=None):
    """Generate the Playground's "multi Gaussian" regression data set.

    Points are uniform in the square ``[-6, 6]^2``. Six bumps sit on a
    three-by-two grid, centred at ``x0`` in {-4, 0, 4} and ``x1`` in
    {2.5, -2.5}, with signs alternating like a chequerboard: +, -, + on the
    top row and -, +, - below. Each bump falls linearly from 1 at its centre
    to 0 at distance 2 (a cone, despite the Playground's name). The target
    is the signed height of the tallest bump at the point: 1 or -1 at a
    centre, 0 farther than 2 from every centre.

    As in the Playground, noise moves the point at which the target is read,
    not the point itself: the target is that of the point plus a shift drawn
    uniformly from ``[-6 * noise, 6 * noise]`` in each coordinate.

    Parameters
    ----------
    n_samples : int, default=100
        Number of points.

    noise : float, default=0.0
        Target noise; the Playground's slider spans 0 to 0.5.

    random_state : int, RandomState instance or None, default=None
        Determines the points and the noise. Pass an int for reproducible
        output across calls.

    Returns
    -------
    X : ndarray of shape (n_samples, 2)
        The points, each coordinate in ``[-6, 6]``.

    y : ndarray of shape (n_samples,)
        The targets, in ``[-1, 1]``. Without noise, a fraction of about
        ``pi / 6`` of the points (those in the six discs of radius 2 in the
        square of side 12) have a nonzero one.

    See Also
    --------
    make_plane : The Playground's other regression data set.

    Examples
    --------
    >>> import numpy as np
    >>> from skdnn.datasets import make_multi_gaussian
    >>> X, y = make_multi_gaussian(n_samples=4, random_state=0)
    >>> X.round(2)
    array([[ 0.59,  2.58],
           [ 1.23,  0.54],
           [-0.92,  1.75],
           [-0.75,  4.7 ]])
    >>> y.round(2)  # the first point is 0.59 from the (0, 2.5) bump's centre
    array([-0.7 ,  0.  , -0.41,  0.  ])
    >>> X, y = make_multi_gaussian(n_samples=10_000, random_state=0)
    >>> round(float(np.mean(y != 0)), 2), round(np.pi / 6, 2)
    (0.52, 0.52)
    """
    generator = check_random_state(random_state)
    X, read_at = _regression_points(n_samples, noise, generator)
    centres, signs = _GAUSSIANS[:, :2], _GAUSSIANS[:, 2]
    distance = np.hypot(*(read_at[:, None, :] - centres).transpose(2, 0, 1))
    heights = signs * np.clip(1.0 - distance / _GAUSSIAN_RADIUS, 0.0, 1.0)
    # The Playground keeps the first bump of largest height; argmax, too.
    tallest = np.abs(heights).argmax(axis=1)
    return X, heights[np.arange(n_samples), tallest]
