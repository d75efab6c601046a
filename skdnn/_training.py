"""The training loop and inference, as plain functions of tensors.

Nothing here reads or writes estimator state: the estimator passes in the
parameters, data and settings, and keeps what comes back.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings
from itertools import repeat

import numpy as np
import scipy.optimize
import scipy.sparse
import torch

from ._compat import (
    fused_adam,
    has_fused_adam,
    sigmoid_backward,
    tanh_backward,
    threshold_backward,
)
from ._network import (
    ACTIVATIONS_INPLACE,
    ACTIVATIONS_NUMPY_INPLACE,
    dropout_masks,
    forward,
)

# Inference and full-batch losses run over blocks of rows so that no
# activation matrix holds more than this many values (4 MB in float32): blocks
# of 2**18 to 2**20 values predicted fastest, 2**22 no faster and 4x the memory.
_BLOCK_VALUES = 2**20


class SparseRows:
    """Rows of a scipy sparse matrix, densified on the device block by block.

    Training and inference slice their input by rows; keeping sparse input
    sparse on the host and densifying one batch at a time bounds memory by
    the batch, not by the data set.

    Parameters
    ----------
    X : scipy sparse matrix of shape (n_samples, n_features)
    device : torch.device
    dtype : torch.dtype
    """

    def __init__(self, X, device, dtype):
        self.X = scipy.sparse.csr_matrix(X)
        self.device = device
        self.dtype = dtype
        self.shape = self.X.shape

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        return to_device(self.X[rows].toarray(), self.device, self.dtype)

    def take(self, order):
        return SparseRows(self.X[order.cpu().numpy()], self.device, self.dtype)


def to_device(array, device, dtype=None):
    """An ndarray as a tensor of ``dtype`` on ``device``."""
    array = np.ascontiguousarray(array)
    if array.flags.writeable:
        tensor = torch.from_numpy(array)
    else:
        with warnings.catch_warnings():
            # Read-only arrays (memmaps) are only read from: torch warns
            # because it cannot know that.
            warnings.filterwarnings("ignore", message=".*not writable.*")
            tensor = torch.from_numpy(array)
    if dtype is not None and tensor.dtype != dtype:
        # Cast on the host: not every device has every dtype (MPS has no
        # float64).
        tensor = tensor.to(dtype)
    return tensor.to(device)


def as_rows(X, device, dtype):
    """Put ``X`` (ndarray or scipy sparse) on ``device`` once, for a whole fit."""
    if scipy.sparse.issparse(X):
        return SparseRows(X, device, dtype)
    return to_device(X, device, dtype)


def take_rows(X, order, out=None):
    """Rows ``order`` of ``X`` (a Tensor or SparseRows), in that order.

    A dense result is written to ``out`` when given.
    """
    if isinstance(X, SparseRows):
        return X.take(order)
    return torch.index_select(X, 0, order, out=out)


def block_rows(layer_units):
    """Number of rows per block so that a block's activations stay bounded."""
    return max(1, _BLOCK_VALUES // max(layer_units))


def batch_loss(logits, target, sample_weight, *, loss, weights, alpha):
    """The loss skdnn minimises on one batch.

    ``loss``'s per-sample loss (see :mod:`skdnn._engine.losses`), averaged
    with the sample weights, plus the L2 penalty ``alpha / 2 * ||W||^2``
    divided by the batch's total sample weight, as in scikit-learn's
    MLPClassifier.

    Parameters
    ----------
    logits : Tensor of shape (n_samples, n_outputs)
        The raw output.
    target : Tensor
        Class indices of shape (n_samples,) for a loss of index targets;
        values of shape (n_samples, n_outputs) otherwise.
    sample_weight : Tensor of shape (n_samples,) or None
    loss : skdnn._engine.losses.Loss
    weights : sequence of Tensor
        The weight matrices (not the biases) the penalty applies to.
    alpha : float

    Returns
    -------
    Tensor of shape ()
    """
    per_sample = loss.per_sample(logits, _target_columns(loss, target), 1)[:, 0]
    if sample_weight is None:
        scale = 1.0 / logits.shape[0]
        value = per_sample.mean()
    else:
        # Zero total weight: the batch contributes nothing (see backward).
        scale = sample_weight.sum().reciprocal().nan_to_num(posinf=0.0)
        value = (per_sample * sample_weight).sum() * scale
    if alpha:
        penalty = sum(W.square().sum() for W in weights)
        value = value + (0.5 * alpha) * penalty * scale
    return value


def _target_columns(loss, target):
    # Row-major targets as the losses take them: class indices as a column.
    return target.unsqueeze(1) if loss.index_target else target


def clipped_batch_size(batch_size, n_samples, *, stacklevel):
    """The batch size a fit uses: ``batch_size`` ('auto': 200) clipped to
    ``n_samples``, warning (at ``stacklevel`` from the caller) where it is."""
    if batch_size == "auto":
        return min(200, n_samples)
    if batch_size > n_samples:
        warnings.warn(
            f"Got batch_size={batch_size} larger than the number of "
            f"training samples ({n_samples}); it is clipped to {n_samples}.",
            stacklevel=stacklevel + 1,
        )
    return min(batch_size, n_samples)


def max_iter_message(max_iter):
    """The ConvergenceWarning of a stochastic fit that ran all its epochs.

    scikit-learn's ``MLPClassifier`` words; ``fit`` and the batched trainer
    issue the same.
    """
    return (
        f"Stochastic Optimizer: Maximum iterations ({max_iter}) reached and the "
        "optimization hasn't converged yet."
    )


def uses_nesterov(nesterovs_momentum, momentum):
    """Whether SGD takes Nesterov's momentum: asked for, and a momentum at all
    (torch's SGD refuses Nesterov without one)."""
    return bool(nesterovs_momentum and momentum > 0)


def make_optimizer(
    params,
    *,
    solver,
    learning_rate_init,
    momentum,
    nesterovs_momentum,
    beta_1,
    beta_2,
    epsilon,
):
    """Build torch's optimizer for a stochastic solver, fused where supported."""
    if solver == "adam":
        make = torch.optim.Adam
        settings = dict(betas=(beta_1, beta_2), eps=epsilon)
    else:
        make = torch.optim.SGD
        settings = dict(
            momentum=momentum, nesterov=uses_nesterov(nesterovs_momentum, momentum)
        )
    try:
        return make(params, lr=learning_rate_init, fused=True, **settings)
    except (RuntimeError, TypeError, ValueError):
        # Not every device and dtype has a fused kernel.
        return make(params, lr=learning_rate_init, **settings)


def is_plain_fused_adam(optimizer):
    """Whether ``optimizer`` is the Adam skdnn makes: fused, over one parameter.

    Without weight decay, AMSGrad or any other option, so that one call of
    torch's fused kernel is its whole step.
    """
    group = optimizer.param_groups[0]
    return bool(
        type(optimizer) is torch.optim.Adam
        and has_fused_adam()
        and len(optimizer.param_groups) == 1
        and len(group["params"]) == 1
        and group.get("fused")
        and not group.get("amsgrad")
        and not group.get("maximize")
        and not group.get("differentiable")
        and not group.get("capturable")
        and not group.get("decoupled_weight_decay")
        and group.get("weight_decay") == 0
        and not isinstance(group.get("lr"), torch.Tensor)
    )


def is_plain_sgd(optimizer):
    """Whether ``optimizer`` is the SGD skdnn makes: over one parameter,
    without weight decay, dampening or any other option."""
    group = optimizer.param_groups[0]
    return bool(
        type(optimizer) is torch.optim.SGD
        and len(optimizer.param_groups) == 1
        and len(group["params"]) == 1
        and group.get("weight_decay") == 0
        and group.get("dampening") == 0
        and not group.get("maximize")
        and not group.get("differentiable")
        and not isinstance(group.get("lr"), torch.Tensor)
    )


def sgd_momentum_buffer(optimizer):
    """A one-parameter SGD's momentum buffer, made (zero) if it has none yet.

    A zero buffer gives the first step's ``momentum * 0 + grad``, what
    torch's SGD starts with; None without momentum.
    """
    group = optimizer.param_groups[0]
    if not group["momentum"]:
        return None
    (param,) = group["params"]
    state = optimizer.state[param]
    if state.get("momentum_buffer") is None:
        state["momentum_buffer"] = torch.zeros_like(
            param, memory_format=torch.preserve_format
        ).detach()
    return state["momentum_buffer"]


def load_adam_state(optimizer, *, exp_avg=None, exp_avg_sq=None, step=0):
    """Give a one-parameter Adam this state (zero moments by default).

    Through ``load_state_dict``, which casts each value to the dtype and
    device this optimizer keeps it in. Returns the state's ``(exp_avg,
    exp_avg_sq, step)`` tensors, which its steps update in place.
    """
    (param,) = optimizer.param_groups[0]["params"]
    state = optimizer.state_dict()
    state["state"] = {
        0: {
            "step": torch.tensor(float(step)),
            "exp_avg": torch.zeros_like(param) if exp_avg is None else exp_avg.clone(),
            "exp_avg_sq": (
                torch.zeros_like(param) if exp_avg_sq is None else exp_avg_sq.clone()
            ),
        }
    }
    optimizer.load_state_dict(state)
    state = optimizer.state[param]
    return state["exp_avg"], state["exp_avg_sq"], state["step"]


def adam_state(optimizer):
    """A one-parameter Adam's ``(exp_avg, exp_avg_sq, step)``, which its steps
    update in place: the state it has, or zero moments before its first step.
    """
    (param,) = optimizer.param_groups[0]["params"]
    state = optimizer.state.get(param, {})
    if {"exp_avg", "exp_avg_sq", "step"} <= state.keys():
        return state["exp_avg"], state["exp_avg_sq"], state["step"]
    return load_adam_state(optimizer)


def fused_adam_kernel(tensors, lr, beta_1, beta_2, eps):
    """Call torch's fused Adam kernel, as ``Adam(fused=True).step`` ends in.

    ``tensors`` are the kernel's lists: parameters, gradients, first and
    second moments, (no AMSGrad maxima) and step counts, already advanced.
    No weight decay, AMSGrad or maximization: skdnn's Adam has none.
    """
    fused_adam(
        *tensors,
        lr=lr,
        beta1=beta_1,
        beta2=beta_2,
        weight_decay=0.0,
        eps=eps,
        amsgrad=False,
        maximize=False,
    )


def make_step(optimizer):
    """``optimizer.step`` as a function of no arguments, at less cost per call.

    ``Optimizer.step`` spends about 25 microseconds of Python per call (hooks,
    grouping tensors by device and dtype), as long as a small network's whole
    update. For the optimizer skdnn builds for training, fused Adam over one
    flat parameter without weight decay or AMSGrad, the function returned
    calls the kernel that ``step`` ends in, ``torch._fused_adam_``, on the
    optimizer's own state: the optimizer, its ``state_dict`` and pickling stay
    torch's, and the tests check that both give bit-identical parameters.
    Any other optimizer gets ``optimizer.step`` itself.
    """
    if not is_plain_fused_adam(optimizer):
        return optimizer.step
    group = optimizer.param_groups[0]
    (param,) = group["params"]
    tensors = None

    def step():
        nonlocal tensors
        if tensors is None:
            state = optimizer.state.get(param)
            if not state:
                # The first step creates the state, as torch lays it out.
                optimizer.step()
                return
            tensors = (
                [param],
                [param.grad],
                [state["exp_avg"]],
                [state["exp_avg_sq"]],
                [],
                [state["step"]],
            )
        beta1, beta2 = group["betas"]
        # What torch.optim.adam._fused_adam does for one tensor on one device.
        tensors[5][0].add_(1)
        fused_adam_kernel(tensors, group["lr"], beta1, beta2, group["eps"])

    return step


class Workspace:
    """Activation and gradient buffers that every training step reuses.

    A new activation matrix per step costs more than the arithmetic on it
    once it is larger than the C library's mmap threshold (128 KiB by
    default): each one is mapped afresh and page-faulted in, which made a
    (256, 256) network's step half again as slow. Batches of up to
    ``batch_size`` rows write into these buffers instead; the epoch's
    shuffled copy of the data is kept too.

    Parameters
    ----------
    weights : sequence of Tensor
        The network's weight matrices, for the widths, dtype and device.
    batch_size : int
        The largest batch.
    dropout : sequence of bool
        Whether each hidden layer has dropout (and needs a masked copy).
    """

    def __init__(self, weights, batch_size, dropout):
        dtype, device = weights[0].dtype, weights[0].device

        def empty(width):
            return torch.empty((batch_size, width), dtype=dtype, device=device)

        widths = [W.shape[1] for W in weights[:-1]]
        full = (
            [empty(w) for w in widths],
            [empty(w) if p else None for w, p in zip(widths, dropout, strict=True)],
            [empty(w) for w in widths],
        )
        self._full = full
        self._views = {batch_size: full}
        self._shuffled = None
        self._masks = None
        self._dtype, self._device = dtype, device

    def rows(self, n_samples):
        """Buffers for a batch: activations, masked activations, gradients."""
        views = self._views.get(n_samples)
        if views is None:
            views = tuple(
                [None if b is None else b[:n_samples] for b in buffers]
                for buffers in self._full
            )
            self._views[n_samples] = views
        return views

    def mask_buffers(self, n_samples, widths, rates):
        """Memory for ``n_samples`` rows of dropout masks, reused from call to call.

        As ``out`` of :func:`~skdnn._network.dropout_masks`.
        """
        if self._masks is None or self._masks[0] < n_samples:
            draws = torch.empty(
                -(-n_samples * max(widths) // 4), dtype=torch.int64, device=self._device
            )
            masks = [
                torch.empty((n_samples, w), dtype=self._dtype, device=self._device)
                if p
                else None
                for w, p in zip(widths, rates, strict=True)
            ]
            self._masks = (n_samples, (draws, masks))
        return self._masks[1]

    def shuffled(self, X, order):
        """Rows ``order`` of ``X``, written over the previous epoch's copy."""
        if isinstance(X, SparseRows):
            return X.take(order)
        if self._shuffled is None or self._shuffled.shape != X.shape:
            self._shuffled = torch.empty_like(X)
        return take_rows(X, order, out=self._shuffled)


# Dropout masks are drawn for this many values at a time: a few operations
# per block of batches instead of per batch, in bounded memory.
_MASK_VALUES = 2**20


def mask_blocks(n_samples, batch_size, widths, rates):
    """The blocks of rows whose dropout masks an epoch draws at once.

    Whole batches of at most :data:`_MASK_VALUES` mask values, at least one
    batch, as ``(first_row, n_rows)`` pairs in the order they are drawn. The
    batched trainer draws each model's masks in the same blocks, so that
    they are its sequential fit's.
    """
    per_row = sum(w for w, p in zip(widths, rates, strict=True) if p) or 1
    block = max(1, _MASK_VALUES // (per_row * batch_size)) * batch_size
    block = min(block, n_samples)
    return [
        (start, min(block, n_samples - start)) for start in range(0, n_samples, block)
    ]


def dropout_mask_batches(
    *, n_samples, batch_size, widths, rates, generator, dtype, device, workspace=None
):
    """Yield the dropout masks of each batch of an epoch, in order.

    The masks of many consecutive batches are drawn together by
    :func:`~skdnn._network.dropout_masks` and then cut into batches, which
    is the same distribution as drawing them batch by batch. With a
    ``workspace`` they are drawn into the same memory every epoch (fresh
    memory is page-faulted in, which cost more than the drawing), so a
    batch's masks hold only until the next batch's are asked for.
    """
    blocks = mask_blocks(n_samples, batch_size, widths, rates)
    out = None
    if workspace is not None:
        out = workspace.mask_buffers(blocks[0][1], widths, rates)
    for _, block_rows in blocks:
        masks = dropout_masks(
            n_samples=block_rows,
            widths=widths,
            rates=rates,
            generator=generator,
            dtype=dtype,
            device=device,
            out=out,
        )
        for start in range(0, block_rows, batch_size):
            rows = slice(start, start + batch_size)
            yield [None if m is None else m[rows] for m in masks]


# Each hidden activation's derivative from its output, written over the
# incoming gradient: torch's own backward kernels, one operation each.
_ACTIVATION_BACKWARD_INPLACE = {
    "identity": lambda grad, out: grad,
    "logistic": lambda grad, out: sigmoid_backward(grad, out, grad_input=grad),
    "tanh": lambda grad, out: tanh_backward(grad, out, grad_input=grad),
    "relu": lambda grad, out: threshold_backward(grad, out, 0, grad_input=grad),
}


def _grad_buffer(param):
    # Training preallocates .grad as views of one flat buffer; elsewhere
    # (tests, L-BFGS) it may not exist yet.
    if param.grad is None:
        param.grad = torch.empty_like(param)
    return param.grad


def backward(
    *,
    weights,
    biases,
    X,
    target,
    sample_weight,
    masks,
    activation,
    alpha,
    loss,
    flat_weights=None,
    workspace=None,
):
    """Compute one batch's loss and write its gradients to the parameters' ``.grad``.

    Backpropagation written out: the forward pass keeps each layer's input and
    activation; the error at the output layer is ``(p - target)`` times the
    normalized sample weights (``loss.gradient``: ``inverse_link(raw) -
    target`` for each of skdnn's losses); it is propagated back one layer at a
    time through the weights, the dropout masks and the activation's
    derivative. This is the gradient of :func:`batch_loss` (the property tests
    compare the two, and finite differences), in about a third of the tensor
    operations autograd needs, which is what bounds small networks' speed.
    Every training step and L-BFGS use it. Existing ``.grad`` tensors are
    overwritten, not accumulated into.

    Parameters
    ----------
    weights, biases : sequence of Tensor
        Parameters of each layer, ``(fan_in, fan_out)`` and ``(fan_out,)``.
    X : Tensor of shape (n_samples, n_features)
    target : Tensor
        As for :func:`batch_loss`.
    sample_weight : Tensor of shape (n_samples,) or None
    masks : sequence of (Tensor or None) or None
        Dropout masks as drawn by :func:`~skdnn._network.dropout_masks`.
    activation : str
    alpha : float
    loss : skdnn._engine.losses.Loss
    flat_weights : tuple of two 1-d Tensors, default=None
        All weight matrices, and their gradients, as one contiguous view
        each, when the parameters live in one flat buffer: the L2 term then
        costs one operation instead of several per layer.
    workspace : Workspace, default=None
        Buffers for the activations and their gradients, made for a batch
        of at least this size with dropout on the layers ``masks`` has;
        allocated for this call when None.

    Returns
    -------
    Tensor of shape ()
        The batch's loss, penalty included.
    """
    with torch.no_grad():
        n_samples = X.shape[0]
        last = len(weights) - 1
        if workspace is None:
            dropped = (
                [False] * last if masks is None else [m is not None for m in masks]
            )
            workspace = Workspace(weights, n_samples, dropped)
        outputs, masked, upstreams = workspace.rows(n_samples)
        act = ACTIVATIONS_INPLACE[activation]
        inputs = [X]
        h = X
        for i in range(last):
            out = act(torch.addmm(biases[i], h, weights[i], out=outputs[i]))
            if masks is not None and masks[i] is not None:
                h = torch.mul(out, masks[i], out=masked[i])
            else:
                h = out
            inputs.append(h)
        logits = torch.addmm(biases[last], h, weights[last])

        value, delta, inverse_sum = _output_error(
            logits, _target_columns(loss, target), sample_weight, loss=loss
        )
        for i in range(last, -1, -1):
            W, b = weights[i], biases[i]
            torch.mm(inputs[i].T, delta, out=_grad_buffer(W))
            torch.sum(delta, dim=0, out=_grad_buffer(b))
            if i > 0:
                upstream = torch.mm(delta, W.T, out=upstreams[i - 1])
                if masks is not None and masks[i - 1] is not None:
                    upstream.mul_(masks[i - 1])
                delta = _ACTIVATION_BACKWARD_INPLACE[activation](
                    upstream, outputs[i - 1]
                )

        if alpha:
            # With sample weights, 1 / weight_sum is a tensor, left on the
            # device.
            if sample_weight is None:
                coef = alpha / n_samples
            else:
                coef = alpha * inverse_sum
            pairs = [flat_weights] if flat_weights is not None else None
            pairs = pairs or [(W, W.grad) for W in weights]
            value = _add_penalty(value, pairs, coef)
    return value


def _output_error(logits, target, sample_weight, *, loss):
    """The batch's data loss, the error at the output and 1 / weight sum.

    The error is ``loss.gradient`` times each row's share of the batch's
    sample weights; the inverse sum of the weights is None without them.
    """
    delta = torch.empty_like(logits)
    per_sample = loss.loss_gradient(logits, target, 1, out=delta)
    if sample_weight is None:
        n_samples = logits.shape[0]
        delta.mul_(1.0 / n_samples)
        return per_sample.sum() * (1.0 / n_samples), delta, None
    # A batch whose weights sum to zero contributes nothing, neither data
    # nor penalty, instead of 0 / 0 = NaN in every weight.
    inverse_sum = sample_weight.sum().reciprocal().nan_to_num(posinf=0.0)
    share = (sample_weight * inverse_sum).unsqueeze(1)
    value = (per_sample * share).sum()
    delta.mul_(share)
    return value, delta, inverse_sum


def _add_penalty(value, pairs, coef):
    """Add the L2 penalty to the loss and its gradient to the weights'.

    d/dW of (alpha / 2) ||W||^2 / weight_sum is alpha W / weight_sum:
    ``coef`` is alpha / weight_sum, a float or a tensor on the device;
    ``pairs`` are (weights, their gradient) tensors.
    """
    for values, grads in pairs:
        value = value + (0.5 * coef) * torch.dot(values.reshape(-1), values.reshape(-1))
        if isinstance(coef, torch.Tensor):
            grads.addcmul_(values, coef)
        else:
            grads.add_(values, alpha=coef)
    return value


def train_step(
    *,
    weights,
    biases,
    step,
    X,
    target,
    sample_weight,
    masks,
    activation,
    alpha,
    loss,
    flat_weights=None,
    workspace=None,
):
    """One optimizer step on one batch; returns the batch's loss (a Tensor).

    ``step`` takes the optimizer's step (see :func:`make_step`). No
    ``zero_grad``: :func:`backward` overwrites the gradients, which may be
    views of one flat buffer that the optimizer updates in one operation.
    """
    value = backward(
        weights=weights,
        biases=biases,
        X=X,
        target=target,
        sample_weight=sample_weight,
        masks=masks,
        activation=activation,
        alpha=alpha,
        loss=loss,
        flat_weights=flat_weights,
        workspace=workspace,
    )
    step()
    return value


def run_epoch(
    *,
    weights,
    biases,
    optimizer,
    X,
    target,
    sample_weight,
    order,
    batch_size,
    activation,
    dropout,
    generator,
    alpha,
    loss,
    flat_weights=None,
    workspace=None,
):
    """One pass over the data in batches; returns the mean batch loss (a Tensor).

    ``order`` (a permutation Tensor, or None for the given order) is applied
    once per epoch, so that each batch is a contiguous slice rather than a
    gather of scattered rows. A ``workspace`` (see :class:`Workspace`) made
    for ``batch_size`` and ``dropout`` carries buffers from epoch to epoch.
    """
    if workspace is None:
        workspace = Workspace(weights, batch_size, [p > 0 for p in dropout])
    if order is not None:
        X = workspace.shuffled(X, order)
        target = target.index_select(0, order)
        if sample_weight is not None:
            sample_weight = sample_weight.index_select(0, order)
    n_samples = len(X)
    masks = repeat(None)
    if any(dropout):
        masks = dropout_mask_batches(
            n_samples=n_samples,
            batch_size=batch_size,
            widths=[b.shape[0] for b in biases[:-1]],
            rates=dropout,
            generator=generator,
            dtype=weights[0].dtype,
            device=weights[0].device,
            workspace=workspace,
        )
    step = make_step(optimizer)
    # Summed on the device and read once per epoch: reading each batch's loss
    # would wait for the device at every step.
    total = torch.zeros((), dtype=weights[0].dtype, device=weights[0].device)
    for start, batch_masks in zip(range(0, n_samples, batch_size), masks, strict=False):
        rows = slice(start, start + batch_size)
        value = train_step(
            weights=weights,
            biases=biases,
            step=step,
            X=X[rows],
            target=target[rows],
            sample_weight=None if sample_weight is None else sample_weight[rows],
            masks=batch_masks,
            activation=activation,
            alpha=alpha,
            loss=loss,
            flat_weights=flat_weights,
            workspace=workspace,
        )
        total.add_(value, alpha=min(batch_size, n_samples - start))
    return total / n_samples


def evaluate(weights, biases, X, target, sample_weight, *, activation, loss):
    """Loss (without penalty) and accuracy on held-out data, as Python floats.

    Accuracy is scikit-learn's: the weighted fraction of samples whose
    predicted labels are all right (subset accuracy for multilabel targets).
    """
    n_samples = len(X)
    units = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    step = block_rows(units)
    losses, correct = [], []
    with torch.inference_mode():
        for start in range(0, n_samples, step):
            rows = slice(start, start + step)
            logits = forward(weights, biases, X[rows], activation=activation)
            t = _target_columns(loss, target[rows])
            losses.append(loss.per_sample(logits, t, 1)[:, 0])
            correct.append(loss.hits(logits, t, 1)[:, 0])
        per_sample = torch.cat(losses)
        hits = torch.cat(correct).to(per_sample.dtype)
        if sample_weight is None:
            return per_sample.mean().item(), hits.mean().item()
        weight_sum = sample_weight.sum()
        return (
            ((per_sample * sample_weight).sum() / weight_sum).item(),
            ((hits * sample_weight).sum() / weight_sum).item(),
        )


def fit_lbfgs(params, objective, *, max_iter, max_fun, tol, callback=None):
    """Minimise ``objective`` with scipy's L-BFGS-B, starting from ``params``.

    ``objective`` is scipy's ``loss_and_grad(theta)`` over these parameters
    (flat, weights first, float64): the engine's full-batch objective, or
    :func:`lbfgs_objective`'s. The parameters are updated in place.
    ``callback(loss)`` is called after each iteration.

    Returns
    -------
    scipy.optimize.OptimizeResult
    """
    theta0 = torch.cat([p.detach().reshape(-1) for p in params]).cpu().numpy()
    result = scipy.optimize.minimize(
        objective,
        theta0.astype(np.float64),
        method="L-BFGS-B",
        jac=True,
        callback=None if callback is None else _per_iteration(callback),
        options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
    )
    _unpacker(params)(result.x)
    return result


def _unpacker(params):
    """``unpack(theta)``: copy every parameter's values from the flat float64
    ``theta``, in order."""

    def unpack(theta):
        flat = torch.from_numpy(theta).to(
            dtype=params[0].dtype, device=params[0].device
        )
        offset = 0
        with torch.no_grad():
            for p in params:
                p.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    return unpack


def lbfgs_objective(
    weights, biases, X, target, sample_weight, *, activation, alpha, loss
):
    """scipy's objective, ``loss_and_grad(theta)``, by :func:`backward`.

    ``theta`` is every parameter, flat, in float64, which it copies into
    the parameters; it returns the full-batch loss and its gradient at
    ``theta``, from blocks of rows.
    """
    params = list(weights) + list(biases)
    unpack = _unpacker(params)
    X_device = params[0].device
    n_samples = len(X)
    units = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    step = block_rows(units)
    weight_sum = n_samples if sample_weight is None else sample_weight.sum().item()
    workspace = Workspace(weights, min(step, n_samples), [False] * (len(weights) - 1))

    def loss_and_grad(theta):
        unpack(theta)
        total = torch.zeros((), dtype=params[0].dtype, device=X_device)
        gradient = [torch.zeros_like(p) for p in params]
        # The loss is a sum over samples, so blocks of rows can be
        # back-propagated one at a time and their gradients added up.
        for start in range(0, n_samples, step):
            rows = slice(start, start + step)
            block_weight = None if sample_weight is None else sample_weight[rows]
            share = (
                min(step, n_samples - start)
                if block_weight is None
                else block_weight.sum()
            ) / weight_sum
            block_loss = backward(
                weights=weights,
                biases=biases,
                X=X[rows],
                target=target[rows],
                sample_weight=block_weight,
                masks=None,
                activation=activation,
                alpha=0.0,
                loss=loss,
                workspace=workspace,
            )
            total += block_loss * share
            for acc, p in zip(gradient, params, strict=True):
                acc.add_(p.grad * share)
        if alpha:
            with torch.no_grad():
                for acc, W in zip(gradient[: len(weights)], weights, strict=True):
                    total += (0.5 * alpha / weight_sum) * W.square().sum()
                    acc.add_(W, alpha=alpha / weight_sum)
        grad = torch.cat([g.reshape(-1) for g in gradient])
        return total.item(), grad.cpu().numpy().astype(np.float64)

    return loss_and_grad


def _per_iteration(callback):
    # scipy passes the OptimizeResult only to a parameter of this name.
    def report(intermediate_result):
        callback(intermediate_result.fun)

    return report


def predict_logits(weights, biases, X, *, activation, transform=None):
    """Logits (or ``transform(logits)``) for every row of ``X``, as ndarray.

    ``X`` is an ndarray or scipy sparse matrix on the host; it moves to the
    parameters' device one block of rows at a time, under
    ``torch.inference_mode``, so memory stays bounded for any number of rows.
    """
    device, dtype = weights[0].device, weights[0].dtype
    n_samples = X.shape[0]
    units = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    step = block_rows(units)
    with torch.inference_mode():
        if n_samples <= step:
            # One block: its array is the answer, no copy needed.
            return _predict_block(
                weights, biases, X, activation=activation, transform=transform
            )
        # Every block writes its activations into the same memory.
        buffers = [
            torch.empty((step, width), dtype=dtype, device=device)
            for width in units[1:]
        ]
        out = None
        for start in range(0, n_samples, step):
            rows = slice(start, start + step)
            n_rows = len(range(*rows.indices(n_samples)))
            z = _predict_block(
                weights,
                biases,
                X[rows],
                activation=activation,
                transform=transform,
                out=[b[:n_rows] for b in buffers],
            )
            if out is None:
                out = np.empty((n_samples, z.shape[1]), dtype=z.dtype)
            out[rows] = z
    return out


def predict_numpy(weights, biases, X, *, activation, transform=None):
    """:func:`predict_logits` for a CPU network, computed by numpy.

    On the CPU and for small inputs, numpy's matmul and in-place ufuncs cost
    less per call than torch's operations, and much less right after
    scikit-learn's input validation, which evicts torch's dispatcher from
    the CPU's caches: W1's forward pass (200 rows, 2-6-4-1) took 12 us here
    against 34 us with torch alone and 80 us after validation; W2's (450
    rows, 64-128-64-10) 261 against 338 and 373 us. The products round as
    numpy's BLAS rounds them, which may differ from torch's in the last bits.

    Parameters
    ----------
    weights, biases : sequence of Tensor
        On the CPU.
    X : ndarray or sparse matrix
    activation : str
        A key of ``ACTIVATIONS_NUMPY_INPLACE``.
    transform : callable, default=None
        Applied to the logits (an ndarray), as ``predict_logits``'s is.

    Returns
    -------
    ndarray
        Not finite where the arithmetic overflowed: the caller checks.
    """
    act = ACTIVATIONS_NUMPY_INPLACE[activation]
    last = len(weights) - 1
    # Overflow is detected on the result, as on the torch path, not warned.
    with np.errstate(over="ignore", invalid="ignore"):
        h = X
        for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
            W = W.detach().numpy()
            if i == 0 and not scipy.sparse.issparse(h):
                h = h.astype(W.dtype, copy=False)
            h = h @ W
            if i == 0 and scipy.sparse.issparse(X):
                h = np.asarray(h, dtype=W.dtype)
            h += b.detach().numpy()
            if i < last:
                act(h)
        return h if transform is None else transform(h)


def _predict_block(weights, biases, block, *, activation, transform, out=None):
    if scipy.sparse.issparse(block):
        block = block.toarray()
    block = to_device(block, weights[0].device, weights[0].dtype)
    z = forward(weights, biases, block, activation=activation, inplace=True, out=out)
    if transform is not None:
        z = transform(z)
    return z.cpu().numpy()
