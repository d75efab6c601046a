"""skdnn: scikit-learn-native deep neural networks on PyTorch."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from ._classifier import DNNClassifier
from ._regressor import DNNRegressor

__version__ = "0.1.0"

__all__ = ["DNNClassifier", "DNNRegressor", "__version__"]
