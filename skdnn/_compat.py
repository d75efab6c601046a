"""The private names of scikit-learn and torch that skdnn uses, in this one place.

A release of either that moves one of them then breaks this file alone.
torch's private operations are looked up without failing: where this torch
lacks one, the function that wraps it computes the same with public API
(``tests/test_compat.py`` runs fits both ways).
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import functools
import inspect
from collections import defaultdict

import torch
from sklearn.base import BaseEstimator, _fit_context
from sklearn.model_selection._validation import (
    _aggregate_score_dicts,
    _fit_and_score,
    _insert_error_scores,
    _normalize_score_results,
    _score,
    _translate_train_sizes,
    _warn_or_raise_about_fit_failures,
)
from sklearn.utils import _safe_indexing
from sklearn.utils._metadata_requests import _routing_enabled
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    Options,
    StrOptions,
    validate_params,
)
from sklearn.utils.multiclass import _check_partial_fit_first_call
from sklearn.utils.validation import (
    _check_feature_names,
    _check_method_params,
    _check_n_features,
    _check_sample_weight,
    _num_samples,
)


def _aten(name, overload):
    """torch's aten operation ``name.overload``, or None where torch lacks it."""
    try:
        return getattr(getattr(torch.ops.aten, name), overload)
    except (AttributeError, RuntimeError):
        return None


# The gradient kernels write into a given tensor in one operation; the public
# expressions take two or three.
_THRESHOLD_BACKWARD = _aten("threshold_backward", "grad_input")
_SIGMOID_BACKWARD = _aten("sigmoid_backward", "grad_input")
_TANH_BACKWARD = _aten("tanh_backward", "grad_input")
# torch.log_softmax(out=...) goes through Python argument parsing that
# the aten overload skips.
_LOG_SOFTMAX_OUT = _aten("_log_softmax", "out")
# The kernel that Adam(fused=True).step ends in, called directly (see
# skdnn._engine.optim._fused_adam).
_FUSED_ADAM = getattr(torch, "_fused_adam_", None)


def threshold_backward(grad, output, threshold, *, grad_input):
    """``grad`` where ``output > threshold``, else 0, into ``grad_input``."""
    if _THRESHOLD_BACKWARD is not None:
        return _THRESHOLD_BACKWARD(grad, output, threshold, grad_input=grad_input)
    zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
    return torch.where(output > threshold, grad, zero, out=grad_input)


def sigmoid_backward(grad, output, *, grad_input):
    """The logistic function's gradient from its ``output``, into ``grad_input``."""
    if _SIGMOID_BACKWARD is not None:
        return _SIGMOID_BACKWARD(grad, output, grad_input=grad_input)
    return torch.mul(grad, (1 - output) * output, out=grad_input)


def tanh_backward(grad, output, *, grad_input):
    """tanh's gradient from its ``output``, into ``grad_input``."""
    if _TANH_BACKWARD is not None:
        return _TANH_BACKWARD(grad, output, grad_input=grad_input)
    return torch.mul(grad, 1 - output * output, out=grad_input)


def log_softmax_into(logits, dim, *, out):
    """``log_softmax(logits, dim)`` written into ``out``."""
    if _LOG_SOFTMAX_OUT is not None:
        return _LOG_SOFTMAX_OUT(logits, dim, False, out=out)
    return torch.log_softmax(logits, dim, out=out)


def direct(function):
    """``function``'s private torch operation itself where torch has it, else
    ``function``, its public fallback: the same call either way.

    For ``threshold_backward``, ``sigmoid_backward`` and ``tanh_backward``.
    The engine looks each up once, when it makes a workspace, and its steps
    then call the operation with no Python frame of skdnn's in between: a
    small network's step makes about thirty calls of a few microseconds
    each, and such frames had made W4's epochs 6% slower than at the
    engine's start (ec39f41).
    """
    private = {
        threshold_backward: _THRESHOLD_BACKWARD,
        sigmoid_backward: _SIGMOID_BACKWARD,
        tanh_backward: _TANH_BACKWARD,
    }[function]
    return function if private is None else private


def has_fused_adam():
    """Whether torch's fused Adam kernel can be called directly."""
    return _FUSED_ADAM is not None


def fused_adam():
    """The kernel ``torch._fused_adam_`` itself, for the engine to call at
    every step; only where :func:`has_fused_adam`."""
    return _FUSED_ADAM


# BaseSearchCV's private methods: skdnn's batched searches call them on
# themselves to score, report and choose exactly as scikit-learn's do.


def search_scorers(search):
    """``BaseSearchCV._get_scorers``: the scorers and the refit metric."""
    return search._get_scorers()


def format_search_results(search, candidates, n_splits, out, more_results=None):
    """``BaseSearchCV._format_results``: ``cv_results_`` from the fits' dicts
    (and a successive-halving search's ``iter`` and ``n_resources``)."""
    more_results = defaultdict(list) if more_results is None else more_results
    return search._format_results(candidates, n_splits, out, more_results)


def check_search_input(search, X, y, split_params):
    """``BaseSearchCV._check_input_parameters``: what a search checks of its
    parameters against the data before fitting (successive halving's
    resources); nothing where scikit-learn has no such method."""
    check = getattr(search, "_check_input_parameters", None)
    if check is not None:
        check(X=X, y=y, split_params=split_params)


def routed_search_params(search, params):
    """``BaseSearchCV._get_routed_params_for_fit`` without metadata routing:
    a search's fit parameters for the estimator's ``fit``, the splitter's
    ``split`` (``groups``) and the scorers (the sample weights, where the
    scorers take them), as three dicts. Where scikit-learn has no such
    method: ``groups`` to the splitter, the rest to ``fit``, none to the
    scorers."""
    route = getattr(search, "_get_routed_params_for_fit", None)
    if route is None:
        params = dict(params)
        groups = params.pop("groups", None)
        return params, {"groups": groups}, {}
    routed = route(params)
    return (
        dict(routed.estimator.fit),
        dict(routed.splitter.split),
        dict(routed.scorer.score),
    )


class _NoCallbacks:
    """A callback context with no callbacks: what ``_run_search`` is given
    where scikit-learn has no callback contexts (before its callbacks API)."""

    def subcontext(self, *args, **kwargs):
        return self

    def call_on_fit_task_begin(self, *args, **kwargs):
        return self

    def call_on_fit_task_end(self, *args, **kwargs):
        return None


def root_callback_context(search, max_subtasks):
    """``CallbackSupportMixin._init_callback_context``: the context that a
    search's ``_run_search`` reports its tasks to (the batched searches
    refuse callbacks, so none is called); a :class:`_NoCallbacks` where
    scikit-learn has none."""
    init = getattr(search, "_init_callback_context", None)
    if init is None:
        return _NoCallbacks()
    return init(max_subtasks=max_subtasks)


def check_refit_for_multimetric(search, scores):
    """``BaseSearchCV._check_refit_for_multimetric``: a valid refit metric."""
    search._check_refit_for_multimetric(scores)


def select_best_index(search, refit_metric, results):
    """``BaseSearchCV._select_best_index``, for the search's ``refit``."""
    return search._select_best_index(search.refit, refit_metric, results)


def scorers_by_name(scorers):
    """What ``BaseSearchCV.fit`` keeps as ``scorer_``: a multimetric scorer's
    dict of scorers (its private ``_scorers``), or the single scorer."""
    return getattr(scorers, "_scorers", scorers)


def parameter_values(parameters):
    """A ParameterList's Parameters as a tuple, in index order.

    Through the list's own dict where it has one: iterating a ParameterList
    goes through nn.Module.__getattr__ per item, 16 us for six, as long as a
    small layer's arithmetic.
    """
    own = getattr(parameters, "_parameters", None)
    if isinstance(own, dict):
        return tuple(own.values())
    return tuple(parameters)


__all__ = [
    "HasMethods",
    "Interval",
    "Options",
    "StrOptions",
    "_aggregate_score_dicts",
    "_check_feature_names",
    "_check_method_params",
    "_check_n_features",
    "_check_partial_fit_first_call",
    "_check_sample_weight",
    "_fit_and_score",
    "_fit_context",
    "_insert_error_scores",
    "_normalize_score_results",
    "_num_samples",
    "_routing_enabled",
    "_safe_indexing",
    "_score",
    "_translate_train_sizes",
    "_warn_or_raise_about_fit_failures",
    "check_refit_for_multimetric",
    "check_search_input",
    "direct",
    "format_search_results",
    "fused_adam",
    "has_fused_adam",
    "log_softmax_into",
    "parameter_values",
    "root_callback_context",
    "routed_search_params",
    "scorers_by_name",
    "search_scorers",
    "select_best_index",
    "sigmoid_backward",
    "tanh_backward",
    "threshold_backward",
    "validate_params",
]


@functools.cache
def _param_names(cls):
    names = getattr(BaseEstimator, "_get_param_names", None)
    if names is not None:
        return tuple(names.__func__(cls))
    # Without scikit-learn's: its rule, the parameters of __init__ but self
    # and **kwargs, sorted.
    parameters = inspect.signature(cls.__init__).parameters.values()
    return tuple(
        sorted(
            p.name
            for p in parameters
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )
    )


def param_names(cls):
    """An estimator class's parameter names, as ``get_params`` lists them.

    scikit-learn's ``BaseEstimator._get_param_names``, read from the
    signature of ``__init__`` at every call (each ``clone`` calls it twice,
    each ``set_params`` and each fit's parameter validation once), is
    computed once per class here (a batched grid search's 36 clones of a
    DNNClassifier took 4 ms of it). Without it, the same rule is applied to
    ``__init__``'s signature.
    """
    return list(_param_names(cls))
