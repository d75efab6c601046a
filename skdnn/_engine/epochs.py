"""The epoch loop of M stacked networks, from their first epoch to their stop.

:func:`run_epochs` trains a trainer's models epoch after epoch, each by its
own rules, as scikit-learn's ``MLPClassifier`` trains one: its own shuffle,
its training loss or validation score with ``tol`` and ``n_iter_no_change``,
SGD's learning-rate schedule ('constant', 'invscaling', 'adaptive'), its
best validation weights, ``max_iter``, and the rollback of an epoch that
diverges. A model that stops is left exactly as it is while the others
train on. A Ctrl-C ends the loop with every model's completed epochs kept.
A single fit is a loop of one model; a batched search's fits are one loop.

Nothing here reads an estimator: the rules come as :class:`Rules`, each
model's record as :class:`Progress`, which the callers turn into fitted
attributes and warnings.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

from typing import NamedTuple

import numpy as np
import torch

# Below this learning rate, 'adaptive' SGD stops instead of dividing it again.
MIN_ADAPTIVE_LEARNING_RATE = 1e-6

# A batch trains its running models alone (see _Compacting) once at most
# this fraction of the models it trains still run. On an early-stopping
# search of 27 fits (benchmarks/compaction.py) that took 0.70 of the time of
# the whole batch to the end.
_COMPACT_FRACTION = 0.5

# Why a model stopped (Progress.stop), "" while it has not.
PLATEAU, MAX_ITER = "plateau", "max_iter"
DIVERGED, INTERRUPTED = "diverged", "interrupted"


class Rules(NamedTuple):
    """Each model's stopping rule and learning-rate schedule, arrays of (M,).

    ``max_iter`` counts the epochs of this run (one for a partial_fit);
    ``schedule`` is SGD's ('constant', 'invscaling' or 'adaptive'; Adam's
    is 'constant'), with ``learning_rate_init`` and ``power_t``.
    """

    max_iter: np.ndarray
    tol: np.ndarray
    n_iter_no_change: np.ndarray
    schedule: tuple
    learning_rate_init: np.ndarray
    power_t: np.ndarray


class Progress:
    """Each model's record, as a fit leaves it and the next partial_fit
    continues it.

    Parameters
    ----------
    n_models : int
    t : array-like of int, default=None
        Samples seen before this run (scikit-learn's ``t_``); 0 when None.
    best_loss, best_score : array-like of float, default=None
        The lowest training loss and the best validation score so far;
        inf and -inf when None.
    no_improvement : array-like of int, default=None
        Epochs without improvement so far; 0 when None.
    learning_rates : array-like of float
        Each model's current learning rate (a schedule's, for SGD).

    Attributes
    ----------
    losses, scores, validation_losses : list of ndarray of shape (M,)
        This run's epochs, one array each: a model's own are the first
        ``n_iter[m]`` (see :meth:`curve`).
    n_iter : ndarray of int
        Each model's epochs in this run.
    stop : ndarray of str
        Why each model stopped (``PLATEAU``, ``MAX_ITER``, ``DIVERGED``,
        ``INTERRUPTED``), "" if it was still running when the loop ended.
    diverged_loss : ndarray of float
        The loss of a diverged model's last epoch.
    rolled_back_to : ndarray of int
        For a diverged model, the epoch of this run whose start it went back
        to (its lowest loss), or 0 for the start of the diverging epoch.
    """

    def __init__(self, n_models, *, learning_rates, t=None, best_loss=None,
                 best_score=None, no_improvement=None):  # fmt: skip
        M = n_models

        def filled(value, default, dtype):
            if value is None:
                return np.full(M, default, dtype=dtype)
            return np.array(value, dtype=dtype).reshape(M)

        self.t = filled(t, 0, np.int64)
        self.best_loss = filled(best_loss, np.inf, np.float64)
        self.best_score = filled(best_score, -np.inf, np.float64)
        self.no_improvement = filled(no_improvement, 0, np.int64)
        self.learning_rates = filled(learning_rates, 0.0, np.float64)
        self.losses, self.scores, self.validation_losses = [], [], []
        # Stacked epochs for curve, by list (see there).
        self._stacked = {}
        self.n_iter = np.zeros(M, dtype=np.int64)
        self.stop = np.full(M, "", dtype=object)
        self.diverged_loss = np.full(M, np.nan)
        self.rolled_back_to = np.zeros(M, dtype=np.int64)

    def curve(self, m, values=None):
        """Model m's values of this run's epochs (its losses by default)."""
        values = self.losses if values is None else values
        if not values:
            return []
        # The epochs' arrays stacked once for every model's curve, not read
        # an element at a time: a batched search's 36 models of 100 epochs
        # took a millisecond so.
        # The lists only grow: a stack as long as its list is up to date.
        stacked = self._stacked.get(id(values))
        if stacked is None or len(stacked) != len(values):
            stacked = self._stacked[id(values)] = np.array(values)
        return stacked[: self.n_iter[m], m].tolist()

    def last_loss(self, m):
        """Model m's loss of its last epoch in this run; inf if none ran."""
        n = self.n_iter[m]
        return float(self.losses[n - 1][m]) if n else np.inf


class Shuffles:
    """Each model's epoch order, drawn as its own fit draws it.

    Models whose RandomStates start in the same state and that shuffle as
    many rows draw the same permutation every epoch: a grid search with an
    int ``random_state`` gives every candidate of a fold (and, with folds of
    equal size, of every fold) the same stream. Each group draws once per
    epoch from its first model's RandomState; the others' are left where
    they started, which nothing reads: a RandomState made from an int seed
    lives for its fit only. A model marked ``own`` (its RandomState is the
    caller's, which its fit advances) draws from it itself, as does each
    model sharing one RandomState object.

    Parameters
    ----------
    rngs : list of numpy.random.RandomState
    shuffle : list of bool
        Per model, whether it shuffles; one that does not visits its rows in
        order.
    n_rows : array-like of int
    own : list of bool
    """

    def __init__(self, rngs, shuffle, n_rows, own):
        self.rngs, self.n_rows = rngs, np.asarray(n_rows)
        self.orders = [np.arange(n) for n in self.n_rows]
        groups, seen = {}, set()
        for m, rng in enumerate(rngs):
            if not shuffle[m]:
                continue
            if id(rng) in seen or own[m]:
                key = ("own", m)
            else:
                seen.add(id(rng))
                _, state, pos, has_gauss, cached = rng.get_state()
                key = (state.tobytes(), pos, has_gauss, cached, int(self.n_rows[m]))
            groups.setdefault(key, []).append(m)
        self.groups = [np.array(members) for members in groups.values()]

    def draw(self, running):
        """Every model's order for the next epoch (the running ones' new)."""
        for members in self.groups:
            if running[members].any():
                first = members[0]
                order = self.rngs[first].permutation(self.n_rows[first])
                for m in members:
                    self.orders[m] = order
        return self.orders


def run_epochs(trainer, rules, progress, *, shuffles, validation=None,
               keep_optimizer_state=False, log=None, on_epoch=None):  # fmt: skip
    """Train every model of ``trainer`` until it stops by its rules.

    Parameters
    ----------
    trainer : Trainer or WindowedTrainer
        Its ``run_epoch(orders, running)`` trains an epoch; ``flat``,
        ``optimizer_state`` and ``momentum_buffer`` are the models' stacked
        tensors; ``set_learning_rates`` gives SGD its rates, and
        ``change_learning_rates`` changes them with the momentum rescaled.
        A trainer of several models also makes ``subset`` trainers, which
        train its running models alone once most have stopped
        (:class:`_Compacting`).
    rules : Rules
    progress : Progress
        Updated in place.
    shuffles : Shuffles
    validation : StackedValidation, default=None
        Early stopping's: each model stops on its validation score and ends
        with the parameters of its best one.
    keep_optimizer_state : bool, default=False
        Whether a diverged model's optimizer state goes back with its
        parameters (partial_fit continues it); otherwise it is zeroed, as a
        new optimizer starts (a fit's).
    log : callable, default=None
        Called with each message a verbose fit prints, and the model's index.
    on_epoch : callable, default=None
        Called after each epoch with the number of models still training
        (a verbose search's progress).

    Returns
    -------
    Progress
    """
    M = trainer.flat.shape[0]
    if M > 1:
        trainer = _Compacting(trainer)
    loop = _Loop(trainer, rules, progress, validation, keep_optimizer_state, log)
    running = np.ones(M, dtype=bool)
    try:
        while running.any():
            loop.keep()
            losses, finite = trainer.run_epoch(shuffles.draw(running), running)
            running &= ~loop.diverged(running & ~(np.isfinite(losses) & finite), losses)
            loop.record(losses, running)
            running &= ~loop.stopping(running)
            if on_epoch is not None:
                on_epoch(int(running.sum()))
    except KeyboardInterrupt:
        loop.interrupted(running)
    loop.finish()
    return progress


class _Loop:
    """:func:`run_epochs`'s state from epoch to epoch: the parameters kept
    for a rollback, the best validation weights, each model's lowest loss."""

    def __init__(self, trainer, rules, progress, validation, keep_state, log):
        self.trainer, self.rules, self.progress = trainer, rules, progress
        self.validation, self.log = validation, log
        flat = trainer.flat
        # The start of the epoch being trained, and of each model's epoch of
        # lowest loss: what a diverging epoch goes back to.
        self.kept, self.lowest = flat.clone(), flat.clone()
        self.lowest_loss = np.full(flat.shape[0], np.inf)
        self.lowest_epoch = np.zeros(flat.shape[0], dtype=np.int64)
        self.state = trainer.optimizer_state
        # partial_fit's optimizer state goes back with the parameters.
        self.kept_state = self.lowest_state = None
        if keep_state:
            self.kept_state = [s.clone() for s in self.state]
            self.lowest_state = [s.clone() for s in self.state]
        self.best = None if validation is None else flat.clone()
        invscaling = np.array([kind == "invscaling" for kind in rules.schedule])
        self.invscaling = invscaling if invscaling.any() else None
        self.n_rows = trainer.n_rows
        trainer.set_learning_rates(progress.learning_rates)

    def keep(self):
        self.kept.copy_(self.trainer.flat)
        if self.kept_state is not None:
            for copy, tensor in zip(self.kept_state, self.state, strict=True):
                copy.copy_(tensor)

    def diverged(self, now, losses):
        """Roll back the models that diverged in this epoch; return them."""
        progress, flat = self.progress, self.trainer.flat
        for m in np.flatnonzero(now) if now.any() else ():
            back = self.lowest_epoch[m] > 0 and self.validation is None
            saved = self.lowest_state if back else self.kept_state
            with torch.no_grad():
                flat[m].copy_(self.lowest[m] if back else self.kept[m])
                for i, tensor in enumerate(self.state):
                    if saved is None:
                        tensor[m].zero_()
                    else:
                        tensor[m].copy_(saved[i][m])
            progress.stop[m] = DIVERGED
            progress.diverged_loss[m] = losses[m]
            progress.rolled_back_to[m] = self.lowest_epoch[m] if back else 0
        return now

    def record(self, losses, running):
        """Record a completed epoch of the running models."""
        progress, flat = self.progress, self.trainer.flat
        lower = running & (losses < self.lowest_loss)
        if lower.any():
            _copy_rows(self.lowest, self.kept, lower)
            for copy, kept in zip(self.lowest_state or (), self.kept_state or (),
                                  strict=True):  # fmt: skip
                _copy_rows(copy, kept, lower)
            np.copyto(self.lowest_loss, losses, where=lower)
            np.copyto(self.lowest_epoch, progress.n_iter + 1, where=lower)
        progress.n_iter += running
        progress.t += self.n_rows * running
        progress.losses.append(losses)
        # In place, where the models run: a few operations on arrays of M,
        # which for one model cost more than the arithmetic.
        if self.validation is None:
            worse = losses > progress.best_loss - self.rules.tol
            np.minimum(progress.best_loss, losses, out=progress.best_loss,
                       where=running)  # fmt: skip
            scores = None
        else:
            validation_losses, scores = self.validation.scores(flat, running)
            progress.scores.append(scores)
            progress.validation_losses.append(validation_losses)
            worse = scores < progress.best_score + self.rules.tol
            better = running & (scores > progress.best_score)
            if better.any():
                _copy_rows(self.best, flat, better)
                progress.best_score[better] = scores[better]
        count = progress.no_improvement
        np.multiply(count, worse, out=count, where=running)
        count += running & worse
        if self.log is not None:
            for m in np.flatnonzero(running):
                message = f"Iteration {progress.n_iter[m]}, loss = {losses[m]:.8f}"
                if scores is not None:
                    message += f", validation score = {scores[m]:.6f}"
                self.log(message, m)

    def stopping(self, running):
        """The running models that stop after this epoch; schedules applied."""
        rules, progress = self.rules, self.progress
        rates = progress.learning_rates
        if self.invscaling is not None:
            scaling = running & self.invscaling
            rates = np.where(
                scaling, rules.learning_rate_init / (progress.t + 1) ** rules.power_t,
                rates,
            )  # fmt: skip
        plateau = running & (progress.no_improvement > rules.n_iter_no_change)
        stop = np.zeros_like(running)
        if plateau.any():
            rates = rates.copy()
            for m in np.flatnonzero(plateau):
                stop[m] = self._plateau(m, rates)
        if (
            rates is not progress.learning_rates
            and (rates != progress.learning_rates).any()
        ):
            self._set_learning_rates(rates)
        out_of_epochs = running & (progress.n_iter >= rules.max_iter)
        if out_of_epochs.any():
            out_of_epochs &= ~stop
            progress.stop[out_of_epochs] = MAX_ITER
            stop |= out_of_epochs
        return stop

    def _plateau(self, m, rates):
        """Model m's plateau: 'adaptive' divides its rate (in ``rates``) by
        5 while above the floor; otherwise it stops. Whether it stops."""
        rules, progress = self.rules, self.progress
        what = "Validation score" if self.validation is not None else "Training loss"
        message = (
            f"{what} did not improve more than tol={rules.tol[m]} for "
            f"{rules.n_iter_no_change[m]:g} consecutive epochs."
        )
        stops = not (
            rules.schedule[m] == "adaptive" and rates[m] > MIN_ADAPTIVE_LEARNING_RATE
        )
        if stops:
            progress.stop[m] = PLATEAU
            message += " Stopping."
        else:
            rates[m] /= 5.0
            progress.no_improvement[m] = 0
            message += f" Setting learning rate to {rates[m]:f}"
        if self.log is not None:
            self.log(message, m)
        return stops

    def _set_learning_rates(self, rates):
        # scikit-learn's momentum semantics (see rescale_momentum).
        self.trainer.change_learning_rates(rates)
        self.progress.learning_rates = rates

    def interrupted(self, running):
        """After a Ctrl-C: a model whose parameters turned non-finite in the
        interrupted epoch goes back to its start."""
        flat = self.trainer.flat
        finite = torch.isfinite(flat).all(dim=1).cpu().numpy()
        with torch.no_grad():
            for m in np.flatnonzero(~finite):
                flat[m].copy_(self.kept[m])
        self.progress.stop[running] = INTERRUPTED

    def finish(self):
        """Early stopping: every model ends with its best validation weights."""
        if self.best is not None:
            with torch.no_grad():
                self.trainer.flat.copy_(self.best)


class _Compacting:
    """A trainer of M models that trains its running models alone, once at
    most half of those it trains still run.

    Then it makes a trainer of the running models (``Trainer.subset``),
    which trains them on exactly as the whole batch would, without the
    stopped models' products: a batched search whose models stop at
    different epochs costs what its running models cost. The whole
    trainer's tensors stay the loop's view of every model: after each
    epoch, the rows of the models that trained are copied back into them.
    """

    def __init__(self, trainer):
        self.whole = self.active = trainer
        self.ids = np.arange(trainer.flat.shape[0])
        self.flat, self.n_rows = trainer.flat, trainer.n_rows
        self.optimizer_state = trainer.optimizer_state
        self.momentum_buffer = trainer.momentum_buffer

    def set_learning_rates(self, rates):
        self.whole.set_learning_rates(rates)
        self.active.set_learning_rates(np.asarray(rates)[self.ids])

    def change_learning_rates(self, rates):
        rates = np.asarray(rates)
        if self.active is self.whole:
            self.whole.change_learning_rates(rates)
            return
        changed = rates[self.ids] != self.active.learning_rates
        self.active.change_learning_rates(rates[self.ids])
        self.whole.set_learning_rates(rates)
        # Their momentum buffers, as the active trainer rescaled them.
        self._copy_back(changed)

    def run_epoch(self, orders, running):
        if 0 < running.sum() <= _COMPACT_FRACTION * len(self.ids):
            keep = np.flatnonzero(running[self.ids])
            self.active, self.ids = self.active.subset(keep), self.ids[keep]
        trained = running[self.ids]
        try:
            losses, finite = self.active.run_epoch(
                [orders[m] for m in self.ids], trained
            )
        finally:
            self._copy_back(trained)
        if self.active is self.whole:
            return losses, finite
        M = len(running)
        all_losses, all_finite = np.full(M, np.nan), np.ones(M, dtype=bool)
        all_losses[self.ids], all_finite[self.ids] = losses, finite
        return all_losses, all_finite

    def _copy_back(self, trained):
        """The trained models' rows of the active trainer into the whole's."""
        if self.active is self.whole or not trained.any():
            return
        rows = torch.from_numpy(np.flatnonzero(trained)).to(self.flat.device)
        index = torch.from_numpy(self.ids[trained]).to(self.flat.device)
        pairs = [(self.flat, self.active.flat)] + list(
            zip(self.optimizer_state, self.active.optimizer_state, strict=True)
        )
        with torch.no_grad():
            for whole, active in pairs:
                whole.index_copy_(0, index, active.index_select(0, rows))


def _copy_rows(out, source, rows):
    """``out[m] = source[m]`` for the models where ``rows`` is true (tensors
    that need no gradient: the trainers' are detached)."""
    if rows.all():
        out.copy_(source)
    else:
        where = torch.from_numpy(rows).to(out.device)
        where = where.reshape(-1, *[1] * (out.dim() - 1))
        torch.where(where, source, out, out=out)
