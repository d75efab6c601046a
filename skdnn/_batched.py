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

import copy
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ._compat import has_fused_adam, threshold_backward
from ._device import blas_threads, n_threads_for, torch_threads
from ._engine.losses import loss_for_output
from ._network import ACTIVATIONS_INPLACE, dropout_threshold, flatten_parameters
from ._training import (
    _ACTIVATION_BACKWARD_INPLACE,
    fused_adam_kernel,
    load_adam_state,
    mask_blocks,
    max_iter_message,
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


def prepare_fit(estimator, X, y, *, like=None):
    """Do what ``fit`` does before its first epoch; return what training needs.

    The checks, target encoding, class weights and random draws are the
    estimator's own, in its order: the torch seed, then the initial weights,
    from ``_random_state_for_fit``. The estimator is left with every fitted
    attribute of a fit that has run no epoch; :func:`finish_fit` completes it.
    ``like``, what this returned for another estimator on the same ``X`` and
    ``y``, spares checking them again (see ``DNNClassifier._checked_input``).

    Returns
    -------
    types.SimpleNamespace
        The checked input, as ``DNNClassifier._checked_input`` returns it:
        training reads ``X``, ``target``, ``sample_weight`` (ndarray or
        None), ``rng`` (the RandomState that draws the shuffles next),
        ``torch_seed`` and ``rates``.
    """
    fit = estimator._checked_input(
        X, y, None, incremental=False, classes=None, like=like
    )
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
        orders (see :func:`epoch_rows`) of the row it holds; 0 elsewhere
        (padding).
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


def epoch_rows(orders, layout, *, out=None, offsets=None):
    """Every model's batches of one epoch, as one grid of row numbers.

    Parameters
    ----------
    orders : list of ndarray
        Each model's rows in the order its epoch visits them, a permutation
        of ``range(n_rows[m])``.
    layout : tuple
        :func:`batch_layout` of the models' row counts and batch sizes.
    out : ndarray of int64, default=None
        Where to write the grid; a new array when None.
    offsets : ndarray of int64, default=None
        Each row's offset, ``offsets[m]`` repeated ``n_rows[m]`` times, made
        once by a caller that asks every epoch; computed when None.

    Returns
    -------
    ndarray of int64 of shape (n_steps, n_models, max_batch)
        Step s of model m trains on ``index[s, m][valid[s, m]]``, with the
        layout's ``valid``: rows of the models' data one after another (model
        m's row i is row ``offsets[m] + i``), ``orders[m][s * b : (s + 1) *
        b]`` offset so. Slots not in use, padding, hold the first row of
        the first model's order: a real row, which has no weight there.
    """
    source, _ = layout
    if offsets is None:
        offsets = row_offsets([len(order) for order in orders])
    rows = np.concatenate(orders).astype(np.int64, copy=False)
    rows += offsets
    return np.take(rows, source, out=out)


def row_offsets(n_rows):
    """Each row's model's offset in the models' rows one after another."""
    n_rows = np.asarray(n_rows)
    return np.repeat(np.concatenate([[0], np.cumsum(n_rows)[:-1]]), n_rows)


def train_batched(estimators, prepared, *, numpy_products=None, deferred=None):
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
    deferred : dict, default=None
        Models, by index, whose ConvergenceWarning is not issued but stored
        as the index's value, for the caller to issue if it keeps the model
        (a search's refits trained ahead for every candidate).

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
        return _train(
            estimators, prepared, numpy_products=numpy_products, deferred=deferred
        )


def uses_numpy_products(device, threads):
    """Whether training's matrix products go through numpy (see _Workspace).

    On the CPU, for work small enough for one thread: numpy's BLAS and
    torch's OpenMP threads would compete for the cores on larger work (on
    W3, (256, 256) with batches of 256, each product took milliseconds).
    """
    return device.type == "cpu" and threads == 1


def _shuffle_groups(estimators, prepared, n_rows):
    """The shuffling models, grouped where they draw the same permutations.

    Models whose RandomStates start in the same state and that shuffle as
    many rows draw the same permutation every epoch: a grid search with an
    int ``random_state`` gives every candidate of a fold (and, with folds of
    equal size, of every fold) the same stream. Each group draws once per
    epoch from its first model's RandomState; the others' are left where
    they started, which nothing reads: a RandomState made from an int seed
    lives for its fit only. A model whose RandomState is its
    ``random_state`` instance, which its fit advances for the caller, draws
    from it itself, as does each model sharing one RandomState object.
    """
    groups, seen = {}, set()
    for m, (est, fit) in enumerate(zip(estimators, prepared, strict=True)):
        if not est.shuffle:
            continue
        if id(fit.rng) in seen or fit.rng is est.random_state:
            key = ("own", m)
        else:
            seen.add(id(fit.rng))
            _, state, pos, has_gauss, cached = fit.rng.get_state()
            key = (state.tobytes(), pos, has_gauss, cached, int(n_rows[m]))
        groups.setdefault(key, []).append(m)
    return [np.array(members) for members in groups.values()]


def stacked_model(estimator):
    """What the trainer reads of a prepared estimator: a :class:`StackedModel`."""
    module = estimator.module_
    return StackedModel(
        weights=tuple(module.weights),
        biases=tuple(module.biases),
        activation=module.activation,
        loss=loss_for_output(estimator.out_activation_),
        learning_rate=estimator.learning_rate_init,
        alpha=estimator.alpha,
        beta_1=estimator.beta_1,
        beta_2=estimator.beta_2,
        epsilon=estimator.epsilon,
    )


def _train(estimators, prepared, *, numpy_products=None, deferred=None):
    n_rows = np.array([len(p.X) for p in prepared])
    trainer = Trainer(
        [stacked_model(est) for est in estimators],
        prepared,
        batch_sizes=_batch_sizes(estimators, n_rows),
        numpy_products=numpy_products,
    )
    M = len(estimators)
    n_rows = trainer.n_rows
    max_iter = np.array([est.max_iter for est in estimators])
    tol = np.array([est.tol for est in estimators])
    patience = np.array([est.n_iter_no_change for est in estimators], dtype=float)
    running = np.ones(M, dtype=bool)
    diverged = np.zeros(M, dtype=bool)
    curves = []
    best = np.full(M, np.inf)
    no_improvement = np.zeros(M, dtype=int)
    n_epochs = np.zeros(M, dtype=int)
    orders = [np.arange(n) for n in n_rows]
    shuffled = _shuffle_groups(estimators, prepared, n_rows)

    epoch = 0
    while running.any():
        # Each model's epoch as the sequential fit makes it: its own
        # permutation from its own RandomState (see _shuffle_groups).
        for members in shuffled:
            if running[members].any():
                first = members[0]
                order = prepared[first].rng.permutation(n_rows[first])
                for m in members:
                    orders[m] = order
        epoch_loss, finite = trainer.run_epoch(orders, running)
        # fit's stopping rule for every running model at once.
        now_diverged = running & ~(np.isfinite(epoch_loss) & finite)
        diverged |= now_diverged
        running &= ~now_diverged
        curves.append(epoch_loss)
        epoch += 1
        n_epochs[running] = epoch
        worse = epoch_loss > best - tol
        no_improvement = np.where(running, np.where(worse, no_improvement + 1, 0),
                                  no_improvement)  # fmt: skip
        best = np.where(running, np.minimum(best, epoch_loss), best)
        patient = no_improvement <= patience
        out_of_epochs = running & patient & (epoch >= max_iter)
        running &= patient & (epoch < max_iter)
        for m in np.flatnonzero(out_of_epochs & np.isfinite(patience)):
            message = max_iter_message(max_iter[m])
            if deferred is not None and m in deferred:
                deferred[m] = message
            else:
                warnings.warn(message, ConvergenceWarning, stacklevel=2)
    curves = np.array(curves).reshape(-1, M)
    ws, adam = trainer.ws, trainer.adam
    for m, est in enumerate(estimators):
        if diverged[m]:
            continue
        est._batched_n_samples = int(n_rows[m])
        finish_fit(
            est,
            weights=[W[m] for W in ws.weights],
            biases=[b[m, 0] for b in ws.biases],
            loss_curve=curves[: n_epochs[m], m].tolist(),
            no_improvement_count=int(no_improvement[m]),
            adam_state=(adam.exp_avg[m], adam.exp_avg_sq[m], adam.steps[m]),
        )
    return diverged


class StackedModel(NamedTuple):
    """One model as the trainer sees it: its network and training settings.

    The trainer reads nothing else of an estimator (see :func:`stacked_model`);
    the models of one trainer share the architecture, activation, loss,
    Adam's betas and epsilon, and the device (the first model's are used).
    """

    weights: tuple
    biases: tuple
    activation: str
    loss: object
    learning_rate: float
    alpha: float
    beta_1: float
    beta_2: float
    epsilon: float


class Trainer:
    """Networks of one :func:`group_key`, trained epoch by epoch together.

    Everything that lasts from epoch to epoch is made once: the models'
    data, the workspace, the optimizers, the dropout masks' generators, and
    one epoch's grid of batches (data, targets, masks, logits), which every
    epoch fills in place, each step reading its own views of it.

    Parameters
    ----------
    models : list of StackedModel
        Each model's initial weights (the stacked networks' starting point)
        and settings.
    prepared : list of SimpleNamespace
        Each model's checked input (``X``, ``target``, ``sample_weight``,
        ``torch_seed``, ``rates``).
    batch_sizes : sequence of int
        Each model's batch size, already clipped to its rows.
    numpy_products : bool, default=None
        Whether the matrix products go through numpy (see
        :class:`_Workspace`); None: on the CPU. Callers decide with
        :func:`uses_numpy_products` and limit BLAS's threads accordingly.
    bound : tuple, default=None
        For one estimator's own ``fit``: ``(flat, grad, adam_state,
        generator)``, its flat parameter and gradient, the ``(exp_avg,
        exp_avg_sq, step)`` of its ``torch.optim.Adam`` and its dropout
        generator. Training then updates these in place, as the fit's own
        loop would, instead of copies.
    """

    def __init__(
        self,
        models,
        prepared,
        *,
        batch_sizes,
        numpy_products=None,
        bound=None,
    ):
        M = len(models)
        first = models[0]
        dtype, device = first.weights[0].dtype, first.weights[0].device
        self.loss = loss = first.loss

        # Every model's rows, one after another: model m's row i is row
        # offsets[m] + i. Folds share no memory here; the data of a grid
        # search is copied once per candidate and fold.
        self.n_rows = n_rows = np.array([len(p.X) for p in prepared])
        # One model's rows are read in place (fit's X is not written to).
        X_all = prepared[0].X if M == 1 else np.concatenate([p.X for p in prepared])
        self.X_all = to_device(X_all, device, dtype)
        target_all = np.concatenate([p.target for p in prepared])
        self.target_all = to_device(
            target_all, device, None if loss.index_target else dtype
        )
        self.weighted = any(p.sample_weight is not None for p in prepared)
        self.shares_for = self.work_for = None
        self.part_workspaces = {}
        self.weight_all = np.concatenate(
            [
                np.ones(n, dtype=np.float64) if p.sample_weight is None
                else np.asarray(p.sample_weight, dtype=np.float64)
                for p, n in zip(prepared, n_rows, strict=True)
            ]
        )  # fmt: skip
        batch = np.asarray(batch_sizes)
        self.layout = layout = batch_layout(n_rows, batch)
        S, M, B = layout[1].shape
        # Each step's real rows per model, the same every epoch it runs.
        self.rows_per_step = layout[1].sum(axis=2)
        self.rows = np.empty(layout[0].shape, dtype=np.int64)
        self.row_offsets = row_offsets(n_rows)

        rates = np.array([p.rates for p in prepared]).reshape(M, -1)
        if numpy_products is None:
            numpy_products = device.type == "cpu"
        flat, grad, adam_state, generator = bound or (None, None, None, None)
        self.ws = ws = _Workspace(
            [tuple(W.shape) for W in first.weights],
            first.activation,
            M,
            B,
            dtype=dtype,
            dropped=rates.any(axis=0),
            device=device,
            numpy_products=numpy_products,
            flat=flat,
            grad=grad,
        )
        if flat is None:
            # Each model's initial parameters, into its views of the buffer.
            for m, model in enumerate(models):
                for W, value in zip(ws.weights, model.weights, strict=True):
                    W[m].copy_(value)
                for b, value in zip(ws.biases, model.biases, strict=True):
                    b[m, 0].copy_(value)
        self.adam = make_adam(
            flat=ws.flat,
            grad=ws.grad,
            learning_rates=[model.learning_rate for model in models],
            beta_1=first.beta_1,
            beta_2=first.beta_2,
            eps=first.epsilon,
            state=adam_state,
        )
        self.alpha = torch.tensor(
            [model.alpha for model in models], dtype=dtype, device=device
        ).reshape(1, M, 1)
        # One epoch's data, masks, logits and weight norms, filled in place
        # every epoch; step s reads views of their row s, made once.
        grid = (S, M, B)
        n_features = self.X_all.shape[1]
        self.X_epoch = torch.empty((*grid, n_features), dtype=dtype, device=device)
        n_targets = 1 if loss.index_target else target_all.shape[1]
        self.t_epoch = torch.empty(
            (*grid, n_targets), dtype=self.target_all.dtype, device=device
        )
        self.share = torch.empty((*grid, 1), dtype=dtype, device=device)
        self.coef = torch.empty((S, M, 1), dtype=dtype, device=device)
        self.loss_share = torch.empty_like(self.share)
        self.loss_coef = torch.empty((S, M), dtype=dtype, device=device)
        # Zeros: a step that trains only some models leaves the others' be.
        self.logits = torch.zeros((S, M, ws.n_outputs, B), dtype=dtype, device=device)
        self.squared_norms = torch.zeros((S, M), dtype=dtype, device=device)
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
            seeds=None if generator is not None else [p.torch_seed for p in prepared],
        )
        # Each step's data, targets and shares as the feature-major workspace
        # reads them: (n_models, columns, batch) views.
        X_T = self.X_epoch.transpose(2, 3)
        if ws.forward_by_rows[0]:
            X_rows = [X_T[:, :, k : k + 1].unbind(0) for k in range(n_features)]
            X_rows = list(zip(*X_rows, strict=True))
        else:
            X_rows = [None] * S
        self.steps = [
            _StepViews(
                X_T=X,
                X_rows=rows,
                X_T_np=ws.as_numpy(X),
                target=target,
                share=step_share,
                coef=step_coef,
                masks=masks,
                logits=step_logits,
                logits_np=ws.as_numpy(step_logits),
                squared_norm=squared_norm,
            )
            for X, rows, target, step_share, step_coef, masks, step_logits,
            squared_norm in zip(
                X_T.unbind(0),
                X_rows,
                self.t_epoch.transpose(2, 3).unbind(0),
                self.share.transpose(2, 3).unbind(0),
                self.coef.unbind(0),
                self.dropout.per_step(),
                self.logits.unbind(0),
                self.squared_norms.unbind(0),
                strict=True,
            )
        ]  # fmt: skip

    def _step_work(self, s, stepping):
        """Step ``s``'s workspace and views, for the models it trains.

        Where these are a run of consecutive models but not all (models with
        more batches than the others, such as a search's refits trained
        ahead), the step computes theirs alone, on views of the same memory;
        None where it trains none.
        """
        trained = np.flatnonzero(stepping)
        if len(trained) == 0:
            return None
        first, last = trained[0], trained[-1] + 1
        if len(trained) == len(stepping) or last - first != len(trained):
            return self.ws, self.steps[s]
        rows = slice(first, last)
        if (first, last) not in self.part_workspaces:
            self.part_workspaces[first, last] = self.ws.models(rows)
        return self.part_workspaces[first, last], _models(self.steps[s], rows)

    def run_single_epoch(self, order):
        """One epoch of a trainer of one model (``fit``'s); its loss, a float.

        ``order`` is the permutation of the rows (an ndarray), or None for
        their given order.
        """
        if order is None:
            order = np.arange(int(self.n_rows[0]))
        losses, _ = self.run_epoch([order], np.ones(1, dtype=bool))
        return float(losses[0])

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
        losses : ndarray of float64 of shape (n_models,)
            Each model's epoch loss, the mean of its batch losses weighted
            by their rows, as ``fit`` records it (meaningless for a stopped
            model).
        finite : ndarray of bool of shape (n_models,)
            Whether each model's parameters are all finite.
        """
        ws, layout, device = self.ws, self.layout, self.X_all.device
        dtype = self.X_epoch.dtype
        # Each model's batches of its own size; slots past a model's batch,
        # and steps past its last batch, are padding: weight 0, no update.
        rows = epoch_rows(orders, layout, out=self.rows, offsets=self.row_offsets)
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
            # The epoch's loss weighs each batch's by its real rows.
            rows_t = torch.from_numpy(real_rows).to(device=device, dtype=dtype)
            torch.mul(self.share, rows_t[..., None, None], out=self.loss_share)
            torch.mul(self.coef.squeeze(2), rows_t, out=self.loss_coef).mul_(0.5)
        self.dropout.draw(running)
        if key != self.work_for:
            self.work_for = key
            self.work = [
                self._step_work(s, stepping) for s, stepping in enumerate(active)
            ]
        apply = self.adam.apply
        # Overflow shows as non-finite losses or weights, which the caller
        # handles, as with torch's operations, not as numpy's warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            for work, step_plan in zip(self.work, self.adam.epoch(active), strict=True):
                if work is not None:
                    _step(*work, loss=self.loss)
                apply(step_plan)
        totals = _epoch_losses(
            logits=self.logits,
            target=self.t_epoch,
            loss_share=self.loss_share,
            squared_norms=self.squared_norms,
            loss_coef=self.loss_coef,
            loss=self.loss,
        )
        # Read from the device at once.
        totals, sums = torch.stack((totals, ws.flat.sum(dim=1))).cpu().numpy()
        return totals / self.n_rows, np.isfinite(sums)


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
    """One step's slices of the epoch's buffers, feature-major (``*_np``: numpy
    views or None)."""

    X_T: torch.Tensor
    X_rows: tuple | None
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

    Activations and errors are feature-major, ``(n_models, width, batch)``:
    a layer computes ``W.T @ h`` and its weight gradient ``h @ delta.T``,
    the transposes being views that BLAS reads as they are. The bias then
    broadcasts along the batch, not along a layer's few units: adding it to
    30 models' activations of (32 rows, 6 units) took 2.9 us instead of 7.8,
    and the bias gradient sums contiguous memory.

    With ``numpy_products`` (the default on the CPU) the matrix products go
    through numpy views of the same memory: ``np.matmul`` makes one BLAS call
    per model, which on 30 models of a 2-6-4-1 network took 3 to 7 us a
    product where torch's bmm took 9 to 18 (its small-matrix loop is
    unvectorized, and its larger path copies a strided output), and it
    writes each model's weight gradient straight into its row of the flat
    gradient.

    A ReLU layer with dropout keeps a gate, the mask where the unit's input
    is positive and 0 elsewhere: the layer's output is its input times the
    gate, and its error the upstream error times the gate, one operation
    each way instead of two.

    Parameters
    ----------
    shapes : list of tuple of int
        Each layer's weight shape, ``(fan_in, fan_out)``: the architecture.
    activation : str
        The hidden layers' activation, a key of ``ACTIVATIONS_INPLACE``.
    n_models, batch_size : int
        The models stacked, and the rows a step holds per model.
    dtype, device
        The parameters' and buffers'.
    dropped : sequence of bool
        Per hidden layer, whether any model drops units there.
    numpy_products : bool, default=False
        Whether the products go through numpy (CPU only).
    flat, grad : Tensor, default=None
        One fit's own flat parameter and gradient to train in place (one
        model); None makes new buffers.
    """

    def __init__(self, shapes, activation, n_models, batch_size, *, dtype, dropped,
                 device, numpy_products=False, flat=None, grad=None):  # fmt: skip
        M, B = n_models, batch_size
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
        self.weights, biases = _layer_views(self.flat, shapes)
        self.grad_weights, grad_biases = _layer_views(self.grad, shapes)
        self.biases = biases
        # (n_models, fan_out, 1): a column per model, broadcast along the batch.
        self.bias_columns = [b.transpose(1, 2) for b in biases]
        self.grad_bias_columns = [b.transpose(1, 2) for b in grad_biases]
        self.weights_T = [W.transpose(1, 2) for W in self.weights]
        # bmm into a strided view of the gradient took a path four times as
        # slow for a (6, 4) layer: each product goes through a buffer.
        # (numpy's matmul writes into the view directly.)
        self.grad_buffers = (
            None if numpy_products else [torch.empty_like(W) for W in self.grad_weights]
        )
        self.widths = [fan_out for _, fan_out in shapes[:-1]]
        self.n_outputs = shapes[-1][1]

        def empty(width):
            return torch.empty((M, width, B), dtype=dtype, device=device)

        self.outputs = [empty(w) for w in self.widths]
        self.masked = [
            empty(w) if d else None for w, d in zip(self.widths, dropped, strict=True)
        ]
        self.gated = activation == "relu"
        self.gates = [
            empty(w) if d and self.gated else None
            for w, d in zip(self.widths, dropped, strict=True)
        ]
        self.upstream = [empty(w) for w in self.widths]
        self.delta = empty(self.n_outputs)
        self.minus_ones = torch.full((M, 1, B), -1.0, dtype=dtype, device=device)
        # Layer i + 1's input; layer 0's is the step's data.
        self.inputs = [
            m if d else o
            for m, o, d in zip(self.masked, self.outputs, dropped, strict=True)
        ]
        deltas = [*self.upstream, self.delta]
        deltas_T = [d.transpose(1, 2) for d in deltas]
        self.deltas_T = deltas_T

        def by_rows(inner, cols):
            return _by_columns(B, inner, cols, device, numpy_products=numpy_products)

        # Products a @ b done as broadcast products, one per column of a and
        # row of b: layer i's W.T @ h (inner: fan_in) and, but for layer 0,
        # its upstream W @ delta (inner: fan_out).
        self.forward_by_rows = [by_rows(a, b) for a, b in shapes]
        upstream_by_rows = [i > 0 and by_rows(b, a) for i, (a, b) in enumerate(shapes)]

        def columns(a, use):
            return [a[..., k : k + 1] for k in range(a.shape[2])] if use else None

        def rows(b, use):
            return [b[:, k : k + 1, :] for k in range(b.shape[1])] if use else None

        self.weight_T_columns = [
            columns(W_T, use)
            for W_T, use in zip(self.weights_T, self.forward_by_rows, strict=True)
        ]
        self.input_rows = [
            rows(h, use)
            for h, use in zip(self.inputs, self.forward_by_rows[1:], strict=True)
        ]
        self.weight_columns = [
            columns(W, use)
            for W, use in zip(self.weights, upstream_by_rows, strict=True)
        ]
        self.delta_rows = [
            rows(d, use) for d, use in zip(deltas, upstream_by_rows, strict=True)
        ]
        self.act = ACTIVATIONS_INPLACE[activation]
        self.act_backward = _ACTIVATION_BACKWARD_INPLACE[activation]
        as_numpy = self.as_numpy
        self.weights_np = [as_numpy(W) for W in self.weights]
        self.weights_T_np = [as_numpy(W) for W in self.weights_T]
        self.grad_weights_np = [as_numpy(W) for W in self.grad_weights]
        self.outputs_np = [as_numpy(h) for h in self.outputs]
        self.inputs_np = [as_numpy(h) for h in self.inputs]
        self.deltas_np = [as_numpy(d) for d in deltas]
        self.deltas_T_np = [as_numpy(d) for d in deltas_T]

    def as_numpy(self, tensor):
        """A numpy view of ``tensor`` for the products, or None without them."""
        return tensor.numpy() if self.numpy_products else None

    def models(self, rows):
        """This workspace for the models ``rows`` (a slice): views of its memory."""
        part = copy.copy(self)
        for name, value in vars(self).items():
            setattr(part, name, _models(value, rows))
        return part


def _models(value, rows):
    """``value`` with the model dimension, the first of every tensor and array
    in it, cut to ``rows``."""
    if isinstance(value, torch.Tensor | np.ndarray):
        return value[rows]
    if isinstance(value, _StepViews):
        return _StepViews._make(_models(v, rows) for v in value)
    if isinstance(value, list | tuple):
        return type(value)(_models(v, rows) for v in value)
    return value


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
    by indices made once. Models of one seed that draw alike (a
    grid search with an int ``random_state`` seeds every candidate of a fold
    alike) share the first one's draws, copied: the draws took 3 ns a value.

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
    seeds : list of int, default=None
        Each model's torch seed, where the generators are fresh ones seeded
        so: models of one seed then draw once. None: each model draws.
    """

    def __init__(self, *, layout, batch, widths, rates, generators, dtype, seeds=None):
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
        thresholds, scales = {}, {}
        spans_of, direct_of = [], []
        for i in self.layers:
            # Room for the grid's units, and for each block's draw rounding
            # up to whole 64-bit values.
            size = -(-S * B * widths[i] // 4) + most_blocks
            self.regions[i] = torch.empty((M, size), dtype=torch.int64, device=device)
            # Feature-major, as the workspace's activations; ones for a
            # model without dropout on the layer, which draws nothing for it.
            self.masks[i] = torch.ones((S, M, widths[i], B), dtype=dtype, device=device)
            # A unit is kept where its 16 bits, as a signed integer, reach
            # its model's threshold: dropped with probability p.
            dropped, scales[i] = zip(
                *(dropout_threshold(rate) for rate in rates[:, i]), strict=True
            )
            thresholds[i] = np.array(dropped) - 32768
        for m in range(M):
            b, dropped = int(batch[m]), np.flatnonzero(rates[m])
            direct = b == B and all(
                start * widths[i] % 4 == 0 for start, _ in plans[m] for i in dropped
            )
            spans, offsets = [], dict.fromkeys(dropped, 0)
            for start, count in plans[m] if len(dropped) else ():
                for i in dropped:
                    begin = start * widths[i] // 4 if direct else offsets[i]
                    end = begin + -(-count * widths[i] // 4)
                    spans.append((i, begin, end))
                    offsets[i] = end
            self.draws.append([self.regions[i][m, a:b] for i, a, b in spans])
            spans_of.append(tuple(spans))
            direct_of.append(direct)
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
                        torch.from_numpy(position.transpose(0, 2, 1).copy()).to(device),
                        torch.empty((S, w, B), dtype=torch.int16, device=device),
                        self.masks[i][:, m],
                    )
                )

        # Models with one torch seed and the same draws draw the same bits
        # (a grid search with an int random_state seeds every candidate of a
        # fold alike): the first of them draws (see draw).
        groups = {}
        for m, spans in enumerate(spans_of):
            key = (m,) if seeds is None or not spans else (seeds[m], spans)
            groups.setdefault(key, []).append(m)
        self.groups = [np.array(members) for members in groups.values()]

        def per_model(values):
            return torch.tensor(values, dtype=dtype, device=device).view(1, M, 1, 1)

        self.scalings = [
            (self.masks[i], per_model(thresholds[i]),
             per_model(scales[i]))
            for i in self.layers
        ]  # fmt: skip
        # Each model's bits of a layer, read as its grid's units in the
        # masks' order: (steps, models, units, slots).
        placed = {}
        for i in self.layers:
            units = self.regions[i].view(torch.int16)[:, : S * B * widths[i]]
            placed[i] = units.view(M, S, B, widths[i]).permute(1, 0, 3, 2)
        self.conversions, self.region_copies = [], []
        if len(self.groups) == M:
            # Every model its own bits: one strided copy per layer converts
            # every model in place.
            for i in self.layers:
                self.conversions.append((placed[i], self.masks[i], ()))
            return
        # Otherwise each group's first model's bits are converted once, into
        # each run of consecutive group members in place; models that gather
        # their bits get a copy of the first one's region.
        for members in self.groups:
            first = members[0]
            for i in sorted({i for i, _, _ in spans_of[first]}):
                for m in members[1:]:
                    if not direct_of[m]:
                        self.region_copies.append(
                            (self.regions[i][m], self.regions[i][first])
                        )
                in_grid = [m for m in members if direct_of[m]]
                runs = np.split(in_grid, np.flatnonzero(np.diff(in_grid) != 1) + 1)
                runs = [
                    self.masks[i][:, run[0] : run[-1] + 1] for run in runs if len(run)
                ]
                if runs:
                    buffer = torch.empty((S, widths[i], B), dtype=dtype, device=device)
                    self.conversions.append((placed[i][:, first], buffer, runs))

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
        for members in self.groups:
            if running[members].any():
                first = members[0]
                for bits in self.draws[first]:
                    bits.random_(-(2**63), None, generator=self.generators[first])
        for target, source in self.region_copies:
            target.copy_(source)
        # Units stay int16 until the copy into the float masks, into
        # feature-major order: numpy's strided copy took 63 us where torch's
        # took 81, for 30 models' epoch of a layer of 6.
        for placed, converted, runs in self.conversions:
            if converted.device.type == "cpu":
                np.copyto(converted.numpy(), placed.numpy(), casting="unsafe")
            else:
                converted.copy_(placed)
            for run in runs:
                run.copy_(converted.unsqueeze(1).expand_as(run))
        for region, index, units, mask in self.gathers:
            torch.take(region, index, out=units)
            mask.copy_(units)
        for mask, threshold, scale in self.scalings:
            mask.ge_(threshold).mul_(scale)


def _epoch_losses(*, logits, target, loss_share, squared_norms, loss_coef, loss):
    """Each model's epoch loss times its rows, shape (n_models,), from what the
    steps saved.

    A step's loss needs only its logits and the squared norm of its weights
    before the update, so every step's loss is computed at once at the
    epoch's end, and summed weighted by its batch's rows, as ``fit`` sums
    them: ``loss_share`` is each row's share of its batch times the batch's
    rows, ``loss_coef`` half the L2 coefficient times them.
    """
    # logits are feature-major, (n_steps, n_models, n_outputs, batch).
    target, loss_share = target.transpose(2, 3), loss_share.transpose(2, 3)
    per_sample = loss.per_sample(logits, target, 2)
    data = per_sample.mul_(loss_share).sum(dim=(0, 2, 3))
    return data.add_(torch.linalg.vecdot(squared_norms, loss_coef, dim=0))


def _step(ws, views, *, loss):
    """Every model's gradient into ``ws.grad``; its logits and weight norm saved.

    :func:`~skdnn._training.backward` with a leading model dimension, on
    feature-major activations (see :class:`_Workspace`): the error at the
    output is ``loss.gradient`` (``inverse_link(raw) - target``) times each
    row's share of its model's batch weight, propagated back through each
    model's own weights and masks.
    """
    last, masks, numpy_products = ws.last, views.masks, ws.numpy_products
    h, rows, h_np = views.X_T, views.X_rows, views.X_T_np
    for i in range(last + 1):
        out = ws.outputs[i] if i < last else views.logits
        if numpy_products:
            np.matmul(ws.weights_T_np[i], h_np, out=ws.outputs_np[i] if i < last
                      else views.logits_np)  # fmt: skip
            out.add_(ws.bias_columns[i])
        else:
            _product(
                ws.weights_T[i], ws.weight_T_columns[i], h, rows,
                bias=ws.bias_columns[i], out=out,
            )  # fmt: skip
        if i == last:
            break
        mask = masks[i] if masks else None
        if mask is None:
            ws.act(out)
        elif ws.gated:
            gate = ws.gates[i]
            threshold_backward(mask, out, 0, grad_input=gate)
            torch.mul(out, gate, out=ws.masked[i])
        else:
            torch.mul(ws.act(out), mask, out=ws.masked[i])
        h, rows, h_np = ws.inputs[i], ws.input_rows[i], ws.inputs_np[i]
    delta = ws.delta
    loss.gradient(views.logits, views.target, 1, out=delta, scratch=ws.minus_ones)
    delta.mul_(views.share)
    for i in range(last, -1, -1):
        if numpy_products:
            np.matmul(
                ws.inputs_np[i - 1] if i else views.X_T_np,
                ws.deltas_T_np[i],
                out=ws.grad_weights_np[i],
            )
        else:
            torch.bmm(
                ws.inputs[i - 1] if i else views.X_T, ws.deltas_T[i],
                out=ws.grad_buffers[i],
            )  # fmt: skip
            ws.grad_weights[i].copy_(ws.grad_buffers[i])
        torch.sum(delta, dim=2, keepdim=True, out=ws.grad_bias_columns[i])
        if i == 0:
            break
        upstream = ws.upstream[i - 1]
        if numpy_products and ws.delta_rows[i] is None:
            np.matmul(ws.weights_np[i], ws.deltas_np[i], out=ws.deltas_np[i - 1])
        else:
            _product(
                ws.weights[i], ws.weight_columns[i], delta, ws.delta_rows[i],
                bias=None, out=upstream,
            )  # fmt: skip
        mask = masks[i - 1] if masks else None
        if mask is None:
            delta = ws.act_backward(upstream, ws.outputs[i - 1])
        elif ws.gated:
            delta = upstream.mul_(ws.gates[i - 1])
        else:
            delta = ws.act_backward(upstream.mul_(mask), ws.outputs[i - 1])
    # d/dW of (alpha / 2) ||W||^2 / weight_sum, each model its own alpha and
    # batch weight; the penalty itself joins the loss at the epoch's end,
    # from the norm saved here (not the weights: a copy per step would take
    # memory of n_steps times the models' weights).
    torch.linalg.vecdot(ws.flat_weights, ws.flat_weights, out=views.squared_norm)
    ws.grad_flat_weights.addcmul_(ws.flat_weights, views.coef)


class BatchedAdam(NamedTuple):
    """What :func:`make_adam` returns: the updates and the optimizers' state."""

    epoch: Callable
    apply: Callable
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
        Its ``epoch(active_steps)`` plans an epoch's updates at once, from a
        boolean array of shape (n_steps, n_models); ``apply`` takes each
        step's plan in turn and steps the models active there, leaving the
        others exactly as they are: parameters, moments and step count.
        ``exp_avg``, ``exp_avg_sq`` (each model's row) and ``steps`` (shape
        (n_models,)) are the optimizers' state.
    """
    M = flat.shape[0]
    if fused is None:
        fused = has_fused_adam() and flat.device.type in ("cpu", "cuda")
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

        def column(active):
            # None when every model steps; else 1 or 0 per model, made once.
            if active.all():
                return None
            key = active.tobytes()
            if key not in columns:
                columns[key] = torch.tensor(
                    active, dtype=flat.dtype, device=flat.device
                ).reshape(M, 1)
            return columns[key]

        def epoch(active_steps):
            return [column(active) for active in active_steps]

        def apply(active):
            _adam(
                flat=flat,
                grad=grad,
                exp_avg=exp_avg,
                exp_avg_sq=exp_avg_sq,
                steps=counts,
                lr=lr,
                active=active,
                beta_1=beta_1,
                beta_2=beta_2,
                eps=eps,
            )

        return BatchedAdam(epoch, apply, exp_avg, exp_avg_sq, counts.view(M))

    # torch.optim.Adam(fused=True) keeps a float32 step count per parameter,
    # adds 1 to it and calls this kernel. Here each model keeps its own
    # count; the counts are views of one tensor, incremented in one
    # operation. The kernel takes one learning rate and one count per
    # tensor: consecutive models that step together with one rate and one
    # count are updated as one tensor, their rows of the buffers (a third of
    # the time of a tensor per row): a whole grid search's models while they
    # keep in step, and, when some train on more rows than others, each run
    # of models that has taken as many steps. All runs of one rate go in one
    # call. Its numbers are the same as per row but for rounding: the
    # kernel's vectorized body and its scalar tail round differently (1
    # ulp), and a model's elements fall in either by their place in the
    # tensor.
    if state is None:
        counts = torch.zeros(M, dtype=torch.float32, device=flat.device)
    else:
        counts = step.view(1)
    learning_rates = np.asarray(learning_rates, dtype=np.float64)
    same_rate = np.diff(learning_rates) == 0
    taken = np.zeros(M, dtype=np.int64)
    plans = {}

    def plan(active, counted):
        together = same_rate & (np.diff(counted) == 0) & active[1:] & active[:-1]
        starts = np.flatnonzero(np.concatenate([[True], ~together]))
        # One call per rate, each run one of its tensors, with its own count.
        calls = {}
        for a, b in zip(starts, [*starts[1:], M], strict=True):
            if active[a]:
                params, grads, avgs, avg_sqs, _, steps = calls.setdefault(
                    float(learning_rates[a]), ([], [], [], [], [], [])
                )
                for tensors, rows in zip(
                    (params, grads, avgs, avg_sqs),
                    (flat, grad, exp_avg, exp_avg_sq),
                    strict=True,
                ):
                    tensors.append(rows[a:b].reshape(-1))
                steps.append(counts[a])
        calls = list(calls.items())
        increment = None
        if not active.all():
            increment = torch.tensor(active, dtype=torch.float32, device=flat.device)
        return increment, calls

    def epoch(active_steps):
        # The plans depend on which models step and on which neighbours
        # have taken as many steps: the same from epoch to epoch.
        key = (active_steps.tobytes(), (np.diff(taken) == 0).tobytes())
        if key not in plans:
            counted, steps = taken.copy(), []
            for active in active_steps:
                steps.append(plan(active, counted))
                counted = counted + active
            plans[key] = steps
        taken[:] += active_steps.sum(axis=0)
        return plans[key]

    def apply(step_plan):
        increment, calls = step_plan
        if increment is None:
            counts.add_(1)
        else:
            counts.add_(increment)
        for lr, tensors in calls:
            fused_adam_kernel(tensors, lr, beta_1, beta_2, eps)

    return BatchedAdam(epoch, apply, exp_avg, exp_avg_sq, counts)


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
