"""What training needs around the engine, and inference, as plain functions.

The data on the device, the loss skdnn minimises (:func:`batch_loss`, its
definition: the engine computes its gradient), the estimator's own torch
optimizer and its state, validation scores, scipy's L-BFGS driver, and
prediction in blocks of rows. Nothing here reads or writes estimator state:
the estimator passes in the parameters, data and settings, and keeps what
comes back.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import scipy.optimize
import scipy.sparse
import torch

from ._network import (
    ACTIVATIONS_NUMPY_INPLACE,
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
        # Zero total weight: the batch contributes nothing, as in training.
        scale = sample_weight.sum().reciprocal().nan_to_num(posinf=0.0)
        value = (per_sample * sample_weight).sum() * scale
    if alpha:
        penalty = sum(W.square().sum() for W in weights)
        value = value + (0.5 * alpha) * penalty * scale
    return value


def _target_columns(loss, target):
    # Row-major targets as the losses take them: class indices as a column.
    return target.unsqueeze(1) if loss.index_target else target


def batch_rows(batch_size, n_samples):
    """The batch size a fit uses: ``batch_size`` ('auto': 200) clipped to
    ``n_samples``."""
    return min(200 if batch_size == "auto" else batch_size, n_samples)


def clipped_batch_size(batch_size, n_samples, *, stacklevel):
    """:func:`batch_rows`, warning (at ``stacklevel`` from the caller) where
    an explicit ``batch_size`` is clipped."""
    if batch_size != "auto" and batch_size > n_samples:
        warnings.warn(
            f"Got batch_size={batch_size} larger than the number of "
            f"training samples ({n_samples}); it is clipped to {n_samples}.",
            stacklevel=stacklevel + 1,
        )
    return batch_rows(batch_size, n_samples)


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
