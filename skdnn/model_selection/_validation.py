"""Cross-validation and curves that train their skdnn fits in batches."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral, Real

import numpy as np
import sklearn.model_selection as _sklearn
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring, get_scorer_names
from sklearn.model_selection import check_cv
from sklearn.utils import check_random_state, indexable

# scikit-learn's private validation helpers: the batched functions aggregate
# the fits' results with scikit-learn's own code, so they return the same.
from .._compat import (
    HasMethods,
    StrOptions,
    _aggregate_score_dicts,
    _check_method_params,
    _insert_error_scores,
    _normalize_score_results,
    _translate_train_sizes,
    _warn_or_raise_about_fit_failures,
    validate_params,
)
from ._batch import BatchEvaluation, data_refusal

# scikit-learn's default training sizes: five, from a tenth to the whole fold.
_TRAIN_SIZES = np.linspace(0.1, 1.0, 5)
_TRAIN_SIZES.flags.writeable = False


# The constraints of scikit-learn's functions, checked before any work as
# scikit-learn checks them (its own validate_params, on the same values).
_SCORER = [StrOptions(set(get_scorer_names())), callable, None]
_COMMON = {
    "estimator": [HasMethods("fit")],
    "X": ["array-like", "sparse matrix"],
    "y": ["array-like", None],
    "groups": ["array-like", None],
    "cv": ["cv_object"],
    "n_jobs": [Integral, None],
    "verbose": ["verbose"],
    "params": [dict, None],
    "pre_dispatch": [Integral, str],
    "error_score": [StrOptions({"raise"}), Real],
}


def _refused(estimator, X, y, params, verbose, name):
    """Why ``name`` cannot batch ``estimator``'s fits (said when verbose), or
    None; every refusal runs scikit-learn's function instead."""
    reason = data_refusal(estimator, X, y, params)
    if reason is not None and verbose:
        print(f"Not batching {name}: {reason}. Fitting sequentially.")
    return reason


def _evaluate(estimator, X, y, candidates, splits, pairs, scorers, params,
              **settings):  # fmt: skip
    """Each pair's ``_fit_and_score`` dict, trained in batches, with failed
    fits warned of (or raised) as scikit-learn's functions do."""
    evaluation = BatchEvaluation(scorers, **settings)
    out, _ = evaluation.evaluate(
        clone(estimator), X, y, candidates, splits, pairs,
        fit_params=_check_method_params(X, params=params or {}),
    )  # fmt: skip
    _warn_or_raise_about_fit_failures(out, evaluation.error_score)
    return out


@validate_params(
    {
        **_COMMON,
        "scoring": [*_SCORER[:-1], list, tuple, dict, None],
        "return_train_score": ["boolean"],
        "return_estimator": ["boolean"],
        "return_indices": ["boolean"],
    },
    prefer_skip_nested_validation=False,  # the estimator is not validated yet
)
def cross_validate(
    estimator, X, y=None, *, groups=None, scoring=None, cv=None, n_jobs=None,
    verbose=0, params=None, pre_dispatch="2*n_jobs", return_train_score=False,
    return_estimator=False, return_indices=False, error_score=np.nan,
):  # fmt: skip
    """Evaluate metrics by cross-validation, training the folds in one batch.

    A drop-in for :func:`sklearn.model_selection.cross_validate`, with the
    same parameters and return value. When ``estimator`` is a
    :class:`~skdnn.DNNClassifier` or a :class:`~skdnn.DNNRegressor`, or a
    Pipeline ending in one, the folds' fits are trained together as
    :class:`~skdnn.model_selection.GridSearchCV` trains a candidate's (see
    its Notes): each equals its own ``fit`` up to rounding. Otherwise, and
    with fit parameters other than sample weights, metadata routing or
    sparse X off the CPU, this is scikit-learn's function (said when
    ``verbose`` is set).

    Parameters
    ----------
    estimator : estimator object
        The estimator to fit on each fold.
    X : array-like of shape (n_samples, n_features)
        The data.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        The target.
    groups : array-like of shape (n_samples,), default=None
        Group labels, for a group splitter.
    scoring : str, callable, list, tuple or dict, default=None
        As for :func:`sklearn.model_selection.cross_validate`.
    cv : int, cross-validation generator or an iterable, default=None
        As for :func:`sklearn.model_selection.cross_validate`.
    n_jobs : int, default=None
        Jobs for the chunks of the batches (at least ``n_jobs`` chunks, one
        job each, through joblib's backend) and the fits that are not
        batched.
    verbose : int, default=0
        Also says what is batched, and if not, why.
    params : dict, default=None
        Parameters of the estimator's ``fit``. The model's sample weights
        (``sample_weight``, a Pipeline's ``<last step>__sample_weight``) are
        batched, each fit given its training rows' part; any other makes
        this scikit-learn's function.
    pre_dispatch : int or str, default='2*n_jobs'
        As for :func:`sklearn.model_selection.cross_validate`.
    return_train_score : bool, default=False
        Whether to score the training rows too.
    return_estimator : bool, default=False
        Whether to return each fold's fitted estimator.
    return_indices : bool, default=False
        Whether to return each fold's train and test indices.
    error_score : 'raise' or numeric, default=np.nan
        Recorded for a fit that raises; 'raise' raises its error.

    Returns
    -------
    scores : dict of float arrays of shape (n_splits,)
        ``test_<metric>`` (``test_score`` for one), ``fit_time`` (a batched
        fit's share of its batch's time), ``score_time``, and as asked
        ``train_<metric>``, ``estimator`` and ``indices``.

    See Also
    --------
    cross_val_score : One metric's test scores.
    sklearn.model_selection.cross_validate : The sequential function.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from skdnn import DNNClassifier
    >>> from skdnn.model_selection import cross_validate
    >>> X, y = make_moons(n_samples=200, noise=0.2, random_state=0)
    >>> clf = DNNClassifier((8,), max_iter=20, random_state=0, device="cpu")
    >>> result = cross_validate(clf, X, y, cv=3, scoring=["accuracy", "f1"])
    >>> sorted(result)
    ['fit_time', 'score_time', 'test_accuracy', 'test_f1']
    >>> result["test_accuracy"].shape
    (3,)
    """
    X, y = indexable(X, y)
    if _refused(estimator, X, y, params, verbose, "cross_validate"):
        return _sklearn.cross_validate(
            estimator, X, y, groups=groups, scoring=scoring, cv=cv, n_jobs=n_jobs,
            verbose=verbose, params=params, pre_dispatch=pre_dispatch,
            return_train_score=return_train_score,
            return_estimator=return_estimator, return_indices=return_indices,
            error_score=error_score,
        )  # fmt: skip
    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    scorers = check_scoring(
        estimator, scoring=scoring, raise_exc=(error_score == "raise")
    )
    splits = list(cv.split(X, y, groups))
    out = _evaluate(
        estimator, X, y, [{}], splits, None, scorers, params,
        error_score=error_score,
        return_train_score=return_train_score, verbose=verbose, n_jobs=n_jobs,
        pre_dispatch=pre_dispatch, return_estimator=return_estimator,
    )  # fmt: skip
    if callable(scoring):
        _insert_error_scores(out, error_score)
    results = _aggregate_score_dicts(out)
    ret = {"fit_time": results["fit_time"], "score_time": results["score_time"]}
    if return_estimator:
        ret["estimator"] = results["estimator"]
    if return_indices:
        train, test = zip(*splits, strict=True)
        ret["indices"] = {"train": train, "test": test}
    test_scores = _normalize_score_results(results["test_scores"])
    if return_train_score:
        train_scores = _normalize_score_results(results["train_scores"])
    for name in test_scores:
        ret[f"test_{name}"] = test_scores[name]
        if return_train_score:
            ret[f"train_{name}"] = train_scores[name]
    return ret


@validate_params(
    {**_COMMON, "scoring": _SCORER, "pre_dispatch": [Integral, str, None]},
    prefer_skip_nested_validation=False,
)
def cross_val_score(
    estimator, X, y=None, *, groups=None, scoring=None, cv=None, n_jobs=None,
    verbose=0, params=None, pre_dispatch="2*n_jobs", error_score=np.nan,
):  # fmt: skip
    """Cross-validated scores of one metric, training the folds in one batch.

    A drop-in for :func:`sklearn.model_selection.cross_val_score`, batched
    as :func:`cross_validate` is.

    Parameters
    ----------
    estimator : estimator object
        The estimator to fit on each fold.
    X : array-like of shape (n_samples, n_features)
        The data.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        The target.
    groups : array-like of shape (n_samples,), default=None
        Group labels, for a group splitter.
    scoring : str or callable, default=None
        One metric; None scores with the estimator's ``score``.
    cv : int, cross-validation generator or an iterable, default=None
        As for :func:`sklearn.model_selection.cross_val_score`.
    n_jobs : int, default=None
        Jobs for the chunks of the batches (at least ``n_jobs`` chunks, one
        job each, through joblib's backend) and the fits that are not
        batched.
    verbose : int, default=0
        Also says what is batched, and if not, why.
    params : dict, default=None
        Parameters of the estimator's ``fit``. The model's sample weights
        (``sample_weight``, a Pipeline's ``<last step>__sample_weight``) are
        batched, each fit given its training rows' part; any other makes
        this scikit-learn's function.
    pre_dispatch : int or str, default='2*n_jobs'
        As for :func:`sklearn.model_selection.cross_val_score`.
    error_score : 'raise' or numeric, default=np.nan
        Recorded for a fit that raises; 'raise' raises its error.

    Returns
    -------
    scores : ndarray of float of shape (n_splits,)
        Each fold's test score.

    See Also
    --------
    cross_validate : Several metrics, times and estimators.

    Examples
    --------
    >>> from sklearn.datasets import make_friedman1
    >>> from skdnn import DNNRegressor
    >>> from skdnn.model_selection import cross_val_score
    >>> X, y = make_friedman1(n_samples=200, random_state=0)
    >>> reg = DNNRegressor(hidden_layer_sizes=(16,), max_iter=30, random_state=0,
    ...                    device="cpu")
    >>> cross_val_score(reg, X, y, cv=4).shape
    (4,)
    """
    scorer = check_scoring(estimator, scoring=scoring)
    result = cross_validate(
        estimator, X, y, groups=groups, scoring={"score": scorer}, cv=cv,
        n_jobs=n_jobs, verbose=verbose, params=params, pre_dispatch=pre_dispatch,
        error_score=error_score,
    )  # fmt: skip
    return result["test_score"]


@validate_params(
    {**_COMMON, "scoring": _SCORER, "param_name": [str], "param_range": ["array-like"]},
    prefer_skip_nested_validation=False,
)
def validation_curve(
    estimator, X, y, *, param_name, param_range, groups=None, cv=None,
    scoring=None, n_jobs=None, pre_dispatch="all", verbose=0,
    error_score=np.nan, params=None,
):  # fmt: skip
    """Training and test scores over one parameter's values, in one batch.

    A drop-in for :func:`sklearn.model_selection.validation_curve`: every
    value's fit on every fold is trained together, as
    :class:`~skdnn.model_selection.GridSearchCV` trains its candidates (see
    its Notes), so a curve over ``dropout``, ``alpha`` or
    ``learning_rate_init`` costs about one batch. Values that change the
    network's shape (``hidden_layer_sizes``) make one batch each. Draw it
    with :class:`sklearn.model_selection.ValidationCurveDisplay`'s
    constructor (see the example).

    Parameters
    ----------
    estimator : estimator object
        The estimator to fit for each value on each fold.
    X : array-like of shape (n_samples, n_features)
        The data.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        The target.
    param_name : str
        The parameter varied (``"step__name"`` for a Pipeline's step).
    param_range : array-like of shape (n_values,)
        Its values.
    groups : array-like of shape (n_samples,), default=None
        Group labels, for a group splitter.
    cv : int, cross-validation generator or an iterable, default=None
        As for :func:`sklearn.model_selection.validation_curve`.
    scoring : str or callable, default=None
        One metric; None scores with the estimator's ``score``.
    n_jobs : int, default=None
        Used by the fits that are not batched.
    pre_dispatch : int or str, default='all'
        As for :func:`sklearn.model_selection.validation_curve`.
    verbose : int, default=0
        Also says what is batched, and if not, why.
    error_score : 'raise' or numeric, default=np.nan
        Recorded for a fit that raises; 'raise' raises its error.
    params : dict, default=None
        Parameters of the estimator's ``fit``. The model's sample weights
        (``sample_weight``, a Pipeline's ``<last step>__sample_weight``) are
        batched, each fit given its training rows' part; any other makes
        this scikit-learn's function.

    Returns
    -------
    train_scores : ndarray of shape (n_values, n_splits)
        Scores on the training rows.
    test_scores : ndarray of shape (n_values, n_splits)
        Scores on the test rows.

    See Also
    --------
    learning_curve : Scores over the number of training rows.

    Examples
    --------
    >>> from numbers import Integral, Real

    import numpy as np
    >>> from sklearn.datasets import make_moons
    >>> from sklearn.model_selection import ValidationCurveDisplay
    >>> from skdnn import DNNClassifier
    >>> from skdnn.model_selection import validation_curve
    >>> X, y = make_moons(n_samples=200, noise=0.3, random_state=0)
    >>> clf = DNNClassifier((16,), max_iter=30, random_state=0, device="cpu")
    >>> rates = np.linspace(0.0, 0.5, 6)
    >>> train, test = validation_curve(clf, X, y, param_name="dropout",
    ...                                param_range=rates, cv=3)
    >>> test.shape
    (6, 3)
    >>> display = ValidationCurveDisplay(param_name="dropout", param_range=rates,
    ...                                  train_scores=train, test_scores=test,
    ...                                  score_name="Accuracy").plot()
    """
    X, y, groups = indexable(X, y, groups)
    if _refused(estimator, X, y, params, verbose, "validation_curve"):
        return _sklearn.validation_curve(
            estimator, X, y, param_name=param_name, param_range=param_range,
            groups=groups, cv=cv, scoring=scoring, n_jobs=n_jobs,
            pre_dispatch=pre_dispatch, verbose=verbose, error_score=error_score,
            params=params,
        )  # fmt: skip
    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    scorer = check_scoring(estimator, scoring=scoring)
    splits = list(cv.split(X, y, groups))
    candidates = [{param_name: value} for value in param_range]
    # scikit-learn's order, fold-major, which the reshape below undoes.
    pairs = [(c, f) for f in range(len(splits)) for c in range(len(candidates))]
    out = _evaluate(
        estimator, X, y, candidates, splits, pairs, scorer, params,
        error_score=error_score,
        return_train_score=True, verbose=verbose, n_jobs=n_jobs,
        pre_dispatch=pre_dispatch,
    )  # fmt: skip
    results = _aggregate_score_dicts(out)
    n_values = len(candidates)
    train_scores = results["train_scores"].reshape(-1, n_values).T
    test_scores = results["test_scores"].reshape(-1, n_values).T
    return train_scores, test_scores


@validate_params(
    {
        **_COMMON,
        "scoring": _SCORER,
        "train_sizes": ["array-like"],
        "exploit_incremental_learning": ["boolean"],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "return_times": ["boolean"],
    },
    prefer_skip_nested_validation=False,
)
def learning_curve(
    estimator, X, y, *, groups=None, train_sizes=_TRAIN_SIZES,
    cv=None, scoring=None, exploit_incremental_learning=False, n_jobs=None,
    pre_dispatch="all", verbose=0, shuffle=False, random_state=None,
    error_score=np.nan, return_times=False, params=None,
):  # fmt: skip
    """Training and test scores over the number of training rows, in one batch.

    A drop-in for :func:`sklearn.model_selection.learning_curve`: the fits
    of every training size on every fold are trained together, as
    :class:`~skdnn.model_selection.GridSearchCV` trains its candidates (see
    its Notes); each equals its own ``fit`` up to rounding. With
    ``exploit_incremental_learning`` (``partial_fit`` on growing rows) this
    is scikit-learn's function. Draw it with
    :class:`sklearn.model_selection.LearningCurveDisplay`'s constructor
    (see the example).

    Parameters
    ----------
    estimator : estimator object
        The estimator to fit on each size and fold.
    X : array-like of shape (n_samples, n_features)
        The data.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        The target.
    groups : array-like of shape (n_samples,), default=None
        Group labels, for a group splitter.
    train_sizes : array-like of shape (n_ticks,)
        Training sizes, as fractions of the largest training fold (floats
        in (0, 1]) or as numbers of rows (ints).
    cv : int, cross-validation generator or an iterable, default=None
        As for :func:`sklearn.model_selection.learning_curve`.
    scoring : str or callable, default=None
        One metric; None scores with the estimator's ``score``.
    exploit_incremental_learning : bool, default=False
        Whether to train by ``partial_fit`` (not batched).
    n_jobs : int, default=None
        Jobs for the chunks of the batches (at least ``n_jobs`` chunks, one
        job each, through joblib's backend) and the fits that are not
        batched.
    pre_dispatch : int or str, default='all'
        As for :func:`sklearn.model_selection.learning_curve`.
    verbose : int, default=0
        Also says what is batched, and if not, why.
    shuffle : bool, default=False
        Whether to shuffle each fold's training rows before taking a size.
    random_state : int, RandomState instance or None, default=None
        Draws the shuffles.
    error_score : 'raise' or numeric, default=np.nan
        Recorded for a fit that raises; 'raise' raises its error.
    return_times : bool, default=False
        Whether to return the fit and score times.
    params : dict, default=None
        Parameters of the estimator's ``fit``. The model's sample weights
        (``sample_weight``, a Pipeline's ``<last step>__sample_weight``) are
        batched, each fit given its training rows' part; any other makes
        this scikit-learn's function.

    Returns
    -------
    train_sizes_abs : ndarray of shape (n_unique_ticks,)
        The numbers of training rows.
    train_scores : ndarray of shape (n_ticks, n_splits)
        Scores on the training rows.
    test_scores : ndarray of shape (n_ticks, n_splits)
        Scores on the test rows.
    fit_times : ndarray of shape (n_ticks, n_splits)
        Seconds to fit (a batched fit's share of its batch), if asked.
    score_times : ndarray of shape (n_ticks, n_splits)
        Seconds to score, if asked.

    See Also
    --------
    validation_curve : Scores over a parameter's values.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from sklearn.model_selection import LearningCurveDisplay
    >>> from skdnn import DNNClassifier
    >>> from skdnn.model_selection import learning_curve
    >>> X, y = make_moons(n_samples=300, noise=0.3, random_state=0)
    >>> clf = DNNClassifier((16,), max_iter=30, random_state=0, device="cpu")
    >>> sizes, train, test = learning_curve(clf, X, y, cv=3,
    ...                                     train_sizes=[0.25, 0.5, 1.0])
    >>> sizes.tolist(), test.shape
    ([50, 100, 200], (3, 3))
    >>> display = LearningCurveDisplay(train_sizes=sizes, train_scores=train,
    ...                                test_scores=test,
    ...                                score_name="Accuracy").plot()
    """
    X, y, groups = indexable(X, y, groups)
    if exploit_incremental_learning or _refused(
        estimator, X, y, params, verbose, "learning_curve"
    ):
        return _sklearn.learning_curve(
            estimator, X, y, groups=groups, train_sizes=train_sizes, cv=cv,
            scoring=scoring, exploit_incremental_learning=exploit_incremental_learning,
            n_jobs=n_jobs, pre_dispatch=pre_dispatch, verbose=verbose,
            shuffle=shuffle, random_state=random_state, error_score=error_score,
            return_times=return_times, params=params,
        )  # fmt: skip
    cv = check_cv(cv, y, classifier=is_classifier(estimator))
    scorer = check_scoring(estimator, scoring=scoring)
    folds = list(cv.split(X, y, groups))
    sizes = _translate_train_sizes(train_sizes, len(folds[0][0]))
    if verbose > 0:
        print("[learning_curve] Training set sizes: " + str(sizes))
    if shuffle:
        rng = check_random_state(random_state)
        folds = [(rng.permutation(train), test) for train, test in folds]
    # scikit-learn's order, fold-major, which the reshape below undoes.
    splits = [(train[:n], test) for train, test in folds for n in sizes]
    out = _evaluate(
        estimator, X, y, [{}], splits, [(0, f) for f in range(len(splits))],
        scorer, params, error_score=error_score, return_train_score=True,
        verbose=verbose, n_jobs=n_jobs, pre_dispatch=pre_dispatch,
    )  # fmt: skip
    results = _aggregate_score_dicts(out)
    curves = [results["train_scores"], results["test_scores"]]
    if return_times:
        curves += [results["fit_time"], results["score_time"]]
    return (sizes, *(np.reshape(c, (-1, len(sizes))).T for c in curves))
