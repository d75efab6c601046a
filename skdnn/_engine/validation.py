"""Early stopping's held-out scores of M stacked networks, after each epoch.

Each model has its own validation rows (a fit's split of its own training
data, a fold's in a search), of any number: they are stacked along the
model dimension, padded to the most rows with rows of weight 0, and scored
in blocks of rows, one batched forward pass per block for every model. The
score is the estimator's ``score``: accuracy for a classification loss
(subset accuracy for a multilabel one), the coefficient of determination
R^2 (averaged over the outputs) for a regression loss.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import scipy.sparse
import torch

from .._network import ACTIVATIONS_INPLACE
from .._training import block_rows, to_device
from .network import _layer_views

# The running models are scored alone once at most this fraction of those
# scored still run (0: never). The early-stopping search of
# benchmarks/compaction.py took 0.90 of the time of scoring every model to
# the end (6 pairs in one process, the same cv_results_).
_SCORE_FRACTION = 0.5


class StackedValidation:
    """Each model's validation loss and score at its current parameters.

    Parameters
    ----------
    shapes : list of tuple of int
        Each layer's weight shape ``(fan_in, fan_out)``: the architecture.
    activation : str
        The hidden layers' activation.
    loss : Loss
        The models' loss (:mod:`skdnn._engine.losses`).
    parts : list of tuple
        Per model, its validation ``(X, target, sample_weight)``: X an
        ndarray or a scipy sparse matrix (made dense a block at a time),
        target as the trainer takes it, sample_weight an ndarray or None.
    dtype, device
        The parameters'.
    input_scaling : float, default=0.0
        The models' input scale factor (see
        :class:`~skdnn._engine.network._Workspace`): with a positive value,
        the scale's parameters follow the biases in each row.

    Calling it with the models' flat parameters, shape (n_models,
    n_params), returns two float64 arrays of shape (n_models,): each model's
    validation loss (the weighted mean per-sample loss, no penalty) and
    score.
    """

    def __init__(self, shapes, activation, loss, parts, *, dtype, device,
                 input_scaling=0.0):  # fmt: skip
        self.shapes, self.loss, self.activation = shapes, loss, activation
        self.input_scaling = input_scaling
        self.parts = parts
        # The models scored, and their scorer: all of them here, the
        # running ones alone once most have stopped (see scores).
        self.scored, self.scorer = np.arange(len(parts)), self
        self.act = ACTIVATIONS_INPLACE[activation]
        self.n_rows = n_rows = np.array([p[0].shape[0] for p in parts])
        self.block = block_rows([shapes[0][0], *(fan_out for _, fan_out in shapes)])
        self.sparse = any(scipy.sparse.issparse(p[0]) for p in parts)
        M, n = len(parts), int(n_rows.max())
        weight = np.zeros((M, n))
        for m, (_, _, sample_weight) in enumerate(parts):
            weight[m, : n_rows[m]] = 1.0 if sample_weight is None else sample_weight
        self.weight = to_device(weight, device, dtype).unsqueeze(2)
        self.weight_sums = self.weight.sum(dim=(1, 2))
        self.target = _padded([p[1] for p in parts], n, device, loss, dtype)
        if self.sparse:
            self.X = [scipy.sparse.csr_matrix(p[0]) for p in parts]
        else:
            self.X = _padded([p[0] for p in parts], n, device, None, dtype)
        self.dtype, self.device = dtype, device
        if not loss.classification:
            # R^2's denominator, per model and output: the weighted sum of
            # squares about the weighted mean target.
            mean = (self.target * self.weight).sum(dim=1, keepdim=True)
            mean /= self.weight_sums.reshape(M, 1, 1)
            self.total_squares = ((self.target - mean).square() * self.weight).sum(1)

    def _X_block(self, rows):
        """Every model's rows ``rows`` of X, dense, shape (n_models, rows, n)."""
        if not self.sparse:
            return self.X[:, rows]
        blocks = [X[rows].toarray() for X in self.X]
        length = max(len(b) for b in blocks)
        out = np.zeros((len(blocks), length, self.shapes[0][0]))
        for m, block in enumerate(blocks):
            out[m, : len(block)] = block
        return to_device(out, self.device, self.dtype)

    def scores(self, flat, running):
        """:meth:`__call__` for the running models: every model's loss and
        score, NaN for the others.

        Once at most half of the models scored still run, the running ones
        are stacked anew and scored alone, as a batch's training shrinks
        (``skdnn._engine.epochs._Compacting``).
        """
        if 0 < running.sum() <= _SCORE_FRACTION * len(self.scored):
            self.scored = np.flatnonzero(running)
            self.scorer = StackedValidation(
                self.shapes, self.activation, self.loss,
                [self.parts[m] for m in self.scored], dtype=self.dtype,
                device=self.device, input_scaling=self.input_scaling,
            )  # fmt: skip
        if self.scorer is self:
            return self(flat)
        index = torch.from_numpy(self.scored).to(flat.device)
        losses, scores = self.scorer(flat.index_select(0, index))
        all_losses, all_scores = (
            np.full(len(running), np.nan),
            np.full(len(running), np.nan),
        )
        all_losses[self.scored], all_scores[self.scored] = losses, scores
        return all_losses, all_scores

    def __call__(self, flat):
        weights, biases = _layer_views(flat, self.shapes)
        if self.input_scaling:
            # The scale folded into the first layer: X @ (s[:, None] * W0).
            fan_in = self.shapes[0][0]
            scale = flat[:, -fan_in:].unsqueeze(2) * self.input_scaling
            weights = [weights[0] * scale, *weights[1:]]
        last = len(weights) - 1
        loss, M = self.loss, flat.shape[0]
        losses = torch.zeros(M, dtype=flat.dtype, device=flat.device)
        scores = torch.zeros_like(losses)
        residual = None if loss.classification else 0.0
        with torch.no_grad():
            for start in range(0, self.weight.shape[1], self.block):
                rows = slice(start, start + self.block)
                h = self._X_block(rows)
                for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
                    h = torch.baddbmm(b, h, W)
                    if i < last:
                        self.act(h)
                target, weight = self.target[:, rows], self.weight[:, rows]
                h, target = h[:, : weight.shape[1]], target[:, : weight.shape[1]]
                losses += (loss.per_sample(h, target, 2) * weight).sum(dim=(1, 2))
                if loss.classification:
                    hits = loss.hits(h, target, 2).to(weight.dtype)
                    scores += (hits * weight).sum(dim=(1, 2))
                else:
                    prediction = loss.inverse_link(h, 2)
                    squares = (prediction - target).square_().mul_(weight)
                    residual = residual + squares.sum(dim=1)
            losses /= self.weight_sums
            if loss.classification:
                scores /= self.weight_sums
            else:
                scores = _r2(residual, self.total_squares)
        return losses.cpu().numpy(), scores.cpu().numpy()


def _r2(residual, total):
    """scikit-learn's ``r2_score`` per model, averaged over the outputs:
    an output whose target is constant scores 1 if predicted exactly, else 0."""
    per_output = 1 - residual / total
    exact = (residual == 0).to(residual.dtype)
    return torch.where(total == 0, exact, per_output).mean(dim=1)


def _padded(arrays, n, device, loss, dtype):
    """Each model's array stacked, padded with zeros to ``n`` rows: (M, n, k).

    A target of class indices (``loss.index_target``) stays int64, one
    column; other arrays take ``dtype``.
    """
    index = loss is not None and loss.index_target
    columns = [np.asarray(a).reshape(len(a), -1) for a in arrays]
    out = torch.zeros(
        (len(arrays), n, columns[0].shape[1]), dtype=torch.int64 if index else dtype
    )
    for m, values in enumerate(columns):
        out[m, : len(values)] = to_device(values, torch.device("cpu"))
    return out.to(device)
