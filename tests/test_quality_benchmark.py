"""benchmarks/quality.py: its data sets and the shape of what it writes.

The benchmark is no part of the package, so it is loaded from its path. These
tests check what it scores and writes, never its accuracies or times.
"""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"
SPEC = importlib.util.spec_from_file_location("quality_benchmark", PATH)
quality = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(quality)

# Written out here, apart from the benchmark: rows, features, classes.
EXPECTED = {
    "iris": (150, 4, 3),
    "wine": (178, 13, 3),
    "breast_cancer": (569, 30, 2),
    "digits": (1797, 64, 10),
    "moons_150": (150, 2, 2),
    "moons": (500, 2, 2),
    "moons_2000": (2000, 2, 2),
    "circles": (500, 2, 2),
    "xor": (500, 2, 2),
    "spiral": (500, 2, 2),
    "checkerboard": (1000, 2, 2),
    "classif_3c_20f": (1000, 20, 3),
    "classif_200f": (1500, 200, 2),
    "imbalanced_9to1": (1000, 20, 2),
    "classif_10c": (2000, 20, 10),
}


def test_the_benchmark_has_the_data_sets_listed_here():
    assert list(quality.SETS) == list(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_each_data_set_has_its_rows_features_and_classes(name):
    rows, features, classes = EXPECTED[name]
    assert quality.describe([name])[name] == {
        "rows": rows,
        "features": features,
        "classes": classes,
    }


def test_each_data_set_is_the_same_on_every_call():
    for make in quality.SETS.values():
        (X1, y1), (X2, y2) = make(), make()
        assert (X1 == X2).all() and (y1 == y2).all()


def test_a_quick_run_writes_every_fold_of_every_model_and_set(tmp_path):
    path = tmp_path / "quality.json"
    quality.main(["--quick", "--models", "mlp", "dnn", "--json", str(path)])
    written = json.loads(path.read_text())
    assert written["folds"] == 2
    assert list(written["sets"]) == quality.QUICK_SETS
    for name, described in written["sets"].items():
        assert tuple(described.values()) == EXPECTED[name]
    assert list(written["models"]) == ["mlp", "dnn"]
    assert list(written["results"]) == quality.QUICK_SETS
    for row in written["results"].values():
        assert list(row) == ["mlp", "dnn"]
        for cell in row.values():
            assert len(cell["accuracy"]) == len(cell["fold_fit_seconds"]) == 2
            assert all(0.0 <= a <= 1.0 for a in cell["accuracy"])
            assert cell["mean_accuracy"] == pytest.approx(sum(cell["accuracy"]) / 2)
    assert written["summary"]["dnn"]["worst_vs_mlp"]["set"] in quality.QUICK_SETS


def test_summary_gives_the_worst_set_against_mlp_and_time_against_realmlp():
    def cell(accuracy, seconds):
        return {"mean_accuracy": accuracy, "fit_seconds": seconds}

    results = {
        "a": {"mlp": cell(0.9, 1.0), "dnn": cell(0.8, 2.0), "realmlp": cell(1.0, 20.0)},
        "b": {"mlp": cell(0.5, 1.0), "dnn": cell(0.7, 3.0), "realmlp": cell(1.0, 10.0)},
    }
    entry = quality.summary(results, ["mlp", "dnn", "realmlp"])["dnn"]
    assert entry["mean_accuracy"] == pytest.approx(0.75)
    assert entry["worst_vs_mlp"]["set"] == "a"
    assert entry["worst_vs_mlp"]["difference"] == pytest.approx(-0.1)
    assert entry["slowest_vs_realmlp"] == {"set": "b", "time_ratio": 0.3}
    assert entry["fastest"] == {"set": "a", "seconds": 2.0}


def test_a_dnn_variant_gets_its_hidden_layer_sizes_as_a_tuple():
    name, params = quality._dnn_variant('deep={"hidden_layer_sizes": [8, 8]}')
    assert (name, params) == ("deep", {"hidden_layer_sizes": (8, 8)})


def test_realmlp_is_skipped_with_the_reason_where_pytabkit_does_not_import(
    monkeypatch,
):
    # None in sys.modules makes ``import pytabkit`` raise ImportError.
    monkeypatch.setitem(sys.modules, "pytabkit", None)
    skipped = quality._skipped(["mlp", "realmlp"])
    assert list(skipped) == ["realmlp"]
    assert "pytabkit" in skipped["realmlp"]


# The regression task's sets, written out apart from the benchmark: rows and
# features.
EXPECTED_REGRESSION = {
    "diabetes": (442, 10),
    "friedman1": (2000, 10),
    "friedman2": (2000, 4),
    "friedman3": (2000, 4),
    "linear_100f": (1000, 100),
    "sparse_uncorrelated": (1000, 10),
    "sine_surface": (1000, 2),
    "plane": (1000, 2),
    "multi_gaussian": (1000, 2),
}


def test_the_regression_task_has_the_data_sets_listed_here():
    regression = quality.TASKS["regression"]
    assert list(regression.sets) == list(EXPECTED_REGRESSION)
    described = quality.describe(list(EXPECTED_REGRESSION), regression)
    for name, (rows, features) in EXPECTED_REGRESSION.items():
        assert described[name] == {"rows": rows, "features": features}
        X, y = regression.sets[name]()
        assert y.dtype.kind == "f" and len(np.unique(y)) > 100


def test_a_quick_regression_run_writes_the_r2_of_every_fold(tmp_path):
    path = tmp_path / "quality.json"
    quality.main(
        ["--task", "regression", "--quick", "--models", "mlp", "dnn",
         "--json", str(path)]
    )  # fmt: skip
    written = json.loads(path.read_text())
    assert written["task"] == "regression"
    assert list(written["results"]) == quality.TASKS["regression"].quick_sets
    for row in written["results"].values():
        assert list(row) == ["mlp", "dnn"]
        for cell in row.values():
            assert len(cell["r2"]) == len(cell["fold_fit_seconds"]) == 2
            assert all(r <= 1.0 for r in cell["r2"])
            assert cell["mean_r2"] == pytest.approx(sum(cell["r2"]) / 2)
    assert "mean_r2" in written["summary"]["dnn"]
    assert "regressor" in written["models"]["dnn"].lower()


def test_a_set_of_the_other_task_is_refused():
    with pytest.raises(SystemExit):
        quality.main(["--task", "regression", "--sets", "iris"])
