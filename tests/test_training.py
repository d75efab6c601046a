"""The training loop's shortcuts give exactly what the plain way gives.

Each shortcut (buffers reused across steps, dropout masks drawn for many
batches at once, the optimizer's kernel called directly) exists for speed;
these tests pin that it changes nothing else.
"""

import copy
import pickle

import numpy as np
import pytest
import torch
from sklearn.base import clone
from threadpoolctl import threadpool_info, threadpool_limits

import skdnn._base
import skdnn._engine.masks
import skdnn._engine.trainer
import skdnn._fitting
import skdnn._network
import skdnn._training
from skdnn import DNNClassifier
from skdnn._engine.losses import loss_for_output
from skdnn._network import MLPModule, dropout_masks, flatten_parameters, init_params
from skdnn._training import (
    Workspace,
    backward,
    dropout_mask_batches,
    make_optimizer,
    make_step,
    predict_logits,
    take_rows,
)

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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_adam_step_equals_optimizer_step_bit_for_bit(dtype):
    flats, steps = [], []
    for direct in (False, True):
        flat = flatten_parameters(make_network([3, 5, 4, 2], dtype))
        optimizer = make_optimizer([flat], solver="adam", **ADAM)
        flats.append(flat)
        steps.append(make_step(optimizer) if direct else optimizer.step)
    assert steps[1] != optimizer.step  # the direct path is taken
    for seed in range(6):
        for flat, step in zip(flats, steps, strict=True):
            random_gradient(flat, seed)
            step()
        assert torch.equal(flats[0], flats[1])


def test_direct_adam_step_keeps_the_optimizer_state_torchs():
    flat = flatten_parameters(make_network([3, 5, 4, 2]))
    optimizer = make_optimizer([flat], solver="adam", **ADAM)
    step = make_step(optimizer)
    for seed in range(3):
        random_gradient(flat, seed)
        step()
    # The step count and moments live where torch keeps them, so that
    # state_dict, pickling and a later optimizer.step() carry on from them.
    assert optimizer.state[flat]["step"].item() == 3
    restored = make_optimizer(
        [torch.nn.Parameter(flat.detach().clone())], solver="adam", **ADAM
    )
    restored.load_state_dict(optimizer.state_dict())
    state = next(iter(restored.state.values()))
    assert torch.equal(state["exp_avg"], optimizer.state[flat]["exp_avg"])


@pytest.mark.parametrize(
    "make",
    [
        lambda p: make_optimizer([p], solver="sgd", **ADAM),
        lambda p: torch.optim.Adam([p], amsgrad=True),
        lambda p: torch.optim.Adam([p], weight_decay=0.1, fused=True),
        lambda p: torch.optim.Adam([p], foreach=False),
    ],
    ids=["sgd", "amsgrad", "weight_decay", "unfused"],
)
def test_other_optimizers_step_through_optimizer_step(make):
    optimizer = make(flatten_parameters(make_network([3, 5, 4, 2])))
    assert make_step(optimizer) == optimizer.step


def test_direct_adam_step_follows_a_changed_learning_rate():
    flats = [flatten_parameters(make_network([3, 5, 4, 2])) for _ in range(2)]
    optimizers = [make_optimizer([f], solver="adam", **ADAM) for f in flats]
    steps = [optimizers[0].step, make_step(optimizers[1])]
    for seed in range(4):
        for flat, optimizer, step in zip(flats, optimizers, steps, strict=True):
            optimizer.param_groups[0]["lr"] = 10.0 ** -(seed + 1)
            random_gradient(flat, seed)
            step()
    assert torch.equal(flats[0], flats[1])


def gradients(module, X, target, masks, workspace):
    W, b = module.layers()
    loss = backward(
        weights=W,
        biases=b,
        X=X,
        target=target,
        sample_weight=None,
        masks=masks,
        activation=module.activation,
        alpha=1e-3,
        loss=loss_for_output("softmax"),
        workspace=workspace,
    )
    return loss, [p.grad.clone() for p in (*W, *b)]


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("dropout", [0.0, 0.4])
def test_backward_with_a_reused_workspace_equals_fresh_buffers(activation, dropout):
    module = make_network([4, 7, 5, 3])
    module.activation = activation
    W, _ = module.layers()
    workspace = Workspace(W, 16, [dropout > 0] * 2)
    generator = torch.Generator().manual_seed(0)
    # Full batches and a shorter last one, with the same buffers throughout.
    for n_samples in (16, 16, 9, 16, 1):
        X = torch.randn(n_samples, 4, dtype=torch.float64, generator=generator)
        target = torch.randint(3, (n_samples,), generator=generator)
        masks = dropout_masks(
            n_samples=n_samples,
            widths=[7, 5],
            rates=[dropout] * 2,
            generator=generator,
            dtype=torch.float64,
            device=torch.device("cpu"),
        )
        expected = gradients(module, X, target, masks, None)
        got = gradients(module, X, target, masks, workspace)
        assert torch.equal(got[0], expected[0])
        for g, e in zip(got[1], expected[1], strict=True):
            assert torch.equal(g, e)


def test_workspace_shuffles_into_one_reused_buffer():
    X = torch.arange(12.0).reshape(6, 2)
    W, _ = make_network([2, 3, 3, 2]).layers()
    workspace = Workspace(W, 4, [False, False])
    first = workspace.shuffled(X, torch.tensor([5, 4, 3, 2, 1, 0]))
    assert torch.equal(first, X.flip(0))
    second = workspace.shuffled(X, torch.tensor([1, 0, 2, 3, 5, 4]))
    assert second.data_ptr() == first.data_ptr()
    assert torch.equal(second, take_rows(X, torch.tensor([1, 0, 2, 3, 5, 4])))


@pytest.mark.parametrize("n_samples, batch_size", [(100, 32), (64, 64), (5, 8)])
@pytest.mark.parametrize("block_values", [2**20, 100])
def test_mask_batches_are_the_masks_of_each_batch(
    monkeypatch, n_samples, batch_size, block_values
):
    monkeypatch.setattr("skdnn._training._MASK_VALUES", block_values)
    settings = dict(
        widths=[6, 3, 4],
        rates=[0.5, 0.0, 0.25],
        dtype=torch.float64,
        device=torch.device("cpu"),
    )
    batches = list(
        dropout_mask_batches(
            n_samples=n_samples,
            batch_size=batch_size,
            generator=torch.Generator().manual_seed(0),
            **settings,
        )
    )
    sizes = [
        len(range(s, min(s + batch_size, n_samples)))
        for s in range(0, n_samples, batch_size)
    ]
    assert [m[0].shape[0] for m in batches] == sizes
    assert all(m[1] is None for m in batches)
    for layer, rate in ((0, 0.5), (2, 0.25)):
        values = torch.cat([m[layer] for m in batches])
        assert set(values.unique().tolist()) <= {0.0, 1.0 / (1.0 - rate)}
    if block_values >= n_samples * 10:
        # One block: the batches are consecutive rows of one draw.
        whole = dropout_masks(
            n_samples=n_samples,
            generator=torch.Generator().manual_seed(0),
            **settings,
        )
        assert torch.equal(torch.cat([m[0] for m in batches]), whole[0])


@pytest.mark.parametrize("block_values", [2**20, 100])
def test_mask_batches_drawn_into_a_workspace_are_the_same_masks(
    monkeypatch, block_values
):
    monkeypatch.setattr("skdnn._training._MASK_VALUES", block_values)
    W, _ = make_network([4, 6, 3, 2]).layers()
    workspace = Workspace(W, 8, [True, True])
    settings = dict(
        n_samples=50,
        batch_size=8,
        widths=[6, 3],
        rates=[0.5, 0.25],
        dtype=torch.float64,
        device=torch.device("cpu"),
    )
    for epoch in range(2):
        plain = dropout_mask_batches(
            generator=torch.Generator().manual_seed(epoch), **settings
        )
        reused = dropout_mask_batches(
            generator=torch.Generator().manual_seed(epoch),
            workspace=workspace,
            **settings,
        )
        for expected, got in zip(plain, reused, strict=True):
            for e, g in zip(expected, got, strict=True):
                assert torch.equal(e, g)


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


def _fit_both_ways(monkeypatch, X, y, *, sample_weight=None, **params):
    """The same fit by the batched trainer and by run_epoch's loop."""
    clf = DNNClassifier(random_state=0, max_iter=12, **params)
    batched = clone(clf).fit(X, y, sample_weight=sample_weight)
    with monkeypatch.context() as patch:
        # The loop serves every optimizer that the trainer does not take.
        patch.setattr(skdnn._fitting, "_trainer_takes", lambda opt: False)
        looped = clone(clf).fit(X, y, sample_weight=sample_weight)
    return batched, looped


def _assert_same_model(a, b, rtol=1e-9):
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=rtol)
    for p, q in zip(a.module_.parameters(), b.module_.parameters(), strict=True):
        np.testing.assert_allclose(p.detach(), q.detach(), rtol=rtol, atol=rtol)


def _blobs(n_samples=170, n_classes=3, seed=0):
    rng = np.random.RandomState(seed)
    y = np.arange(n_samples) % n_classes
    return rng.normal(size=(n_samples, 5)) + y[:, None], y


@pytest.mark.parametrize(
    "params",
    [
        dict(hidden_layer_sizes=(6, 4), batch_size=32),
        dict(hidden_layer_sizes=(7,), dropout=0.3, batch_size=50, alpha=0.1),
        dict(hidden_layer_sizes=(8, 5), dropout=(0.2, 0.0), activation="tanh"),
        dict(hidden_layer_sizes=(6,), class_weight="balanced", shuffle=False),
        dict(hidden_layer_sizes=(6,), early_stopping=True, n_iter_no_change=3),
        dict(hidden_layer_sizes=(6,), activation="logistic", n_threads=1),
        # Several threads: the trainer multiplies through torch.
        dict(hidden_layer_sizes=(9, 5), dropout=0.1, n_threads=2),
        # SGD, its momentum through the schedules' changes of rate.
        dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.05),
        dict(hidden_layer_sizes=(6, 3), solver="sgd", momentum=0.0, dropout=0.2),
        dict(
            hidden_layer_sizes=(6,),
            solver="sgd",
            learning_rate="invscaling",
            learning_rate_init=0.2,
            nesterovs_momentum=False,
        ),
        dict(
            hidden_layer_sizes=(6,),
            solver="sgd",
            learning_rate="adaptive",
            learning_rate_init=0.5,
            n_iter_no_change=1,
            tol=0.1,
        ),
    ],
)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_fit_through_the_batched_trainer_equals_the_loop(
    monkeypatch, params, n_classes
):
    X, y = _blobs(n_classes=n_classes)
    batched, looped = _fit_both_ways(monkeypatch, X, y, **params)
    _assert_same_model(batched, looped)
    if params.get("early_stopping"):
        assert batched.validation_scores_ == looped.validation_scores_


def test_fit_through_the_batched_trainer_with_sample_weight_and_float32(monkeypatch):
    X, y = _blobs()
    weight = np.random.RandomState(1).uniform(0, 2, len(y))
    weight[:40] = 0  # some batches of zero weight
    batched, looped = _fit_both_ways(
        monkeypatch, X.astype(np.float32), y, sample_weight=weight, batch_size=20
    )
    _assert_same_model(batched, looped, rtol=1e-4)


def test_partial_fit_continues_adam_from_a_batched_fit(monkeypatch):
    X, y = _blobs()
    batched, looped = _fit_both_ways(monkeypatch, X, y, hidden_layer_sizes=(6,))
    for model in (batched, looped):
        for start in range(0, 90, 30):
            model.partial_fit(X[start : start + 30], y[start : start + 30])
    _assert_same_model(batched, looped)


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


def _partial_fits(clf, X, y, chunks, sample_weight=None):
    for start, stop in chunks:
        weight = None if sample_weight is None else sample_weight[start:stop]
        clf.partial_fit(X[start:stop], y[start:stop], classes=[0, 1, 2],
                        sample_weight=weight)  # fmt: skip
    return clf


@pytest.mark.parametrize(
    "params",
    [
        dict(hidden_layer_sizes=(6,), batch_size=16),
        dict(hidden_layer_sizes=(7, 4), dropout=0.3, batch_size=20),
        dict(hidden_layer_sizes=(6,), solver="sgd", learning_rate_init=0.05),
        dict(hidden_layer_sizes=(5,), solver="sgd", learning_rate="invscaling",
             learning_rate_init=0.2, dropout=0.2),
    ],
)  # fmt: skip
@pytest.mark.parametrize("weighted", [False, True])
def test_partial_fit_through_the_trainer_equals_the_loop(monkeypatch, params, weighted):
    # Chunks of 40 rows reuse partial_fit's trainer; the last, of 10, makes
    # a new one.
    X, y = _blobs()
    weight = np.random.RandomState(2).uniform(0, 2, len(y)) if weighted else None
    chunks = [(0, 40), (40, 80), (80, 120), (120, 130)]
    clf = DNNClassifier(random_state=0, **params)
    reloads = []
    real = skdnn._engine.trainer.Trainer.reload
    monkeypatch.setattr(
        skdnn._engine.trainer.Trainer,
        "reload",
        lambda self, *args, **kwargs: reloads.append(1) or real(self, *args, **kwargs),
    )
    trained = _partial_fits(clone(clf), X, y, chunks, weight)
    assert len(reloads) == 2
    with monkeypatch.context() as patch:
        patch.setattr(skdnn._fitting, "_trainer_takes", lambda opt: False)
        looped = _partial_fits(clone(clf), X, y, chunks, weight)
    assert len(reloads) == 2
    _assert_same_model(trained, looped)
    # A fit, and a pickle, drop the kept trainer; a deep copy's continues
    # the copy (torch's deepcopy keeps the views of the copied buffers).
    assert "_partial_trainer" in vars(trained)
    assert "_partial_trainer" not in vars(pickle.loads(pickle.dumps(trained)))
    copied = copy.deepcopy(trained)
    for model in (trained, copied):
        _partial_fits(model, X, y, [(0, 10)], weight)
    _assert_same_model(trained, copied, rtol=0)
    trained.fit(X, y)
    assert "_partial_trainer" not in vars(trained)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
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
def test_lbfgs_through_the_engine_equals_backward(
    monkeypatch, params, blocks, weighted
):
    # The engine's objective runs blocks of rows as the trainer's steps;
    # _training.backward's, blocks of its own.
    X, y = _blobs()
    if blocks > 1:
        monkeypatch.setattr(skdnn._training, "_BLOCK_VALUES", 7 * 60)
    weight = np.random.RandomState(3).uniform(0, 2, len(y)) if weighted else None
    clf = DNNClassifier(solver="lbfgs", max_iter=30, random_state=0, **params)
    steps = []
    real = skdnn._engine.trainer._step
    monkeypatch.setattr(
        skdnn._engine.trainer,
        "_step",
        lambda ws, views, *, loss: steps.append(1) or real(ws, views, loss=loss),
    )
    engine = clone(clf).fit(X, y, sample_weight=weight)
    assert len(steps) >= blocks * engine.n_iter_
    with monkeypatch.context() as patch:
        patch.setattr(skdnn._fitting, "_full_batch_objective", lambda *args: None)
        looped = clone(clf).fit(X, y, sample_weight=weight)
    _assert_same_model(engine, looped, rtol=1e-7)


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


def test_fits_whose_epoch_masks_would_be_large_train_with_the_loop(monkeypatch):
    # The trainer holds a whole epoch's masks; past the bound, the loop
    # (which draws them in blocks) trains, and gives the same model.
    X, y = _blobs()
    epochs = []
    real = skdnn._engine.trainer.Trainer.run_epoch
    monkeypatch.setattr(
        skdnn._engine.trainer.Trainer,
        "run_epoch",
        lambda self, *args: epochs.append(1) or real(self, *args),
    )
    params = dict(hidden_layer_sizes=(6,), dropout=0.2, max_iter=3, random_state=0)
    small = DNNClassifier(**params).fit(X, y)
    assert len(epochs) == 3
    monkeypatch.setattr(skdnn._fitting, "_TRAINER_MASK_VALUES", len(y) * 6 - 1)
    large = DNNClassifier(**params).fit(X, y)
    assert len(epochs) == 3
    _assert_same_model(small, large)


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
