"""
=======================
Overfitting and dropout
=======================

A network with two hidden layers of 256 units has 66,817 weights and biases.
Trained on 200 noisy points, it can learn the noise along with the pattern:
it *overfits*. Dropout switches off a random fraction of the hidden units at
every training step, so that no unit can rely on particular others, and the
network learns smoother, more robust functions.

This example trains the same large network with and without dropout on a
small, noisy XOR data set and compares their loss curves, their decision
regions and their accuracy on fresh test points. See
:doc:`/user_guide/dropout` for how dropout works.
"""

# %%
# A small, noisy data set
# -----------------------
# The Playground's XOR (:func:`skdnn.datasets.make_xor`) with label noise 0.4:
# near the axes many points carry the other quadrant's label. 200 points to
# train on, 4,000 more from the same distribution to test on.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.inspection import DecisionBoundaryDisplay

from skdnn import DNNClassifier
from skdnn.datasets import make_xor
from skdnn.inspection import LossCurveDisplay

N_TRAIN, NOISE = 200, 0.4


def noisy_xor(seed):
    """200 training points and 4,000 test points of the noisy XOR."""
    X, y = make_xor(N_TRAIN + 4_000, noise=NOISE, random_state=seed)
    return X[:N_TRAIN], X[N_TRAIN:], y[:N_TRAIN], y[N_TRAIN:]


X_train, X_test, y_train, y_test = noisy_xor(seed=0)
# sphinx_gallery_thumbnail_number = 2

# Without noise a point's label is its quadrant's; that rule is the best any
# model can do on the noisy labels.
quadrant_rule = (X_test[:, 0] * X_test[:, 1] >= 0).astype(int)
print(f"accuracy of the noiseless XOR rule: {np.mean(quadrant_rule == y_test):.3f}")


def large_network(dropout, seed, **params):
    return DNNClassifier(
        hidden_layer_sizes=(256, 256),
        dropout=dropout,
        max_iter=300,
        # Train for all 300 epochs instead of stopping on a plateau, so that
        # both networks get the same budget.
        n_iter_no_change=np.inf,
        random_state=seed,
        **params,
    )


# %%
# Loss curves
# -----------
# With ``early_stopping=True`` the network holds out ``validation_fraction``
# of its training points and records, after every epoch, the loss and the
# accuracy on them. ``n_iter_no_change=np.inf`` keeps it training to
# ``max_iter`` so that we see the whole curves.
curve_params = dict(early_stopping=True, validation_fraction=0.25)
curves = {
    "no dropout": large_network(0.0, seed=0, **curve_params).fit(X_train, y_train),
    "dropout 0.5": large_network(0.5, seed=0, **curve_params).fit(X_train, y_train),
}

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True, layout="constrained")
for ax, (name, clf) in zip(axes, curves.items(), strict=True):
    display = LossCurveDisplay.from_estimator(clf, ax=ax)
    display.score_ax_.set_ylim(0.5, 1.0)
    ax.set_ylim(0, 2)
    ax.get_legend().set_title(name)

# %%
# Without dropout (left) the training loss falls towards 0: the network
# memorises the 150 points it trains on, noise included. The validation
# loss falls for a few epochs, then climbs to several times its lowest value:
# the network grows more and more confident of answers that are wrong on new
# points, although its validation accuracy changes little. With
# dropout (right) the training loss stays higher, since every step trains a
# thinned network, and the validation loss climbs much less.
#
# The dashed line marks the best validation epoch, whose weights an
# early-stopped network keeps. Early stopping is another defence against
# overfitting: the two networks above, which keep their best epoch, score
# about the same on the test points.
for name, clf in curves.items():
    print(
        f"{name}: best epoch {np.argmax(clf.validation_scores_) + 1}, "
        f"test accuracy with its weights {clf.score(X_test, y_test):.3f}"
    )

# %%
# Test accuracy over five data sets
# ---------------------------------
# Now without early stopping: each network trains on all 200 points for 300
# epochs. Five seeds draw five data sets and five initialisations; the test
# accuracy is measured on the 4,000 test points of each.
rates = [0.0, 0.2, 0.5]
rows, fitted = [], {}
for seed in range(5):
    X_tr, X_te, y_tr, y_te = noisy_xor(seed)
    for rate in rates:
        clf = large_network(rate, seed=seed).fit(X_tr, y_tr)
        rows.append({"seed": seed, "dropout": rate, "accuracy": clf.score(X_te, y_te)})
        if seed == 0:
            fitted[rate] = clf
accuracy = pd.DataFrame(rows).pivot(index="seed", columns="dropout")["accuracy"]
accuracy.loc["mean"] = accuracy.mean()
accuracy.round(3)

# %%
gain = accuracy.loc["mean", 0.5] - accuracy.loc["mean", 0.0]
wins = int((accuracy.drop(index="mean")[0.5] > accuracy.drop(index="mean")[0.0]).sum())
print(f"dropout 0.5 minus no dropout: {gain:+.3f} mean test accuracy")
print(f"dropout 0.5 is better on {wins} of 5 data sets")

# %%
# Dropout helps here by a couple of points of accuracy, on every one of the
# five data sets, and 0.5 more than 0.2. The gain is modest because the
# problem is small: with two inputs there is little for a network to
# memorise. It grows with the network's capacity relative to the data.
#
# Decision regions
# ----------------
# The two networks of the first data set, without early stopping. Without
# dropout, the regions bend around individual noisy points; with dropout
# they are closer to the four quadrants.
fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), layout="constrained")
for ax, rate in zip(axes, [0.0, 0.5], strict=True):
    clf = fitted[rate]
    DecisionBoundaryDisplay.from_estimator(
        clf,
        X_train,
        response_method="predict_proba",
        cmap="RdBu",
        vmin=0,
        vmax=1,
        alpha=0.6,
        ax=ax,
    )
    ax.scatter(
        *X_train.T, c=y_train, cmap="RdBu", vmin=-0.5, vmax=1.5, edgecolor="w", s=25
    )
    ax.set_title(
        f"dropout {rate}: test accuracy {clf.score(X_test, y_test):.3f}\n"
        f"training accuracy {clf.score(X_train, y_train):.3f}"
    )

# %%
# A network that scores much better on its training points than on new ones
# has overfitted. Dropout narrows that gap; so do early stopping, a larger
# ``alpha`` (the L2 penalty), a smaller network, or more data.
