"""Searches that train their DNNClassifier or DNNRegressor fits in batches."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import copy
import time
import warnings
from collections import defaultdict

from sklearn.base import clone, is_classifier
from sklearn.exceptions import ConvergenceWarning

# scikit-learn's public switch for its successive-halving searches, which
# skdnn's extend.
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import GridSearchCV as _SklearnGridSearchCV
from sklearn.model_selection import HalvingGridSearchCV as _SklearnHalvingGridSearchCV
from sklearn.model_selection import (
    HalvingRandomSearchCV as _SklearnHalvingRandomSearchCV,
)
from sklearn.model_selection import ParameterGrid, ParameterSampler, check_cv
from sklearn.model_selection import RandomizedSearchCV as _SklearnRandomizedSearchCV
from sklearn.utils import indexable

# scikit-learn's private search machinery: cv_results_ are built by the same
# code as scikit-learn's, so they have the same keys.
from .._compat import (
    _check_method_params,
    _fit_context,
    _insert_error_scores,
    _num_samples,
    _warn_or_raise_about_fit_failures,
    check_refit_for_multimetric,
    check_search_input,
    format_search_results,
    root_callback_context,
    routed_search_params,
    scorers_by_name,
    search_scorers,
    select_best_index,
)
from ._batch import BatchEvaluation, candidate_refusal, data_refusal


class _BatchedSearch:
    """What skdnn's searches add to scikit-learn's: the batched ``fit``.

    A subclass names its candidates with ``_candidates(random_state)``, or
    None where they are drawn only as the search runs (successive halving:
    each rung's candidates are then checked as they come).
    """

    # Whether every candidate's refit may be trained ahead, in the
    # cross-validation's batch: not where the search's last candidates are
    # evaluated on fewer rows than the refit's (successive halving).
    _refits_may_go_ahead = True

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
            Parameters passed to the estimator's ``fit``: its sample weights
            (``sample_weight``, a Pipeline's ``<last step>__sample_weight``)
            are batched, as scikit-learn gives them, each fit its training
            rows' part; any other makes the search sequential.

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
        return self._fit_batched(X, y, params)

    def _random_state(self):
        return getattr(self, "random_state", None)

    def _candidates(self, random_state):
        return None

    def _batch_refusal(self, X, y, params, candidates):
        """Why the search cannot be batched, or None when it can."""
        # The splitter's groups are the search's, not the model's.
        fit_params = {k: v for k, v in params.items() if k != "groups"}
        reason = data_refusal(self.estimator, X, y, fit_params)
        if reason is None and getattr(self, "_skl_callbacks", None):
            reason = "callbacks are set"
        if reason is None and candidates:
            # Candidates that cannot be batched are fitted one by one, the
            # others batched; where none can be, the search is sequential.
            reasons = [candidate_refusal(self.estimator, c) for c in candidates]
            if all(reasons):
                reason = reasons[0]
        return reason

    def _fit_batched(self, X, y, params):
        """The batched ``fit``: evaluate every candidate, then pick and refit.

        scikit-learn's own ``fit``, step by step, with the candidates that
        the search's ``_run_search`` asks for evaluated in batches.
        """
        scorers, refit_metric = search_scorers(self)
        X, y = indexable(X, y)
        params = _check_method_params(X, params=params)
        fit_params, split_params, score_params = routed_search_params(self, params)
        self._n_samples_orig = _num_samples(X)
        self._checked_cv_orig = check_cv(
            self.cv, y, classifier=is_classifier(self.estimator)
        )
        check_search_input(self, X, y, split_params)
        self.n_splits_ = self._checked_cv_orig.get_n_splits(X, y, **split_params)
        base_estimator = clone(self.estimator)
        evaluation = BatchEvaluation(
            scorers, error_score=self.error_score,
            return_train_score=self.return_train_score, verbose=self.verbose,
            n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch,
        )  # fmt: skip
        all_candidates, all_out, all_more = [], [], defaultdict(list)
        results, refits = {}, {}

        def evaluate_candidates(candidate_params, cv=None, more_results=None,
                                callback_ctx=None):  # fmt: skip
            nonlocal results
            candidates = list(candidate_params)
            splits = self._batched_splits(
                cv or self._checked_cv_orig, X, y, split_params
            )
            if self.verbose > 0:
                print(
                    f"Fitting {self.n_splits_} folds for each of {len(candidates)} "
                    f"candidates, totalling {len(candidates) * self.n_splits_} "
                    "fits, in batches"
                )
            ahead = self.refit and self._refits_may_go_ahead and cv is None
            out, ahead = evaluation.evaluate(
                base_estimator, X, y, candidates, splits, refit=ahead,
                fit_params=fit_params, score_params=score_params,
            )  # fmt: skip
            if len(out) < 1:
                raise ValueError(
                    "No fits were performed. Was the CV iterator empty? Were "
                    "there no candidates?"
                )
            _warn_or_raise_about_fit_failures(out, self.error_score)
            if callable(self.scoring):
                _insert_error_scores(out, self.error_score)
            refits.update({len(all_candidates) + c: r for c, r in ahead.items()})
            all_candidates.extend(candidates)
            all_out.extend(out)
            for key, value in (more_results or {}).items():
                all_more[key].extend(value)
            results = format_search_results(
                self, all_candidates, self.n_splits_, all_out, all_more
            )
            return results

        root = root_callback_context(self, 1 + (self.refit is not False))
        self._run_search(evaluate_candidates, callback_ctx=root)
        self._select_best(results, refit_metric, all_out[0]["test_scores"])
        if self.refit:
            self._refit(base_estimator, X, y, fit_params, refits.get(self.best_index_))
        self.scorer_ = scorers_by_name(scorers)
        self.cv_results_ = results
        return self

    def _refit(self, base_estimator, X, y, params, trained):
        """Set ``best_estimator_`` and ``refit_time_``: the refit trained
        ahead, ``(estimator, seconds, message)``, or with ``fit`` if None."""
        if trained is None:
            self.best_estimator_ = clone(base_estimator).set_params(
                **clone(self.best_params_, safe=False)
            )
            start = time.time()
            self.best_estimator_.fit(X, y, **params)
            self.refit_time_ = time.time() - start
        else:
            # Trained ahead, in the cross-validation's batch.
            self.best_estimator_, self.refit_time_, message = trained
            if message is not None:
                warnings.warn(message, ConvergenceWarning, stacklevel=4)
        if hasattr(self.best_estimator_, "feature_names_in_"):
            self.feature_names_in_ = self.best_estimator_.feature_names_in_

    def _batched_splits(self, cv, X, y, split_params):
        """The cross-validation's (train, test) splits, ``n_splits_`` of them."""
        splits = list(cv.split(X, y, **split_params))
        if len(splits) != self.n_splits_:
            raise ValueError(
                "cv.split and cv.get_n_splits return inconsistent results. "
                f"Expected {self.n_splits_} splits, got {len(splits)}"
            )
        return splits

    def _select_best(self, results, refit_metric, first_test_score):
        """Set ``multimetric_``, and where there is a best candidate to pick,
        ``best_index_``, ``best_score_`` and ``best_params_``, as
        scikit-learn's search does (``first_test_score`` is the first fit's:
        a callable scorer tells only then whether it scores several
        metrics)."""
        self.multimetric_ = isinstance(first_test_score, dict)
        if callable(self.scoring) and self.multimetric_:
            check_refit_for_multimetric(self, first_test_score)
            refit_metric = self.refit
        if self.multimetric_ and not self.refit:
            return
        self.best_index_ = select_best_index(self, refit_metric, results)
        if not callable(self.refit):
            self.best_score_ = results[f"mean_test_{refit_metric}"][self.best_index_]
        self.best_params_ = results["params"][self.best_index_]


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
        Jobs for the sequential search, or in a batched one for the chunks of
        its batches (at least ``n_jobs`` chunks, one job each, through
        joblib's backend: processes, or a Dask cluster's workers) and the
        fits that are not batched.
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
      sequential ones. A batch that raises is fitted again model by model:
      a fit that raises on its own records ``error_score`` (or raises, with
      ``error_score='raise'``) with scikit-learn's FitFailedWarning, and the
      others' results are the sequential ones.
    - Memory: a batch whose training would take more than scikit-learn's
      ``working_memory`` (1024 MiB unless set with
      :func:`sklearn.set_config` or :func:`sklearn.config_context`) is
      trained in chunks of models that each take at most that, one after
      another, or as ``n_jobs`` jobs. Each fold's rows are stored once for
      all its models (without early stopping, which splits each model's
      own); each model's epoch of batches is its own.
    - With ``verbose >= 1`` each batch reports its progress (epochs done,
      networks still training, time elapsed and left) through a tqdm bar
      where tqdm is installed (``pip install "skdnn[progress]"``), plain
      lines otherwise.

    - Adam and SGD (with its momentum, Nesterov's and its learning-rate
      schedules) are batched, with or without ``early_stopping``: each
      model draws its own validation split, as its ``fit`` does, and stops
      on its own validation score (accuracy, or a regressor's R^2) with its
      own best weights.

    Not batched: candidates with ``solver='lbfgs'``, ``verbose`` or
    ``warm_start`` on the model, or that replace a Pipeline's model, are
    fitted one by one as scikit-learn's search fits them, the others
    batched (the whole search is sequential where no candidate can be
    batched); fit parameters other than the model's ``sample_weight``
    (which is batched), metadata routing and sparse input off the CPU make
    the search scikit-learn's; a fold whose preparation fails is fitted
    alone. Sparse input on the CPU is batched: each network multiplies its
    own CSR rows with scipy, within the batch.

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
        Jobs for the sequential search, or in a batched one for the chunks of
        its batches (at least ``n_jobs`` chunks, one job each, through
        joblib's backend: processes, or a Dask cluster's workers) and the
        fits that are not batched.
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


class HalvingGridSearchCV(_BatchedSearch, _SklearnHalvingGridSearchCV):
    """Successive halving over a grid, training each rung's fits in batches.

    A drop-in for :class:`sklearn.model_selection.HalvingGridSearchCV`
    (which needs no ``enable_halving_search_cv`` import here), with the
    same parameters and fitted attributes, and ``batched_``.

    Each rung's candidates are trained on every fold in batches, as
    :class:`GridSearchCV` trains its candidates (see its Notes): the rung's
    fits equal scikit-learn's up to rounding, so the same candidates go on
    to the next rung. A rung's candidates that cannot be batched (a
    ``solver='lbfgs'`` one, say) are fitted one by one, as scikit-learn's
    search fits them; the whole search is scikit-learn's where the data
    cannot be batched (fit parameters, metadata routing). The best candidate is
    refitted on the whole data with ``fit``.

    Parameters
    ----------
    estimator : estimator object
        A :class:`~skdnn.DNNClassifier` or :class:`~skdnn.DNNRegressor`,
        or a Pipeline ending in one, for the batched search.
    param_grid : dict or list of dictionaries
        As for :class:`sklearn.model_selection.HalvingGridSearchCV`.
    factor : int or float, default=3
        The proportion of candidates kept at each rung (1 / factor).
    resource : 'n_samples' or str, default='n_samples'
        What grows from rung to rung: the training rows, or a parameter of
        the estimator such as ``'max_iter'``.
    max_resources : int, default='auto'
        The most resources a candidate gets.
    min_resources : {'exhaust', 'smallest'} or int, default='exhaust'
        The resources of the first rung.
    aggressive_elimination : bool, default=False
        Whether to drop candidates at the first rung until few enough remain.
    cv : int, cross-validation generator or iterable, default=5
        Must split the same way each time it is asked.
    scoring : str or callable, default=None
        One metric; None scores with the estimator's ``score``.
    refit : bool, default=True
        Whether to refit the best candidate on the whole data.
    error_score : 'raise' or numeric, default=np.nan
        As for :class:`sklearn.model_selection.HalvingGridSearchCV`.
    return_train_score : bool, default=True
        Whether to score the training rows too.
    random_state : int, RandomState instance or None, default=None
        Draws the rows of the rungs (``resource='n_samples'``).
    n_jobs : int, default=None
        Jobs for the chunks of the batches (at least ``n_jobs`` chunks, one
        job each, through joblib's backend) and the fits that are not
        batched.
    verbose : int, default=0
        Also says what is batched, and if not, why.

    Attributes
    ----------
    n_resources_ : list of int
        Resources of each rung.
    n_candidates_ : list of int
        Candidates of each rung.
    n_remaining_candidates_ : int
        Candidates left after the last rung.
    max_resources_, min_resources_ : int
        The resources of the last and first rungs' bounds.
    n_possible_iterations_, n_required_iterations_, n_iterations_ : int
        As scikit-learn's search sets them.
    cv_results_ : dict of numpy (masked) ndarrays
        Every rung's candidates, with ``iter`` and ``n_resources``.
    best_estimator_ : estimator
        The best candidate of the last rung, refitted on the whole data.
    best_score_ : float
        Its mean cross-validated score in the last rung.
    best_params_ : dict
        Its parameters.
    best_index_ : int
        Its index in ``cv_results_``.
    scorer_ : function or dict
        Scorer used on the held-out data.
    n_splits_ : int
        Number of cross-validation splits.
    refit_time_ : float
        Seconds to refit the best model.
    multimetric_ : bool
        False: successive halving scores one metric.
    batched_ : bool
        Whether the search ran batched (only some rungs' candidates may
        have been fitted one by one, see above).

    See Also
    --------
    HalvingRandomSearchCV : The same, over sampled candidates.
    sklearn.model_selection.HalvingGridSearchCV : The sequential search.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from skdnn import DNNClassifier
    >>> from skdnn.model_selection import HalvingGridSearchCV
    >>> X, y = make_moons(n_samples=300, noise=0.2, random_state=0)
    >>> clf = DNNClassifier((8,), batch_size=32, max_iter=20,
    ...                     learning_rate_init=0.01, random_state=0, device="cpu")
    >>> grid = {"hidden_layer_sizes": [(4,), (8,), (16, 8)],
    ...         "dropout": [0.0, 0.2, 0.4]}
    >>> search = HalvingGridSearchCV(clf, grid, random_state=0).fit(X, y)
    >>> search.batched_, search.n_candidates_
    (True, [9, 3, 1])
    """

    _refits_may_go_ahead = False


class HalvingRandomSearchCV(_BatchedSearch, _SklearnHalvingRandomSearchCV):
    """Successive halving over sampled candidates, each rung's fits in batches.

    A drop-in for :class:`sklearn.model_selection.HalvingRandomSearchCV`:
    it draws the same candidates as scikit-learn's for the same
    ``random_state``, and trains them as :class:`HalvingGridSearchCV` does.

    Each rung's candidates are trained on every fold in batches, as
    :class:`GridSearchCV` trains its candidates (see its Notes): the rung's
    fits equal scikit-learn's up to rounding, so the same candidates go on
    to the next rung. A rung's candidates that cannot be batched (a
    ``solver='lbfgs'`` one, say) are fitted one by one, as scikit-learn's
    search fits them; the whole search is scikit-learn's where the data
    cannot be batched (fit parameters, metadata routing). The best candidate is
    refitted on the whole data with ``fit``.

    Parameters
    ----------
    estimator : estimator object
        A :class:`~skdnn.DNNClassifier` or :class:`~skdnn.DNNRegressor`,
        or a Pipeline ending in one, for the batched search.
    param_distributions : dict or list of dicts
        As for :class:`sklearn.model_selection.HalvingRandomSearchCV`.
    n_candidates : 'exhaust' or int, default='exhaust'
        Candidates of the first rung.
    factor : int or float, default=3
        The proportion of candidates kept at each rung (1 / factor).
    resource : 'n_samples' or str, default='n_samples'
        What grows from rung to rung.
    max_resources : int, default='auto'
        The most resources a candidate gets.
    min_resources : {'exhaust', 'smallest'} or int, default='smallest'
        The resources of the first rung.
    aggressive_elimination : bool, default=False
        Whether to drop candidates at the first rung until few enough remain.
    cv : int, cross-validation generator or iterable, default=5
        Must split the same way each time it is asked.
    scoring : str or callable, default=None
        One metric; None scores with the estimator's ``score``.
    refit : bool, default=True
        Whether to refit the best candidate on the whole data.
    error_score : 'raise' or numeric, default=np.nan
        As for :class:`sklearn.model_selection.HalvingRandomSearchCV`.
    return_train_score : bool, default=True
        Whether to score the training rows too.
    random_state : int, RandomState instance or None, default=None
        Draws the candidates and the rows of the rungs.
    n_jobs : int, default=None
        Jobs for the chunks of the batches (at least ``n_jobs`` chunks, one
        job each, through joblib's backend) and the fits that are not
        batched.
    verbose : int, default=0
        Also says what is batched, and if not, why.

    Attributes
    ----------
    n_resources_ : list of int
        Resources of each rung.
    n_candidates_ : list of int
        Candidates of each rung.
    n_remaining_candidates_ : int
        Candidates left after the last rung.
    max_resources_, min_resources_ : int
        The resources of the last and first rungs' bounds.
    n_possible_iterations_, n_required_iterations_, n_iterations_ : int
        As scikit-learn's search sets them.
    cv_results_ : dict of numpy (masked) ndarrays
        Every rung's candidates, with ``iter`` and ``n_resources``.
    best_estimator_ : estimator
        The best candidate of the last rung, refitted on the whole data.
    best_score_ : float
        Its mean cross-validated score in the last rung.
    best_params_ : dict
        Its parameters.
    best_index_ : int
        Its index in ``cv_results_``.
    scorer_ : function or dict
        Scorer used on the held-out data.
    n_splits_ : int
        Number of cross-validation splits.
    refit_time_ : float
        Seconds to refit the best model.
    multimetric_ : bool
        False: successive halving scores one metric.
    batched_ : bool
        Whether the search ran batched.

    See Also
    --------
    HalvingGridSearchCV : The same, over a grid.
    sklearn.model_selection.HalvingRandomSearchCV : The sequential search.

    Examples
    --------
    >>> from scipy.stats import loguniform, uniform
    >>> from sklearn.datasets import make_moons
    >>> from skdnn import DNNClassifier
    >>> from skdnn.model_selection import HalvingRandomSearchCV
    >>> X, y = make_moons(n_samples=300, noise=0.2, random_state=0)
    >>> clf = DNNClassifier((8,), batch_size=32, max_iter=20,
    ...                     learning_rate_init=0.01, random_state=0, device="cpu")
    >>> space = {"dropout": uniform(0, 0.5), "alpha": loguniform(1e-5, 1e-1)}
    >>> search = HalvingRandomSearchCV(clf, space, n_candidates=8, random_state=0)
    >>> search.fit(X, y).batched_
    True
    >>> search.n_candidates_[0]
    8
    """

    _refits_may_go_ahead = False
