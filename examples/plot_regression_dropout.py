"""
=========================================
Dropout against overfitting in regression
=========================================

A regressor with two hidden layers of 128 units has 16,897 weights and
biases. Trained on 40 noisy points of a curve, it can pass through every one
of them, noise included: it *overfits*, and predicts new points worse than a
smoother curve would. Dropout, which switches off a random half of the hidden
units at every training step here, keeps it smoother.

This example trains the same large :class:`~skdnn.DNNRegressor` with and
without dropout, draws their training and validation curves with
:class:`~skdnn.inspection.LossCurveDisplay`, and compares their R^2 on fresh
test points and the curves they learn. See :doc:`/user_guide/dropout` for
how dropout works and :doc:`/user_guide/regression` for regression.
"""

# %%
# A small, noisy data set
# -----------------------
# One feature :math:`x`, uniform in :math:`[-3, 3]`, and the target
# :math:`\sin(1.5 x)` plus Gaussian noise of standard deviation 0.5. The
# noise is as large as the signal: even the true curve explains only two
# thirds of the target's variance.
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import r2_score

from skdnn import DNNRegressor
from skdnn.inspection import LossCurveDisplay

NOISE = 0.5


def noisy_sine(n_train, seed):
    """``n_train`` training points and 2,000 test points of the noisy curve."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-3, 3, size=(n_train + 2_000, 1))
    y = np.sin(1.5 * X[:, 0]) + NOISE * rng.normal(size=len(X))
    return X[:n_train], X[n_train:], y[:n_train], y[n_train:]


X_train, X_test, y_train, y_test = noisy_sine(n_train=40, seed=0)
true_r2 = r2_score(y_test, np.sin(1.5 * X_test[:, 0]))
print(f"test R^2 of the true curve, the best any model can do: {true_r2:.3f}")


def large_network(dropout, seed, **params):
    return DNNRegressor(
        hidden_layer_sizes=(128, 128),
        dropout=dropout,
        max_iter=500,
        # Train for all 500 epochs instead of stopping on a plateau, so that
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
# R^2 on them; ``n_iter_no_change=np.inf`` keeps it training to ``max_iter``
# so that we see the whole curves. Here 80 points, half of them held out: each
# network trains on 40, as in the rest of the example, and is validated on 40.
X_80, X_80_test, y_80, y_80_test = noisy_sine(n_train=80, seed=1)
curve_params = dict(early_stopping=True, validation_fraction=0.5)
curves = {
    "no dropout": large_network(0.0, seed=0, **curve_params).fit(X_80, y_80),
    "dropout 0.5": large_network(0.5, seed=0, **curve_params).fit(X_80, y_80),
}

fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True, layout="constrained")
for ax, (name, reg) in zip(axes, curves.items(), strict=True):
    display = LossCurveDisplay.from_estimator(reg, ax=ax)
    display.score_ax_.set_ylim(0.0, 0.7)
    ax.get_legend().set_title(name)

# %%
# Without dropout (left) the training loss keeps falling, while the
# validation loss reaches its lowest and then climbs, and the validation R^2
# falls: the network learns the noise of its 40 points. With dropout (right)
# the training loss is noisy, since each step trains a thinned network, and
# stays higher; the validation loss stays near its lowest to the end.
#
# Early stopping follows the validation R^2, not the loss, and keeps the
# weights of its best epoch (the dashed line). It is another defence against
# overfitting: each early-stopped network predicts the test points with the
# weights of its best epoch, not of its last.
for name, reg in curves.items():
    print(
        f"{name}: best epoch {np.argmax(reg.validation_scores_) + 1}, "
        f"validation R^2 there {max(reg.validation_scores_):.3f} and at the last "
        f"epoch {reg.validation_scores_[-1]:.3f}; test R^2 with the best epoch's "
        f"weights {reg.score(X_80_test, y_80_test):.3f}"
    )

# %%
# Test R^2 over five data sets
# ----------------------------
# Now without early stopping: each network trains on all 40 points for 500
# epochs. Five seeds draw five data sets and five initialisations; the R^2 is
# measured on the 2,000 test points of each.
rows, fitted = [], {}
for seed in range(5):
    X_tr, X_te, y_tr, y_te = noisy_sine(n_train=40, seed=seed)
    for rate in [0.0, 0.5]:
        reg = large_network(rate, seed=seed).fit(X_tr, y_tr)
        rows.append({"seed": seed, "dropout": rate, "test R^2": reg.score(X_te, y_te)})
        if seed == 0:
            fitted[rate] = reg
r2 = pd.DataFrame(rows).pivot(index="seed", columns="dropout")["test R^2"]
r2.loc["mean"] = r2.mean()
print(r2.round(3))

# %%
wins = int((r2.drop(index="mean")[0.5] > r2.drop(index="mean")[0.0]).sum())
print(f"dropout 0.5 minus no dropout: {r2.loc['mean', 0.5] - r2.loc['mean', 0.0]:+.3f}")
print(f"dropout 0.5 is better on {wins} of 5 data sets")

# %%
# The learned curves
# ------------------
# The two networks of the first data set. Without dropout the curve bends
# towards individual noisy points; with dropout it stays closer to the sine.
grid = np.linspace(-3.2, 3.2, 400).reshape(-1, 1)
fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
ax.scatter(X_train[:, 0], y_train, color="0.3", s=18, label="training points")
ax.plot(grid, np.sin(1.5 * grid), color="k", linestyle=":", label="true curve")
for rate, colour in [(0.0, "C1"), (0.5, "C0")]:
    reg = fitted[rate]
    ax.plot(
        grid,
        reg.predict(grid),
        color=colour,
        label=f"dropout {rate}: training $R^2$ {reg.score(X_train, y_train):.2f}, "
        f"test $R^2$ {reg.score(X_test, y_test):.2f}",
    )
ax.set_xlabel("x")
ax.set_ylabel("y")
ax.legend(loc="lower left")

# %%
# A network that scores much better on its training points than on new ones
# has overfitted. Dropout narrows that gap; so do early stopping, a larger
# ``alpha`` (the L2 penalty), a smaller network, or more data.
