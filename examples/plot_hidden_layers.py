"""
==========================================
What 0, 1 and 2 hidden layers can solve
==========================================

The `TensorFlow Playground <https://playground.tensorflow.org>`_ teaches what
a network's shape buys on five small 2-D data sets. This example draws its
lessons with :func:`skdnn.inspection.plot_playground`: one row per data set,
one column per network, each cell the decision regions of a network fitted on
half the points (white edges) and scored on the other half (black edges).
Blue is class 1, orange class 0; the paler the colour, the closer the
predicted probability is to one half.

Every network here is ``DNNClassifier(activation="tanh", solver="lbfgs",
alpha=0.01, random_state=0)``, plot_playground's default, with its
``hidden_layer_sizes`` set per column.
"""

# %%
# No hidden layer, one, two
# -------------------------
import pandas as pd

from skdnn.inspection import plot_playground


def scores_table(result, hidden_layer_sizes):
    """The test accuracies of a plot_playground grid, as in its titles."""
    return pd.DataFrame(
        [[f"{score:.2f}" for score in row] for row in result.test_scores],
        index=result.datasets,
        columns=[str(sizes) for sizes in hidden_layer_sizes],
    )


depths = [(), (4,), (16, 16)]
result = plot_playground(hidden_layer_sizes=depths)
scores_table(result, depths)

# %%
# Without a hidden layer (the first column) the network is a logistic
# regression: its decision boundary is a straight line, whatever the data.
# That separates the two Gaussians, and the moons only roughly; on XOR and
# on the circle it does no better than chance, because no line puts the
# first and third quadrants, or a disc, on one side. One hidden layer of 4
# units solves XOR and the circle. Its boundary combines 4 curves, one per
# unit, which is not enough to follow the spiral's arms; two hidden layers of
# 16 are.
#
# How wide
# --------
# One hidden layer, more and more units. Each unit adds one smooth step along
# a straight line; the output weighs the steps together.
widths = [(2,), (3,), (8,), (32,)]
result = plot_playground(hidden_layer_sizes=widths)
scores_table(result, widths)

# %%
# XOR and the circle each need three units: two steps can cut the plane into
# a band but not surround a region or separate two diagonal quadrants. The
# spiral needs many more, 32 here, for one layer to bend around its arms.
#
# How deep
# --------
# The same 8 units per layer, one to three layers.
layers = [(8,), (8, 8), (8, 8, 8)]
result = plot_playground(hidden_layer_sizes=layers)
scores_table(result, layers)

# %%
# A second layer of 8 units solves the spiral that one layer of 8 could not:
# the second layer combines the first layer's steps into curved pieces, which
# costs far fewer units than one wide layer. A third layer does not help
# here: deeper networks are harder to fit, and L-BFGS stops in a worse
# solution on the spiral. Depth is a tool, not a score to maximise; try the
# candidates and keep the one that does best on held-out data (see
# :ref:`sphx_glr_auto_examples_plot_tuning.py`).
