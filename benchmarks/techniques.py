"""Screen a training technique in a plain PyTorch loop before building it in skdnn.

A technique of RealMLP-TD's (a per-feature scaling layer, label smoothing, a
cosine learning-rate schedule, Adam's beta_2 = 0.95) costs a day to build
into skdnn's engine, with its backward, its stacked form, its tests and its
gradient properties. This script measures first whether it earns that: the
network of ``benchmarks/quality.py``'s candidate (ReLU, dropout, Adam,
minibatches, scikit-learn's L2 penalty ``alpha / (2 batch) * |W|^2``) in
``torch.nn`` with autograd, with the techniques switched on one by one, on
quality.py's data sets and folds (stratified 5-fold, ``random_state=0``,
StandardScaler fitted on each training fold). Its accuracy without any
technique tracks DNNClassifier's on the same settings (0.771 on
classif_3c_20f for both); its times are a plain loop's, not skdnn's.

A configuration is a JSON object of:

- ``hidden`` (list of int, default [128, 128, 128]), ``dropout`` (0.15),
  ``batch`` (64), ``lr`` (1e-3), ``epochs`` (200), ``alpha`` (1e-4),
  ``beta2`` (0.999);
- ``scale`` (false): a learnable scale per input feature, initialised to 1,
  in front of the first layer (RealMLP's "scaling layer"), with the learning
  rate times ``scale_lr`` (6);
- ``ls`` (0.0): label smoothing of the cross-entropy;
- ``cosine`` (false): the learning rate decays as a half cosine over the
  epochs.

Run: ``python benchmarks/techniques.py --config base='{}' --config
scale='{"scale": true}' --sets classif_3c_20f classif_200f``. It prints one
line per data set: each configuration's mean test accuracy and seconds.
"""

import argparse
import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

_SPEC = importlib.util.spec_from_file_location(
    "quality_benchmark", Path(__file__).resolve().parent / "quality.py"
)
quality = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(quality)


class Network(torch.nn.Module):
    """ReLU layers with dropout, and RealMLP's scaling layer when asked."""

    def __init__(self, n_features, n_classes, hidden, dropout, scale):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(n_features)) if scale else None
        layers, width = [], n_features
        for units in hidden:
            layers += [
                torch.nn.Linear(width, units),
                torch.nn.ReLU(),
                torch.nn.Dropout(dropout),
            ]
            width = units
        layers.append(torch.nn.Linear(width, n_classes))
        self.body = torch.nn.Sequential(*layers)

    def forward(self, X):
        return self.body(X if self.scale is None else X * self.scale)


def fit_score(X_train, y_train, X_test, y_test, config, seed):
    """Test accuracy of one fit of ``config``."""
    torch.manual_seed(seed)
    network = Network(
        X_train.shape[1],
        int(y_train.max()) + 1,
        config.get("hidden", (128, 128, 128)),
        config.get("dropout", 0.15),
        config.get("scale", False),
    )
    lr = config.get("lr", 1e-3)
    groups = [{"params": network.body.parameters(), "lr": lr}]
    if network.scale is not None:
        groups.append({"params": [network.scale], "lr": lr * config.get("scale_lr", 6)})
    optimizer = torch.optim.Adam(groups, betas=(0.9, config.get("beta2", 0.999)))
    initial = [group["lr"] for group in optimizer.param_groups]
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=config.get("ls", 0.0))
    X = torch.tensor(X_train, dtype=torch.float32)
    y = torch.tensor(y_train)
    batch, epochs, alpha = (
        config.get("batch", 64),
        config.get("epochs", 200),
        config.get("alpha", 1e-4),
    )
    weights = [m.weight for m in network.body if isinstance(m, torch.nn.Linear)]
    generator = torch.Generator().manual_seed(seed)
    network.train()
    for epoch in range(epochs):
        if config.get("cosine"):
            factor = 0.5 * (1 + math.cos(math.pi * epoch / epochs))
            for group, rate in zip(optimizer.param_groups, initial, strict=True):
                group["lr"] = rate * factor
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), batch):
            rows = order[start : start + batch]
            loss = loss_fn(network(X[rows]), y[rows])
            # scikit-learn's L2 penalty, as DNNClassifier's alpha.
            loss = loss + alpha / (2 * len(rows)) * sum((W**2).sum() for W in weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    network.eval()
    with torch.no_grad():
        logits = network(torch.tensor(X_test, dtype=torch.float32))
    return float((logits.argmax(1).numpy() == y_test).mean())


def score(name, config, folds=5):
    """Mean test accuracy of ``config`` on data set ``name``, and seconds."""
    X, y = quality.SETS[name]()
    y = np.unique(y, return_inverse=True)[1]
    start, accuracies = time.perf_counter(), []
    splits = StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y)
    for seed, (train, test) in enumerate(splits):
        scaler = StandardScaler().fit(X[train])
        accuracies.append(
            fit_score(
                scaler.transform(X[train]),
                y[train],
                scaler.transform(X[test]),
                y[test],
                config,
                seed,
            )
        )
    return float(np.mean(accuracies)), time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        action="append",
        required=True,
        metavar="NAME=JSON",
        help="a configuration to score (repeatable)",
    )
    parser.add_argument("--sets", nargs="+", default=list(quality.SETS))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    configs = dict(text.split("=", 1) for text in args.config)
    configs = {name: json.loads(text) for name, text in configs.items()}
    for name in args.sets:
        row = ", ".join(
            "{} {:.3f} ({:.1f} s)".format(config_name, *score(name, config))
            for config_name, config in configs.items()
        )
        print(f"{name}: {row}", flush=True)


if __name__ == "__main__":
    main()
