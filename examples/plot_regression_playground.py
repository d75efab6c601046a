"""
======================================
Regression on the Playground's planes
======================================

The `TensorFlow Playground <https://playground.tensorflow.org>`_ has two
regression problems beside its classification ones: a tilted *plane* and six
*Gaussian* bumps of alternating sign. :func:`skdnn.datasets.make_plane` and
:func:`skdnn.datasets.make_multi_gaussian` generate them, following the
Playground's own code.

This example fits :class:`~skdnn.DNNRegressor`, the twin of scikit-learn's
:class:`~sklearn.neural_network.MLPRegressor`, to each, and opens the
networks up with :class:`~skdnn.inspection.NetworkDisplay`: for a regressor,
the output is a heat map of the prediction over the plane, with a colorbar,
and the points are coloured by their target on the same scale.
"""

# %%
# The plane
# ---------
# Points are uniform in the square :math:`[-6, 6]^2`, and the target is
# :math:`(x_0 + x_1) / 10`. The noise moves the point where the target is
# read, as in the Playground: with ``noise=0.1`` by up to 0.6 along each
# coordinate. A linear function fits the plane, so a network without hidden
# layer, a linear regression, is enough.
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skdnn import DNNRegressor
from skdnn.datasets import make_multi_gaussian, make_plane
from skdnn.inspection import NetworkDisplay

X, y = make_plane(n_samples=400, noise=0.1, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
linear = DNNRegressor(hidden_layer_sizes=(), solver="lbfgs", random_state=0)
linear.fit(X_train, y_train)
print(f"plane, no hidden layer: test R^2 {linear.score(X_test, y_test):.3f}")
print("weights", linear.coefs_[0].ravel().round(3), "(the plane's: 0.1 and 0.1)")
NetworkDisplay.from_estimator(linear, X_train, y_train)

# %%
# The two input neurons are the features themselves; the output neuron, with
# its identity activation, is their weighted sum, and its picture is the heat
# map on the right. Both weights are close to 0.1. The R^2 is not 1: the
# noise makes part of each target unpredictable from its point.
#
# Six Gaussian bumps
# ------------------
# :func:`~skdnn.datasets.make_multi_gaussian` puts six bumps on a three-by-two
# grid, positive and negative like a chequerboard. Each falls from 1 (or -1)
# at its centre to 0 at distance 2, and the target is the height of the
# tallest bump at the point: 0 far from every centre. No straight plane comes
# close.
X, y = make_multi_gaussian(n_samples=600, noise=0.05, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
linear.fit(X_train, y_train)
print(f"bumps, no hidden layer: test R^2 {linear.score(X_test, y_test):.3f}")

# %%
# Two hidden layers of 8 tanh units, trained with L-BFGS as the Playground's
# small networks train best, fit the bumps.

# sphinx_gallery_thumbnail_number = 2
bumps_net = DNNRegressor(
    hidden_layer_sizes=(8, 8),
    activation="tanh",
    solver="lbfgs",
    alpha=0.01,
    max_iter=2000,
    random_state=0,
)
with warnings.catch_warnings():
    # L-BFGS has not met its tolerance after 2,000 iterations, and warns;
    # 2,000 more would add less than 0.01 to the test R^2.
    warnings.simplefilter("ignore", ConvergenceWarning)
    bumps_net.fit(X_train, y_train)
print(f"bumps, hidden layers (8, 8): test R^2 {bumps_net.score(X_test, y_test):.3f}")
NetworkDisplay.from_estimator(bumps_net, X_train, y_train)

# %%
# Each first-layer neuron is a smooth step across a straight line; the second
# layer's combine them into ridges and blobs, and the output adds those into
# the six bumps. The colour scale of the heat map, the output neuron and the
# points is one, from the lowest to the highest value of the prediction and
# the targets, so a point whose colour matches the map around it is predicted
# well. The network extrapolates beyond the square of data, at the edges of
# the heat map, where nothing held it to 0.
