"""One model's epochs a window of rows at a time, through the same trainer.

A :class:`~skdnn._engine.trainer.Trainer` holds a whole epoch's grid: the
data in the epoch's order, and every step's dropout masks. Where that grid
would not fit, sparse input off the CPU (densified, a whole epoch of a wide
sparse X would take more memory than X; on the CPU a trainer multiplies its
CSR rows) or masks of too many values, one fit's epoch
is cut into windows of whole batches, each trained by a trainer of those
rows: the same steps, bound to the same parameters, optimizer state and
dropout generator, one window after another. A window of dense data is as
long as a block of :func:`~skdnn._engine.masks.mask_blocks`, so that its masks
are the bits the whole epoch's trainer draws for those rows.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from types import SimpleNamespace

import numpy as np
import scipy.sparse
import torch

from . import trainer as trainer_module
from .trainer import Trainer, change_learning_rates, checked_learning_rates


class WindowedTrainer:
    """The epochs of one bound model, ``window_rows`` rows at a time.

    Parameters
    ----------
    model : StackedModel
        The model's settings (its weights are the bound parameter's).
    checked : SimpleNamespace
        Its checked input: ``X`` (ndarray, or a scipy sparse matrix, read
        by rows), ``target``, ``sample_weight`` and ``rates``.
    batch_size : int
        The fit's batch size.
    window_rows : int
        Rows per window, a multiple of ``batch_size``: each window is whole
        batches of the epoch's order, the last one what remains.
    numpy_products : bool
        As for :class:`~skdnn._engine.trainer.Trainer`.
    bound : tuple
        ``(flat, grad, optimizer_state, generator)``, as for
        :class:`~skdnn._engine.trainer.Trainer`: every window's trainer
        trains these.
    """

    def __init__(self, model, checked, *, batch_size, window_rows, numpy_products,
                 bound):  # fmt: skip
        if window_rows % batch_size:
            raise ValueError(
                f"window_rows={window_rows} is not a multiple of "
                f"batch_size={batch_size}."
            )
        self.model, self.batch_size = model, batch_size
        self.window_rows, self.numpy_products = window_rows, numpy_products
        self.bound = bound
        self.learning_rates = np.array([model.learning_rate], dtype=np.float64)
        # A trainer per window length: the whole windows' and the last's.
        self.trainers = {}
        self.reload([checked])

    def reload(self, prepared, *, generator=None):
        """Train next on new rows (any number: the windows are cut anew)."""
        (self.checked,) = prepared
        if scipy.sparse.issparse(self.checked.X):
            # Rows of CSR slice without copying the rest.
            self.checked.X = scipy.sparse.csr_matrix(self.checked.X)
        if generator is not None:
            self.bound = (*self.bound[:3], generator)
            for trainer in self.trainers.values():
                trainer.dropout.generators = [generator]

    def set_learning_rates(self, rates):
        """SGD's learning rate for the next steps, as every window's trainer
        takes it (see :meth:`Trainer.set_learning_rates`)."""
        self.learning_rates = checked_learning_rates(
            self.model.solver, self.learning_rates, rates
        )

    change_learning_rates = change_learning_rates

    @property
    def n_rows(self):
        return np.array([self.checked.X.shape[0]])

    @property
    def flat(self):
        """The bound parameters, as one model's row."""
        return self.bound[0].view(1, -1)

    @property
    def optimizer_state(self):
        """The bound optimizer state, as one model's rows (see Trainer's)."""
        state = self.bound[2]
        if self.model.solver == "sgd":
            return () if state is None else (state.view(1, -1),)
        exp_avg, exp_avg_sq, step = state
        return (exp_avg.view(1, -1), exp_avg_sq.view(1, -1), step.view(1))

    @property
    def momentum_buffer(self):
        if self.model.solver != "sgd" or self.bound[2] is None:
            return None
        return self.bound[2].view(1, -1)

    def run_epoch(self, orders, running):
        """One epoch, window after window, as a trainer of one model runs it:
        its loss and whether its parameters are finite, arrays of one (the
        last window's: a non-finite value stays so)."""
        (order,) = orders
        total = 0.0
        for rows, X_rows in self._windows(order):
            trainer = self._trainer(rows, X_rows)
            losses, finite = trainer.run_epoch([np.arange(len(rows))], running)
            total += losses * len(rows)
        return total / self.checked.X.shape[0], finite

    def _window(self, rows, X_rows):
        """The rows ``rows`` of the input, dense, as a trainer takes them;
        ``X_rows``, for sparse X, those rows of it."""
        checked = self.checked

        def take(values):
            return None if values is None else np.take(values, rows, axis=0)

        if X_rows is None:
            X = take(checked.X)
        elif trainer_module.multiplies_sparse(self.bound[0].device):
            # A trainer on the CPU multiplies sparse rows as they are.
            X = X_rows
        else:
            X = X_rows.toarray()
        return SimpleNamespace(
            X=X, target=take(checked.target),
            sample_weight=take(checked.sample_weight), rates=checked.rates,
            torch_seed=0,  # bound: the fit's own generator draws the masks
        )  # fmt: skip

    def _trainer(self, rows, X_rows=None):
        """The trainer of a window of ``len(rows)`` rows, loaded with them."""
        window = self._window(rows, X_rows)
        trainer = self.trainers.get(len(rows))
        if trainer is None:
            trainer = Trainer(
                [self.model], [window],
                batch_sizes=[min(self.batch_size, len(rows))],
                numpy_products=self.numpy_products, bound=self.bound,
            )  # fmt: skip
            self.trainers[len(rows)] = trainer
        else:
            trainer.reload([window])
        if self.model.solver == "sgd":
            trainer.set_learning_rates(self.learning_rates)
        return trainer

    def _windows(self, order):
        """Each window's rows, and for sparse X those rows of it: sparse X is
        put in the epoch's order once, its windows then slices of that (one
        gather of rows per window took a third of the time of densifying)."""
        X = self.checked.X
        n = X.shape[0]
        sparse = scipy.sparse.issparse(X)
        if order is None:
            order = np.arange(n)
        elif sparse:
            X = X[order]
        for start in range(0, n, self.window_rows):
            stop = start + self.window_rows
            yield order[start:stop], X[start:stop] if sparse else None

    def full_batch_objective(self):
        """L-BFGS's objective, as :meth:`Trainer.full_batch_objective`'s, over
        every window: each row's share its weight over the whole data's, each
        step an equal part of the penalty."""
        sample_weight = self.checked.sample_weight
        n = self.checked.X.shape[0]
        total = n if sample_weight is None else float(np.sum(sample_weight))
        sizes = [len(rows) for rows, _ in self._windows(None)]
        n_steps = sum(-(-size // min(self.batch_size, size)) for size in sizes)
        flat, grad = self.bound[:2]
        gradient = torch.zeros_like(grad).view(1, -1)

        def loss_and_grad(theta):
            with torch.no_grad():
                flat.copy_(torch.from_numpy(theta).view_as(flat))
                gradient.zero_()
                value = 0.0
                for rows, X_rows in self._windows(None):
                    trainer = self._trainer(rows, X_rows)
                    trainer.prepare_full_batch(total_weight=total, n_steps=n_steps)
                    value += float(trainer.full_batch_pass(gradient))
            return value, gradient.view(-1).cpu().numpy().astype(np.float64)

        return loss_and_grad
