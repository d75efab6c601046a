"""Pictures of what a network learns: the TensorFlow Playground as a library.

Decision regions are scikit-learn's
:class:`~sklearn.inspection.DecisionBoundaryDisplay`, which works with
:class:`~skdnn.DNNClassifier` as with any classifier. The displays here draw
:class:`~skdnn.DNNRegressor` too. matplotlib is imported only when something
is drawn.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from ._loss_curve import LossCurveDisplay
from ._network import NetworkDisplay
from ._playground import plot_playground

__all__ = ["LossCurveDisplay", "NetworkDisplay", "plot_playground"]
