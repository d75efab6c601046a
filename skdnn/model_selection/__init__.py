"""Model selection that trains many DNNClassifier or DNNRegressor fits in batches."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from ._search import (
    GridSearchCV,
    HalvingGridSearchCV,
    HalvingRandomSearchCV,
    RandomizedSearchCV,
)
from ._validation import (
    cross_val_score,
    cross_validate,
    learning_curve,
    validation_curve,
)

__all__ = [
    "GridSearchCV",
    "HalvingGridSearchCV",
    "HalvingRandomSearchCV",
    "RandomizedSearchCV",
    "cross_val_score",
    "cross_validate",
    "learning_curve",
    "validation_curve",
]
