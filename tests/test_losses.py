"""The engine's losses and the stacked backward that every batched step runs.

Two layers of properties:

- each loss of :mod:`skdnn._engine.losses` on its own: its per-sample loss
  is scikit-learn's metric (log_loss, mean_squared_error,
  mean_poisson_deviance), its gradient is autograd's of its per-sample loss
  in every layout the engine uses, its inverse link agrees in torch and
  numpy, and it pickles to the registry's instance;
- ``skdnn._engine.network._step``, the backward of the stacked networks (the one
  a default fit runs, as a stack of one): for M >= 1 models, each with its
  own weights, rows, sample weights, dropout masks and alpha, and for every
  loss, each model's gradient equals torch autograd's of
  ``skdnn._training.batch_loss`` for that model alone.
"""

import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import log_loss, mean_poisson_deviance, mean_squared_error

from skdnn._engine.losses import LOSSES, loss_by_name, loss_for_output
from skdnn._engine.network import _step, _StepViews, _Workspace
from skdnn._network import ACTIVATIONS
from skdnn._training import batch_loss

LOSS_NAMES = sorted(LOSSES)

# The binary log-loss is the multilabel loss's one-output case: the draws
# below give that loss a single output a third of the time.
OUTPUTS = {
    "multiclass_log_loss": (2, 5),
    "multilabel_log_loss": (1, 4),
    "squared_error": (1, 3),
    "poisson": (1, 3),
}


def draw_target(loss, rng, n_outputs, shape):
    """Targets of ``shape`` (outputs' axis included) that ``loss`` accepts."""
    if loss.index_target:
        return torch.from_numpy(rng.integers(0, n_outputs, size=shape))
    if loss.name == "multilabel_log_loss":
        values = rng.integers(0, 2, size=shape).astype(np.float64)
    elif loss.name == "poisson":
        # Counts, zeros included: the deviance's y log y term is 0 there.
        values = rng.poisson(2.0, size=shape).astype(np.float64)
    else:
        values = rng.normal(scale=2.0, size=shape)
    return torch.from_numpy(values)


# ------------------------------------------------------------ one loss alone


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_registry_names_each_loss_and_pickles_to_the_same_instance(name):
    loss = loss_by_name(name)
    assert loss.name == name
    assert loss_for_output(loss.out_activation) is loss
    assert pickle.loads(pickle.dumps(loss)) is loss


def test_an_unknown_output_activation_names_no_loss():
    with pytest.raises(KeyError):
        loss_for_output("tanh")


def _sklearn_mean_loss(name, raw, target):
    """The mean per-sample loss, from scikit-learn's metrics alone."""
    if name == "multiclass_log_loss":
        proba = scipy.special.softmax(raw, axis=1)
        return log_loss(target[:, 0], proba, labels=np.arange(raw.shape[1]))
    if name == "multilabel_log_loss":
        # log_loss of each output as a binary problem, summed over outputs.
        proba = scipy.special.expit(raw)
        return sum(
            log_loss(target[:, j], proba[:, j], labels=[0, 1])
            for j in range(raw.shape[1])
        )
    if name == "squared_error":
        # Half the squared error, summed over outputs.
        return 0.5 * raw.shape[1] * mean_squared_error(target, raw)
    return 0.5 * sum(
        mean_poisson_deviance(target[:, j], np.exp(raw[:, j]))
        for j in range(raw.shape[1])
    )


@given(
    name=st.sampled_from(LOSS_NAMES),
    n_samples=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
    n_outputs=st.integers(1, 5),
)
def test_per_sample_loss_is_scikit_learns_metric(name, n_samples, seed, n_outputs):
    loss = loss_by_name(name)
    low, high = OUTPUTS[name]
    n_outputs = min(max(n_outputs, low), high)
    rng = np.random.default_rng(seed)
    raw = rng.normal(scale=2.0, size=(n_samples, n_outputs))
    target = draw_target(loss, rng, n_outputs, (n_samples, 1 if loss.index_target
                                                else n_outputs))  # fmt: skip
    per_sample = loss.per_sample(torch.from_numpy(raw), target, 1)
    assert per_sample.shape == (n_samples, 1)
    t = target.numpy()
    expected = _sklearn_mean_loss(name, raw, t)
    # The losses are differences of terms as large as exp(|raw|) and
    # |raw| |target| (a Poisson deviance near 0 cancels them): rounding is
    # relative to those.
    terms = np.exp(np.abs(raw)).max() + np.abs(raw).max() * (1 + np.abs(t).max())
    np.testing.assert_allclose(
        per_sample.mean().item(), expected, rtol=1e-9, atol=1e-13 * terms
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_log_loss_of_a_confident_output_is_exact(dtype):
    # softplus of the logit of the wrong class, log1p(exp(.)) as numpy
    # computes it in float64: the loss of a well-classified sample is tiny
    # and must not vanish or lose digits (torch's binary_cross_entropy_
    # with_logits gave 0 at raw = -40, target 0, and was 1.3% off at -30).
    raw = np.array([-800.0, -40.0, -30.0, -20.0, -5.0, -1e-3, 0.0, 1e-3, 5.0,
                    20.0, 30.0, 39.0, 41.0, 800.0])  # fmt: skip
    loss = loss_by_name("multilabel_log_loss")
    for value in (0.0, 1.0):
        target = np.full_like(raw, value)
        got = loss.per_sample(
            torch.from_numpy(raw).to(dtype)[:, None],
            torch.from_numpy(target).to(dtype)[:, None],
            1,
        )
        expected = np.logaddexp(0.0, raw * (1 - 2 * value))
        eps = torch.finfo(dtype).eps
        np.testing.assert_allclose(
            got[:, 0].double().numpy(), expected, rtol=4 * eps, atol=0
        )


@pytest.mark.parametrize("name", ["squared_error", "poisson"])
def test_a_perfect_prediction_has_zero_regression_loss(name):
    loss = loss_by_name(name)
    target = torch.tensor([[0.5, 1.5], [3.0, 0.25]], dtype=torch.float64)
    # The raw output whose prediction is the target.
    raw = target if name == "squared_error" else target.log()
    per_sample = loss.per_sample(raw, target, 1)
    torch.testing.assert_close(per_sample, torch.zeros(2, 1, dtype=torch.float64))


def test_poisson_loss_of_a_zero_count_is_the_predicted_mean():
    # y log y is 0 at y = 0 (xlogy), not NaN.
    raw = torch.tensor([[-1.0], [2.0]], dtype=torch.float64)
    target = torch.zeros_like(raw)
    per_sample = loss_by_name("poisson").per_sample(raw, target, 1)
    torch.testing.assert_close(per_sample, raw.exp())


# The layouts the engine hands a loss: (array shape, outputs' axis).
LAYOUTS = {
    "row-major (n_samples, n_outputs)": ((7, None), 1),
    "stacked (n_models, n_outputs, batch)": ((3, None, 5), 1),
    "epoch (n_steps, n_models, n_outputs, batch)": ((2, 3, None, 4), 2),
}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", LOSS_NAMES)
@given(seed=st.integers(0, 2**32 - 1), n_outputs=st.integers(1, 5))
def test_gradient_is_autograd_of_the_per_sample_loss(name, layout, seed, n_outputs):
    loss = loss_by_name(name)
    low, high = OUTPUTS[name]
    n_outputs = min(max(n_outputs, low), high)
    template, dim = LAYOUTS[layout]
    shape = tuple(n_outputs if s is None else s for s in template)
    rng = np.random.default_rng(seed)
    raw = torch.from_numpy(rng.normal(scale=2.0, size=shape)).requires_grad_()
    target_shape = tuple(
        (1 if loss.index_target else n_outputs) if s is None else s for s in template
    )
    target = draw_target(loss, rng, n_outputs, target_shape)
    per_sample = loss.per_sample(raw, target, dim)
    assert per_sample.shape == target_shape[:dim] + (1,) + target_shape[dim + 1 :]
    (expected,) = torch.autograd.grad(per_sample.sum(), raw)
    out = torch.full_like(raw, np.nan).detach()
    returned = loss.gradient(raw.detach(), target, dim, out=out)
    assert returned.data_ptr() == out.data_ptr()
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # Both at once, as the single-network backward asks for them.
    both = torch.full_like(out, np.nan)
    torch.testing.assert_close(
        loss.loss_gradient(raw.detach(), target, dim, out=both), per_sample.detach(),
        rtol=1e-12, atol=1e-12,
    )  # fmt: skip
    torch.testing.assert_close(both, expected, rtol=1e-12, atol=1e-12)
    # The gradient at the raw output is the prediction minus the target.
    prediction = loss.inverse_link(raw.detach(), dim)
    if loss.index_target:
        onehot = torch.zeros_like(prediction).scatter_(dim, target, 1.0)
        torch.testing.assert_close(out, prediction - onehot)
    else:
        torch.testing.assert_close(out, prediction - target)


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_inverse_link_is_the_same_in_torch_and_numpy(name):
    loss = loss_by_name(name)
    raw = np.random.default_rng(0).normal(scale=3.0, size=(6, 3))
    expected = loss.inverse_link(torch.from_numpy(raw), 1).numpy()
    np.testing.assert_allclose(loss.inverse_link_numpy(raw.copy()), expected,
                               rtol=1e-14)  # fmt: skip


def test_hits_are_scikit_learns_accuracy_for_the_classification_losses():
    raw = torch.tensor([[2.0, -1.0, 0.5], [0.0, 1.0, -3.0]], dtype=torch.float64)
    multiclass = loss_by_name("multiclass_log_loss")
    hits = multiclass.hits(raw, torch.tensor([[0], [2]]), 1)
    assert hits[:, 0].tolist() == [True, False]
    multilabel = loss_by_name("multilabel_log_loss")
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    # All outputs right for the first row; the second's last output is wrong.
    assert multilabel.hits(raw, target, 1)[:, 0].tolist() == [True, False]
    with pytest.raises(NotImplementedError, match="squared_error"):
        loss_by_name("squared_error").hits(raw, target, 1)


# -------------------------------------------------- the stacked backward


@st.composite
def stacks(draw):
    """M networks of one architecture, each with its own batch, for one loss."""
    name = draw(st.sampled_from(LOSS_NAMES))
    low, high = OUTPUTS[name]
    hidden = draw(st.lists(st.integers(1, 7), max_size=3))
    n_models = draw(st.integers(1, 4))
    return SimpleNamespace(
        loss=loss_by_name(name),
        units=[draw(st.integers(1, 5)), *hidden, draw(st.integers(low, high))],
        activation=draw(st.sampled_from(sorted(ACTIVATIONS))),
        n_models=n_models,
        batch=draw(st.integers(1, 12)),
        # Each model's real rows; the rest of its batch is padding.
        fill=[draw(st.floats(0.0, 1.0)) for _ in range(n_models)],
        rates=[
            [draw(st.sampled_from([0.0, 0.3, 0.6])) for _ in hidden]
            for _ in range(n_models)
        ],  # fmt: skip
        alpha=[draw(st.sampled_from([0.0, 1e-3, 1.0])) for _ in range(n_models)],
        weighted=draw(st.booleans()),
        numpy_products=draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


def _model_batch(stack, rng, m):
    """Model ``m``'s parameters, rows, weights and masks, row-major."""
    units, B = stack.units, stack.batch
    n = max(1, round(stack.fill[m] * B))
    shapes = list(zip(units[:-1], units[1:], strict=True))
    weights = [torch.from_numpy(rng.normal(scale=0.8, size=s)) for s in shapes]
    biases = [torch.from_numpy(rng.normal(scale=0.3, size=s[1])) for s in shapes]
    X = torch.from_numpy(rng.normal(size=(B, units[0])))
    n_targets = 1 if stack.loss.index_target else units[-1]
    target = draw_target(stack.loss, rng, units[-1], (B, n_targets))
    if stack.weighted:
        weight = rng.uniform(0.0, 3.0, size=B)
    else:
        weight = np.ones(B)
    weight[n:] = 0.0  # padding
    masks = []
    for width, rate in zip(units[1:-1], stack.rates[m], strict=True):
        kept = rng.random((B, width)) >= rate
        masks.append(torch.from_numpy(kept / (1.0 - rate)))
    return SimpleNamespace(
        weights=weights, biases=biases, X=X, target=target,
        weight=torch.from_numpy(weight), n=n, masks=masks,
    )  # fmt: skip


def _autograd_gradient(stack, batch, alpha):
    """torch autograd of batch_loss for one model, on its real rows."""
    weights = [W.clone().requires_grad_() for W in batch.weights]
    biases = [b.clone().requires_grad_() for b in batch.biases]
    rows = slice(0, batch.n)
    h = batch.X[rows]
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        h = h @ W + b
        if i < len(weights) - 1:
            # A layer no model drops has masks of ones.
            h = ACTIVATIONS[stack.activation](h) * batch.masks[i][rows]
    target = batch.target[rows]
    if stack.loss.index_target:
        target = target[:, 0]
    value = batch_loss(
        h, target, batch.weight[rows] if stack.weighted else None,
        loss=stack.loss, weights=weights, alpha=alpha,
    )  # fmt: skip
    grads = torch.autograd.grad(value, [*weights, *biases])
    return [g.reshape(-1) for g in grads]


@given(stack=stacks())
def test_stacked_backward_gives_each_model_its_own_autograd_gradient(stack):
    rng = np.random.default_rng(stack.seed)
    M, B, units = stack.n_models, stack.batch, stack.units
    shapes = list(zip(units[:-1], units[1:], strict=True))
    batches = [_model_batch(stack, rng, m) for m in range(M)]
    dropped = [any(r[i] for r in stack.rates) for i in range(len(units) - 2)]
    ws = _Workspace(
        shapes, stack.activation, M, B, dtype=torch.float64, dropped=dropped,
        device=torch.device("cpu"), numpy_products=stack.numpy_products,
    )  # fmt: skip
    for m, batch in enumerate(batches):
        for W, value in zip(ws.weights, batch.weights, strict=True):
            W[m].copy_(value)
        for b, value in zip(ws.biases, batch.biases, strict=True):
            b[m, 0].copy_(value)

    # The step's views, feature-major (n_models, columns, batch), as the
    # Trainer makes them from an epoch's buffers.
    def stacked(values):
        return torch.stack(values).transpose(1, 2)

    X_T = torch.stack([b.X for b in batches]).transpose(1, 2)
    weight = torch.stack([b.weight for b in batches])  # (M, B)
    inverse_sum = weight.sum(dim=1, keepdim=True).reciprocal()
    share = (weight * inverse_sum).unsqueeze(1)
    coef = torch.tensor(stack.alpha, dtype=torch.float64).unsqueeze(1) * inverse_sum
    masks = tuple(
        torch.stack([b.masks[i] for b in batches]).transpose(1, 2).contiguous()
        if used else None
        for i, used in enumerate(dropped)
    )  # fmt: skip
    logits = torch.zeros((M, units[-1], B), dtype=torch.float64)
    views = _StepViews(
        X_T=X_T,
        X_rows=(
            tuple(X_T[:, k : k + 1, :] for k in range(units[0]))
            if ws.forward_by_rows[0]
            else None
        ),  # fmt: skip
        X_T_np=ws.as_numpy(X_T),
        target=stacked([b.target for b in batches]),
        share=share,
        coef=coef,
        masks=masks if any(dropped) else (),
        logits=logits,
        logits_np=ws.as_numpy(logits),
        squared_norm=torch.zeros(M, dtype=torch.float64),
    )
    with np.errstate(over="ignore", invalid="ignore"):
        _step(ws, views, loss=stack.loss)

    for m, batch in enumerate(batches):
        expected = _autograd_gradient(stack, batch, stack.alpha[m])
        n_weights = ws.n_weights
        got_weights, got_biases = ws.grad[m, :n_weights], ws.grad[m, n_weights:]
        expected_weights = torch.cat(expected[: len(shapes)])
        expected_biases = torch.cat(expected[len(shapes) :])
        scale = 1.0 + max(expected_weights.abs().max(), expected_biases.abs().max())
        torch.testing.assert_close(
            got_weights, expected_weights, rtol=1e-9, atol=1e-10 * scale
        )
        torch.testing.assert_close(
            got_biases, expected_biases, rtol=1e-9, atol=1e-10 * scale
        )
        # The squared norm the epoch's loss adds its penalty from.
        torch.testing.assert_close(
            views.squared_norm[m],
            sum(W.square().sum() for W in batch.weights),
        )


def test_the_engine_imports_no_estimator_module():
    # The estimators and the searches call into skdnn._engine, never the
    # other way round: its modules import each other, skdnn._compat and
    # third-party packages only.
    import ast
    from pathlib import Path

    import skdnn._engine

    # skdnn._network and skdnn._training hold the single network's forward,
    # backward and helpers that the stacked engine still shares; they
    # import no estimator module either (checked below with the engine's).
    allowed = {"skdnn._compat", "skdnn._engine", "skdnn._network", "skdnn._training"}
    package = Path(skdnn._engine.__file__).parent
    paths = [*package.glob("*.py"), package.parent / "_network.py",
             package.parent / "_training.py"]  # fmt: skip
    for path in paths:
        # The file's package, then its parents: what relative levels name.
        parents = ["skdnn._engine", "skdnn"] if path.parent == package else ["skdnn"]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = parents[node.level - 1]
                target = f"{base}.{node.module}" if node.module else base
            elif isinstance(node, ast.ImportFrom):
                target = node.module
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
                assert not any(t.startswith("skdnn") for t in targets), path
                continue
            else:
                continue
            if target.startswith("skdnn"):
                assert any(
                    target == name or target.startswith(name + ".") for name in allowed
                ), f"{path.name} imports {target}"
