"""benchmarks/techniques.py: the plain-torch screen of training techniques.

Loaded from its path, as tests/test_quality_benchmark.py loads quality.py.
These tests check what it builds and that each switch takes effect, never
its accuracies or times.
"""

import importlib.util
from pathlib import Path

import numpy as np
import torch

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "techniques.py"
SPEC = importlib.util.spec_from_file_location("techniques_benchmark", PATH)
techniques = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(techniques)


def test_the_scaling_layer_is_one_learnable_scale_per_feature_starting_at_one():
    plain = techniques.Network(5, 3, (4,), 0.0, scale=False)
    scaled = techniques.Network(5, 3, (4,), 0.0, scale=True)
    n_plain = sum(p.numel() for p in plain.parameters())
    assert sum(p.numel() for p in scaled.parameters()) == n_plain + 5
    scaled.load_state_dict({**plain.state_dict(), "scale": torch.ones(5)})
    X = torch.randn(7, 5)
    torch.testing.assert_close(scaled(X), plain(X))
    with torch.no_grad():
        scaled.scale[0] = 0.0
    # A zero scale removes the feature: changing it changes nothing.
    X2 = X.clone()
    X2[:, 0] += 10.0
    torch.testing.assert_close(scaled(X2), scaled(X))


def _data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    return X, y


def test_a_fit_is_reproducible_and_each_switch_changes_it():
    X, y = _data()
    base = {"hidden": [8], "epochs": 3, "batch": 16}

    def accuracy(**extra):
        return techniques.fit_score(X, y, X, y, {**base, **extra}, seed=0)

    first = accuracy()
    assert 0.0 <= first <= 1.0 and accuracy() == first

    # The switches train different networks: at least one of the scores on
    # the training rows moves, over a few seeds.
    changed = {
        name: any(
            techniques.fit_score(X, y, X, y, {**base, **extra}, seed)
            != techniques.fit_score(X, y, X, y, base, seed)
            for seed in range(4)
        )
        for name, extra in {
            "scale": {"scale": True, "scale_lr": 50},
            "ls": {"ls": 0.4},
            "cosine": {"cosine": True, "lr": 0.05},
        }.items()
    }
    assert changed == {"scale": True, "ls": True, "cosine": True}


def test_score_runs_on_a_quality_data_set():
    accuracy, seconds = techniques.score("iris", {"hidden": [4], "epochs": 1}, folds=2)
    assert 0.0 <= accuracy <= 1.0 and seconds > 0
