"""The epoch loop of M stacked networks: their rows, batches, masks and steps.

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

Nothing here reads an estimator: models come as :class:`StackedModel`
tuples, and their checked input as the estimator plumbing of
:mod:`skdnn._batched` prepares it.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from typing import NamedTuple

import numpy as np
import scipy.sparse
import torch

from .._training import (
    to_device,
)
from .masks import _EpochMasks
from .network import _models, _step, _StepViews, _Workspace
from .optim import make_stacked_optimizer, rescale_momentum


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
    offsets = model_offsets(n_rows)
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
    # Every index is in range by construction: "clip" spares numpy's bounds
    # check and the buffered copy that checking into ``out`` takes.
    return np.take(rows, source, out=out, mode="clip")


def model_offsets(n_rows):
    """Each model's first row in the models' rows one after another."""
    return np.concatenate([[0], np.cumsum(n_rows)[:-1]]).astype(np.int64)


def row_offsets(n_rows):
    """Each row's model's offset in the models' rows one after another."""
    return np.repeat(model_offsets(n_rows), n_rows)


def checked_learning_rates(solver, current, rates):
    """``rates`` as float64, where a trainer of ``solver`` may take them:
    SGD's change with its schedules, Adam's are fixed (other ones are an
    error)."""
    rates = np.asarray(rates, dtype=np.float64)
    if solver != "sgd" and not np.array_equal(rates, current):
        raise ValueError(f"Adam's learning rates are fixed at {current}; got {rates}.")
    return rates


def change_learning_rates(trainer, rates):
    """A trainer's (or windowed trainer's) ``change_learning_rates``: new
    rates with scikit-learn's momentum semantics, each model's SGD buffer
    scaled by its old rate over its new one (see
    :func:`~skdnn._engine.optim.rescale_momentum`)."""
    buffer = trainer.momentum_buffer
    if buffer is not None:
        rescale_momentum(buffer, trainer.learning_rates, rates)
    trainer.set_learning_rates(rates)


def multiplies_sparse(device):
    """Whether a trainer on ``device`` takes sparse X as it is.

    On the CPU the first layer's products go through scipy on each step's
    CSR rows (see ``_Workspace``'s ``sparse_input``); elsewhere sparse X is
    made dense a window of rows at a time
    (:class:`~skdnn._engine.windows.WindowedTrainer`).
    """
    return device.type == "cpu"


def uses_numpy_products(device, threads):
    """Whether training's matrix products go through numpy (see _Workspace).

    On the CPU, for work small enough for one thread: numpy's BLAS and
    torch's OpenMP threads would compete for the cores on larger work (on
    W3, (256, 256) with batches of 256, each product took milliseconds).
    """
    return device.type == "cpu" and threads == 1


class StackedModel(NamedTuple):
    """One model as the trainer sees it: its network and training settings.

    The trainer reads nothing else of an estimator (see :func:`stacked_model`);
    the models of one trainer share the architecture, activation, loss, the
    solver ('adam', 'sgd', or 'lbfgs' for full-batch passes alone, with no
    optimizer of the trainer's) and its settings (Adam's betas and epsilon,
    SGD's momentum), and the device (the first model's are used).
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
    solver: str = "adam"
    momentum: float = 0.0
    nesterov: bool = False
    # The input scale's factor and initial parameter u (see
    # skdnn._network.MLPModule); 0 and None: no scale. Shared by a trainer's
    # models, as the architecture.
    input_scaling: float = 0.0
    input_scale: object = None


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
        For one estimator's own ``fit``: ``(flat, grad, optimizer_state,
        generator)``, its flat parameter and gradient, its optimizer's state
        (the ``(exp_avg, exp_avg_sq, step)`` of a ``torch.optim.Adam``, the
        momentum buffer of a ``torch.optim.SGD``) and its dropout
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
        # What a subset of these models is made from (see subset).
        self.models, self.prepared = models, prepared
        self.batch_sizes = np.asarray(batch_sizes)
        dtype, device = first.weights[0].dtype, first.weights[0].device
        self.dtype, self.device = dtype, device
        self.loss = first.loss
        self._load_data(prepared, dtype, device)
        batch = np.asarray(batch_sizes)
        self.layout = layout = batch_layout(self.n_rows, batch)
        S, M, B = layout[1].shape
        # Each step's real rows per model, the same every epoch it runs.
        self.rows_per_step = layout[1].sum(axis=2)
        self.rows = np.empty(layout[0].shape, dtype=np.int64)
        self.row_offsets = row_offsets(self.n_rows)

        rates = np.array([p.rates for p in prepared]).reshape(M, -1)
        if numpy_products is None:
            numpy_products = device.type == "cpu"
        flat, grad, optimizer_state, generator = bound or (None, None, None, None)
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
            sparse_input=self.X_sparse is not None,
            input_scaling=first.input_scaling,
        )
        if flat is None:
            # Each model's initial parameters, into its views of the buffer
            # (values alone: an estimator's parameters require grad).
            with torch.no_grad():
                for m, model in enumerate(models):
                    for W, value in zip(ws.weights, model.weights, strict=True):
                        W[m].copy_(value)
                    for b, value in zip(ws.biases, model.biases, strict=True):
                        b[m, 0].copy_(value)
                    if ws.input_scaling:
                        ws.scale_u[m].copy_(model.input_scale)
        self.solver = first.solver
        self.learning_rates = np.array([model.learning_rate for model in models])
        # L-BFGS steps by scipy: its trainer holds no optimizer state.
        self.optimizer = None
        if first.solver != "lbfgs":
            self.optimizer = make_stacked_optimizer(
                models, flat=ws.flat, grad=ws.grad, state=optimizer_state
            )
        self.alpha = torch.tensor(
            [model.alpha for model in models], dtype=dtype, device=device
        ).reshape(1, M, 1)
        self._allocate_epoch((S, M, B))
        self.twins = _Twins.plan(self)
        self.dropout = self._epoch_masks(prepared, batch, rates, generator)
        self.steps = self._step_views()

    def _epoch_masks(self, prepared, batch, rates, generator):
        """The models' dropout masks: each model's generator, seeded by its
        ``torch_seed``, or the bound fit's own generator."""
        device = self.device
        seeds = None
        if generator is None:
            seeds = [p.torch_seed for p in prepared]
            generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        else:
            generators = [generator]
        return _EpochMasks(
            layout=self.layout,
            batch=batch,
            widths=self.ws.widths,
            rates=rates,
            generators=generators,
            dtype=self.dtype,
            seeds=seeds,
        )

    def reload(self, prepared, *, generator=None):
        """Train next on new rows, as many per model as before.

        Everything else stays: the workspace, the optimizer and its state,
        the plan of the masks; ``generator`` replaces a bound model's
        dropout generator. A partial_fit on chunks of one size trains every
        chunk so, without the 0.7 ms of a new trainer.
        """
        n_rows = [p.X.shape[0] for p in prepared]
        sparse = scipy.sparse.issparse(prepared[0].X)
        if sparse != (self.X_sparse is not None):
            raise ValueError("reload takes data as sparse or as dense as before.")
        if n_rows != self.n_rows.tolist():
            raise ValueError(
                f"reload takes {self.n_rows.tolist()} rows per model; got {n_rows}."
            )
        # Without sample weights the rows' shares and each step's work depend
        # on the layout alone: they stay.
        kept = self.weighted, self.shares_for, self.work_for, self.part_workspaces
        self._load_data(prepared, self.dtype, self.device)
        self.twins = _Twins.plan(self)
        if not (kept[0] or self.weighted):
            _, self.shares_for, self.work_for, self.part_workspaces = kept
        if generator is not None:
            self.dropout.generators = [generator]

    def _load_data(self, prepared, dtype, device):
        """Every model's rows, targets and sample weights, one after another.

        Model m's row i is row ``offsets[m] + i`` of the targets and
        weights, and of X too unless models share their X: models given the
        same X array (a search's candidates on one fold, a fit's restarts)
        read one copy of it, model m's row i at ``x_shift[m]`` from its
        target's row.
        """
        self.n_rows = n_rows = np.array([p.X.shape[0] for p in prepared])
        self.X_sparse = self.X_all = self.x_shift = None
        if scipy.sparse.issparse(prepared[0].X):
            # On the CPU: the models' CSR rows, in the parameters' dtype.
            if not multiplies_sparse(device):
                raise ValueError("Sparse X trains on the CPU.")
            numpy_dtype = torch.empty(0, dtype=dtype).numpy().dtype
            X_all = prepared[0].X if len(prepared) == 1 else self._shared_rows(prepared)
            self.X_sparse = scipy.sparse.csr_matrix(X_all, dtype=numpy_dtype)
            self.n_features = self.X_sparse.shape[1]
        else:
            # One model's rows are read in place (fit's X is not written to).
            if len(prepared) == 1:
                X_all = prepared[0].X
            else:
                X_all = self._shared_rows(prepared)
            self.X_all = to_device(X_all, device, dtype)
            self.n_features = self.X_all.shape[1]
        self.target_all = to_device(
            np.concatenate([p.target for p in prepared]),
            device,
            None if self.loss.index_target else dtype,
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

    def _shared_rows(self, prepared):
        """The models' distinct X arrays one after another; sets ``x_shift``
        (None where no two models share an X)."""
        starts, blocks, shift, total = {}, [], np.empty(len(prepared), np.int64), 0
        offsets = model_offsets(self.n_rows)
        for m, p in enumerate(prepared):
            if id(p.X) not in starts:
                starts[id(p.X)] = total
                blocks.append(p.X)
                total += p.X.shape[0]
            shift[m] = starts[id(p.X)] - offsets[m]
        if len(blocks) < len(prepared):
            self.x_shift = shift
        if scipy.sparse.issparse(blocks[0]):
            return scipy.sparse.vstack(blocks, format="csr")
        return np.concatenate(blocks)

    def _allocate_epoch(self, grid):
        """One epoch's data, targets, shares, logits and weight norms.

        Filled in place every epoch; step s reads views of their row s,
        made once (:meth:`_step_views`).
        """
        S, M, B = grid
        dtype, device = self.dtype, self.device
        # Sparse X is read from each step's CSR rows: no dense copy.
        n_features = 0 if self.X_sparse is not None else self.n_features
        self.X_epoch = torch.empty((*grid, n_features), dtype=dtype, device=device)
        n_targets = 1 if self.loss.index_target else self.target_all.shape[1]
        self.t_epoch = torch.empty(
            (*grid, n_targets), dtype=self.target_all.dtype, device=device
        )
        self.share = torch.empty((*grid, 1), dtype=dtype, device=device)
        self.coef = torch.empty((S, M, 1), dtype=dtype, device=device)
        self.loss_share = torch.empty_like(self.share)
        self.loss_coef = torch.empty((S, M), dtype=dtype, device=device)
        # Zeros: a step that trains only some models leaves the others' be.
        self.logits = torch.zeros(
            (S, M, self.ws.n_outputs, B), dtype=dtype, device=device
        )
        self.squared_norms = torch.zeros((S, M), dtype=dtype, device=device)

    def _step_views(self):
        """Each step's data, targets and shares as the feature-major workspace
        reads them: (n_models, columns, batch) views, one _StepViews a step."""
        ws, S = self.ws, self.X_epoch.shape[0]
        n_features = self.X_epoch.shape[3]
        X_T = self.X_epoch.transpose(2, 3)
        M = self.X_epoch.shape[1]
        sparse = [[None] * M for _ in range(S)] if self.X_sparse is not None else None
        self.sparse_batches = sparse
        if ws.forward_by_rows[0]:
            X_rows = [X_T[:, :, k : k + 1].unbind(0) for k in range(n_features)]
            X_rows = list(zip(*X_rows, strict=True))
        else:
            X_rows = [None] * S
        return [
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
                X_sparse=None if sparse is None else sparse[s],
            )
            for s, (X, rows, target, step_share, step_coef, masks, step_logits,
            squared_norm) in enumerate(zip(
                X_T.unbind(0),
                X_rows,
                self.t_epoch.transpose(2, 3).unbind(0),
                self.share.transpose(2, 3).unbind(0),
                self.coef.unbind(0),
                self.dropout.per_step(),
                self.logits.unbind(0),
                self.squared_norms.unbind(0),
                strict=True,
            ))
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

    def full_batch_objective(self):
        """L-BFGS's objective for a trainer of one model: ``loss_and_grad``.

        ``loss_and_grad(theta)`` sets the model's parameters to ``theta``
        (flat, weights first, float64) and returns the loss on all its rows,
        penalty included, and its gradient (float64 ndarray): one
        :meth:`full_batch_pass`.
        """
        ws = self.ws
        self.prepare_full_batch()
        gradient = torch.zeros_like(ws.grad)

        def loss_and_grad(theta):
            with torch.no_grad():
                ws.flat.copy_(torch.from_numpy(theta).view(1, -1))
                gradient.zero_()
                value = self.full_batch_pass(gradient)
            return float(value), gradient.view(-1).cpu().numpy().astype(np.float64)

        return loss_and_grad

    def prepare_full_batch(self, *, total_weight=None, n_steps=None):
        """Lay out a one-model trainer's rows, in order, for full-batch passes.

        The rows are the layout's steps in their order, a block of the
        trainer's batch size each; each row's share is its weight over
        ``total_weight`` (None: this trainer's rows') and each step takes an
        equal part of the penalty, one of ``n_steps`` (None: this trainer's
        steps), so that the steps' gradients add up to the whole batch's:
        across trainers of the parts of the data when these are given.
        """
        layout = self.layout
        rows = epoch_rows(
            [np.arange(int(self.n_rows[0]))], layout, out=self.rows,
            offsets=self.row_offsets,
        )  # fmt: skip
        self._take_epoch(rows)
        weight = np.where(layout[1], self.weight_all[rows], 0.0)
        total = weight.sum() if total_weight is None else total_weight
        n_steps = weight.shape[0] if n_steps is None else n_steps
        self.share.copy_(torch.from_numpy(weight / total).unsqueeze(3))
        self.loss_share.copy_(self.share)
        coef = float(self.alpha.reshape(-1)[0]) / total / n_steps
        self.coef.fill_(coef)
        self.loss_coef.fill_(0.5 * coef)

    def full_batch_pass(self, gradient):
        """Every step's gradient added into ``gradient``; the loss, a tensor.

        After :meth:`prepare_full_batch`, at the parameters as they are.
        """
        ws = self.ws
        with np.errstate(over="ignore", invalid="ignore"):
            for views in self.steps:
                _step(ws, views, loss=self.loss)
                gradient.add_(ws.grad)
        value = _epoch_losses(
            logits=self.logits, target=self.t_epoch,
            loss_share=self.loss_share, squared_norms=self.squared_norms,
            loss_coef=self.loss_coef, loss=self.loss,
        )  # fmt: skip
        return value[0]

    def _take_epoch(self, rows):
        """Put the epoch's rows (a grid of :func:`epoch_rows`) in its data
        and targets; for sparse X, each step's CSR rows in its holder."""
        grid, rows = rows, rows.reshape(-1)
        x_rows = rows
        if self.x_shift is not None:
            # Shared X: its rows are the targets' shifted by each model's.
            x_rows = (grid + self.x_shift[None, :, None]).reshape(-1)
            # Padding slots hold another model's row, shifted maybe out of
            # range: any row in range does (padding has no weight). numpy's
            # take on the CPU clips them itself (see _take_rows).
            X = self.X_all if self.X_sparse is None else self.X_sparse
            if self.X_sparse is not None or X.device.type != "cpu":
                np.clip(x_rows, 0, X.shape[0] - 1, out=x_rows)
        if self.X_sparse is None:
            if self.x_shift is None:
                pairs = ((self.X_all, self.X_epoch), (self.target_all, self.t_epoch))
                _take_rows(rows, pairs)
            else:
                _take_rows(x_rows, ((self.X_all, self.X_epoch),))
                _take_rows(rows, ((self.target_all, self.t_epoch),))
            return
        _take_rows(rows, ((self.target_all, self.t_epoch),))
        # Model m's step s is rows (s M + m) B to (s M + m + 1) B of the
        # grid, padding included.
        S, M, B = self.X_epoch.shape[:3]
        X = self.X_sparse[x_rows]
        for s, holder in enumerate(self.sparse_batches):
            for m in range(M):
                start = (s * M + m) * B
                holder[m] = X[start : start + B]

    def set_learning_rates(self, rates):
        """Each model's learning rate for the next steps (SGD's schedules).

        Adam's rates are fixed: setting other ones is an error.
        """
        rates = checked_learning_rates(self.solver, self.learning_rates, rates)
        if self.solver == "sgd":
            self.optimizer.learning_rates.copy_(torch.from_numpy(rates).reshape(-1, 1))
        self.learning_rates = rates

    change_learning_rates = change_learning_rates

    def subset(self, keep):
        """A trainer of the models ``keep`` (indices) alone, as they are now.

        Their parameters, optimizer state, learning rates and dropout
        generators carry over: the subset trains them on exactly as this
        trainer would, without the others' work (see
        :func:`~skdnn._engine.epochs.run_epochs`). Not for a bound trainer.
        """
        part = Trainer(
            [self.models[k] for k in keep], [self.prepared[k] for k in keep],
            batch_sizes=self.batch_sizes[keep],
            numpy_products=self.ws.numpy_products,
        )  # fmt: skip
        index = torch.from_numpy(np.asarray(keep, dtype=np.int64)).to(self.device)
        with torch.no_grad():
            part.flat.copy_(self.flat.index_select(0, index))
            state = [t.index_select(0, index) for t in self.optimizer_state]
        # An optimizer that starts from their state (Adam's plans follow
        # each model's count of steps).
        part.optimizer = make_stacked_optimizer(
            part.models, flat=part.ws.flat, grad=part.ws.grad,
            state=(state or [None])[0] if self.solver == "sgd" else tuple(state),
        )  # fmt: skip
        part.set_learning_rates(self.learning_rates[keep])
        part.dropout.continue_from(self.dropout, keep)
        return part

    @property
    def flat(self):
        """Every model's parameters, one row each (weights, then biases)."""
        return self.ws.flat

    @property
    def optimizer_state(self):
        """The optimizers' state tensors, one row (or entry) per model."""
        optimizer = self.optimizer
        if self.solver == "sgd":
            buffer = optimizer.momentum_buffer
            return () if buffer is None else (buffer,)
        return (optimizer.exp_avg, optimizer.exp_avg_sq, optimizer.steps)

    @property
    def momentum_buffer(self):
        """SGD's momentum buffers, one row per model; None for Adam or none."""
        return self.optimizer.momentum_buffer if self.solver == "sgd" else None

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
        ws, layout, device, dtype = self.ws, self.layout, self.device, self.dtype
        # Each model's batches of its own size; slots past a model's batch,
        # and steps past its last batch, are padding: weight 0, no update.
        if self.twins is None or not self.twins.take(orders):
            rows = epoch_rows(orders, layout, out=self.rows, offsets=self.row_offsets)
            self._take_epoch(rows)
        real_rows = self.rows_per_step * running
        active = real_rows > 0
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
            # contributes nothing, neither data nor penalty (not 0 / 0 = NaN).
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
        apply = self.optimizer.apply
        # Overflow shows as non-finite losses or weights, which the caller
        # handles, as with torch's operations, not as numpy's warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            for work, step_plan in zip(
                self.work, self.optimizer.epoch(active), strict=True
            ):
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


class _Twins:
    """An epoch's data and targets for models that are twins: the same rows
    of one X (a search's candidates on one fold, or its refits) with the
    same targets and batch size, which visit them in the same order.

    Their batches are the same: the epoch's rows are gathered for one of
    each twin group, then copied into every twin's place, whole batches at
    a time. On W4's 36 models (6 groups) the epoch's rows, data and targets
    took 83 us against 206, medians between epochs of training (paired A/B
    of the whole search: 0.976). Where the twins' orders differ in an
    epoch, :meth:`take` declines and the trainer gathers every model's rows.
    """

    @classmethod
    def plan(cls, trainer):
        """The trainer's twins, or None where no two models are twins (or
        the data is sparse, weighted or off the CPU: left to the trainer)."""
        if (
            trainer.x_shift is None
            or trainer.X_sparse is not None
            or trainer.weighted
            or trainer.device.type != "cpu"
        ):
            return None
        n_rows, batch = trainer.n_rows, trainer.batch_sizes
        offsets = model_offsets(n_rows)
        target = trainer.target_all.numpy()
        first, leaders = {}, []
        index = np.empty(len(n_rows), dtype=np.int64)
        for m in range(len(n_rows)):
            key = (offsets[m] + trainer.x_shift[m], n_rows[m], batch[m])
            twin = first.get(key)
            if twin is not None and np.array_equal(
                target[offsets[twin] : offsets[twin] + n_rows[twin]],
                target[offsets[m] : offsets[m] + n_rows[m]],
            ):
                index[m] = index[twin]
            else:
                first.setdefault(key, m)
                index[m] = len(leaders)
                leaders.append(m)
        if len(leaders) == len(n_rows):
            return None
        return cls(trainer, np.array(leaders), index)

    def __init__(self, trainer, leaders, index):
        self.leaders, self.index = leaders, index
        # The trainer's arrays, as numpy views (not the trainer: a cycle
        # would keep a chunk's epoch grids alive until a garbage
        # collection). Rows of X and of the targets (class indices: one a
        # row), as the epoch's grids hold them.
        self.X_all = trainer.X_all.numpy().reshape(len(trainer.X_all), -1)
        self.target_all = trainer.target_all.numpy().reshape(
            len(trainer.target_all), -1
        )
        self.X_epoch, self.t_epoch = trainer.X_epoch.numpy(), trainer.t_epoch.numpy()
        n_rows = trainer.n_rows[leaders]
        self.layout = batch_layout(n_rows, trainer.batch_sizes[leaders])
        self.rows = np.empty(self.layout[0].shape, dtype=np.int64)
        self.row_offsets = np.repeat(model_offsets(trainer.n_rows)[leaders], n_rows)
        self.x_shift = trainer.x_shift[leaders][None, :, None]
        S, D, B = self.rows.shape
        self.X = np.empty((S, D, B, self.X_epoch.shape[3]), dtype=self.X_epoch.dtype)
        self.t = np.empty((S, D, B, self.t_epoch.shape[3]), dtype=self.t_epoch.dtype)
        self.twin_of = leaders[index]

    def take(self, orders):
        """Put the epoch's data and targets in place, if every model visits
        its rows in its twins' order; whether it did."""
        for m, leader in enumerate(self.twin_of):
            if orders[m] is not orders[leader] and not np.array_equal(
                orders[m], orders[leader]
            ):
                return False
        rows = epoch_rows(
            [orders[m] for m in self.leaders], self.layout, out=self.rows,
            offsets=self.row_offsets,
        )  # fmt: skip
        x_rows = (rows + self.x_shift).reshape(-1)
        X, t = self.X_all, self.target_all
        # Padding slots' rows, shifted, may fall out of range: "clip" brings
        # them in (padding has no weight), as in Trainer._take_epoch.
        np.take(X, x_rows, axis=0, out=self.X.reshape(-1, X.shape[1]), mode="clip")
        np.take(t, rows.reshape(-1), axis=0, out=self.t.reshape(-1, t.shape[1]),
                mode="clip")  # fmt: skip
        np.take(self.X, self.index, axis=1, out=self.X_epoch, mode="clip")
        np.take(self.t, self.index, axis=1, out=self.t_epoch, mode="clip")
        return True


def _take_rows(rows, pairs):
    """Copy ``source[rows]`` into each ``(source, out)`` pair's ``out``."""
    if pairs[0][0].device.type == "cpu":
        # numpy's take: a third faster than index_select on narrow rows;
        # "clip" half as long again as the default "raise", whose bounds
        # check buffers the copy. Rows are in range (from epoch_rows) but
        # for shared X's padding slots, which "clip" brings in range.
        for source, out in pairs:
            np.take(
                source.numpy(),
                rows,
                axis=0,
                out=out.view(-1, *source.shape[1:]).numpy(),
                mode="clip",
            )
        return
    index = torch.from_numpy(rows).to(pairs[0][0].device)
    for source, out in pairs:
        torch.index_select(source, 0, index, out=out.view(-1, *source.shape[1:]))


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
