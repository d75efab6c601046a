"""
==========================================================
Batched validation curves and successive halving searches
==========================================================

:mod:`skdnn.model_selection` holds drop-ins for scikit-learn's model
selection functions and searches, with the same signatures and results, that
train their fits of a :class:`~skdnn.DNNClassifier` or
:class:`~skdnn.DNNRegressor` in batches: every fit of one architecture,
whatever its fold, dropout rate or learning rate, is a network of one stacked
computation. This example draws a validation curve over dropout with
:func:`skdnn.model_selection.validation_curve`, then searches architectures
and dropout rates by successive halving with
:class:`skdnn.model_selection.HalvingGridSearchCV`.
"""

# %%
# The data
# --------
# Two interleaved half moons with noise, and eight more columns of pure
# noise: 450 rows, few enough for a large network to learn the noise
# columns by heart, so it has something to overfit.
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, ValidationCurveDisplay

from skdnn import DNNClassifier
from skdnn.model_selection import HalvingGridSearchCV, validation_curve

X, y = make_moons(n_samples=450, noise=0.3, random_state=0)
noise = np.random.default_rng(0).normal(size=(len(X), 8))
X = np.hstack([X, noise])
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
# A fixed budget of 100 epochs per fit (n_iter_no_change above it), so that
# every dropout rate trains as long; not converging by then is expected.
warnings.simplefilter("ignore", ConvergenceWarning)
network = DNNClassifier(
    (64, 64), batch_size=32, max_iter=100, n_iter_no_change=np.inf, random_state=0
)

# %%
# A validation curve over dropout
# -------------------------------
# Six rates on five folds are 30 fits of the same 64-64 network: the batched
# :func:`~skdnn.model_selection.validation_curve` trains them as one stacked
# network and returns what scikit-learn's function returns, the training and
# held-out scores of each rate on each fold. scikit-learn's
# :class:`~sklearn.model_selection.ValidationCurveDisplay` draws them from
# its constructor (its ``from_estimator`` would fit them again, one by one).
rates = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
start = time.perf_counter()
train_scores, test_scores = validation_curve(
    network, X, y, param_name="dropout", param_range=rates, cv=cv
)
print(f"30 fits in {time.perf_counter() - start:.1f} s")
for rate, train, test in zip(
    rates, train_scores.mean(axis=1), test_scores.mean(axis=1), strict=True
):
    print(f"dropout {rate:.1f}: training accuracy {train:.3f}, held-out {test:.3f}")

display = ValidationCurveDisplay(
    param_name="dropout",
    param_range=rates,
    train_scores=train_scores,
    test_scores=test_scores,
    score_name="accuracy",
).plot()
display.ax_.set_title("Validation curve of the 64-64 network")
plt.show()

# %%
# The gap between the two curves is what the network learned of its
# training folds that does not hold on the held-out ones: the noise columns
# and the noisy labels. Dropout narrows it, and the held-out accuracy tells
# which rate narrows it best.
#
# Successive halving over architectures
# -------------------------------------
# A grid of four architectures and three dropout rates is 12 candidates.
# :class:`~skdnn.model_selection.HalvingGridSearchCV` cross-validates all of
# them on few rows, keeps the best third (``factor=3``), gives those three
# times the rows, and so on, until the last rung uses every row: few fits on
# many rows, many on few. Each rung's fits are batched by architecture: the
# candidates of one ``hidden_layer_sizes`` train together, on all five folds
# at once.
grid = {
    "hidden_layer_sizes": [(16,), (64,), (64, 64), (128, 128)],
    "dropout": [0.0, 0.2, 0.4],
}
start = time.perf_counter()
search = HalvingGridSearchCV(network, grid, cv=cv, random_state=0).fit(X, y)
print(f"search in {time.perf_counter() - start:.1f} s, batched: {search.batched_}")
print(f"candidates of each rung: {search.n_candidates_}")
print(f"rows of each rung: {search.n_resources_}")
print(f"best parameters: {search.best_params_}")
print(f"their accuracy in the last rung: {search.best_score_:.3f}")

# %%
# Each line below is a candidate, through the rungs it reached: most stop
# after the first, whose few rows give noisy scores; the fits of the last
# rung, on every row, decide. The rungs' fits
# equal those of scikit-learn's
# :class:`~sklearn.model_selection.HalvingGridSearchCV` up to floating-point
# rounding, so the same candidates go on at each rung.
results = search.cv_results_
last_rung = results["iter"].max()
fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
candidates = {}
for rung, params, score in zip(
    results["iter"], results["params"], results["mean_test_score"], strict=True
):
    key = (params["hidden_layer_sizes"], params["dropout"])
    candidates.setdefault(key, []).append((search.n_resources_[rung], score))
for (sizes, rate), points in candidates.items():
    rows, scores = zip(*points, strict=True)
    if len(points) == last_rung + 1:
        ax.plot(rows, scores, marker="o", label=f"{sizes}, {rate}")
    else:
        ax.plot(rows, scores, marker="o", color="0.7", zorder=0)
ax.plot([], [], marker="o", color="0.7", label="eliminated earlier")
ax.set(
    xscale="log",
    xticks=search.n_resources_,
    xticklabels=search.n_resources_,
    xlabel="rows of the rung (5-fold cross-validation)",
    ylabel="mean held-out accuracy",
    title="Successive halving over architectures and dropout",
)
ax.minorticks_off()
ax.legend(title="hidden layers, dropout")
plt.show()
