"""Saving a fitted DNNClassifier or DNNRegressor as safetensors plus JSON.

Loading parses JSON and copies tensor bytes: it imports nothing named in the
file and calls nothing the file chooses, unlike pickle. Every value read is
checked before the estimator is built from its public constructor, and every
size the file declares is checked before memory is allocated for it: what
load allocates is bounded by a small multiple of the file's size.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import collections
import hashlib
import io
import json
import math
import os
import re
import reprlib
import struct
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
import safetensors
import safetensors.numpy
import torch
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.validation import check_is_fitted

from .. import __version__
from .._classifier import _OUT_ACTIVATION as _CLASSIFIER_OUTPUTS
from .._classifier import DNNClassifier
from .._compat import HasMethods, Options, validate_params
from .._device import check_device, device_for_loading, resolve_device
from .._network import ACTIVATIONS, MLPModule
from .._regressor import _OUT_ACTIVATION as _REGRESSOR_OUTPUTS
from .._regressor import DNNRegressor

_FORMAT = "skdnn-model"
# Version 1 holds either estimator: the "estimator" section says which, and
# only a classifier's file has a "label_binarizer" section. Files of the
# first skdnn.io, which saved classifiers only, are version 1 files.
_FORMAT_VERSION = 1

# The sections of every file; a kind of estimator may add its own.
_SECTIONS = {
    "format",
    "format_version",
    "skdnn_version",
    "estimator",
    "params",
    "network",
    "attributes",
    "sha256",
}

# The one key of the safetensors header's "__metadata__" (string to string)
# that dump writes: one key, because safetensors writes several in any order
# and a file's bytes should not depend on chance.
_METADATA_KEY = "skdnn"

# The network's dtypes, and how safetensors names them.
_TENSOR_DTYPES = {"float32": "F32", "float64": "F64"}

# Limits on what a file may declare, checked before anything of that size is
# allocated, so that a small crafted file cannot make load take gigabytes.
# The header holds the metadata (parameters, labels, curves); parsing JSON
# takes up to about 25 bytes of memory per byte of text, and 16 MiB holds,
# for instance, loss curves of 800,000 epochs or a million short labels.
_MAX_HEADER_BYTES = 2**24
# A numpy str array (dtype 'U') takes 4 bytes per character of its width for
# every label, however short the labels are: its width and its size are
# capped, not just the length of its JSON text.
_MAX_STR_WIDTH = 4096
_MAX_ARRAY_BYTES = 2**26

# Label arrays of these dtypes round-trip exactly through JSON lists: bool,
# integers, floats, fixed-width strings, and objects (str, int, float, bool).
_ARRAY_DTYPE = re.compile(r"[<>|=]?(b1|[iu][1248]|f[248]|U(?P<width>[0-9]{1,9})|O)")
_ARRAY_VALUE_TYPES = {
    "b": (bool,),
    "i": (int,),
    "u": (int,),
    "f": (int, float),
    "U": (str,),
    "O": (str, int, float, bool),
}
_NON_FINITE = {"inf", "-inf", "nan"}

_FILE_CONSTRAINT = [str, os.PathLike]


def _invalid(reason):
    return ValueError(f"This is not a valid skdnn model file: {reason}")


def _short(value):
    """repr of a value read from a file, abbreviated to fit in a message."""
    return reprlib.repr(value)


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{_short(text)} is out of the range of float64")
    return value


def _refuse_constant(constant):
    raise ValueError(f"{constant} is not JSON")


def _unique_keys(pairs):
    # json.loads keeps the last of repeated keys without a word: a file
    # could then say two things, and one reader see one, another the other.
    mapping = dict(pairs)
    if len(mapping) != len(pairs):
        counts = collections.Counter(key for key, _ in pairs)
        repeated = sorted(key for key, count in counts.items() if count > 1)
        raise ValueError(f"a JSON object repeats the key(s) {_short(repeated)}")
    return mapping


def _strict_json_loads(text):
    """json.loads that rejects NaN, Infinity, floats beyond float64 and
    repeated keys."""
    return json.loads(
        text,
        parse_float=_finite_float,
        parse_constant=_refuse_constant,
        object_pairs_hook=_unique_keys,
    )


# ----------------------------------------------------- values <-> JSON
#
# JSON has no tuples, no non-finite floats, no non-string keys and no arrays
# with a dtype. Such values are written as objects with a single "__tag__"
# key; every other JSON object in a file is an error.


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value):
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_))


def _oversized(dtype, length):
    """Why ``length`` values of ``dtype`` are too large to load, or ''."""
    if dtype.kind == "U" and dtype.itemsize // 4 > _MAX_STR_WIDTH:
        return (
            f"its dtype {dtype.str!r} holds strings of {dtype.itemsize // 4} "
            f"characters; skdnn.io takes str arrays up to {_MAX_STR_WIDTH} wide"
        )
    if length * dtype.itemsize > _MAX_ARRAY_BYTES:
        return (
            f"its {length} values of dtype {dtype.str!r} take "
            f"{length * dtype.itemsize} bytes; skdnn.io takes arrays up to "
            f"{_MAX_ARRAY_BYTES} bytes"
        )
    return ""


def _array_to_json(array, name):
    if array.ndim != 1 or not _ARRAY_DTYPE.fullmatch(array.dtype.str):
        raise TypeError(
            f"skdnn.io.dump cannot save {name}: an array of shape {array.shape} "
            f"and dtype {array.dtype}. It saves 1-d arrays of bool, integer, "
            "float, str or object (str, int, float, bool) values."
        )
    problem = _oversized(array.dtype, len(array))
    if problem:
        raise ValueError(f"skdnn.io.dump cannot save {name}: {problem}.")
    if array.dtype.kind == "O":
        values = [_scalar_to_json(v, name) for v in array]
    else:
        values = array.tolist()
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise TypeError(f"skdnn.io.dump cannot save {name}: it holds NaN or inf.")
    return {"dtype": array.dtype.str, "values": values}


def _scalar_to_json(value, name):
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if _is_int(value):
        return int(value)
    if _is_real(value):
        return float(value)
    raise TypeError(
        f"skdnn.io.dump cannot save {name}: it holds {value!r} of type "
        f"{type(value).__name__}; object arrays may hold str, int, float or bool."
    )


def _random_state_to_json(random_state):
    kind, keys, pos, has_gauss, cached_gaussian = random_state.get_state()
    return {
        "kind": kind,
        "keys": keys.tolist(),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _to_json(value, name):
    """``value`` as plain JSON, non-JSON values tagged; ``name`` is for errors."""
    if value is None or isinstance(value, str):
        return None if value is None else str(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if _is_int(value):
        return int(value)
    if _is_real(value):
        value = float(value)
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, list):
        return [_to_json(v, name) for v in value]
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v, name) for v in value]}
    if isinstance(value, dict):
        return {
            "__dict__": [
                [_to_json(k, name), _to_json(v, name)] for k, v in value.items()
            ]
        }
    if isinstance(value, np.ndarray):
        return {"__ndarray__": _array_to_json(value, name)}
    if isinstance(value, torch.device):
        return {"__torch.device__": str(value)}
    if isinstance(value, np.random.RandomState):
        return {"__RandomState__": _random_state_to_json(value)}
    raise TypeError(
        f"skdnn.io.dump cannot save {name}={value!r}: a {type(value).__name__} "
        "has no safe representation in the file."
    )


def _array_dtype(text):
    """The dtype a file gives an array, exactly as ``dtype.str`` writes it."""
    if not (isinstance(text, str) and _ARRAY_DTYPE.fullmatch(text)):
        raise _invalid(
            "an array's dtype must be bool, int, uint, float, str or object, "
            f"as numpy's dtype.str writes it; got {_short(text)}."
        )
    code = text.lstrip("<>|=")
    # Widths whose bytes exceed an int32 are refused before numpy reads them:
    # numpy refuses some (TypeError), and older numpy wraps others around.
    # Narrower ones above the limit are refused with their length (_oversized).
    too_wide = code.startswith("U") and 4 * int(code[1:]) >= 2**31
    try:
        dtype = None if too_wide else np.dtype(text)
    except TypeError:
        too_wide = True
    if too_wide:
        raise _invalid(
            f"an array's dtype {text!r} holds strings wider than skdnn.io's "
            f"limit of {_MAX_STR_WIDTH} characters."
        )
    if dtype.str != text:
        raise _invalid(
            f"an array's dtype {text!r} is not as numpy writes it ({dtype.str!r})."
        )
    return dtype


def _array_from_json(content):
    if not (
        isinstance(content, dict)
        and set(content) == {"dtype", "values"}
        and isinstance(content["values"], list)
    ):
        raise _invalid(
            "an array must be {'dtype': ..., 'values': [...]}; got "
            f"{_short(content)}."
        )
    dtype, values = _array_dtype(content["dtype"]), content["values"]
    # Before numpy allocates: a str array's size depends on its width, not
    # on the length of its values in the file.
    problem = _oversized(dtype, len(values))
    if problem:
        raise _invalid(f"an array is too large: {problem}.")
    allowed = _ARRAY_VALUE_TYPES[dtype.kind]
    # bool is an int to isinstance, but not a label of an integer array.
    wrong = [
        v
        for v in values
        if not isinstance(v, allowed) or (isinstance(v, bool) and bool not in allowed)
    ]
    if wrong:
        raise _invalid(
            f"an array of dtype {dtype.str!r} cannot hold {_short(wrong[0])}."
        )
    if dtype.kind == "O":
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array
    try:
        array = np.array(values, dtype=dtype)
    except (OverflowError, ValueError) as exc:
        raise _invalid(f"{_short(values)} do not fit dtype {dtype.str!r}.") from exc
    # Catches values that numpy would truncate (strings) or round, and a
    # dtype numpy widens (an empty 'U0').
    if array.dtype != dtype or array.tolist() != values:
        raise _invalid(f"{_short(values)} do not fit dtype {dtype.str!r}.")
    return array


# The words of MT19937's state. numpy's set_state takes any position in them,
# and one outside [0, 624] makes the generator read outside their memory.
_MT19937_WORDS = 624


def _random_state_from_json(content):
    _require(
        content,
        {"kind", "keys", "pos", "has_gauss", "cached_gaussian"},
        "a RandomState's state",
    )
    keys, pos, has_gauss = content["keys"], content["pos"], content["has_gauss"]
    gaussian = content["cached_gaussian"]
    if not (
        isinstance(keys, list)
        and len(keys) == _MT19937_WORDS
        # uint32 words: older numpy wraps others around without a word.
        and all(_is_int(k) and 0 <= k < 2**32 for k in keys)
        and _is_int(pos)
        and 0 <= pos <= _MT19937_WORDS
        and _is_int(has_gauss)
        and has_gauss in (0, 1)
        and _exact_float(gaussian)
    ):
        raise _invalid(
            f"a RandomState's state needs {_MT19937_WORDS} keys in [0, 2**32), "
            f"a position in [0, {_MT19937_WORDS}], has_gauss 0 or 1 and a float "
            f"cached_gaussian; got keys of {_short(keys)}, pos={_short(pos)}, "
            f"has_gauss={_short(has_gauss)}, cached_gaussian={_short(gaussian)}."
        )
    random_state = np.random.RandomState()
    try:
        random_state.set_state(
            (
                content["kind"],
                np.array(keys, dtype=np.uint32),
                pos,
                has_gauss,
                gaussian,
            )
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise _invalid(f"a RandomState's state is not valid: {exc}.") from exc
    return random_state


def _float_from_json(content):
    if not (isinstance(content, str) and content in _NON_FINITE):
        raise _invalid(
            f"a tagged float must be one of {sorted(_NON_FINITE)}; got "
            f"{_short(content)}."
        )
    return float(content)


def _tuple_from_json(content):
    if not isinstance(content, list):
        raise _invalid(f"a tuple must be a JSON list; got {_short(content)}.")
    return tuple(_from_json(v) for v in content)


def _dict_from_json(content):
    if not (
        isinstance(content, list)
        and all(isinstance(p, list) and len(p) == 2 for p in content)
    ):
        raise _invalid(
            f"a dict must be a list of [key, value] pairs; got {_short(content)}."
        )
    pairs = [(_from_json(k), _from_json(v)) for k, v in content]
    try:
        mapping = dict(pairs)
    except TypeError as exc:
        raise _invalid(f"a dict key is not hashable: {exc}.") from exc
    # Keys such as 1, 1.0 and True are one key to a dict.
    if len(mapping) != len(pairs):
        raise _invalid(f"a dict repeats a key: {_short(content)}.")
    return mapping


def _device_from_json(content):
    try:
        check_device(content)
        device = torch.device(content)
    # torch says RuntimeError of a string check_device's pattern lets
    # through, such as 'auto' or an index beyond int64.
    except (TypeError, ValueError, RuntimeError) as exc:
        raise _invalid(f"{_short(content)} does not name a torch device.") from exc
    return device


_DECODERS = {
    "__float__": _float_from_json,
    "__tuple__": _tuple_from_json,
    "__dict__": _dict_from_json,
    "__ndarray__": _array_from_json,
    "__torch.device__": _device_from_json,
    "__RandomState__": _random_state_from_json,
}


def _from_json(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict) and len(value) == 1:
        ((tag, content),) = value.items()
        if tag in _DECODERS:
            return _DECODERS[tag](content)
    raise _invalid(f"{_short(value)} is not a value this format knows.")


# ------------------------------------------------------ fitted attributes


def _optional(check):
    return lambda value: value is None or check(value)


def _count(value):
    return _is_int(value) and value >= 0


def _reals(value):
    return isinstance(value, list) and all(_is_real(v) for v in value)


def _exact_float(value):
    """Whether ``value`` is a finite number that a float holds exactly.

    load turns such a value into a float: an int of 17 digits would come back
    from dump as another number, and one of 400 as no number at all.
    """
    try:
        return _is_real(value) and math.isfinite(value) and float(value) == value
    except OverflowError:
        return False


def _names(value):
    return (
        isinstance(value, np.ndarray)
        and value.dtype == object
        and all(isinstance(v, str) for v in value)
    )


# Each fitted attribute the file stores: what load accepts, and in words.
_ATTRIBUTES = {
    "n_features_in_": (_count, "an int"),
    "feature_names_in_": (_names, "an object array of str"),
    "n_outputs_": (_count, "an int"),
    "n_layers_": (_count, "an int"),
    "out_activation_": (lambda v: isinstance(v, str), "a str"),
    "n_iter_": (_count, "an int >= 0"),
    "t_": (_count, "an int >= 0"),
    "loss_": (_optional(_is_real), "a float or null"),
    "loss_curve_": (_reals, "a list of floats"),
    "best_loss_": (_optional(_is_real), "a float or null"),
    "validation_scores_": (_optional(_reals), "a list of floats or null"),
    "validation_loss_curve_": (_optional(_reals), "a list of floats or null"),
    "best_validation_score_": (_optional(_is_real), "a float or null"),
    "_no_improvement_count": (_count, "an int >= 0"),
}
# feature_names_in_ exists only for X with string column names; loss_ may be
# missing (or None) when a fit is interrupted before its first epoch ends.
_OPTIONAL_ATTRIBUTES = {"feature_names_in_", "loss_"}


# ------------------------------------------------------------- the file


def _tensor_record(array):
    """(safetensors dtype, shape, little-endian bytes), as load sees a tensor."""
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return _TENSOR_DTYPES[array.dtype.name], tuple(array.shape), little.tobytes()


def _digest(info, records):
    """SHA-256 of the metadata and of each tensor's name, dtype, shape and bytes.

    The metadata is hashed as ``json.dumps`` writes it, so the checksum can
    sit inside it. Hashing the decoded tensors, not the file's data section,
    also catches a header whose offsets were changed to swap two tensors of
    the same shape.
    """
    unsigned = {key: value for key, value in info.items() if key != "sha256"}
    sha = hashlib.sha256(json.dumps(unsigned, allow_nan=False).encode("utf-8"))
    for name in sorted(records):
        dtype, shape, data = records[name]
        sha.update(json.dumps([name, dtype, list(shape), len(data)]).encode("utf-8"))
        sha.update(data)
    return sha.hexdigest()


def _serialize(info, arrays):
    """The bytes of a model file holding ``info`` as JSON and ``arrays``."""
    records = {name: _tensor_record(a) for name, a in arrays.items()}
    info = {**info, "sha256": _digest(info, records)}
    metadata = {_METADATA_KEY: json.dumps(info, allow_nan=False)}
    return safetensors.numpy.save(arrays, metadata=metadata)


def _write(file, data):
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as f:
            f.write(data)
        return
    if isinstance(file, io.TextIOBase):
        raise TypeError("skdnn.io.dump needs a file opened in binary mode ('wb').")
    file.write(data)


def _read(file):
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            return f.read()
    if isinstance(file, io.TextIOBase):
        raise TypeError("skdnn.io.load needs a file opened in binary mode ('rb').")
    data = file.read()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(
            "skdnn.io.load needs a file opened in binary mode ('rb'); its read() "
            f"returned a {type(data).__name__}."
        )
    return bytes(data)


def _read_metadata(data):
    """The JSON metadata in a safetensors file's header, format checked."""
    if len(data) < 8:
        raise _invalid(
            f"it has {len(data)} bytes, fewer than the 8 that start a safetensors "
            "file. It is empty, truncated or not a safetensors file."
        )
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > len(data) - 8:
        raise _invalid(
            f"its first 8 bytes announce a {header_size}-byte header, but only "
            f"{len(data) - 8} bytes follow. It is truncated or not a safetensors "
            "file."
        )
    if header_size > _MAX_HEADER_BYTES:
        raise _invalid(
            f"its first 8 bytes announce a {header_size}-byte header; skdnn.io "
            f"reads headers of at most {_MAX_HEADER_BYTES} bytes."
        )
    try:
        header = _strict_json_loads(data[8 : 8 + header_size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _invalid(
            f"its header is not valid JSON ({exc}); it is corrupted "
            "or not a safetensors file."
        ) from exc
    metadata = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or _METADATA_KEY not in metadata:
        raise _invalid(
            "it is not a file written by skdnn.io.dump: its header has no "
            f"{_METADATA_KEY!r} metadata."
        )
    try:
        info = _strict_json_loads(metadata[_METADATA_KEY])
    except (TypeError, ValueError, RecursionError) as exc:
        raise _invalid(
            f"its {_METADATA_KEY!r} metadata is not valid JSON ({exc})."
        ) from exc
    if not isinstance(info, dict) or info.get("format") != _FORMAT:
        raise _invalid(f"its metadata does not say format={_FORMAT!r}.")
    version = info.get("format_version")
    if not (_is_int(version) and version == _FORMAT_VERSION):
        raise ValueError(
            f"This skdnn model file has format version {_short(version)} (written "
            f"by skdnn {_short(info.get('skdnn_version'))}); skdnn {__version__} reads "
            f"version {_FORMAT_VERSION} only. Load it with the skdnn that wrote it."
        )
    name = info.get("estimator")
    if not (isinstance(name, str) and name in _ESTIMATORS):
        raise _invalid(
            f"it holds a {_short(name)}; skdnn.io.load loads "
            f"{' and '.join(map(repr, _ESTIMATORS))} only, and never imports a "
            "class a file names."
        )
    return info


def _read_tensors(data):
    """Every tensor of the file as (dtype, shape, bytes), checked by safetensors."""
    try:
        entries = safetensors.deserialize(data)
    # Any failure to parse untrusted bytes means an unreadable file; and some
    # safetensors releases raise a base class of safetensors.SafetensorError.
    except Exception as exc:
        raise _invalid(
            f"safetensors cannot read its tensors ({exc}). It is truncated or "
            "corrupted."
        ) from exc
    return {
        name: (spec["dtype"], tuple(spec["shape"]), bytes(spec["data"]))
        for name, spec in entries
    }


def _expected_tensors(layer_units, input_scaling=0.0):
    """Name and shape of each tensor, as in ``MLPModule.state_dict()``."""
    shapes = {}
    pairs = list(zip(layer_units[:-1], layer_units[1:], strict=True))
    for i, (fan_in, fan_out) in enumerate(pairs):
        shapes[f"weights.{i}"] = (fan_in, fan_out)
    for i, (_, fan_out) in enumerate(pairs):
        shapes[f"biases.{i}"] = (fan_out,)
    if input_scaling:
        shapes["input_scale.0"] = (layer_units[0],)
    return shapes


def _network_arrays(records, layer_units, dtype, input_scaling=0.0):
    expected = _expected_tensors(layer_units, input_scaling)
    missing = sorted(set(expected) - set(records))
    extra = sorted(set(records) - set(expected))
    if missing or extra:
        raise _invalid(
            f"a network with layer_units={layer_units} has the tensors "
            f"{list(expected)}; the file lacks {missing} and has extra {extra}."
        )
    arrays = {}
    names = {v: k for k, v in _TENSOR_DTYPES.items()}
    for name, shape in expected.items():
        found_dtype, found_shape, data = records[name]
        if (found_dtype, found_shape) != (_TENSOR_DTYPES[dtype], shape):
            raise _invalid(
                f"tensor {name!r} should be {dtype} of shape {shape}, but the file "
                f"has {names.get(found_dtype, found_dtype)} of shape {found_shape}."
            )
        # safetensors checks this too; the network must not depend on it.
        if len(data) != math.prod(shape) * np.dtype(dtype).itemsize:
            raise _invalid(
                f"tensor {name!r} has {len(data)} bytes, but {dtype} of shape "
                f"{shape} takes {math.prod(shape) * np.dtype(dtype).itemsize}."
            )
        little = np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<"))
        # astype copies into native byte order: the module gets writable memory.
        arrays[name] = little.astype(dtype).reshape(shape)
    return arrays


def _require(mapping, keys, where, optional=()):
    if not isinstance(mapping, dict):
        raise _invalid(f"{where} must be a JSON object.")
    missing = sorted(set(keys) - set(optional) - set(mapping))
    unknown = sorted(set(mapping) - set(keys))
    if missing or unknown:
        raise _invalid(f"{where} lacks {missing} and has unknown {unknown}.")


def _check_network(network):
    # input_scaling is optional: files written before it existed have none.
    _require(
        network,
        {"layer_units", "activation", "dropout", "dtype", "device", "input_scaling"},
        "network",
        optional=("input_scaling",),
    )
    scaling = network.get("input_scaling", 0.0)
    if not (_exact_float(scaling) and scaling >= 0):
        raise _invalid(
            "network.input_scaling must be a finite number >= 0; got "
            f"{_short(scaling)}."
        )
    units, dropout = network["layer_units"], network["dropout"]
    if not (
        isinstance(units, list)
        and len(units) >= 2
        and all(_is_int(u) and u >= 1 for u in units)
    ):
        raise _invalid(
            f"network.layer_units must be >= 2 ints >= 1; got {_short(units)}."
        )
    if not (
        isinstance(network["activation"], str) and network["activation"] in ACTIVATIONS
    ):
        raise _invalid(
            f"network.activation must be one of {sorted(ACTIVATIONS)}; got "
            f"{_short(network['activation'])}."
        )
    if not (
        _reals(dropout)
        and len(dropout) == len(units) - 2
        and all(0 <= p < 1 for p in dropout)
    ):
        raise _invalid(
            "network.dropout must hold one rate in [0, 1) per hidden layer; got "
            f"{_short(dropout)}."
        )
    if not (isinstance(network["dtype"], str) and network["dtype"] in _TENSOR_DTYPES):
        raise _invalid(
            f"network.dtype must be one of {sorted(_TENSOR_DTYPES)}; got "
            f"{_short(network['dtype'])}."
        )
    _device_from_json(network["device"])


def _check_labels(labels):
    _require(labels, {"classes_", "y_type_", "sparse_input_"}, "label_binarizer")
    classes = _array_from_json(labels["classes_"])
    y_type = labels["y_type_"]
    if not (isinstance(y_type, str) and y_type in _CLASSIFIER_OUTPUTS):
        raise _invalid(
            f"label_binarizer.y_type_ must be one of {sorted(_CLASSIFIER_OUTPUTS)}; "
            f"got {_short(y_type)}."
        )
    if not isinstance(labels["sparse_input_"], bool):
        raise _invalid("label_binarizer.sparse_input_ must be true or false.")
    try:
        ordered = np.array_equal(np.unique(classes), classes)
    except TypeError:
        ordered = False
    if not ordered:
        raise _invalid(f"classes_ must be sorted and distinct; got {_short(classes)}.")
    binarizer = LabelBinarizer()
    binarizer.classes_ = classes
    binarizer.y_type_ = y_type
    binarizer.sparse_input_ = labels["sparse_input_"]
    return binarizer


def _check_attributes(attributes, units, outputs, target):
    """The fitted attributes, decoded and checked against the network.

    ``outputs`` are the attributes that the estimator's target fixes
    (``n_outputs_``, ``out_activation_``), and ``target`` says it in words.
    """
    _require(attributes, _ATTRIBUTES, "attributes", optional=_OPTIONAL_ATTRIBUTES)
    attributes = {name: _from_json(value) for name, value in attributes.items()}
    for name, value in attributes.items():
        check, description = _ATTRIBUTES[name]
        if not check(value):
            raise _invalid(
                f"attributes.{name} must be {description}; got {_short(value)}."
            )
    if units[-1] != outputs["n_outputs_"]:
        raise _invalid(
            f"network.layer_units={units} ends in {units[-1]} output(s), but "
            f"{target} need {outputs['n_outputs_']}."
        )
    expected = {"n_features_in_": units[0], "n_layers_": len(units), **outputs}
    for name, value in expected.items():
        if attributes[name] != value:
            raise _invalid(
                f"attributes.{name}={_short(attributes[name])} does not fit the "
                f"rest of the file (network.layer_units={units}, {target}): it "
                f"should be {value!r}."
            )
    names = attributes.get("feature_names_in_")
    if names is not None and len(names) != units[0]:
        raise _invalid(
            f"attributes.feature_names_in_ has {len(names)} names for "
            f"{units[0]} features."
        )
    return attributes


# ------------------------------------------------- what each estimator adds
#
# A classifier's file has a "label_binarizer" section: its classes, which
# fix its output layer. A regressor's has a "target_scaler" (null without
# target_scaling) instead: its loss fixes its output
# activation, and its output count is the network's.


def _classifier_target(estimator):
    binarizer = estimator._label_binarizer
    return {
        "label_binarizer": {
            "classes_": _array_to_json(binarizer.classes_, "classes_"),
            "y_type_": binarizer.y_type_,
            "sparse_input_": bool(binarizer.sparse_input_),
        }
    }


def _classifier_outputs(info, estimator, units):
    """The output layer a classifier's labels need, in words, and the labels.

    Returns the attributes the labels fix, the words that say why in an
    error, and the attributes to set on the estimator.
    """
    binarizer = _check_labels(info["label_binarizer"])
    n_classes, y_type = len(binarizer.classes_), binarizer.y_type_
    if y_type == "binary" and n_classes != 2:
        raise _invalid(f"a binary target has 2 classes; the file has {n_classes}.")
    outputs = {
        "n_outputs_": 1 if y_type == "binary" else n_classes,
        "out_activation_": _CLASSIFIER_OUTPUTS[y_type],
    }
    labels = {"_label_binarizer": binarizer, "classes_": binarizer.classes_}
    return outputs, f"{n_classes} classes of type {y_type!r}", labels


def _regressor_target(estimator):
    # A regressor predicts through its loss's inverse link: a network fitted
    # with another loss's output would not predict what it was fitted to.
    fitted, loss = estimator.out_activation_, estimator.loss
    if fitted != _REGRESSOR_OUTPUTS[loss]:
        raise ValueError(
            f"skdnn.io.dump cannot save this DNNRegressor: its network was "
            f"fitted with the {fitted!r} output of another loss, and "
            f"loss={loss!r} needs {_REGRESSOR_OUTPUTS[loss]!r}. Set loss back to "
            "the loss it was fitted with, or fit it again."
        )
    # The target's scaling (target_scaling): what the network's output is
    # multiplied by and shifted by, per output; null without it. float64
    # values round-trip exactly through JSON's shortest repr.
    scaler = getattr(estimator, "_y_scaler", None)
    if scaler is None:
        return {"target_scaler": None}
    shift, scale = scaler
    return {"target_scaler": {"shift": shift.tolist(), "scale": scale.tolist()}}


def _target_scaler_from_json(content, n_outputs):
    """The checked (shift, scale) of a regressor's target, or None."""
    if content is None:
        return None
    if not isinstance(content, dict):
        raise _invalid("target_scaler must be null or a JSON object.")
    _require(content, {"shift", "scale"}, "target_scaler")
    values = {}
    for name, minimum in (("shift", -math.inf), ("scale", 0.0)):
        value = content[name]
        if not (
            isinstance(value, list)
            and len(value) == n_outputs
            # Floats only, as dump writes them: an int would load as a
            # float, and the file be taken other than as written.
            and all(type(v) is float and math.isfinite(v) for v in value)
            and all(v > minimum for v in value)
        ):
            raise _invalid(
                f"target_scaler.{name} must be a list of {n_outputs} finite "
                f"floats{' > 0' if minimum == 0 else ''}, one per output; got "
                f"{_short(value)}."
            )
        values[name] = np.array(value, dtype=np.float64)
    return values["shift"], values["scale"]


def _regressor_outputs(info, estimator, units):
    """As _classifier_outputs: the output layer a regressor's loss needs."""
    loss = estimator.loss
    outputs = {"n_outputs_": units[-1], "out_activation_": _REGRESSOR_OUTPUTS[loss]}
    scaler = _target_scaler_from_json(info["target_scaler"], units[-1])
    return outputs, f"loss={loss!r}", {"_y_scaler": scaler}


class _Kind(NamedTuple):
    """How a file holds one kind of estimator."""

    name: str  # the file's "estimator" section
    sections: frozenset  # its sections beyond _SECTIONS
    target_to_json: object  # estimator -> {section: JSON} of those sections
    outputs_from_json: object  # as _classifier_outputs


_KINDS = {
    DNNClassifier: _Kind(
        "skdnn.DNNClassifier",
        frozenset({"label_binarizer"}),
        _classifier_target,
        _classifier_outputs,
    ),
    DNNRegressor: _Kind(
        "skdnn.DNNRegressor",
        frozenset({"target_scaler"}),
        _regressor_target,
        _regressor_outputs,
    ),
}
# Each estimator by the name a file gives it: load looks the name up here,
# and never imports what a file names.
_ESTIMATORS = {kind.name: estimator for estimator, kind in _KINDS.items()}


def _estimator_with_params(estimator_class, params):
    """A new estimator with the file's parameters, checked as fit checks them."""
    if not isinstance(params, dict):
        raise _invalid("params must be a JSON object.")
    estimator = estimator_class()
    unknown = sorted(set(params) - set(estimator.get_params(deep=False)))
    if unknown:
        raise _invalid(f"{estimator_class.__name__} has no parameter(s) {unknown}.")
    # Parameters this file lacks (added to skdnn after it was written) keep
    # their defaults.
    estimator.set_params(**{k: _from_json(v) for k, v in params.items()})
    try:
        _check_params(estimator)
    except ValueError as exc:
        raise _invalid(f"its parameters are not valid: {exc}") from exc
    return estimator


def _estimator_from(info, records):
    """The estimator with its network on the CPU, from checked metadata."""
    estimator_class = _ESTIMATORS[info["estimator"]]
    kind = _KINDS[estimator_class]
    _require(info, _SECTIONS | kind.sections, "the metadata")
    estimator = _estimator_with_params(estimator_class, info["params"])
    network = info["network"]
    _check_network(network)
    units = network["layer_units"]
    outputs, target, target_attributes = kind.outputs_from_json(info, estimator, units)
    attributes = _check_attributes(info["attributes"], units, outputs, target)
    scaling = float(network.get("input_scaling", 0.0))
    arrays = _network_arrays(records, units, network["dtype"], scaling)
    n_layers = len(units) - 1
    module = MLPModule(
        [arrays[f"weights.{i}"] for i in range(n_layers)],
        [arrays[f"biases.{i}"] for i in range(n_layers)],
        activation=network["activation"],
        dropout=network["dropout"],
        input_scaling=scaling,
        input_scale=arrays.get("input_scale.0"),
    )
    for name, value in {**attributes, **target_attributes}.items():
        setattr(estimator, name, value)
    estimator.module_ = module.eval()
    estimator.device_ = torch.device("cpu")
    # The optimizer's state is not saved: the next stochastic fit or
    # partial_fit builds a new optimizer, as after a fit on another device.
    estimator._optimizer = None
    estimator._flat = None
    return estimator, network["device"]


def _checked_estimator(data, expected):
    """The estimator the bytes of a file hold, and the device it was saved from."""
    info = _read_metadata(data)
    records = _read_tensors(data)
    if info.get("sha256") != _digest(info, records):
        raise _invalid(
            "its SHA-256 checksum does not match its contents: it was changed or "
            "corrupted after skdnn.io.dump wrote it."
        )
    held = _ESTIMATORS[info["estimator"]]
    if expected is not None and held is not expected:
        raise ValueError(
            f"This skdnn model file holds a {_KINDS[held].name}, but load was "
            f"called with expected={expected.__name__}: it loads a "
            f"{_KINDS[expected].name} only."
        )
    return _estimator_from(info, records)


def _check_params(estimator):
    """Check the parameters as fit would, so dump writes only what load reads."""
    estimator._validate_params()
    check_device(estimator.device)
    if isinstance(estimator.device, str) and estimator.device != "auto":
        # check_device's pattern takes 'cpu\n', which torch refuses.
        try:
            torch.device(estimator.device)
        except RuntimeError as exc:
            raise ValueError(
                f"device={estimator.device!r} names no torch device: {exc}"
            ) from exc


# ------------------------------------------------------------ public API


def _metadata(estimator, kind, weights):
    """Everything a file holds but the tensors, as JSON, without its checksum."""
    module = estimator.module_
    return {
        "format": _FORMAT,
        "format_version": _FORMAT_VERSION,
        "skdnn_version": __version__,
        "estimator": kind.name,
        "params": {
            name: _to_json(value, f"parameter {name!r}")
            for name, value in estimator.get_params(deep=False).items()
        },
        "network": {
            "layer_units": [weights[0].shape[0]] + [W.shape[1] for W in weights],
            "activation": module.activation,
            "dropout": list(module.dropout),
            "input_scaling": module.input_scaling,
            "dtype": weights[0].dtype.name,
            "device": str(estimator.device_),
        },
        **kind.target_to_json(estimator),
        "attributes": {
            name: _to_json(getattr(estimator, name), name)
            for name in _ATTRIBUTES
            if hasattr(estimator, name)
        },
    }


@validate_params(
    {
        "estimator": "no_validation",
        "file": _FILE_CONSTRAINT + [HasMethods(["write"])],
    },
    prefer_skip_nested_validation=True,
)
def dump(estimator, file):
    """Save a fitted DNNClassifier or DNNRegressor to a safetensors file.

    The file is a standard `safetensors <https://huggingface.co/docs/safetensors>`_
    file: the network's weights and biases are its tensors, named as in
    ``estimator.module_.state_dict()`` (``weights.0``, ``biases.0``, ...),
    and everything else -- which estimator it is, the parameters, a
    classifier's classes with their dtype, the fitted attributes, a SHA-256
    checksum -- is JSON in its header's metadata. Unlike a pickle, it can be
    loaded with :func:`load` without running any code it contains, and read
    by any safetensors reader.

    Parameters
    ----------
    estimator : DNNClassifier or DNNRegressor
        A fitted :class:`~skdnn.DNNClassifier` or
        :class:`~skdnn.DNNRegressor`. The state of its optimizer (Adam's
        moments, SGD's momentum) is not saved.

    file : str, path-like or binary file object
        Where to write: a path, or a file object opened for writing in
        binary mode (``'wb'``). A path is overwritten.

    Raises
    ------
    TypeError
        If ``estimator`` is neither a DNNClassifier nor a DNNRegressor
        (subclasses included), or a parameter has a value with no safe
        representation.

    ValueError
        If a parameter has a value that ``fit`` would refuse; if a
        DNNRegressor's ``loss`` was changed after it was fitted (its network
        has the output of another loss); or if the model is larger than
        :func:`load` reads: class labels of a str dtype wider than 4096
        characters or taking more than 64 MiB, or metadata (parameters,
        labels, loss curves) of more than 16 MiB.

    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.

    See Also
    --------
    load : Load a model saved by this function.

    Notes
    -----
    Tensors are saved from the CPU, so a model fitted on a GPU loads on any
    machine. The checksum detects a file changed or corrupted after it was
    written; it is no signature, since whoever changes a file can recompute
    it. What makes loading safe is that :func:`load` runs no code from the
    file and checks every value in it.

    Examples
    --------
    >>> import io
    >>> from sklearn.datasets import make_moons
    >>> from skdnn import DNNClassifier
    >>> from skdnn.io import dump, load
    >>> X, y = make_moons(n_samples=100, noise=0.2, random_state=0)
    >>> clf = DNNClassifier((8,), solver="lbfgs", random_state=0).fit(X, y)
    >>> file = io.BytesIO()
    >>> dump(clf, file)
    >>> _ = file.seek(0)
    >>> loaded = load(file)
    >>> bool((loaded.predict_proba(X) == clf.predict_proba(X)).all())
    True

    A regressor is saved the same way:

    >>> from sklearn.datasets import make_regression
    >>> from skdnn import DNNRegressor
    >>> X, y = make_regression(n_samples=100, n_features=3, random_state=0)
    >>> reg = DNNRegressor(hidden_layer_sizes=(8,), solver="lbfgs", random_state=0)
    >>> reg = reg.fit(X, y / 100)
    >>> file = io.BytesIO()
    >>> dump(reg, file)
    >>> _ = file.seek(0)
    >>> bool((load(file).predict(X) == reg.predict(X)).all())
    True
    """
    kind = _KINDS.get(type(estimator))
    if kind is None:
        raise TypeError(
            "skdnn.io.dump saves a fitted skdnn.DNNClassifier or "
            f"skdnn.DNNRegressor; got an instance of {type(estimator).__qualname__}."
        )
    check_is_fitted(estimator)
    _check_params(estimator)
    arrays = {
        name: np.ascontiguousarray(tensor.detach().cpu().numpy())
        for name, tensor in estimator.module_.state_dict().items()
    }
    weights = [arrays[f"weights.{i}"] for i in range(len(estimator.module_.weights))]
    if weights[0].dtype.name not in _TENSOR_DTYPES:
        raise TypeError(
            "skdnn.io.dump saves float32 or float64 networks; got "
            f"{weights[0].dtype.name}."
        )
    data = _serialize(_metadata(estimator, kind, weights), arrays)
    (header_size,) = struct.unpack("<Q", data[:8])
    if header_size > _MAX_HEADER_BYTES:
        raise ValueError(
            f"skdnn.io.dump cannot save this {type(estimator).__name__}: its "
            f"metadata (parameters, labels, loss curves) takes {header_size} "
            f"bytes, more than the {_MAX_HEADER_BYTES} that skdnn.io.load reads."
        )
    _write(file, data)


@validate_params(
    {
        "file": _FILE_CONSTRAINT + [HasMethods(["read"])],
        "device": [None, str, torch.device],
        "expected": [None, Options(type, set(_KINDS))],
    },
    prefer_skip_nested_validation=True,
)
def load(file, *, device=None, expected=None):
    """Load a DNNClassifier or DNNRegressor saved by :func:`dump`, safely.

    The file is parsed as JSON and raw tensor bytes, never unpickled, and it
    runs no code from the file. Every value is checked: the format and its
    version, a SHA-256 checksum of the metadata and tensors, which estimator
    it holds, the parameters (as ``fit`` checks them), the fitted attributes
    against the network, and each tensor's name, dtype and shape. Every size
    the file declares (of its header, of a str dtype, of a tensor) is
    checked before memory is allocated for it, so a crafted file cannot make
    loading take more than a few times the file's size. The estimator is
    then built with ``DNNClassifier(**params)`` or ``DNNRegressor(**params)``.

    Parameters
    ----------
    file : str, path-like or binary file object
        A path, or a file object opened for reading in binary mode
        (``'rb'``).

    device : str, torch.device or None, default=None
        Device to put the network on. None puts it on the device it was
        saved from if this machine has it, and else on the CPU with a
        warning. A device this machine lacks raises a ValueError.

    expected : {DNNClassifier, DNNRegressor} or None, default=None
        The estimator class the file must hold: a file holding the other
        one raises a ValueError that names both. None loads either.

    Returns
    -------
    estimator : DNNClassifier or DNNRegressor
        The fitted estimator. It predicts bit-identically to the saved one
        on the same device and machine, and can be cloned, scored and
        trained further: ``fit`` with ``warm_start=True`` continues exactly
        as the saved model would; ``partial_fit`` continues with a fresh
        optimizer state, since that state is not saved.

    Raises
    ------
    ValueError
        If the file is not a safetensors file written by :func:`dump`, is
        truncated, fails its checksum, has a format version this skdnn does
        not read, holds another estimator than ``expected``, declares sizes
        beyond skdnn.io's limits, or holds an invalid or inconsistent value;
        the message says which.

    See Also
    --------
    dump : Save a fitted DNNClassifier or DNNRegressor.

    Notes
    -----
    The limits on what a file declares, which :func:`dump` also keeps to: a
    header (the metadata) of at most 16 MiB, class labels of a str dtype at
    most 4096 characters wide, and a label array of at most 64 MiB.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> from sklearn.datasets import load_iris
    >>> from skdnn import DNNClassifier
    >>> from skdnn.io import dump, load
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = DNNClassifier((10,), solver="lbfgs", random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "iris.safetensors")
    ...     dump(clf, path)
    ...     loaded = load(path)
    >>> loaded
    DNNClassifier(hidden_layer_sizes=(10,), random_state=0, solver='lbfgs')
    >>> loaded.classes_
    array([0, 1, 2])
    >>> bool((loaded.predict(X) == clf.predict(X)).all())
    True

    With ``expected``, a file of the other estimator is refused:

    >>> import io
    >>> from sklearn.datasets import load_diabetes
    >>> from skdnn import DNNRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = DNNRegressor(
    ...     "poisson", (10,), solver="lbfgs", max_iter=1000, random_state=0
    ... ).fit(X, y / 100)
    >>> file = io.BytesIO()
    >>> dump(reg, file)
    >>> _ = file.seek(0)
    >>> loaded = load(file, expected=DNNRegressor)
    >>> loaded.out_activation_, bool((loaded.predict(X) == reg.predict(X)).all())
    ('exp', True)
    >>> _ = file.seek(0)
    >>> load(file, expected=DNNClassifier)
    Traceback (most recent call last):
    ...
    ValueError: This skdnn model file holds a skdnn.DNNRegressor, but load was \
called with expected=DNNClassifier: it loads a skdnn.DNNClassifier only.
    """
    # An explicit device fails before the file is read.
    target = None if device is None else resolve_device(device)
    data = _read(file)
    try:
        estimator, saved_device = _checked_estimator(data, expected)
    except RecursionError as exc:
        raise _invalid("its metadata is nested too deeply.") from exc
    if target is None:
        # Past validate_params' wrapper, to the line that called load.
        target = device_for_loading(saved_device, stacklevel=4)
    estimator.module_.to(target)
    estimator.device_ = target
    return estimator
