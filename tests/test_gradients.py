"""Property tests of the gradients skdnn trains with (issue 3), one property each.

The oracle is written here from the documented loss alone: a NumPy forward
pass, the loss (the weighted mean of the per-sample loss plus ``alpha / 2 *
||W||^2`` divided by the batch's total sample weight, as MLPClassifier and
MLPRegressor) and the textbook backpropagation. The per-sample loss is the
classifier's cross-entropy (softmax or logistic outputs) or the regressor's
half squared error (identity output) or half Poisson deviance (exp output),
summed over the outputs. skdnn's side is the engine's backward,
``skdnn._engine.network._step``, the gradient computation every training step
and L-BFGS's objective run, fed the dropout masks that
``skdnn._network.dropout_masks`` draws: alone and as one of several stacked
models (each must get its own gradient), with either kernel of its products.

Hypothesis draws a ``Spec``, a few plain numbers (layer sizes, activation,
dropout rates, batch size, kind of target or loss, weights, alpha, scales and
a seed); ``make_problem`` turns it into arrays with a NumPy generator seeded
from it, so that every example and every ``@example`` regression case is a
readable, reproducible value.
"""

import dataclasses
import math
import warnings

import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import assume, event, example, given
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from skdnn import DNNClassifier, DNNRegressor
from skdnn._engine.losses import loss_for_output
from skdnn._engine.network import _step, _StepViews, _Workspace
from skdnn._engine.optim import make_sgd
from skdnn._engine.trainer import _epoch_losses
from skdnn._network import dropout_masks, forward
from skdnn._training import batch_loss

ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
EPS = np.finfo(np.float64).eps

# Each kind of target and the output activation (the loss's inverse link) it
# is trained with: DNNClassifier's three, then DNNRegressor's two losses.
OUT_ACTIVATION = {
    "softmax": "softmax",
    "binary": "logistic",
    "multilabel": "logistic",
    "squared_error": "identity",
    "poisson": "exp",
}
CLASSIFIER_KINDS = ("softmax", "binary", "multilabel")
REGRESSOR_KINDS = ("squared_error", "poisson")

# --------------------------------------------------------------- the problems


@dataclasses.dataclass(frozen=True)
class Spec:
    """Everything one example is made of; arrays come from ``seed``."""

    hidden: tuple = ()
    activation: str = "relu"
    dropout: tuple = ()
    # 'softmax' (2-6 classes), 'binary', 'multilabel' (2-6 labels), or a
    # regressor's loss, 'squared_error' or 'poisson' (1-3 outputs).
    kind: str = "softmax"
    n_outputs: int = 3
    n_samples: int = 8
    n_features: int = 3
    alpha: float = 0.0
    sample_weight: str | None = None  # None, 'ones', 'positive' or 'some_zero'
    class_weight: tuple | str | None = None  # None, 'balanced' or one per class
    input_scale: float = 1.0
    weight_scale: float = 1.0
    seed: int = 0


RATES = st.one_of(st.just(0.0), st.floats(0.0, 0.9))
ALPHAS = st.one_of(st.just(0.0), st.floats(1e-5, 10.0))


@st.composite
def specs(
    draw,
    *,
    min_hidden=0,
    max_hidden=4,
    rates=RATES,
    alphas=ALPHAS,
    kinds=CLASSIFIER_KINDS + REGRESSOR_KINDS,
    min_classes=2,
    every_class=False,
    max_input_scale=100.0,
    max_poisson_input_scale=math.inf,
):
    """Specs of a network and a batch: every setting the issue lists, bounded.

    ``min_classes`` and ``every_class`` bound the classifier's kinds; a
    regressor's kind has 1 to 3 outputs and any number of samples.
    """
    hidden = tuple(
        draw(st.lists(st.integers(1, 16), min_size=min_hidden, max_size=max_hidden))
    )
    kind = draw(st.sampled_from(kinds))
    if kind in REGRESSOR_KINDS:
        n_outputs = draw(st.integers(1, 3))
        n_classes = 1
    else:
        n_outputs = 1 if kind == "binary" else draw(st.integers(min_classes, 6))
        n_classes = 2 if kind == "binary" else n_outputs
    if kind == "poisson":
        max_input_scale = min(max_input_scale, max_poisson_input_scale)
    if kind in ("multilabel", *REGRESSOR_KINDS):
        # skdnn rejects class weights for multilabel targets; a regressor has
        # no classes.
        class_weight = None
    else:
        class_weight = draw(
            st.one_of(
                st.none(),
                st.just("balanced"),
                st.tuples(*[st.floats(0.1, 10.0)] * n_classes),
            )
        )
    return Spec(
        hidden=hidden,
        activation=draw(st.sampled_from(ACTIVATIONS)),
        dropout=tuple(draw(rates) for _ in hidden),
        kind=kind,
        n_outputs=n_outputs,
        n_samples=draw(st.integers(n_classes if every_class else 1, 64)),
        n_features=draw(st.integers(1, 8)),
        alpha=draw(alphas),
        sample_weight=draw(st.sampled_from([None, "ones", "positive", "some_zero"])),
        class_weight=class_weight,
        input_scale=10.0 ** draw(st.floats(-3.0, np.log10(max_input_scale))),
        weight_scale=draw(st.floats(0.1, 3.0)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@dataclasses.dataclass
class Problem:
    """A network, a batch and its dropout masks, as NumPy arrays."""

    spec: Spec
    weights: list
    biases: list
    X: np.ndarray
    # Class indices, the indicator matrix (multilabel) or, for a regressor,
    # the target values (as Y).
    labels: np.ndarray
    # One-hot or 0/1 columns, or a regressor's targets: what the output should be.
    Y: np.ndarray
    given_sample_weight: np.ndarray | None  # what a user would pass to fit
    sample_weight: np.ndarray | None  # sample and class weights, combined
    masks: list  # skdnn's masks, as ndarrays or None

    @property
    def out_activation(self):
        return OUT_ACTIVATION[self.spec.kind]

    @property
    def target(self):
        """The target ``batch_loss`` takes: class indices, or one column per
        output (0/1, or the regression targets)."""
        if self.spec.kind == "softmax":
            return torch.from_numpy(self.labels)
        return torch.from_numpy(self.Y)

    @property
    def y(self):
        """The y a user would pass to fit: labels, or the regression targets
        (1-D for one output, as DNNRegressor takes them without a warning)."""
        if self.spec.kind not in REGRESSOR_KINDS:
            return self.labels
        return self.Y.ravel() if self.Y.shape[1] == 1 else self.Y

    @property
    def normalized_weight(self):
        w = np.ones(len(self.X)) if self.sample_weight is None else self.sample_weight
        return w / w.sum()

    @property
    def weight_sum(self):
        return len(self.X) if self.sample_weight is None else self.sample_weight.sum()


def class_weights_of(labels, class_weight, n_classes):
    """The class weight of each sample: scikit-learn's definition, written out.

    'balanced' gives class ``c`` the weight ``n_samples / (n_present *
    count_c)``, with ``n_present`` the number of classes present.
    """
    if class_weight is None:
        return np.ones(len(labels))
    if class_weight == "balanced":
        counts = np.bincount(labels, minlength=n_classes)
        per_class = len(labels) / (np.count_nonzero(counts) * np.maximum(counts, 1))
        return per_class[labels]
    return np.asarray(class_weight)[labels]


def draw_sample_weight(rng, how, n_samples):
    if how is None:
        return None
    if how == "ones":
        return np.ones(n_samples)
    weight = 10.0 ** rng.uniform(-1, 1, n_samples)
    if how == "some_zero":
        weight[rng.uniform(size=n_samples) < 0.3] = 0.0
        weight[rng.randint(n_samples)] = 10.0 ** rng.uniform(-1, 1)
    return weight


def make_regression_targets(rng, spec):
    """Targets of a regressor's loss, one column per output.

    Squared error: normal values around a drawn mean and spread. Poisson: at
    least 0, counts or positive reals around means from 0.02 to 50, so that
    zeros (the deviance's y log y at y = 0) come up often.
    """
    shape = (spec.n_samples, spec.n_outputs)
    if spec.kind == "squared_error":
        return rng.normal(rng.normal(0, 3), 10.0 ** rng.uniform(-1, 1), shape)
    mean = np.exp(rng.normal(0, 1.5, shape))
    if rng.uniform() < 0.5:
        return rng.poisson(mean).astype(np.float64)
    return rng.exponential(mean)


def make_labels(rng, spec):
    """Class indices (or an indicator matrix) and the matching 0/1 matrix;
    a regressor's targets, twice."""
    n = spec.n_samples
    if spec.kind in REGRESSOR_KINDS:
        Y = make_regression_targets(rng, spec)
        return Y, Y
    if spec.kind == "multilabel":
        Y = (rng.uniform(size=(n, spec.n_outputs)) < 0.5).astype(np.float64)
        return Y.astype(np.int64), Y
    n_classes = 2 if spec.kind == "binary" else spec.n_outputs
    labels = rng.randint(n_classes, size=n)
    # Every class present when there are enough samples, as fit requires.
    labels[: min(n, n_classes)] = rng.permutation(n_classes)[:n]
    if spec.kind == "binary":
        return labels, labels[:, None].astype(np.float64)
    return labels, np.eye(n_classes)[labels]


def skdnn_masks(spec, n_samples=None):
    """The masks skdnn's training step draws, from a generator seeded by spec."""
    return dropout_masks(
        n_samples=spec.n_samples if n_samples is None else n_samples,
        widths=list(spec.hidden),
        rates=list(spec.dropout),
        generator=torch.Generator().manual_seed(spec.seed),
        dtype=torch.float64,
        device=torch.device("cpu"),
    )


# exp(raw) overflows past 709, and long before that drowns the target in the
# gradient exp(raw) - y: a Poisson problem's output layer is scaled down so
# that its raw outputs on the batch are at most this in size (means up to
# e^10, 2e4, against targets around means up to 50).
MAX_LOG_MEAN = 10.0


def make_problem(spec):
    rng = np.random.RandomState(spec.seed)
    units = [spec.n_features, *spec.hidden, spec.n_outputs]
    weights = [
        rng.normal(0, spec.weight_scale / np.sqrt(fan_in), (fan_in, fan_out))
        for fan_in, fan_out in zip(units[:-1], units[1:], strict=True)
    ]
    biases = [rng.normal(0, spec.weight_scale, fan_out) for fan_out in units[1:]]
    X = spec.input_scale * rng.normal(size=(spec.n_samples, spec.n_features))
    labels, Y = make_labels(rng, spec)
    given = draw_sample_weight(rng, spec.sample_weight, spec.n_samples)
    sample_weight = given
    if spec.class_weight is not None:
        n_classes = 2 if spec.kind == "binary" else spec.n_outputs
        per_class = class_weights_of(labels, spec.class_weight, n_classes)
        sample_weight = (np.ones(spec.n_samples) if given is None else given) * (
            per_class
        )
    masks = [None if m is None else m.numpy() for m in skdnn_masks(spec)]
    if spec.kind == "poisson":
        _, _, z = reference_forward(
            X, weights, biases, activation=spec.activation, masks=masks
        )
        # The raw output is affine in the output layer's weights and bias.
        shrink = min(1.0, MAX_LOG_MEAN / max(float(np.abs(z).max()), EPS))
        weights[-1], biases[-1] = shrink * weights[-1], shrink * biases[-1]
    return Problem(spec, weights, biases, X, labels, Y, given, sample_weight, masks)


# ----------------------------------------------------------------- the oracle


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z):
    # e^z / (1 + e^z) for z < 0 keeps tiny probabilities to full precision.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


ACTIVATION = {
    "identity": lambda z: z,
    "logistic": sigmoid,
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
}

# Each activation's derivative, as a function of its input z and output a.
DERIVATIVE = {
    "identity": lambda z, a: np.ones_like(z),
    "logistic": lambda z, a: a * (1.0 - a),
    "tanh": lambda z, a: 1.0 - a * a,
    "relu": lambda z, a: (z > 0).astype(z.dtype),
}


def applied_rate(rate):
    """The rate skdnn drops units at: ``rate`` to the nearest multiple of 2**-16,
    at most 65535 / 65536 (each unit's 16 random bits decide)."""
    return min(round(rate * 65536), 65535) / 65536


def reference_scaled_masks(problem):
    """Inverted dropout from the definition: kept units times 1 / (1 - p), p the
    applied rate.

    Only *which* units skdnn dropped is taken from its masks; the scale is the
    oracle's own, so a wrong scale in skdnn shows up as a wrong gradient.
    """
    return [
        None if m is None else (m != 0) / (1.0 - applied_rate(rate))
        for m, rate in zip(problem.masks, problem.spec.dropout, strict=True)
    ]


def reference_forward(X, weights, biases, *, activation, masks):
    """Inputs of every layer, hidden pre-activations, and the logits."""
    inputs, pre = [X], []
    h = X
    for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
        z = h @ W + b
        if i == len(weights) - 1:
            return inputs, pre, z
        pre.append(z)
        h = ACTIVATION[activation](z)
        if masks[i] is not None:
            h = h * masks[i]
        inputs.append(h)
    raise AssertionError("a network has an output layer")


def cross_entropy(z, problem):
    # log(sum_j e^z_j) - z_y = (top - z_y) + log1p(sum_{j != top} e^(z_j - top)):
    # log1p keeps the loss of a confidently right sample (about 1e-14, say)
    # to a few ulps, so finite differences of it mean something.
    rows = np.arange(len(z))
    top = z.argmax(axis=1)
    rest = np.exp(z - z[rows, top][:, None])
    rest[rows, top] = 0.0
    return (z[rows, top] - z[rows, problem.labels]) + np.log1p(rest.sum(axis=1))


def binary_cross_entropies(z, problem):
    # log(1 + e^z) - y z, without overflow for large |z|.
    softplus = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))
    return (softplus - problem.Y * z).sum(axis=1)


def half_squared_error(z, problem):
    return 0.5 * ((z - problem.Y) ** 2).sum(axis=1)


def half_poisson_deviance(z, problem):
    # y log(y / mu) - y + mu of the mean mu = e^z, with 0 log 0 = 0: zero at
    # mu = y.
    y = problem.Y
    return (scipy.special.xlogy(y, y) - y * z - y + np.exp(z)).sum(axis=1)


# Each output activation's per-sample loss, summed over the outputs, and its
# inverse link: the prediction the loss scores.
PER_SAMPLE_LOSS = {
    "softmax": cross_entropy,
    "logistic": binary_cross_entropies,
    "identity": half_squared_error,
    "exp": half_poisson_deviance,
}
INVERSE_LINK = {
    "softmax": softmax,
    "logistic": sigmoid,
    "identity": lambda z: z,
    "exp": np.exp,
}


def reference_loss(problem, weights, biases, masks):
    """The documented loss, and the hidden pre-activations it went through."""
    _, pre, z = reference_forward(
        problem.X, weights, biases, activation=problem.spec.activation, masks=masks
    )
    per_sample = PER_SAMPLE_LOSS[problem.out_activation](z, problem)
    penalty = 0.5 * problem.spec.alpha * sum((W * W).sum() for W in weights)
    loss = problem.normalized_weight @ per_sample + penalty / problem.weight_sum
    return loss, pre


def output_error(problem, z):
    """dLoss/dlogits: (inverse link - target) times normalized weight.

    The inverse link is softmax, sigmoid, the identity or exp: each loss is
    paired with its canonical link.
    """
    prediction = INVERSE_LINK[problem.out_activation](z)
    return (prediction - problem.Y) * problem.normalized_weight[:, None]


def reference_backprop(problem, masks):
    """Textbook backpropagation: the output error, back one layer at a time."""
    weights, biases = problem.weights, problem.biases
    inputs, pre, z = reference_forward(
        problem.X, weights, biases, activation=problem.spec.activation, masks=masks
    )
    delta = output_error(problem, z)
    grad_W, grad_b = [None] * len(weights), [None] * len(weights)
    for i in reversed(range(len(weights))):
        grad_W[i] = inputs[i].T @ delta + problem.spec.alpha * weights[i] / (
            problem.weight_sum
        )
        grad_b[i] = delta.sum(axis=0)
        if i > 0:
            a = ACTIVATION[problem.spec.activation](pre[i - 1])
            delta = delta @ weights[i].T
            if masks[i - 1] is not None:
                delta = delta * masks[i - 1]
            delta = delta * DERIVATIVE[problem.spec.activation](pre[i - 1], a)
    return grad_W, grad_b


# ------------------------------------------------------------ skdnn's side


def as_leaves(arrays):
    return [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]


def engine_step(
    problem,
    *,
    weights=None,
    biases=None,
    masks=None,
    sample_weight="problem",
    numpy_products=False,
    n_models=1,
    position=0,
    input_scaling=0.0,
    input_scale=None,
):
    """Run the engine's backward, ``skdnn._engine.network._step``, on the batch.

    The problem's network is model ``position`` of ``n_models`` stacked
    networks; the others have its weights scaled by 1.5, 2, ... (their own
    parameters, the same rows). The products go through numpy or through
    torch (``numpy_products``), the two kernels a fit may take. With
    ``input_scaling``, the networks scale their input by ``input_scaling *
    input_scale`` (each model's ``u``, scaled as its weights).

    Returns
    -------
    loss : float
        The model's batch loss, penalty included, as a training epoch sums it.
    workspace : _Workspace
        Its ``grad`` holds every model's gradient.
    """
    weights = problem.weights if weights is None else weights
    biases = problem.biases if biases is None else biases
    masks = problem.masks if masks is None else masks
    if isinstance(sample_weight, str):
        sample_weight = problem.sample_weight
    spec, loss = problem.spec, loss_for_output(problem.out_activation)
    M, n = n_models, len(problem.X)
    dropped = [m is not None for m in masks]
    ws = _Workspace(
        [W.shape for W in weights], spec.activation, M, n, dtype=torch.float64,
        dropped=dropped, device=torch.device("cpu"), numpy_products=numpy_products,
        input_scaling=input_scaling,
    )  # fmt: skip
    for m in range(M):
        scale = 1.0 if m == position else 1.0 + 0.5 * (m + 1)
        for W, value in zip(ws.weights, weights, strict=True):
            W[m].copy_(torch.from_numpy(value * scale))
        for b, value in zip(ws.biases, biases, strict=True):
            b[m, 0].copy_(torch.from_numpy(value * scale))
        if input_scaling:
            ws.scale_u[m].copy_(torch.from_numpy(input_scale * scale))

    def feature_major(rows):  # (n, k) -> (M, k, n), as the trainer's views
        rows = torch.as_tensor(np.asarray(rows, dtype=np.float64))
        return rows.T.expand(M, -1, -1).contiguous()

    X_T = feature_major(problem.X)
    w = torch.ones(n, dtype=torch.float64)
    if sample_weight is not None:
        w = torch.tensor(sample_weight, dtype=torch.float64)
    inverse_sum = w.sum().reciprocal().nan_to_num(posinf=0.0)
    share = (w * inverse_sum).expand(M, 1, n).contiguous()
    coef = torch.full((M, 1), spec.alpha, dtype=torch.float64) * inverse_sum
    target = problem.target
    target = feature_major(target.numpy().reshape(n, -1))
    if loss.index_target:
        target = target.to(torch.int64)
    logits = torch.zeros((M, spec.n_outputs, n), dtype=torch.float64)
    views = _StepViews(
        X_T=X_T,
        X_rows=(
            tuple(X_T[:, k : k + 1, :] for k in range(X_T.shape[1]))
            if ws.forward_by_rows[0]
            else None
        ),  # fmt: skip
        X_T_np=ws.as_numpy(X_T),
        target=target,
        share=share,
        coef=coef,
        masks=tuple(None if m is None else feature_major(m) for m in masks)
        if any(dropped)
        else (),
        logits=logits,
        logits_np=ws.as_numpy(logits),
        squared_norm=torch.zeros(M, dtype=torch.float64),
    )
    with np.errstate(over="ignore", invalid="ignore"):
        _step(ws, views, loss=loss)
    # The step's loss, as the trainer's epoch sums it (a step of one batch).
    value = _epoch_losses(
        logits=logits[None], target=target.transpose(1, 2)[None],
        loss_share=share.transpose(1, 2)[None],
        squared_norms=views.squared_norm[None], loss_coef=0.5 * coef.T, loss=loss,
    )  # fmt: skip
    return float(value[position]), ws


def skdnn_gradients(problem, *, n_models=1, position=0, **kwargs):
    """The engine's loss and gradients of the problem's network (see
    :func:`engine_step`), as ndarrays shaped as its weights and biases."""
    weights = problem.weights if kwargs.get("weights") is None else kwargs["weights"]
    value, ws = engine_step(problem, n_models=n_models, position=position, **kwargs)
    grad_W = [g[position].numpy().copy() for g in ws.grad_weights]
    # Bias gradients are (fan_out, 1) columns of the flat gradient.
    grad_b = [g[position].reshape(-1).numpy().copy() for g in ws.grad_bias_columns]
    assert [g.shape for g in grad_W] == [np.shape(W) for W in weights]
    return value, grad_W, grad_b


ENGINES = st.fixed_dictionaries(
    {
        "numpy_products": st.booleans(),
        # Alone, or one of several stacked models: each its own gradient.
        "n_models": st.integers(1, 3),
        "position": st.integers(0, 2),
    }
).map(lambda e: {**e, "position": min(e["position"], e["n_models"] - 1)})


def largest(arrays):
    return max(float(np.abs(a).max(initial=0.0)) for a in arrays)


def assert_gradients_close(actual, expected, *, rtol, atol=0.0, what="gradient"):
    """Each entry within ``rtol`` of the largest gradient entry, plus ``atol``.

    Rounding errors of a gradient scale with the sums it is made of, not with
    each entry (an entry can be a near-cancelling sum), so the tolerance is
    relative to the largest entry of the whole gradient.
    """
    scale = max(largest(expected), largest(actual))
    # ``atol``: one number, or one array per entry of ``actual``.
    atols = atol if isinstance(atol, list) else [atol] * len(actual)
    for i, (a, e, at) in enumerate(zip(actual, expected, atols, strict=True)):
        a, e = np.asarray(a), np.asarray(e)
        excess = np.abs(a - e) - (rtol * scale + np.asarray(at))
        # NaN where both are NaN is agreement, as for assert_allclose.
        excess[np.isnan(a) & np.isnan(e)] = 0.0
        assert (excess <= 0).all(), (
            f"{what} of layer {i}: {int((excess > 0).sum())} entries beyond "
            f"the tolerance, by up to {excess.max():.3g}\nactual {a}\nexpected {e}"
        )


def largest_logit(z, Y):
    return np.abs(z).max(axis=1)


def squared_error_terms(z, Y):
    # (z - y)^2 with z known to a few ulps of itself: |z - y| (|z| + |y|) ulps.
    return (np.abs(z - Y) * (np.abs(z) + np.abs(Y))).sum(axis=1)


def poisson_terms(z, Y):
    # e^z - y z + y log y - y; e^z is known to |z| ulps of itself.
    return (
        np.exp(z) * (1.0 + np.abs(z))
        + Y * (1.0 + np.abs(z))
        + np.abs(scipy.special.xlogy(Y, Y))
    ).sum(axis=1)


# The size of the terms each per-sample loss is computed from.
LOSS_TERMS = {
    "softmax": largest_logit,
    "logistic": largest_logit,
    "identity": squared_error_terms,
    "exp": poisson_terms,
}


def loss_magnitude(problem, masks):
    """The size of the terms the loss is computed from, for rounding bounds.

    The cross-entropy of a sample is a difference of terms as large as its
    largest logit, so its rounding error scales with that, not with the loss;
    a regressor's loss with its residual times the raw output and target
    (squared error), or with e^z, y z and y log y (Poisson).
    """
    loss, _ = reference_loss(problem, problem.weights, problem.biases, masks)
    _, _, z = reference_forward(
        problem.X,
        problem.weights,
        problem.biases,
        activation=problem.spec.activation,
        masks=masks,
    )
    terms = LOSS_TERMS[problem.out_activation](z, problem.Y)
    return loss + problem.normalized_weight @ terms


# The size of the terms of each output error inverse_link(z) - y: a
# probability minus a 0/1 target is known to a few ulps of 1, whatever its
# size; z - y to ulps of |z| + |y|; e^z - y to ulps of e^z (1 + |z|), as e^z
# inherits z's rounding, and of y.
RESIDUAL_TERMS = {
    "softmax": lambda z, Y: np.ones_like(z),
    "logistic": lambda z, Y: np.ones_like(z),
    "identity": lambda z, Y: np.abs(z) + np.abs(Y),
    "exp": lambda z, Y: np.exp(z) * (1.0 + np.abs(z)) + np.abs(Y),
}


def output_rounding(problem, masks):
    """The gradient's rounding bound that comes from the output error.

    softmax(z) - y and sigmoid(z) - y are computed in floating point with an
    absolute error of a few ulps of 1, whatever their size: a saturated
    output (p = 1 - 1e-7, say) has a residual known to only ~1e-9 of itself.
    A regressor's residual is known to a few ulps of its terms
    (``RESIDUAL_TERMS``). Backpropagating an error of one ulp in every
    residual, in absolute values, bounds what that does to every gradient
    entry; a tiny gradient of a saturated network is compared within this,
    not within a fraction of itself.
    """
    weights = problem.weights
    inputs, pre, z = reference_forward(
        problem.X,
        weights,
        problem.biases,
        activation=problem.spec.activation,
        masks=masks,
    )
    terms = RESIDUAL_TERMS[problem.out_activation](z, problem.Y)
    delta = problem.normalized_weight[:, None] * terms
    bounds = []
    for i in reversed(range(len(weights))):
        bounds.append(np.abs(inputs[i]).T @ delta)
        bounds.append(delta.sum(axis=0))
        if i > 0:
            a = ACTIVATION[problem.spec.activation](pre[i - 1])
            delta = delta @ np.abs(weights[i]).T
            if masks[i - 1] is not None:
                delta = delta * np.abs(masks[i - 1])
            delta = delta * np.abs(DERIVATIVE[problem.spec.activation](pre[i - 1], a))
    return EPS * largest(bounds)


def with_rows(problem, rows):
    """The same network on the given rows of the batch, masks and weights."""

    def take(a):
        return None if a is None else a[rows]

    spec = dataclasses.replace(problem.spec, n_samples=len(rows))
    return dataclasses.replace(
        problem,
        spec=spec,
        X=problem.X[rows],
        labels=problem.labels[rows],
        Y=problem.Y[rows],
        given_sample_weight=take(problem.given_sample_weight),
        sample_weight=take(problem.sample_weight),
        masks=[take(m) for m in problem.masks],
    )


# ------------------------------------------- 1. central finite differences

# Central differences have a truncation error h^2/6 |L'''| and a rounding
# error of about eps * magnitude / h. With h = 1e-6 in float64 the rounding
# part is about 1e-10 * magnitude; over thousands of examples the truncation
# part stayed below 2e-7 of the largest gradient entry (inputs up to 100 make
# L''' large). The tolerances below leave a margin of 50 to 100 over both,
# and are still 1e4 times smaller than the errors a wrong loss scaling,
# dropout scale or L2 term makes (a factor, such as 1/2 or sum(w)/n).
FD_STEP = 1e-6
FD_RTOL = 1e-5
FD_ATOL = 1e-8


def finite_differences(problem, masks, *, weights=None, biases=None,
                       truncation=False):  # fmt: skip
    """Central differences of the reference loss in every weight and bias.

    Also returns whether some step crossed a relu kink: a hidden
    pre-activation changed sign between the base point and a step. With
    ``truncation``, also the differences of steps twice as long less these,
    per entry: central differences err by about h^2/6 times the third
    derivative, so this is about three times their truncation error, which
    a Poisson output's exp times large activations can make exceed any
    fixed relative tolerance.
    """
    weights = problem.weights if weights is None else weights
    biases = problem.biases if biases is None else biases
    _, base_pre = reference_loss(problem, weights, biases, masks)
    params = [p.copy() for p in [*weights, *biases]]
    n_weights = len(weights)
    grads, errors, crossed = [], [], False
    steps = (FD_STEP, -FD_STEP, 2 * FD_STEP, -2 * FD_STEP)[: 4 if truncation else 2]
    for p in params:
        grad, error = np.empty_like(p), np.zeros_like(p)
        for index in np.ndindex(p.shape):
            original = p[index]
            values = []
            for step in steps:
                p[index] = original + step
                value, pre = reference_loss(
                    problem, params[:n_weights], params[n_weights:], masks
                )
                values.append(value)
                if problem.spec.activation == "relu":
                    crossed |= any(
                        ((a > 0) != (b > 0)).any()
                        for a, b in zip(pre, base_pre, strict=True)
                    )
            p[index] = original
            grad[index] = (values[0] - values[1]) / (2 * FD_STEP)
            if truncation:
                twice = (values[2] - values[3]) / (4 * FD_STEP)
                error[index] = abs(twice - grad[index])
        grads.append(grad)
        errors.append(error)
    if truncation:
        return grads[:n_weights], grads[n_weights:], crossed, errors
    return grads[:n_weights], grads[n_weights:], crossed


@given(spec=specs(), engine=ENGINES)
def test_gradients_match_central_finite_differences(spec, engine):
    """The engine's loss is the documented loss, and its gradient that loss's.

    The loss and its finite differences come from the NumPy oracle: the
    weighted cross-entropy (with sample and class weights), squared error or
    Poisson deviance, the L2 term over the weight sum, and inverted dropout
    with the mask skdnn draws held fixed.
    """
    problem = make_problem(spec)
    masks = reference_scaled_masks(problem)
    loss, grad_W, grad_b = skdnn_gradients(problem, **engine)
    magnitude = loss_magnitude(problem, masks)
    expected, _ = reference_loss(problem, problem.weights, problem.biases, masks)
    assert abs(loss - expected) <= 1e-12 * magnitude
    fd_W, fd_b, crossed, truncation = finite_differences(
        problem, masks, truncation=True
    )
    # A relu network is smooth between kinks: if no hidden pre-activation
    # changes sign over a step, it changes sign nowhere on that segment (along
    # one coordinate the first layer to cross does so affinely, hence between
    # the endpoints), and central differences converge. Seeded draws rarely
    # put a pre-activation within a step of zero: the event counts how rarely.
    event(f"relu kink crossed: {crossed}")
    assume(not crossed)
    assert_gradients_close(
        [*grad_W, *grad_b],
        [*fd_W, *fd_b],
        rtol=FD_RTOL,
        atol=[FD_ATOL * magnitude + error for error in truncation],
        what="gradient - finite differences",
    )


# The learning rate of a regressor's step below: small against its gradient
# (which grows with the residual, and with e^z under Poisson), so that the
# weights it steps from stay near the estimator's initial ones; large enough
# that the step, read back as a difference of weights of order 1, still holds
# a gradient of order 1 to about 1e-9.
REGRESSOR_STEP = 1e-6


def make_estimator(spec, y, **params):
    """DNNRegressor(loss=kind) for a regressor's kind, else DNNClassifier with
    the spec's class weights (one per class of ``y``, in sorted order)."""
    params = dict(
        hidden_layer_sizes=spec.hidden,
        activation=spec.activation,
        alpha=spec.alpha,
        random_state=spec.seed,
        device="cpu",
        **params,
    )
    if spec.kind in REGRESSOR_KINDS:
        return DNNRegressor(loss=spec.kind, **params)
    class_weight = spec.class_weight
    if isinstance(class_weight, tuple):
        class_weight = dict(zip(np.unique(y), class_weight, strict=True))
    return DNNClassifier(class_weight=class_weight, **params)


# The estimator draws its own initial weights, which make_problem cannot
# shrink: Poisson inputs stay at most of order 1, so that e^z starts finite.
@given(
    spec=specs(
        rates=st.just(0.0), every_class=True, min_classes=3, max_poisson_input_scale=1.0
    )
)
def test_estimator_steps_along_the_finite_difference_gradient(spec):
    """Through fit: one full-batch SGD step of the estimator follows -gradient.

    The estimator folds the class weights into the sample weights itself and
    encodes the targets itself; the oracle computes both from the definitions.
    A classifier's step at learning_rate_init=1 is the gradient. A
    regressor's gradient grows with its residual and, under Poisson, with
    e^z: a step of 1 would throw its network far (e^z past overflow), so it
    steps at REGRESSOR_STEP, and the step divided by that is the gradient.
    """
    problem = make_problem(spec)
    learning_rate = 1.0 if spec.kind in CLASSIFIER_KINDS else REGRESSOR_STEP
    estimator = make_estimator(
        spec,
        problem.y,
        solver="sgd",
        batch_size=spec.n_samples,
        learning_rate_init=learning_rate,
        max_iter=1,
        shuffle=False,
        warm_start=True,
        momentum=0.0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimator.fit(problem.X, problem.y, sample_weight=problem.given_sample_weight)
        start_W = [W.copy() for W in estimator.coefs_]
        start_b = [b.copy() for b in estimator.intercepts_]
        estimator.fit(problem.X, problem.y, sample_weight=problem.given_sample_weight)
    step = [
        before - after
        for before, after in zip(
            [*start_W, *start_b],
            [*estimator.coefs_, *estimator.intercepts_],
            strict=True,
        )
    ]
    problem = dataclasses.replace(problem, weights=start_W, biases=start_b)
    masks = reference_scaled_masks(problem)
    fd_W, fd_b, crossed = finite_differences(problem, masks)
    assume(not crossed)
    # The step is read back as a difference of weights: one more rounding.
    rounding = 4 * EPS * largest([*start_W, *start_b, *step]) / learning_rate
    assert_gradients_close(
        [s / learning_rate for s in step],
        [*fd_W, *fd_b],
        rtol=FD_RTOL,
        atol=FD_ATOL * loss_magnitude(problem, masks) + rounding,
        what="SGD step - finite differences",
    )


# -------------------------------------------- 2. reference backpropagation

# Both sides compute the same sums in float64, in other orders.
BACKPROP_RTOL = 1e-10


@given(spec=specs(), engine=ENGINES)
def test_gradients_match_reference_backpropagation(spec, engine):
    problem = make_problem(spec)
    _, grad_W, grad_b = skdnn_gradients(problem, **engine)
    masks = reference_scaled_masks(problem)
    ref_W, ref_b = reference_backprop(problem, masks)
    assert_gradients_close(
        [*grad_W, *grad_b],
        [*ref_W, *ref_b],
        rtol=BACKPROP_RTOL,
        atol=8 * output_rounding(problem, masks),
        what="gradient - reference backpropagation",
    )


def autograd_loss(problem, W, b, X):
    """skdnn's documented batch loss of the problem's network on input ``X``
    (the problem's rows, or a function of them), a tensor autograd can
    differentiate: the forward pass with its dropout masks, then batch_loss."""
    logits = forward(
        W,
        b,
        X,
        activation=problem.spec.activation,
        masks=[None if m is None else torch.from_numpy(m) for m in problem.masks],
    )
    return batch_loss(
        logits,
        problem.target,
        None if problem.sample_weight is None else torch.tensor(problem.sample_weight),
        loss=loss_for_output(problem.out_activation),
        weights=W,
        alpha=problem.spec.alpha,
    )


@given(spec=specs(), engine=ENGINES)
def test_backward_matches_torch_autograd_of_the_training_loss(spec, engine):
    """The engine's loss and gradient are batch_loss and its autograd gradient.

    The engine's backward is backpropagation written out by hand, for speed; torch's
    autograd of skdnn's own forward pass and documented loss is a second
    oracle for it.
    """
    problem = make_problem(spec)
    value, grad_W, grad_b = skdnn_gradients(problem, **engine)
    W, b = as_leaves(problem.weights), as_leaves(problem.biases)
    loss = autograd_loss(problem, W, b, torch.from_numpy(problem.X))
    magnitude = loss_magnitude(problem, reference_scaled_masks(problem))
    assert abs(value - loss.item()) <= 1e-12 * magnitude
    expected = torch.autograd.grad(loss, [*W, *b])
    assert_gradients_close(
        [*grad_W, *grad_b],
        [g.numpy() for g in expected],
        rtol=BACKPROP_RTOL,
        # Each side's residual is within a few ulps of 1: 8 of them, back.
        atol=8 * output_rounding(problem, reference_scaled_masks(problem)),
        what="engine - autograd",
    )


@given(
    spec=specs(),
    engine=ENGINES,
    input_scaling=st.sampled_from([1.0, 6.0, 24.0]),
    data=st.data(),
)
def test_input_scale_backward_matches_torch_autograd(spec, engine, input_scaling, data):
    """With an input scale, the engine's gradients of the weights, biases and
    the scale's parameter ``u`` are autograd's of the network that multiplies
    X by ``input_scaling * u`` (MLPModule's forward), with the L2 term on the
    weights alone, and its loss that network's loss."""
    problem = make_problem(spec)
    n_features = problem.X.shape[1]
    u = np.array(
        data.draw(st.lists(st.floats(-2.0, 2.0), min_size=n_features,
                           max_size=n_features))
    ) / input_scaling  # fmt: skip
    value, ws = engine_step(
        problem, input_scaling=input_scaling, input_scale=u, **engine
    )
    k = engine["position"]
    grad_W = [g[k].numpy().copy() for g in ws.grad_weights]
    grad_b = [g[k].reshape(-1).numpy().copy() for g in ws.grad_bias_columns]
    grad_u = ws.grad_scale_u[k].numpy().copy()
    W, b = as_leaves(problem.weights), as_leaves(problem.biases)
    (u_leaf,) = as_leaves([u])
    X = torch.from_numpy(problem.X) * (u_leaf * input_scaling)
    loss = autograd_loss(problem, W, b, X)
    assert abs(value - loss.item()) <= 1e-10 * max(1.0, abs(loss.item()))
    expected = torch.autograd.grad(loss, [*W, *b, u_leaf])
    # The scale multiplies the data: the rounding of the output grows with it.
    rounding = output_rounding(problem, reference_scaled_masks(problem))
    assert_gradients_close(
        [*grad_W, *grad_b, grad_u],
        [g.numpy() for g in expected],
        rtol=BACKPROP_RTOL,
        atol=8 * rounding * max(1.0, float(np.abs(u * input_scaling).max())),
        what="engine with an input scale - autograd",
    )


# ------------------------------------------------------------------ 3. dropout

POSITIVE_RATES = st.floats(0.05, 0.9)


@given(spec=specs(min_hidden=1, rates=POSITIVE_RATES, alphas=st.just(0.0)))
def test_dropped_unit_passes_no_gradient_to_its_incoming_weights(spec):
    """For each sample, a unit its mask drops gets no gradient from it.

    Sample i's own gradient is the batch gradient with the weights one-hot on
    i: the batch runs through forward and backward as in training.
    """
    problem = make_problem(spec)
    dropped = [m == 0 for m in problem.masks]
    assume(any(d.any() for d in dropped))
    for i in range(spec.n_samples):
        only_i = np.zeros(spec.n_samples)
        only_i[i] = 1.0
        _, grad_W, grad_b = skdnn_gradients(problem, sample_weight=only_i)
        for layer, off in enumerate(dropped):
            assert not grad_W[layer][:, off[i]].any(), (i, layer)
            assert not grad_b[layer][off[i]].any(), (i, layer)


# Chance that the test below fails on a correct implementation, per example
# (over the draw of the seed): at most 1.2e-5 over the thorough profile's
# 12,000 examples.
FALSE_ALARM = 1e-9
N_MASK_ROWS = 40_000


@given(spec=specs(min_hidden=1))
def test_dropout_keeps_the_expected_activation(spec):
    """Kept units are scaled by 1/(1-p), so E[mask] = 1 for every unit.

    A hidden activation a times its mask has the expectation a * E[mask]; the
    mean of N masks of one unit, each in [0, 1/(1-p)], is within
    t = sqrt(log(2 / delta) / (2 N)) / (1-p) of E[mask] with probability at
    least 1 - delta (Hoeffding). delta is FALSE_ALARM shared among the units.
    """
    masks = skdnn_masks(spec, n_samples=N_MASK_ROWS)
    n_units = sum(spec.hidden)
    for mask, rate in zip(masks, spec.dropout, strict=True):
        if rate == 0:
            assert mask is None
            continue
        mask = mask.numpy()
        scale = 1.0 / (1.0 - applied_rate(rate))
        assert np.all((mask == 0) | np.isclose(mask, scale, rtol=1e-12, atol=0))
        bound = scale * math.sqrt(math.log(2 * n_units / FALSE_ALARM) / (2 * len(mask)))
        deviation = np.abs(mask.mean(axis=0) - 1.0).max()
        assert deviation <= bound, (rate, deviation, bound)


def reference_prediction(estimator, X):
    """A classifier's predict_proba, or a regressor's predict, from the fitted
    weights, by the oracle, without dropout."""
    _, _, z = reference_forward(
        X,
        estimator.coefs_,
        estimator.intercepts_,
        activation=estimator.activation,
        masks=[None] * (len(estimator.coefs_) - 1),
    )
    if estimator.out_activation_ in ("identity", "exp"):
        y = INVERSE_LINK[estimator.out_activation_](z)
        return y.ravel() if y.shape[1] == 1 else y
    if estimator.out_activation_ == "softmax":
        return softmax(z)
    if z.shape[1] == 1:
        return np.hstack([sigmoid(-z), sigmoid(z)])
    return np.clip(sigmoid(z), np.finfo(z.dtype).tiny, 1 - EPS)


@st.composite
def fitted_specs(draw, *, dropout, kinds=CLASSIFIER_KINDS + REGRESSOR_KINDS):
    """A Spec for the data and the settings of a short fit."""
    spec = draw(
        specs(
            min_hidden=1 if dropout else 0,
            rates=POSITIVE_RATES if dropout else RATES,
            kinds=kinds,
            every_class=True,
            min_classes=3,
            max_input_scale=10.0,
            # The estimator draws its own initial weights: see
            # test_estimator_steps_along_the_finite_difference_gradient.
            max_poisson_input_scale=1.0,
        )
    )
    solvers = ["sgd", "adam"] if any(spec.dropout) else ["sgd", "adam", "lbfgs"]
    settings = dict(
        solver=draw(st.sampled_from(solvers)),
        max_iter=draw(st.integers(1, 3)),
        # SGD (momentum 0.9) on minibatches of one sample diverges to NaN
        # weights when the step times the loss's curvature passes about 2; the
        # curvature grows with the input scale squared and with each kept
        # unit's dropout scale 1/(1-p) squared. Such steps are no test of
        # predictions, so the step stays well below that.
        learning_rate_init=10.0 ** draw(st.floats(-4, -2))
        / max(1.0, spec.input_scale) ** 2
        * math.prod((1.0 - p) ** 2 for p in spec.dropout),
        batch_size=draw(st.one_of(st.just("auto"), st.integers(1, 64))),
    )
    return spec, settings


def fit_quietly(spec, settings, X, y, sample_weight):
    estimator = make_estimator(spec, y, dropout=spec.dropout, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # batch_size larger than the data set warns and is clipped.
        warnings.filterwarnings("ignore", message="Got batch_size")
        return estimator.fit(X, y, sample_weight=sample_weight)


@given(spec_and_settings=fitted_specs(dropout=True))
# Found by Hypothesis: a minibatch of one sample of weight zero made the
# weights NaN, and NaN predictions compare equal to themselves.
@example(
    spec_and_settings=(
        Spec(
            hidden=(1,),
            activation="identity",
            dropout=(0.5,),
            kind="binary",
            n_outputs=1,
            n_samples=2,
            n_features=1,
            sample_weight="some_zero",
            seed=1,
        ),
        dict(solver="sgd", max_iter=1, learning_rate_init=0.1, batch_size=1),
    ),
)
# Found by Hypothesis: Poisson's exp link has no bounded curvature, so the
# strategy's step bound does not hold for it; SGD on single samples blew the
# weights up to 1e15 while the rows of weight zero, which the loss never
# sees, went to outputs that overflow.
@example(
    spec_and_settings=(
        Spec(
            hidden=(15, 12),
            activation="identity",
            dropout=(0.125, 0.0625),
            kind="poisson",
            n_outputs=2,
            n_samples=40,
            n_features=2,
            sample_weight="some_zero",
            seed=12,
        ),
        dict(
            solver="sgd",
            max_iter=2,
            learning_rate_init=0.0067291259765625,
            batch_size=1,
        ),
    ),
)
def test_dropout_is_the_identity_at_predict_time(spec_and_settings):
    """Predictions (a classifier's probabilities, a regressor's values) are
    deterministic and those of the network without dropout; where they
    overflow, predict says so, and the network without dropout overflows
    there too."""
    spec, settings = spec_and_settings
    problem = make_problem(spec)
    estimator = fit_quietly(
        spec, settings, problem.X, problem.y, problem.given_sample_weight
    )
    if spec.kind in REGRESSOR_KINDS:
        predict = estimator.predict
    else:
        predict = estimator.predict_proba
    try:
        first = predict(problem.X)
    except ValueError as error:
        assert "output is not finite" in str(error)
        with np.errstate(over="ignore", invalid="ignore"):
            reference = reference_prediction(estimator, problem.X)
        assert not np.all(np.isfinite(reference))
        return
    assert np.all(np.isfinite(first))
    torch.manual_seed(spec.seed)  # torch's global generator plays no part
    np.testing.assert_array_equal(predict(problem.X), first)
    np.testing.assert_array_equal(
        estimator.predict(problem.X), estimator.predict(problem.X)
    )
    np.testing.assert_allclose(
        first, reference_prediction(estimator, problem.X), rtol=1e-10, atol=1e-15
    )


# ------------------------------------- 4. gradient at the logits (raw output)


@given(spec=specs(max_hidden=0))
# Found by Hypothesis: a logit of -62 with target 0, whose sigmoid (2.7e-27)
# the first oracle rounded to 0.
@example(
    spec=Spec(
        kind="multilabel",
        n_outputs=2,
        n_samples=1,
        n_features=1,
        activation="identity",
        input_scale=100.0,
        seed=1,
    )
)
def test_logit_gradient_is_inverse_link_minus_target_times_normalized_weight(spec):
    """dLoss/dlogits = (inverse link - target) * w_i / sum(w).

    The inverse link is softmax or sigmoid (a probability), or a regressor's
    identity or exp (a mean).

    backward's own output error, read off a network with no hidden layer, no
    bias and the identity matrix as input: its logits are its weights, and
    the weights' gradient is the output error, each sum having one nonzero
    term. The documented loss, batch_loss, must have the same gradient under
    autograd. The logits are drawn at the input scale.
    """
    problem = make_problem(spec)
    rng = np.random.RandomState(spec.seed)
    z = spec.input_scale * rng.normal(size=(spec.n_samples, spec.n_outputs))
    identity = dataclasses.replace(
        problem,
        spec=dataclasses.replace(spec, alpha=0.0),
        X=np.eye(spec.n_samples),
        weights=[z],
        biases=[np.zeros(spec.n_outputs)],
        masks=[],
    )
    _, (from_engine,), _ = skdnn_gradients(identity)
    logits = torch.tensor(z, requires_grad=True)
    loss = batch_loss(
        logits,
        problem.target,
        None if problem.sample_weight is None else torch.tensor(problem.sample_weight),
        loss=loss_for_output(problem.out_activation),
        weights=as_leaves(problem.weights),
        alpha=spec.alpha,
    )
    loss.backward()
    expected = output_error(problem, z)
    # Probabilities are within a few ulps; subtracting the target leaves an
    # absolute error of a few eps, times the sample's normalized weight. A
    # mean (z, e^z) minus a target is known to a few ulps of the larger.
    size = 1.0
    if spec.kind in REGRESSOR_KINDS:
        prediction = INVERSE_LINK[problem.out_activation](z)
        size = np.maximum(np.abs(prediction), np.abs(problem.Y))
    w = problem.normalized_weight[:, None]
    for grad in (from_engine, logits.grad.numpy()):
        assert np.all(
            np.abs(grad - expected) <= 1e-12 * np.abs(expected) + 8 * EPS * w * size
        )
        if spec.kind == "softmax":
            row_sums = grad.sum(axis=1, keepdims=True)
            assert np.all(np.abs(row_sums) <= 8 * spec.n_outputs * EPS * w)


# ------------------------------------------------------------ 5. invariances

# Permuted sums are the same sums in other orders.
INVARIANCE_RTOL = 1e-10


@given(spec=specs(min_hidden=1))
def test_permuting_hidden_units_permutes_the_gradient(spec):
    problem = make_problem(spec)
    rng = np.random.RandomState(spec.seed)
    layer = rng.randint(len(spec.hidden))
    perm = rng.permutation(spec.hidden[layer])
    weights = [W.copy() for W in problem.weights]
    biases = [b.copy() for b in problem.biases]
    masks = list(problem.masks)
    weights[layer] = weights[layer][:, perm]
    biases[layer] = biases[layer][perm]
    weights[layer + 1] = weights[layer + 1][perm, :]
    if masks[layer] is not None:
        masks[layer] = masks[layer][:, perm]
    _, grad_W, grad_b = skdnn_gradients(problem)
    _, perm_W, perm_b = skdnn_gradients(
        problem, weights=weights, biases=biases, masks=masks
    )
    grad_W[layer] = grad_W[layer][:, perm]
    grad_b[layer] = grad_b[layer][perm]
    grad_W[layer + 1] = grad_W[layer + 1][perm, :]
    assert_gradients_close([*perm_W, *perm_b], [*grad_W, *grad_b], rtol=INVARIANCE_RTOL)


@given(spec=specs(min_hidden=0))
def test_shuffling_the_batch_rows_leaves_the_gradient_unchanged(spec):
    problem = make_problem(spec)
    order = np.random.RandomState(spec.seed).permutation(spec.n_samples)
    _, grad_W, grad_b = skdnn_gradients(problem)
    _, shuffled_W, shuffled_b = skdnn_gradients(with_rows(problem, order))
    assert_gradients_close(
        [*shuffled_W, *shuffled_b], [*grad_W, *grad_b], rtol=INVARIANCE_RTOL
    )


@given(spec=specs(alphas=st.just(0.0)), c=st.floats(1e-3, 1e3))
def test_scaling_the_sample_weights_leaves_the_gradient_unchanged(spec, c):
    """With alpha=0; None stands for weights of one."""
    problem = make_problem(spec)
    weight = problem.sample_weight
    if weight is None:
        weight = np.ones(spec.n_samples)
    _, grad_W, grad_b = skdnn_gradients(problem)
    _, scaled_W, scaled_b = skdnn_gradients(problem, sample_weight=c * weight)
    assert_gradients_close(
        [*scaled_W, *scaled_b], [*grad_W, *grad_b], rtol=INVARIANCE_RTOL
    )


@given(spec=specs(alphas=st.floats(1e-5, 10.0)), c=st.floats(1e-3, 1e3))
def test_scaling_the_sample_weights_scales_only_the_l2_term_by_1_over_c(spec, c):
    """The data term is a weighted mean; the L2 term is divided by sum(w).

    This is MLPClassifier's and MLPRegressor's loss, so with alpha > 0 the
    gradient is invariant to the scale of the sample weights except for the
    penalty's alpha W / sum(w).
    """
    problem = make_problem(spec)
    weight = problem.sample_weight
    if weight is None:
        weight = np.ones(spec.n_samples)
    _, grad_W, grad_b = skdnn_gradients(problem, sample_weight=weight)
    _, scaled_W, scaled_b = skdnn_gradients(problem, sample_weight=c * weight)
    total = weight.sum()
    data_W = [
        g - spec.alpha * W / total for g, W in zip(grad_W, problem.weights, strict=True)
    ]
    scaled_data_W = [
        g - spec.alpha * W / (c * total)
        for g, W in zip(scaled_W, problem.weights, strict=True)
    ]
    assert_gradients_close(
        [*scaled_data_W, *scaled_b],
        [*data_W, *grad_b],
        rtol=INVARIANCE_RTOL,
        atol=8 * EPS * largest([*grad_W, *scaled_W]),
    )


# ---------------------------------------------------------------- 6. SGD step


def sgd_step(problem, learning_rate):
    """One step of the engine's SGD on the batch; the loss and the parameters
    after it."""
    loss, ws = engine_step(problem)
    sgd = make_sgd(
        flat=ws.flat, grad=ws.grad, learning_rates=[learning_rate], momentum=0.0,
        nesterov=False,
    )  # fmt: skip
    sgd.apply(None)
    after = [W[0].numpy().copy() for W in ws.weights]
    after += [b[0, 0].numpy().copy() for b in ws.biases]
    return loss, after


@given(spec=specs(), learning_rate=st.floats(1e-4, 10.0))
def test_sgd_step_moves_every_weight_by_minus_learning_rate_times_gradient(
    spec, learning_rate
):
    problem = make_problem(spec)
    loss, grad_W, grad_b = skdnn_gradients(problem)
    step_loss, after = sgd_step(problem, learning_rate)
    assert step_loss == loss
    for before, grad, moved in zip(
        [*problem.weights, *problem.biases], [*grad_W, *grad_b], after, strict=True
    ):
        # Exactly, up to the rounding of w - lr * g (at most two roundings).
        rounding = 2 * EPS * (np.abs(before) + learning_rate * np.abs(grad))
        assert np.all(np.abs(moved - (before - learning_rate * grad)) <= rounding)


# Armijo's sufficient decrease: a step of lr lowers the loss by at least this
# fraction of its first-order prediction lr * ||g||^2.
ARMIJO = 1e-4


@given(spec=specs(rates=st.just(0.0)))
def test_small_enough_sgd_step_lowers_the_loss(spec):
    """Some step lr = 2^-k lowers the loss by at least ARMIJO * lr * ||g||^2.

    True of the exact gradient of a smooth function for every small enough
    lr. Steps are tried only while the predicted decrease stays well above
    the loss's rounding error, so this cannot pass by running out of steps.
    """
    problem = make_problem(spec)
    masks = reference_scaled_masks(problem)
    loss, grad_W, grad_b = skdnn_gradients(problem)
    squared_norm = sum(float((g * g).sum()) for g in [*grad_W, *grad_b])
    noise = 1e3 * EPS * loss_magnitude(problem, masks)
    assume(squared_norm > noise)
    n_weights = len(problem.weights)
    learning_rate = 1.0
    while learning_rate * squared_norm > noise:
        _, after = sgd_step(problem, learning_rate)
        new_loss, _, _ = skdnn_gradients(
            problem, weights=after[:n_weights], biases=after[n_weights:]
        )
        if new_loss <= loss - ARMIJO * learning_rate * squared_norm:
            return
        learning_rate /= 2
    pytest.fail(f"no step lowered the loss {loss} by Armijo's fraction")


# ------------------------------------------------ 7. predictions of a fit


LABEL_SETS = (
    np.array([-7, 0, 3, 12, 40, 99]),
    np.array(["ant", "bee", "cat", "dog", "eel", "fox"]),
)


# Classifiers only: the property is about class probabilities and labels. A
# regressor's predict is the oracle's in
# test_dropout_is_the_identity_at_predict_time and
# test_regressor_predicts_the_inverse_link_of_the_output.
@given(
    spec_and_settings=fitted_specs(dropout=False, kinds=CLASSIFIER_KINDS),
    strings=st.booleans(),
)
# Found by Hypothesis: minibatches of one sample, one of weight zero. Its
# batch has a total weight of zero; the model must stay finite.
@example(
    spec_and_settings=(
        Spec(
            kind="binary",
            n_outputs=1,
            n_samples=2,
            n_features=1,
            activation="identity",
            sample_weight="some_zero",
            seed=0,
        ),
        dict(solver="sgd", max_iter=1, learning_rate_init=0.1, batch_size=1),
    ),
    strings=False,
)
def test_predict_proba_is_a_distribution_and_predict_its_argmax(
    spec_and_settings, strings
):
    spec, settings = spec_and_settings
    problem = make_problem(spec)
    if spec.kind == "multilabel":
        y = problem.labels
    else:
        y = LABEL_SETS[strings][problem.labels]
    clf = fit_quietly(spec, settings, problem.X, y, problem.given_sample_weight)
    proba = clf.predict_proba(problem.X)
    predicted = clf.predict(problem.X)
    assert np.all((proba >= 0) & (proba <= 1))
    if spec.kind == "multilabel":
        # Each label on where its probability is above one half.
        assert np.all(proba[predicted == 1] >= 0.5)
        assert np.all(proba[predicted == 0] <= 0.5)
        return
    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    np.testing.assert_allclose(
        proba.sum(axis=1), 1.0, rtol=0, atol=8 * EPS * proba.shape[1]
    )
    # predict is a most probable class; the argmax where that is unique.
    column = np.searchsorted(clf.classes_, predicted)
    rows = np.arange(len(proba))
    assert np.all(proba[rows, column] == proba.max(axis=1))
    unique = (proba == proba.max(axis=1, keepdims=True)).sum(axis=1) == 1
    np.testing.assert_array_equal(
        predicted[unique], clf.classes_[proba.argmax(axis=1)][unique]
    )


@given(spec_and_settings=fitted_specs(dropout=False, kinds=REGRESSOR_KINDS))
def test_regressor_predicts_the_inverse_link_of_the_output(spec_and_settings):
    """predict is the loss's inverse link (identity, exp) of the network's
    output, one column per output of y, and 1-D for a 1-D y."""
    spec, settings = spec_and_settings
    problem = make_problem(spec)
    regressor = fit_quietly(
        spec, settings, problem.X, problem.y, problem.given_sample_weight
    )
    assert regressor.out_activation_ == OUT_ACTIVATION[spec.kind]
    with np.errstate(over="ignore"):
        expected = reference_prediction(regressor, problem.X)
    if not np.all(np.isfinite(expected)):
        # A Poisson fit whose last SGD step grew the weights so far that exp
        # of the output overflows float64 (the divergence guard sees only
        # the losses of the steps before it): predict says so, naming the
        # overflow, rather than returning inf.
        with pytest.raises(ValueError, match="output is not finite"):
            regressor.predict(problem.X)
        return
    predicted = regressor.predict(problem.X)
    assert predicted.shape == problem.y.shape
    assert np.all(np.isfinite(predicted))
    np.testing.assert_allclose(predicted, expected, rtol=1e-10, atol=1e-15)
