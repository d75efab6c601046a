"""Behaviour tests for DNNClassifier: the points of its spec (issue 2), one each."""

import re
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch
from sklearn.datasets import (
    make_blobs,
    make_classification,
    make_multilabel_classification,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, recall_score
from sklearn.neural_network import MLPClassifier

from skdnn import DNNClassifier
from skdnn._defaults import resolved

CONVERGENCE = "ignore::sklearn.exceptions.ConvergenceWarning"

# Parameters skdnn adds to MLPClassifier's.
ADDED_PARAMS = {
    "dropout",
    "n_init",
    "input_scaling",
    "class_weight",
    "device",
    "n_threads",
}

MLP_FITTED_ATTRIBUTES = (
    "classes_",
    "loss_",
    "best_loss_",
    "loss_curve_",
    "validation_scores_",
    "best_validation_score_",
    "t_",
    "coefs_",
    "intercepts_",
    "n_features_in_",
    "n_iter_",
    "n_layers_",
    "n_outputs_",
    "out_activation_",
)


def _xor(n_samples, seed):
    """The tutorial's XOR: points uniform in [-1, 1]^2, labelled by x * y > 0."""
    X = np.random.RandomState(seed).uniform(-1, 1, size=(n_samples, 2))
    return X, (X[:, 0] * X[:, 1] > 0).astype(int)


def _multiclass(n_samples=90, n_features=4, random_state=0):
    return make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=3,
        n_redundant=0,
        n_classes=3,
        random_state=random_state,
    )


def _binary(n_samples=80, n_features=4, random_state=1):
    return make_classification(
        n_samples=n_samples, n_features=n_features, random_state=random_state
    )


def _multilabel(n_samples=80, n_labels=3):
    return make_multilabel_classification(
        n_samples=n_samples, n_features=5, n_classes=n_labels, random_state=0
    )


_MAKE_TARGET = {"binary": _binary, "multiclass": _multiclass, "multilabel": _multilabel}


def _target(kind):
    """(X, y) for a target type: 'binary', 'multiclass' or 'multilabel'."""
    return _MAKE_TARGET[kind]()


def _error_chain_text(exc):
    """The messages of an exception and the exceptions it was raised from."""
    texts = []
    while exc is not None:
        texts.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    return " | ".join(texts)


# ------------------------------------------------------------------ drop-in


@pytest.mark.filterwarnings(CONVERGENCE)
def test_constructs_and_fits_from_mlpclassifier_params():
    X, y = _binary()
    params = MLPClassifier().get_params()
    clf = DNNClassifier(**params).set_params(max_iter=3, random_state=0)
    clf.fit(X, y)
    assert clf.predict(X).shape == y.shape
    assert set(clf.predict(X)) <= {0, 1}


def test_accepts_every_mlpclassifier_parameter_name():
    mlp_names = set(MLPClassifier().get_params())
    ours = set(DNNClassifier().get_params())
    assert mlp_names <= ours


# MLPClassifier's parameters whose default skdnn changed (see _defaults.py
# and the docstring): 'auto' selects skdnn's tuned network.
CHANGED_DEFAULTS = {"hidden_layer_sizes": "auto", "alpha": "auto"}


@pytest.mark.parametrize("name", sorted(MLPClassifier().get_params()))
def test_default_equals_mlpclassifier_default_or_is_a_documented_change(name):
    ours = DNNClassifier().get_params()[name]
    assert ours == CHANGED_DEFAULTS.get(name, MLPClassifier().get_params()[name])


def _trained_settings(clf, X, y):
    clf.fit(X, y)
    module = clf.module_
    return {
        "hidden_layer_sizes": tuple(W.shape[1] for W in module.weights[:-1]),
        "dropout": module.dropout,
        "input_scaling": module.input_scaling,
    }


@pytest.mark.filterwarnings(CONVERGENCE)
def test_defaults_train_the_tuned_network_and_mlp_params_mlps_network():
    X, y = _binary()
    tuned = _trained_settings(DNNClassifier(max_iter=2, random_state=0), X, y)
    assert tuned == {
        "hidden_layer_sizes": (128, 128, 128),
        "dropout": (0.15,) * 3,
        "input_scaling": 24.0,
    }
    mlp = DNNClassifier(**MLPClassifier().get_params()).set_params(max_iter=2)
    assert _trained_settings(mlp, X, y) == {
        "hidden_layer_sizes": (100,),
        "dropout": (0.0,),
        "input_scaling": 0.0,
    }
    # An architecture of the user's keeps MLPClassifier's meaning of the rest.
    own = DNNClassifier((128, 128, 128), max_iter=2, random_state=0)
    assert _trained_settings(own, X, y)["dropout"] == (0.0,) * 3
    # The tuned values were measured with Adam: the other solvers' 'auto' is
    # MLPClassifier's network.
    for solver in ("lbfgs", "sgd"):
        other = DNNClassifier(solver=solver, max_iter=2, random_state=0)
        assert _trained_settings(other, X, y) == {
            "hidden_layer_sizes": (100,),
            "dropout": (0.0,),
            "input_scaling": 0.0,
        }


@pytest.mark.parametrize(
    "params, alpha, batch",
    [({}, 1e-3, 64), ({"hidden_layer_sizes": (100,)}, 1e-4, 200)],
)
def test_auto_alpha_and_batch_size_follow_the_architecture(params, alpha, batch):
    clf = DNNClassifier(**params)
    assert resolved(clf, "alpha") == alpha
    size = resolved(clf, "batch_size")
    assert (200 if size == "auto" else size) == batch


def test_added_parameters_are_exactly_the_documented_ones():
    added = set(DNNClassifier().get_params()) - set(MLPClassifier().get_params())
    assert added == ADDED_PARAMS


# ------------------------------------------------------- no hidden layer


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "schedule",
    [
        dict(learning_rate="constant", learning_rate_init=0.05),
        dict(learning_rate="invscaling", learning_rate_init=0.1),
        dict(learning_rate="invscaling", learning_rate_init=0.1, momentum=0.5,
             nesterovs_momentum=False),
        # Plateaus of 2 epochs: the rate is divided by 5 several times.
        dict(learning_rate="adaptive", learning_rate_init=0.5, n_iter_no_change=2,
             tol=0.05),
    ],
)  # fmt: skip
def test_sgd_takes_mlpclassifiers_steps_from_the_same_weights(
    fit_from_the_same_weights, schedule
):
    # The same start, data order and batches: every epoch's loss and the
    # final weights are MLPClassifier's, learning-rate schedules and
    # momentum included (scikit-learn's velocity keeps each past step at its
    # own rate).
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 4))
    y = (X[:, 0] * X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    params = dict(
        hidden_layer_sizes=(7, 5), solver="sgd", shuffle=False, batch_size=40,
        max_iter=25, tol=0.0, n_iter_no_change=1000, random_state=0,
    )  # fmt: skip
    params.update(schedule)
    ours_only = dict(n_init=1)  # one network, as MLPClassifier trains
    ours, theirs = fit_from_the_same_weights(
        DNNClassifier(**params, **ours_only), MLPClassifier(**params), X, y
    )
    assert ours.n_iter_ == theirs.n_iter_ == len(theirs.loss_curve_)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-12)
    np.testing.assert_allclose(
        ours._optimizer.param_groups[0]["lr"], theirs._optimizer.learning_rate
    )
    ours_params = ours.coefs_ + ours.intercepts_
    for a, b in zip(ours_params, theirs.coefs_ + theirs.intercepts_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_no_hidden_layer_is_a_linear_model():
    X, y = _multiclass()
    clf = DNNClassifier(hidden_layer_sizes=(), solver="lbfgs", random_state=0)
    clf.fit(X, y)
    assert clf.n_layers_ == 2
    assert len(clf.coefs_) == 1
    assert clf.coefs_[0].shape == (X.shape[1], 3)
    assert [b.shape for b in clf.intercepts_] == [(3,)]


@pytest.mark.parametrize("hidden_layer_sizes, solves_xor", [((), False), ((8,), True)])
def test_only_a_hidden_layer_separates_xor(hidden_layer_sizes, solves_xor):
    X, y = _xor(200, seed=0)
    X_test, y_test = _xor(200, seed=1)
    clf = DNNClassifier(
        hidden_layer_sizes=hidden_layer_sizes,
        solver="lbfgs",
        max_iter=500,
        random_state=0,
    ).fit(X, y)
    accuracy = clf.score(X_test, y_test)
    if solves_xor:
        assert accuracy > 0.9
    else:
        assert accuracy < 0.75


# ------------------------------------------------------------------ dropout


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "dropout, expected",
    [
        (0.25, (0.25, 0.25)),
        ((0.1, 0.3), (0.1, 0.3)),
        ([0.0, 0.5], (0.0, 0.5)),
        (np.array([0.2, 0.4]), (0.2, 0.4)),
    ],
)
def test_dropout_gives_one_rate_per_hidden_layer(dropout, expected):
    X, y = _binary()
    clf = DNNClassifier(
        hidden_layer_sizes=(6, 5), dropout=dropout, max_iter=3, random_state=0
    ).fit(X, y)
    assert clf.module_.dropout == pytest.approx(expected)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_predictions_with_dropout_are_deterministic():
    X, y = _multiclass()
    clf = DNNClassifier(
        hidden_layer_sizes=(16, 16), dropout=0.5, max_iter=20, random_state=0
    ).fit(X, y)
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(clf.predict(X), clf.predict(X))


@pytest.mark.filterwarnings(CONVERGENCE)
def test_dropout_changes_the_fitted_weights():
    X, y = _multiclass()
    kwargs = dict(hidden_layer_sizes=(8, 6), max_iter=10, random_state=0)
    plain = DNNClassifier(dropout=0.0, **kwargs).fit(X, y)
    dropped = DNNClassifier(dropout=0.3, **kwargs).fit(X, y)
    assert not np.allclose(plain.coefs_[0], dropped.coefs_[0])


# ------------------------------------------------------------------ targets


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "kind, out_activation, n_outputs",
    [
        ("binary", "logistic", 1),
        ("multiclass", "softmax", 3),
        ("multilabel", "logistic", 3),
    ],
)
def test_output_layer_follows_the_target_type(kind, out_activation, n_outputs):
    X, y = _target(kind)
    clf = DNNClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    clf.fit(X, y)
    assert clf.out_activation_ == out_activation
    assert clf.n_outputs_ == n_outputs
    assert clf.coefs_[-1].shape[1] == n_outputs


@pytest.mark.filterwarnings(CONVERGENCE)
def test_multilabel_predicts_an_indicator_matrix():
    X, Y = _multilabel(n_labels=4)
    clf = DNNClassifier(hidden_layer_sizes=(16,), max_iter=50, random_state=0)
    clf.fit(X, Y)
    predicted = clf.predict(X)
    proba = clf.predict_proba(X)
    assert predicted.shape == Y.shape
    assert proba.shape == (X.shape[0], 4)
    assert set(np.unique(predicted)) <= {0, 1}
    np.testing.assert_array_equal(predicted, (proba > 0.5).astype(int))
    assert np.all((proba >= 0) & (proba <= 1))


@pytest.mark.parametrize(
    "labels",
    [
        np.array(["spam", "egg", "ham"]),
        np.array(["spam", "egg", "ham"], dtype=object),
        np.array(["yes", "no"]),
        np.array(["yes", "no"], dtype=object),
        np.array([10, -3, 7]),
    ],
    ids=["str3", "object3", "str2", "object2", "int3"],
)
def test_labels_come_back_as_given(labels):
    X, codes = make_blobs(
        n_samples=90, centers=len(labels), cluster_std=0.5, random_state=0
    )
    y = labels[codes]
    clf = DNNClassifier(
        hidden_layer_sizes=(8,), solver="lbfgs", max_iter=200, random_state=0
    ).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, np.sort(labels))
    predicted = clf.predict(X)
    # Values, not dtype: validation turns object strings into numpy strings,
    # in MLPClassifier as here.
    assert set(predicted.tolist()) <= set(labels.tolist())
    assert accuracy_score(y, predicted) > 0.95


def test_string_labels_from_a_list_come_back_as_given():
    X, codes = make_blobs(n_samples=60, centers=2, cluster_std=0.5, random_state=0)
    y = [("cat", "dog")[c] for c in codes]
    clf = DNNClassifier(
        hidden_layer_sizes=(4,), solver="lbfgs", max_iter=200, random_state=0
    ).fit(X, y)
    assert clf.classes_.tolist() == ["cat", "dog"]
    assert clf.predict(X).tolist() == y


# ---------------------------------------------------- probability outputs


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_predict_proba_rows_sum_to_one(kind):
    X, y = _target(kind)
    clf = DNNClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0)
    proba = clf.fit(X, y).predict_proba(X)
    assert proba.shape == (X.shape[0], len(np.unique(y)))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_predict_is_the_most_probable_class(kind):
    X, codes = _target(kind)
    y = np.array(["a", "b", "c"])[codes]
    clf = DNNClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0)
    clf.fit(X, y)
    expected = clf.classes_[clf.predict_proba(X).argmax(axis=1)]
    np.testing.assert_array_equal(clf.predict(X), expected)


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_predict_log_proba_is_log_of_predict_proba(kind):
    X, y = _target(kind)
    clf = DNNClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0)
    clf.fit(X, y)
    np.testing.assert_allclose(
        clf.predict_log_proba(X), np.log(clf.predict_proba(X)), rtol=1e-6, atol=1e-10
    )


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("weighted", [False, True])
def test_score_is_accuracy(weighted):
    X, y = _multiclass()
    sample_weight = np.random.RandomState(0).uniform(0.1, 2.0, len(y))
    sample_weight = sample_weight if weighted else None
    # Few epochs, so that the accuracy is neither 0 nor 1.
    clf = DNNClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    clf.fit(X, y)
    predicted = clf.predict(X)
    expected = accuracy_score(y, predicted, sample_weight=sample_weight)
    assert 0 < expected < 1
    assert clf.score(X, y, sample_weight=sample_weight) == pytest.approx(expected)


# -------------------------------------------------------------------- input


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "dtype, torch_dtype",
    [
        (np.float32, torch.float32),
        (np.float64, torch.float64),
        (np.int64, torch.float64),
        (np.int32, torch.float64),
    ],
)
def test_computes_in_float32_for_float32_input_else_float64(dtype, torch_dtype):
    X, y = _multiclass()
    X = (X * 10).astype(dtype)
    clf = DNNClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    clf.fit(X, y)
    assert {p.dtype for p in clf.module_.parameters()} == {torch_dtype}
    expected = np.float32 if torch_dtype == torch.float32 else np.float64
    assert clf.predict_proba(X).dtype == expected
    assert clf.coefs_[0].dtype == expected


@pytest.mark.filterwarnings(CONVERGENCE)
def test_python_lists_give_the_same_model_as_arrays():
    X, y = _multiclass()
    kwargs = dict(hidden_layer_sizes=(5,), max_iter=5, random_state=0)
    from_arrays = DNNClassifier(**kwargs).fit(X, y)
    from_lists = DNNClassifier(**kwargs).fit(X.tolist(), y.tolist())
    np.testing.assert_allclose(
        from_lists.predict_proba(X.tolist()), from_arrays.predict_proba(X)
    )


def _frame(X):
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])


@pytest.mark.filterwarnings(CONVERGENCE)
def test_dataframe_sets_feature_names_in():
    X, y = _multiclass()
    clf = DNNClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    clf.fit(_frame(X), y)
    np.testing.assert_array_equal(clf.feature_names_in_, ["f0", "f1", "f2", "f3"])
    assert clf.n_features_in_ == 4


@pytest.mark.filterwarnings(CONVERGENCE)
def test_array_input_sets_no_feature_names_in():
    X, y = _multiclass()
    clf = DNNClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    assert not hasattr(clf.fit(X, y), "feature_names_in_")


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "change",
    [
        lambda df: df[df.columns[::-1]],
        lambda df: df.rename(columns={"f0": "renamed"}),
    ],
    ids=["reordered", "renamed"],
)
def test_predict_rejects_other_feature_names(change):
    X, y = _multiclass()
    clf = DNNClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    clf.fit(_frame(X), y)
    with pytest.raises(ValueError, match="feature names should match"):
        clf.predict(change(_frame(X)))


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "fit_on_frame, message",
    [
        (True, "X does not have valid feature names"),
        (False, "X has feature names, but DNNClassifier was fitted without"),
    ],
)
def test_predict_warns_when_feature_names_appear_or_vanish(fit_on_frame, message):
    X, y = _multiclass()
    clf = DNNClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0)
    clf.fit(_frame(X) if fit_on_frame else X, y)
    with pytest.warns(UserWarning, match=message):
        clf.predict(X if fit_on_frame else _frame(X))


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize(
    "sparse_format", [scipy.sparse.csr_matrix, scipy.sparse.csc_matrix]
)
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_input_gives_the_dense_model(sparse_format, solver):
    X, y = _multiclass(n_features=8)
    X[np.abs(X) < 0.8] = 0.0
    kwargs = dict(hidden_layer_sizes=(6,), solver=solver, max_iter=20, random_state=0)
    dense = DNNClassifier(**kwargs).fit(X, y)
    sparse = DNNClassifier(**kwargs).fit(sparse_format(X), y)
    np.testing.assert_array_equal(sparse.predict(sparse_format(X)), dense.predict(X))
    np.testing.assert_allclose(
        sparse.predict_proba(sparse_format(X)), dense.predict_proba(X), atol=1e-12
    )


def _read_only_memmaps(tmp_path, how, X, y):
    if how == "joblib":
        path = tmp_path / "data.joblib"
        joblib.dump((X, y), path)
        return joblib.load(path, mmap_mode="r")
    arrays = []
    for name, array in (("X", X), ("y", y)):
        path = tmp_path / f"{name}.npy"
        writable = np.lib.format.open_memmap(
            path, mode="w+", dtype=array.dtype, shape=array.shape
        )
        writable[...] = array
        writable.flush()
        del writable
        arrays.append(np.load(path, mmap_mode="r"))
    return arrays


@pytest.mark.parametrize("how", ["joblib", "open_memmap"])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_read_only_memmap_fits_and_predicts_without_warnings(tmp_path, how, solver):
    X, y = _multiclass()
    X_map, y_map = _read_only_memmaps(tmp_path, how, X, y)
    assert isinstance(X_map, np.memmap) and not X_map.flags.writeable
    clf = DNNClassifier(
        hidden_layer_sizes=(5,), solver=solver, max_iter=5, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Five epochs do not converge; that warning is not what is tested here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_map, y_map)
        predicted = clf.predict(X_map)
        proba = clf.predict_proba(X_map)
    reference = DNNClassifier(**clf.get_params())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference.fit(X, y)
    np.testing.assert_array_equal(predicted, reference.predict(X))
    np.testing.assert_allclose(proba, reference.predict_proba(X))


# -------------------------------------------------------- fitted attributes


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_has_every_mlpclassifier_fitted_attribute(solver):
    X, y = _multiclass()
    clf = DNNClassifier(
        hidden_layer_sizes=(5,), solver=solver, max_iter=5, random_state=0
    )
    clf.fit(_frame(X), y)
    missing = [
        a for a in MLP_FITTED_ATTRIBUTES + ("feature_names_in_",) if not hasattr(clf, a)
    ]
    assert missing == []
    assert clf.validation_scores_ is None
    assert clf.best_validation_score_ is None
    assert clf.n_features_in_ == X.shape[1]
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])


@pytest.mark.filterwarnings(CONVERGENCE)
def test_module_is_the_trained_torch_module_on_device():
    X, y = _multiclass()
    clf = DNNClassifier(
        hidden_layer_sizes=(5,), max_iter=3, device="cpu", random_state=0
    )
    clf.fit(X, y)
    assert isinstance(clf.module_, torch.nn.Module)
    assert clf.device_ == torch.device("cpu")
    assert {p.device for p in clf.module_.parameters()} == {torch.device("cpu")}


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_module_forward_gives_the_logits_of_predict_proba(kind):
    X, y = _target(kind)
    clf = DNNClassifier(
        hidden_layer_sizes=(6, 4), dropout=0.2, max_iter=10, random_state=0
    )
    clf.fit(X, y)
    # As fitted, without calling eval(): the module must not drop units.
    with torch.no_grad():
        logits = clf.module_(torch.as_tensor(X))
    proba = clf.predict_proba(X)
    if kind == "multiclass":
        np.testing.assert_allclose(torch.softmax(logits, dim=1).numpy(), proba)
    elif kind == "binary":
        np.testing.assert_allclose(torch.sigmoid(logits).numpy()[:, 0], proba[:, 1])
    else:
        np.testing.assert_allclose(torch.sigmoid(logits).numpy(), proba)


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("hidden_layer_sizes", [(), (7,), (7, 3)])
def test_coefs_are_fan_in_by_fan_out(hidden_layer_sizes):
    X, y = _multiclass(n_features=5)
    clf = DNNClassifier(
        hidden_layer_sizes=hidden_layer_sizes, max_iter=3, random_state=0
    ).fit(X, y)
    units = [5, *hidden_layer_sizes, 3]
    layer_shapes = list(zip(units[:-1], units[1:], strict=True))
    assert [c.shape for c in clf.coefs_] == layer_shapes
    assert [b.shape for b in clf.intercepts_] == [(u,) for u in units[1:]]
    assert clf.n_layers_ == len(units)


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("max_iter", [1, 6])
def test_loss_curve_and_t_count_the_epochs(solver, max_iter):
    X, y = _multiclass()
    clf = DNNClassifier(
        hidden_layer_sizes=(5,),
        solver=solver,
        max_iter=max_iter,
        n_iter_no_change=100,
        random_state=0,
    ).fit(X, y)
    assert clf.n_iter_ == max_iter
    assert len(clf.loss_curve_) == clf.n_iter_
    assert clf.t_ == clf.n_iter_ * X.shape[0]
    assert clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_)


# ------------------------------------------------------------- partial_fit


def test_partial_fit_requires_classes_on_first_call():
    X, y = _multiclass()
    clf = DNNClassifier(hidden_layer_sizes=(4,), random_state=0)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y)


def test_partial_fit_learns_over_several_calls():
    X, y = make_blobs(n_samples=150, centers=3, cluster_std=0.6, random_state=0)
    clf = DNNClassifier(
        hidden_layer_sizes=(8,), learning_rate_init=0.01, batch_size=16, random_state=0
    )
    clf.partial_fit(X[:50], y[:50], classes=[0, 1, 2])
    first_score = clf.score(X, y)
    for _ in range(10):
        clf.partial_fit(X, y)
    assert clf.score(X, y) > max(0.95, first_score)
    assert clf.t_ == 50 + 10 * 150
    assert len(clf.loss_curve_) == 11


@pytest.mark.parametrize("classes", [["ant", "bee"], ["ant", "bee", "cat"]])
@pytest.mark.parametrize("on_first_call", [False, True])
def test_partial_fit_rejects_a_class_not_in_classes(classes, on_first_call):
    labels = np.array([*classes, "wasp"])
    X, codes = make_blobs(n_samples=60, centers=len(labels), random_state=0)
    y = labels[codes]
    known = y != "wasp"
    clf = DNNClassifier(hidden_layer_sizes=(4,), random_state=0)
    if not on_first_call:
        clf.partial_fit(X[known], y[known], classes=classes)
    with pytest.raises(ValueError, match="wasp"):
        clf.partial_fit(X, y, classes=classes if on_first_call else None)


def test_partial_fit_is_not_available_for_lbfgs():
    clf = DNNClassifier(solver="lbfgs")
    assert not hasattr(clf, "partial_fit")
    with pytest.raises(AttributeError) as excinfo:
        clf.partial_fit  # noqa: B018
    # scikit-learn's available_if raises its own message "from" the check's,
    # as for MLPClassifier; the traceback shows both.
    assert "lbfgs" in _error_chain_text(excinfo.value)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_partial_fit_is_available_for_stochastic_solvers(solver):
    assert hasattr(DNNClassifier(solver=solver), "partial_fit")


def test_partial_fit_rejects_early_stopping():
    X, y = _multiclass()
    clf = DNNClassifier(hidden_layer_sizes=(4,), early_stopping=True, random_state=0)
    with pytest.raises(ValueError, match="early_stopping"):
        clf.partial_fit(X, y, classes=[0, 1, 2])


# -------------------------------------------------------------- warm_start


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_warm_start_continues_from_the_fitted_weights(solver):
    X, y = _multiclass()
    kwargs = dict(
        hidden_layer_sizes=(8,),
        solver=solver,
        max_iter=1,
        learning_rate_init=0.05,
        random_state=0,
    )
    warm = DNNClassifier(warm_start=True, **kwargs).fit(X, y)
    first_loss = warm.loss_
    warm.fit(X, y)
    assert warm.loss_ < first_loss
    # Without warm_start, the same second fit starts over from the same weights.
    cold = DNNClassifier(warm_start=False, **kwargs).fit(X, y)
    cold.fit(X, y)
    assert cold.loss_ == first_loss


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_warm_start_rejects_other_hidden_layer_sizes(solver):
    X, y = _multiclass()
    clf = DNNClassifier(
        hidden_layer_sizes=(8,),
        solver=solver,
        warm_start=True,
        max_iter=2,
        random_state=0,
    ).fit(X, y)
    clf.set_params(hidden_layer_sizes=(9,))
    with pytest.raises(ValueError, match=re.escape("hidden_layer_sizes")):
        clf.fit(X, y)


# ----------------------------------------------------------- early_stopping


def _early_stopping_problem():
    return make_classification(
        n_samples=200, n_features=6, n_informative=4, flip_y=0.1, random_state=0
    )


EARLY_STOPPING = dict(
    hidden_layer_sizes=(16,),
    early_stopping=True,
    n_iter_no_change=5,
    learning_rate_init=0.003,
    validation_fraction=0.2,
    random_state=4,
)


def test_early_stopping_records_one_validation_entry_per_epoch():
    X, y = _early_stopping_problem()
    clf = DNNClassifier(max_iter=200, **EARLY_STOPPING).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_
    assert len(clf.validation_loss_curve_) == clf.n_iter_
    assert len(clf.loss_curve_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert clf.best_loss_ is None


def test_early_stopping_stops_before_max_iter():
    X, y = make_blobs(n_samples=200, centers=2, cluster_std=0.5, random_state=0)
    clf = DNNClassifier(
        hidden_layer_sizes=(8,),
        early_stopping=True,
        n_iter_no_change=3,
        learning_rate_init=0.01,
        max_iter=200,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(X, y)
    assert clf.n_iter_ < 50
    assert clf.best_validation_score_ == 1.0


@pytest.mark.filterwarnings(CONVERGENCE)
def test_early_stopping_keeps_the_best_epochs_weights():
    X, y = _early_stopping_problem()
    stopped = DNNClassifier(max_iter=200, **EARLY_STOPPING).fit(X, y)
    best_epoch = int(np.argmax(stopped.validation_scores_)) + 1
    assert best_epoch < stopped.n_iter_
    # Training is bit-identical for a random_state, so a fit that ends at the
    # best epoch holds the weights that the stopped fit must have restored.
    until_best = DNNClassifier(max_iter=best_epoch, **EARLY_STOPPING).fit(X, y)
    assert until_best.validation_scores_ == stopped.validation_scores_[:best_epoch]
    for kept, best in zip(
        stopped.coefs_ + stopped.intercepts_,
        until_best.coefs_ + until_best.intercepts_,
        strict=True,
    ):
        np.testing.assert_array_equal(kept, best)


# ------------------------------------------------------------------ verbose


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_verbose_prints_one_line_per_epoch(capsys, early_stopping, solver):
    X, y = _multiclass()
    clf = DNNClassifier(
        hidden_layer_sizes=(4,),
        solver=solver,
        early_stopping=early_stopping,
        n_iter_no_change=100,
        max_iter=4,
        verbose=True,
        random_state=0,
        n_init=1,  # one network (test_restarts.py prints several)
    )
    clf.fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == clf.n_iter_ == 4
    assert all("loss" in line for line in lines)
    if early_stopping:
        assert all("validation score" in line for line in lines)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_verbose_lbfgs_prints_one_line_per_iteration(capsys):
    X, y = _multiclass()
    clf = DNNClassifier(
        hidden_layer_sizes=(4,),
        solver="lbfgs",
        max_iter=7,
        verbose=True,
        random_state=0,
    ).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == clf.n_iter_ == 7
    assert all("loss" in line for line in lines)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_not_verbose_prints_nothing(capsys):
    X, y = _multiclass()
    DNNClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, y)
    assert capsys.readouterr().out == ""


# ------------------------------------------------------------- class_weight


def _imbalanced():
    return make_classification(
        n_samples=200,
        n_features=4,
        n_informative=2,
        n_redundant=0,
        weights=[0.9, 0.1],
        class_sep=0.5,
        flip_y=0,
        random_state=0,
    )


@pytest.mark.parametrize("class_weight", ["balanced", {0: 1.0, 1: 10.0}])
def test_class_weight_raises_minority_recall(class_weight):
    X, y = _imbalanced()
    kwargs = dict(hidden_layer_sizes=(), solver="lbfgs", random_state=0)
    plain = DNNClassifier(**kwargs).fit(X, y)
    weighted = DNNClassifier(class_weight=class_weight, **kwargs).fit(X, y)
    plain_recall = recall_score(y, plain.predict(X))
    assert recall_score(y, weighted.predict(X)) >= plain_recall + 0.3


@pytest.mark.filterwarnings(CONVERGENCE)
def test_class_weight_dict_equals_sample_weight():
    X, y = _imbalanced()
    kwargs = dict(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=50, random_state=0)
    by_class = DNNClassifier(class_weight={0: 1.0, 1: 3.0}, **kwargs).fit(X, y)
    by_sample = DNNClassifier(**kwargs).fit(
        X, y, sample_weight=np.where(y == 1, 3.0, 1.0)
    )
    np.testing.assert_allclose(by_class.predict_proba(X), by_sample.predict_proba(X))


@pytest.mark.parametrize("class_weight", ["balanced", {0: 1.0, 1: 2.0}])
def test_class_weight_rejects_multilabel_targets(class_weight):
    X, Y = _multilabel()
    clf = DNNClassifier(hidden_layer_sizes=(4,), class_weight=class_weight, max_iter=2)
    with pytest.raises(ValueError, match="multilabel"):
        clf.fit(X, Y)


def test_class_weight_rejects_an_unknown_class():
    X, codes = _binary()
    y = np.array(["cat", "dog"])[codes]
    clf = DNNClassifier(class_weight={"cat": 1.0, "zebra": 2.0}, max_iter=2)
    with pytest.raises(ValueError, match="zebra"):
        clf.fit(X, y)


def test_class_weight_balanced_rejected_by_partial_fit():
    X, y = _imbalanced()
    clf = DNNClassifier(
        hidden_layer_sizes=(4,), class_weight="balanced", random_state=0
    )
    with pytest.raises(ValueError, match="balanced"):
        clf.partial_fit(X, y, classes=[0, 1])


# ------------------------------------------------------------ sample_weight


def test_zero_sample_weight_equals_dropping_the_samples():
    X, y = _multiclass(n_samples=80, random_state=1)
    dropped = np.random.RandomState(0).rand(len(y)) < 0.3
    sample_weight = np.where(dropped, 0.0, 1.0)
    kwargs = dict(
        hidden_layer_sizes=(6,),
        solver="lbfgs",
        alpha=1e-2,
        max_iter=200,
        random_state=0,
    )
    weighted = DNNClassifier(**kwargs).fit(X, y, sample_weight=sample_weight)
    subset = DNNClassifier(**kwargs).fit(X[~dropped], y[~dropped])
    np.testing.assert_allclose(
        weighted.predict_proba(X), subset.predict_proba(X), atol=1e-8
    )


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_negative_sample_weight_raises(solver):
    X, y = _multiclass()
    sample_weight = np.ones(len(y))
    sample_weight[3] = -1.0
    clf = DNNClassifier(hidden_layer_sizes=(4,), solver=solver, max_iter=2)
    with pytest.raises(ValueError, match="(?i)negative"):
        clf.fit(X, y, sample_weight=sample_weight)


# ---------------------------------------------------------- learning rates


@pytest.mark.filterwarnings(CONVERGENCE)
@pytest.mark.parametrize("power_t", [0.25, 0.5])
@pytest.mark.parametrize("max_iter", [1, 3])
def test_invscaling_sets_the_learning_rate_after_each_epoch(power_t, max_iter):
    X, y = _multiclass()
    clf = DNNClassifier(
        hidden_layer_sizes=(6,),
        solver="sgd",
        learning_rate="invscaling",
        learning_rate_init=0.1,
        power_t=power_t,
        max_iter=max_iter,
        random_state=0,
    ).fit(X, y)
    assert clf.t_ == max_iter * X.shape[0]
    expected = 0.1 / (clf.t_ + 1) ** power_t
    assert clf._optimizer.param_groups[0]["lr"] == pytest.approx(expected)


@pytest.mark.filterwarnings(CONVERGENCE)
def test_constant_learning_rate_stays_constant():
    X, y = _multiclass()
    clf = DNNClassifier(
        hidden_layer_sizes=(6,),
        solver="sgd",
        learning_rate_init=0.1,
        max_iter=3,
        random_state=0,
    ).fit(X, y)
    assert clf._optimizer.param_groups[0]["lr"] == 0.1


def test_adaptive_divides_the_learning_rate_by_five_on_a_plateau():
    X, y = _multiclass()
    # A tolerance no epoch can meet makes every epoch a non-improvement.
    clf = DNNClassifier(
        hidden_layer_sizes=(6,),
        solver="sgd",
        learning_rate="adaptive",
        learning_rate_init=0.1,
        tol=0.5,
        n_iter_no_change=2,
        max_iter=100,
        random_state=0,
    ).fit(X, y)
    rate = clf._optimizer.param_groups[0]["lr"]
    divisions = round(np.log(0.1 / rate) / np.log(5))
    assert divisions >= 1
    assert rate == pytest.approx(0.1 / 5**divisions)
    # It stops once the rate has fallen below 1e-6, well before max_iter.
    assert rate < 1e-6
    assert clf.n_iter_ < 100
    assert np.isfinite(clf.loss_)
