"""
============================================
A grid search trained as one batched network
============================================

Tuning dropout by cross-validation means many small fits: six rates and five
folds are 30 fits of the same tiny network, and each fit's time goes mostly
to the bookkeeping of its many small steps, not to arithmetic.
:class:`skdnn.model_selection.GridSearchCV` is scikit-learn's
:class:`~sklearn.model_selection.GridSearchCV` with one difference: it stacks
the 30 networks into one and trains them together, every network on the
rows of its own fold, with its own dropout rate, shuffles and stopping. This
example runs both searches on the tutorial's XOR problem and compares their
time and their scores.
"""

# %%
# The data and the network
# ------------------------
# The tutorial's XOR: 1,000 points of the square, labelled by the sign of
# ``x0 * x1``; 800 to tune on. A 2-6-4-1 ReLU network, batches of 32, 100
# epochs for every candidate (``n_iter_no_change`` above the budget).
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import sklearn.model_selection
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold, train_test_split

import skdnn.model_selection
from skdnn import DNNClassifier

rng = np.random.default_rng(0)
X = rng.uniform(-1, 1, size=(1_000, 2))
y = (X[:, 0] * X[:, 1] > 0).astype(int)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.2, random_state=42
)
network = DNNClassifier(
    (6, 4), batch_size=32, max_iter=100, n_iter_no_change=101, random_state=0
)
grid = {"dropout": [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]}
cv = StratifiedKFold(5)
# A fixed budget of 100 epochs: not converging by then is expected.
warnings.simplefilter("ignore", ConvergenceWarning)

# %%
# Both searches
# -------------
# The same estimator, grid and folds; only the class differs.
searches, seconds = {}, {}
for name, search_class in [
    ("scikit-learn", sklearn.model_selection.GridSearchCV),
    ("skdnn, batched", skdnn.model_selection.GridSearchCV),
]:
    start = time.perf_counter()
    searches[name] = search_class(network, grid, cv=cv).fit(X_train, y_train)
    seconds[name] = time.perf_counter() - start
    print(
        f"{name:15}: {seconds[name]:5.2f} s, best {searches[name].best_params_}, "
        f"test accuracy {searches[name].score(X_test, y_test):.3f}"
    )
print(
    f"batched search {seconds['scikit-learn'] / seconds['skdnn, batched']:.1f}x faster"
)

# %%
# The scores
# ----------
# Every batched network computes what its sequential fit computes: the same
# rows, shuffles, initial weights and dropout masks (drawn from each
# network's own seeds, as ``fit`` draws them), up to the order of
# floating-point additions. So the two searches' scores agree to rounding:
# the two curves below lie on top of each other.
fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
for name, search in searches.items():
    results = search.cv_results_
    ax.errorbar(
        grid["dropout"],
        results["mean_test_score"],
        yerr=results["std_test_score"],
        marker="o",
        capsize=3,
        label=name,
    )
ax.set(
    xlabel="dropout",
    ylabel="mean accuracy over 5 folds",
    title="Cross-validated accuracy of each dropout rate",
)
ax.legend()
plt.show()

# %%
# ``cv_results_`` has scikit-learn's keys and layout, so everything written
# for scikit-learn's searches (a :class:`pandas.DataFrame` of the results,
# plots, ``best_estimator_``) works unchanged. The best candidate is refitted
# on all the training data by its ``fit``. A search that the batched
# path cannot take (another solver, say, or early stopping) runs
# scikit-learn's sequential search instead, and says so with ``verbose=1``.
difference = np.abs(
    searches["scikit-learn"].cv_results_["mean_test_score"]
    - searches["skdnn, batched"].cv_results_["mean_test_score"]
)
print(f"largest difference of mean test scores: {difference.max():.3f}")
