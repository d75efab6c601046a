"""
==============================================
Tuning dropout with GridSearchCV in a Pipeline
==============================================

:class:`~skdnn.DNNClassifier` is a scikit-learn estimator, so scikit-learn's
model selection tools work on it as on any other: here
:func:`~sklearn.model_selection.cross_val_score`,
:class:`~sklearn.model_selection.ValidationCurveDisplay` and
:class:`~sklearn.model_selection.GridSearchCV`, each on a
:class:`~sklearn.pipeline.Pipeline` that scales the features before the
network sees them. A pipeline fits the scaler on the training folds only, so
no information from the held-out fold leaks into training.
"""

# %%
# The data
# --------
# 20 features, 6 of them informative, with 10% of the labels flipped at
# random, and each feature in its own unit: values from about 0.01 to 1,000.
# Neural networks train badly on such unscaled features;
# :class:`~sklearn.preprocessing.StandardScaler` centres and scales each one.
# 400 samples to tune and train on, a small data set for a large network, and
# 2,100 more to test the result.
import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.model_selection import (
    GridSearchCV,
    StratifiedKFold,
    ValidationCurveDisplay,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skdnn import DNNClassifier

X, y = make_classification(
    n_samples=2_500,
    n_features=20,
    n_informative=6,
    n_redundant=0,
    flip_y=0.1,
    random_state=0,
)
X *= 10.0 ** np.random.default_rng(0).uniform(-2, 3, size=X.shape[1])
X_train, X_test, y_train, y_test = train_test_split(
    X, y, train_size=400, stratify=y, random_state=0
)

# %%
# A pipeline and its cross-validated score
# ----------------------------------------
# Two hidden layers of 128 units, trained for 100 epochs. As in the
# :ref:`dropout example <sphx_glr_auto_examples_plot_dropout.py>`,
# ``n_iter_no_change=np.inf`` gives every fit the same budget.
pipe = make_pipeline(
    StandardScaler(),
    DNNClassifier(
        hidden_layer_sizes=(128, 128),
        max_iter=100,
        n_iter_no_change=np.inf,
        random_state=0,
    ),
)
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
scores = cross_val_score(pipe, X_train, y_train, cv=cv)
print(pipe)
print(f"no dropout: accuracy {scores.mean():.3f} +/- {scores.std():.3f} over 5 folds")

# %%
# A validation curve over dropout
# -------------------------------
# The pipeline's parameters are named ``<step>__<parameter>``; the network's
# step is ``dnnclassifier``. The curve cross-validates one pipeline per
# dropout rate and plots the accuracy on the training folds and on the
# held-out folds.
rates = [0.0, 0.2, 0.4, 0.6, 0.8]
display = ValidationCurveDisplay.from_estimator(
    pipe,
    X_train,
    y_train,
    param_name="dnnclassifier__dropout",
    param_range=rates,
    cv=cv,
    score_name="accuracy",
)
display.ax_.set_xlabel("dropout rate")
display.ax_.set_title("Validation curve of the 128-128 network")
best_rate = rates[int(np.argmax(display.test_scores.mean(axis=1)))]
print(f"best rate on the held-out folds: {best_rate}")

# %%
# Without dropout the network fits its training folds perfectly, and scores
# about 0.8 on the held-out folds: it overfits. Dropout lowers the training
# accuracy and raises the held-out one, up to a point: at the highest rate
# the network drops so many units that it starts to underfit, and the
# held-out accuracy falls again.
#
# A grid search
# -------------
# :class:`~sklearn.model_selection.GridSearchCV` tries every combination of
# the rates and the network's sizes, and refits the best on all the training
# data.
search = GridSearchCV(
    pipe,
    {
        "dnnclassifier__dropout": [0.0, 0.2, 0.4, 0.6],
        "dnnclassifier__hidden_layer_sizes": [(32, 32), (128, 128)],
    },
    cv=cv,
)
search.fit(X_train, y_train)
results = pd.DataFrame(search.cv_results_)
results.pivot(
    index="param_dnnclassifier__dropout",
    columns="param_dnnclassifier__hidden_layer_sizes",
    values="mean_test_score",
).round(3)

# %%
baseline = pipe.fit(X_train, y_train).score(X_test, y_test)
print(f"best parameters: {search.best_params_}")
print(f"best cross-validated accuracy: {search.best_score_:.3f}")
print(f"test accuracy of the best pipeline: {search.score(X_test, y_test):.3f}")
print(f"test accuracy without dropout, 128-128: {baseline:.3f}")

# %%
# The best cross-validated score is an optimistic estimate, since it is the
# maximum over the candidates; the test samples, which played no part in the
# search, give an honest one. Here the tuned pipeline beats the untuned one on
# them too. For an honest estimate without a test set,
# cross-validate the search itself, ``cross_val_score(search, X, y)`` (nested
# cross-validation), at the cost of one search per outer fold.
