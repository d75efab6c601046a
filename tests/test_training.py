"""Training through the engine gives exactly what the plain way gives.

The engine's shortcuts (a hand-written backward, stacked optimizers, a
whole epoch's batches and dropout masks at once, windows of rows, numpy's
products, the optimizer's kernel called directly) exist for speed; these
tests pin that a fit, a partial_fit and L-BFGS's objective are what a plain
torch loop with autograd and torch.optim computes on the same rows and
masks.
"""

import copy
import pickle
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse
import torch
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

import skdnn._base
import skdnn._engine.masks
import skdnn._engine.trainer
import skdnn._engine.windows
import skdnn._fitting
import skdnn._network
import skdnn._training
from skdnn import DNNClassifier
from skdnn._defaults import resolved
from skdnn._network import MLPModule, dropout_masks, init_params
from skdnn._training import batch_loss, predict_logits

ADAM = dict(
    learning_rate_init=1e-2,
    momentum=0.9,
    nesterovs_momentum=True,
    beta_1=0.9,
    beta_2=0.999,
    epsilon=1e-8,
)


def make_network(units, dtype=np.float64, seed=0):
    coefs, intercepts = init_params(
        units, random_state=np.random.RandomState(seed), dtype=dtype
    )
    return MLPModule(coefs, intercepts, activation="relu", dropout=(0.0,) * 2)


def random_gradient(flat, seed):
    generator = torch.Generator().manual_seed(seed)
    flat.grad.copy_(
        torch.randn(flat.shape, generator=generator, dtype=flat.dtype) * 1e-2
    )


def test_masks_keep_each_unit_with_probability_one_minus_rate():
    masks = dropout_masks(
        n_samples=200_000,
        widths=[5],
        rates=[0.3],
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
        device=torch.device("cpu"),
    )[0]
    kept = (masks > 0).double().mean().item()
    # Hoeffding: P(|kept - 0.7| > 0.005) <= 2 exp(-2 * 1e6 * 0.005^2) ~ 4e-22.
    assert abs(kept - 0.7) < 0.005
    # 0.3 applied as round(0.3 * 65536) / 65536 = 19661 / 65536.
    assert masks.max().item() == 65536 / (65536 - 19661)


@pytest.mark.parametrize("n_samples", [1, 7, 300])
def test_predict_logits_in_blocks_equals_one_block(monkeypatch, n_samples):
    module = make_network([4, 7, 5, 3])
    W, b = module.layers()
    X = np.random.RandomState(0).normal(size=(n_samples, 4))
    whole = predict_logits(W, b, X, activation="relu")
    monkeypatch.setattr("skdnn._training._BLOCK_VALUES", 14)  # two rows a block
    blocked = predict_logits(W, b, X, activation="relu")
    # Each block is computed as that block alone would be, bit for bit. (Not
    # as the whole: a BLAS may pick its kernel by the number of rows, and
    # MKL's kernels for 2 and for 7 rows round differently.)
    one_by_one = [
        predict_logits(W, b, X[start : start + 2], activation="relu")
        for start in range(0, n_samples, 2)
    ]
    np.testing.assert_array_equal(blocked, np.concatenate(one_by_one))
    np.testing.assert_allclose(blocked, whole, rtol=1e-12)
    with torch.no_grad():
        expected = module(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(whole, expected, rtol=1e-12)


def test_fit_with_dropout_is_reproducible():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(150, 4))
    y = (X[:, 0] > 0).astype(int)
    fits = [
        DNNClassifier((8,), dropout=0.5, batch_size=16, max_iter=3, random_state=1)
        .fit(X, y)
        .coefs_[0]
        for _ in range(2)
    ]
    np.testing.assert_array_equal(fits[0], fits[1])


# ------------------------------------------- fit through the batched trainer


# ------------------------------------- a fit against a plain torch loop


def _blobs(n_samples=170, n_classes=3, seed=0):
    rng = np.random.RandomState(seed)
    y = np.arange(n_samples) % n_classes
    return rng.normal(size=(n_samples, 5)) + y[:, None], y


def _recorded_training(monkeypatch):
    """Record what each epoch of the fits that follow trains on.

    Each epoch's entry: the training rows, targets and sample weights that
    ``epoch_runner`` was given (after the validation split and with the
    class weights folded in), the batch size, the epoch's order, and each
    step's dropout masks as the engine applied them (row-major, one
    ``None`` per layer without dropout), and the initial weights of the
    fits.
    """
    record = SimpleNamespace(epochs=[], starts=[], steps=[])
    runner, step, init = (
        skdnn._fitting.epoch_runner,
        skdnn._engine.trainer._step,
        skdnn._base.init_params,
    )

    def recording_runner(estimator, X, target, sample_weight, **kwargs):
        trainer = runner(estimator, X, target, sample_weight, **kwargs)

        def recorded(orders, running):
            record.epochs.append(
                SimpleNamespace(
                    X=X, target=target, sample_weight=sample_weight,
                    batch_size=kwargs["batch_size"], order=orders[0].copy(),
                    steps=(steps := []),
                )
            )  # fmt: skip
            record.steps = steps
            return trainer.run_epoch(orders, running)

        return SimpleNamespace(
            run_epoch=recorded, flat=trainer.flat, n_rows=trainer.n_rows,
            optimizer_state=trainer.optimizer_state,
            momentum_buffer=trainer.momentum_buffer,
            set_learning_rates=trainer.set_learning_rates,
        )  # fmt: skip

    def recording_step(ws, views, *, loss):
        assert views.X_T.shape[0] == 1, "a fit trains one model"
        record.steps.append(
            [None if m is None else m[0].T.clone() for m in views.masks]
        )
        return step(ws, views, loss=loss)

    def recording_init(*args, **kwargs):
        record.starts.append(init(*args, **kwargs))
        return record.starts[-1]

    monkeypatch.setattr(skdnn._fitting, "epoch_runner", recording_runner)
    monkeypatch.setattr(skdnn._engine.trainer, "_step", recording_step)
    monkeypatch.setattr(skdnn._base, "init_params", recording_init)
    return record


def _torch_loop(clf, record):
    """The recorded epochs trained again by a plain torch loop.

    Autograd of the documented batch loss (skdnn._training.batch_loss) over
    the hidden layers' torch activations, times the recorded masks, and
    torch.optim's Adam or SGD, created once (a fit's, continued by the
    partial_fits after it). Returns the loss of each epoch and the
    parameters after each.
    """
    (coefs, intercepts), *_ = record.starts
    X0 = record.epochs[0].X
    dtype = torch.float32 if X0.dtype == np.float32 else torch.float64
    W = [torch.tensor(c, dtype=dtype, requires_grad=True) for c in coefs]
    b = [torch.tensor(v, dtype=dtype, requires_grad=True) for v in intercepts]
    params = [*W, *b]
    if clf.solver == "adam":
        optimizer = torch.optim.Adam(
            params, lr=clf.learning_rate_init, betas=(clf.beta_1, clf.beta_2),
            eps=clf.epsilon, foreach=False,
        )  # fmt: skip
    else:
        optimizer = torch.optim.SGD(
            params, lr=clf.learning_rate_init, momentum=clf.momentum,
            nesterov=clf.nesterovs_momentum and clf.momentum > 0, foreach=False,
        )  # fmt: skip
    activation = skdnn._network.ACTIVATIONS[clf.activation]
    losses, after = [], []
    for epoch in record.epochs:
        n, batch = epoch.X.shape[0], epoch.batch_size
        order = epoch.order
        X = epoch.X.toarray() if scipy.sparse.issparse(epoch.X) else epoch.X
        X = torch.from_numpy(np.asarray(X)).to(dtype)
        target = torch.from_numpy(epoch.target)
        if not clf._loss.index_target:
            target = target.to(dtype)
        weight = epoch.sample_weight
        if weight is not None:
            weight = torch.from_numpy(np.asarray(weight)).to(dtype)
        total = 0.0
        starts = range(0, n, batch)
        assert len(epoch.steps) == len(starts)
        for start, masks in zip(starts, epoch.steps, strict=True):
            rows = torch.from_numpy(order[start : start + batch])
            h = X[rows]
            for i, (W_i, b_i) in enumerate(zip(W, b, strict=True)):
                h = h @ W_i + b_i
                if i < len(W) - 1:
                    h = activation(h)
                    if masks and masks[i] is not None:
                        h = h * masks[i][: len(rows)]
            value = batch_loss(
                h, target[rows], None if weight is None else weight[rows],
                loss=clf._loss, weights=W, alpha=resolved(clf, "alpha"),
            )  # fmt: skip
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            total += value.item() * len(rows)
        losses.append(total / n)
        after.append([p.detach().numpy().copy() for p in params])
    return losses, after


def _assert_is_the_torch_loop(clf, record, rtol=1e-9):
    losses, after = _torch_loop(clf, record)
    np.testing.assert_allclose(clf.loss_curve_[-len(losses) :], losses, rtol=rtol)
    # Early stopping keeps the weights of the best validation score.
    best = np.argmax(clf.validation_scores_) if clf.early_stopping else -1
    params = after[best]
    for ours, theirs in zip(clf.coefs_ + clf.intercepts_, params, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol)


FITS = [
    dict(hidden_layer_sizes=(6, 4), batch_size=32),
    dict(hidden_layer_sizes=(7,), dropout=0.3, batch_size=50, alpha=0.1),
    dict(hidden_layer_sizes=(8, 5), dropout=(0.2, 0.0), activation="tanh"),
    dict(hidden_layer_sizes=(6,), class_weight="balanced", shuffle=False),
    dict(hidden_layer_sizes=(6,), early_stopping=True, n_iter_no_change=3),
    dict(hidden_layer_sizes=(6,), activation="logistic", n_threads=1),
    # Several threads: the trainer multiplies through torch.
    dict(hidden_layer_sizes=(9, 5), dropout=0.1, n_threads=2),
    dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.05),
    dict(hidden_layer_sizes=(6, 3), solver="sgd", momentum=0.0, dropout=0.2),
    dict(hidden_layer_sizes=(6,), solver="sgd", nesterovs_momentum=False,
         learning_rate_init=0.1, dropout=0.3),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("params", FITS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_fit_is_a_plain_torch_training_loop(monkeypatch, params, n_classes):
    # The engine's hand-written backward and stacked optimizers, its
    # batches, shares and masks: every epoch's loss and the final weights
    # are those of autograd and torch.optim on the same rows and masks.
    X, y = _blobs(n_classes=n_classes)
    record = _recorded_training(monkeypatch)
    # One network (n_init=1): the loop it is compared with trains one.
    clf = DNNClassifier(random_state=0, max_iter=12, n_init=1, **params).fit(X, y)
    assert len(record.epochs) == clf.n_iter_
    _assert_is_the_torch_loop(clf, record)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-9), (np.float32, 1e-4)])
def test_fit_with_sample_weights_is_the_torch_loop(monkeypatch, dtype, rtol):
    X, y = _blobs()
    weight = np.random.RandomState(1).uniform(0, 2, len(y))
    weight[:40] = 0  # some batches of zero weight
    record = _recorded_training(monkeypatch)
    clf = DNNClassifier((6,), batch_size=20, max_iter=12, random_state=0, n_init=1)
    clf.fit(X.astype(dtype), y, sample_weight=weight)
    _assert_is_the_torch_loop(clf, record, rtol=rtol)


@pytest.mark.parametrize(
    "params",
    [
        dict(hidden_layer_sizes=(6,), batch_size=16),
        dict(hidden_layer_sizes=(7, 4), dropout=0.3, batch_size=20),
        dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.05),
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("after_fit", [False, True])
def test_partial_fits_are_the_torch_loop(monkeypatch, params, weighted, after_fit):
    # Chunks of 40 rows reuse partial_fit's trainer; the last, of 10, makes
    # a new one. After a fit, partial_fit continues its optimizer.
    X, y = _blobs()
    weight = np.random.RandomState(2).uniform(0, 2, len(y)) if weighted else None
    clf = DNNClassifier(random_state=0, max_iter=3, n_init=1, **params)
    record = _recorded_training(monkeypatch)
    reloads = []
    real = skdnn._engine.trainer.Trainer.reload
    monkeypatch.setattr(
        skdnn._engine.trainer.Trainer,
        "reload",
        lambda self, *args, **kwargs: reloads.append(1) or real(self, *args, **kwargs),
    )
    if after_fit:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y, sample_weight=weight)
    for start, stop in [(0, 40), (40, 80), (80, 120), (120, 130)]:
        clf.partial_fit(
            X[start:stop], y[start:stop], classes=[0, 1, 2],
            sample_weight=None if weight is None else weight[start:stop],
        )  # fmt: skip
    assert len(reloads) == 2
    _assert_is_the_torch_loop(clf, record)
    # A fit, and a pickle, drop the kept trainer; a deep copy's continues
    # the copy (torch's deepcopy keeps the views of the copied buffers).
    assert "_partial_trainer" in vars(clf)
    assert "_partial_trainer" not in vars(pickle.loads(pickle.dumps(clf)))
    copied = copy.deepcopy(clf)
    for model in (clf, copied):
        model.partial_fit(X[:10], y[:10])
    for ours, theirs in zip(clf.coefs_, copied.coefs_, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    clf.fit(X[:30], y[:30])
    assert "_partial_trainer" not in vars(clf)


def _windowed_epochs(monkeypatch):
    """Count the windows the fits that follow train (one entry per window)."""
    windows = []
    real = skdnn._engine.windows.WindowedTrainer._trainer
    monkeypatch.setattr(
        skdnn._engine.windows.WindowedTrainer,
        "_trainer",
        lambda self, rows, *args: windows.append(len(rows)) or real(self, rows, *args),
    )
    return windows


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_fits_whose_epoch_masks_would_be_large_train_in_windows(monkeypatch, solver):
    # The trainer holds a whole epoch's masks; past the bound, windows of
    # one block of masks each train, with the same masks: the same model.
    X, y = _blobs()
    # One network: n_init='auto' stacks no restarts whose masks need windows.
    params = dict(hidden_layer_sizes=(6,), dropout=0.2, max_iter=3, random_state=0,
                  batch_size=16, solver=solver, n_init=1)  # fmt: skip
    windows = _windowed_epochs(monkeypatch)
    whole = DNNClassifier(**params).fit(X, y)
    assert windows == []
    # Blocks of masks of 4 batches.
    monkeypatch.setattr(skdnn._engine.masks, "_MASK_VALUES", 4 * 16 * 6)
    whole_in_blocks = DNNClassifier(**params).fit(X, y)
    monkeypatch.setattr(skdnn._fitting, "_TRAINER_MASK_VALUES", len(y) * 6 - 1)
    record = _recorded_training(monkeypatch)
    windowed = DNNClassifier(**params).fit(X, y)
    assert windows == [64, 64, 42] * 3
    for model in (whole, whole_in_blocks):
        np.testing.assert_allclose(model.loss_curve_, windowed.loss_curve_, rtol=1e-12)
        for a, b in zip(model.coefs_, windowed.coefs_, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    _assert_is_the_torch_loop(windowed, record)


def test_partial_fit_keeps_a_trainer_only_for_its_own_layout(monkeypatch):
    # A chunk of 40 rows trains with a whole epoch's trainer; the next, of
    # 80, has masks past the bound and trains in windows of 40 rows: it must
    # not reload the first chunk's trainer, made for 40 rows exactly.
    monkeypatch.setattr(skdnn._fitting, "_TRAINER_MASK_VALUES", 300)
    monkeypatch.setattr(skdnn._engine.masks, "_MASK_VALUES", 240)
    X, y = _blobs(n_samples=120)
    record = _recorded_training(monkeypatch)
    windows = _windowed_epochs(monkeypatch)
    clf = DNNClassifier((6,), dropout=0.2, batch_size=20, random_state=0)
    clf.partial_fit(X[:40], y[:40], classes=[0, 1, 2])
    clf.partial_fit(X[40:], y[40:])
    assert windows == [40, 40]
    _assert_is_the_torch_loop(clf, record)


def _sparse_products(monkeypatch, multiplies):
    """Whether the trainers take sparse X as it is (True, the CPU's way) or
    densify it a window at a time (False, the other devices' way)."""
    monkeypatch.setattr(
        skdnn._engine.trainer, "multiplies_sparse", lambda device: multiplies
    )
    products = []
    real = skdnn._engine.trainer._Workspace.__init__

    def init(self, *args, **kwargs):
        products.append(kwargs.get("sparse_input", False))
        real(self, *args, **kwargs)

    monkeypatch.setattr(skdnn._engine.trainer._Workspace, "__init__", init)
    return products


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("multiplies", [True, False])
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_fits_equal_dense_ones(monkeypatch, solver, weighted, multiplies):
    # On the CPU the trainer multiplies sparse X's rows as they are, one
    # trainer for the epoch (L-BFGS's full batch too); elsewhere sparse X is
    # densified a window of rows at a time: windows of three batches here
    # (two blocks of L-BFGS's full batch).
    X, y = _blobs()
    X[np.abs(X) < 1] = 0.0
    weight = np.random.RandomState(4).uniform(0, 2, len(y)) if weighted else None
    params = dict(hidden_layer_sizes=(7, 4), max_iter=4, random_state=0,
                  batch_size=20, solver=solver)  # fmt: skip
    dense = DNNClassifier(**params).fit(X, y, sample_weight=weight)
    products = _sparse_products(monkeypatch, multiplies)
    windows = _windowed_epochs(monkeypatch)
    monkeypatch.setattr(skdnn._fitting, "_DENSE_WINDOW_VALUES", 3 * 20 * 5)
    if solver == "lbfgs":
        monkeypatch.setattr(skdnn._training, "_BLOCK_VALUES", 100 * 7)
    sparse = DNNClassifier(**params).fit(
        scipy.sparse.csr_matrix(X), y, sample_weight=weight
    )
    if multiplies:
        assert windows == [] and products == [True]
    elif solver == "lbfgs":
        assert set(windows) == {85}  # blocks of equal size
    else:
        assert windows == [60, 60, 50] * 4
        assert not any(products)
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=1e-9)
    for a, b in zip(sparse.coefs_, dense.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    "multiplies, window_values", [(True, None), (False, 3 * 20 * 5), (False, 2**22)]
)
def test_sparse_fits_with_dropout_are_the_torch_loop(
    monkeypatch, multiplies, window_values
):
    # Densified windows shorter than a block of masks draw a window's masks
    # at a time (not the dense fit's bits); windows of a whole block, and
    # sparse X multiplied as it is, draw the dense fit's.
    X, y = _blobs()
    X[np.abs(X) < 1] = 0.0
    params = dict(hidden_layer_sizes=(7, 4), dropout=0.3, max_iter=4,
                  random_state=0, batch_size=20)  # fmt: skip
    dense = DNNClassifier(**params).fit(X, y)
    _sparse_products(monkeypatch, multiplies)
    if window_values is not None:
        monkeypatch.setattr(skdnn._fitting, "_DENSE_WINDOW_VALUES", window_values)
    record = _recorded_training(monkeypatch)
    sparse = DNNClassifier(**params).fit(scipy.sparse.csr_matrix(X), y)
    _assert_is_the_torch_loop(sparse, record)
    same = np.allclose(sparse.coefs_[0], dense.coefs_[0], rtol=1e-8, atol=1e-10)
    assert same == (window_values != 3 * 20 * 5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_fits_past_the_mask_bound_train_sparse_windows(monkeypatch, dtype):
    # Masks past the trainer's bound: windows of one block of masks, each
    # window's trainer multiplying its sparse rows; the dense fit's model.
    monkeypatch.setattr(skdnn._fitting, "_TRAINER_MASK_VALUES", 300)
    monkeypatch.setattr(skdnn._engine.masks, "_MASK_VALUES", 240)
    X, y = _blobs()
    X[np.abs(X) < 1] = 0.0
    X = X.astype(dtype)
    params = dict(hidden_layer_sizes=(6,), dropout=0.2, max_iter=3,
                  random_state=0, batch_size=20)  # fmt: skip
    dense = DNNClassifier(**params).fit(X, y)
    products = _sparse_products(monkeypatch, True)
    windows = _windowed_epochs(monkeypatch)
    sparse = DNNClassifier(**params).fit(scipy.sparse.csr_matrix(X), y)
    assert windows == [40, 40, 40, 40, 10] * 3  # 170 rows, blocks of 2 batches
    assert products and all(products)
    assert sparse.coefs_[0].dtype == dtype
    rtol = 1e-5 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(sparse.loss_curve_, dense.loss_curve_, rtol=rtol)
    for a, b in zip(sparse.coefs_, dense.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=rtol)


@pytest.mark.parametrize("blocks", [1, 3])
@pytest.mark.parametrize(
    "params",
    [
        dict(hidden_layer_sizes=(6,)),
        dict(hidden_layer_sizes=(7, 4), alpha=0.1, activation="tanh"),
        dict(hidden_layer_sizes=(5,), activation="logistic", n_threads=2),
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_lbfgs_objective_is_autograd_of_the_full_batch_loss(params, blocks, weighted):
    # The engine's objective runs blocks of rows as the trainer's steps:
    # its loss and gradient, at any parameters, are those of the whole
    # batch's documented loss.
    X, y = _blobs()
    weight = np.random.RandomState(3).uniform(0, 2, len(y)) if weighted else None
    clf = DNNClassifier(solver="lbfgs", max_iter=1, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y, sample_weight=weight)
    fit = clf._checked_input(X, y, weight, False, None)
    with pytest.MonkeyPatch.context() as patch:
        if blocks > 1:
            patch.setattr(skdnn._training, "_BLOCK_VALUES", 7 * 60)
        objective = skdnn._fitting._full_batch_objective(
            clf, fit.X, fit.target, fit.sample_weight, threads=1
        )
    rng = np.random.RandomState(5)
    n_params = clf._flat.numel()
    for _ in range(2):
        theta = rng.normal(scale=0.5, size=n_params)
        value, gradient = objective(theta)
        params_ = torch.from_numpy(theta.copy()).requires_grad_()
        shapes = [W.shape for W in clf.coefs_] + [b.shape for b in clf.intercepts_]
        pieces = torch.split(params_, [int(np.prod(s)) for s in shapes])
        tensors = [p.view(s) for p, s in zip(pieces, shapes, strict=True)]
        n_layers = len(clf.coefs_)
        W, b = tensors[:n_layers], tensors[n_layers:]
        logits = skdnn._network.forward(
            W, b, torch.from_numpy(fit.X), activation=clf.activation
        )
        expected = batch_loss(
            logits, torch.from_numpy(fit.target),
            None if fit.sample_weight is None else torch.from_numpy(fit.sample_weight),
            loss=clf._loss, weights=W, alpha=resolved(clf, "alpha"),
        )  # fmt: skip
        (grad,) = torch.autograd.grad(expected, params_)
        assert value == pytest.approx(expected.item(), rel=1e-12)
        np.testing.assert_allclose(gradient, grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_fits_on_any_threads_train_through_the_trainer(monkeypatch, n_threads, solver):
    # One engine: the trainer trains fits of one thread with numpy's
    # products, and of several with torch's.
    workspaces = []
    real = skdnn._engine.trainer._step

    def step(ws, views, *, loss):
        workspaces.append(ws)
        return real(ws, views, loss=loss)

    monkeypatch.setattr(skdnn._engine.trainer, "_step", step)
    X, y = _blobs()
    params = dict(max_iter=2, n_threads=n_threads, solver=solver, random_state=0)
    DNNClassifier((6,), **params).fit(X, y)
    assert len(workspaces) == 2 * int(np.ceil(len(y) / 170))
    assert {ws.numpy_products for ws in workspaces} == {n_threads == 1}


def test_small_fits_keep_numpys_blas_to_one_thread(monkeypatch):
    # The batched trainer multiplies through numpy when torch runs on one
    # thread; numpy's BLAS must not start threads of its own then.
    seen = []
    real = skdnn._engine.trainer._step

    def step(ws, views, *, loss):
        if not seen:
            seen.append(_blas_threads())
        return real(ws, views, loss=loss)

    monkeypatch.setattr(skdnn._engine.trainer, "_step", step)
    with threadpool_limits(2, user_api="blas"):
        DNNClassifier((6,), max_iter=1, random_state=0).fit(*_blobs())
        after = _blas_threads()
    assert seen and all(n == 1 for n in seen[0])
    assert all(n == 2 for n in after)  # and the limit is lifted after the fit


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_numpy_prediction_equals_torchs(monkeypatch, dtype, n_classes):
    X, y = _blobs(n_classes=n_classes)
    X = X.astype(dtype)
    clf = DNNClassifier((7, 5), max_iter=5, random_state=0).fit(X, y)
    calls = []
    real = skdnn._base.predict_numpy
    monkeypatch.setattr(
        skdnn._base,
        "predict_numpy",
        lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs),
    )
    # 'auto' predicts through numpy, an explicit thread count through torch.
    by_numpy = clf.predict_proba(X), clf.predict(X)
    assert len(calls) == 2
    clf.set_params(n_threads=1)
    by_torch = clf.predict_proba(X), clf.predict(X)
    assert len(calls) == 2
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(by_numpy[0], by_torch[0], rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(by_numpy[1], by_torch[1])


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.99999])
def test_dropout_keeps_each_units_expected_activation_at_any_rate(rate):
    # The drop probability is rounded to a multiple of 2**-16; kept units
    # are scaled by the rounded rate's kept fraction, so that the scale times
    # the fraction kept is exactly 1. Near 1 the unrounded scale is far off:
    # at 0.99999, 1 / (1 - rate) = 100000 against 65536.
    dropped = min(round(rate * 65536), 65535)
    kept_fraction = (65536 - dropped) / 65536
    (mask,) = dropout_masks(
        n_samples=65536,
        widths=[4],
        rates=[rate],
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
        device=torch.device("cpu"),
    )
    values = mask.unique().tolist()
    assert values[0] == 0.0
    assert len(values) == 2 and values[1] * kept_fraction == pytest.approx(1, 1e-15)
    # The batched trainer's masks, of one model of the same rate, scale alike.
    layout = skdnn._engine.trainer.batch_layout(np.array([64]), np.array([64]))
    epoch = skdnn._engine.masks._EpochMasks(
        layout=layout,
        batch=np.array([64]),
        widths=[4],
        rates=np.array([[rate]]),
        generators=[torch.Generator().manual_seed(0)],
        dtype=torch.float64,
    )
    epoch.draw(np.ones(1, dtype=bool))
    assert set(epoch.masks[0].unique().tolist()) <= {0.0, values[1]}
