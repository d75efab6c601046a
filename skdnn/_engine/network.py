"""M networks of one architecture as stacked tensors: one training step.

The workspace holds the stacked parameters, gradients and per-step buffers;
:func:`_step` runs every model's forward pass, its loss's gradient at the
output and its backward pass, each model with its own weights, rows, masks
and penalty. A single fit is a stack of one.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import copy
from typing import NamedTuple

import numpy as np
import torch

from .._compat import direct, sigmoid_backward, tanh_backward, threshold_backward
from .._network import ACTIVATIONS_INPLACE

# Each hidden activation's torch backward kernel and the arguments it takes
# between the output and ``grad_input`` (see _activation_backward).
_ACTIVATION_KERNELS = {
    "logistic": (sigmoid_backward, ()),
    "tanh": (tanh_backward, ()),
    "relu": (threshold_backward, (0,)),
}


def _activation_backward(activation):
    """The hidden activation's derivative from its output, written over the
    incoming gradient: torch's own backward kernel, one operation, called
    with no frame of skdnn's in between (:func:`~skdnn._compat.direct`)."""
    if activation == "identity":
        return lambda grad, out: grad
    function, arguments = _ACTIVATION_KERNELS[activation]
    kernel = direct(function)
    return lambda grad, out: kernel(grad, out, *arguments, grad_input=grad)


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
    # For sparse input: a holder of the step's rows, one scipy CSR matrix
    # (batch, n_features) per model, that each epoch puts in (see
    # sparse_input).
    X_sparse: list | None = None


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
    sparse_input : bool, default=False
        Whether the data is a scipy sparse matrix (on the CPU):
        the first layer's products then go through scipy on each step's
        CSR rows (``_StepViews.X_sparse``), at a cost that grows with the
        stored values, not with the features. On S1 of
        ``benchmarks/ab_paired.py`` (1% of 2,000 features set) a step's
        products took a tenth of their dense time.
    input_scaling : float, default=0.0
        With a positive value, each model scales its input features by
        ``s = input_scaling * u`` before the first layer (see
        :class:`~skdnn._network.MLPModule`), ``u`` being the last
        ``fan_in`` parameters of its row, after the biases. A step computes
        the first layer with ``W0' = s[:, None] * W0`` (one product, as
        without a scale: ``(X * s) @ W0 == X @ W0'``); with ``G`` the
        gradient with respect to ``W0'``, the chain rule gives ``s * G`` for
        ``W0`` and ``input_scaling * sum_k W0[:, k] * G[:, k]`` for ``u``.
    """

    def __init__(self, shapes, activation, n_models, batch_size, *, dtype, dropped,
                 device, numpy_products=False, flat=None, grad=None,
                 sparse_input=False, input_scaling=0.0):  # fmt: skip
        M, B = n_models, batch_size
        self.numpy_products = numpy_products
        self.last = len(shapes) - 1
        self.n_weights = sum(a * b for a, b in shapes)
        n_network = self.n_weights + sum(b for _, b in shapes)
        self.input_scaling = float(input_scaling)
        n_params = n_network + (shapes[0][0] if self.input_scaling else 0)
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
        # The first layer's weights as the forward pass uses them: W0' =
        # s[:, None] * W0 with an input scale, written each step; W0 itself
        # without.
        self.first_weights = self.weights[0]
        if self.input_scaling:
            self.scale_u = self.flat[:, n_network:]
            self.grad_scale_u = self.grad[:, n_network:]
            self.first_weights = torch.empty_like(self.weights[0])
            self.scale_s = torch.empty((M, shapes[0][0], 1), dtype=dtype, device=device)
        self.weights_T = [
            W.transpose(1, 2) for W in (self.first_weights, *self.weights[1:])
        ]
        # bmm into a strided view of the gradient took a path four times as
        # slow for a (6, 4) layer: each product goes through a buffer.
        # (numpy's matmul writes into the view directly.)
        self.grad_buffers = (
            None if numpy_products else [torch.empty_like(W) for W in self.grad_weights]
        )
        self.widths = [fan_out for _, fan_out in shapes[:-1]]
        self.n_outputs = shapes[-1][1]
        self._allocate_activations(activation, dropped, (M, B), dtype, device)
        self._plan_products(shapes, B, device)
        self.sparse_input = sparse_input
        if sparse_input:
            # The first layer reads the CSR rows, not feature-major views.
            self.forward_by_rows[0], self.weight_T_columns[0] = False, None
        # A first layer wider in than out takes its products through torch
        # on the step's data as it lies, row-major (batch, features), and
        # writes row-major results that one transposed copy puts in place:
        # with the data's transposed view both operands of each product
        # were strided, 1.79 ms a gradient where this takes 1.34, copy
        # included (2,000 features, 64 units, 200 rows); a sparse fit of
        # that shape took 0.85 of the time. Narrower in than out, the copies
        # cost more than they gained (W3, 100 features into 256 units: 1.05).
        fan_in, fan_out = shapes[0]
        self.rows_first = (
            not numpy_products
            and not self.forward_by_rows[0]
            and not sparse_input
            and fan_in > fan_out
        )
        if self.rows_first:
            self.first_rows = torch.empty((M, B, fan_out), dtype=dtype, device=device)
            self.first_grad_T = torch.empty(
                (M, fan_out, fan_in), dtype=dtype, device=device
            )
        self.act = ACTIVATIONS_INPLACE[activation]
        self.act_backward = _activation_backward(activation)
        # ReLU's gate with dropout: 1 / (1 - p) where the unit's input is
        # positive and kept, 0 elsewhere.
        self.threshold_backward = direct(threshold_backward)
        as_numpy = self.as_numpy
        self.weights_np = [as_numpy(W) for W in self.weights]
        self.weights_T_np = [as_numpy(W) for W in self.weights_T]
        self.grad_weights_np = [as_numpy(W) for W in self.grad_weights]
        self.outputs_np = [as_numpy(h) for h in self.outputs]
        self.inputs_np = [as_numpy(h) for h in self.inputs]
        self.deltas_np = [as_numpy(d) for d in self.deltas]
        self.deltas_T_np = [as_numpy(d) for d in self.deltas_T]

    def _allocate_activations(self, activation, dropped, grid, dtype, device):
        """Every layer's outputs, masked outputs, ReLU gates and errors."""
        M, B = grid

        def empty(width):
            return torch.empty((M, width, B), dtype=dtype, device=device)

        self.outputs = [empty(w) for w in self.widths]
        self.gated = activation == "relu"
        # A ReLU layer with dropout needs only its gate and one more buffer:
        # its output, masked in place, then (once the next layer's weight
        # gradient has read it) its error. A step then touches half the
        # memory of four buffers a layer, more of it in cache: paired A/B,
        # W4 0.959 and 0.966, W2 0.926, W1 1.020 (same).
        in_place = [d and self.gated for d in dropped]
        self.masked = [
            o if p else (empty(w) if d else None)
            for o, w, d, p in zip(self.outputs, self.widths, dropped, in_place,
                                  strict=True)
        ]  # fmt: skip
        self.gates = [
            empty(w) if p else None for w, p in zip(self.widths, in_place, strict=True)
        ]
        self.upstream = [
            o if p else empty(w)
            for o, w, p in zip(self.outputs, self.widths, in_place, strict=True)
        ]
        self.delta = empty(self.n_outputs)
        self.minus_ones = torch.full((M, 1, B), -1.0, dtype=dtype, device=device)
        # Layer i + 1's input; layer 0's is the step's data.
        self.inputs = [
            m if d else o
            for m, o, d in zip(self.masked, self.outputs, dropped, strict=True)
        ]
        self.deltas = [*self.upstream, self.delta]
        self.deltas_T = [d.transpose(1, 2) for d in self.deltas]

    def _plan_products(self, shapes, B, device):
        """Which products are broadcast products by rows, and their views."""
        numpy_products = self.numpy_products

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
            rows(d, use) for d, use in zip(self.deltas, upstream_by_rows, strict=True)
        ]

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


def _step(ws, views, *, loss):
    """Every model's gradient into ``ws.grad``; its logits and weight norm saved.

    Backpropagation written out, with a leading model dimension, on
    feature-major activations (see :class:`_Workspace`): the forward pass
    keeps each layer's output; the error at the output is ``loss.gradient``
    (``inverse_link(raw) - target``) times each row's share of its model's
    batch weight, propagated back one layer at a time through each model's
    own weights, dropout masks and the activation's derivative. This is the
    gradient of :func:`~skdnn._training.batch_loss` on each model's batch
    (``tests/test_gradients.py`` checks it against finite differences,
    textbook backpropagation and autograd), in a fraction of the tensor
    operations autograd needs, which is what bounds small networks' speed.
    Every training step and L-BFGS's objective run it.
    """
    scaling = ws.input_scaling
    if scaling:
        torch.mul(ws.scale_u.unsqueeze(2), scaling, out=ws.scale_s)
        torch.mul(ws.weights[0], ws.scale_s, out=ws.first_weights)
    _forward(ws, views)
    delta = ws.delta
    loss.gradient(views.logits, views.target, 1, out=delta, scratch=ws.minus_ones)
    delta.mul_(views.share)
    _backward(ws, views, delta)
    if scaling:
        # ws.grad_weights[0] holds G, the gradient with respect to W0'.
        G = ws.grad_weights[0]
        torch.linalg.vecdot(ws.weights[0], G, dim=2, out=ws.grad_scale_u)
        ws.grad_scale_u.mul_(scaling)
        G.mul_(ws.scale_s)
    # d/dW of (alpha / 2) ||W||^2 / weight_sum, each model its own alpha and
    # batch weight; the penalty itself joins the loss at the epoch's end,
    # from the norm saved here (not the weights: a copy per step would take
    # memory of n_steps times the models' weights).
    # The norm, squared, rather than vecdot: its elementwise product writes
    # and reads back a temporary as large as the weights, which wide
    # networks' steps paid in memory traffic (30 models of 17,024 float64
    # weights, W6 of benchmarks/search.py: 333 us a call on 2 threads, 96
    # for this; the whole curve 0.967 of the time in a paired A/B).
    torch.linalg.vector_norm(ws.flat_weights, dim=1, out=views.squared_norm).square_()
    ws.grad_flat_weights.addcmul_(ws.flat_weights, views.coef)


def _forward(ws, views):
    """Every layer's output into the workspace, the logits into the step's."""
    last, masks, numpy_products = ws.last, views.masks, ws.numpy_products
    h, rows, h_np = views.X_T, views.X_rows, views.X_T_np
    for i in range(last + 1):
        out = ws.outputs[i] if i < last else views.logits
        if i == 0 and ws.sparse_input:
            # Each model's CSR rows times its W, then + b, feature-major.
            for m, X_m in enumerate(views.X_sparse):
                out[m].copy_(torch.from_numpy(X_m @ ws.first_weights[m].numpy()).T)
            out.add_(ws.bias_columns[0])
        elif numpy_products:
            np.matmul(ws.weights_T_np[i], h_np, out=ws.outputs_np[i] if i < last
                      else views.logits_np)  # fmt: skip
            out.add_(ws.bias_columns[i])
        elif i == 0 and ws.rows_first:
            torch.baddbmm(
                ws.biases[0], h.transpose(1, 2), ws.first_weights, out=ws.first_rows
            )
            out.copy_(ws.first_rows.transpose(1, 2))
        else:
            _product(
                ws.weights_T[i], ws.weight_T_columns[i], h, rows,
                bias=ws.bias_columns[i], out=out,
            )  # fmt: skip
        if i == last:
            return
        mask = masks[i] if masks else None
        if mask is None:
            ws.act(out)
        elif ws.gated:
            gate = ws.gates[i]
            ws.threshold_backward(mask, out, 0, grad_input=gate)
            torch.mul(out, gate, out=ws.masked[i])
        else:
            torch.mul(ws.act(out), mask, out=ws.masked[i])
        h, rows, h_np = ws.inputs[i], ws.input_rows[i], ws.inputs_np[i]


def _backward(ws, views, delta):
    """Every layer's gradient from the output's error ``delta``, down to the
    first layer, into ``ws.grad`` (the penalty's part aside)."""
    last, masks, numpy_products = ws.last, views.masks, ws.numpy_products
    for i in range(last, -1, -1):
        if i == 0 and ws.sparse_input:
            # X.T @ delta.T per model: scipy's product of the rows' transpose
            # (a CSC view, no copy) with the feature-major error, transposed.
            for m, X_m in enumerate(views.X_sparse):
                grad = X_m.T @ delta[m].T.numpy()
                ws.grad_weights[0][m].copy_(torch.from_numpy(grad))
        elif numpy_products:
            np.matmul(
                ws.inputs_np[i - 1] if i else views.X_T_np,
                ws.deltas_T_np[i],
                out=ws.grad_weights_np[i],
            )
        elif i == 0 and ws.rows_first:
            torch.bmm(delta, views.X_T.transpose(1, 2), out=ws.first_grad_T)
            ws.grad_weights[0].copy_(ws.first_grad_T.transpose(1, 2))
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
