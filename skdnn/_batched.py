"""The estimators' side of stacked training: fits prepared, trained, finished.

:func:`prepare_fit` does what an estimator's ``fit`` (a DNNClassifier's or a
DNNRegressor's: ``BaseDNN._fit``) does before its first epoch,
:func:`train_batched` trains estimators of one :func:`group_key` together
through :class:`skdnn._engine.trainer.Trainer`, with each model's own
stopping rule, and :func:`finish_fit` does what ``fit`` does after its last
epoch. The engine reads no estimator: :func:`stacked_model` gives it
what it needs of one.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import contextlib
import warnings
from types import SimpleNamespace

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ._defaults import resolved
from ._device import blas_threads, n_threads_for, torch_threads
from ._engine.epochs import (
    DIVERGED,
    INTERRUPTED,
    MAX_ITER,
    Progress,
    Rules,
    Shuffles,
    run_epochs,
)
from ._engine.trainer import StackedModel, Trainer, uses_numpy_products
from ._engine.validation import StackedValidation
from ._network import flatten_parameters
from ._training import (
    batch_rows,
    clipped_batch_size,
    load_adam_state,
    make_optimizer,
    max_iter_message,
    sgd_momentum_buffer,
    uses_nesterov,
)


def batchable_reason(estimator):
    """Why a DNNClassifier's or DNNRegressor's fit cannot be batched, or None.

    The batched trainer does what ``fit`` does with Adam and SGD, early
    stopping included, on dense input; anything else trains sequentially.
    """
    if estimator.solver == "lbfgs":
        return "solver='lbfgs' (only 'adam' and 'sgd' are batched)"
    if estimator.verbose:
        return "verbose=True (per-epoch messages)"
    if estimator.warm_start:
        return "warm_start=True"
    return None


def step_rows(estimator, n_rows):
    """The rows of a step of the estimator's fit on ``n_rows`` rows: its
    batch size, resolved and clipped as ``fit`` clips it (no warning)."""
    return batch_rows(resolved(estimator, "batch_size"), n_rows)


def training_bytes(estimator, fit):
    """The memory a prepared fit takes to train in a batch, in bytes.

    Returns
    -------
    own : int
        What each of its networks (the fit and its restarts) adds to a
        batch, all of them together: the epoch's grid of its rows, targets,
        dropout bits and masks, logits and shares, its activations, its
        parameters, gradient and optimizer state, its held-out rows.
    shared : tuple
        ``(key, bytes)``: its rows, which the batch's models given the same
        array (``key``, its id) store once.
    """
    module, X = estimator.module_, fit.X
    itemsize = module.weights[0].element_size()
    n_rows, n_features = X.shape
    widths = [W.shape[1] for W in module.weights]
    batch = step_rows(estimator, n_rows)
    padded = -(-n_rows // batch) * batch
    n_outputs, n_parameters = widths[-1], sum(W.numel() for W in module.weights)
    # The epoch's grid: data, targets (int64 labels at most), logits, two
    # shares and the row numbers; kept targets and weights.
    network = padded * (n_features * itemsize + n_outputs * (itemsize + 8))
    network += padded * (2 * itemsize + 8) + n_rows * (n_outputs * itemsize + 8)
    if any(fit.rates):
        # 16 random bits and a float mask per hidden unit and row.
        network += padded * sum(widths[:-1]) * (2 + itemsize)
    network += 4 * batch * sum(widths) * itemsize + 4 * n_parameters * itemsize
    if fit.validation is not None:
        network += fit.validation[0].shape[0] * (n_features + n_outputs) * itemsize
    networks = 1 + len(fit.restarts)
    return networks * network, (id(X), n_rows * n_features * itemsize)


# Multiply-adds of one network's training step (its rows times its weights)
# per thread above which batching networks costs more than training them one
# by one on the CPU: benchmarks/batching.py, 20 networks of two hidden layers
# of 8 to 256 units on 1,000 rows, found batching 1.04x to 4.8x faster up to
# 3.9 million (128 units, batch 200) and 0.90x to 0.94x at 4.5 and 14 million
# (256 units) with one thread; with two, 1.05x to 5.4x up to 14 million.
_BATCH_MAX_MACS_PER_THREAD = 4_000_000


def batching_refusal(estimator, fit, n_models):
    """Why networks like this prepared fit's would train faster one by one
    than ``n_models`` of them in one batch, or None where batching pays.

    On the CPU, a network whose steps are large enough keeps the cores busy
    on its own: stacking it with others then adds work (the stacked
    operations' overhead, caches that no longer hold one network) and
    removes none. On a GPU, batching always pays.
    """
    if estimator.device_.type != "cpu":
        return None
    macs = step_rows(estimator, fit.X.shape[0]) * sum(
        W.numel() for W in estimator.module_.weights
    )
    threads = n_threads_for(
        estimator.n_threads, device=estimator.device_, macs_per_step=n_models * macs
    )
    threads = threads or torch.get_num_threads()
    if macs <= _BATCH_MAX_MACS_PER_THREAD * threads:
        return None
    return (
        f"a network's step takes {macs / 1e6:.1f} million multiply-adds, more "
        f"than the {threads * _BATCH_MAX_MACS_PER_THREAD / 1e6:.0f} million "
        f"({threads} thread{'s' if threads > 1 else ''}) up to which batching "
        "pays on the CPU"
    )


def memory_chunks(sizes, budget):
    """Split models, in order, into consecutive chunks that each take at
    most ``budget`` bytes to train (a model alone may take more).

    ``sizes`` holds each model's :func:`training_bytes`. Returns lists of
    indices.
    """
    chunks, used, seen = [[]], 0, set()
    for i, (own, (key, rows)) in enumerate(sizes):
        extra = own + (0 if key in seen else rows)
        if chunks[-1] and used + extra > budget:
            chunks.append([])
            used, seen, extra = 0, set(), own + rows
        chunks[-1].append(i)
        used += extra
        seen.add(key)
    return [chunk for chunk in chunks if chunk]


def new_optimizer(estimator):
    """A new torch optimizer of the estimator's solver, over its flat parameter."""
    return make_optimizer(
        [estimator._flat],
        solver=estimator.solver,
        learning_rate_init=estimator.learning_rate_init,
        momentum=estimator.momentum,
        nesterovs_momentum=estimator.nesterovs_momentum,
        beta_1=estimator.beta_1,
        beta_2=estimator.beta_2,
        epsilon=estimator.epsilon,
    )


def prepare_fit(estimator, X, y, *, sample_weight=None, like=None):
    """Do what ``fit`` does before its first epoch; return what training needs.

    The checks, target encoding, class weights and random draws are the
    estimator's own, in its order: the torch seed, then the initial weights,
    from ``_random_state_for_fit``. The estimator is left with every fitted
    attribute of a fit that has run no epoch; :func:`finish_fit` completes it.
    ``like``, what this returned for another estimator on the same ``X`` and
    ``y``, spares checking them again (see ``BaseDNN._checked_input``).

    Returns
    -------
    types.SimpleNamespace
        The checked input, as ``BaseDNN._checked_input`` returns it:
        training reads ``X``, ``target``, ``sample_weight`` (ndarray or
        None), ``rng`` (the RandomState that draws the shuffles next),
        ``torch_seed`` and ``rates``.
    """
    fit = estimator._checked_input(
        X, y, sample_weight, incremental=False, classes=None, like=like
    )
    estimator._start_fit(fit)
    return fit


def group_key(estimator):
    """Models with equal keys can be trained in one batch."""
    module = estimator.module_
    units = (module.weights[0].shape[0], *(W.shape[1] for W in module.weights))
    # The solver's settings that its models share (each has its own rate).
    if estimator.solver == "sgd":
        nesterov = uses_nesterov(estimator.nesterovs_momentum, estimator.momentum)
        solver = ("sgd", estimator.momentum, nesterov)
    else:
        solver = ("adam", estimator.beta_1, estimator.beta_2, estimator.epsilon)
    return (
        units,
        module.activation,
        estimator.out_activation_,
        module.weights[0].dtype,
        estimator.device_,
        solver,
        estimator._validating,
        module.input_scaling,
    )


def finish_fit(estimator, trainer, progress, m):
    """Give a prepared estimator the trained model m of a trainer's batch.

    Its weights, the record of its epochs (``progress``, the engine loop's),
    and the optimizer ``fit`` leaves, in model m's state, so that
    ``partial_fit`` continues it as it would after ``fit``.
    """
    optimizer = trainer.optimizer
    # The flat parameter's layout, weights, biases and the input scale, is a
    # batched model's row: the module's parameters become views of a copy
    # of it, and its optimizer state carries over as it is.
    estimator._flat = flatten_parameters(estimator.module_, values=trainer.flat[m])
    estimator._optimizer = new_optimizer(estimator)
    if estimator.solver == "sgd":
        buffer = sgd_momentum_buffer(estimator._optimizer)
        if buffer is not None:
            buffer.copy_(trainer.momentum_buffer[m])
    else:
        load_adam_state(
            estimator._optimizer, exp_avg=optimizer.exp_avg[m],
            exp_avg_sq=optimizer.exp_avg_sq[m], step=optimizer.steps[m],
        )  # fmt: skip
    record_epochs(estimator, progress, m)
    return estimator


def record_epochs(estimator, progress, m=0):
    """Give the estimator the record of model m's epochs in a run of the
    engine's loop: its curves, counts and the schedule's learning rate."""
    curve = progress.curve(m)
    estimator.n_iter_ = len(curve)
    estimator.t_ = int(progress.t[m])
    estimator.loss_curve_.extend(curve)
    if curve:
        estimator.loss_ = curve[-1]
    estimator._no_improvement_count = int(progress.no_improvement[m])
    if estimator._validating:
        estimator.validation_scores_.extend(progress.curve(m, progress.scores))
        estimator.validation_loss_curve_.extend(
            progress.curve(m, progress.validation_losses)
        )
        estimator.best_validation_score_ = float(progress.best_score[m])
    else:
        estimator.best_loss_ = float(progress.best_loss[m])
    if estimator._optimizer is not None and estimator.solver == "sgd":
        # The schedule's rate, which a later partial_fit continues from.
        estimator._optimizer.param_groups[0]["lr"] = float(progress.learning_rates[m])


def _batch_sizes(estimators, n_rows):
    return np.array(
        [
            clipped_batch_size(resolved(est, "batch_size"), int(n), stacklevel=3)
            for est, n in zip(estimators, n_rows, strict=True)
        ]
    )


def train_batched(estimators, prepared, *, numpy_products=None, deferred=None,
                  on_epoch=None):  # fmt: skip
    """Train prepared estimators of one :func:`group_key` together.

    Parameters
    ----------
    estimators : list of BaseDNN
        DNNClassifier or DNNRegressor instances prepared by
        :func:`prepare_fit`, all with the same group key.
    prepared : list of dict
        What :func:`prepare_fit` returned for each.
    numpy_products : bool, default=None
        Whether the matrix products go through numpy (see
        :class:`_Workspace`); None: as :func:`uses_numpy_products` decides.
        Tests set it to check both.
    deferred : dict, default=None
        Models, by index, whose ConvergenceWarning is not issued but stored
        as the index's value, for the caller to issue if it keeps the model
        (a search's refits trained ahead for every candidate).
    on_epoch : callable, default=None
        Called after each epoch with the number of networks still training.

    Returns
    -------
    diverged : ndarray of bool of shape (n_models,)
        Models whose loss or weights became infinite or NaN. They are left
        unfinished: the caller fits them sequentially, which handles
        divergence as ``fit`` does.
    """
    with _batch_threads(estimators, prepared, numpy_products) as numpy_products:
        return _train(
            estimators, prepared, numpy_products=numpy_products, deferred=deferred,
            on_epoch=on_epoch,
        )  # fmt: skip


def train_restarts(estimator, fit, log=None):
    """Train a prepared fit and its restarts in one batch (the networks of
    ``fit``, as ``BaseDNN._start_fit`` left it); return the run, as
    :func:`_train_restarts` does, for the caller to :func:`keep_best`.
    ``log(message, m)``, if given, takes the epoch loop's messages."""
    with _batch_threads([estimator], [fit], None) as numpy_products:
        return _train_restarts(
            [estimator], [fit], numpy_products=numpy_products, log=log
        )


@contextlib.contextmanager
def _batch_threads(estimators, prepared, numpy_products):
    """Threads and products of a batch: the first estimator's rule for
    threads, on the batch's work per step (one thread for small work, where
    more cost more than they save); yields whether products go through numpy."""
    first = estimators[0]
    n_models = sum(1 + len(fit.restarts) for fit in prepared)
    n_model_weights = sum(W.numel() for W in first.module_.weights)
    threads = n_threads_for(
        first.n_threads,
        device=first.device_,
        macs_per_step=n_models * 200 * n_model_weights,
    )
    if numpy_products is None:
        numpy_products = uses_numpy_products(first.device_, threads)
    with torch_threads(threads), blas_threads(threads), torch.no_grad():
        yield numpy_products


def stopping_rules(estimators, incremental=False):
    """The engine's :class:`~skdnn._engine.epochs.Rules` of these estimators.

    ``incremental``: a partial_fit's, one epoch.
    """

    def each(name, dtype=np.float64):
        return np.array([getattr(est, name) for est in estimators], dtype=dtype)

    return Rules(
        max_iter=np.ones(len(estimators), dtype=np.int64) if incremental
        else each("max_iter", np.int64),
        tol=each("tol"),
        n_iter_no_change=each("n_iter_no_change"),
        schedule=tuple(
            est.learning_rate if est.solver == "sgd" else "constant"
            for est in estimators
        ),
        learning_rate_init=each("learning_rate_init"),
        power_t=each("power_t"),
    )  # fmt: skip


def stacked_validation(estimators, validations):
    """Early stopping's :class:`~skdnn._engine.validation.StackedValidation`
    of prepared estimators of one :func:`group_key`, from each one's split
    (``validation`` of its checked input); None without early stopping."""
    if not estimators[0]._validating:
        return None
    module = estimators[0].module_
    return StackedValidation(
        [tuple(W.shape) for W in module.weights], module.activation,
        estimators[0]._loss, validations, dtype=module.weights[0].dtype,
        device=estimators[0].device_, input_scaling=module.input_scaling,
    )  # fmt: skip


def stacked_model(estimator):
    """What the trainer reads of a prepared estimator: a :class:`StackedModel`."""
    module = estimator.module_
    return StackedModel(
        weights=tuple(module.weights),
        biases=tuple(module.biases),
        activation=module.activation,
        loss=estimator._loss,
        learning_rate=estimator.learning_rate_init,
        alpha=resolved(estimator, "alpha"),
        beta_1=estimator.beta_1,
        beta_2=estimator.beta_2,
        epsilon=estimator.epsilon,
        solver=estimator.solver,
        momentum=estimator.momentum,
        nesterov=uses_nesterov(estimator.nesterovs_momentum, estimator.momentum),
        input_scaling=module.input_scaling,
        input_scale=module.input_scale[0] if len(module.input_scale) else None,
    )


def _train(estimators, prepared, *, numpy_products=None, deferred=None,
           on_epoch=None):  # fmt: skip
    """Train prepared estimators in one batch; finish those that did not diverge.

    What :func:`train_batched` does, inside its thread settings.
    """
    run = _train_restarts(
        estimators, prepared, numpy_products=numpy_products, on_epoch=on_epoch
    )
    if (run.progress.stop == INTERRUPTED).any():
        raise KeyboardInterrupt
    diverged = np.ones(len(estimators), dtype=bool)
    for i, est in enumerate(estimators):
        j = keep_best(est, run, i)
        if j is None:
            continue
        diverged[i] = False
        message = run.messages[j]
        if message is not None and deferred is not None and i in deferred:
            deferred[i] = message
        elif message is not None:
            warnings.warn(message, ConvergenceWarning, stacklevel=4)
    return diverged


def _train_restarts(estimators, prepared, *, numpy_products=None, log=None,
                    on_epoch=None):  # fmt: skip
    """Train prepared estimators and their restarts (``restarts`` of each
    one's checked input, see ``_restarts.restart_twins``) in one batch.

    Returns
    -------
    types.SimpleNamespace
        ``models`` (each network's estimator: the prepared ones and their
        twins), ``owners`` (the index of each one's prepared estimator),
        ``trainer``, ``progress``, ``diverged`` and ``messages`` (each
        network's ConvergenceWarning for running all its epochs, or None).
    """
    members = [
        (i, model, fit)
        for i, (est, first) in enumerate(zip(estimators, prepared, strict=True))
        for model, fit in [(est, first), *first.restarts]
    ]
    owners = np.array([i for i, _, _ in members])
    models = [model for _, model, _ in members]
    fits = [fit for _, _, fit in members]
    # A fit's restarts share its rows, so its batch size (and its warning).
    n_rows = np.array([fit.X.shape[0] for fit in prepared])
    trainer = Trainer(
        [stacked_model(model) for model in models],
        fits,
        batch_sizes=_batch_sizes(estimators, n_rows)[owners],
        numpy_products=numpy_products,
    )
    messages = {}
    progress, diverged = _run_epochs(
        trainer, models, fits, messages, log, on_epoch=on_epoch
    )
    return SimpleNamespace(
        models=models, owners=owners, trainer=trainer, progress=progress,
        diverged=diverged, messages=messages,
    )  # fmt: skip


def keep_best(estimator, run, i):
    """Finish ``estimator`` (prepared estimator i of a run of
    :func:`_train_restarts`) with the best of its networks that did not
    diverge; return that network's index in the run, or None if all diverged.

    The best has the highest validation score with early stopping, the
    lowest training loss in its last epoch otherwise; the first restart
    wins ties.
    """
    progress = run.progress
    candidates = np.flatnonzero((run.owners == i) & ~run.diverged)
    if not len(candidates):
        return None
    if estimator._validating:
        j = candidates[np.argmax(progress.best_score[candidates])]
    else:
        j = candidates[np.argmin([progress.last_loss(j) for j in candidates])]
    model = run.models[j]
    finish_fit(model, run.trainer, progress, j)
    if model is not estimator:
        estimator.__dict__.update(model.__dict__)
    return j


def _run_epochs(trainer, estimators, prepared, messages, log=None, on_epoch=None):
    """Run the trainer's epochs until every model stops by fit's stopping rule.

    A model that runs all its epochs has fit's ConvergenceWarning message
    stored in ``messages`` under its index, None there otherwise, for the
    caller to issue for the models it keeps.

    Returns
    -------
    progress : Progress
        Every model's record (see :func:`~skdnn._engine.epochs.run_epochs`).
    diverged : ndarray of bool of shape (n_models,)
        Models whose loss or weights became infinite or NaN.
    """
    progress = Progress(
        len(estimators), learning_rates=[est.learning_rate_init for est in estimators]
    )
    shuffles = Shuffles(
        [fit.rng for fit in prepared], [est.shuffle for est in estimators],
        trainer.n_rows,
        [fit.rng is est.random_state for est, fit in zip(estimators, prepared,
                                                          strict=True)],
    )  # fmt: skip
    validation = stacked_validation(estimators, [fit.validation for fit in prepared])
    run_epochs(
        trainer, stopping_rules(estimators), progress, shuffles=shuffles,
        validation=validation, log=log, on_epoch=on_epoch,
    )  # fmt: skip
    for m, est in enumerate(estimators):
        messages[m] = max_iter_warning(est, progress, m)
    return progress, progress.stop == DIVERGED


def max_iter_warning(estimator, progress, m):
    """The message of fit's ConvergenceWarning for model m of a run of the
    engine's loop, if it ran all its epochs; None otherwise.

    With n_iter_no_change=inf, running all max_iter epochs is what was asked
    for (to record whole curves): no warning.
    """
    if progress.stop[m] == MAX_ITER and np.isfinite(estimator.n_iter_no_change):
        return max_iter_message(estimator.max_iter)
    return None
