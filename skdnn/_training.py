"""The training loop and inference, as plain functions of tensors.

Nothing here reads or writes estimator state: the estimator passes in the
parameters, data and settings, and keeps what comes back.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import scipy.optimize
import scipy.sparse
import torch
from torch.nn import functional as F

from ._network import dropout_masks, forward

# Inference and full-batch losses run over blocks of rows so that no
# activation matrix holds more than this many values (about 16 MB in float32).
_BLOCK_VALUES = 2**22


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


def take_rows(X, order):
    """Rows ``order`` of ``X`` (a Tensor or SparseRows), in that order."""
    if isinstance(X, SparseRows):
        return X.take(order)
    return X.index_select(0, order)


def block_rows(layer_units):
    """Number of rows per block so that a block's activations stay bounded."""
    return max(1, _BLOCK_VALUES // max(layer_units))


def batch_loss(logits, target, sample_weight, *, out_activation, weights, alpha):
    """The loss skdnn minimises on one batch.

    The cross-entropy of each sample (summed over outputs for logistic
    outputs), averaged with the sample weights, plus the L2 penalty
    ``alpha / 2 * ||W||^2`` divided by the batch's total sample weight, as in
    scikit-learn's MLPClassifier.

    Parameters
    ----------
    logits : Tensor of shape (n_samples, n_outputs)
    target : Tensor
        Class indices of shape (n_samples,) for a softmax output; 0/1 values
        of shape (n_samples, n_outputs) for a logistic output.
    sample_weight : Tensor of shape (n_samples,) or None
    out_activation : {'softmax', 'logistic'}
    weights : sequence of Tensor
        The weight matrices (not the biases) the penalty applies to.
    alpha : float

    Returns
    -------
    Tensor of shape ()
    """
    if out_activation == "softmax":
        per_sample = F.cross_entropy(logits, target, reduction="none")
    else:
        per_sample = F.binary_cross_entropy_with_logits(
            logits, target, reduction="none"
        ).sum(dim=1)
    if sample_weight is None:
        scale = 1.0 / logits.shape[0]
        loss = per_sample.mean()
    else:
        # Zero total weight: the batch contributes nothing (see backward).
        scale = sample_weight.sum().reciprocal().nan_to_num(posinf=0.0)
        loss = (per_sample * sample_weight).sum() * scale
    if alpha:
        penalty = sum(W.square().sum() for W in weights)
        loss = loss + (0.5 * alpha) * penalty * scale
    return loss


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
            momentum=momentum, nesterov=bool(nesterovs_momentum and momentum > 0)
        )
    try:
        return make(params, lr=learning_rate_init, fused=True, **settings)
    except (RuntimeError, TypeError, ValueError):
        # Not every device and dtype has a fused kernel.
        return make(params, lr=learning_rate_init, **settings)


# Each hidden activation in place, and its derivative from its output:
# torch's own backward kernels, one operation each.
_ACTIVATION_INPLACE = {
    "identity": lambda z: z,
    "logistic": torch.sigmoid_,
    "tanh": torch.tanh_,
    "relu": torch.relu_,
}
_ACTIVATION_BACKWARD = {
    "identity": lambda grad, out: grad,
    "logistic": torch.ops.aten.sigmoid_backward,
    "tanh": torch.ops.aten.tanh_backward,
    "relu": lambda grad, out: torch.ops.aten.threshold_backward(grad, out, 0),
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
    out_activation,
    flat_weights=None,
):
    """Compute one batch's loss and write its gradients to the parameters' ``.grad``.

    Backpropagation written out: the forward pass keeps each layer's input and
    activation; the error at the output layer is ``(p - target)`` times the
    normalized sample weights (softmax with cross-entropy, or the logistic
    function with binary cross-entropy); it is propagated back one layer at a
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
    out_activation : {'softmax', 'logistic'}
    flat_weights : tuple of two 1-d Tensors, default=None
        All weight matrices, and their gradients, as one contiguous view
        each, when the parameters live in one flat buffer: the L2 term then
        costs one operation instead of several per layer.

    Returns
    -------
    Tensor of shape ()
        The batch's loss, penalty included.
    """
    with torch.no_grad():
        act = _ACTIVATION_INPLACE[activation]
        last = len(weights) - 1
        inputs, outputs = [X], []
        h = X
        for i in range(last):
            out = act(torch.addmm(biases[i], h, weights[i]))
            outputs.append(out)
            if masks is not None and masks[i] is not None:
                h = out * masks[i]
            else:
                h = out
            inputs.append(h)
        logits = torch.addmm(biases[last], h, weights[last])

        n_samples = logits.shape[0]
        if out_activation == "softmax":
            log_proba = torch.log_softmax(logits, dim=1)
            per_sample = log_proba.gather(1, target.unsqueeze(1))
            delta = log_proba.exp_()
            delta.scatter_add_(
                1, target.unsqueeze(1), torch.full_like(per_sample, -1.0)
            )
            if sample_weight is None:
                loss = per_sample.sum() * (-1.0 / n_samples)
        else:
            delta = torch.sigmoid(logits).sub_(target)
            if sample_weight is None:
                loss = F.binary_cross_entropy_with_logits(
                    logits, target, reduction="sum"
                ) * (1.0 / n_samples)
            else:
                per_sample = F.binary_cross_entropy_with_logits(
                    logits, target, reduction="none"
                ).sum(dim=1, keepdim=True)
        if sample_weight is None:
            delta.mul_(1.0 / n_samples)
        else:
            # A batch whose weights sum to zero contributes nothing, neither
            # data nor penalty, instead of 0 / 0 = NaN in every weight.
            inverse_sum = sample_weight.sum().reciprocal().nan_to_num(posinf=0.0)
            share = (sample_weight * inverse_sum).unsqueeze(1)
            loss = (per_sample * share).sum()
            if out_activation == "softmax":
                loss = loss.neg()
            delta.mul_(share)

        for i in range(last, -1, -1):
            W, b = weights[i], biases[i]
            torch.mm(inputs[i].T, delta, out=_grad_buffer(W))
            torch.sum(delta, dim=0, out=_grad_buffer(b))
            if i > 0:
                upstream = torch.mm(delta, W.T)
                if masks is not None and masks[i - 1] is not None:
                    upstream.mul_(masks[i - 1])
                delta = _ACTIVATION_BACKWARD[activation](upstream, outputs[i - 1])

        if alpha:
            # d/dW of (alpha / 2) ||W||^2 / weight_sum is alpha W / weight_sum;
            # with sample weights, 1 / weight_sum is a tensor, left on the
            # device.
            if sample_weight is None:
                coef = alpha / n_samples
            else:
                coef = alpha * inverse_sum
            if flat_weights is not None:
                pairs = [flat_weights]
            else:
                pairs = [(W, W.grad) for W in weights]
            for values, grads in pairs:
                loss = loss + (0.5 * coef) * torch.dot(
                    values.reshape(-1), values.reshape(-1)
                )
                if sample_weight is None:
                    grads.add_(values, alpha=coef)
                else:
                    grads.addcmul_(values, coef)
    return loss


def train_step(
    *,
    weights,
    biases,
    optimizer,
    X,
    target,
    sample_weight,
    activation,
    dropout,
    generator,
    alpha,
    out_activation,
    flat_weights=None,
):
    """One optimizer step on one batch; returns the batch's loss (a Tensor).

    No ``zero_grad``: :func:`backward` overwrites the gradients, which may be
    views of one flat buffer that the optimizer updates in one operation.
    """
    masks = None
    if any(dropout):
        masks = dropout_masks(
            n_samples=X.shape[0],
            widths=[b.shape[0] for b in biases[:-1]],
            rates=dropout,
            generator=generator,
            dtype=X.dtype,
            device=X.device,
        )
    loss = backward(
        weights=weights,
        biases=biases,
        X=X,
        target=target,
        sample_weight=sample_weight,
        masks=masks,
        activation=activation,
        alpha=alpha,
        out_activation=out_activation,
        flat_weights=flat_weights,
    )
    optimizer.step()
    return loss


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
    out_activation,
    flat_weights=None,
):
    """One pass over the data in batches; returns the mean batch loss (a Tensor).

    ``order`` (a permutation Tensor, or None for the given order) is applied
    once per epoch, so that each batch is a contiguous slice rather than a
    gather of scattered rows.
    """
    if order is not None:
        X = take_rows(X, order)
        target = target.index_select(0, order)
        if sample_weight is not None:
            sample_weight = sample_weight.index_select(0, order)
    n_samples = len(X)
    # Summed on the device and read once per epoch: reading each batch's loss
    # would wait for the device at every step.
    total = torch.zeros((), dtype=weights[0].dtype, device=weights[0].device)
    for start in range(0, n_samples, batch_size):
        rows = slice(start, start + batch_size)
        loss = train_step(
            weights=weights,
            biases=biases,
            optimizer=optimizer,
            X=X[rows],
            target=target[rows],
            sample_weight=None if sample_weight is None else sample_weight[rows],
            activation=activation,
            dropout=dropout,
            generator=generator,
            alpha=alpha,
            out_activation=out_activation,
            flat_weights=flat_weights,
        )
        total.add_(loss, alpha=min(batch_size, n_samples - start))
    return total / n_samples


def evaluate(weights, biases, X, target, sample_weight, *, activation, out_activation):
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
            t = target[rows]
            if out_activation == "softmax":
                losses.append(F.cross_entropy(logits, t, reduction="none"))
                correct.append(logits.argmax(dim=1) == t)
            else:
                losses.append(
                    F.binary_cross_entropy_with_logits(logits, t, reduction="none").sum(
                        dim=1
                    )
                )
                correct.append(((logits > 0) == (t > 0.5)).all(dim=1))
        per_sample = torch.cat(losses)
        hits = torch.cat(correct).to(per_sample.dtype)
        if sample_weight is None:
            return per_sample.mean().item(), hits.mean().item()
        weight_sum = sample_weight.sum()
        return (
            ((per_sample * sample_weight).sum() / weight_sum).item(),
            ((hits * sample_weight).sum() / weight_sum).item(),
        )


def fit_lbfgs(
    *,
    weights,
    biases,
    X,
    target,
    sample_weight,
    activation,
    alpha,
    out_activation,
    max_iter,
    max_fun,
    tol,
    callback=None,
):
    """Minimise the full-batch loss with scipy's L-BFGS-B, gradients from torch.

    The parameters are updated in place. ``callback(loss)`` is called after
    each iteration.

    Returns
    -------
    scipy.optimize.OptimizeResult
    """
    params = list(weights) + list(biases)
    n_samples = len(X)
    units = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    step = block_rows(units)
    weight_sum = n_samples if sample_weight is None else sample_weight.sum().item()

    def unpack(theta):
        flat = torch.from_numpy(theta).to(dtype=params[0].dtype, device=X_device)
        offset = 0
        with torch.no_grad():
            for p in params:
                p.copy_(flat[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

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
            loss = backward(
                weights=weights,
                biases=biases,
                X=X[rows],
                target=target[rows],
                sample_weight=block_weight,
                masks=None,
                activation=activation,
                alpha=0.0,
                out_activation=out_activation,
            )
            total += loss * share
            for acc, p in zip(gradient, params, strict=True):
                acc.add_(p.grad * share)
        if alpha:
            with torch.no_grad():
                for acc, W in zip(gradient[: len(weights)], weights, strict=True):
                    total += (0.5 * alpha / weight_sum) * W.square().sum()
                    acc.add_(W, alpha=alpha / weight_sum)
        grad = torch.cat([g.reshape(-1) for g in gradient])
        return total.item(), grad.cpu().numpy().astype(np.float64)

    X_device = params[0].device
    theta0 = torch.cat([p.detach().reshape(-1) for p in params]).cpu().numpy()
    result = scipy.optimize.minimize(
        loss_and_grad,
        theta0.astype(np.float64),
        method="L-BFGS-B",
        jac=True,
        callback=None if callback is None else _per_iteration(callback),
        options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
    )
    unpack(result.x)
    return result


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
    out = None
    with torch.inference_mode():
        for start in range(0, n_samples, step):
            rows = slice(start, start + step)
            block = X[rows]
            if scipy.sparse.issparse(block):
                block = block.toarray()
            block = to_device(block, device, dtype)
            z = forward(weights, biases, block, activation=activation)
            if transform is not None:
                z = transform(z)
            z = z.cpu().numpy()
            if out is None:
                out = np.empty((n_samples, z.shape[1]), dtype=z.dtype)
            out[rows] = z
    return out
