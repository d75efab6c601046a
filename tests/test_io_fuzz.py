"""Fuzzing skdnn.io.load: valid files of a small classifier and a small
regressor, mutated at random, are refused with a ValueError or loaded as what
they hold, and loading them takes bounded memory.

Three kinds of mutation, each its own test:

- bytes flipped, inserted, deleted or cut off anywhere in the file, its 8-byte
  header size included: damage. load refuses the file, or the damage was
  harmless and the model is the original;
- the JSON metadata edited, and the checksum recomputed: what a malicious
  writer can make. load refuses the file or takes it exactly as written: the
  loaded model dumps that metadata and those tensors back;
- the safetensors tensor table (dtypes, shapes, offsets, names) edited, the
  checksum recomputed likewise.

Each load runs under tracemalloc, which also sees numpy's allocations. These
files load in about 0.1 MB; a size the file declares that load trusts before
checking it (a str dtype of millions of characters) takes tens of MB or more.
tracemalloc makes loading some 10 times slower, which sets the example counts.
"""

import copy
import functools
import io
import json
import re
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st
from sklearn.datasets import make_classification, make_regression

from skdnn import DNNClassifier, DNNRegressor
from skdnn.io import dump, load
from skdnn.io._safe import _digest, _read_tensors, _serialize

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

KINDS = ["classifier", "regressor"]


# Loading copies and parses a file a few times over: a long string in it
# takes memory, but in proportion. What a file declares must not: 4 MiB is
# 40 times what loading these files takes.
def memory_limit(data):
    return 4 * 2**20 + 32 * len(data)


# The examples of each test, from the Hypothesis profile (tests/conftest.py):
# a third of its count, 400 with "ci", with which this file runs in about
# 25 s on 2 cores; "thorough" searches ten times longer.
FUZZ = settings(
    max_examples=max(20, settings.default.max_examples // 3),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@functools.cache
def original(kind):
    """The bytes of a small fitted model's file, and data to predict on.

    The classifier has str labels, feature names, a class_weight dict and a
    RandomState; the regressor two outputs and early stopping's curves: each
    value of the format is in one of the two files, to be mutated.
    """
    if kind == "classifier":
        X, y = make_classification(
            n_samples=40, n_features=3, n_informative=2, n_redundant=0, random_state=0
        )
        X, y = pd.DataFrame(X, columns=["a", "b", "c"]), np.array(["no", "yes"])[y]
        estimator = DNNClassifier(
            (3,),
            max_iter=2,
            input_scaling=1.0,
            class_weight={"no": 1.0, "yes": 2.0},
            random_state=np.random.RandomState(0),
        )
    else:
        X, y = make_regression(n_samples=40, n_features=3, n_targets=2, random_state=0)
        estimator = DNNRegressor(
            hidden_layer_sizes=(3,),
            max_iter=3,
            early_stopping=True,
            n_iter_no_change=np.inf,
            target_scaling=True,
            random_state=0,
        )
    file = io.BytesIO()
    dump(estimator.fit(X, y / 100 if kind == "regressor" else y), file)
    return file.getvalue(), X


def dumped(estimator):
    file = io.BytesIO()
    dump(estimator, file)
    return file.getvalue()


def split(data):
    """A safetensors file's header, as JSON, and the bytes after it."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + size]), data[8 + size :]


def joined(header, body):
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + body


def metadata(data):
    return json.loads(split(data)[0]["__metadata__"]["skdnn"])


def resigned(data):
    """``data`` with the checksum of its contents, as a forger would write it.

    Unchanged where safetensors cannot read its tensors: load refuses it then.
    """
    header, body = split(data)
    info = json.loads(header["__metadata__"]["skdnn"])
    try:
        records = _read_tensors(data)
    except ValueError:
        return data
    info["sha256"] = _digest(info, records)
    header["__metadata__"]["skdnn"] = json.dumps(info)
    return joined(header, body)


def load_measured(data):
    """What ``load`` returns or the ValueError it raises, in bounded memory."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    try:
        # On the CPU: a file saying 'cuda' loads the same on any machine.
        result = load(io.BytesIO(data), device="cpu")
    except ValueError as exc:
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1] - baseline
        if started:
            tracemalloc.stop()
    # Guides Hypothesis towards files that make load allocate more.
    target(peak / 2**20, label="peak MiB")
    assert peak < memory_limit(data), f"load took {peak / 2**20:.1f} MiB"
    return result


def check_damaged(kind, data):
    """A damaged file is refused, or it holds the original model."""
    result = load_measured(data)
    if isinstance(result, ValueError):
        return
    file, X = original(kind)
    assert dumped(result) == file
    expected = load(io.BytesIO(file)).predict(X)
    np.testing.assert_array_equal(result.predict(X), expected)


def check_forged(data):
    """A forged file is refused, or taken exactly as written."""
    result = load_measured(data)
    if isinstance(result, ValueError):
        return
    again = dumped(result)
    assert_same_metadata(metadata(again), metadata(data))
    tensors = safetensors.numpy.load(data)
    state = {k: v.numpy() for k, v in result.module_.state_dict().items()}
    assert set(state) == set(tensors)
    for name, values in state.items():
        assert values.dtype == tensors[name].dtype, name
        np.testing.assert_array_equal(values, tensors[name])
    assert dumped(load(io.BytesIO(again))) == again


def assert_same_metadata(got, written):
    got, written = copy.deepcopy(got), copy.deepcopy(written)
    for info in (got, written):
        # Not the model: the checksum, the version of skdnn that wrote it,
        # and the device, which load(..., device='cpu') chose.
        del info["sha256"], info["skdnn_version"], info["network"]["device"]
    # What a file may lack, files of older releases lacking it, load fills
    # in: input_scaling 0, and the default of a parameter.
    written["network"].setdefault("input_scaling", 0.0)
    got["params"] = {k: v for k, v in got["params"].items() if k in written["params"]}
    assert got == written


# ----------------------------------------------------------------- damage


@st.composite
def damaged(draw, data):
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        edit = draw(st.sampled_from(["flip", "insert", "delete", "cut", "size"]))
        if edit == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif edit == "cut":
            del data[at:]
        else:
            size = draw(st.integers(0, 2**64 - 1))
            data[:8] = size.to_bytes(8, "little")
    return bytes(data)


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_damaged_files_are_refused_or_hold_the_original_model(kind, data):
    check_damaged(kind, data.draw(damaged(original(kind)[0])))


# --------------------------------------------------------- forged metadata

# Numbers at the edges of what a file, JSON, numpy or a float can hold.
EXTREME_NUMBERS = [
    0,
    -1,
    1,
    2,
    0.5,
    -0.5,
    2**31,
    2**32,
    2**53 + 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**300,
    10**400,
    -(10**400),
    1e308,
    -1e308,
    5e-324,
]
# Strings that mean something to the format, numpy, torch or Python.
KNOWN_STRINGS = [
    "",
    "auto",
    "cpu\n",
    "cuda",
    "cuda:99999999999999999999",
    "nan",
    "-inf",
    "<U999999999",
    "|O",
    "=i8",
    "<M8[ns]",
    "skdnn.DNNClassifier",
    "skdnn.DNNRegressor",
    "binary",
    "multiclass",
    "continuous",
    "identity",
    "exp",
    "softmax",
    "MT19937",
]
TAGS = [
    "__float__",
    "__tuple__",
    "__dict__",
    "__ndarray__",
    "__torch.device__",
    "__RandomState__",
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(EXTREME_NUMBERS)
    | st.text(max_size=12)
    | st.sampled_from(KNOWN_STRINGS),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(TAGS) | st.text(max_size=8), children, max_size=2
        )
    ),
    max_leaves=6,
)
# String widths and counts: 2**21 and more characters of a str dtype take
# 8 MiB a label.
NUMBERS_IN_STRINGS = [2**e for e in range(25)] + [10**9, 0]


def places(value, path=()):
    """(path, value) of each place in a JSON value, the first items of a list."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from places(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:3]):
            yield from places(item, (*path, index))


def put(info, path, value):
    for key in path[:-1]:
        info = info[key]
    info[path[-1]] = value


def pick(draw, info, wanted):
    """The path of a place in ``info`` whose value ``wanted`` takes."""
    paths = [p for p, v in places(info) if p and p != ("sha256",) and wanted(v)]
    return draw(st.sampled_from(paths))


def retype(draw, info):
    put(info, pick(draw, info, lambda v: True), draw(json_values))


def renumber(draw, info):
    path = pick(draw, info, lambda v: isinstance(v, str) and re.search("[0-9]", v))
    text = functools.reduce(lambda value, key: value[key], path, info)
    number = str(draw(st.sampled_from(NUMBERS_IN_STRINGS)))
    put(info, path, re.sub("[0-9]+", number, text, count=1))


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def extreme(draw, info):
    put(info, pick(draw, info, is_number), draw(st.sampled_from(EXTREME_NUMBERS)))


def lengthen(draw, info):
    path = pick(draw, info, lambda v: isinstance(v, str))
    text = functools.reduce(lambda value, key: value[key], path, info)
    put(info, path, text + "x" * draw(st.sampled_from([1, 100, 100_000])))


def remove(draw, info):
    path = pick(draw, info, lambda v: True)
    container = functools.reduce(lambda value, key: value[key], path[:-1], info)
    del container[path[-1]]


def add(draw, info):
    path = pick(draw, info, lambda v: isinstance(v, (dict, list)))
    container = functools.reduce(lambda value, key: value[key], path, info)
    if isinstance(container, dict):
        keys = st.text(max_size=8) | st.sampled_from(TAGS + ["loss", "classes_"])
        container[draw(keys)] = draw(json_values)
    else:
        # A copy of an item (a repeated label or dict key), or a new one.
        items = st.sampled_from(container) if container else json_values
        at = draw(st.integers(0, len(container)))
        container.insert(at, copy.deepcopy(draw(items | json_values)))


@st.composite
def forged_metadata(draw, data):
    info = metadata(data)
    for _ in range(draw(st.integers(1, 2))):
        edit = draw(st.sampled_from([retype, renumber, extreme, lengthen, remove, add]))
        edit(draw, info)
    return _serialize(info, safetensors.numpy.load(data))


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_forged_metadata_is_refused_or_taken_as_written(kind, data):
    check_forged(data.draw(forged_metadata(original(kind)[0])))


# ----------------------------------------------------- forged tensor table

SAFETENSORS_DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "U8", "BOOL", "X"]


@st.composite
def forged_tensor_table(draw, data):
    header, body = split(data)
    names = sorted(name for name in header if name != "__metadata__")
    name = draw(st.sampled_from(names))
    entry = header[name]
    shape = entry["shape"]
    edit = draw(st.sampled_from(["dtype", "shape", "offsets", "name", "drop", "copy"]))
    if edit == "dtype":
        entry["dtype"] = draw(st.sampled_from(SAFETENSORS_DTYPES))
    elif edit == "shape":
        size = int(np.prod(shape))
        entry["shape"] = draw(
            st.permutations(shape)
            | st.sampled_from([[size], [size, 1], [1, *shape], [], [0, *shape]])
            | st.lists(st.sampled_from([0, 1, 3, 2**32, 2**63]), max_size=3)
        )
    elif edit == "offsets":
        start, end = entry["data_offsets"]
        ends = st.sampled_from([0, start, end, len(body), 2**63]) | st.integers(0, end)
        entry["data_offsets"] = [draw(ends), draw(ends)]
    elif edit in ("name", "copy"):
        new = draw(st.sampled_from([*names, "weights.9", "input_scale.0", "biases"]))
        header[new] = entry if edit == "copy" else header.pop(name)
    else:
        del header[name]
    return resigned(joined(header, body))


@pytest.mark.parametrize("kind", KINDS)
@FUZZ
@given(data=st.data())
def test_forged_tensor_tables_are_refused_or_taken_as_written(kind, data):
    check_forged(data.draw(forged_tensor_table(original(kind)[0])))
