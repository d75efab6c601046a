"""Training many networks of one architecture at once, as stacked tensors.

A grid search over a small network spends most of each fit on per-step
overhead, not arithmetic. Here the weights of M independent networks are
stacked along a leading model dimension, ``(M, fan_in, fan_out)``, so that one
batched matrix product (``torch.baddbmm``) does a layer's work for all of them,
and one call of torch's fused Adam kernel updates all M, each model its own
parameter with its own step count: M independent optimizers. What can be
done once per epoch is: each model's batches, the dropout masks, the losses.

Each model keeps what makes it a separate fit: its own rows (folds of any
size), its own batch size, shuffle and initial weights from its own
``random_state`` (drawn exactly as :class:`~skdnn.DNNClassifier` draws them),
its own dropout rate, ``alpha``, learning rate, ``max_iter``, ``tol`` and
``n_iter_no_change``, and its own stopping state.

Nothing here reads or writes estimator state except :func:`prepare_fit` and
:func:`finish_fit`, which do what ``DNNClassifier.fit`` does before its first
epoch and after its last.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import math
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ._device import blas_threads, n_threads_for, torch_threads
from ._network import ACTIVATIONS_INPLACE, flatten_parameters
from ._training import (
    _ACTIVATION_BACKWARD_INPLACE,
    fused_adam_kernel,
    load_adam_state,
    mask_blocks,
    to_device,
)


def batchable_reason(estimator):
    """Why a DNNClassifier's fit cannot be batched, or None when it can.

    The batched trainer does what ``fit`` does for Adam without early
    stopping on dense input; anything else trains sequentially.
    """
    if estimator.solver != "adam":
        return f"solver={estimator.solver!r} (only 'adam' is batched)"
    if estimator.early_stopping:
        return "early_stopping=True"
    if estimator.verbose:
        return "verbose=True (per-epoch messages)"
    if estimator.warm_start:
        return "warm_start=True"
    return None


def prepare_fit(estimator, X, y):
    """Do what ``fit`` does before its first epoch; return what training needs.

    The checks, target encoding, class weights and random draws are the
    estimator's own, in its order: the torch seed, then the initial weights,
    from ``_random_state_for_fit``. The estimator is left with every fitted
    attribute of a fit that has run no epoch; :func:`finish_fit` completes it.

    Returns
    -------
    types.SimpleNamespace
        The checked input, as ``DNNClassifier._checked_input`` returns it:
        training reads ``X``, ``target``, ``sample_weight`` (ndarray or
        None), ``rng`` (the RandomState that draws the shuffles next),
        ``torch_seed`` and ``rates``.
    """
    fit = estimator._checked_input(X, y, None, incremental=False, classes=None)
    estimator._start_fit(fit)
    return fit


def group_key(estimator):
    """Models with equal keys can be trained in one batch."""
    module = estimator.module_
    units = (module.weights[0].shape[0], *(W.shape[1] for W in module.weights))
    return (
        units,
        module.activation,
        estimator.out_activation_,
        module.weights[0].dtype,
        estimator.device_,
        estimator.beta_1,
        estimator.beta_2,
        estimator.epsilon,
    )


def finish_fit(
    estimator, *, weights, biases, loss_curve, no_improvement_count, adam_state
):
    """Give a prepared estimator its trained weights and the record of its fit.

    ``adam_state`` is the model's ``(exp_avg, exp_avg_sq, step)``: the
    estimator gets the optimizer ``fit`` leaves, in that state, so that
    ``partial_fit`` continues Adam as it would after ``fit``.
    """
    with torch.no_grad():
        for param, value in zip(estimator.module_.weights, weights, strict=True):
            param.copy_(value)
        for param, value in zip(estimator.module_.biases, biases, strict=True):
            param.copy_(value)
    n_samples = estimator._batched_n_samples
    del estimator._batched_n_samples
    estimator.n_iter_ = len(loss_curve)
    estimator.t_ = n_samples * len(loss_curve)
    estimator.loss_curve_ = list(loss_curve)
    estimator.loss_ = loss_curve[-1] if loss_curve else None
    estimator.best_loss_ = min(loss_curve, default=np.inf)
    estimator._no_improvement_count = no_improvement_count
    # The flat parameter's layout, weights then biases, is a batched model's
    # row: its Adam moments carry over as they are.
    estimator._flat = flatten_parameters(estimator.module_)
    estimator._optimizer = estimator._new_optimizer()
    exp_avg, exp_avg_sq, step = adam_state
    load_adam_state(
        estimator._optimizer, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, step=step
    )
    return estimator


def _batch_sizes(estimators, n_rows):
    sizes = []
    for est, n in zip(estimators, n_rows, strict=True):
        if est.batch_size == "auto":
            sizes.append(min(200, n))
        else:
            if est.batch_size > n:
                warnings.warn(
                    f"Got batch_size={est.batch_size} larger than the number of "
                    f"training samples ({n}); it is clipped to {n}.",
                    stacklevel=3,
                )
            sizes.append(min(est.batch_size, n))
    return np.array(sizes)


def batch_layout(n_rows, batch):
    """Where each model's batches sit in an epoch's grid of steps and slots.

    Parameters
    ----------
    n_rows : ndarray of int
        Each model's number of training rows.
    batch : ndarray of int
        Each model's batch size.

    Returns
    -------
    source : ndarray of int64 of shape (n_steps, n_models, max_batch)
        For a slot in use, the position in the models' concatenated epoch
        orders (see :func:`epoch_rows`) of the row it holds; 0 elsewhere.
    valid : ndarray of bool of the same shape
        The slots in use: slot j of step s of model m holds position
        ``s * batch[m] + j`` of the model's order, as the sequential fit cuts
        its epoch, when ``j < batch[m]`` and that position exists.
    """
    n_rows, batch = np.asarray(n_rows), np.asarray(batch)
    offsets = np.concatenate([[0], np.cumsum(n_rows)[:-1]])
    S, B = int((-(-n_rows // batch)).max()), int(batch.max())
    slot = np.arange(B)[None, None, :]
    position = np.arange(S)[:, None, None] * batch[None, :, None] + slot
    valid = (slot < batch[None, :, None]) & (position < n_rows[None, :, None])
    source = np.where(valid, position + offsets[None, :, None], 0)
    return source, valid


def epoch_rows(orders, layout):
    """Every model's batches of one epoch, as one grid of row numbers.

    Parameters
    ----------
    orders : list of ndarray
        Each model's rows in the order its epoch visits them, a permutation
        of ``range(n_rows[m])``.
    layout : tuple
        :func:`batch_layout` of the models' row counts and batch sizes.

    Returns
    -------
    ndarray of int64 of shape (n_steps, n_models, max_batch)
        Step s of model m trains on ``index[s, m][valid[s, m]]``, with the
        layout's ``valid``: rows of the models' data one after another (model
        m's row i is row ``offsets[m] + i``), ``orders[m][s * b : (s + 1) *
        b]`` offset so. Slots not in use hold 0, padding.
    """
    source, valid = layout
    n_rows = np.array([len(order) for order in orders])
    offsets = np.concatenate([[0], np.cumsum(n_rows)[:-1]])
    rows = np.concatenate(orders).astype(np.int64) + np.repeat(offsets, n_rows)
    return np.where(valid, rows[source], 0)


def train_batched(estimators, prepared, *, numpy_products=None):
    """Train prepared estimators of one :func:`group_key` together.

    Parameters
    ----------
    estimators : list of DNNClassifier
        Prepared by :func:`prepare_fit`, all with the same group key.
    prepared : list of dict
        What :func:`prepare_fit` returned for each.
    numpy_products : bool, default=None
        Whether the matrix products go through numpy (see
        :class:`_Workspace`); None: as :func:`uses_numpy_products` decides.
        Tests set it to check both.

    Returns
    -------
    diverged : ndarray of bool of shape (n_models,)
        Models whose loss or weights became infinite or NaN. They are left
        unfinished: the caller fits them sequentially, which handles
        divergence as ``fit`` does.
    """
    first = estimators[0]
    n_model_weights = sum(W.numel() for W in first.module_.weights)
    # The estimator's rule for threads, on the batch's work per step: one
    # thread for small work, where more cost more than they save.
    threads = n_threads_for(
        first.n_threads,
        device=first.device_,
        macs_per_step=len(estimators) * 200 * n_model_weights,
    )
    if numpy_products is None:
        numpy_products = uses_numpy_products(first.device_, threads)
    with torch_threads(threads), blas_threads(threads), torch.no_grad():
        return _train(estimators, prepared, numpy_products=numpy_products)


def uses_numpy_products(device, threads):
    """Whether training's matrix products go through numpy (see _Workspace).

    On the CPU, for work small enough for one thread: numpy's BLAS and
    torch's OpenMP threads would compete for the cores on larger work (on
    W3, (256, 256) with batches of 256, each product took milliseconds).
    """
    return device.type == "cpu" and threads == 1


def _train(estimators, prepared, *, numpy_products=None):
    trainer = Trainer(estimators, prepared, numpy_products=numpy_products)
    M = len(estimators)
    n_rows = trainer.n_rows
    max_iter = np.array([est.max_iter for est in estimators])
    tol = np.array([est.tol for est in estimators])
    patience = np.array([est.n_iter_no_change for est in estimators], dtype=float)
    running = np.ones(M, dtype=bool)
    diverged = np.zeros(M, dtype=bool)
    curves = [[] for _ in range(M)]
    best = np.full(M, np.inf)
    no_improvement = np.zeros(M, dtype=int)

    epoch = 0
    while running.any():
        # Each model's epoch as the sequential fit makes it: its own
        # permutation from its own RandomState.
        orders = [
            prepared[m].rng.permutation(n_rows[m])
            if running[m] and estimators[m].shuffle
            else np.arange(n_rows[m])
            for m in range(M)
        ]
        epoch_loss, finite = trainer.run_epoch(orders, running)
        epoch += 1
        for m in np.flatnonzero(running):
            loss = epoch_loss[m]
            if not (math.isfinite(loss) and finite[m]):
                diverged[m] = True
                running[m] = False
                continue
            curves[m].append(loss)
            if loss > best[m] - tol[m]:
                no_improvement[m] += 1
            else:
                no_improvement[m] = 0
            best[m] = min(best[m], loss)
            if no_improvement[m] > patience[m]:
                running[m] = False
            elif epoch >= max_iter[m]:
                running[m] = False
                if np.isfinite(patience[m]):
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({max_iter[m]}) "
                        "reached and the optimization hasn't converged yet.",
                        ConvergenceWarning,
                        stacklevel=2,
                    )

    ws, adam = trainer.ws, trainer.adam
    for m, est in enumerate(estimators):
        if diverged[m]:
            continue
        est._batched_n_samples = int(n_rows[m])
        finish_fit(
            est,
            weights=[W[m] for W in ws.weights],
            biases=[b[m, 0] for b in ws.biases],
            loss_curve=curves[m],
            no_improvement_count=int(no_improvement[m]),
            adam_state=(adam.exp_avg[m], adam.exp_avg_sq[m], adam.steps[m]),
        )
    return diverged


class Trainer:
    """Networks of one :func:`group_key`, trained epoch by epoch together.

    Everything that lasts from epoch to epoch is made once: the models'
    data, the workspace, the optimizers, the dropout masks' generators, and
    one epoch's grid of batches (data, targets, masks, logits), which every
    epoch fills in place, each step reading its own views of it.

    Parameters
    ----------
    estimators : list of DNNClassifier
        Prepared (see :func:`prepare_fit`); their initial weights are the
        stacked networks' starting point.
    prepared : list of SimpleNamespace
        Each estimator's checked input (``X``, ``target``,
        ``sample_weight``, ``torch_seed``, ``rates``).
    numpy_products : bool, default=None
        Whether the matrix products go through numpy (see
        :class:`_Workspace`); None: on the CPU. Callers decide with
        :func:`uses_numpy_products` and limit BLAS's threads accordingly.
    batch_sizes : sequence of int, default=None
        Each model's batch size, already clipped to its rows; None: from
        the estimators' ``batch_size``, warning where it is clipped.
    bound : tuple, default=None
        For one estimator's own ``fit``: ``(flat, grad, adam_state,
        generator)``, its flat parameter and gradient, the ``(exp_avg,
        exp_avg_sq, step)`` of its ``torch.optim.Adam`` and its dropout
        generator. Training then updates these in place, as the fit's own
        loop would, instead of copies.
    """

    def __init__(
        self,
        estimators,
        prepared,
        *,
        numpy_products=None,
        batch_sizes=None,
        bound=None,
    ):
        M = len(estimators)
        first = estimators[0]
        dtype = first.module_.weights[0].dtype
        device = first.device_
        self.softmax = softmax = first.out_activation_ == "softmax"

        # Every model's rows, one after another: model m's row i is row
        # offsets[m] + i. Folds share no memory here; the data of a grid
        # search is copied once per candidate and fold.
        self.n_rows = n_rows = np.array([len(p.X) for p in prepared])
        # One model's rows are read in place (fit's X is not written to).
        X_all = prepared[0].X if M == 1 else np.concatenate([p.X for p in prepared])
        self.X_all = to_device(X_all, device, dtype)
        target_all = np.concatenate([p.target for p in prepared])
        self.target_all = to_device(target_all, device, dtype if not softmax else None)
        self.weighted = any(p.sample_weight is not None for p in prepared)
        self.shares_for = None
        self.weight_all = np.concatenate(
            [
                np.ones(n, dtype=np.float64) if p.sample_weight is None
                else np.asarray(p.sample_weight, dtype=np.float64)
                for p, n in zip(prepared, n_rows, strict=True)
            ]
        )  # fmt: skip
        if batch_sizes is None:
            batch = _batch_sizes(estimators, n_rows)
        else:
            batch = np.asarray(batch_sizes)
        self.layout = layout = batch_layout(n_rows, batch)
        S, M, B = layout[1].shape
        # Each step's real rows per model, the same every epoch it runs.
        self.rows_per_step = layout[1].sum(axis=2)

        rates = np.array([p.rates for p in prepared]).reshape(M, -1)
        if numpy_products is None:
            numpy_products = device.type == "cpu"
        flat, grad, adam_state, generator = bound or (None, None, None, None)
        self.ws = ws = _Workspace(
            first,
            M,
            B,
            dropped=rates.any(axis=0),
            device=device,
            numpy_products=numpy_products,
            flat=flat,
            grad=grad,
        )
        if flat is None:
            for m, est in enumerate(estimators):
                parts = [p.reshape(-1) for p in est.module_.weights]
                parts += [p.reshape(-1) for p in est.module_.biases]
                ws.flat[m].copy_(torch.cat(parts))
        self.adam = make_adam(
            flat=ws.flat,
            grad=ws.grad,
            learning_rates=[est.learning_rate_init for est in estimators],
            beta_1=first.beta_1,
            beta_2=first.beta_2,
            eps=first.epsilon,
            state=adam_state,
        )
        self.alpha = torch.tensor(
            [est.alpha for est in estimators], dtype=dtype, device=device
        ).reshape(1, M, 1)
        # One epoch's data, masks, logits and weight norms, filled in place
        # every epoch; step s reads views of their row s, made once.
        grid = (S, M, B)
        n_features = self.X_all.shape[1]
        self.X_epoch = torch.empty((*grid, n_features), dtype=dtype, device=device)
        n_targets = 1 if softmax else target_all.shape[1]
        self.t_epoch = torch.empty(
            (*grid, n_targets), dtype=self.target_all.dtype, device=device
        )
        self.share = torch.empty((*grid, 1), dtype=dtype, device=device)
        self.coef = torch.empty((S, M, 1), dtype=dtype, device=device)
        self.logits = torch.empty((*grid, ws.n_outputs), dtype=dtype, device=device)
        self.squared_norms = torch.empty((S, M), dtype=dtype, device=device)
        if generator is None:
            generators = [
                torch.Generator(device=device).manual_seed(p.torch_seed)
                for p in prepared
            ]
        else:
            generators = [generator]
        self.dropout = _EpochMasks(
            layout=layout,
            batch=batch,
            widths=ws.widths,
            rates=rates,
            generators=generators,
            dtype=dtype,
        )
        X_epoch = self.X_epoch
        if ws.forward_by_columns[0]:
            X_columns = [X_epoch[..., k : k + 1].unbind(0) for k in range(n_features)]
            X_columns = list(zip(*X_columns, strict=True))
        else:
            X_columns = [None] * S
        self.steps = [
            _StepViews(
                X=X,
                X_columns=columns,
                X_T=X.transpose(1, 2),
                X_np=ws.as_numpy(X),
                X_T_np=ws.as_numpy(X.transpose(1, 2)),
                target=target,
                share=step_share,
                coef=step_coef,
                masks=masks,
                logits=step_logits,
                logits_np=ws.as_numpy(step_logits),
                squared_norm=squared_norm,
            )
            for X, columns, target, step_share, step_coef, masks, step_logits,
            squared_norm in zip(
                X_epoch.unbind(0),
                X_columns,
                self.t_epoch.unbind(0),
                self.share.unbind(0),
                self.coef.unbind(0),
                self.dropout.per_step(),
                self.logits.unbind(0),
                self.squared_norms.unbind(0),
                strict=True,
            )
        ]  # fmt: skip

    def run_epoch(self, orders, running):
        """One epoch of every running model, each visiting its rows in its order.

        Parameters
        ----------
        orders : list of ndarray
            Each model's permutation of its rows (any, for a stopped model).
        running : ndarray of bool
            The models that train; the others are left exactly as they are.

        Returns
        -------
        losses : list of float
            Each model's epoch loss, the mean of its batch losses weighted
            by their rows, as ``fit`` records it (meaningless for a stopped
            model).
        finite : list of bool
            Whether each model's parameters are all finite.
        """
        ws, layout, device = self.ws, self.layout, self.X_all.device
        dtype = self.X_epoch.dtype
        # Each model's batches of its own size; slots past a model's batch,
        # and steps past its last batch, are padding: weight 0, no update.
        rows = epoch_rows(orders, layout)
        real_rows = self.rows_per_step * running
        active = real_rows > 0
        _take_rows(
            rows.reshape(-1),
            ((self.X_all, self.X_epoch), (self.target_all, self.t_epoch)),
        )
        # Without sample weights, each row's share of its batch depends only
        # on which models run: computed again only when that changes.
        key = running.tobytes()
        if self.weighted or key != self.shares_for:
            self.shares_for = key
            weight = layout[1] & running[None, :, None]
            if self.weighted:
                weight = np.where(weight, self.weight_all[rows], 0.0)
            w = torch.from_numpy(weight).to(device=device, dtype=dtype).unsqueeze(3)
            # skdnn's batch loss is the weighted mean over the batch's real
            # rows: padding adds 0 to both sums. A batch of zero weight
            # contributes nothing, as in backward.
            inverse_sum = w.sum(dim=2).reciprocal_().nan_to_num_(posinf=0.0)
            torch.mul(w, inverse_sum.unsqueeze(2), out=self.share)
            torch.mul(self.alpha, inverse_sum, out=self.coef)
        self.dropout.draw(running)
        update = self.adam.update
        # Overflow shows as non-finite losses or weights, which the caller
        # handles, as with torch's operations, not as numpy's warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            for views, stepping, every in zip(
                self.steps, active, active.all(axis=1).tolist(), strict=True
            ):
                _step(ws, views, softmax=self.softmax)
                update(stepping, every)
        losses = _step_losses(
            logits=self.logits,
            target=self.t_epoch,
            share=self.share,
            coef=self.coef,
            squared_norms=self.squared_norms,
            softmax=self.softmax,
        )
        rows_t = torch.from_numpy(real_rows).to(device=device, dtype=dtype)
        totals = (losses * rows_t).sum(dim=0).tolist()
        finite = torch.isfinite(ws.flat.sum(dim=1)).tolist()
        return [t / n for t, n in zip(totals, self.n_rows, strict=True)], finite


def _take_rows(rows, pairs):
    """Copy ``source[rows]`` into each ``(source, out)`` pair's ``out``."""
    if pairs[0][0].device.type == "cpu":
        # numpy's take: a third faster than index_select on narrow rows.
        for source, out in pairs:
            np.take(
                source.numpy(),
                rows,
                axis=0,
                out=out.view(-1, *source.shape[1:]).numpy(),
            )
        return
    index = torch.from_numpy(rows).to(pairs[0][0].device)
    for source, out in pairs:
        torch.index_select(source, 0, index, out=out.view(-1, *source.shape[1:]))


# torch's CPU bmm multiplies matrices of fewer than 400 multiply-adds in an
# unvectorized loop that costs about 3 ns per output: a (32, 2) @ (2, 6)
# product of 30 models took 28 us there, against 12 us as two broadcast
# multiply-adds, one per column of the left matrix. numpy's matmul, one BLAS
# call per model, is faster still on the CPU (see _Workspace).
_BMM_LOOP_MACS = 400


def _by_columns(rows, inner, cols, device, *, numpy_products=False):
    """Whether a batched product is cheaper as one broadcast op per inner index."""
    if inner == 1:
        # An outer product: one broadcast multiply, the same numbers as bmm.
        return True
    return (
        not numpy_products
        and device.type == "cpu"
        and inner == 2
        and rows * inner * cols < _BMM_LOOP_MACS
    )


def _product(a, a_columns, b, b_rows, *, bias, out):
    """``bias + a @ b`` into ``out``, by bmm or by columns of ``a``.

    With ``a_columns`` (the views ``a[..., k : k + 1]``) and ``b_rows``
    (``b[:, k : k + 1, :]``) it is a sum of broadcast products; for one
    column, the same numbers as bmm.
    """
    if a_columns is None:
        if bias is None:
            return torch.bmm(a, b, out=out)
        return torch.baddbmm(bias, a, b, out=out)
    if bias is None:
        torch.mul(a_columns[0], b_rows[0], out=out)
    else:
        torch.addcmul(bias, a_columns[0], b_rows[0], out=out)
    for column, row in zip(a_columns[1:], b_rows[1:], strict=True):
        out.addcmul_(column, row)
    return out


class _StepViews(NamedTuple):
    """One step's slices of the epoch's buffers (``*_np``: numpy views or None)."""

    X: torch.Tensor
    X_columns: tuple | None
    X_T: torch.Tensor
    X_np: np.ndarray | None
    X_T_np: np.ndarray | None
    target: torch.Tensor
    share: torch.Tensor
    coef: torch.Tensor
    masks: tuple
    logits: torch.Tensor
    logits_np: np.ndarray | None
    squared_norm: torch.Tensor


class _Workspace:
    """The stacked networks' parameters, gradients and per-step buffers.

    Parameters live in one ``(n_models, n_params)`` buffer, weights first,
    each layer a strided view of it, so that the L2 term is one operation
    over every weight and each model's parameters are one row for Adam.
    Every step writes its activations and gradients into the same memory.

    With ``numpy_products`` (the default on the CPU) the matrix products go
    through numpy views of the same memory: ``np.matmul`` makes one BLAS call
    per model, which on 30 models of a 2-6-4-1 network took 3 to 7 us a
    product where torch's bmm took 9 to 18 (its small-matrix loop is
    unvectorized, and its larger path copies a strided output), and it
    writes each model's weight gradient straight into its row of the flat
    gradient.
    """

    def __init__(self, estimator, n_models, batch_size, *, dropped, device,
                 numpy_products=False, flat=None, grad=None):  # fmt: skip
        M, B = n_models, batch_size
        dtype = estimator.module_.weights[0].dtype
        shapes = [tuple(W.shape) for W in estimator.module_.weights]
        self.numpy_products = numpy_products
        self.last = len(shapes) - 1
        self.n_weights = sum(a * b for a, b in shapes)
        n_params = self.n_weights + sum(b for _, b in shapes)
        if flat is None:
            self.flat = torch.empty((M, n_params), dtype=dtype, device=device)
            self.grad = torch.zeros_like(self.flat)
        else:
            # One fit's own flat parameter and gradient, trained in place.
            self.flat, self.grad = flat.view(1, n_params), grad.view(1, n_params)
        self.flat_weights = self.flat[:, : self.n_weights]
        self.grad_flat_weights = self.grad[:, : self.n_weights]
        self.weights, self.biases = _layer_views(self.flat, shapes)
        self.grad_weights, self.grad_biases = _layer_views(self.grad, shapes)
        # bmm into a strided view of the gradient took a path four times as
        # slow for a (6, 4) layer: each product goes through a buffer.
        # (numpy's matmul writes into the view directly.)
        self.grad_buffers = (
            None if numpy_products else [torch.empty_like(W) for W in self.grad_weights]
        )
        self.widths = [fan_out for _, fan_out in shapes[:-1]]
        self.n_outputs = shapes[-1][1]

        def empty(width):
            return torch.empty((M, B, width), dtype=dtype, device=device)

        self.outputs = [empty(w) for w in self.widths]
        self.masked = [
            empty(w) if d else None for w, d in zip(self.widths, dropped, strict=True)
        ]
        self.upstream = [empty(w) for w in self.widths]
        self.delta = empty(self.n_outputs)
        self.minus_ones = torch.full((M, B, 1), -1.0, dtype=dtype, device=device)
        # Layer i + 1's input, and its columns when its products go by
        # columns; layer 0's is the step's data.
        self.inputs = [
            m if d else o
            for m, o, d in zip(self.masked, self.outputs, dropped, strict=True)
        ]
        self.inputs_T = [h.transpose(1, 2) for h in self.inputs]

        def by_columns(inner, cols):
            return _by_columns(B, inner, cols, device, numpy_products=numpy_products)

        self.forward_by_columns = [by_columns(a, b) for a, b in shapes]
        self.input_columns = [
            [h[..., k : k + 1] for k in range(h.shape[2])]
            if self.forward_by_columns[i + 1]
            else None
            for i, h in enumerate(self.inputs)
        ]
        self.weight_rows = [
            [W[:, k : k + 1, :] for k in range(W.shape[1])] if by_columns else None
            for W, by_columns in zip(self.weights, self.forward_by_columns, strict=True)
        ]
        # Layer i's error, the left factor of its upstream product delta @ W.T.
        self.weights_T = [W.transpose(1, 2) for W in self.weights]
        deltas = [*self.upstream, self.delta]
        self.delta_columns = [
            [d[..., k : k + 1] for k in range(d.shape[2])]
            if i > 0 and by_columns(b, a)
            else None
            for i, (d, (a, b)) in enumerate(zip(deltas, shapes, strict=True))
        ]
        self.weight_T_rows = [
            [W_T[:, k : k + 1, :] for k in range(W_T.shape[1])] if columns else None
            for W_T, columns in zip(self.weights_T, self.delta_columns, strict=True)
        ]
        self.act = ACTIVATIONS_INPLACE[estimator.module_.activation]
        self.act_backward = _ACTIVATION_BACKWARD_INPLACE[estimator.module_.activation]
        as_numpy = self.as_numpy
        self.weights_np = [as_numpy(W) for W in self.weights]
        self.weights_T_np = [as_numpy(W) for W in self.weights_T]
        self.grad_weights_np = [as_numpy(W) for W in self.grad_weights]
        self.outputs_np = [as_numpy(h) for h in self.outputs]
        self.inputs_np = [as_numpy(h) for h in self.inputs]
        self.inputs_T_np = [as_numpy(h) for h in self.inputs_T]
        self.deltas_np = [as_numpy(d) for d in deltas]

    def as_numpy(self, tensor):
        """A numpy view of ``tensor`` for the products, or None without them."""
        return tensor.numpy() if self.numpy_products else None


def _layer_views(buffer, shapes):
    M = buffer.shape[0]
    weights, biases, start = [], [], 0
    for fan_in, fan_out in shapes:
        size = fan_in * fan_out
        weights.append(buffer[:, start : start + size].view(M, fan_in, fan_out))
        start += size
    for _, fan_out in shapes:
        biases.append(buffer[:, start : start + fan_out].view(M, 1, fan_out))
        start += fan_out
    return weights, biases


class _EpochMasks:
    """Every step's dropout masks of an epoch, each model's as its own fit draws them.

    Each model has its own generator, seeded with its fit's torch seed, and
    draws from it what :func:`~skdnn._training.dropout_mask_batches` draws in
    ``fit``: the same blocks of rows, layer after layer, 16 random bits per
    unit. So a model's masks are its sequential fit's, bit for bit. Then, as
    in :func:`~skdnn._network.dropout_masks`, a unit is kept when its bits,
    read as a signed 16-bit integer, reach its model's threshold (a model of
    rate 0 keeps every unit), and kept units are scaled by ``1 / (1 - p)``.

    Each layer's bits lie in one region per model. A model whose batches
    fill the grid's slots (its batch size is the largest) draws each block
    where its rows sit in the grid, so that one strided copy per layer moves
    every such model's bits into place; another model's bits are gathered
    by indices made once.

    Parameters
    ----------
    layout : tuple
        :func:`batch_layout` of the models' row counts and batch sizes.
    batch : ndarray of int
        Each model's batch size.
    widths : list of int
        The hidden layers' widths.
    rates : ndarray of shape (n_models, n_hidden_layers)
        Each model's dropout rate per layer.
    generators : list of torch.Generator
        Each model's, seeded with its torch seed.
    dtype : torch.dtype
        The masks'.
    """

    def __init__(self, *, layout, batch, widths, rates, generators, dtype):
        _, valid = layout
        S, M, B = valid.shape
        device = generators[0].device
        n_rows = valid.sum(axis=(0, 2))
        self.layers = [i for i in range(len(widths)) if rates[:, i].any()]
        self.n_steps, self.n_layers = S, len(widths)
        self.generators = generators
        plans = [
            mask_blocks(int(n_rows[m]), int(batch[m]), widths, rates[m])
            for m in range(M)
        ]
        most_blocks = max(len(plan) for plan in plans)
        self.masks, self.regions, self.draws, self.gathers = {}, {}, [], []
        for i in self.layers:
            # Room for the grid's units, and for each block's draw rounding
            # up to whole 64-bit values.
            size = -(-S * B * widths[i] // 4) + most_blocks
            self.regions[i] = torch.empty((M, size), dtype=torch.int64, device=device)
            self.masks[i] = torch.empty(
                (S, M, B, widths[i]), dtype=dtype, device=device
            )
        for m in range(M):
            b, dropped = int(batch[m]), np.flatnonzero(rates[m])
            direct = b == B and all(
                start * widths[i] % 4 == 0 for start, _ in plans[m] for i in dropped
            )
            draws, offsets = [], dict.fromkeys(dropped, 0)
            for start, count in plans[m] if len(dropped) else ():
                for i in dropped:
                    begin = start * widths[i] // 4 if direct else offsets[i]
                    end = begin + -(-count * widths[i] // 4)
                    draws.append(self.regions[i][m, begin:end])
                    offsets[i] = end
            self.draws.append(draws)
            if direct:
                continue
            rows = np.arange(n_rows[m])
            for i in dropped:
                # The int16 position of each of the model's grid units in its
                # region: block after block, each rounded up to 64 bits.
                w = widths[i]
                position = np.zeros((S, B, w), dtype=np.int64)
                offset = 0
                for start, count in plans[m]:
                    block = rows[start : start + count]
                    units = (block - start)[:, None] * w + np.arange(w)
                    position[block // b, block % b] = 4 * offset + units
                    offset += -(-count * w // 4)
                self.gathers.append(
                    (
                        self.regions[i][m].view(torch.int16),
                        torch.from_numpy(position).to(device),
                        torch.empty((S, B, w), dtype=torch.int16, device=device),
                        self.masks[i][:, m],
                    )
                )

        def per_model(values):
            return torch.tensor(values, dtype=dtype, device=device).view(1, M, 1, 1)

        self.conversions = []
        for i in self.layers:
            grid_units = S * B * widths[i]
            placed = self.regions[i].view(torch.int16)[:, :grid_units]
            dropped = np.minimum(np.round(rates[:, i] * 65536), 65535)
            self.conversions.append(
                (
                    placed.view(M, S, B, widths[i]).transpose(0, 1),
                    self.masks[i],
                    per_model(dropped - 32768),
                    per_model(1.0 / (1.0 - rates[:, i])),
                )
            )

    def per_step(self):
        """Each step's tuple of masks per hidden layer (empty without dropout)."""
        if not self.layers:
            return [()] * self.n_steps
        per_layer = [
            self.masks[i].unbind(0) if i in self.masks else [None] * self.n_steps
            for i in range(self.n_layers)
        ]
        return list(zip(*per_layer, strict=True))

    def draw(self, running):
        """The next epoch's masks of the models where ``running`` is true.

        A stopped model draws nothing, as its fit would have ended.
        """
        if not self.layers:
            return
        for m in np.flatnonzero(running):
            for bits in self.draws[m]:
                bits.random_(-(2**63), None, generator=self.generators[m])
        # Units stay int16 until the copy into the float masks: the models
        # in place take one copy per layer, the others a gather each.
        for placed, mask, _, _ in self.conversions:
            mask.copy_(placed)
        for region, index, units, mask in self.gathers:
            torch.take(region, index, out=units)
            mask.copy_(units)
        for _, mask, threshold, scale in self.conversions:
            mask.ge_(threshold).mul_(scale)


def _step_losses(*, logits, target, share, coef, squared_norms, softmax):
    """Each step's batch loss, shape (n_steps, n_models), from what it saved.

    A step's loss needs only its logits and the squared norm of its weights
    before the update, so every step's loss is computed at once at the
    epoch's end.
    """
    if softmax:
        per_sample = torch.log_softmax(logits, dim=3).gather(3, target).neg_()
    else:
        per_sample = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction="none"
        ).sum(dim=3, keepdim=True)
    data = (per_sample * share).sum(dim=(2, 3))
    penalty = squared_norms * coef.squeeze(2)
    return data.add_(penalty, alpha=0.5)


def _step(ws, views, *, softmax):
    """Every model's gradient into ``ws.grad``; its logits and weight norm saved.

    :func:`~skdnn._training.backward` with a leading model dimension: the
    error at the output is ``(p - target)`` times each row's share of its
    model's batch weight, propagated back through each model's own weights
    and masks.
    """
    last, masks, numpy_products = ws.last, views.masks, ws.numpy_products
    h, columns, h_np = views.X, views.X_columns, views.X_np
    for i in range(last + 1):
        out = ws.outputs[i] if i < last else views.logits
        if numpy_products:
            np.matmul(h_np, ws.weights_np[i], out=ws.outputs_np[i] if i < last
                      else views.logits_np)  # fmt: skip
            out.add_(ws.biases[i])
        else:
            _product(
                h, columns, ws.weights[i], ws.weight_rows[i], bias=ws.biases[i],
                out=out,
            )  # fmt: skip
        if i == last:
            break
        ws.act(out)
        if masks and masks[i] is not None:
            torch.mul(out, masks[i], out=ws.masked[i])
        h, columns, h_np = ws.inputs[i], ws.input_columns[i], ws.inputs_np[i]
    delta = ws.delta
    if softmax:
        torch.ops.aten._log_softmax.out(views.logits, 2, False, out=delta).exp_()
        delta.scatter_add_(2, views.target, ws.minus_ones)
    else:
        torch.sigmoid(views.logits, out=delta).sub_(views.target)
    delta.mul_(views.share)
    for i in range(last, -1, -1):
        if numpy_products:
            np.matmul(
                ws.inputs_T_np[i - 1] if i else views.X_T_np,
                ws.deltas_np[i],
                out=ws.grad_weights_np[i],
            )
        else:
            torch.bmm(
                ws.inputs_T[i - 1] if i else views.X_T, delta, out=ws.grad_buffers[i]
            )
            ws.grad_weights[i].copy_(ws.grad_buffers[i])
        torch.sum(delta, dim=1, keepdim=True, out=ws.grad_biases[i])
        if i == 0:
            break
        upstream = ws.upstream[i - 1]
        if numpy_products and ws.delta_columns[i] is None:
            np.matmul(ws.deltas_np[i], ws.weights_T_np[i], out=ws.deltas_np[i - 1])
        else:
            _product(
                delta, ws.delta_columns[i], ws.weights_T[i], ws.weight_T_rows[i],
                bias=None, out=upstream,
            )  # fmt: skip
        if masks and masks[i - 1] is not None:
            upstream.mul_(masks[i - 1])
        delta = ws.act_backward(upstream, ws.outputs[i - 1])
    # d/dW of (alpha / 2) ||W||^2 / weight_sum, each model its own alpha and
    # batch weight; the penalty itself joins the loss at the epoch's end,
    # from the norm saved here (not the weights: a copy per step would take
    # memory of n_steps times the models' weights).
    torch.linalg.vecdot(ws.flat_weights, ws.flat_weights, out=views.squared_norm)
    ws.grad_flat_weights.addcmul_(ws.flat_weights, views.coef)


class BatchedAdam(NamedTuple):
    """What :func:`make_adam` returns: the update and the optimizers' state."""

    update: Callable
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    steps: torch.Tensor


def make_adam(
    *, flat, grad, learning_rates, beta_1, beta_2, eps, fused=None, state=None
):
    """Adam for each row of ``flat``, as an independent ``torch.optim.Adam``.

    Parameters
    ----------
    flat, grad : Tensor of shape (n_models, n_params)
        Each model's parameters and their gradient.
    learning_rates : sequence of float
        Each model's.
    beta_1, beta_2, eps : float
    fused : bool, default=None
        Whether to call torch's fused kernel; None: where torch has one.
    state : tuple, default=None
        For one model (fused only): the ``(exp_avg, exp_avg_sq, step)`` of
        a ``torch.optim.Adam(fused=True)``, updated in place as its own
        step would; None: new zero moments and counts.

    Returns
    -------
    BatchedAdam
        Its ``update(active, every)`` steps the models where the boolean
        array ``active`` is true and leaves the others exactly as they are:
        parameters, moments and step count; ``every`` says whether
        ``active`` is all true. ``exp_avg``, ``exp_avg_sq`` (each model's
        row) and ``steps`` (shape (n_models,)) are the optimizers' state.
    """
    M = flat.shape[0]
    if fused is None:
        fused = hasattr(torch, "_fused_adam_") and flat.device.type in ("cpu", "cuda")
    if state is not None:
        exp_avg, exp_avg_sq, step = state
        exp_avg, exp_avg_sq = exp_avg.view(1, -1), exp_avg_sq.view(1, -1)
    else:
        exp_avg = torch.zeros_like(flat)
        exp_avg_sq = torch.zeros_like(flat)
    if not fused:
        counts = torch.zeros((M, 1), dtype=flat.dtype, device=flat.device)
        lr = torch.tensor(learning_rates, dtype=flat.dtype, device=flat.device).reshape(
            M, 1
        )
        columns = {}

        def update(active, every):
            if every:
                column = None
            else:
                key = active.tobytes()
                if key not in columns:
                    columns[key] = torch.tensor(
                        active, dtype=flat.dtype, device=flat.device
                    ).reshape(M, 1)
                column = columns[key]
            _adam(
                flat=flat,
                grad=grad,
                exp_avg=exp_avg,
                exp_avg_sq=exp_avg_sq,
                steps=counts,
                lr=lr,
                active=column,
                beta_1=beta_1,
                beta_2=beta_2,
                eps=eps,
            )

        return BatchedAdam(update, exp_avg, exp_avg_sq, counts.view(M))

    # torch.optim.Adam(fused=True) keeps a float32 step count per parameter,
    # adds 1 to it and calls this kernel. Here each model is one parameter,
    # its row, so that each keeps its own count; the counts are views of one
    # tensor, incremented in one operation. The kernel takes one learning
    # rate: one call per distinct rate among the models that step.
    if state is None:
        counts = torch.zeros(M, dtype=torch.float32, device=flat.device)
    else:
        counts = step.view(1)
    rows = [list(t.unbind(0)) for t in (flat, grad, exp_avg, exp_avg_sq, counts)]
    learning_rates = np.asarray(learning_rates, dtype=np.float64)
    # While every model has taken as many steps, and all share one rate, one
    # call over the whole buffer as one tensor, with the shared count, costs
    # a third of one call per row. Its numbers are the same but for
    # rounding: the kernel's vectorized body and its scalar tail round
    # differently (1 ulp), and a model's elements fall in either by their
    # place in the tensor.
    one_rate = len(np.unique(learning_rates)) == 1
    lockstep = one_rate
    whole = (
        [flat.view(-1)],
        [grad.view(-1)],
        [exp_avg.view(-1)],
        [exp_avg_sq.view(-1)],
        [],
        [counts[0]],
    )
    taken = np.zeros(M, dtype=np.int64)
    plans = {}

    def plan(active):
        increment = torch.tensor(active, dtype=torch.float32, device=flat.device)
        calls = []
        for lr in np.unique(learning_rates[active]):
            members = np.flatnonzero(active & (learning_rates == lr))
            params, grads, avgs, avg_sqs, steps = (
                [r[m] for m in members] for r in rows
            )
            calls.append((float(lr), (params, grads, avgs, avg_sqs, [], steps)))
        return increment, calls

    def update(active, every):
        nonlocal lockstep
        if every:
            counts.add_(1)
            if lockstep:
                fused_adam_kernel(whole, float(learning_rates[0]), beta_1, beta_2, eps)
                return
        key = active.tobytes()
        if key not in plans:
            plans[key] = plan(active)
        increment, calls = plans[key]
        if not every:
            counts.add_(increment)
            taken[active] += 1
            lockstep = one_rate and bool((taken == taken[0]).all())
        for lr, tensors in calls:
            fused_adam_kernel(tensors, lr, beta_1, beta_2, eps)

    return BatchedAdam(update, exp_avg, exp_avg_sq, counts)


def _adam(*, flat, grad, exp_avg, exp_avg_sq, steps, lr, active, beta_1, beta_2, eps):
    """One Adam step of every model, as ``torch.optim.Adam`` computes it.

    Each model has its own step count and learning rate (columns of
    ``steps`` and ``lr``). Models whose ``active`` entry is 0 (a step past
    their last batch, or a model that has stopped) are left exactly as they
    are: parameters, moments and step count.
    """
    with torch.no_grad():
        if active is None:
            steps.add_(1)
            exp_avg.lerp_(grad, 1 - beta_1)
            exp_avg_sq.mul_(beta_2).addcmul_(grad, grad, value=1 - beta_2)
            step_size = lr
        else:
            steps.add_(active)
            exp_avg.lerp_(grad, active * (1 - beta_1))
            decay = 1 - active * (1 - beta_2)
            exp_avg_sq.mul_(decay).addcmul_(grad.square(), active * (1 - beta_2))
            step_size = lr * active
        # A model not yet stepped has count 0 and step size 0: the clamp only
        # avoids 0 / 0. An inactive model's update is exactly 0 * finite.
        counts = steps.clamp(min=1)
        bias_correction1 = 1 - beta_1**counts
        bias_correction2_sqrt = (1 - beta_2**counts).sqrt()
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        flat.addcmul_(exp_avg / denom, step_size / bias_correction1, value=-1)
