"""Searches that train their DNNClassifier or DNNRegressor fits in batches."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import copy
import time
import warnings
from collections import defaultdict

import numpy as np
import scipy.sparse
from sklearn.base import clone, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV as _SklearnGridSearchCV
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
from sklearn.model_selection import RandomizedSearchCV as _SklearnRandomizedSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils import indexable

from .._base import BaseDNN
from .._batched import (
    batchable_reason,
    group_key,
    prepare_fit,
    train_batched,
)

# scikit-learn's private search machinery: cv_results_ are built by the same
# code as scikit-learn's, so they have the same keys.
from .._compat import (
    _fit_and_score,
    _fit_context,
    _insert_error_scores,
    _num_samples,
    _routing_enabled,
    _safe_indexing,
    _score,
    _warn_or_raise_about_fit_failures,
    check_refit_for_multimetric,
    format_search_results,
    scorers_by_name,
    search_scorers,
    select_best_index,
)
from .._defaults import resolved


def _final_step(estimator):
    """``(name, model)``: the skdnn model (a :class:`~skdnn._base.BaseDNN`,
    classifier or regressor) that is the estimator or its Pipeline's last
    step, with that step's name (None for a bare model); (None, None) for
    any other estimator."""
    if isinstance(estimator, BaseDNN):
        return None, estimator
    if isinstance(estimator, Pipeline) and isinstance(estimator.steps[-1][1], BaseDNN):
        return estimator.steps[-1][0], estimator.steps[-1][1]
    return None, None


def _fit_prefix(base_estimator, X_fit, y_fit):
    """A Pipeline's earlier steps, fitted: ``(transformer, Z, seconds)``.

    ``Z`` is what the model trains on; for a bare model, ``X_fit`` itself,
    with no transformer and no time.
    """
    # A Pipeline's earlier steps, fitted once per fold and once on the
    # whole data for the refits: the grid does not vary them.
    name, _ = _final_step(base_estimator)
    if name is None:
        return None, X_fit, 0.0
    transformer = clone(base_estimator[:-1])
    start = time.time()
    Z = transformer.fit_transform(X_fit, y_fit)
    return transformer, Z, time.time() - start


def _assembled(base_estimator, candidate, transformer, model):
    """A candidate as the search's estimator, around its trained model.

    The model itself, or for a Pipeline, the model behind the fitted earlier
    steps (``transformer``), with the candidate's parameters set.
    """
    name, _ = _final_step(base_estimator)
    if name is None:
        return model
    estimator = clone(base_estimator).set_params(**clone(candidate, safe=False))
    estimator.steps = [*transformer.steps, (name, model)]
    return estimator


def _folds(base_estimator, X, y, splits):
    """Each split's data, with the Pipeline's earlier steps fitted on it.

    Returns
    -------
    list of tuple
        ``(X_train, y_train, X_test, y_test, transformer, Z_train, seconds)``
        per split, the last three :func:`_fit_prefix`'s on the training rows.
    """
    folds = []
    for train, test in splits:
        X_train, y_train = _take(X, train), _take(y, train)
        X_test, y_test = _take(X, test), _take(y, test)
        prefix = _fit_prefix(base_estimator, X_train, y_train)
        folds.append((X_train, y_train, X_test, y_test, *prefix))
    return folds


def _prepare_models(base_estimator, candidates, keys, data, fits):
    """Prepare candidate c's model on fold f, for each key ``(c, f)`` of keys.

    ``data[f]`` is ``(Z, y, seconds)``: the rows the model trains on,
    their targets and the time the Pipeline's earlier steps took on them;
    fold None is the whole data, for the candidates' refits. ``fits`` is
    ``(models, prepared, fit_times, groups)``: each prepared model, what
    :func:`prepare_fit` returned for it and its time join the first three
    by key, and the key joins its :func:`group_key`'s list in ``groups``.

    Returns
    -------
    failed : list of tuple
        The keys whose preparation raised; they join none of ``fits``.
    """
    name, _ = _final_step(base_estimator)
    prefix = "" if name is None else f"{name}__"
    models, prepared, fit_times, groups = fits
    # Each fold's data is checked once, for its first candidate; each other
    # candidate checks what its own parameters require of the targets
    # (BaseDNN._check_target_values: a Poisson loss's y >= 0).
    checked = {}
    failed = []
    for c, f in keys:
        Z, y_fit, prefix_time = data[f]
        settings = {k[len(prefix) :]: v for k, v in candidates[c].items()}
        model = clone(base_estimator if name is None else base_estimator[-1])
        model.set_params(**clone(settings, safe=False))
        start = time.time()
        try:
            like = checked.get(f)
            prepared[c, f] = prepare_fit(model, Z, y_fit, like=like)
        except Exception:
            failed.append((c, f))
            continue
        checked.setdefault(f, prepared[c, f])
        fit_times[c, f] = time.time() - start + prefix_time
        models[c, f] = model
        groups[group_key(model)].append((c, f))
    return failed


class _BatchedSearch:
    """What skdnn's searches add to scikit-learn's: the batched ``fit``.

    A subclass names its candidates with ``_candidates(random_state)``.
    """

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, **params):
        """Run fit with all sets of parameters.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training vectors.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target.
        **params : dict of str -> object
            Parameters passed to the estimator's ``fit``, the scorer and the
            splitter; any of them makes the search sequential.

        Returns
        -------
        self : object
            Instance of fitted estimator.
        """
        # A copy of the random state for the check, so that drawing the
        # candidates to check consumes nothing: the search then draws the
        # same candidates as scikit-learn's.
        reason = self._batch_refusal(
            X, y, params, self._candidates(copy.deepcopy(self._random_state()))
        )
        if reason is not None:
            self.batched_ = False
            if self.verbose:
                print(f"Not batching the search: {reason}. Fitting sequentially.")
            return super().fit(X, y, **params)
        self.batched_ = True
        return self._fit_batched(X, y, self._candidates(self._random_state()))

    def _random_state(self):
        return getattr(self, "random_state", None)

    def _batch_refusal(self, X, y, params, candidates):
        """Why the search cannot be batched, or None when it can."""
        name, final = _final_step(self.estimator)
        if final is None:
            return (
                "the estimator is not a DNNClassifier or a DNNRegressor, or a "
                "Pipeline ending in one"
            )
        if params:
            return f"fit parameters {sorted(params)} are given"
        if _routing_enabled():
            return "metadata routing is enabled"
        if y is None or scipy.sparse.issparse(X):
            return "X is sparse or y is missing"
        if getattr(self, "_skl_callbacks", None):
            return "callbacks are set"
        prefix = "" if name is None else f"{name}__"
        for candidate in candidates:
            others = [k for k in candidate if not k.startswith(prefix)]
            if name is not None and others:
                return f"the grid varies {others}, not only the last step's"
            settings = {k[len(prefix) :]: v for k, v in candidate.items()}
            if any("__" in k for k in settings):
                return f"the grid sets nested parameters {sorted(settings)}"
            reason = batchable_reason(clone(final).set_params(**settings))
            if reason is not None:
                return f"a candidate has {reason}"
        return None

    def _fit_batched(self, X, y, candidates):
        """The batched ``fit``: evaluate every candidate, then pick and refit."""
        scorers, refit_metric = search_scorers(self)
        X, y = indexable(X, y)
        splits = self._batched_splits(X, y)
        base_estimator = clone(self.estimator)
        if self.verbose > 0:
            print(
                f"Fitting {self.n_splits_} folds for each of {len(candidates)} "
                f"candidates, totalling {len(candidates) * self.n_splits_} fits, "
                "in batches"
            )
        out, refits = self._evaluate_batched(
            base_estimator, X, y, candidates, splits, scorers
        )
        if len(out) < 1:
            raise ValueError(
                "No fits were performed. Was the CV iterator empty? Were there "
                "no candidates?"
            )
        _warn_or_raise_about_fit_failures(out, self.error_score)
        if callable(self.scoring):
            _insert_error_scores(out, self.error_score)
        results = format_search_results(self, candidates, self.n_splits_, out)
        first_test_score = out[0]["test_scores"]
        self.multimetric_ = isinstance(first_test_score, dict)
        if callable(self.scoring) and self.multimetric_:
            check_refit_for_multimetric(self, first_test_score)
            refit_metric = self.refit

        if self.refit or not self.multimetric_:
            self._select_best(results, refit_metric)
        if self.refit:
            trained = refits.get(self.best_index_)
            if trained is None:
                self.best_estimator_ = clone(base_estimator).set_params(
                    **clone(self.best_params_, safe=False)
                )
                start = time.time()
                self.best_estimator_.fit(X, y)
                self.refit_time_ = time.time() - start
            else:
                # Trained ahead, in the cross-validation's batch.
                self.best_estimator_, self.refit_time_, message = trained
                if message is not None:
                    warnings.warn(message, ConvergenceWarning, stacklevel=3)
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        self.scorer_ = scorers_by_name(scorers)
        self.cv_results_ = results
        return self

    def _batched_splits(self, X, y):
        """The cross-validation's (train, test) splits; sets ``n_splits_``."""
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        self.n_splits_ = cv.get_n_splits(X, y)
        splits = list(cv.split(X, y))
        if len(splits) != self.n_splits_:
            raise ValueError(
                "cv.split and cv.get_n_splits return inconsistent results. "
                f"Expected {self.n_splits_} splits, got {len(splits)}"
            )
        return splits

    def _select_best(self, results, refit_metric):
        """Set ``best_index_``, ``best_score_`` and ``best_params_``."""
        self.best_index_ = select_best_index(self, refit_metric, results)
        if not callable(self.refit):
            self.best_score_ = results[f"mean_test_{refit_metric}"][self.best_index_]
        self.best_params_ = results["params"][self.best_index_]

    def _evaluate_batched(self, base_estimator, X, y, candidates, splits, scorers):
        """The per-(candidate, fold) dicts that ``_fit_and_score`` would return.

        Also the refits trained ahead (see :meth:`_refits_ahead`), by
        candidate: ``(estimator, seconds, message)``, the message of the
        ConvergenceWarning its fit would have issued, or None.
        """
        folds = _folds(base_estimator, X, y, splits)
        pairs = [(c, f) for c in range(len(candidates)) for f in range(len(splits))]
        fits = ({}, {}, {}, defaultdict(list))
        models, prepared, fit_times, groups = fits
        data = {}
        for f, (_, y_train, _, _, _, Z_train, prefix_time) in enumerate(folds):
            data[f] = (Z_train, y_train, prefix_time)
        # Those whose preparation raised: _fit_and_score fits them again and
        # handles the error as scikit-learn does.
        sequential = _prepare_models(base_estimator, candidates, pairs, data, fits)
        ahead = self._refits_ahead(groups, models, prepared, len(y))
        refit_transformer = None
        if ahead:
            # A refit whose preparation raises is refitted with fit, which
            # raises as scikit-learn's does.
            refit_transformer, Z, prefix_time = _fit_prefix(base_estimator, X, y)
            keys, data = [(c, None) for c in ahead], {None: (Z, y, prefix_time)}
            _prepare_models(base_estimator, candidates, keys, data, fits)
        diverged, trained_ahead = self._train_groups(
            groups, models, prepared, fit_times
        )
        sequential = set(sequential + diverged)
        refits = {}
        for c, (seconds, message) in trained_ahead.items():
            model = models[c, None]
            estimator = _assembled(
                base_estimator, candidates[c], refit_transformer, model
            )
            refits[c] = (estimator, seconds, message)

        out = []
        for c, f in pairs:
            if (c, f) in sequential:
                estimator = clone(base_estimator)
                out.append(
                    self._sequential_result(
                        estimator, X, y, candidates[c], splits[f], scorers
                    )
                )
                continue
            estimator = _assembled(
                base_estimator, candidates[c], folds[f][4], models[c, f]
            )
            out.append(
                self._batched_result(estimator, folds[f], fit_times[c, f], scorers)
            )
        return out, refits

    def _train_groups(self, groups, models, prepared, fit_times):
        """Train each group of models in one batch.

        Each model's fit time gains its share of its batch's time.

        Returns
        -------
        diverged : list of tuple
            The keys of the models whose loss or weights became infinite or
            NaN.
        trained_ahead : dict
            By candidate, for its refit trained ahead that did not diverge:
            ``(seconds, message)``, its fit time and the message of the
            ConvergenceWarning its fit would have issued, or None.
        """
        diverged, trained_ahead = [], {}
        for keys in groups.values():
            start = time.time()
            deferred = {i: None for i, (_, f) in enumerate(keys) if f is None}
            bad_models = train_batched(
                [models[k] for k in keys], [prepared[k] for k in keys],
                deferred=deferred,
            )  # fmt: skip
            share = (time.time() - start) / len(keys)
            for i, (k, bad) in enumerate(zip(keys, bad_models, strict=True)):
                fit_times[k] += share
                if bad:
                    diverged.append(k)
                elif k[1] is None:
                    trained_ahead[k[0]] = (fit_times[k], deferred[i])
            if self.verbose > 0:
                ahead_here = len(deferred)
                # Each fit's restarts (n_init) are networks of the batch too.
                n_networks = sum(1 + len(prepared[k].restarts) for k in keys)
                print(
                    f"Trained {len(keys)} fits ({n_networks} networks) in one batch"
                    + (f", {ahead_here} of them refits ahead" if ahead_here else "")
                    + "."
                )
        return diverged, trained_ahead

    def _sequential_result(self, estimator, X, y, candidate, split, scorers):
        """``_fit_and_score``'s dict for a fit that was not trained in a batch."""
        train, test = split
        return _fit_and_score(
            estimator,
            X,
            y,
            scorer=scorers,
            train=train,
            test=test,
            verbose=self.verbose,
            parameters=candidate,
            fit_params=None,
            score_params=None,
            return_train_score=self.return_train_score,
            return_n_test_samples=True,
            return_times=True,
            error_score=self.error_score,
        )

    def _batched_result(self, estimator, fold, fit_time, scorers):
        """The dict ``_fit_and_score`` would return for a batched fit.

        ``fold`` is the fold's data as :func:`_folds` gives it.
        """
        X_train, y_train, X_test, y_test = fold[:4]
        start = time.time()
        result = {
            "fit_error": None,
            "test_scores": _score(
                estimator, X_test, y_test, scorers, {}, self.error_score
            ),
        }
        if self.return_train_score:
            result["train_scores"] = _score(
                estimator, X_train, y_train, scorers, {}, self.error_score
            )
        result["n_test_samples"] = _num_samples(X_test)
        result["fit_time"] = fit_time
        result["score_time"] = time.time() - start
        return result

    def _refits_ahead(self, groups, models, prepared, n_samples):
        """The candidates whose refit is cheaper trained ahead, in their batch.

        A batch's step costs a fixed overhead (Python, dispatch, the
        optimizer's call) plus a share per network, which for a small
        network is a few hundredths of the overhead. So adding every
        candidate's refit to the cross-validation's batch can cost less than
        one refit on its own: on W4 (30 fits of a 2-6-4-1 network), 0.06 s
        against 0.16 s. Per batch, in units of a step's overhead, with each
        network's share ``r`` estimated from its multiply-adds per step:
        ahead costs ``S_full (1 + r (M + C))``, after costs ``S_cv (1 + r M)
        + S_full (1 + r K)``, for ``M`` networks of the fits over ``S_cv``
        steps, ``C`` of the candidates' refits, ``K`` of one refit (a fit
        trains ``n_init`` networks) and ``S_full`` steps over the whole data.
        """
        if not self.refit:
            return []

        def batch(model, n_rows):
            size = resolved(model, "batch_size")
            return min(200 if size == "auto" else size, n_rows)

        ahead = []
        for keys in groups.values():
            candidates = sorted({c for c, _ in keys})
            S_cv = max(-(-len(prepared[k].X) // batch(models[k], len(prepared[k].X)))
                       for k in keys)  # fmt: skip
            S_full = max(-(-n_samples // batch(models[k], n_samples)) for k in keys)
            rows = max(batch(models[k], n_samples) for k in keys)
            weights = sum(W.numel() for W in models[keys[0]].module_.weights)
            # About 1 us a network and 5 multiply-adds a nanosecond, against
            # about 60 us of overhead a step, measured on the CPU.
            r = (1.0 + 3 * rows * weights / 5000) / 60.0
            # Networks, a fit's restarts (n_init) included; a refit has as
            # many as its candidate's fits.
            networks = {c: 1 + len(prepared[c, f].restarts) for c, f in keys}
            M, C = sum(networks[c] for c, _ in keys), sum(networks.values())
            after = S_cv * (1 + r * M) + S_full * (1 + r * max(networks.values()))
            if max(S_cv, S_full) * (1 + r * (M + C)) < after:
                ahead.extend(candidates)
        return ahead


class GridSearchCV(_BatchedSearch, _SklearnGridSearchCV):
    """Exhaustive grid search, training DNNClassifier or DNNRegressor fits in batches.

    A drop-in for :class:`sklearn.model_selection.GridSearchCV`, with the
    same parameters and fitted attributes. When ``estimator`` is a
    :class:`~skdnn.DNNClassifier` or a :class:`~skdnn.DNNRegressor`, or a
    Pipeline ending in one, and the grid varies only that model's
    parameters, the fits of every candidate on every fold are trained
    together: networks of one architecture (same ``hidden_layer_sizes``,
    ``activation``, number of outputs (classes, labels or target columns),
    output activation (a regressor's ``loss`` sets it), dtype and device)
    are stacked into one batched computation, whatever their ``dropout``,
    ``alpha``, ``learning_rate_init``, ``class_weight`` (a classifier's),
    ``batch_size``, ``max_iter``, ``tol``, ``n_iter_no_change`` or
    ``random_state``. Anything else is scikit-learn's sequential search,
    announced when ``verbose`` is set.

    Parameters
    ----------
    estimator : estimator object
        As for :class:`sklearn.model_selection.GridSearchCV`.
    param_grid : dict or list of dictionaries
        As for :class:`sklearn.model_selection.GridSearchCV`.
    scoring : str, callable, list, tuple or dict, default=None
        As for :class:`sklearn.model_selection.GridSearchCV`: None scores
        with the estimator's ``score``, accuracy for a classifier and R^2
        for a regressor.
    n_jobs : int, default=None
        Used by the sequential search and the sequential fits only.
    refit : bool, str, or callable, default=True
        As for :class:`sklearn.model_selection.GridSearchCV`. Where it costs
        less, every candidate's refit is trained ahead, in the
        cross-validation's batch (see Notes); otherwise the refit is the
        estimator's ``fit``.
    cv : int, cross-validation generator or an iterable, default=None
        As for :class:`sklearn.model_selection.GridSearchCV`.
    verbose : int, default=0
        As for :class:`sklearn.model_selection.GridSearchCV`; also says
        whether the search is batched, and if not, why.
    pre_dispatch : int or str, default='2*n_jobs'
        As for :class:`sklearn.model_selection.GridSearchCV`.
    error_score : 'raise' or numeric, default=np.nan
        As for :class:`sklearn.model_selection.GridSearchCV`.
    return_train_score : bool, default=False
        As for :class:`sklearn.model_selection.GridSearchCV`.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        The keys and layout of scikit-learn's. In a batched search,
        ``mean_fit_time`` and ``std_fit_time`` are each fit's share of its
        batch's time.
    best_estimator_ : estimator
        Refitted on the whole data, when ``refit`` is set.
    best_score_ : float
        Mean cross-validated score of the best candidate.
    best_params_ : dict
        Parameter setting of the best candidate.
    best_index_ : int
        Index of the best candidate in ``cv_results_``.
    scorer_ : function or dict
        Scorer(s) used on the held-out data.
    n_splits_ : int
        Number of cross-validation splits.
    refit_time_ : float
        Seconds to refit the best model, when ``refit`` is set; for a
        refit trained ahead, its share of its batch's time.
    multimetric_ : bool
        Whether several metrics were scored.
    batched_ : bool
        Whether the candidates were trained in batches.

    See Also
    --------
    sklearn.model_selection.GridSearchCV : The sequential search.

    Notes
    -----
    Which results equal a sequential search's:

    - Folds, candidates, the order of ``cv_results_`` and the scorers are
      scikit-learn's own.
    - Each batched model is trained on exactly its fold's rows, in the order
      its own ``random_state`` shuffles them, from the initial weights that
      its ``fit`` draws, with the same batch boundaries, dropout masks
      (drawn from the model's own torch seed, in the blocks ``fit`` draws
      them in), loss (cross-entropy, squared error or Poisson deviance), L2
      penalty, class weights (a classifier's), Adam update and stopping
      rule (training loss, ``tol``, ``n_iter_no_change``). Its weights,
      loss curve, ``n_iter_`` and Adam state therefore equal the sequential
      fit's up to floating-point rounding: the products are summed in
      another order (numpy's matmul per model on the CPU, torch's bmm
      elsewhere, against torch's mm). The tests find them within about
      1e-12 in float64, with and without dropout, for classifiers and for
      regressors (1-D and multi-output targets, either loss). So do the
      scores, except where rounding moves a class prediction across the
      decision boundary or an epoch's loss across ``tol``; in float32 the
      differences are larger (rounding at 1e-7 grows over many steps), and
      the results agree statistically.
    - ``best_estimator_`` is refitted on the whole data, as scikit-learn's
      is, and equals its ``fit`` up to rounding like the batched fits. For
      small networks, whose steps cost mostly a fixed overhead, every
      candidate's refit is trained ahead in the cross-validation's batch,
      and the best one kept: on W4 that cost 0.06 s, against 0.16 s for the
      refit alone. Only the kept refit's ConvergenceWarning is issued. Where
      the networks' own work dominates, the best candidate is refitted with
      ``fit`` (which itself trains with the same trainer and epoch loop, as
      a batch of one). The batched models keep their optimizer's state, so
      ``partial_fit`` on them continues it as after ``fit``.
    - Earlier steps of a Pipeline are fitted once per fold, not once per
      candidate and fold: the same result for deterministic transformers.
      Likewise each fold's data is checked once, for its first candidate;
      the others take the checked data and the label encoding, which depend
      on the data alone. A regressor's check also depends on its ``loss``
      (Poisson refuses negative targets): the data is checked once per
      ``loss`` in the grid.
    - Models that start from the same random state (an int
      ``random_state``, folds of equal size) draw the same shuffles and
      dropout bits; each such draw is made once and shared, which changes
      no model's numbers.
    - A model whose loss or weights become infinite or NaN is fitted again
      with ``fit``, which handles divergence, so its results are the
      sequential ones.

    - Adam and SGD (with its momentum, Nesterov's and its learning-rate
      schedules) are batched, with or without ``early_stopping``: each
      model draws its own validation split, as its ``fit`` does, and stops
      on its own validation score (accuracy, or a regressor's R^2) with its
      own best weights.

    Not batched (the sequential search runs instead): ``solver='lbfgs'``,
    ``verbose`` or ``warm_start`` on the model, grids over earlier
    Pipeline steps, sparse input, fit parameters (``sample_weight``,
    ``groups``), metadata routing, and any fold whose preparation fails
    (then that fit alone is sequential).

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from skdnn import DNNClassifier
    >>> from skdnn.model_selection import GridSearchCV
    >>> X, y = make_moons(n_samples=200, noise=0.2, random_state=0)
    >>> clf = DNNClassifier((8,), batch_size=32, max_iter=20,
    ...                     learning_rate_init=0.01, random_state=0, device="cpu")
    >>> search = GridSearchCV(clf, {"dropout": [0.0, 0.2], "alpha": [1e-4, 1e-2]})
    >>> search.fit(X, y).batched_
    True
    >>> sorted(search.best_params_)
    ['alpha', 'dropout']
    >>> search.cv_results_["mean_test_score"].shape
    (4,)

    A regressor, scored by its R^2, is searched the same way:

    >>> from sklearn.datasets import make_friedman1
    >>> from skdnn import DNNRegressor
    >>> X, y = make_friedman1(n_samples=200, noise=0.5, random_state=0)
    >>> reg = DNNRegressor(hidden_layer_sizes=(8,), max_iter=20, dropout=0.0,
    ...                    learning_rate_init=0.01, random_state=0, device="cpu")
    >>> search = GridSearchCV(reg, {"alpha": [1e-4, 1e-2]}, cv=3)
    >>> search.fit(X, y).batched_
    True
    >>> search.best_estimator_.predict(X[:2]).shape
    (2,)
    """

    def _candidates(self, random_state):
        return list(ParameterGrid(self.param_grid))


class RandomizedSearchCV(_BatchedSearch, _SklearnRandomizedSearchCV):
    """Randomized search, training DNNClassifier or DNNRegressor fits in batches.

    A drop-in for :class:`sklearn.model_selection.RandomizedSearchCV`: it
    draws the same ``n_iter`` candidates as scikit-learn's for the same
    ``random_state``, and trains them on every fold in batches exactly as
    :class:`GridSearchCV` does, under the same conditions (see its Notes).
    Continuous distributions suit batching: every sampled ``dropout``,
    ``alpha`` or ``learning_rate_init`` joins the same batch.

    Parameters
    ----------
    estimator : estimator object
        As for :class:`sklearn.model_selection.RandomizedSearchCV`.
    param_distributions : dict or list of dicts
        As for :class:`sklearn.model_selection.RandomizedSearchCV`.
    n_iter : int, default=10
        Number of candidates drawn.
    scoring : str, callable, list, tuple or dict, default=None
        As for :class:`sklearn.model_selection.RandomizedSearchCV`: None
        scores with the estimator's ``score``, accuracy for a classifier and
        R^2 for a regressor.
    n_jobs : int, default=None
        Used by the sequential search and the sequential fits only.
    refit : bool, str, or callable, default=True
        As for :class:`sklearn.model_selection.RandomizedSearchCV`, and
        trained ahead where that costs less, as for :class:`GridSearchCV`.
    cv : int, cross-validation generator or an iterable, default=None
        As for :class:`sklearn.model_selection.RandomizedSearchCV`.
    verbose : int, default=0
        Also says whether the search is batched, and if not, why.
    pre_dispatch : int or str, default='2*n_jobs'
        As for :class:`sklearn.model_selection.RandomizedSearchCV`.
    random_state : int, RandomState instance or None, default=None
        Draws the candidates, as in scikit-learn's search.
    error_score : 'raise' or numeric, default=np.nan
        As for :class:`sklearn.model_selection.RandomizedSearchCV`.
    return_train_score : bool, default=False
        As for :class:`sklearn.model_selection.RandomizedSearchCV`.

    Attributes
    ----------
    cv_results_ : dict of numpy (masked) ndarrays
        The keys and layout of scikit-learn's.
    best_estimator_ : estimator
        Refitted on the whole data, when ``refit`` is set.
    best_score_ : float
        Mean cross-validated score of the best candidate.
    best_params_ : dict
        Parameter setting of the best candidate.
    best_index_ : int
        Index of the best candidate in ``cv_results_``.
    scorer_ : function or dict
        Scorer(s) used on the held-out data.
    n_splits_ : int
        Number of cross-validation splits.
    refit_time_ : float
        Seconds to refit the best model, when ``refit`` is set; for a
        refit trained ahead, its share of its batch's time.
    multimetric_ : bool
        Whether several metrics were scored.
    batched_ : bool
        Whether the candidates were trained in batches.

    See Also
    --------
    GridSearchCV : The same, over a grid.
    sklearn.model_selection.RandomizedSearchCV : The sequential search.

    Examples
    --------
    >>> from scipy.stats import uniform
    >>> from sklearn.datasets import make_moons
    >>> from skdnn import DNNClassifier
    >>> from skdnn.model_selection import RandomizedSearchCV
    >>> X, y = make_moons(n_samples=200, noise=0.2, random_state=0)
    >>> clf = DNNClassifier((8,), batch_size=32, max_iter=20,
    ...                     learning_rate_init=0.01, random_state=0, device="cpu")
    >>> search = RandomizedSearchCV(clf, {"dropout": uniform(0, 0.5)}, n_iter=4,
    ...                             random_state=0)
    >>> search.fit(X, y).batched_
    True
    >>> len(search.cv_results_["params"])
    4
    """

    def _candidates(self, random_state):
        return list(
            ParameterSampler(
                self.param_distributions, self.n_iter, random_state=random_state
            )
        )


def _take(data, rows):
    """Rows of an array, DataFrame or list, as scikit-learn's CV takes them."""
    return _safe_indexing(data, np.asarray(rows))
