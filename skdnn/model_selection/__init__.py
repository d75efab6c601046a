"""Model selection that trains many DNNClassifier or DNNRegressor fits in batches."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from ._search import GridSearchCV, RandomizedSearchCV

__all__ = ["GridSearchCV", "RandomizedSearchCV"]
