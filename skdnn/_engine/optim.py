"""The optimizers of M stacked models: Adam and SGD, each model its own rate.

:func:`make_stacked_optimizer` picks one for a trainer's models. Both plan an
epoch's updates at once (``epoch``) and take each step's plan in turn
(``apply``), leaving the models that do not step exactly as they are.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from .._compat import fused_adam, has_fused_adam


class BatchedAdam(NamedTuple):
    """What :func:`make_adam` returns: the updates and the optimizers' state."""

    epoch: Callable
    apply: Callable
    exp_avg: torch.Tensor
    exp_avg_sq: torch.Tensor
    steps: torch.Tensor


class BatchedSGD(NamedTuple):
    """What :func:`make_sgd` returns: the updates and the momentum buffers."""

    epoch: Callable
    apply: Callable
    learning_rates: torch.Tensor
    momentum_buffer: object


def make_stacked_optimizer(models, *, flat, grad, state=None):
    """The optimizer of a trainer's models, as their ``solver`` says.

    ``state`` is the models' own: Adam's ``(exp_avg, exp_avg_sq, step)``
    or SGD's momentum buffer (None without momentum).
    """
    first = models[0]
    rates = [model.learning_rate for model in models]
    if first.solver == "sgd":
        return make_sgd(
            flat=flat, grad=grad, learning_rates=rates, momentum=first.momentum,
            nesterov=first.nesterov, state=state,
        )  # fmt: skip
    return make_adam(
        flat=flat, grad=grad, learning_rates=rates, beta_1=first.beta_1,
        beta_2=first.beta_2, eps=first.epsilon, state=state,
    )  # fmt: skip


def _active_columns(flat):
    """``column(active)``: None when every model steps, else 1 or 0 per model
    as an (n_models, 1) tensor, made once per pattern."""
    M, columns = flat.shape[0], {}

    def column(active):
        if active.all():
            return None
        key = active.tobytes()
        if key not in columns:
            columns[key] = torch.tensor(
                active, dtype=flat.dtype, device=flat.device
            ).reshape(M, 1)
        return columns[key]

    return column


def make_sgd(*, flat, grad, learning_rates, momentum, nesterov, state=None):
    """SGD for each row of ``flat``, as an independent ``torch.optim.SGD``.

    The update of ``torch.optim.SGD(momentum=momentum, nesterov=nesterov)``:
    ``buf = momentum * buf + grad`` (the first step's ``buf`` is ``grad``,
    as from a zero buffer), then ``param -= lr * (grad + momentum * buf)``
    with Nesterov's momentum, or ``lr * buf`` without. Its
    ``learning_rates``, of shape (n_models, 1), may be changed between
    steps; a caller that keeps scikit-learn's momentum semantics scales the
    buffer by ``old / new`` rate as it does (:func:`rescale_momentum`).

    Parameters
    ----------
    flat, grad : Tensor of shape (n_models, n_params)
    learning_rates : sequence of float
    momentum : float
    nesterov : bool
    state : Tensor of shape (n_models, n_params), default=None
        The momentum buffers, updated in place (for one model, its
        ``torch.optim.SGD``'s, of shape (n_params,)); None: new zero ones.

    Returns
    -------
    BatchedSGD
    """
    M = flat.shape[0]
    lr = torch.tensor(learning_rates, dtype=flat.dtype, device=flat.device)
    lr = lr.reshape(M, 1)
    buffer = None
    if momentum:
        buffer = torch.zeros_like(flat) if state is None else state.view(M, -1)
    column = _active_columns(flat)

    def epoch(active_steps):
        return [column(active) for active in active_steps]

    def apply(active):
        with torch.no_grad():
            direction = grad
            if buffer is not None:
                if active is None:
                    buffer.mul_(momentum).add_(grad)
                else:
                    # A model that does not step keeps its buffer: x 1, + 0.
                    buffer.mul_(1 - active * (1 - momentum)).addcmul_(grad, active)
                direction = grad.add(buffer, alpha=momentum) if nesterov else buffer
            step = lr if active is None else lr * active
            flat.addcmul_(direction, step, value=-1)

    return BatchedSGD(epoch, apply, lr, buffer)


def rescale_momentum(buffer, old, new):
    """Keep scikit-learn's SGD momentum as the models' learning rates change.

    scikit-learn's SGD keeps a velocity, the sum of its past steps, each at
    the rate it was taken with (``v = momentum * v - lr * grad``); torch's
    keeps a sum of past gradients, ``buf = momentum * buf + grad``, and
    multiplies all of it by the current rate. The two agree while the rate
    is constant (``v = -lr * buf``); scaling each model's buffer (a row of
    ``buffer``) by ``old / new`` as its rate changes keeps them equal under
    'invscaling' and 'adaptive'.
    """
    factors = np.asarray(old, dtype=np.float64) / np.asarray(new, dtype=np.float64)
    with torch.no_grad():
        for m in np.flatnonzero(factors != 1):
            buffer[m].mul_(float(factors[m]))


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
        The models' ``(exp_avg, exp_avg_sq, step)``, updated in place: for
        one model, a ``torch.optim.Adam``'s, as its own step would update
        them; for M, rows of M and M counts (a trainer's subset). None: new
        zero moments and counts.

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
        # The kernel takes the count on the parameters' device, as
        # Adam(fused=True) keeps it; another Adam's is on the CPU.
        fused = fused and (state is None or state[2].device == flat.device)
    if state is not None:
        exp_avg, exp_avg_sq, step = state
        exp_avg, exp_avg_sq = exp_avg.view(M, -1), exp_avg_sq.view(M, -1)
    else:
        exp_avg = torch.zeros_like(flat)
        exp_avg_sq = torch.zeros_like(flat)
    moments = (exp_avg, exp_avg_sq)
    settings = (beta_1, beta_2, eps)
    # torch's Adam keeps a float32 step count per parameter (on the device
    # when fused); here one per model, a view of the bound one's.
    counts = torch.zeros(M, dtype=torch.float32, device=flat.device)
    if state is not None:
        counts = step.view(M)
    if not fused:
        return _unfused_adam(
            flat, grad, moments, counts.view(M, 1), learning_rates, settings
        )
    return _fused_adam(flat, grad, moments, counts, learning_rates, settings)


def _unfused_adam(flat, grad, moments, counts, learning_rates, settings):
    """Adam by hand-written tensor operations (see :func:`_adam`)."""
    M = flat.shape[0]
    exp_avg, exp_avg_sq = moments
    beta_1, beta_2, eps = settings
    lr = torch.tensor(learning_rates, dtype=flat.dtype, device=flat.device).reshape(
        M, 1
    )
    column = _active_columns(flat)

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


def _fused_adam(flat, grad, moments, counts, learning_rates, settings):
    """Adam by torch's fused kernel, runs of models in one tensor each."""
    M = flat.shape[0]
    exp_avg, exp_avg_sq = moments
    beta_1, beta_2, eps = settings
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
    learning_rates = np.asarray(learning_rates, dtype=np.float64)
    same_rate = np.diff(learning_rates) == 0
    # The steps each model has taken, as planned (from its state's count).
    taken = counts.cpu().numpy().astype(np.int64)
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

    kernel = fused_adam()

    def apply(step_plan):
        increment, calls = step_plan
        if increment is None:
            counts.add_(1)
        else:
            counts.add_(increment)
        for lr, tensors in calls:
            # The kernel's lists: parameters, gradients, first and second
            # moments, (no AMSGrad maxima) and the counts, advanced above.
            # No weight decay, AMSGrad or maximization: skdnn's Adam has none.
            kernel(*tensors, lr=lr, beta1=beta_1, beta2=beta_2, weight_decay=0.0,
                   eps=eps, amsgrad=False, maximize=False)  # fmt: skip

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
        # The bias corrections in the parameters' dtype (torch's own
        # Adam takes them in double).
        counts = steps.clamp(min=1).to(flat.dtype)
        bias_correction1 = 1 - beta_1**counts
        bias_correction2_sqrt = (1 - beta_2**counts).sqrt()
        denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        flat.addcmul_(exp_avg / denom, step_size / bias_correction1, value=-1)
