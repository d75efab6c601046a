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

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from ._device import n_threads_for, torch_threads
from ._network import ACTIVATIONS_INPLACE
from ._training import _ACTIVATION_BACKWARD_INPLACE, to_device


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


def finish_fit(estimator, *, weights, biases, loss_curve, no_improvement_count):
    """Give a prepared estimator its trained weights and the record of its fit.

    The optimizer's state is not kept: ``partial_fit`` after a batched fit
    starts a new Adam, where after ``fit`` it would continue the old one.
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
    estimator._optimizer = None
    estimator._flat = None
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


def train_batched(estimators, prepared):
    """Train prepared estimators of one :func:`group_key` together.

    Parameters
    ----------
    estimators : list of DNNClassifier
        Prepared by :func:`prepare_fit`, all with the same group key.
    prepared : list of dict
        What :func:`prepare_fit` returned for each.

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
    with torch_threads(threads), torch.no_grad():
        return _train(estimators, prepared)


def _train(estimators, prepared):
    M = len(estimators)
    first = estimators[0]
    dtype = first.module_.weights[0].dtype
    device = first.device_
    softmax = first.out_activation_ == "softmax"

    # Every model's rows, one after another: model m's row i is row
    # offsets[m] + i. Folds share no memory here; the data of a grid search
    # is copied once per candidate and fold.
    n_rows = np.array([len(p.X) for p in prepared])
    X_all = to_device(np.concatenate([p.X for p in prepared]), device, dtype)
    target_all = np.concatenate([p.target for p in prepared])
    target_all = to_device(target_all, device, dtype if not softmax else None)
    weight_all = np.concatenate(
        [
            np.ones(n, dtype=np.float64) if p.sample_weight is None
            else np.asarray(p.sample_weight, dtype=np.float64)
            for p, n in zip(prepared, n_rows, strict=True)
        ]
    )  # fmt: skip
    batch = _batch_sizes(estimators, n_rows)
    layout = batch_layout(n_rows, batch)
    S, M, B = layout[1].shape
    # Each step's real rows per model, the same every epoch the model runs.
    rows_per_step = layout[1].sum(axis=2)

    rates = np.array([p.rates for p in prepared]).reshape(M, -1)
    ws = _Workspace(first, M, B, dropped=rates.any(axis=0), device=device)
    for m, est in enumerate(estimators):
        parts = [p.reshape(-1) for p in est.module_.weights]
        parts += [p.reshape(-1) for p in est.module_.biases]
        ws.flat[m].copy_(torch.cat(parts))
    adam = make_adam(
        flat=ws.flat,
        grad=ws.grad,
        learning_rates=[est.learning_rate_init for est in estimators],
        beta_1=first.beta_1,
        beta_2=first.beta_2,
        eps=first.epsilon,
    )
    alpha = torch.tensor(
        [est.alpha for est in estimators], dtype=dtype, device=device
    ).reshape(1, M, 1)
    # One generator for the batch's masks: each model's masks differ from a
    # sequential fit's in any case (they are drawn in another layout).
    seed = np.random.SeedSequence([p.torch_seed for p in prepared])
    generator = torch.Generator(device=device).manual_seed(
        int(seed.generate_state(1)[0])
    )

    # One epoch's data, masks, logits and weight norms, filled in place every
    # epoch; step s reads views of their row s, made once.
    grid = (S, M, B)
    n_features = X_all.shape[1]
    X_epoch = torch.empty((*grid, n_features), dtype=dtype, device=device)
    if softmax:
        t_epoch = torch.empty((*grid, 1), dtype=target_all.dtype, device=device)
    else:
        t_epoch = torch.empty((*grid, target_all.shape[1]), dtype=dtype, device=device)
    share = torch.empty((*grid, 1), dtype=dtype, device=device)
    coef = torch.empty((S, M, 1), dtype=dtype, device=device)
    logits = torch.empty((*grid, ws.n_outputs), dtype=dtype, device=device)
    squared_norms = torch.empty((S, M), dtype=dtype, device=device)
    dropout = _EpochMasks(
        grid=grid, widths=ws.widths, rates=rates, generator=generator, dtype=dtype
    )
    if ws.forward_by_columns[0]:
        X_columns = [X_epoch[..., k : k + 1].unbind(0) for k in range(n_features)]
        X_columns = list(zip(*X_columns, strict=True))
    else:
        X_columns = [None] * S
    steps = list(
        zip(
            X_epoch.unbind(0),
            X_columns,
            X_epoch.transpose(2, 3).unbind(0),
            t_epoch.unbind(0),
            share.unbind(0),
            coef.unbind(0),
            dropout.per_step(),
            logits.unbind(0),
            squared_norms.unbind(0),
            strict=True,
        )
    )

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
        # permutation from its own RandomState, cut into batches of its own
        # size. Slots past a model's batch, and steps past its last batch,
        # are padding: weight 0, and no update.
        orders = [
            prepared[m].rng.permutation(n_rows[m])
            if running[m] and estimators[m].shuffle
            else np.arange(n_rows[m])
            for m in range(M)
        ]
        rows = epoch_rows(orders, layout)
        weight = np.where(layout[1] & running[None, :, None], weight_all[rows], 0.0)
        real_rows = rows_per_step * running
        active = real_rows > 0
        _take_rows(rows.reshape(-1), ((X_all, X_epoch), (target_all, t_epoch)))
        w = torch.from_numpy(weight).to(device=device, dtype=dtype).unsqueeze(3)
        # skdnn's batch loss is the weighted mean over the batch's real
        # rows: padding adds 0 to both sums. A batch of zero weight
        # contributes nothing, as in backward.
        inverse_sum = w.sum(dim=2).reciprocal_().nan_to_num_(posinf=0.0)
        torch.mul(w, inverse_sum.unsqueeze(2), out=share)
        torch.mul(alpha, inverse_sum, out=coef)
        dropout.draw()
        for views, stepping, every in zip(
            steps, active, active.all(axis=1).tolist(), strict=True
        ):
            _step(ws, *views, softmax=softmax)
            adam(stepping, every)
        epoch += 1
        losses = _step_losses(
            logits=logits,
            target=t_epoch,
            share=share,
            coef=coef,
            squared_norms=squared_norms,
            softmax=softmax,
        )
        rows_t = torch.from_numpy(real_rows).to(device=device, dtype=dtype)
        epoch_loss = (losses * rows_t).sum(dim=0).tolist()
        finite = torch.isfinite(ws.flat.sum(dim=1)).tolist()
        for m in np.flatnonzero(running):
            loss = epoch_loss[m] / n_rows[m]
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
        )
    return diverged


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
# multiply-adds, one per column of the left matrix.
_BMM_LOOP_MACS = 400


def _by_columns(rows, inner, cols, device):
    """Whether a batched product is cheaper as one broadcast op per inner index."""
    if inner == 1:
        # An outer product: one broadcast multiply, the same numbers as bmm.
        return True
    return device.type == "cpu" and inner == 2 and rows * inner * cols < _BMM_LOOP_MACS


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


class _Workspace:
    """The stacked networks' parameters, gradients and per-step buffers.

    Parameters live in one ``(n_models, n_params)`` buffer, weights first,
    each layer a strided view of it, so that the L2 term is one operation
    over every weight and each model's parameters are one row for Adam.
    Every step writes its activations and gradients into the same memory.
    """

    def __init__(self, estimator, n_models, batch_size, *, dropped, device):
        M, B = n_models, batch_size
        dtype = estimator.module_.weights[0].dtype
        shapes = [tuple(W.shape) for W in estimator.module_.weights]
        self.last = len(shapes) - 1
        self.n_weights = sum(a * b for a, b in shapes)
        n_params = self.n_weights + sum(b for _, b in shapes)
        self.flat = torch.empty((M, n_params), dtype=dtype, device=device)
        self.grad = torch.zeros_like(self.flat)
        self.flat_weights = self.flat[:, : self.n_weights]
        self.grad_flat_weights = self.grad[:, : self.n_weights]
        self.weights, self.biases = _layer_views(self.flat, shapes)
        self.grad_weights, self.grad_biases = _layer_views(self.grad, shapes)
        # bmm into a strided view of the gradient took a path four times as
        # slow for a (6, 4) layer: each product goes through a buffer.
        self.grad_buffers = [torch.empty_like(W) for W in self.grad_weights]
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
        self.forward_by_columns = [_by_columns(B, a, b, device) for a, b in shapes]
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
            if i > 0 and _by_columns(B, b, a, device)
            else None
            for i, (d, (a, b)) in enumerate(zip(deltas, shapes, strict=True))
        ]
        self.weight_T_rows = [
            [W_T[:, k : k + 1, :] for k in range(W_T.shape[1])] if columns else None
            for W_T, columns in zip(self.weights_T, self.delta_columns, strict=True)
        ]
        self.act = ACTIVATIONS_INPLACE[estimator.module_.activation]
        self.act_backward = _ACTIVATION_BACKWARD_INPLACE[estimator.module_.activation]


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
    """Every step's dropout masks of an epoch, drawn at once into reused memory.

    As :func:`~skdnn._network.dropout_masks` draws them: 16 random bits per
    unit, a unit kept when its bits, read as a signed 16-bit integer, reach
    a threshold, here each model's own (a model of rate 0 keeps every unit),
    and kept units scaled by ``1 / (1 - p)``. One draw of the generator
    covers every layer.
    """

    def __init__(self, *, grid, widths, rates, generator, dtype):
        self.generator = generator
        device = generator.device
        S, M, B = grid
        self.layers = [i for i in range(len(widths)) if rates[:, i].any()]
        self.n_steps, self.n_layers = S, len(widths)

        def per_model(values):
            return torch.tensor(values, dtype=dtype, device=device).view(1, M, 1, 1)

        sizes = [S * M * B * widths[i] for i in self.layers]
        # Four units to each 64-bit draw.
        self.bits = torch.empty(-(-sum(sizes) // 4), dtype=torch.int64, device=device)
        units = self.bits.view(torch.int16)[: sum(sizes)].split(sizes)
        self.masks, self.draws = {}, []
        for i, layer_units in zip(self.layers, units, strict=True):
            shape = (S, M, B, widths[i])
            self.masks[i] = torch.empty(shape, dtype=dtype, device=device)
            dropped = np.minimum(np.round(rates[:, i] * 65536), 65535)
            self.draws.append(
                (
                    layer_units.view(shape),
                    self.masks[i],
                    per_model(dropped - 32768),
                    per_model(1.0 / (1.0 - rates[:, i])),
                )
            )

    def per_step(self):
        """Each step's tuple of masks per hidden layer (None without dropout)."""
        if not self.layers:
            return [()] * self.n_steps
        per_layer = [
            self.masks[i].unbind(0) if i in self.masks else [None] * self.n_steps
            for i in range(self.n_layers)
        ]
        return list(zip(*per_layer, strict=True))

    def draw(self):
        if not self.layers:
            return
        self.bits.random_(-(2**63), None, generator=self.generator)
        for units, mask, threshold, scale in self.draws:
            mask.copy_(units).ge_(threshold).mul_(scale)


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


def _step(
    ws, X, X_columns, X_T, target, share, coef, masks, logits, squared_norm, *, softmax
):
    """Every model's gradient into ``ws.grad``; its logits and weight norm saved.

    :func:`~skdnn._training.backward` with a leading model dimension: the
    error at the output is ``(p - target)`` times each row's share of its
    model's batch weight, propagated back through each model's own weights
    and masks.
    """
    last = ws.last
    h, columns = X, X_columns
    for i in range(last):
        out = ws.act(
            _product(
                h,
                columns,
                ws.weights[i],
                ws.weight_rows[i],
                bias=ws.biases[i],
                out=ws.outputs[i],
            )
        )
        if masks and masks[i] is not None:
            torch.mul(out, masks[i], out=ws.masked[i])
        h, columns = ws.inputs[i], ws.input_columns[i]
    _product(
        h,
        columns,
        ws.weights[last],
        ws.weight_rows[last],
        bias=ws.biases[last],
        out=logits,
    )
    delta = ws.delta
    if softmax:
        torch.ops.aten._log_softmax.out(logits, 2, False, out=delta).exp_()
        delta.scatter_add_(2, target, ws.minus_ones)
    else:
        torch.sigmoid(logits, out=delta).sub_(target)
    delta.mul_(share)
    for i in range(last, -1, -1):
        torch.bmm(ws.inputs_T[i - 1] if i else X_T, delta, out=ws.grad_buffers[i])
        ws.grad_weights[i].copy_(ws.grad_buffers[i])
        torch.sum(delta, dim=1, keepdim=True, out=ws.grad_biases[i])
        if i > 0:
            upstream = _product(
                delta,
                ws.delta_columns[i],
                ws.weights_T[i],
                ws.weight_T_rows[i],
                bias=None,
                out=ws.upstream[i - 1],
            )
            if masks and masks[i - 1] is not None:
                upstream.mul_(masks[i - 1])
            delta = ws.act_backward(upstream, ws.outputs[i - 1])
    # d/dW of (alpha / 2) ||W||^2 / weight_sum, each model its own alpha and
    # batch weight; the penalty itself joins the loss at the epoch's end,
    # from the norm saved here (not the weights: a copy per step would take
    # memory of n_steps times the models' weights).
    torch.linalg.vecdot(ws.flat_weights, ws.flat_weights, out=squared_norm)
    ws.grad_flat_weights.addcmul_(ws.flat_weights, coef)


def make_adam(*, flat, grad, learning_rates, beta_1, beta_2, eps, fused=None):
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

    Returns
    -------
    callable
        ``update(active, every)`` steps the models where the boolean array
        ``active`` is true and leaves the others exactly as they are:
        parameters, moments and step count; ``every`` says whether
        ``active`` is all true.
    """
    M = flat.shape[0]
    exp_avg = torch.zeros_like(flat)
    exp_avg_sq = torch.zeros_like(flat)
    if fused is None:
        fused = hasattr(torch, "_fused_adam_") and flat.device.type in ("cpu", "cuda")
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

        return update

    # torch.optim.Adam(fused=True) keeps a float32 step count per parameter,
    # adds 1 to it and calls this kernel. Here each model is one parameter,
    # its row, so that each keeps its own count; the counts are views of one
    # tensor, incremented in one operation. The kernel takes one learning
    # rate: one call per distinct rate among the models that step.
    counts = torch.zeros(M, dtype=torch.float32, device=flat.device)
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
                _fused_adam(whole, float(learning_rates[0]), beta_1, beta_2, eps)
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
            _fused_adam(tensors, lr, beta_1, beta_2, eps)

    return update


def _fused_adam(tensors, lr, beta_1, beta_2, eps):
    torch._fused_adam_(
        *tensors,
        lr=lr,
        beta1=beta_1,
        beta2=beta_2,
        weight_decay=0.0,
        eps=eps,
        amsgrad=False,
        maximize=False,
    )


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
