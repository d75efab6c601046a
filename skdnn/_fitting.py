"""How a DNN estimator trains: L-BFGS, and the stochastic solvers' epochs.

Functions of a fitted-in-progress estimator (:class:`skdnn._base.BaseDNN`):
:func:`fit_lbfgs_model` runs scipy's L-BFGS-B over the whole data;
:func:`fit_stochastic` runs the epochs of 'adam' and 'sgd' with their
stopping rules through the engine's epoch loop, and records the epochs
and warns as the fit ended. :func:`epoch_runner` chooses, once per fit,
what trains an epoch.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import math
import warnings
from types import SimpleNamespace

import numpy as np
import scipy.sparse
import torch
from sklearn.exceptions import ConvergenceWarning

from ._batched import (
    keep_best,
    max_iter_warning,
    new_optimizer,
    record_epochs,
    stacked_model,
    stacked_validation,
    stopping_rules,
    train_restarts,
)
from ._defaults import resolved
from ._device import blas_threads, n_threads_for, torch_threads
from ._engine import trainer as engine_trainer
from ._engine.epochs import (
    DIVERGED,
    INTERRUPTED,
    Progress,
    Shuffles,
    run_epochs,
)
from ._engine.masks import mask_blocks
from ._engine.trainer import Trainer, uses_numpy_products
from ._engine.windows import WindowedTrainer
from ._network import flatten_parameters, is_flattened
from ._training import (
    adam_state,
    block_rows,
    clipped_batch_size,
    fit_lbfgs,
    sgd_momentum_buffer,
)

# At most this many dropout mask values per epoch (128 MiB in float64, and a
# quarter of that again for their random bits) for a fit through the
# batched trainer.
_TRAINER_MASK_VALUES = 2**24

# Off the CPU, at most this many values of sparse X densified at once, in a
# window of a fit's epoch (2 MiB in float64), but at least a batch. On one
# thread (on the CPU, before sparse products), a
# wide sparse fit (S1 of benchmarks/ab_paired.py) took 1.30 to 1.35 times
# the old per-batch loop's time with windows of 2**22 values, 1.26 with
# these.
_DENSE_WINDOW_VALUES = 2**18


def _all_finite(tensors):
    """Whether no value of these tensors is NaN or infinite."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)


# ---------------------------------------------------------------- L-BFGS


def fit_lbfgs_model(estimator, X, target, sample_weight):
    """Fit ``estimator.module_`` with scipy's L-BFGS-B on the whole data."""
    if not is_flattened(getattr(estimator, "_flat", None), estimator.module_):
        # The engine's objective writes the parameters as one flat buffer.
        estimator._flat = flatten_parameters(estimator.module_)
        estimator._optimizer = None
    # Weights, biases and the input scale: the flat buffer's order.
    params = list(estimator.module_.parameters())
    device = estimator.device_
    losses = []
    # The last iterate, to go back to if the loss turns non-finite or the
    # fit is interrupted: a copy per iteration, little next to the
    # iteration's passes over the whole data.
    kept = [p.detach().clone() for p in params]

    def record(loss):
        losses.append(float(loss))
        with torch.no_grad():
            for copy, param in zip(kept, params, strict=True):
                copy.copy_(param)
        if estimator.verbose:
            print(f"Iteration {len(losses)}, loss = {loss:.8f}")

    macs = X.shape[0] * estimator._macs()
    threads = n_threads_for(estimator.n_threads, device=device, macs_per_step=macs)
    result = None
    try:
        with torch_threads(threads), blas_threads(1):
            objective = _full_batch_objective(
                estimator, X, target, sample_weight, threads
            )
            result = fit_lbfgs(
                params,
                objective,
                max_iter=estimator.max_iter,
                max_fun=estimator.max_fun,
                tol=estimator.tol,
                callback=record,
            )
    except KeyboardInterrupt:
        warnings.warn(
            f"Training interrupted by user after {len(losses)} complete L-BFGS "
            "iteration(s); the model keeps the weights of the last one.",
            stacklevel=4,
        )
    diverged = result is not None and not (
        math.isfinite(result.fun) and _all_finite(params)
    )
    if result is None or diverged:
        with torch.no_grad():
            for param, copy in zip(params, kept, strict=True):
                param.copy_(copy)
    _record_lbfgs(estimator, result, losses, diverged)


def _full_batch_objective(estimator, X, target, sample_weight, threads):
    """scipy's objective through the engine's trainer.

    The trainer's steps are blocks of rows, bound to the estimator's flat
    parameter: each evaluation writes the parameters and runs the blocks.
    Same process, 100 iterations against the former hand-written backward's
    objective: 1,000 x 2 rows 0.63 of its time, 2,000 x 20 0.88, 20,000 x 50
    float32 1.00 (one thread); 30,000 x 100, (256, 256), 0.98 (two threads).
    Sparse X is multiplied as it is on the CPU, elsewhere densified a block
    at a time, each block a window of its own.
    """
    module = estimator.module_
    units = [module.weights[0].shape[0], *(W.shape[1] for W in module.weights)]
    checked = SimpleNamespace(
        X=X, target=target, sample_weight=sample_weight, rates=module.dropout,
        torch_seed=0,  # no dropout: nothing is drawn
    )  # fmt: skip
    flat = estimator._flat
    bound = (flat.detach(), flat.grad, None, None)
    numpy_products = uses_numpy_products(estimator.device_, threads)
    model = stacked_model(estimator)
    # Blocks of equal size: the last block's padding is computed too.
    n_samples = X.shape[0]
    n_blocks = -(-n_samples // block_rows(units))
    block = -(-n_samples // n_blocks)
    if scipy.sparse.issparse(X) and not engine_trainer.multiplies_sparse(
        estimator.device_
    ):
        trainer = WindowedTrainer(
            model, checked, batch_size=block, window_rows=block,
            numpy_products=numpy_products, bound=bound,
        )  # fmt: skip
    else:
        trainer = Trainer(
            [model], [checked], batch_sizes=[block],
            numpy_products=numpy_products, bound=bound,
        )  # fmt: skip
    return trainer.full_batch_objective()


def _record_lbfgs(estimator, result, losses, diverged):
    """Set the fitted attributes of an L-BFGS fit, and warn as it ended."""
    if result is None or diverged:
        estimator.n_iter_ = len(losses)
        if losses:
            estimator.loss_ = losses[-1]
    else:
        estimator.n_iter_ = int(result.nit)
        estimator.loss_ = float(result.fun)
    last = [] if estimator.loss_ is None else [estimator.loss_]
    estimator.loss_curve_ = losses or last
    estimator.best_loss_ = min(estimator.loss_curve_, default=np.inf)
    if diverged:
        warnings.warn(
            f"lbfgs stopped after {estimator.n_iter_} iteration(s): the loss "
            f"({result.fun}) or the weights became infinite or NaN. The model "
            "keeps the last weights with a finite loss (the initial ones after "
            "0 iterations). Scale X (for instance with StandardScaler).",
            ConvergenceWarning,
            stacklevel=5,
        )
    elif result is not None and result.status != 0:
        warnings.warn(
            f"lbfgs failed to converge after {result.nit} iteration(s) "
            f"(status={result.status}): {result.message}. Increase max_iter "
            "or max_fun, or scale the data.",
            ConvergenceWarning,
            stacklevel=5,
        )


# ------------------------------------------------------- stochastic solvers


def fit_stochastic(estimator, fit, *, incremental):
    """Train the epochs of one ``fit`` or ``partial_fit`` with 'adam' or 'sgd'.

    ``fit`` is the checked input (``X``, ``target``, ``sample_weight``,
    ``validation``, ``rng``, ``torch_seed``, which seeds the dropout
    generator); the estimator's model is set up for it. The
    engine's epoch loop (:func:`~skdnn._engine.epochs.run_epochs`) trains it
    as a batch of one, by the estimator's stopping rules.
    """
    X, n_samples = fit.X, fit.X.shape[0]
    generator = torch.Generator(device=estimator.device_).manual_seed(fit.torch_seed)
    batch_size = clipped_batch_size(
        resolved(estimator, "batch_size"), n_samples, stacklevel=4
    )
    if not is_flattened(getattr(estimator, "_flat", None), estimator.module_):
        estimator._flat = flatten_parameters(estimator.module_)
        estimator._optimizer = None
    if estimator._optimizer is None or not incremental:
        estimator._optimizer = new_optimizer(estimator)
    macs = batch_size * estimator._macs()
    threads = n_threads_for(
        estimator.n_threads, device=estimator.device_, macs_per_step=macs
    )
    estimator.n_iter_ = 0
    progress = None
    try:
        # numpy's BLAS keeps to one thread, whose threads would compete
        # with torch's for the cores: the batched trainer multiplies
        # through numpy where torch has one thread.
        with torch_threads(threads), blas_threads(1):
            # Inside the try, where a Ctrl-C is handled: the batched
            # trainer gives the optimizer its (zero) state.
            trainer = epoch_runner(
                estimator, X, fit.target, fit.sample_weight, batch_size=batch_size,
                threads=threads, incremental=incremental, generator=generator,
            )  # fmt: skip
            progress = Progress(
                1, learning_rates=[estimator._optimizer.param_groups[0]["lr"]],
                t=[estimator.t_], best_loss=[_or(estimator.best_loss_, np.inf)],
                best_score=[_or(estimator.best_validation_score_, -np.inf)],
                no_improvement=[estimator._no_improvement_count],
            )  # fmt: skip
            run_epochs(
                trainer, stopping_rules([estimator], incremental), progress,
                shuffles=Shuffles([fit.rng], [estimator.shuffle], [n_samples], [True]),
                validation=stacked_validation([estimator], [fit.validation]),
                keep_optimizer_state=incremental,
                log=(lambda message, m: print(message)) if estimator.verbose else None,
            )  # fmt: skip
    except KeyboardInterrupt:
        # Before the first epoch: nothing has changed.
        progress = None
    _record_progress(estimator, progress, incremental)


def fit_restarts(estimator, fit):
    """Train a fit's ``n_init`` networks as one batch and keep the best.

    Each starts from its own initial weights and trains as ``fit`` trains
    one (the same shuffles, stopping rules and warnings); the estimator
    keeps the one of lowest final training loss, or of best validation
    score with early stopping. If every one diverged, the first trains
    alone, as a fit of one network does, which handles its divergence.
    """
    state = fit.rng.get_state()
    log = None
    if estimator.verbose:
        # The epoch loop's lines, as a fit of one network prints them, each
        # saying whose they are.
        def log(message, m):
            print(f"Restart {m + 1}: {message}")

    run = train_restarts(estimator, fit, log=log)
    kept = keep_best(estimator, run, 0)
    if kept is None:
        fit.rng.set_state(state)
        fit_stochastic(estimator, fit, incremental=False)
        return
    if estimator.verbose:
        print(f"Kept restart {kept + 1} of {len(run.models)}.")
    if run.progress.stop[kept] == INTERRUPTED:
        estimator._optimizer = None
        warnings.warn(
            f"Training interrupted by user after {estimator.n_iter_} complete "
            "epoch(s); the model keeps the best of its networks' weights.",
            stacklevel=5,
        )
    elif run.messages[kept] is not None:
        warnings.warn(run.messages[kept], ConvergenceWarning, stacklevel=5)


def _or(value, default):
    return default if value is None else value


def _record_progress(estimator, progress, incremental):
    """Give the estimator its epochs' record, and warn as the fit ended."""
    if progress is None or progress.stop[0] == INTERRUPTED:
        # Ctrl-C may have caught the optimizer halfway through a step (its
        # first creates its state): a later partial_fit starts a new one.
        estimator._optimizer = None
    if progress is not None:
        record_epochs(estimator, progress)
    stop = "" if progress is None else progress.stop[0]
    if progress is None or stop == INTERRUPTED:
        warnings.warn(
            f"Training interrupted by user after {estimator.n_iter_} complete "
            "epoch(s); the model keeps the weights it has.",
            stacklevel=5,
        )
    elif stop == DIVERGED:
        warnings.warn(
            divergence_message(estimator, progress, 0), ConvergenceWarning,
            stacklevel=5,
        )  # fmt: skip
    elif not incremental and (message := max_iter_warning(estimator, progress, 0)):
        warnings.warn(message, ConvergenceWarning, stacklevel=5)


def divergence_message(estimator, progress, m):
    """The warning of model m's diverged epoch, saying what the model keeps."""
    back = progress.rolled_back_to[m]
    if estimator._validating:
        what = "the weights of its best validation score"
    elif back == 0:
        what = "the weights it had before that epoch"
    else:
        what = (
            f"the weights it had at the start of epoch {back}, the epoch of lowest loss"
        )
    return (
        f"Training diverged in epoch {progress.n_iter[m] + 1}: the loss "
        f"({progress.diverged_loss[m]}) or the weights became infinite or NaN "
        f"with solver={estimator.solver!r} and "
        f"learning_rate_init={estimator.learning_rate_init!r}. Training "
        f"stopped; the model keeps {what}. Lower learning_rate_init, or "
        "scale X (for instance with StandardScaler)."
    )


def epoch_runner(
    estimator, X, target, sample_weight, *, batch_size, threads, incremental,
    generator,
):  # fmt: skip
    """The trainer of one fit's epochs, for the engine's epoch loop.

    Every fit with Adam or SGD trains through the engine's trainer, as a batch of
    one bound to this model's parameters, optimizer state and dropout
    generator: the steps and draws of the batched searches' fits. Small
    networks multiply through numpy there (see
    :func:`~skdnn._engine.trainer.uses_numpy_products`). Sparse input and
    dropout masks past ``_TRAINER_MASK_VALUES`` train a window of rows at a
    time (:class:`~skdnn._engine.windows.WindowedTrainer`). partial_fit
    keeps its trainer (``_partial_trainer``) for the next call on as many
    rows: a new one costs 0.7 ms, a third more than a whole partial_fit of
    50 rows.
    """
    # A trainer kept by the last partial_fit serves this one alone.
    kept = estimator.__dict__.pop("_partial_trainer", None)
    checked = SimpleNamespace(
        X=X, target=target, sample_weight=sample_weight,
        rates=estimator.module_.dropout,
    )  # fmt: skip
    optimizer = estimator._optimizer
    numpy_products = uses_numpy_products(estimator.device_, threads)
    window = _window_rows(estimator, X, batch_size)
    # What the kept trainer was made for: the same optimizer (and so its
    # state's tensors), the same parameter buffer, layout and products. A
    # whole epoch's trainer takes as many rows again; a windowed one any
    # number, in windows of its length.
    layout = ("rows", X.shape[0]) if window is None else ("windows", window)
    key = (
        optimizer, estimator._flat, layout, batch_size, checked.rates,
        sample_weight is None, numpy_products, X.dtype, estimator.solver,
        scipy.sparse.issparse(X),
    )  # fmt: skip
    if incremental and kept is not None and _same_key(kept[0], key):
        trainer = kept[1]
        trainer.reload([checked], generator=generator)
    else:
        trainer = _bound_trainer(
            estimator, checked, batch_size=batch_size, window=window,
            numpy_products=numpy_products, generator=generator,
        )  # fmt: skip
    if incremental:
        estimator._partial_trainer = (key, trainer)
    return trainer


def _bound_trainer(estimator, checked, *, batch_size, window, numpy_products,
                   generator):  # fmt: skip
    """A trainer of the estimator's own parameters, optimizer state and
    dropout generator: the whole epoch's, or ``window`` rows at a time."""
    optimizer = estimator._optimizer
    if estimator.solver == "sgd":
        state = sgd_momentum_buffer(optimizer)
    else:
        # A fit's optimizer is new: zero moments; partial_fit's as it is.
        state = adam_state(optimizer)
    bound = (estimator._flat.detach(), estimator._flat.grad, state, generator)
    model = stacked_model(estimator)
    if window is not None:
        return WindowedTrainer(
            model, checked, batch_size=batch_size, window_rows=window,
            numpy_products=numpy_products, bound=bound,
        )  # fmt: skip
    return Trainer(
        [model], [checked], batch_sizes=[batch_size],
        numpy_products=numpy_products, bound=bound,
    )  # fmt: skip


def _window_rows(estimator, X, batch_size):
    """Rows per window of an epoch that one trainer's grid cannot hold; None
    where it can.

    A trainer holds a whole epoch's dropout masks: past
    ``_TRAINER_MASK_VALUES`` of them, windows of one block of
    :func:`~skdnn._engine.masks.mask_blocks` each, whose masks are the whole
    epoch's trainer's. On the CPU a trainer multiplies sparse X as it is;
    elsewhere sparse X is densified a window at a time: blocks of masks too,
    at most ``_DENSE_WINDOW_VALUES`` values of X each (at least a batch).
    """
    rates = estimator.module_.dropout
    widths = [b.shape[0] for b in estimator.module_.biases[:-1]]
    n_samples = X.shape[0]
    mask_values = n_samples * sum(w for w, p in zip(widths, rates, strict=True) if p)
    sparse = scipy.sparse.issparse(X) and not engine_trainer.multiplies_sparse(
        estimator.device_
    )
    if not sparse and mask_values <= _TRAINER_MASK_VALUES:
        return None
    window = mask_blocks(n_samples, batch_size, widths, rates)[0][1]
    if sparse:
        most = max(1, _DENSE_WINDOW_VALUES // (batch_size * X.shape[1])) * batch_size
        window = min(window, most)
    # A window of rows in mask_blocks' blocks is whole batches, or all rows.
    return -(-window // batch_size) * batch_size


def _same_key(a, b):
    """Whether two trainer keys match: the same objects, equal settings."""
    return all(
        x is y if isinstance(x, torch.Tensor | torch.optim.Optimizer) else x == y
        for x, y in zip(a, b, strict=True)
    )
