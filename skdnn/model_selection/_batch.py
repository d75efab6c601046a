"""What every batched search and curve shares: fits of candidates on splits,
trained in batches and scored as scikit-learn's ``_fit_and_score`` scores them."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import time
from collections import defaultdict

import numpy as np
import scipy.sparse
from joblib import effective_n_jobs
from sklearn import get_config
from sklearn.base import clone
from sklearn.pipeline import Pipeline

# scikit-learn's joblib wrappers carry its configuration (working_memory,
# the memory budget) into the jobs.
from sklearn.utils.parallel import Parallel, delayed

from .._base import BaseDNN
from .._batched import (
    batchable_reason,
    batching_refusal,
    group_key,
    memory_chunks,
    prepare_fit,
    step_rows,
    train_batched,
    training_bytes,
)

# scikit-learn's private validation machinery: the batched results are the
# dicts its own _fit_and_score returns, so they aggregate the same way.
from .._compat import (
    _check_method_params,
    _fit_and_score,
    _num_samples,
    _routing_enabled,
    _safe_indexing,
    _score,
)
from .._device import resolve_device
from ._progress import BatchProgress


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


def _fit_prefix(base_estimator, settings, X_fit, y_fit):
    """A Pipeline's earlier steps, with ``settings`` (the candidate's
    parameters of them), fitted: ``(transformer, Z, seconds)``.

    ``Z`` is what the model trains on; for a bare model, ``X_fit`` itself,
    with no transformer and no time.
    """
    name, _ = _final_step(base_estimator)
    if name is None:
        return None, X_fit, 0.0
    pipeline = clone(base_estimator).set_params(**clone(settings, safe=False))
    transformer = pipeline[:-1]
    start = time.time()
    Z = transformer.fit_transform(X_fit, y_fit)
    return transformer, Z, time.time() - start


def _split_settings(base_estimator, candidate):
    """A candidate's parameters as ``(earlier, model)``: those of a
    Pipeline's earlier steps (and the Pipeline's own), and the model's,
    named as the model names them."""
    name, _ = _final_step(base_estimator)
    if name is None:
        return {}, dict(candidate)
    prefix = f"{name}__"
    earlier = {k: v for k, v in candidate.items() if not k.startswith(prefix)}
    model = {k[len(prefix) :]: v for k, v in candidate.items() if k.startswith(prefix)}
    return earlier, model


def _setting_key(settings):
    """A key equal for equal settings of earlier steps: values by equality
    where they are plain hashable values, by identity otherwise (estimators,
    arrays: a grid's value is the same object in each of its candidates)."""
    key = []
    for k, v in sorted(settings.items()):
        try:
            hash(v)
            plain = not hasattr(v, "get_params")
        except TypeError:
            plain = False
        key.append((k, type(v).__name__, v) if plain else (k, "id", id(v)))
    return tuple(key)


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


def _folds(X, y, splits, needed):
    """Each needed split's rows: ``(X_train, y_train, X_test, y_test)`` by
    split index in ``needed``."""
    folds = {}
    for f in sorted(needed):
        train, test = splits[f]
        folds[f] = (_take(X, train), _take(y, train), _take(X, test), _take(y, test))
    return folds


def _fit_prefixes(base_estimator, candidates, keys, folds, weight, splits):
    """Each earlier-steps setting's fit on each fold of ``keys`` (pairs ``(c,
    f)``; fold None is the whole data, ``folds[None]``).

    Returns
    -------
    data : dict
        By ``(setting, f)``: ``(Z, y, seconds, sample_weight, transformer)``,
        the rows the models train on, their targets, the time the earlier
        steps took, the rows' weights (or None) and the fitted steps.
    setting_of : dict
        Each candidate's setting key (see :func:`_setting_key`).
    failed : list of tuple
        The keys whose earlier steps raised in their fit.
    """
    setting_of, data, failed = {}, {}, []
    for c, f in keys:
        earlier, _ = _split_settings(base_estimator, candidates[c])
        s = setting_of.setdefault(c, _setting_key(earlier))
        if (s, f) not in data:
            X_train, y_train = folds[f][:2]
            try:
                transformer, Z, seconds = _fit_prefix(
                    base_estimator, earlier, X_train, y_train
                )
            except Exception:
                data[s, f] = None
            else:
                rows = weight if f is None else _rows(weight, splits[f][0])
                data[s, f] = (Z, y_train, seconds, rows, transformer)
        if data[s, f] is None:
            failed.append((c, f))
    return data, setting_of, failed


def _prepare_models(base_estimator, candidates, keys, prefixes, fits):
    """Prepare candidate c's model on fold f, for each key ``(c, f)`` of keys.

    ``prefixes`` is what :func:`_fit_prefixes` returned for them: the data of
    each candidate's earlier-steps setting on each fold (fold None is the
    whole data, for the candidates' refits). ``fits`` is
    ``(models, prepared, fit_times, groups)``: each prepared model, what
    :func:`prepare_fit` returned for it and its time join the first three
    by key, and the key joins its :func:`group_key`'s list in ``groups``.

    Returns
    -------
    failed : list of tuple
        The keys whose preparation raised; they join none of ``fits``.
    """
    name, _ = _final_step(base_estimator)
    data, setting_of, failed = prefixes
    failed = list(failed)
    skipped = set(failed)
    models, prepared, fit_times, groups = fits
    # Each fold's data is checked once, for its first candidate; each other
    # candidate checks what its own parameters require of the targets
    # (BaseDNN._check_target_values: a Poisson loss's y >= 0).
    checked, configured = {}, {}
    for c, f in keys:
        if (c, f) in skipped:
            continue
        Z, y_fit, prefix_time, weight, _ = data[setting_of[c], f]
        if c not in configured:
            _, settings = _split_settings(base_estimator, candidates[c])
            model = clone(base_estimator if name is None else base_estimator[-1])
            configured[c] = model.set_params(**clone(settings, safe=False))
        # A clone of the candidate's model for each fold, as scikit-learn's
        # search clones the estimator and sets the candidate's parameters
        # for each: the same parameters, each fold its own copies, in half
        # the time.
        model = clone(configured[c])
        start = time.time()
        try:
            like = checked.get((setting_of[c], f))
            prepared[c, f] = prepare_fit(
                model, Z, y_fit, sample_weight=weight, like=like
            )
        except Exception:
            failed.append((c, f))
            continue
        checked.setdefault((setting_of[c], f), prepared[c, f])
        fit_times[c, f] = time.time() - start + prefix_time
        models[c, f] = model
        groups[group_key(model)].append((c, f))
    return failed


def _take(data, rows):
    """Rows of an array, DataFrame or list, as scikit-learn's CV takes them."""
    return _safe_indexing(data, np.asarray(rows))


def data_refusal(estimator, X, y, params):
    """Why fits of ``estimator`` on this data cannot be batched, or None.

    What no candidate's parameters change: the estimator's kind, the fit
    parameters (the model's sample weights alone are batched), metadata
    routing, a missing y, sparse X off the CPU.
    """
    name, final = _final_step(estimator)
    if final is None:
        return (
            "the estimator is not a DNNClassifier or a DNNRegressor, or a "
            "Pipeline ending in one"
        )
    others = sorted(set(params or ()) - {_weight_key(name)})
    if others:
        return f"fit parameters {others} are given"
    if _routing_enabled():
        return "metadata routing is enabled"
    if y is None:
        return "y is missing"
    if scipy.sparse.issparse(X) and resolve_device(final.device).type != "cpu":
        # The batched trainer multiplies sparse rows with scipy, on the CPU.
        return "X is sparse and the model's device is not the CPU"
    return None


def _weight_key(name):
    """The fit parameter of a model's sample weights: ``sample_weight``, or
    for a Pipeline's last step ``name``, ``name__sample_weight``."""
    return "sample_weight" if name is None else f"{name}__sample_weight"


def _sample_weight(estimator, fit_params):
    """The model's sample weights among the fit parameters, or None."""
    name, _ = _final_step(estimator)
    return (fit_params or {}).get(_weight_key(name))


def _rows(weight, rows):
    """A fold's part of the sample weights (None stays None)."""
    return None if weight is None else _take(weight, rows)


def _row_params(X, params, split):
    """The scorers' parameters of a split's test and training rows, as
    ``_fit_and_score`` takes them: ``(test, train)`` dicts."""
    train, test = split
    return (
        _check_method_params(X, params=params or {}, indices=test),
        _check_method_params(X, params=params or {}, indices=train),
    )


def candidate_refusal(estimator, candidate):
    """Why fits of ``estimator`` with ``candidate``'s parameters cannot be
    batched, or None (``estimator`` passed :func:`data_refusal`)."""
    name, final = _final_step(estimator)
    replaced = sorted({name, "steps"} & set(candidate)) if name else []
    if replaced:
        return f"the grid replaces the Pipeline's model ({replaced})"
    _, settings = _split_settings(estimator, candidate)
    if any("__" in k for k in settings):
        return f"the grid sets nested parameters {sorted(settings)}"
    reason = batchable_reason(clone(final).set_params(**settings))
    if reason is not None:
        return f"a candidate has {reason}"
    return None


def _train_chunk(models, prepared, ahead, label=None):
    """Train one chunk of prepared models as one batch, as a joblib job.

    ``ahead``: the indices of refits trained ahead, whose ConvergenceWarning
    is returned, not issued. ``label``: the batch's name in the progress it
    reports, or None to report none. Returns the trained models, which of
    them diverged, the deferred warnings by index, the seconds it took, and
    the error it raised (None if none; then the rest is None too).
    """
    start = time.time()
    deferred = dict.fromkeys(ahead)
    progress = None
    if label is not None:
        progress = BatchProgress(
            label, sum(1 + len(fit.restarts) for fit in prepared),
            max(model.max_iter for model in models),
        )  # fmt: skip
    try:
        bad = train_batched(models, prepared, deferred=deferred, on_epoch=progress)
    except Exception as error:
        # Returned, not raised: the caller fits each model again on its own.
        return None, None, None, None, error
    return models, bad, deferred, time.time() - start, None


class BatchEvaluation:
    """Candidates' fits on cross-validation splits, trained in batches.

    Each fit's result is the dict scikit-learn's ``_fit_and_score`` returns
    for it (``fit_error``, ``test_scores``, ``train_scores``,
    ``n_test_samples``, ``fit_time``, ``score_time``, ``estimator``), so
    that a search or a curve aggregates them with scikit-learn's own code.

    Parameters
    ----------
    scorers : callable or dict
        As ``_fit_and_score`` takes them.
    error_score : 'raise' or numeric
        Recorded for a fit that raises, as ``_fit_and_score`` records it.
    return_train_score : bool
        Whether to score the training rows too.
    verbose : int
        Says what is batched and what is not, and why.
    n_jobs, pre_dispatch
        joblib's, for the chunks of the batches (at least ``n_jobs`` of
        them) and the fits that are not batched.
    return_estimator : bool
        Whether each result holds its fitted estimator.
    max_memory : int, default=None
        The most bytes a batch may take to train (see
        :func:`~skdnn._batched.training_bytes`): the models of a larger one
        are trained in chunks, one after another or as ``n_jobs`` jobs.
        None: scikit-learn's ``working_memory`` setting
        (:func:`sklearn.set_config`, 1024 MiB by default).
    """

    def __init__(
        self, scorers, *, error_score=np.nan, return_train_score=False, verbose=0,
        n_jobs=None, pre_dispatch="2*n_jobs", return_estimator=False,
        max_memory=None,
    ):  # fmt: skip
        self.scorers, self.error_score = scorers, error_score
        self.return_train_score, self.verbose = return_train_score, verbose
        self.n_jobs, self.pre_dispatch = n_jobs, pre_dispatch
        self.return_estimator = return_estimator
        if max_memory is None:
            max_memory = get_config()["working_memory"] * 2**20
        self.max_memory = max_memory

    def evaluate(self, base_estimator, X, y, candidates, splits, pairs=None, *,
                 refit=False, fit_params=None, score_params=None):  # fmt: skip
        """Fit candidate c on split f and score it, for each ``(c, f)`` of
        ``pairs`` (every candidate on every split, candidate-major, if None).

        ``fit_params``, those :func:`data_refusal` accepts (sample weights),
        go to each fit as scikit-learn's search gives them: the training
        rows' part; ``score_params`` go to the scorers so, the test (and
        training) rows' part.

        Returns
        -------
        out : list of dict
            ``_fit_and_score``'s dict for each pair, in the order of pairs.
        refits : dict
            With ``refit``, the candidates whose refit on the whole data was
            cheaper trained ahead, in the cross-validation's batch (see
            :meth:`_refits_ahead`): ``(estimator, seconds, message)``, the
            message of the ConvergenceWarning its fit would have issued, or
            None.
        """
        if pairs is None:
            pairs = [(c, f) for c in range(len(candidates)) for f in range(len(splits))]
        refused = self._refused(base_estimator, candidates, pairs)
        batched = [(c, f) for c, f in pairs if c not in refused]
        folds = _folds(X, y, splits, {f for _, f in batched})
        fits = ({}, {}, {}, defaultdict(list))
        models, prepared, fit_times, groups = fits
        weight = _sample_weight(base_estimator, fit_params)
        prefixes = _fit_prefixes(
            base_estimator, candidates, batched, folds, weight, splits
        )
        # Those whose preparation raised: _fit_and_score fits them again and
        # handles the error as scikit-learn does.
        sequential = _prepare_models(
            base_estimator, candidates, batched, prefixes, fits
        )
        ahead = self._refits_ahead(groups, models, prepared, len(y)) if refit else []
        if ahead:
            # A refit whose preparation raises is refitted with fit, which
            # raises as scikit-learn's does.
            folds[None] = (X, y)
            keys = [(c, None) for c in ahead]
            whole = _fit_prefixes(base_estimator, candidates, keys, folds, weight, None)
            prefixes[0].update(whole[0])
            _prepare_models(base_estimator, candidates, keys, whole, fits)
        failed, trained_ahead = self._train_groups(groups, models, prepared, fit_times)
        sequential = set(sequential + failed) | {k for k in pairs if k[0] in refused}

        def assembled(c, f):
            transformer = prefixes[0][prefixes[1][c], f][4]
            return _assembled(base_estimator, candidates[c], transformer, models[c, f])

        refits = {
            c: (assembled(c, None), seconds, message)
            for c, (seconds, message) in trained_ahead.items()
        }
        alone = [k for k in pairs if k in sequential]
        results = dict(zip(alone, self._sequential_results(
            base_estimator, X, y, candidates, splits, alone, fit_params,
            score_params), strict=True))  # fmt: skip
        # The scorers' parameters of each fold's rows, sliced once a fold.
        row_params = {
            f: _row_params(X, score_params, splits[f]) for f in folds if f is not None
        }
        for c, f in pairs:
            if (c, f) not in sequential:
                results[c, f] = self._batched_result(
                    assembled(c, f), folds[f], fit_times[c, f], row_params[f]
                )
        return [results[k] for k in pairs], refits

    def _refused(self, base_estimator, candidates, pairs):
        """The candidates of ``pairs`` that cannot be batched, with why
        (said when verbose): a dict."""
        refused = {}
        for c in sorted({c for c, _ in pairs}):
            reason = candidate_refusal(base_estimator, candidates[c])
            if reason is not None:
                refused[c] = reason
        if refused and self.verbose > 0:
            print(
                f"Fitting {len(refused)} candidates sequentially: "
                f"{next(iter(refused.values()))}."
            )
        return refused

    def _train_groups(self, groups, models, prepared, fit_times):
        """Train each group of models in batches: chunks of it, each within
        the memory budget, and at least ``n_jobs`` of them where joblib runs
        several jobs, one job each.

        Each model's fit time gains its share of its chunk's time.

        Returns
        -------
        failed : list of tuple
            The keys of the models to fit sequentially: those whose loss or
            weights became infinite or NaN, and every model of a chunk that
            raised (each then raises, or not, in its own fit, and records
            its ``error_score`` as scikit-learn's search does).
        trained_ahead : dict
            By candidate, for its refit trained ahead that did not diverge:
            ``(seconds, message)``, its fit time and the message of the
            ConvergenceWarning its fit would have issued, or None.
        """
        n_jobs = effective_n_jobs(self.n_jobs)
        chunks = []
        for keys in groups.values():
            # A fold's models next to each other: a chunk stores its rows once.
            keys = sorted(keys, key=lambda k: (k[1] is None, k[1] or 0, k[0]))
            sizes = [training_bytes(models[k], prepared[k]) for k in keys]
            parts = memory_chunks(sizes, self.max_memory)
            alone = batching_refusal(models[keys[0]], prepared[keys[0]], len(keys))
            if alone is not None:
                parts = [[i] for i in range(len(keys))]
            elif len(parts) < n_jobs:
                parts = np.array_split(np.arange(len(keys)), min(n_jobs, len(keys)))
            chunks.extend([keys[i] for i in part] for part in parts)
            if self.verbose > 0:
                self._say_batches(keys, prepared, len(parts), alone)
        parallel = Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch)
        done = parallel(
            delayed(_train_chunk)(
                [models[k] for k in keys], [prepared[k] for k in keys],
                [i for i, k in enumerate(keys) if k[1] is None],
                f"Batch {b + 1} of {len(chunks)}" if self.verbose > 0 else None,
            )
            for b, keys in enumerate(chunks)
        )  # fmt: skip
        failed, trained_ahead = [], {}
        for keys, (trained, bad_models, deferred, seconds, error) in zip(
            chunks, done, strict=True
        ):
            if error is not None:
                # Which model raised is not known: each is fitted on its own,
                # where its own error (if any) is recorded for it alone.
                if self.verbose > 0:
                    print(
                        f"A batch of {len(keys)} fits raised {error!r}; "
                        "fitting them one by one."
                    )
                failed.extend(k for k in keys if k[1] is not None)
                continue
            for i, (k, model, bad) in enumerate(
                zip(keys, trained, bad_models, strict=True)
            ):
                # A job in another process returns its trained copies.
                models[k] = model
                fit_times[k] += seconds / len(keys)
                if bad and k[1] is not None:
                    failed.append(k)
                elif not bad and k[1] is None:
                    trained_ahead[k[0]] = (fit_times[k], deferred[i])
        return failed, trained_ahead

    def _say_batches(self, keys, prepared, n_batches, alone):
        """Say how one group's fits are trained (``verbose``): in batches,
        or one by one where ``alone`` says why batching would not pay."""
        # Each fit's restarts (n_init) are networks of the batch too.
        n_networks = sum(1 + len(prepared[k].restarts) for k in keys)
        ahead = sum(f is None for _, f in keys)
        where = "in one batch"
        if alone is not None:
            where = f"one by one, not batched: {alone}"
        elif n_batches > 1:
            where = (
                f"in {n_batches} batches of at most "
                f"{self.max_memory / 2**20:.0f} MiB or one per job"
            )
        print(
            f"Training {len(keys)} fits ({n_networks} networks) {where}"
            + (f", {ahead} of them refits ahead" if ahead else "")
            + "."
        )

    def _sequential_results(self, base_estimator, X, y, candidates, splits, keys,
                            fit_params=None, score_params=None):  # fmt: skip
        """``_fit_and_score``'s dicts for the fits that are not batched, in
        parallel over joblib's ``n_jobs``."""
        if not keys:
            return []
        parallel = Parallel(n_jobs=self.n_jobs, pre_dispatch=self.pre_dispatch)
        return parallel(
            delayed(_fit_and_score)(
                clone(base_estimator), X, y, scorer=self.scorers,
                train=splits[f][0], test=splits[f][1], verbose=self.verbose,
                parameters=candidates[c], fit_params=fit_params,
                score_params=score_params,
                return_train_score=self.return_train_score,
                return_n_test_samples=True, return_times=True,
                return_estimator=self.return_estimator,
                error_score=self.error_score,
            )
            for c, f in keys
        )  # fmt: skip

    def _batched_result(self, estimator, fold, fit_time, score_params):
        """The dict ``_fit_and_score`` would return for a batched fit.

        ``fold`` is the fold's data as :func:`_folds` gives it;
        ``score_params`` the scorers' parameters of its test and training
        rows (see :func:`_row_params`).
        """
        X_train, y_train, X_test, y_test = fold[:4]
        start = time.time()
        scorers, error_score = self.scorers, self.error_score
        result = {
            "fit_error": None,
            "test_scores": _score(
                estimator, X_test, y_test, scorers, score_params[0], error_score
            ),
        }
        if self.return_train_score:
            result["train_scores"] = _score(
                estimator, X_train, y_train, scorers, score_params[1], error_score
            )
        result["n_test_samples"] = _num_samples(X_test)
        result["fit_time"] = fit_time
        result["score_time"] = time.time() - start
        if self.return_estimator:
            result["estimator"] = estimator
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
        ahead = []
        for keys in groups.values():
            if batching_refusal(models[keys[0]], prepared[keys[0]], len(keys)):
                continue  # trained one by one: a refit ahead is one more fit
            candidates = sorted({c for c, _ in keys})
            rows_cv = {k: prepared[k].X.shape[0] for k in keys}
            S_cv = max(-(-rows_cv[k] // step_rows(models[k], rows_cv[k])) for k in keys)
            S_full = max(-(-n_samples // step_rows(models[k], n_samples)) for k in keys)
            rows = max(step_rows(models[k], n_samples) for k in keys)
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
