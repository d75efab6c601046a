"""
=============================================
skdnn's defaults against MLPClassifier's
=============================================

``DNNClassifier()`` does not train ``MLPClassifier()``'s network. Its
default, ``hidden_layer_sizes='auto'``, is three hidden layers of 128 units,
trained with dropout 0.15, a learnable scale per input feature
(``input_scaling=24``), ``alpha=1e-3`` and batches of 64: the setting
measured most accurate on the 15 data sets of ``benchmarks/quality.py`` (see
:doc:`/accuracy`). This example fits both estimators with their defaults,
after a StandardScaler, on two problems one hidden layer of 100 units does
not solve: the Playground's two spirals and a 4x4 checkerboard, and draws
their decision regions side by side.
"""

# %%
# Two problems, four fits
# -----------------------
# 500 points of two interleaved spirals with noise 0.3
# (:func:`skdnn.datasets.make_spiral`), and 1,000 points uniform on the unit
# square coloured as a 4x4 checkerboard; each split in half, to train and to
# test.
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.inspection import DecisionBoundaryDisplay
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skdnn import DNNClassifier
from skdnn.datasets import make_spiral


def checkerboard(n_samples, random_state):
    X = np.random.default_rng(random_state).uniform(size=(n_samples, 2))
    return X, np.floor(4 * X).astype(int).sum(axis=1) % 2


problems = {
    "spiral": make_spiral(500, noise=0.3, random_state=0),
    "checkerboard": checkerboard(1_000, random_state=0),
}
models = {
    "MLPClassifier()": MLPClassifier(random_state=0),
    "DNNClassifier()": DNNClassifier(random_state=0),
}

fig, axes = plt.subplots(2, 2, figsize=(9, 9), layout="constrained")
scores = {}
for row, (problem, (X, y)) in zip(axes, problems.items(), strict=True):
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.5, stratify=y, random_state=0
    )
    for ax, (name, model) in zip(row, models.items(), strict=True):
        # MLPClassifier's 200 epochs end before it converges here: it warns.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipeline = make_pipeline(StandardScaler(), model).fit(X_train, y_train)
        score = pipeline.score(X_test, y_test)
        scores[problem, name] = score
        DecisionBoundaryDisplay.from_estimator(
            pipeline, X, response_method="predict_proba", cmap="RdBu", alpha=0.8,
            ax=ax, grid_resolution=150, eps=0.05 * np.ptp(X),
        )  # fmt: skip
        ax.scatter(*X_test.T, c=y_test, cmap="RdBu", s=12, edgecolor="k", lw=0.4)
        ax.set_title(f"{name} on the {problem}: {score:.2f}")
        ax.set_xticks([])
        ax.set_yticks([])
fig.suptitle("Test accuracy with each estimator's defaults")

pd.Series(scores).unstack().round(3)

# %%
# One hidden layer of 100 ReLU units bends its boundary in few places: it
# cuts the spiral's arms and merges the checkerboard's squares. Three layers
# of 128 compose their bends and follow both. The deeper network alone would
# get most of the way (see :doc:`/user_guide/depth_width`); dropout and the
# input scale are what make the same defaults accurate on wide tables too,
# where many features carry no signal (:doc:`/accuracy`). To train
# MLPClassifier's network with skdnn, pass its parameters:
# ``DNNClassifier(**MLPClassifier().get_params())``, or an architecture of
# your own, with which the ``'auto'`` parameters take MLPClassifier's values.
