"""BaseDNN: the contract every skdnn estimator shares, on a PyTorch network.

The parameters and their constraints, the checks of a fit's input, the
orchestration of fit and partial_fit (with the rollback of a failed one),
prediction, ``coefs_``/``intercepts_`` and pickling. A subclass adds what
its kind of target needs: how ``y`` is checked and encoded, the output
layer, the sample weights it derives, how a validation split is stratified
and how the raw output is turned into predictions.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import copy
import math
from numbers import Integral, Real
from types import SimpleNamespace

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import assert_all_finite, check_random_state
from sklearn.utils.validation import validate_data

from ._batched import new_optimizer
from ._compat import (
    Interval,
    Options,
    StrOptions,
    _check_feature_names,
    _check_n_features,
    _check_sample_weight,
    param_names,
)
from ._defaults import resolved
from ._device import (
    check_device,
    device_for_loading,
    n_threads_for,
    resolve_device,
    torch_threads,
)
from ._engine.losses import loss_for_output
from ._fitting import (
    _all_finite,
    fit_lbfgs_model,
    fit_restarts,
    fit_stochastic,
)
from ._network import MLPModule, flatten_parameters, init_params
from ._restarts import check_n_init, restart_twins
from ._training import (
    as_rows,
    block_rows,
    predict_logits,
    predict_numpy,
    to_device,
)

_STOCHASTIC_SOLVERS = ("sgd", "adam")

# early_stopping='auto' holds out a validation split only where it has at
# least this many samples: the R^2 or accuracy of fewer jumps by more than
# tol from epoch to epoch with the noise of a sample or two.
_AUTO_MIN_VALIDATION = 10


def _uses_stochastic_solver(estimator):
    """Whether ``partial_fit`` is available: only for 'sgd' and 'adam'."""
    if estimator.solver not in _STOCHASTIC_SOLVERS:
        raise AttributeError(
            "partial_fit is only available for the stochastic solvers 'sgd' and "
            f"'adam'; this {type(estimator).__name__} has "
            f"solver={estimator.solver!r}."
        )
    return True


def _check_architecture(hidden_layer_sizes, dropout):
    """Check what parameter constraints cannot express about the layers.

    Returns
    -------
    sizes : tuple of int
        One width per hidden layer.
    rates : tuple of float
        One dropout rate per hidden layer.
    """
    if isinstance(hidden_layer_sizes, Integral):
        hidden_layer_sizes = (hidden_layer_sizes,)
    sizes = tuple(hidden_layer_sizes)
    if not all(isinstance(s, Integral) and s >= 1 for s in sizes):
        raise ValueError(
            "hidden_layer_sizes must hold one integer >= 1 per hidden layer; "
            f"got hidden_layer_sizes={hidden_layer_sizes!r}."
        )
    if isinstance(dropout, Real):
        rates = (float(dropout),) * len(sizes)
    else:
        rates = tuple(float(p) for p in dropout)
        if len(rates) != len(sizes):
            raise ValueError(
                f"dropout={dropout!r} gives {len(rates)} rate(s), but "
                f"hidden_layer_sizes={hidden_layer_sizes!r} has {len(sizes)} "
                "hidden layer(s); give one rate, or one rate per hidden layer."
            )
    if not all(0.0 <= p < 1.0 for p in rates):
        raise ValueError(
            f"Every dropout rate must be in [0, 1); got dropout={dropout!r}."
        )
    return tuple(int(s) for s in sizes), rates


# Up to this many multiply-adds, a CPU network predicts through numpy: on a
# (64, 128, 64, 10) float64 network it took 0.77 to 0.85 of torch's time from
# 100 to 10,000 rows; on a (100, 256, 256, 5) float32 one, 0.98 at 450 rows
# (42M multiply-adds), 1.08 at 2,000 and 1.35 at 10,000.
_NUMPY_PREDICT_MACS = 2**25


def _forward_macs(weights):
    """Multiply-adds of one sample's forward pass through these weights."""
    return sum(W.numel() for W in weights)


def _tensor_to_cpu(value):
    """Copy the tensors in a nested dict/list of optimizer state to the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _tensor_to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_tensor_to_cpu(v) for v in value)
    return value


def _rollback_point(estimator):
    """A function that puts ``estimator`` back as it is now.

    The attributes, and what a fit changes in place: the contents of the
    lists (loss curves), the network's parameters (their tensors, so that
    they are views of the flat buffer again, and their values), its dropout
    rates, and the optimizer's state and learning rates.
    """
    attributes = dict(estimator.__dict__)
    lists = {k: list(v) for k, v in attributes.items() if isinstance(v, list)}
    module = attributes.get("module_")
    params, dropout = [], None
    if module is not None:
        params = [(p, p.data, p.detach().clone()) for p in module.parameters()]
        dropout = module.dropout
    optimizer = attributes.get("_optimizer")
    if optimizer is not None:
        # The state's own tensors, to put back, and their values.
        saved_state = {param: dict(state) for param, state in optimizer.state.items()}
        saved_values = [
            (v, v.clone())
            for state in saved_state.values()
            for v in state.values()
            if isinstance(v, torch.Tensor)
        ]
        rates = [group["lr"] for group in optimizer.param_groups]

    def restore():
        estimator.__dict__.clear()
        estimator.__dict__.update(attributes)
        for name, values in lists.items():
            attributes[name][:] = values
        with torch.no_grad():
            for param, data, values in params:
                param.data = data
                data.copy_(values)
        if module is not None:
            module.dropout = dropout
        if optimizer is not None:
            optimizer.state.clear()
            optimizer.state.update(saved_state)
            with torch.no_grad():
                for tensor, values in saved_values:
                    tensor.copy_(values)
            for group, rate in zip(optimizer.param_groups, rates, strict=True):
                group["lr"] = rate

    return restore


def _overflow_error(module, X_bad, n_samples):
    """The ValueError of a prediction that is not finite for ``X_bad``."""
    where = (
        f"The network's output is not finite for {X_bad.shape[0]} of the "
        f"{n_samples} samples of X"
    )
    if not _all_finite(module.parameters()):
        return ValueError(f"{where}: its weights hold infinite or NaN values.")
    weight = max(float(p.detach().abs().max()) for p in module.parameters())
    return ValueError(
        f"{where}: their values (up to {abs(X_bad).max():.3g} in magnitude) "
        f"with the network's weights (up to {weight:.3g}) overflow float64 "
        "arithmetic. Scale X as for fit (for instance with StandardScaler)."
    )


def _check_continuation(estimator, sizes):
    """Check that warm_start or partial_fit can continue the fitted network."""
    fitted = tuple(W.shape[1] for W in estimator.module_.weights[:-1])
    scaling = resolved(estimator, "input_scaling")
    if estimator.module_.input_scaling != scaling:
        raise ValueError(
            f"The fitted network has input_scaling="
            f"{estimator.module_.input_scaling}; warm_start and partial_fit "
            f"cannot continue it with input_scaling={scaling}. "
            "Set warm_start=False to fit a new network."
        )
    if fitted != sizes or estimator.module_.activation != estimator.activation:
        raise ValueError(
            f"The fitted network has hidden_layer_sizes={fitted} and "
            f"activation={estimator.module_.activation!r}; warm_start and "
            f"partial_fit cannot continue it with hidden_layer_sizes={sizes} "
            f"and activation={estimator.activation!r}. Set warm_start=False to fit "
            "a new network."
        )


class BaseDNN(BaseEstimator):
    """Base class of the skdnn estimators: a PyTorch network, fitted as MLPs are.

    Not for direct use: :class:`~skdnn.DNNClassifier` is the estimator. A
    subclass defines how its targets are checked and encoded
    (``_check_targets``, ``_encode_targets``), the output layer
    (``_output_layer``) and how the raw output becomes a prediction
    (``_output_transform``); it may add sample weights
    (``_combined_sample_weight``), checks of its own parameters
    (``_check_fit_params``) and the stratification of the validation split
    (``_stratify``). The parameters are those of
    :class:`~skdnn.DNNClassifier` that every estimator has.

    Examples
    --------
    >>> from skdnn import DNNClassifier
    >>> from skdnn._base import BaseDNN
    >>> isinstance(DNNClassifier(), BaseDNN)
    True
    """

    @classmethod
    def _get_param_names(cls):
        # scikit-learn's reads __init__'s signature at each call: see
        # param_names.
        return param_names(cls)

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [
            StrOptions({"auto"}),
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [
            StrOptions({"auto"}),
            Interval(Real, 0, 1, closed="left"),
            "array-like",
        ],
        "n_init": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "input_scaling": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "device": [str, torch.device],
        "n_threads": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
    }

    def __init__(
        self,
        hidden_layer_sizes="auto",
        activation="relu",
        *,
        solver="adam",
        alpha="auto",
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout="auto",
        n_init="auto",
        input_scaling="auto",
        device="auto",
        n_threads="auto",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.n_init = n_init
        self.input_scaling = input_scaling
        self.device = device
        self.n_threads = n_threads

    # ------------------------------------------------------------------ fit

    def _fit(self, X, y, sample_weight, *, incremental, classes=None):
        # A fit that fails leaves a fitted model exactly as it was: on bad
        # input (validation sets attributes such as n_features_in_ before it
        # can know that y is bad), and on an error in mid-training, which
        # has changed the weights, the optimizer's state and the curves in
        # place. A Ctrl-C in training is no failure: the fit keeps its epochs.
        restore = _rollback_point(self)
        try:
            return self._fit_checked(X, y, sample_weight, incremental, classes)
        except BaseException:
            restore()
            raise

    def _fit_checked(self, X, y, sample_weight, incremental, classes):
        fit = self._checked_input(X, y, sample_weight, incremental, classes)
        self._start_fit(fit)
        if self.solver == "lbfgs":
            fit_lbfgs_model(self, fit.X, fit.target, fit.sample_weight)
        elif fit.restarts:
            fit_restarts(self, fit)
        else:
            fit_stochastic(self, fit, incremental=incremental)
        return self

    def _checked_input(self, X, y, sample_weight, incremental, classes, like=None):
        """Check and encode a fit's input and draw its seeds; change nothing.

        Everything a fit does before the model changes, with its random draws
        in its order (the torch seed, the validation split, then, in
        :meth:`_start_fit`, the initial weights): skdnn.model_selection's
        batched searches start their models with it too, so that they draw
        exactly what ``fit`` draws.

        ``like`` is what this method returned for another estimator's first
        ``fit`` on the same ``X`` and ``y`` without a validation split (a
        batched search's candidates on one fold): the checks of ``X`` and
        ``y`` and the target's encoder, which depend on the data alone, are
        then taken from it; the feature count and names are set as
        ``validate_data`` sets them.

        Returns
        -------
        types.SimpleNamespace
            ``sizes``, ``rates``, ``device``, ``first_pass``, ``X``, ``y``,
            ``target``, ``sample_weight``, ``encoder``, ``rng``,
            ``torch_seed`` and ``validation``.
        """
        sizes, rates = self._check_fit_params(incremental)
        device = resolve_device(self.device)
        first_pass = not hasattr(self, "module_") or not (
            self.warm_start or incremental
        )
        if like is None or like.validation is not None or not first_pass or incremental:
            X, y = validate_data(
                self,
                X,
                y,
                accept_sparse=["csr", "csc"],
                multi_output=True,
                dtype=(np.float64, np.float32),
                reset=first_pass,
            )
            y, encoder = self._check_targets(
                y, first_pass=first_pass, incremental=incremental, classes=classes
            )
        else:
            # 0.6 ms of the checks per fit, a fifth of a small network's
            # batched fit in a grid search.
            _check_n_features(self, X, reset=True)
            _check_feature_names(self, X, reset=True)
            X, y = like.X, like.y
            # What this estimator's parameters require of the targets (a
            # Poisson loss's y >= 0) is checked for each estimator, and an
            # encoder that depends on them made anew.
            encoder = self._encoder_for_reuse(y, copy.copy(like.encoder))
        target = self._encode_targets(encoder, y)
        sample_weight = self._combined_sample_weight(sample_weight, X, y, encoder)

        rng = self._random_state_for_fit(incremental)
        torch_seed = int(rng.randint(np.iinfo(np.int32).max))
        validation = None
        if self._validates(incremental, X.shape[0]):
            X, target, sample_weight, validation = self._validation_split(
                X, y, target, sample_weight, rng
            )
        if not first_pass:
            _check_continuation(self, sizes)
        return SimpleNamespace(
            sizes=sizes, rates=rates, device=device, first_pass=first_pass, X=X,
            y=y, target=target, sample_weight=sample_weight, encoder=encoder,
            rng=rng, torch_seed=torch_seed, validation=validation,
            incremental=incremental, restarts=[],
        )  # fmt: skip

    def _check_fit_params(self, incremental):
        """Check what the constraints cannot express; return (sizes, rates)."""
        sizes, rates = _check_architecture(
            resolved(self, "hidden_layer_sizes"), resolved(self, "dropout")
        )
        check_device(self.device)
        if self.solver == "lbfgs" and any(rates):
            raise ValueError(
                f"dropout={self.dropout!r} needs a stochastic solver ('adam' or "
                "'sgd'): L-BFGS needs a deterministic loss. Use solver='adam' or "
                "dropout=0."
            )
        # 'auto' is early stopping where it applies: not in partial_fit.
        if incremental and self.early_stopping not in ("auto", False):
            raise ValueError("partial_fit does not support early_stopping=True.")
        check_n_init(self)
        return sizes, rates

    def _encoder_for_reuse(self, y, encoder):
        """The encoder of another estimator's checked ``y`` for this one,
        after the checks that depend on this one's parameters; by default,
        that encoder as it is."""
        return encoder

    def _combined_sample_weight(self, sample_weight, X, y, encoder):
        """The checked sample weights, or None; a subclass may add its own."""
        if sample_weight is None:
            return None
        return _check_sample_weight(
            sample_weight, X, dtype=X.dtype, ensure_non_negative=True
        )

    def _stratify(self, y):
        """The labels to stratify the validation split by, or None."""
        return None

    def _start_fit(self, fit):
        """Set up the model for the fit that ``fit`` (a checked input) describes.

        Every check on the input has passed: from here on the model changes.
        """
        self._set_encoder(fit.encoder)
        # Whether this fit validates, for the code that records its epochs.
        self._validating = fit.validation is not None
        if fit.first_pass:
            # Apple's MPS has no float64: the network trains in float32 there.
            dtype = fit.X.dtype if fit.device.type != "mps" else np.dtype(np.float32)
            self._initialize(
                fit.sizes, fit.rates, fit.X.shape[1], fit.target, dtype, fit.rng,
                fit.device,
            )  # fmt: skip
            fit.restarts = restart_twins(self, fit, dtype)
        else:
            self._continue(fit.rates, fit.device)

    def _random_state_for_fit(self, incremental):
        """A numpy RandomState for this fit, never numpy's global one.

        Successive partial_fit calls with an int random_state draw different
        (but reproducible) shuffles and dropout masks, keyed by the number of
        samples seen so far.
        """
        if self.random_state is None:
            return np.random.RandomState(np.random.SeedSequence().generate_state(4))
        if incremental and isinstance(self.random_state, Integral):
            key = [self.random_state, getattr(self, "t_", 0)]
            return np.random.RandomState(np.random.SeedSequence(key).generate_state(4))
        return check_random_state(self.random_state)

    def _initialize(self, sizes, rates, n_features, target, dtype, rng, device):
        n_outputs, out_activation = self._output_layer(target)
        layer_units = [n_features, *sizes, n_outputs]
        coefs, intercepts = init_params(layer_units, random_state=rng, dtype=dtype)
        module = MLPModule(
            coefs, intercepts, activation=self.activation, dropout=rates,
            input_scaling=resolved(self, "input_scaling"),
        )  # fmt: skip
        if device.type != "cpu":
            # The module is made on the CPU; moving it there walks every
            # parameter for nothing, a tenth of a batched search's
            # preparation of a small network.
            module = module.to(device)
        self.module_ = module.eval()
        self.device_ = device
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(layer_units)
        self.out_activation_ = out_activation
        self.n_iter_ = 0
        self.t_ = 0
        # None until an epoch completes (a fit can be interrupted before).
        self.loss_ = None
        self.loss_curve_ = []
        validating = self._validating
        self.best_loss_ = None if validating else np.inf
        self.validation_scores_ = [] if validating else None
        self.validation_loss_curve_ = [] if validating else None
        self.best_validation_score_ = -np.inf if validating else None
        self._optimizer = None
        self._flat = None
        self._no_improvement_count = 0

    def _continue(self, rates, device):
        """Carry the current settings over to the fitted network."""
        self.module_.dropout = rates
        if device != self.device_:
            self.module_.to(device)
            self.device_ = device
            self._optimizer = None
        if self._validating and self.validation_scores_ is None:
            self.validation_scores_, self.validation_loss_curve_ = [], []
            self.best_validation_score_, self.best_loss_ = -np.inf, None

    def _validation_split(self, X, y, target, sample_weight, rng):
        arrays = [X, target] + ([] if sample_weight is None else [sample_weight])
        parts = train_test_split(
            *arrays,
            random_state=rng,
            test_size=self.validation_fraction,
            stratify=self._stratify(y),
        )
        if parts[1].shape[0] < 2:
            raise ValueError(
                f"The validation set is too small ({parts[1].shape[0]} sample) for "
                f"validation_fraction={self.validation_fraction}; increase it or "
                "use more data."
            )
        if sample_weight is None:
            parts += [None, None]
        X, X_val, target, t_val, sample_weight, sw_val = parts
        if sw_val is not None and not sw_val.sum() > 0:
            # Every validation score would be 0 / 0: early stopping would
            # keep the initial weights without a word.
            raise ValueError(
                f"The sample weights of the validation split "
                f"(validation_fraction={self.validation_fraction}, "
                f"{len(sw_val)} samples) sum to 0, so early stopping has no "
                "score to follow. Give these samples weight, change "
                "random_state or validation_fraction, or set "
                "early_stopping=False."
            )
        return X, target, sample_weight, (X_val, t_val, sw_val)

    def _validates(self, incremental, n_samples):
        """Whether fit holds out a validation split for early stopping."""
        # As in MLPClassifier, 'lbfgs' ignores early_stopping; partial_fit
        # refuses early_stopping=True and trains 'auto' without it, as it
        # does a fit whose split would be too small to follow.
        if self.early_stopping == "auto":
            n_validation = math.ceil(self.validation_fraction * n_samples)
            if incremental or n_validation < _AUTO_MIN_VALIDATION:
                return False
        return bool(resolved(self, "early_stopping")) and (
            self.solver in _STOCHASTIC_SOLVERS
        )

    def _macs(self):
        """Multiply-adds of the forward pass for one sample."""
        return _forward_macs(self.module_.layers()[0])

    @property
    def _loss(self):
        # The loss object of skdnn._engine.losses that this output trains.
        return loss_for_output(self.out_activation_)

    def _rows(self, X, dtype):
        return as_rows(X, self.device_, dtype)

    def _target_tensor(self, target, dtype):
        # Class indices stay int64 for cross-entropy; 0/1 columns take the
        # network's dtype.
        index = self._loss.index_target
        return to_device(target, self.device_, None if index else dtype)

    def _weight_tensor(self, sample_weight, dtype):
        if sample_weight is None:
            return None
        return to_device(sample_weight, self.device_, dtype)

    # -------------------------------------------------------------- predict

    def _predict_output(self, X, proba=False):
        """The network's logits for X, or its probabilities with ``proba``."""
        X = self._validated_for_prediction(X)
        weights, biases = self.module_.network_layers()
        output = self._forward_rows(weights, biases, X, proba)
        # Logits, or probabilities (NaN from infinite logits), are not finite
        # where float32 arithmetic overflowed on large values of X. A sum is
        # not finite when one of them is: the rows are checked only then.
        with np.errstate(over="ignore", invalid="ignore"):
            if math.isfinite(output.sum()):
                return output
        overflowed = ~np.isfinite(output).all(axis=1)
        if overflowed.any() and weights[0].dtype != torch.float64:
            # float64 gets these rows right; on the CPU, as Apple's MPS has
            # no float64.
            wide = [[p.detach().cpu().double() for p in ps] for ps in (weights, biases)]
            redone = self._forward_rows(*wide, X[overflowed], proba)
            if not proba:
                # Logits beyond float32's range keep their order in float64.
                output = output.astype(np.float64)
            output[overflowed] = redone
            overflowed = ~np.isfinite(output).all(axis=1)
        if overflowed.any():
            raise _overflow_error(self.module_, X[overflowed], len(output))
        return output

    def _validated_for_prediction(self, X):
        """X as ``validate_data(self, X, reset=False, ...)`` checks and returns it.

        A 2-D float ndarray with rows is what check_array would return as it
        is; for it only the checks remain, scikit-learn's own, with their
        messages: the feature count (``_check_n_features``), the feature
        names where the model has some (an ndarray has none, which
        validate_data warns about), and finiteness (``assert_all_finite``, as
        check_array calls it). That costs 13 us where validate_data's
        conversions and probing for dataframe libraries cost 62, much of a
        small network's prediction.
        """
        if (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.shape[0] > 0
            and X.dtype in (np.float64, np.float32)
        ):
            if hasattr(self, "feature_names_in_"):
                validate_data(self, X, reset=False, skip_check_array=True)
            else:
                _check_n_features(self, X, reset=False)
            assert_all_finite(X, input_name="X", estimator_name=type(self).__name__)
            return X
        return validate_data(
            self,
            X,
            accept_sparse=["csr", "csc"],
            dtype=(np.float64, np.float32),
            reset=False,
        )

    def _forward_rows(self, weights, biases, X, proba):
        """The network's output for the rows of X, by numpy or block by block."""
        macs = _forward_macs(weights)
        if (
            weights[0].device.type == "cpu"
            and not isinstance(self.n_threads, Integral)
            and X.shape[0] * macs <= _NUMPY_PREDICT_MACS
        ):
            # numpy's BLAS picks its own threads: an explicit n_threads is
            # honoured by the torch path instead.
            transform = self._output_transform(numpy=True) if proba else None
            return predict_numpy(
                weights,
                biases,
                X,
                activation=self.module_.activation,
                transform=transform,
            )
        units = [weights[0].shape[0]] + [W.shape[1] for W in weights]
        # Prediction follows the fit's rule for threads: one for small work.
        threads = n_threads_for(
            self.n_threads,
            device=weights[0].device,
            macs_per_step=min(X.shape[0], block_rows(units)) * macs,
        )
        with torch_threads(threads):
            return predict_logits(
                weights,
                biases,
                X,
                activation=self.module_.activation,
                transform=self._output_transform(numpy=False) if proba else None,
            )

    # ------------------------------------------------ weights as numpy arrays

    @property
    def coefs_(self):
        # With an input scale, the first layer's weights have it folded in:
        # coefs_ map X itself, as MLPClassifier's do.
        weights = self.module_.network_layers()[0]
        return [W.detach().cpu().numpy() for W in weights]

    @coefs_.setter
    def coefs_(self, values):
        self._assign(self.module_.weights, values, "coefs_")
        # The values assigned are the network's: the scale starts again at 1.
        self.module_.reset_scale()

    @property
    def intercepts_(self):
        return [b.detach().cpu().numpy() for b in self.module_.biases]

    @intercepts_.setter
    def intercepts_(self, values):
        self._assign(self.module_.biases, values, "intercepts_")

    @staticmethod
    def _assign(params, values, name):
        values = list(values)
        shapes = [tuple(p.shape) for p in params]
        if [np.shape(v) for v in values] != shapes:
            raise ValueError(
                f"{name} must hold arrays of shapes {shapes}; got "
                f"{[np.shape(v) for v in values]}."
            )
        with torch.no_grad():
            for param, value in zip(params, values, strict=True):
                param.copy_(torch.as_tensor(np.asarray(value)))

    # --------------------------------------------------------------- pickle

    def __getstate__(self):
        state = dict(super().__getstate__())
        module = state.get("module_")
        if module is not None:
            state["module_"] = module.cpu_state()
            state["device_"] = str(state["device_"])
        # The flat buffer aliases module_'s parameters; it is rebuilt on load.
        # partial_fit's kept trainer is remade by the next call.
        state.pop("_flat", None)
        state.pop("_partial_trainer", None)
        if state.get("_optimizer") is not None:
            state["_optimizer"] = _tensor_to_cpu(state["_optimizer"].state_dict())
        return state

    def __setstate__(self, state):
        saved = state.get("module_")
        if isinstance(saved, dict):
            device = device_for_loading(state["device_"])
            module = MLPModule.from_state(saved).to(device).eval()
            state["module_"], state["device_"] = module, device
            optimizer_state = state.get("_optimizer")
            if optimizer_state is not None:
                state["_flat"] = flatten_parameters(module)
                # The optimizer of the pickled parameters, before they are
                # this estimator's attributes.
                optimizer = new_optimizer(SimpleNamespace(**state))
                optimizer.load_state_dict(optimizer_state)
                state["_optimizer"] = optimizer
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
