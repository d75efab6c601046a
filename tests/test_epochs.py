"""The engine's epoch loop and early stopping's validation, model by model.

``skdnn._engine.epochs.run_epochs`` runs every fit and every batched search;
the estimators' tests check it through them. Here its rules are checked on
their own, for stacked models that each follow their own: a scripted
trainer whose losses are chosen, so that each rule (plateau, max_iter,
'adaptive', divergence, Ctrl-C) is met by one model while the others go on.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import warnings

import numpy as np
import pytest
import scipy.sparse
import torch
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, log_loss, mean_squared_error, r2_score

from skdnn._engine.epochs import (
    DIVERGED,
    INTERRUPTED,
    MAX_ITER,
    PLATEAU,
    Progress,
    Rules,
    Shuffles,
    run_epochs,
)
from skdnn._engine.losses import loss_by_name
from skdnn._engine.optim import make_sgd, rescale_momentum
from skdnn._engine.validation import StackedValidation


class _Scripted:
    """A trainer of M one-parameter models whose epoch losses are scripted.

    Each epoch adds 1 to every running model's parameter and returns row
    ``epoch`` of ``losses``; ``nan_at`` makes a model's parameter NaN in an
    epoch, ``interrupt_at`` raises KeyboardInterrupt in one (after its step).
    """

    def __init__(self, losses, *, nan_at=None, interrupt_at=None):
        self.losses = np.asarray(losses, dtype=float)
        M = self.losses.shape[1]
        self.flat = torch.zeros((M, 1), dtype=torch.float64)
        self.state = torch.zeros((M, 1), dtype=torch.float64)
        self.n_rows = np.full(M, 10)
        self.nan_at, self.interrupt_at = nan_at or {}, interrupt_at
        self.epoch, self.running, self.rates = 0, [], []
        self.learning_rates = np.full(M, np.nan)
        # A subset's models among the first trainer's, which records for all.
        self.root, self.ids = self, np.arange(M)

    def subset(self, keep):
        keep = list(keep)
        part = _Scripted(
            self.losses[:, keep], interrupt_at=self.interrupt_at,
            nan_at={keep.index(m): e for m, e in self.nan_at.items() if m in keep},
        )  # fmt: skip
        part.flat, part.state = self.flat[keep].clone(), self.state[keep].clone()
        part.epoch, part.learning_rates = self.epoch, self.learning_rates[keep]
        part.root, part.ids = self.root, self.ids[keep]
        return part

    def change_learning_rates(self, rates):
        self.set_learning_rates(rates)

    optimizer_state = property(lambda self: (self.state,))
    momentum_buffer = property(lambda self: self.state)

    def set_learning_rates(self, rates):
        self.learning_rates = np.array(rates)
        if self.root is self:
            self.rates.append(np.array(rates))

    def run_epoch(self, orders, running):
        full = np.zeros(len(self.root.n_rows), dtype=bool)
        full[self.ids] = running
        self.root.running.append(full)
        self.flat[torch.from_numpy(running)] += 1
        self.state[torch.from_numpy(running)] += 1
        for m, epoch in self.nan_at.items():
            if epoch == self.epoch:
                self.flat[m] = np.nan
        if self.epoch == self.interrupt_at:
            raise KeyboardInterrupt
        losses = self.losses[self.epoch]
        self.epoch += 1
        finite = torch.isfinite(self.flat).all(dim=1).numpy()
        return losses.copy(), finite


def _rules(M, *, max_iter=100, tol=0.0, patience=2, schedule=None):
    return Rules(
        max_iter=np.full(M, max_iter), tol=np.full(M, tol),
        n_iter_no_change=np.full(M, patience, dtype=float),
        schedule=tuple(schedule or ["constant"] * M),
        learning_rate_init=np.full(M, 0.1), power_t=np.full(M, 0.5),
    )  # fmt: skip


def _run(trainer, rules, **kwargs):
    M = trainer.flat.shape[0]
    progress = Progress(M, learning_rates=np.full(M, 0.1))
    shuffles = Shuffles([None] * M, [False] * M, trainer.n_rows, [True] * M)
    return run_epochs(trainer, rules, progress, shuffles=shuffles, **kwargs)


def test_each_model_stops_by_its_own_rule_and_is_left_as_it_is():
    # Model 0 improves for 4 epochs, then gets worse: it stops after
    # patience 2 + 1 epochs without improvement; model 1 keeps improving
    # until max_iter; model 2 has tol 0.5, so its small gains count as none.
    losses = np.array(
        [[5 - e if e < 4 else 2.5, 10 - e, 10 - 0.1 * e] for e in range(8)]
    )
    trainer = _Scripted(losses)
    rules = _rules(3, max_iter=8)._replace(tol=np.array([0.0, 0.0, 0.5]))
    progress = _run(trainer, rules)
    assert progress.n_iter.tolist() == [7, 8, 4]
    assert progress.stop.tolist() == [PLATEAU, MAX_ITER, PLATEAU]
    assert progress.curve(0) == [5, 4, 3, 2, 2.5, 2.5, 2.5]
    # A stopped model trains no more: it is not among the running models,
    # and its parameter counts its own epochs.
    running = [r.tolist() for r in trainer.running]
    assert running[4:] == [[True, True, False]] * 3 + [[False, True, False]]
    assert trainer.flat[:, 0].tolist() == [7, 8, 4]
    assert progress.t.tolist() == [70, 80, 40]
    assert progress.best_loss.tolist() == pytest.approx([2, 3, 9.7])


def test_progress_curves_follow_the_epochs_recorded_so_far():
    # Each model's curve is its own first n_iter epochs, read again after
    # more epochs are recorded; the last loss is its last epoch's (inf
    # before any).
    progress = Progress(2, learning_rates=[0.1, 0.1])
    assert progress.curve(0) == [] and progress.last_loss(0) == np.inf
    progress.losses.append(np.array([1.0, 2.0]))
    progress.n_iter[:] = 1
    assert progress.curve(1) == [2.0] and progress.last_loss(1) == 2.0
    progress.losses.append(np.array([0.5, 1.5]))
    progress.scores.append(np.array([0.7, 0.8]))
    progress.n_iter[:] = [2, 1]
    assert progress.curve(0) == [1.0, 0.5] and progress.curve(1) == [2.0]
    assert progress.last_loss(0) == 0.5 and progress.last_loss(1) == 2.0
    assert progress.curve(1, progress.scores) == [0.8]
    assert all(type(v) is float for v in progress.curve(0))


def test_adaptive_divides_the_rate_on_each_plateau_until_its_floor():
    # A loss that never improves by tol: 'adaptive' divides the rate by 5
    # at each plateau (3 epochs the first time, then 2: the count restarts
    # at 0), the constant model stops at the first.
    trainer = _Scripted(np.ones((40, 2)))
    rules = _rules(2, tol=1e-4, patience=1, schedule=["adaptive", "constant"])
    progress = _run(trainer, rules)
    assert progress.stop.tolist() == [PLATEAU, PLATEAU]
    assert progress.n_iter[1] == 3
    # 0.1 / 5**k is above 1e-6 up to k = 7: 8 divisions, then it stops.
    assert progress.learning_rates[0] == pytest.approx(0.1 / 5**8)
    assert progress.n_iter[0] == 3 + 2 * 8
    assert_allclose(trainer.rates[-1], progress.learning_rates)
    assert progress.learning_rates[1] == 0.1


def test_invscaling_follows_the_samples_seen():
    trainer = _Scripted(np.arange(10, 0, -1)[:, None] * np.ones((1, 2)))
    rules = _rules(2, max_iter=4, schedule=["invscaling", "constant"])
    progress = _run(trainer, rules)
    assert progress.learning_rates[0] == pytest.approx(0.1 / (40 + 1) ** 0.5)
    assert progress.learning_rates[1] == 0.1


@pytest.mark.parametrize("validating", [False, True])
def test_a_diverging_model_goes_back_and_the_others_go_on(validating):
    # Model 0's loss is lowest in its epoch 2 (0-based 1), then its weights
    # turn NaN in epoch 4: it goes back to the start of epoch 2 (parameter
    # 1) or, validating, to the start of the diverging epoch and then to its
    # best validation weights.
    losses = np.array([[3, 5], [1, 4], [2, 3], [2, 2], [2, 1], [2, 0.5]])
    trainer = _Scripted(losses, nan_at={0: 3})
    kwargs = {}
    if validating:
        scores = iter(
            [[0.5, 0.5], [0.9, 0.6], [0.7, 0.7], [0.6, 0.8], [0, 0.9], [0, 0.9]]
        )

        class Validation:
            def scores(self, flat, running):
                return np.zeros(2), np.array(next(scores), dtype=float)

        kwargs["validation"] = Validation()
    progress = _run(trainer, _rules(2, max_iter=6, patience=10), **kwargs)
    assert progress.stop[0] == DIVERGED
    assert progress.n_iter.tolist() == [3, 6]
    assert progress.diverged_loss[0] == 2
    if validating:
        # Best score in epoch 2: the weights after it, parameter 2.
        assert trainer.flat[0, 0] == 2
        assert progress.rolled_back_to[0] == 0
        assert trainer.flat[1, 0] == 5
        assert progress.best_score.tolist() == [0.9, 0.9]
    else:
        assert trainer.flat[0, 0] == 1
        assert progress.rolled_back_to[0] == 2
        assert trainer.flat[1, 0] == 6
    # Without keep_optimizer_state, the diverged model's state is zeroed.
    assert trainer.state[0, 0] == 0 and trainer.state[1, 0] == 6


def test_keep_optimizer_state_restores_a_diverged_models_state():
    # Lowest loss in epoch 2: back to its start, parameters and state.
    trainer = _Scripted([[2.0], [1.0], [3.0], [np.nan]])
    progress = _run(trainer, _rules(1, patience=10), keep_optimizer_state=True)
    assert progress.stop[0] == DIVERGED and progress.rolled_back_to[0] == 2
    assert trainer.flat[0, 0] == 1 and trainer.state[0, 0] == 1


def test_ctrl_c_keeps_completed_epochs_and_undoes_a_non_finite_model():
    trainer = _Scripted(np.ones((5, 2)), nan_at={1: 2}, interrupt_at=2)
    progress = _run(trainer, _rules(2, patience=10))
    assert progress.stop.tolist() == [INTERRUPTED, INTERRUPTED]
    assert progress.n_iter.tolist() == [2, 2]
    # Model 0 keeps the step of the interrupted epoch; model 1 went NaN in
    # it and goes back to its start.
    assert trainer.flat[:, 0].tolist() == [3, 2]


def test_shuffles_share_a_permutation_only_between_equal_streams():
    rngs = [
        np.random.RandomState(0),
        np.random.RandomState(0),
        np.random.RandomState(1),
    ]
    own = np.random.RandomState(0)
    shuffles = Shuffles(
        [*rngs, own], [True] * 4, [20, 20, 20, 20], [False] * 3 + [True]
    )
    orders = [o.copy() for o in shuffles.draw(np.ones(4, dtype=bool))]
    expected = np.random.RandomState(0).permutation(20)
    assert_allclose(orders[0], expected)
    assert orders[1] is not None and np.array_equal(orders[0], orders[1])
    assert_allclose(orders[2], np.random.RandomState(1).permutation(20))
    # The caller's own RandomState is advanced by its model alone.
    assert_allclose(orders[3], expected)
    assert own.randint(1000) == _advanced(np.random.RandomState(0)).randint(1000)


def _advanced(rng):
    rng.permutation(20)
    return rng


def test_rescale_momentum_keeps_sklearns_velocity_under_a_changing_rate():
    # scikit-learn's SGD: v = momentum * v - lr * grad; param += v.
    rng = np.random.RandomState(0)
    grads = rng.normal(size=(6, 2, 3))
    rates = [[0.1, 0.2], [0.05, 0.2], [0.05, 0.1], [0.01, 0.1], [0.2, 0.3], [0.2, 0.3]]
    flat = torch.zeros((2, 3), dtype=torch.float64)
    grad = torch.zeros_like(flat)
    sgd = make_sgd(
        flat=flat, grad=grad, learning_rates=rates[0], momentum=0.9, nesterov=False
    )
    theirs, velocity = np.zeros((2, 3)), np.zeros((2, 3))
    old = np.array(rates[0])
    for g, r in zip(grads, rates, strict=True):
        r = np.array(r)
        rescale_momentum(sgd.momentum_buffer, old, r)
        sgd.learning_rates.copy_(torch.from_numpy(r).reshape(2, 1))
        old = r
        grad.copy_(torch.from_numpy(g))
        sgd.apply(None)
        velocity = 0.9 * velocity - r[:, None] * g
        theirs += velocity
    assert_allclose(flat.numpy(), theirs, rtol=1e-12)


def _parts(rng, sizes, n_features, target, sparse=False, weighted=False):
    parts = []
    for n in sizes:
        X = rng.normal(size=(n, n_features))
        if sparse:
            X[X < 0.5] = 0
            X = scipy.sparse.csr_matrix(X)
        weight = rng.uniform(0.5, 2, n) if weighted else None
        parts.append((X, target(n), weight))
    return parts


def _network(rng, units, M):
    shapes = list(zip(units[:-1], units[1:], strict=True))
    n_params = sum(a * b + b for a, b in shapes)
    flat = torch.from_numpy(rng.normal(size=(M, n_params)))
    return shapes, flat


def _numpy_forward(flat_row, shapes, X):
    from skdnn._engine.network import _layer_views

    weights, biases = _layer_views(flat_row.reshape(1, -1), shapes)
    h = X.toarray() if scipy.sparse.issparse(X) else X
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ W[0].numpy() + b[0, 0].numpy()
        if i < len(weights) - 1:
            h = np.maximum(h, 0)
    return h


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_stacked_validation_scores_each_model_as_sklearn(sparse, weighted):
    rng = np.random.RandomState(0)
    shapes, flat = _network(rng, [4, 5, 3], 3)
    parts = _parts(
        rng, [7, 20, 13], 4, lambda n: rng.randint(3, size=n), sparse, weighted
    )
    loss = loss_by_name("multiclass_log_loss")
    validation = StackedValidation(
        shapes, "relu", loss, parts, dtype=torch.float64, device=torch.device("cpu")
    )
    validation.block = 4  # several blocks of rows, and padding in the last
    losses, scores = validation(flat)
    for m, (X, y, w) in enumerate(parts):
        raw = _numpy_forward(flat[m], shapes, X)
        proba = np.exp(raw - raw.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        labels = raw.argmax(axis=1)
        assert scores[m] == pytest.approx(accuracy_score(y, labels, sample_weight=w))
        expected = log_loss(y, proba, sample_weight=w, labels=[0, 1, 2])
        assert losses[m] == pytest.approx(expected, rel=1e-10)


def test_stacked_validation_scores_the_running_models_alone_once_most_stop():
    rng = np.random.RandomState(2)
    shapes, flat = _network(rng, [4, 5, 3], 5)
    parts = _parts(rng, [7, 20, 13, 9, 11], 4, lambda n: rng.randint(3, size=n))
    validation = StackedValidation(
        shapes, "relu", loss_by_name("multiclass_log_loss"), parts,
        dtype=torch.float64, device=torch.device("cpu"),
    )  # fmt: skip
    every = validation(flat)
    for running, scored in [
        ([1, 1, 1, 0, 1], [0, 1, 2, 3, 4]),  # 4 of 5 run: all are scored
        ([0, 1, 0, 0, 1], [1, 4]),  # 2 of 5: those two alone
        ([0, 1, 0, 0, 0], [1]),  # 1 of those 2: at most half, again
    ]:
        running = np.array(running, dtype=bool)
        losses, scores = validation.scores(flat, running)
        assert validation.scored.tolist() == scored
        assert_allclose(losses[running], every[0][running], rtol=1e-12)
        assert_allclose(scores[running], every[1][running], rtol=1e-12)
    assert np.isnan(losses[~running]).all() and np.isnan(scores[~running]).all()


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_stacked_validation_of_a_regression_loss_is_r2(n_outputs):
    rng = np.random.RandomState(1)
    shapes, flat = _network(rng, [3, 4, n_outputs], 2)
    parts = _parts(rng, [9, 5], 3, lambda n: rng.normal(size=(n, n_outputs)))
    # A constant output of the second model: R^2 is 0 unless predicted exactly.
    parts[1][1][:, 0] = 2.0
    validation = StackedValidation(
        shapes, "relu", loss_by_name("squared_error"), parts,
        dtype=torch.float64, device=torch.device("cpu"),
    )  # fmt: skip
    losses, scores = validation(flat)
    for m, (X, y, _) in enumerate(parts):
        prediction = _numpy_forward(flat[m], shapes, X)
        assert scores[m] == pytest.approx(r2_score(y, prediction))
        half_squared = 0.5 * n_outputs * mean_squared_error(y, prediction)
        assert losses[m] == pytest.approx(half_squared)


def _prepared_models(params, n_models=4, seeds=(0, 0, 1, 2)):
    from sklearn.base import clone

    from skdnn import DNNClassifier
    from skdnn._batched import prepare_fit

    rng = np.random.RandomState(0)
    X = rng.normal(size=(90, 3))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    base = DNNClassifier((5, 4), batch_size=16, random_state=0, **params)
    models = [clone(base).set_params(random_state=s) for s in seeds[:n_models]]
    models[2].set_params(alpha=0.01)
    return models, [prepare_fit(m, X, y) for m in models], (X, y)


@pytest.mark.parametrize(
    "params",
    [{"dropout": 0.3}, {"solver": "sgd", "momentum": 0.9, "dropout": (0.2, 0.0)}],
)
def test_a_trainers_subset_trains_its_models_on_as_the_whole_batch(params):
    from skdnn._batched import stacked_model
    from skdnn._engine.trainer import Trainer

    models, prepared, _ = _prepared_models(params)
    trainer = Trainer(
        [stacked_model(m) for m in models], prepared, batch_sizes=[16, 16, 16, 20],
        numpy_products=False,
    )  # fmt: skip
    orders = [np.random.RandomState(m).permutation(90) for m in range(4)]
    with torch.no_grad():
        for _ in range(2):
            trainer.run_epoch(orders, np.ones(4, dtype=bool))
        # Models 0 and 1 share a seed: model 0 drew their masks, and stops.
        keep = np.array([1, 3])
        part = trainer.subset(keep)
        running = np.isin(np.arange(4), keep)
        for _ in range(3):
            whole, _ = trainer.run_epoch(orders, running)
            alone, _ = part.run_epoch([orders[m] for m in keep], np.ones(2, dtype=bool))
            assert_allclose(alone, whole[keep], rtol=1e-12)
    assert_allclose(part.flat.numpy(), trainer.flat[keep].numpy(), rtol=1e-12)
    for mine, theirs in zip(part.optimizer_state, trainer.optimizer_state, strict=True):
        assert_allclose(mine.numpy(), theirs[keep].numpy(), rtol=1e-12)


def test_a_batch_whose_models_stop_apart_trains_the_running_ones_alone(monkeypatch):
    from sklearn.base import clone

    import skdnn._engine.trainer
    from skdnn._batched import prepare_fit, train_batched

    models, prepared, (X, y) = _prepared_models(
        {"max_iter": 60, "n_iter_no_change": 2, "dropout": 0.1}
    )
    for model, tol in zip(models, [0.5, 1e-1, 1e-2, 0.0], strict=True):
        model.set_params(tol=tol)
    # Prepared again: a fit's restarts copy the settings it is prepared with.
    prepared = [prepare_fit(model, X, y) for model in models]
    subsets = []
    real = skdnn._engine.trainer.Trainer.subset

    def subset(self, keep):
        subsets.append(list(keep))
        return real(self, keep)

    monkeypatch.setattr(skdnn._engine.trainer.Trainer, "subset", subset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        train_batched(models, prepared)
    n_iter = [m.n_iter_ for m in models]
    assert n_iter == sorted(n_iter) and n_iter[0] < n_iter[-1]
    assert subsets  # the batch shrank
    for model in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sequential = clone(model).fit(X, y)
        assert model.n_iter_ == sequential.n_iter_
        assert_allclose(model.loss_curve_, sequential.loss_curve_, rtol=1e-9)
        for a, b in zip(model.coefs_, sequential.coefs_, strict=True):
            assert_allclose(a, b, rtol=1e-9, atol=1e-9)
