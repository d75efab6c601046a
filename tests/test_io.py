"""Behaviour tests for skdnn.io: safe model files (issue 8), one behaviour each.

Accelerators are simulated as in test_device.py: a model "fitted on CUDA" is a
CPU model whose device_ says 'cuda', loaded where CUDA is patched away.
"""

import contextlib
import io
import json
import pickle
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
from sklearn.datasets import make_classification, make_multilabel_classification
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import skdnn._device as device_module
from skdnn import DNNClassifier
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
]


def fit_model(model):
    """A small model of the given kind, fitted, and data to predict on."""
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
    if model == "partial_fit":
        clf = DNNClassifier(**kwargs).partial_fit(X, y, classes=[0, 1])
    else:
        clf = DNNClassifier(**kwargs).fit(X, y)
    return clf, X


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


def fitted(**kwargs):
    X, y = make_data()
    params = {"hidden_layer_sizes": (5, 3), "max_iter": 5, "random_state": 0}
    return DNNClassifier(**{**params, **kwargs}).fit(X, y), X, y


# ------------------------------------------------------------- round trips


@pytest.mark.parametrize("model", MODELS)
def test_predictions_round_trip_bit_identically(model):
    clf, X = fit_model(model)
    restored = loaded(dumped(clf))
    for method in ("predict", "predict_proba", "predict_log_proba"):
        expected, got = getattr(clf, method)(X), getattr(restored, method)(X)
        assert got.dtype == expected.dtype
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


def test_pandas_feature_names_are_checked_after_loading():
    X, y = make_data()
    X = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = DNNClassifier((4,), max_iter=3, random_state=0).fit(X, y)
    restored = loaded(dumped(clf))
    assert restored.feature_names_in_.dtype == object
    assert restored.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="feature names"):
        restored.predict(X[["d", "c", "b", "a"]])


def test_loaded_model_scores_and_clones_like_the_original():
    clf, X, y = fitted()
    restored = loaded(dumped(clf))
    assert restored.score(X, y) == clf.score(X, y)
    assert repr(clone(restored)) == repr(clone(clf))
    assert not hasattr(clone(restored), "module_")


@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_warm_start_after_loading_continues_like_the_original(solver):
    clf, X, y = fitted(solver=solver)
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


def test_loaded_model_predicts_in_eval_mode_on_the_cpu():
    clf, _, _ = fitted(dropout=0.5)
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


def test_dump_is_deterministic():
    clf, _, _ = fitted()
    assert dumped(clf) == dumped(clf)


# ------------------------------------------------------ what dump refuses


def test_dump_refuses_an_unfitted_estimator():
    with pytest.raises(NotFittedError):
        dump(DNNClassifier(), io.BytesIO())


class SubClassifier(DNNClassifier):
    pass


@pytest.mark.parametrize(
    "estimator",
    [
        LogisticRegression().fit(*make_data()),
        make_pipeline(StandardScaler(), DNNClassifier((4,), max_iter=2)),
        SubClassifier((4,), max_iter=2),
    ],
    ids=["LogisticRegression", "Pipeline", "subclass"],
)
def test_dump_refuses_anything_but_a_dnn_classifier(estimator):
    file = io.BytesIO()
    with pytest.raises(TypeError, match="skdnn.DNNClassifier"):
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
def test_load_refuses_a_truncated_file(keep):
    clf, _, _ = fitted()
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
def test_load_refuses_a_tampered_header(old, new):
    clf, _, _ = fitted()
    data = dumped(clf)
    assert old in data
    with pytest.raises(ValueError, match="SHA-256 checksum does not match"):
        loaded(data.replace(old, new, 1))


def test_load_refuses_a_tampered_checksum():
    clf, _, _ = fitted()
    data = dumped(clf)
    digest = metadata(data)["sha256"].encode()
    flipped = (b"1" if digest[:1] == b"0" else b"0") + digest[1:]
    with pytest.raises(ValueError, match="SHA-256 checksum does not match"):
        loaded(data.replace(digest, flipped))


@pytest.mark.parametrize("position", [-1, -8, "first tensor byte"])
def test_load_refuses_tampered_tensor_bytes(position):
    clf, _, _ = fitted()
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


def test_load_refuses_an_unknown_format_version():
    clf, _, _ = fitted()
    data = rewritten(dumped(clf), lambda info: info.update(format_version=2))
    with pytest.raises(ValueError, match="format version 2.*reads version 1 only"):
        loaded(data)


def test_load_refuses_a_file_naming_another_class():
    clf, _, _ = fitted()
    data = rewritten(dumped(clf), lambda info: info.update(estimator="sklearn.svm.SVC"))
    with pytest.raises(ValueError, match="'sklearn.svm.SVC'.*'skdnn.DNNClassifier'"):
        loaded(data)


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


@pytest.mark.parametrize(
    "edit, match",
    [
        (set_field("format", value="other"), "format"),
        (set_field("params", "alpha", value=-1.0), "alpha"),
        (set_field("params", "not_a_param", value=1), "not_a_param"),
        (set_field("params", "random_state", value={"__pickle__": "x"}), "__pickle__"),
        (
            set_field("params", "random_state", value={"__RandomState__": {}}),
            "RandomState",
        ),
        (set_field("params", "n_iter_no_change", value={"__float__": "1"}), "float"),
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
        (set_field("label_binarizer", "y_type_", value="continuous"), "y_type_"),
        (set_field("network", "activation", value="gelu"), "activation"),
        (set_field("network", "device", value="tpu"), "'tpu'"),
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
