"""
==================================
Inside the network: every neuron
==================================

:class:`skdnn.inspection.NetworkDisplay` draws a fitted network on 2-D input
as the `TensorFlow Playground <https://playground.tensorflow.org>`_ does:
every neuron is a small picture of its value over the input plane, and every
connection a line, blue for a positive weight and orange for a negative one,
as wide as the weight is large. On the right are the network's decision
regions, with the data.

Reading the pictures left to right shows how a deep network builds its
answer: the first hidden layer can only draw straight boundaries, one per
neuron; each later layer combines the pictures of the layer before into more
complex shapes.
"""

# %%
# XOR
# ---
# The Playground's XOR data (:func:`skdnn.datasets.make_xor`) and a network of
# two hidden layers, 6 and 4 tanh units. The colour scale of each hidden
# neuron is its own, centred on 0: orange where the neuron is negative, white
# at 0, blue where it is positive. The output shows the probability of
# class 1: orange near 0, blue near 1.
import warnings

from sklearn.exceptions import ConvergenceWarning

from skdnn import DNNClassifier
from skdnn.datasets import make_spiral, make_xor
from skdnn.inspection import NetworkDisplay

X, y = make_xor(n_samples=300, noise=0.05, random_state=0)
# sphinx_gallery_thumbnail_number = 3
xor_net = DNNClassifier(
    hidden_layer_sizes=(6, 4),
    activation="tanh",
    solver="lbfgs",
    alpha=0.01,
    max_iter=1000,
    random_state=0,
).fit(X, y)
print(f"training accuracy {xor_net.score(X, y):.3f}")
NetworkDisplay.from_estimator(xor_net, X, y)

# %%
# Each first-layer neuron is a tanh of a weighted sum of :math:`x_0` and
# :math:`x_1`: a smooth step across one straight line. None of them alone
# separates the quadrants. The second layer's neurons weigh those steps
# together, and their pictures already show corners; the output combines
# them into the XOR pattern.
#
# ReLU units
# ----------
# The same network with ReLU units, the default activation. A ReLU neuron is
# zero, white, on one side of its line and grows linearly on the other, so
# every boundary the network draws is made of straight pieces.
relu_net = DNNClassifier(
    hidden_layer_sizes=(6, 4),
    solver="lbfgs",
    alpha=0.01,
    max_iter=1000,
    random_state=0,
).fit(X, y)
print(f"training accuracy {relu_net.score(X, y):.3f}")
NetworkDisplay.from_estimator(relu_net, X, y)

# %%
# One unit of the second layer is white over the whole plane: it is zero at
# every point of the data, a "dead" ReLU unit. It passes nothing on, and its
# gradient is zero too, so training cannot revive it. The other units are
# enough here.

# %%
# The spiral
# ----------
# Two interleaved spirals (:func:`skdnn.datasets.make_spiral`) need more: here
# three hidden layers of 8 tanh units. The first layer's neurons are still
# straight steps; the deeper layers bend them into curved bands that follow
# the arms.
X, y = make_spiral(n_samples=400, noise=0.1, random_state=0)
spiral_net = DNNClassifier(
    hidden_layer_sizes=(8, 8, 8),
    activation="tanh",
    solver="lbfgs",
    alpha=0.01,
    max_iter=5000,
    random_state=0,
)
with warnings.catch_warnings():
    # L-BFGS has not met its tolerance after 5,000 iterations, and warns;
    # the network already classifies every training point right.
    warnings.simplefilter("ignore", ConvergenceWarning)
    spiral_net.fit(X, y)
print(f"training accuracy {spiral_net.score(X, y):.3f}")
NetworkDisplay.from_estimator(spiral_net, X, y)

# %%
# NetworkDisplay draws networks of up to 16 units per layer and 8 hidden
# layers, on 2-D input. For larger networks on 2-D input,
# :class:`~sklearn.inspection.DecisionBoundaryDisplay` still draws the decision
# regions; for any network, :class:`~skdnn.inspection.LossCurveDisplay` draws
# how its training went.
