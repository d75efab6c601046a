"""Behaviour tests for skdnn.io: safe model files (issue 8) of classifiers and
regressors, one behaviour each.

Accelerators are simulated as in test_device.py: a model "fitted on CUDA" is a
CPU model whose device_ says 'cuda', loaded where CUDA is patched away.
"""

import contextlib
import io
import json
import pickle
import struct
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest
import safetensors.numpy
import safetensors.torch
import scipy.sparse
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.datasets import (
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skdnn._device as device_module
from skdnn import DNNClassifier, DNNRegressor
from skdnn.io import dump, load
from skdnn.io._safe import _from_json, _serialize, _to_json

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def make_data(n_classes=2):
    return make_classification(
        n_samples=60,
        n_features=4,
        n_informative=3,
        n_redundant=0,
        n_classes=n_classes,
        random_state=0,
    )


def make_regression_data(n_outputs=1):
    X, y = make_regression(
        n_samples=60, n_features=4, n_targets=n_outputs, noise=1.0, random_state=0
    )
    # Of order 1, as a network learns best; and >= 0, for the Poisson loss.
    return X, np.abs(y) / 100


ESTIMATORS = [DNNClassifier, DNNRegressor]

MODELS = [
    "binary",
    "multiclass",
    "multilabel",
    "string labels",
    "float32",
    "pandas",
    "sparse",
    "lbfgs",
    "sgd",
    "dropout",
    "early stopping",
    "partial_fit",
    "no hidden layer",
    "input scaling",
    "regressor",
    "regressor poisson",
    "regressor multi-output",
    "regressor float32",
    "regressor lbfgs",
    "regressor early stopping",
    "regressor input scaling",
    "regressor partial_fit",
    "regressor dropout",
    "regressor no hidden layer",
    "regressor target scaling",
    "regressor poisson target scaling",
    "regressor target scaling multi-output",
]


def fit_model(model):
    """A small model of the given kind, fitted, and data to predict on."""
    if model.startswith("regressor"):
        return fit_regressor(model.removeprefix("regressor").strip())
    X, y = make_data(n_classes=3 if model == "multiclass" else 2)
    kwargs = {"hidden_layer_sizes": (5, 3), "max_iter": 5, "random_state": 0}
    if model == "multilabel":
        X, y = make_multilabel_classification(
            n_samples=60, n_features=4, n_classes=3, random_state=0
        )
    elif model == "string labels":
        y = np.array(["no", "yes"])[y]
    elif model == "float32":
        X = X.astype(np.float32)
    elif model == "pandas":
        X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    elif model == "sparse":
        X = scipy.sparse.csr_matrix(np.where(np.abs(X) > 1, X, 0.0))
    elif model in ("lbfgs", "sgd"):
        kwargs["solver"] = model
    elif model == "dropout":
        kwargs["dropout"] = (0.3, 0.1)
    elif model == "early stopping":
        kwargs["early_stopping"] = True
    elif model == "no hidden layer":
        kwargs["hidden_layer_sizes"] = ()
    elif model == "input scaling":
        kwargs["input_scaling"] = 2.0
    if model == "partial_fit":
        clf = DNNClassifier(**kwargs).partial_fit(X, y, classes=[0, 1])
    else:
        clf = DNNClassifier(**kwargs).fit(X, y)
    return clf, X


def fit_regressor(model):
    """As fit_model, a regressor: '' is the default one."""
    X, y = make_regression_data(n_outputs=2 if "multi-output" in model else 1)
    kwargs = {"hidden_layer_sizes": (5, 3), "max_iter": 5, "random_state": 0}
    if model == "poisson":
        kwargs["loss"] = "poisson"
    elif model == "float32":
        X = X.astype(np.float32)
    elif model == "lbfgs":
        kwargs["solver"] = "lbfgs"
    elif model == "early stopping":
        kwargs["early_stopping"] = True
    elif model == "input scaling":
        kwargs["input_scaling"] = 2.0
    elif model == "dropout":
        kwargs["dropout"] = (0.3, 0.1)
    elif model == "no hidden layer":
        kwargs["hidden_layer_sizes"] = ()
    if "target scaling" in model:
        kwargs["target_scaling"] = True
        kwargs["loss"] = "poisson" if "poisson" in model else "squared_error"
    if model == "partial_fit":
        return DNNRegressor(**kwargs).partial_fit(X, y), X
    return DNNRegressor(**kwargs).fit(X, y), X


def dumped(clf):
    file = io.BytesIO()
    dump(clf, file)
    return file.getvalue()


def loaded(data, **kwargs):
    return load(io.BytesIO(data), **kwargs)


def header(data):
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size])


def metadata(data):
    return json.loads(header(data)["__metadata__"]["skdnn"])


def rewritten(data, edit_info=None, edit_arrays=None):
    """``data`` with its metadata or tensors edited, and a matching checksum.

    This is a file a buggy or malicious writer could make: the checksum
    cannot catch it, the checks of its contents must.
    """
    info = metadata(data)
    arrays = dict(safetensors.numpy.load(data))
    if edit_info is not None:
        edit_info(info)
    if edit_arrays is not None:
        edit_arrays(arrays)
    return _serialize(info, arrays)


def fitted(estimator_class=DNNClassifier, **kwargs):
    X, y = make_data() if estimator_class is DNNClassifier else make_regression_data()
    params = {"hidden_layer_sizes": (5, 3), "max_iter": 5, "random_state": 0}
    return estimator_class(**{**params, **kwargs}).fit(X, y), X, y


# ------------------------------------------------------------- round trips


@pytest.mark.parametrize("model", MODELS)
def test_predictions_round_trip_bit_identically(model):
    estimator, X = fit_model(model)
    restored = loaded(dumped(estimator))
    assert type(restored) is type(estimator)
    methods = ("predict", "predict_proba", "predict_log_proba")
    for method in [m for m in methods if hasattr(estimator, m)]:
        expected, got = getattr(estimator, method)(X), getattr(restored, method)(X)
        assert got.dtype == expected.dtype
        assert got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("model", MODELS)
def test_weights_round_trip_with_their_dtype(model):
    clf, _ = fit_model(model)
    restored = loaded(dumped(clf))
    for got, expected in zip(
        restored.coefs_ + restored.intercepts_,
        clf.coefs_ + clf.intercepts_,
        strict=True,
    ):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("model", MODELS)
def test_fitted_attributes_round_trip(model):
    clf, _ = fit_model(model)
    restored = loaded(dumped(clf))
    names = {k for k in vars(clf) if k.endswith("_")} - {"module_"}
    assert names == {k for k in vars(restored) if k.endswith("_")} - {"module_"}
    for name in names:
        expected, got = getattr(clf, name), getattr(restored, name)
        if isinstance(expected, np.ndarray):
            assert got.dtype == expected.dtype, name
            np.testing.assert_array_equal(got, expected)
        else:
            assert got == expected, name
    assert restored.module_.activation == clf.module_.activation
    assert restored.module_.dropout == clf.module_.dropout
    assert restored.module_.input_scaling == clf.module_.input_scaling


@pytest.mark.parametrize("loss", ["missing", None])
def test_model_interrupted_in_its_first_epoch_round_trips(loss):
    clf, X, _ = fitted()
    # What a KeyboardInterrupt during the first epoch leaves.
    clf.n_iter_, clf.loss_curve_ = 0, []
    if loss == "missing":
        del clf.loss_
    else:
        clf.loss_ = loss
    restored = loaded(dumped(clf))
    assert getattr(restored, "loss_", "missing") == loss
    assert restored.loss_curve_ == []
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("model", MODELS)
def test_dumping_a_loaded_model_writes_the_same_bytes(model):
    clf, _ = fit_model(model)
    data = dumped(clf)
    assert dumped(loaded(data)) == data


@pytest.mark.parametrize(
    "classes",
    [
        np.array([3, 7], dtype=np.int32),
        np.array([0, 200], dtype=np.uint8),
        np.array([-1, 1]),
        np.array([0.0, 1.0]),
        np.array([False, True]),
        np.array(["café", "日本"]),
        np.array(["cat", "dog"], dtype=object),
    ],
    ids=["int32", "uint8", "int64", "float", "bool", "str", "object str"],
)
def test_class_labels_round_trip_with_their_dtype(classes):
    X, y = make_data()
    clf = DNNClassifier((4,), max_iter=3, random_state=0).fit(X, classes[y])
    restored = loaded(dumped(clf))
    assert restored.classes_.dtype == clf.classes_.dtype
    assert restored.classes_.tolist() == clf.classes_.tolist()
    assert [type(c) for c in restored.classes_] == [type(c) for c in clf.classes_]
    predictions = restored.predict(X)
    assert predictions.dtype == clf.predict(X).dtype
    np.testing.assert_array_equal(predictions, clf.predict(X))


def assert_same_param(got, expected):
    assert type(got) is type(expected)
    if isinstance(expected, np.ndarray):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    elif isinstance(expected, np.random.RandomState):
        for a, b in zip(got.get_state(), expected.get_state(), strict=True):
            np.testing.assert_array_equal(a, b)
    elif isinstance(expected, dict):
        assert list(got) == list(expected)
        for key in expected:
            assert type(next(k for k in got if k == key)) is type(key)
            assert_same_param(got[key], expected[key])
    else:
        assert got == expected


@pytest.mark.parametrize(
    "params",
    [
        {"hidden_layer_sizes": [5, 3]},
        {"hidden_layer_sizes": (5, 3)},
        {"hidden_layer_sizes": 4},
        {"hidden_layer_sizes": np.array([5, 3])},
        {"dropout": (0.25, 0.5)},
        {"class_weight": {0: 1.0, 1: 2.5}},
        {"class_weight": "balanced"},
        {"n_iter_no_change": np.inf},
        {"device": torch.device("cpu")},
        {"random_state": np.random.RandomState(3)},
        {"random_state": None},
        {"n_threads": None},
        {"batch_size": 16, "verbose": 0, "tol": 0.0},
    ],
    ids=lambda params: "-".join(params),
)
def test_parameters_round_trip_with_their_types(params):
    clf, _, _ = fitted(**params)
    restored = loaded(dumped(clf))
    expected = clf.get_params()
    got = restored.get_params()
    assert list(got) == list(expected)
    for name in expected:
        assert_same_param(got[name], expected[name])


@pytest.mark.parametrize(
    "params",
    [
        {"loss": "poisson"},
        {"loss": "squared_error", "hidden_layer_sizes": [5, 3]},
        {"n_iter_no_change": np.inf, "random_state": np.random.RandomState(3)},
        {"input_scaling": 0.5, "dropout": (0.25, 0.0)},
        {"early_stopping": True, "validation_fraction": 0.2},
    ],
    ids=lambda params: "-".join(params),
)
def test_regressor_parameters_round_trip_with_their_types(params):
    reg, _, _ = fitted(DNNRegressor, **params)
    restored = loaded(dumped(reg))
    expected = reg.get_params()
    got = restored.get_params()
    assert list(got) == list(expected)
    for name in expected:
        assert_same_param(got[name], expected[name])


def test_pandas_feature_names_are_checked_after_loading():
    X, y = make_data()
    X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = DNNClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    restored = loaded(dumped(clf))
    assert restored.feature_names_in_.dtype == object
    assert restored.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="feature names"):
        restored.predict(X[["d", "c", "b", "a"]])


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_loaded_model_scores_and_clones_like_the_original(estimator_class):
    clf, X, y = fitted(estimator_class)
    restored = loaded(dumped(clf))
    assert restored.score(X, y) == clf.score(X, y)
    assert repr(clone(restored)) == repr(clone(clf))
    assert not hasattr(clone(restored), "module_")


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_warm_start_after_loading_continues_like_the_original(solver, estimator_class):
    clf, X, y = fitted(estimator_class, solver=solver)
    restored = loaded(dumped(clf))
    for model in (clf, restored):
        model.set_params(warm_start=True, max_iter=4).fit(X, y)
    assert restored.loss_curve_ == clf.loss_curve_
    for got, expected in zip(restored.coefs_, clf.coefs_, strict=True):
        np.testing.assert_array_equal(got, expected)


def test_partial_fit_after_loading_keeps_the_classes_and_counts():
    X, y = make_data()
    clf = DNNClassifier((4,), random_state=0).partial_fit(X, y, classes=[0, 1, 2])
    restored = loaded(dumped(clf))
    restored.partial_fit(X, y)
    assert restored.t_ == 2 * len(X)
    assert restored.classes_.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="not in classes"):
        restored.partial_fit(X, np.where(y == 0, 5, y))


def test_partial_fit_after_loading_a_regressor_keeps_its_outputs_and_counts():
    X, y = make_regression_data(n_outputs=2)
    reg = DNNRegressor(hidden_layer_sizes=(4,), random_state=0).partial_fit(X, y)
    restored = loaded(dumped(reg))
    restored.partial_fit(X, y)
    assert restored.t_ == 2 * len(X)
    assert restored.predict(X).shape == (len(X), 2)
    with pytest.raises(ValueError, match="1 output"):
        restored.partial_fit(X, y[:, 0])


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_loaded_model_predicts_in_eval_mode_on_the_cpu(estimator_class):
    clf, _, _ = fitted(estimator_class, dropout=0.5)
    restored = loaded(dumped(clf))
    assert not restored.module_.training
    assert restored.device_ == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in restored.module_.parameters())


# ------------------------------------------------------------ paths, files


def test_dump_and_load_with_a_str_path(tmp_path):
    clf, X, _ = fitted()
    path = str(tmp_path / "model.safetensors")
    dump(clf, path)
    np.testing.assert_array_equal(load(path).predict_proba(X), clf.predict_proba(X))


def test_dump_and_load_with_a_pathlib_path(tmp_path):
    clf, X, _ = fitted()
    path = tmp_path / "model.safetensors"
    dump(clf, path)
    np.testing.assert_array_equal(load(path).predict_proba(X), clf.predict_proba(X))


def test_dump_and_load_with_open_binary_files(tmp_path):
    clf, X, _ = fitted()
    path = tmp_path / "model.safetensors"
    with open(path, "wb") as f:
        dump(clf, f)
    with open(path, "rb") as f:
        restored = load(f)
    np.testing.assert_array_equal(restored.predict_proba(X), clf.predict_proba(X))


def test_text_mode_files_are_refused(tmp_path):
    clf, _, _ = fitted()
    path = tmp_path / "model.safetensors"
    with open(path, "w") as f, pytest.raises(TypeError, match="binary mode"):
        dump(clf, f)
    dump(clf, path)
    with open(path, encoding="latin-1") as f, pytest.raises(TypeError, match="'rb'"):
        load(f)


def test_file_is_plain_safetensors_with_json_metadata(tmp_path):
    clf, _, _ = fitted()
    path = tmp_path / "model.safetensors"
    dump(clf, path)
    tensors = safetensors.torch.load_file(path)
    assert set(tensors) == set(clf.module_.state_dict())
    module = clone(clf).set_params(random_state=1).fit(*make_data()).module_
    assert not torch.equal(module.weights[0], clf.module_.weights[0])
    module.load_state_dict(tensors)
    for got, expected in zip(module.weights, clf.module_.weights, strict=True):
        assert torch.equal(got, expected)

    def refuse(constant):
        raise AssertionError(f"{constant} is not standard JSON")

    info = json.loads(
        header(path.read_bytes())["__metadata__"]["skdnn"], parse_constant=refuse
    )
    assert info["format"] == "skdnn-model"
    assert info["format_version"] == 1
    assert info["estimator"] == "skdnn.DNNClassifier"
    assert info["params"]["max_iter"] == 5


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_file_without_network_input_scaling_loads_as_older_files_do(estimator_class):
    # skdnn.io's first files have no network.input_scaling: they load as 0.
    estimator, X, _ = fitted(estimator_class, input_scaling=0.0)
    data = rewritten(dumped(estimator), drop_field("network", "input_scaling"))
    restored = loaded(data)
    assert restored.module_.input_scaling == 0.0
    np.testing.assert_array_equal(restored.predict(X), estimator.predict(X))


def test_regressor_file_names_its_kind_and_has_no_label_section():
    reg, _, _ = fitted(DNNRegressor, loss="poisson")
    info = metadata(dumped(reg))
    assert info["format"] == "skdnn-model"
    assert info["format_version"] == 1
    assert info["estimator"] == "skdnn.DNNRegressor"
    assert "label_binarizer" not in info
    assert info["params"]["loss"] == "poisson"
    assert info["attributes"]["out_activation_"] == "exp"


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_dump_is_deterministic(estimator_class):
    clf, _, _ = fitted(estimator_class)
    assert dumped(clf) == dumped(clf)


# ------------------------------------------------------ what dump refuses


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_dump_refuses_an_unfitted_estimator(estimator_class):
    with pytest.raises(NotFittedError):
        dump(estimator_class(), io.BytesIO())


class SubClassifier(DNNClassifier):
    pass


class SubRegressor(DNNRegressor):
    pass


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression().fit(*make_data()),
        make_pipeline(StandardScaler(), DNNClassifier((4,), max_iter=2)),
        SubClassifier((4,), max_iter=2),
        SubRegressor(hidden_layer_sizes=(4,), max_iter=2),
    ],
    ids=["LogisticRegression", "Pipeline", "subclass", "regressor subclass"],
)
def test_dump_refuses_anything_but_a_dnn_classifier_or_regressor(estimator):
    file = io.BytesIO()
    match = r"saves a fitted skdnn\.DNNClassifier or skdnn\.DNNRegressor; got"
    with pytest.raises(TypeError, match=match):
        dump(estimator, file)
    assert file.getvalue() == b""


def test_dump_refuses_invalid_parameters_without_writing(tmp_path):
    clf, _, _ = fitted()
    clf.set_params(alpha=-1.0)
    path = tmp_path / "model.safetensors"
    with pytest.raises(ValueError, match="alpha"):
        dump(clf, path)
    assert not path.exists()


def test_dump_refuses_a_parameter_with_no_safe_representation():
    clf, _, _ = fitted()
    clf.set_params(hidden_layer_sizes=range(5, 7))
    with pytest.raises(TypeError, match="hidden_layer_sizes.*range"):
        dump(clf, io.BytesIO())


@pytest.mark.parametrize(
    "fitted_loss, loss", [("squared_error", "poisson"), ("poisson", "squared_error")]
)
def test_dump_refuses_a_regressor_whose_loss_changed_after_fit(fitted_loss, loss):
    reg, _, _ = fitted(DNNRegressor, loss=fitted_loss)
    reg.set_params(loss=loss)
    file = io.BytesIO()
    with pytest.raises(ValueError, match=rf"output of another loss, and loss='{loss}'"):
        dump(reg, file)
    assert file.getvalue() == b""


def test_dump_refuses_str_labels_wider_than_load_reads():
    X, y = make_data()
    labels = np.array(["n" * 5000, "yes"])
    clf = DNNClassifier((4,), max_iter=2, random_state=0).fit(X, labels[y])
    assert clf.classes_.dtype == np.dtype("<U5000")
    with pytest.raises(ValueError, match="classes_: .*5000 characters.* up to 4096"):
        dump(clf, io.BytesIO())


def test_dump_refuses_metadata_larger_than_load_reads():
    clf, _, _ = fitted()
    # What a million partial_fit calls leave: 17 MB of loss curve.
    clf.loss_curve_ = [0.123456789012345] * 1_000_000
    with pytest.raises(ValueError, match="more than the 16777216 that skdnn.io.load"):
        dump(clf, io.BytesIO())


# ------------------------------------------------- what load refuses, safely


def test_load_never_unpickles():
    class Payload:
        def __reduce__(self):
            return print, ("payload ran",)

    data = pickle.dumps(Payload())
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        pickle.loads(data)  # the payload is live...
        with pytest.raises(ValueError, match="not a valid skdnn model file"):
            load(io.BytesIO(data))  # ...but load does not run it
    assert stdout.getvalue() == "payload ran\n"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!",
        b"\x02\x00\x00\x00\x00\x00\x00\x00[]",
        b'{"format": "skdnn-model"}',
        bytes(range(256)) * 4,
    ],
    ids=["empty", "short", "header not JSON", "header not an object", "JSON", "random"],
)
def test_load_refuses_files_that_are_not_safetensors(data):
    with pytest.raises(ValueError, match="not a valid skdnn model file"):
        loaded(data)


def test_load_refuses_a_pickled_model():
    clf, _, _ = fitted()
    with pytest.raises(ValueError, match="not a valid skdnn model file"):
        loaded(pickle.dumps(clf))


def test_load_refuses_a_safetensors_file_not_written_by_dump():
    data = safetensors.numpy.save({"weights.0": np.zeros((4, 2))})
    with pytest.raises(ValueError, match="no 'skdnn' metadata"):
        loaded(data)


@pytest.mark.parametrize(
    "keep", [0, 7, 8, 64, "half", "all but one"], ids=lambda keep: f"keep-{keep}"
)
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_load_refuses_a_truncated_file(keep, estimator_class):
    clf, _, _ = fitted(estimator_class)
    data = dumped(clf)
    keep = {"half": len(data) // 2, "all but one": len(data) - 1}.get(keep, keep)
    with pytest.raises(ValueError, match="truncated"):
        loaded(data[:keep])


@pytest.mark.parametrize(
    "old, new",
    [
        (b'\\"relu\\"', b'\\"tanh\\"'),
        (b'\\"max_iter\\": 5', b'\\"max_iter\\": 6'),
        (b'\\"n_iter_\\": 5', b'\\"n_iter_\\": 4'),
    ],
    ids=["activation", "parameter", "attribute"],
)
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_load_refuses_a_tampered_header(old, new, estimator_class):
    clf, _, _ = fitted(estimator_class)
    data = dumped(clf)
    assert old in data
    with pytest.raises(ValueError, match="SHA-256 checksum does not match"):
        loaded(data.replace(old, new, 1))


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_load_refuses_a_tampered_checksum(estimator_class):
    clf, _, _ = fitted(estimator_class)
    data = dumped(clf)
    digest = metadata(data)["sha256"].encode()
    flipped = (b"1" if digest[:1] == b"0" else b"0") + digest[1:]
    with pytest.raises(ValueError, match="SHA-256 checksum does not match"):
        loaded(data.replace(digest, flipped))


@pytest.mark.parametrize("position", [-1, -8, "first tensor byte"])
@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_load_refuses_tampered_tensor_bytes(position, estimator_class):
    clf, _, _ = fitted(estimator_class)
    data = bytearray(dumped(clf))
    if position == "first tensor byte":
        position = 8 + int.from_bytes(data[:8], "little")
    data[position] ^= 0x01
    with pytest.raises(ValueError, match="SHA-256 checksum does not match"):
        loaded(bytes(data))


def test_load_refuses_swapped_tensors_of_the_same_shape():
    clf, _, _ = fitted(hidden_layer_sizes=(4, 4))
    data = dumped(clf)
    entries = header(data)
    entries["weights.0"]["data_offsets"], entries["weights.1"]["data_offsets"] = (
        entries["weights.1"]["data_offsets"],
        entries["weights.0"]["data_offsets"],
    )
    size = int.from_bytes(data[:8], "little")
    text = json.dumps(entries).encode()
    swapped = len(text).to_bytes(8, "little") + text + data[8 + size :]
    assert np.array_equal(
        safetensors.numpy.load(swapped)["weights.0"], clf.coefs_[1]
    )  # a valid safetensors file...
    with pytest.raises(ValueError, match="SHA-256 checksum does not match"):
        loaded(swapped)  # ...with the wrong network in it


def test_load_refuses_a_file_without_checksum():
    clf, _, _ = fitted()
    data = dumped(clf)
    info = metadata(data)
    del info["sha256"]
    unsigned = safetensors.numpy.save(
        safetensors.numpy.load(data), metadata={"skdnn": json.dumps(info)}
    )
    with pytest.raises(ValueError, match="checksum"):
        loaded(unsigned)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
def test_load_refuses_an_unknown_format_version(estimator_class):
    clf, _, _ = fitted(estimator_class)
    data = rewritten(dumped(clf), lambda info: info.update(format_version=2))
    with pytest.raises(ValueError, match="format version 2.*reads version 1 only"):
        loaded(data)


def test_load_refuses_a_file_naming_another_class():
    clf, _, _ = fitted()
    data = rewritten(dumped(clf), lambda info: info.update(estimator="sklearn.svm.SVC"))
    match = "'sklearn.svm.SVC'.*'skdnn.DNNClassifier' and 'skdnn.DNNRegressor' only"
    with pytest.raises(ValueError, match=match):
        loaded(data)


@pytest.mark.parametrize("estimator_class", ESTIMATORS)
@pytest.mark.parametrize("expected", [None, "same"])
def test_load_returns_the_estimator_the_file_holds(estimator_class, expected):
    estimator, X, _ = fitted(estimator_class)
    expected = estimator_class if expected == "same" else None
    restored = loaded(dumped(estimator), expected=expected)
    assert type(restored) is estimator_class
    np.testing.assert_array_equal(restored.predict(X), estimator.predict(X))


@pytest.mark.parametrize(
    "saved, expected", [(DNNClassifier, DNNRegressor), (DNNRegressor, DNNClassifier)]
)
def test_load_refuses_a_file_of_another_estimator_than_expected(saved, expected):
    estimator, _, _ = fitted(saved)
    match = (
        rf"holds a skdnn\.{saved.__name__}, but load was called with "
        rf"expected={expected.__name__}: it loads a skdnn\.{expected.__name__} only"
    )
    with pytest.raises(ValueError, match=match):
        loaded(dumped(estimator), expected=expected)


@pytest.mark.parametrize(
    "expected",
    ["DNNClassifier", DNNClassifier(), SubClassifier, LogisticRegression],
    ids=["name", "instance", "subclass", "other class"],
)
def test_load_refuses_an_expected_that_is_neither_estimator_class(expected):
    clf, _, _ = fitted()
    with pytest.raises(ValueError, match="'expected' parameter of load must be"):
        loaded(dumped(clf), expected=expected)


def set_field(*path, value):
    def edit(info):
        for key in path[:-1]:
            info = info[key]
        info[path[-1]] = value

    return edit


def drop_field(*path):
    def edit(info):
        for key in path[:-1]:
            info = info[key]
        del info[path[-1]]

    return edit


def edits(*edits):
    def edit(info):
        for one in edits:
            one(info)

    return edit


def random_state_json(**changes):
    state = _to_json(np.random.RandomState(0), "random_state")
    state["__RandomState__"].update(changes)
    return state


@pytest.mark.parametrize(
    "edit, match",
    [
        (set_field("format", value="other"), "format"),
        (set_field("format_version", value=True), "format version True"),
        (set_field("estimator", value="skdnn.DNNRegressor"), "'label_binarizer'"),
        (set_field("params", "alpha", value=-1.0), "alpha"),
        (set_field("params", "not_a_param", value=1), "not_a_param"),
        (set_field("params", "random_state", value={"__pickle__": "x"}), "__pickle__"),
        (
            set_field("params", "random_state", value={"__RandomState__": {}}),
            "RandomState",
        ),
        (set_field("params", "n_iter_no_change", value={"__float__": "1"}), "float"),
        (
            set_field("params", "random_state", value=random_state_json(pos=625)),
            r"position in \[0, 624\].*pos=625",
        ),
        (
            set_field("params", "random_state", value=random_state_json(pos=-1)),
            "pos=-1",
        ),
        # Words beyond uint32, which older numpy wraps around without a word.
        (
            set_field(
                "params",
                "random_state",
                value=random_state_json(keys=[2**32] + [1] * 623),
            ),
            r"keys in \[0, 2\*\*32\)",
        ),
        (
            set_field(
                "params", "random_state", value=random_state_json(keys=[-1] + [1] * 623)
            ),
            r"keys in \[0, 2\*\*32\)",
        ),
        (
            set_field("params", "random_state", value=random_state_json(has_gauss=2)),
            "has_gauss=2",
        ),
        (
            set_field(
                "params",
                "random_state",
                value=random_state_json(cached_gaussian=-(2**63) - 1),
            ),
            "cached_gaussian=-9223372036854775809",
        ),
        (set_field("network", "input_scaling", value=2**53 + 1), "input_scaling"),
        (
            set_field("params", "random_state", value=random_state_json(extra=1)),
            r"unknown \['extra'\]",
        ),
        (
            set_field(
                "params", "class_weight", value={"__dict__": [[0, 1.0], [0, 2.0]]}
            ),
            "repeats a key",
        ),
        (
            set_field(
                "params", "class_weight", value={"__dict__": [[1, 1.0], [True, 2.0]]}
            ),
            "repeats a key",
        ),
        (
            set_field("params", "device", value="cpu\n"),
            r"'device' parameter .* Got 'cpu\\n'",
        ),
        (set_field("attributes", "n_features_in_", value=7), "n_features_in_"),
        (set_field("attributes", "out_activation_", value="softmax"), "out_act"),
        (set_field("attributes", "n_iter_", value="five"), "n_iter_"),
        (set_field("attributes", "loss_curve_", value=[0.5, None]), "loss_curve_"),
        (set_field("attributes", "unknown_", value=1), "unknown_"),
        (drop_field("attributes", "t_"), "t_"),
        (
            set_field("label_binarizer", "classes_", "values", value=[0, 1, 2]),
            "binary target has 2 classes",
        ),
        (set_field("label_binarizer", "classes_", "values", value=[1, 0]), "sorted"),
        (
            set_field("label_binarizer", "classes_", "values", value=[0, 2**70]),
            "do not fit",
        ),
        (
            set_field("label_binarizer", "classes_", "values", value=["a", "b"]),
            "cannot hold 'a'",
        ),
        (
            set_field("label_binarizer", "classes_", "dtype", value="<M8[ns]"),
            "dtype",
        ),
        (
            set_field("label_binarizer", "classes_", "dtype", value="=i8"),
            r"'=i8' is not as numpy writes it \('<i8'\)",
        ),
        (
            set_field("label_binarizer", "classes_", "dtype", value="<U999999999"),
            "wider than skdnn.io's limit of 4096",
        ),
        (
            set_field("label_binarizer", "classes_", "dtype", value="<U4097"),
            "4097 characters; skdnn.io takes str arrays up to 4096",
        ),
        (
            set_field(
                "label_binarizer",
                "classes_",
                value={"dtype": "<U4096", "values": ["a"] * 5000},
            ),
            "5000 values of dtype '<U4096' take 81920000 bytes",
        ),
        (drop_field("label_binarizer"), r"lacks \['label_binarizer'\]"),
        (set_field("label_binarizer", "y_type_", value="continuous"), "y_type_"),
        (set_field("network", "activation", value="gelu"), "activation"),
        (set_field("network", "device", value="tpu"), "'tpu'"),
        (set_field("network", "device", value="auto"), "'auto' does not name"),
        (set_field("network", "device", value="cpu\n"), "does not name"),
        (
            set_field("network", "device", value="cuda:99999999999999999999"),
            "does not name a torch device",
        ),
        (set_field("network", "input_scaling", value=10**400), "input_scaling"),
        (
            edits(
                set_field("network", "layer_units", value=[2**40, 5, 3, 1]),
                set_field("attributes", "n_features_in_", value=2**40),
            ),
            r"'weights.0' should be float64 of shape \(1099511627776, 5\)",
        ),
        (set_field("network", "dtype", value="float16"), "dtype"),
        (set_field("network", "dropout", value=[1.5, 0.0]), "dropout"),
        (set_field("network", "layer_units", value=[4, 5, 3, 2]), "layer_units"),
        (drop_field("network"), "network"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_load_refuses_invalid_or_inconsistent_metadata(edit, match):
    clf, _, _ = fitted()
    data = rewritten(dumped(clf), edit)
    with pytest.raises(ValueError, match=match):
        loaded(data)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            set_field("params", "loss", value="poisson"),
            r"out_activation_='identity' .*loss='poisson'\): it should be 'exp'",
        ),
        (
            set_field("attributes", "out_activation_", value="exp"),
            "should be 'identity'",
        ),
        (set_field("params", "loss", value="absolute_error"), "'loss' parameter"),
        (set_field("attributes", "n_outputs_", value=2), "n_outputs_=2"),
        (
            set_field("network", "layer_units", value=[4, 5, 3, 2]),
            "n_outputs_=1 does not fit .* should be 2",
        ),
        (
            set_field("label_binarizer", value={}),
            r"has unknown \['label_binarizer'\]",
        ),
        (
            set_field("estimator", value="skdnn.DNNClassifier"),
            r"lacks \['label_binarizer'\]",
        ),
        (set_field("params", "class_weight", value=None), "class_weight"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_load_refuses_invalid_or_inconsistent_regressor_metadata(edit, match):
    reg, _, _ = fitted(DNNRegressor)
    data = rewritten(dumped(reg), edit)
    with pytest.raises(ValueError, match=match):
        loaded(data)


@pytest.mark.parametrize(
    "labels",
    [
        {"dtype": "<U999999999", "values": ["no", "yes"]},
        {"dtype": "<U100000000", "values": ["no", "yes"]},
        {"dtype": "<U4096", "values": [str(i) for i in range(20_000)]},
    ],
    ids=["U999999999", "U100000000", "20000 U4096"],
)
def test_load_refuses_oversized_labels_before_allocating_them(labels):
    X, y = make_data()
    clf = DNNClassifier((4,), max_iter=2, random_state=0).fit(
        X, np.array(["no", "yes"])[y]
    )
    data = rewritten(
        dumped(clf), set_field("label_binarizer", "classes_", value=labels)
    )
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="not a valid skdnn model file: an array"):
            loaded(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The labels would take 800 MB, 8 GB and 330 MB.
    assert peak < 5 * 2**20


def test_load_refuses_a_header_larger_than_it_reads():
    size = 2**24 + 1
    data = struct.pack("<Q", size) + b"{" + b" " * (size - 2) + b"}"
    with pytest.raises(
        ValueError, match="16777217-byte header; skdnn.io reads headers"
    ):
        loaded(data)


def test_load_refuses_json_objects_with_repeated_keys():
    clf, _, _ = fitted()
    data = dumped(clf)
    size = int.from_bytes(data[:8], "little")
    text = b'{"__metadata__": {"skdnn": "{}"}, ' + data[9 : 8 + size]
    repeated = len(text).to_bytes(8, "little") + text + data[8 + size :]
    with pytest.raises(ValueError, match=r"repeats the key\(s\) \['__metadata__'\]"):
        loaded(repeated)


def test_load_refuses_a_tensor_of_the_wrong_shape():
    clf, _, _ = fitted()

    def widen(arrays):
        arrays["weights.1"] = np.zeros((5, 4))

    with pytest.raises(
        ValueError,
        match=r"tensor 'weights.1' should be float64 of shape \(5, 3\), but the "
        r"file has float64 of shape \(5, 4\)",
    ):
        loaded(rewritten(dumped(clf), edit_arrays=widen))


def test_load_refuses_a_tensor_of_the_wrong_dtype():
    clf, _, _ = fitted()

    def narrow(arrays):
        arrays["biases.0"] = arrays["biases.0"].astype(np.float32)

    with pytest.raises(
        ValueError, match=r"'biases.0' should be float64 .* has float32 of shape"
    ):
        loaded(rewritten(dumped(clf), edit_arrays=narrow))


def test_load_refuses_a_missing_tensor():
    clf, _, _ = fitted()
    data = rewritten(dumped(clf), edit_arrays=lambda arrays: arrays.pop("biases.2"))
    with pytest.raises(ValueError, match=r"lacks \['biases.2'\] and has extra \[\]"):
        loaded(data)


def test_load_refuses_an_extra_tensor():
    clf, _, _ = fitted()

    def add(arrays):
        arrays["weights.3"] = np.zeros((3, 1))

    with pytest.raises(ValueError, match=r"lacks \[\] and has extra \['weights.3'\]"):
        loaded(rewritten(dumped(clf), edit_arrays=add))


# ------------------------------------------------------------------ devices


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(device_module, "_cuda_available", lambda: False)
    monkeypatch.setattr(device_module, "_mps_available", lambda: False)


def test_model_saved_from_cuda_loads_on_cpu_with_warning(no_accelerator):
    clf, X, _ = fitted(device="cpu")
    proba = clf.predict_proba(X)
    clf.device_ = torch.device("cuda")  # as if fitted on a GPU server
    data = dumped(clf)
    assert metadata(data)["network"]["device"] == "cuda"

    with pytest.warns(UserWarning, match=r"(?s)(?=.*cuda)(?=.*CPU)") as record:
        restored = load(io.BytesIO(data))
    assert record[0].filename == __file__  # the line that called load

    assert restored.device_ == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in restored.module_.parameters())
    np.testing.assert_array_equal(restored.predict_proba(X), proba)


def test_tensors_in_the_file_carry_no_device():
    clf, _, _ = fitted()
    entries = {k: v for k, v in header(dumped(clf)).items() if k != "__metadata__"}
    assert entries
    assert all(set(v) == {"dtype", "shape", "data_offsets"} for v in entries.values())


def test_load_on_an_explicit_device_ignores_the_saved_one(no_accelerator):
    clf, X, _ = fitted(device="cpu")
    clf.device_ = torch.device("cuda")
    data = dumped(clf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        restored = loaded(data, device="cpu")
    assert restored.device_ == torch.device("cpu")


def test_load_on_an_unavailable_device_raises(no_accelerator):
    clf, _, _ = fitted()
    with pytest.raises(ValueError, match="CUDA is not available"):
        loaded(dumped(clf), device="cuda")


@pytest.mark.cuda
def test_model_fitted_on_a_real_gpu_loads_on_the_cpu():
    clf, X, _ = fitted(device="cuda")
    data = dumped(clf)
    on_gpu = loaded(data)
    assert on_gpu.device_.type == "cuda"
    np.testing.assert_array_equal(on_gpu.predict_proba(X), clf.predict_proba(X))
    on_cpu = loaded(data, device="cpu")
    for got, expected in zip(on_cpu.coefs_, clf.coefs_, strict=True):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_allclose(on_cpu.predict_proba(X), clf.predict_proba(X))


# ------------------------------------------------ the JSON encoding of values

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.integers() | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def same_value(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=300, deadline=None)
@given(values)
def test_parameter_values_round_trip_through_json(value):
    text = json.dumps(_to_json(value, "value"), allow_nan=False)
    assert same_value(_from_json(json.loads(text)), value)
