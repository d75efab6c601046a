"""DNNClassifier: scikit-learn's classifier contract on a PyTorch network."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import copy
import math
import warnings
from numbers import Integral, Real
from types import SimpleNamespace

import numpy as np
import scipy.sparse
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import assert_all_finite, check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._batched import stacked_model
from ._compat import (
    Interval,
    Options,
    StrOptions,
    _check_feature_names,
    _check_n_features,
    _check_partial_fit_first_call,
    _check_sample_weight,
    _fit_context,
)
from ._device import (
    blas_threads,
    check_device,
    device_for_loading,
    n_threads_for,
    resolve_device,
    torch_threads,
)
from ._engine.losses import loss_for_output
from ._engine.trainer import Trainer, uses_numpy_products
from ._network import (
    OUTPUT_PROBA,
    OUTPUT_PROBA_NUMPY,
    MLPModule,
    flatten_parameters,
    init_params,
    is_flattened,
)
from ._training import (
    Workspace,
    as_rows,
    block_rows,
    clipped_batch_size,
    evaluate,
    fit_lbfgs,
    is_plain_fused_adam,
    load_adam_state,
    make_optimizer,
    max_iter_message,
    predict_logits,
    predict_numpy,
    run_epoch,
    to_device,
)

_STOCHASTIC_SOLVERS = ("sgd", "adam")

# Output layer for each kind of target, as in MLPClassifier.
_OUT_ACTIVATION = {
    "binary": "logistic",
    "multiclass": "softmax",
    "multilabel-indicator": "logistic",
}

# Below this learning rate, 'adaptive' SGD stops instead of dividing it again.
_MIN_ADAPTIVE_LEARNING_RATE = 1e-6


def _uses_stochastic_solver(estimator):
    """Whether ``partial_fit`` is available: only for 'sgd' and 'adam'."""
    if estimator.solver not in _STOCHASTIC_SOLVERS:
        raise AttributeError(
            "partial_fit is only available for the stochastic solvers 'sgd' and "
            f"'adam'; this DNNClassifier has solver={estimator.solver!r}."
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


# At most this many dropout mask values per epoch (128 MiB in float64, and a
# quarter of that again for their random bits) for a fit through the
# batched trainer.
_TRAINER_MASK_VALUES = 2**24


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


def _all_finite(tensors):
    """Whether no value of these tensors is NaN or infinite."""
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def _finite_sum(tensor):
    """Whether the sum of a tensor is finite: false when any value is not.

    Also false when the sum of finite values overflows, which takes weights so
    large that training has diverged anyway. Far cheaper than
    ``torch.isfinite(tensor).all()``, which matters once per epoch.
    """
    return math.isfinite(tensor.sum().item())


def _training_snapshot(flat, optimizer=None):
    """A copy of the flat parameters, and of the optimizer's state when given."""
    state = None
    if optimizer is not None:
        state = {
            key: value.clone() if isinstance(value, torch.Tensor) else value
            for key, value in optimizer.state.get(flat, {}).items()
        }
    return flat.detach().clone(), state


def _restore_training_snapshot(flat, optimizer, snapshot):
    """Put back a snapshot's parameters, and its optimizer state if it has one.

    Without one, the optimizer's state is zeroed, as Adam and SGD (without
    dampening) start it: the state after a diverged epoch holds NaN, which
    would spoil every later step.
    """
    params, saved = snapshot
    with torch.no_grad():
        flat.copy_(params)
    if saved is not None and not saved:
        # Copied before the first step: back to no state at all.
        optimizer.state.pop(flat, None)
        return
    # In place: a step function may hold on to the state's tensors.
    for key, value in optimizer.state.get(flat, {}).items():
        if isinstance(value, torch.Tensor):
            if saved is None:
                value.zero_()
            else:
                value.copy_(saved[key])


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


class DNNClassifier(ClassifierMixin, BaseEstimator):
    """Deep neural network classifier, trained with PyTorch.

    A drop-in for :class:`sklearn.neural_network.MLPClassifier`: it takes
    every MLPClassifier parameter with the same name, default and meaning,
    and adds dropout, a choice of device (the GPU when there is one) and
    class weights. It works wherever scikit-learn takes a classifier:
    pipelines, grid searches, cross-validation, clone and pickle.

    Parameters
    ----------
    hidden_layer_sizes : array-like of shape (n_hidden_layers,) or int, \
            default=(100,)
        The ith element is the number of units of the ith hidden layer.
        ``()`` gives no hidden layer: a linear model.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function of the hidden layers.

    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'adam' and 'sgd' are torch's Adam and SGD optimizers on minibatches;
        'lbfgs' is scipy's L-BFGS-B on the full batch, with gradients from
        torch. 'lbfgs' takes no dropout.

    alpha : float, default=0.0001
        Strength of the L2 penalty, ``alpha / 2 * ||W||^2`` divided by the
        batch's total sample weight, as in MLPClassifier.

    batch_size : int or 'auto', default='auto'
        Minibatch size of the stochastic solvers; 'auto' is
        ``min(200, n_samples)``.

    learning_rate : {'constant', 'invscaling', 'adaptive'}, default='constant'
        Learning rate schedule of 'sgd'. 'invscaling' sets it to
        ``learning_rate_init / (t + 1) ** power_t`` after each epoch (``t`` is
        the number of samples seen); 'adaptive' divides it by 5 whenever
        ``n_iter_no_change`` epochs in a row fail to improve by ``tol``.

    learning_rate_init : float, default=0.001
        Initial learning rate of 'sgd' and 'adam'.

    power_t : float, default=0.5
        Exponent of 'invscaling'.

    max_iter : int, default=200
        Maximum number of epochs ('sgd', 'adam') or iterations ('lbfgs').

    shuffle : bool, default=True
        Whether to shuffle the samples at each epoch.

    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling, the validation split and the
        dropout masks. An int gives bit-identical results on the CPU. Neither
        numpy's nor torch's global random generator is read or changed.

    tol : float, default=1e-4
        Tolerance of the stopping criteria (see ``n_iter_no_change``).

    verbose : bool, default=False
        Whether to print one line per epoch: the loss, and the validation
        score when ``early_stopping=True``.

    warm_start : bool, default=False
        Whether ``fit`` continues from the fitted network.

    momentum : float, default=0.9
        Momentum of 'sgd'.

    nesterovs_momentum : bool, default=True
        Whether 'sgd' uses Nesterov's momentum.

    early_stopping : bool, default=False
        Whether to hold out ``validation_fraction`` of the training data and
        stop when its accuracy fails to improve by ``tol`` for
        ``n_iter_no_change`` epochs. The best weights are kept.

    validation_fraction : float, default=0.1
        Fraction of the training data held out when ``early_stopping=True``.

    beta_1 : float, default=0.9
        Decay of Adam's first moment estimates.

    beta_2 : float, default=0.999
        Decay of Adam's second moment estimates.

    epsilon : float, default=1e-8
        Adam's numerical stability term.

    n_iter_no_change : int, default=10
        Number of epochs without an improvement of ``tol`` (in the training
        loss, or in the validation score with ``early_stopping=True``) after
        which training stops.

    max_fun : int, default=15000
        Maximum number of loss evaluations of 'lbfgs'.

    dropout : float or array-like of shape (n_hidden_layers,), default=0.0
        Fraction of each hidden layer's units dropped at random while
        training, one rate for all hidden layers or one per layer, each in
        [0, 1). Kept units are scaled by ``1 / (1 - rate)``, so prediction,
        where dropout is off, needs no rescaling. Rates of 0.2 to 0.5 fight
        overfitting in large networks.

    class_weight : dict, 'balanced' or None, default=None
        Weights of the classes, multiplied into the sample weights: a dict
        ``{label: weight}``, or 'balanced' for weights inversely proportional
        to the class frequencies. Not for multilabel targets.

    device : str or torch.device, default='auto'
        Where the network trains and predicts: 'auto' (CUDA, then Apple MPS,
        then the CPU), 'cpu', 'cuda', 'cuda:N', 'mps' or a torch.device.

    n_threads : int, 'auto' or None, default='auto'
        Number of torch threads used while fitting on the CPU. 'auto' uses one thread
        for small networks, where more threads cost more than they save and
        slow down badly when another process is busy, and torch's current
        setting (by default, all cores) for large ones. An int sets the count
        for the fit; None leaves torch's setting alone. A fit on one thread
        multiplies small matrices with numpy, whose BLAS it then also keeps
        to one thread. Prediction follows the same rule with torch; with
        'auto' or None, a small input is predicted with numpy, whose BLAS
        picks its threads itself, as for scikit-learn's estimators.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.

    loss_ : float or None
        Loss of the last epoch (mean over its batches) or the last L-BFGS
        iteration; None when a new fit stopped (interrupted, or diverged)
        before its first one completed.

    best_loss_ : float or None
        Lowest training loss reached; None when ``early_stopping=True``.

    loss_curve_ : list of float
        Loss of each epoch (or L-BFGS iteration).

    validation_scores_ : list of float or None
        Accuracy on the validation split after each epoch, when
        ``early_stopping=True``; else None.

    validation_loss_curve_ : list of float or None
        Loss (without the penalty) on the validation split after each epoch,
        when ``early_stopping=True``; else None.

    best_validation_score_ : float or None
        Best validation accuracy, when ``early_stopping=True``; else None.

    t_ : int
        Number of training samples seen by the stochastic solvers.

    coefs_ : list of ndarray of shape (fan_in, fan_out)
        Weight matrix of each layer. On the CPU these share memory with
        ``module_``.

    intercepts_ : list of ndarray of shape (fan_out,)
        Bias vector of each layer.

    n_features_in_ : int
        Number of features seen during fit.

    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during fit, when X has string column names.

    n_iter_ : int
        Number of epochs (or L-BFGS iterations) run by the last fit.

    n_layers_ : int
        Number of layers, input and output layers included.

    n_outputs_ : int
        Number of output units.

    out_activation_ : str
        Output activation: 'softmax' for multiclass, 'logistic' for binary
        and multilabel targets.

    module_ : torch.nn.Module
        The trained network; its forward pass returns the output logits.

    device_ : torch.device
        Device the network lives on.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : The numpy network this replaces.

    Notes
    -----
    Weights and biases are initialised as PyTorch initialises linear layers,
    uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``: on the tutorial's XOR
    problem this trains small ReLU networks more reliably than
    MLPClassifier's Glorot initialization. 'sgd' uses torch's momentum
    formulation, which equals MLPClassifier's while the learning rate is
    constant.

    Training stops early and leaves a usable model on Ctrl-C (with a warning;
    ``n_iter_`` counts the completed epochs) and when the loss or the weights
    become infinite or NaN (with a ConvergenceWarning). A diverged fit keeps
    the weights from the start of its epoch of lowest loss (of best
    validation score with ``early_stopping``), or the last L-BFGS iterate of
    finite loss; a diverged ``partial_fit`` leaves the model as it was.
    Samples whose large values overflow a float32 network's arithmetic are
    predicted in float64.

    Examples
    --------
    >>> from sklearn.datasets import make_moons
    >>> from sklearn.model_selection import train_test_split
    >>> from skdnn import DNNClassifier
    >>> X, y = make_moons(n_samples=300, noise=0.2, random_state=0)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> clf = DNNClassifier(hidden_layer_sizes=(16, 16), dropout=0.1,
    ...                     learning_rate_init=0.01, random_state=0)
    >>> clf.fit(X_train, y_train)
    DNNClassifier(dropout=0.1, hidden_layer_sizes=(16, 16), learning_rate_init=0.01,
                  random_state=0)
    >>> clf.predict(X_test[:5])
    array([1, 1, 1, 0, 0])
    >>> clf.predict_proba(X_test[:1])
    array([[0.108, 0.892]])
    >>> clf.score(X_test, y_test)
    1.0
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions({"identity", "logistic", "tanh", "relu"})],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
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
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "device": [str, torch.device],
        "n_threads": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
            None,
        ],
    }

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
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
        dropout=0.0,
        class_weight=None,
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
        self.class_weight = class_weight
        self.device = device
        self.n_threads = n_threads

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to data X and targets y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. float32 data is trained in float32, other data in
            float64 (float32 on Apple MPS, which has no float64).

        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels of any type, or a multilabel indicator matrix.

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples.

        Returns
        -------
        self : DNNClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_uses_stochastic_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Train the network for one epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a multilabel indicator matrix.

        classes : array-like of shape (n_classes,), default=None
            All the classes across calls to partial_fit. Required on the
            first call, optional afterwards.

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples.

        Returns
        -------
        self : DNNClassifier
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

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
            self._fit_lbfgs(fit.X, fit.target, fit.sample_weight)
        else:
            generator = torch.Generator(device=self.device_).manual_seed(fit.torch_seed)
            self._fit_stochastic(
                fit.X,
                fit.target,
                fit.sample_weight,
                fit.validation,
                incremental,
                fit.rng,
                generator,
                self.module_.weights[0].dtype,
            )
        return self

    def _checked_input(self, X, y, sample_weight, incremental, classes, like=None):
        """Check and encode a fit's input and draw its seeds; change nothing.

        Everything a fit does before the model changes, with its random draws
        in its order (the torch seed, the validation split, then, in
        :meth:`_start_fit`, the initial weights): skdnn.model_selection's
        batched searches start their models with it too, so that they draw
        exactly what ``fit`` draws.

        ``like`` is what this method returned for another DNNClassifier's
        first ``fit`` on the same ``X`` and ``y`` without a validation split
        (a batched search's candidates on one fold): the checks of ``X`` and
        ``y`` and the label binarizer, which depend on the data alone, are
        then taken from it; the feature count and names are set as
        ``validate_data`` sets them.

        Returns
        -------
        types.SimpleNamespace
            ``sizes``, ``rates``, ``device``, ``first_pass``, ``X``, ``y``,
            ``target``, ``sample_weight``, ``binarizer``, ``rng``,
            ``torch_seed`` and ``validation``.
        """
        sizes, rates = _check_architecture(self.hidden_layer_sizes, self.dropout)
        check_device(self.device)
        if self.solver == "lbfgs" and any(rates):
            raise ValueError(
                f"dropout={self.dropout!r} needs a stochastic solver ('adam' or "
                "'sgd'): L-BFGS needs a deterministic loss. Use solver='adam' or "
                "dropout=0."
            )
        if incremental and self.early_stopping:
            raise ValueError("partial_fit does not support early_stopping=True.")
        if incremental and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit, which "
                "sees one batch of the class frequencies at a time; pass a dict "
                "of class weights computed on the whole data instead."
            )
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
            if y.ndim == 2 and y.shape[1] == 1:
                y = column_or_1d(y, warn=True)
            check_classification_targets(y)
            binarizer = self._fit_label_binarizer(y, first_pass, incremental, classes)
        else:
            # 0.6 ms of the checks per fit, a fifth of a small network's
            # batched fit in a grid search.
            _check_n_features(self, X, reset=True)
            _check_feature_names(self, X, reset=True)
            X, y, binarizer = like.X, like.y, copy.copy(like.binarizer)
        target = self._encode_targets(binarizer, y)
        sample_weight = self._combined_sample_weight(sample_weight, X, y, binarizer)

        rng = self._random_state_for_fit(incremental)
        torch_seed = int(rng.randint(np.iinfo(np.int32).max))
        validation = None
        if self._validates():
            X, target, sample_weight, validation = self._validation_split(
                X, y, target, sample_weight, rng
            )
        if not first_pass:
            self._check_continuation(sizes)
        return SimpleNamespace(
            sizes=sizes,
            rates=rates,
            device=device,
            first_pass=first_pass,
            X=X,
            y=y,
            target=target,
            sample_weight=sample_weight,
            binarizer=binarizer,
            rng=rng,
            torch_seed=torch_seed,
            validation=validation,
        )

    def _start_fit(self, fit):
        """Set up the model for the fit that ``fit`` (a checked input) describes.

        Every check on the input has passed: from here on the model changes.
        """
        self._label_binarizer = fit.binarizer
        self.classes_ = fit.binarizer.classes_
        if fit.first_pass:
            # Apple's MPS has no float64: the network trains in float32 there.
            dtype = fit.X.dtype if fit.device.type != "mps" else np.dtype(np.float32)
            self._initialize(
                fit.sizes, fit.rates, fit.X.shape[1], fit.target, dtype, fit.rng,
                fit.device,
            )  # fmt: skip
        else:
            self._continue(fit.rates, fit.device)

    def _fit_label_binarizer(self, y, first_pass, incremental, classes):
        if incremental and classes is not None and np.ndim(classes) != 1:
            raise ValueError(
                "classes must be a 1-D array-like of all the class labels; got "
                f"classes={classes!r} of shape {np.shape(classes)}."
            )
        if incremental and _check_partial_fit_first_call(self, classes):
            binarizer = LabelBinarizer().fit(y if y.ndim == 2 else classes)
        elif first_pass and not incremental:
            binarizer = LabelBinarizer().fit(y)
        else:
            binarizer = self._label_binarizer
        multilabel = binarizer.y_type_ == "multilabel-indicator"
        if (y.ndim == 2) != multilabel:
            kinds = ("a 1-D array of labels", "a multilabel indicator matrix")
            raise ValueError(
                f"y is {kinds[y.ndim == 2]}, but the model was fitted on "
                f"{kinds[multilabel]}: partial_fit and warm_start continue a fit "
                "on the same kind of target. Fit another kind with a new "
                "estimator, or with warm_start=False."
            )
        if incremental:
            unseen = np.setdiff1d(unique_labels(y), binarizer.classes_)
            if len(unseen):
                raise ValueError(
                    f"y has classes {unseen.tolist()} that are not in "
                    f"classes={binarizer.classes_.tolist()} given on the first "
                    "call to partial_fit."
                )
        elif not first_pass and set(unique_labels(y)) != set(binarizer.classes_):
            raise ValueError(
                "warm_start can only continue a fit on data with the same "
                f"classes: the model has {binarizer.classes_.tolist()}, y has "
                f"{unique_labels(y).tolist()}."
            )
        if not multilabel and len(binarizer.classes_) < 2:
            raise ValueError(
                "DNNClassifier needs samples of at least 2 classes in the data; "
                f"got 1 class: {binarizer.classes_.tolist()}."
            )
        return binarizer

    @staticmethod
    def _encode_targets(binarizer, y):
        """Class indices for a softmax output, 0/1 columns for logistic ones."""
        if binarizer.y_type_ == "multilabel-indicator":
            return binarizer.transform(y)
        index = np.searchsorted(binarizer.classes_, y).astype(np.int64)
        if _OUT_ACTIVATION[binarizer.y_type_] == "softmax":
            return index
        # Binary: the column LabelBinarizer.transform gives (1 for the second
        # class), without its second pass of target-type checks, which took
        # a third of a small fit's preparation.
        return index[:, None]

    def _combined_sample_weight(self, sample_weight, X, y, binarizer):
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=X.dtype, ensure_non_negative=True
            )
        if self.class_weight is None:
            return sample_weight
        if binarizer.y_type_ == "multilabel-indicator":
            raise ValueError(
                "class_weight is not supported for multilabel targets; use "
                "sample_weight instead."
            )
        classes = binarizer.classes_
        if isinstance(self.class_weight, dict):
            known = classes.tolist()
            unknown = [c for c in self.class_weight if c not in known]
            if unknown:
                raise ValueError(
                    f"class_weight names classes {unknown} that are not among the "
                    f"classes {known}."
                )
            invalid = {
                c: w
                for c, w in self.class_weight.items()
                if not (isinstance(w, Real) and 0 <= w < np.inf)
            }
            if invalid:
                raise ValueError(
                    "class_weight must map classes to finite, non-negative "
                    f"numbers; got {invalid} in class_weight={self.class_weight!r}."
                )
            # Looked up by the model's classes, not those in this y: a
            # partial_fit batch may lack some.
            per_class = np.array([self.class_weight.get(c, 1.0) for c in known])
        else:
            per_class = compute_class_weight("balanced", classes=classes, y=y)
        per_sample = per_class[np.searchsorted(classes, y)].astype(X.dtype)
        return per_sample if sample_weight is None else sample_weight * per_sample

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
        n_outputs = len(self.classes_) if target.ndim == 1 else target.shape[1]
        layer_units = [n_features, *sizes, n_outputs]
        coefs, intercepts = init_params(layer_units, random_state=rng, dtype=dtype)
        module = MLPModule(coefs, intercepts, activation=self.activation, dropout=rates)
        self.module_ = module.to(device).eval()
        self.device_ = device
        self.n_outputs_ = n_outputs
        self.n_layers_ = len(layer_units)
        self.out_activation_ = _OUT_ACTIVATION[self._label_binarizer.y_type_]
        self.n_iter_ = 0
        self.t_ = 0
        # None until an epoch completes (a fit can be interrupted before).
        self.loss_ = None
        self.loss_curve_ = []
        validating = self._validates()
        self.best_loss_ = None if validating else np.inf
        self.validation_scores_ = [] if validating else None
        self.validation_loss_curve_ = [] if validating else None
        self.best_validation_score_ = -np.inf if validating else None
        self._optimizer = None
        self._flat = None
        self._no_improvement_count = 0

    def _check_continuation(self, sizes):
        """Check that warm_start or partial_fit can continue the fitted network."""
        fitted = tuple(W.shape[1] for W in self.module_.weights[:-1])
        if fitted != sizes or self.module_.activation != self.activation:
            raise ValueError(
                f"The fitted network has hidden_layer_sizes={fitted} and "
                f"activation={self.module_.activation!r}; warm_start and "
                f"partial_fit cannot continue it with hidden_layer_sizes={sizes} "
                f"and activation={self.activation!r}. Set warm_start=False to fit "
                "a new network."
            )

    def _continue(self, rates, device):
        """Carry the current settings over to the fitted network."""
        self.module_.dropout = rates
        if device != self.device_:
            self.module_.to(device)
            self.device_ = device
            self._optimizer = None
        if self._validates() and self.validation_scores_ is None:
            self.validation_scores_, self.validation_loss_curve_ = [], []
            self.best_validation_score_, self.best_loss_ = -np.inf, None

    def _fit_lbfgs(self, X, target, sample_weight):
        weights, biases = self.module_.layers()
        params = [*weights, *biases]
        dtype, device = weights[0].dtype, self.device_
        losses = []
        # The last iterate, to go back to if the loss turns non-finite or the
        # fit is interrupted: a copy per iteration, little next to the
        # iteration's passes over the whole data.
        kept = [p.detach().clone() for p in params]

        def record(loss):
            losses.append(float(loss))
            with torch.no_grad():
                for copy, param in zip(kept, params, strict=True):
                    copy.copy_(param)
            if self.verbose:
                print(f"Iteration {len(losses)}, loss = {loss:.8f}")

        threads = n_threads_for(
            self.n_threads, device=device, macs_per_step=X.shape[0] * self._macs()
        )
        result = None
        try:
            with torch_threads(threads):
                result = fit_lbfgs(
                    weights=weights,
                    biases=biases,
                    X=self._rows(X, dtype),
                    target=self._target_tensor(target, dtype),
                    sample_weight=self._weight_tensor(sample_weight, dtype),
                    activation=self.activation,
                    alpha=self.alpha,
                    loss=self._loss,
                    max_iter=self.max_iter,
                    max_fun=self.max_fun,
                    tol=self.tol,
                    callback=record,
                )
        except KeyboardInterrupt:
            warnings.warn(
                f"Training interrupted by user after {len(losses)} complete L-BFGS "
                "iteration(s); the model keeps the weights of the last one.",
                stacklevel=4,
            )
        diverged = result is not None and not (
            math.isfinite(result.fun) and _all_finite(params)
        )
        if result is None or diverged:
            with torch.no_grad():
                for param, copy in zip(params, kept, strict=True):
                    param.copy_(copy)
            self.n_iter_ = len(losses)
            if losses:
                self.loss_ = losses[-1]
        else:
            self.n_iter_ = int(result.nit)
            self.loss_ = float(result.fun)
        self.loss_curve_ = losses or ([] if self.loss_ is None else [self.loss_])
        self.best_loss_ = min(self.loss_curve_, default=np.inf)
        if diverged:
            warnings.warn(
                f"lbfgs stopped after {self.n_iter_} iteration(s): the loss "
                f"({result.fun}) or the weights became infinite or NaN. The model "
                "keeps the last weights with a finite loss (the initial ones after "
                "0 iterations). Scale X (for instance with StandardScaler).",
                ConvergenceWarning,
                stacklevel=4,
            )
        elif result is not None and result.status != 0:
            warnings.warn(
                f"lbfgs failed to converge after {result.nit} iteration(s) "
                f"(status={result.status}): {result.message}. Increase max_iter "
                "or max_fun, or scale the data.",
                ConvergenceWarning,
                stacklevel=4,
            )

    def _fit_stochastic(
        self, X, target, sample_weight, validation, incremental, rng, generator, dtype
    ):
        if validation is not None:
            X_val, t_val, sw_val = validation
            X_val = self._rows(X_val, dtype)
            t_val = self._target_tensor(t_val, dtype)
            sw_val = self._weight_tensor(sw_val, dtype)
        n_samples = X.shape[0]
        batch_size = clipped_batch_size(self.batch_size, n_samples, stacklevel=4)
        if not is_flattened(getattr(self, "_flat", None), self.module_):
            self._flat = flatten_parameters(self.module_)
            self._optimizer = None
        if self._optimizer is None or not incremental:
            self._optimizer = self._new_optimizer()
        weights, biases = self.module_.layers()
        threads = n_threads_for(
            self.n_threads, device=self.device_, macs_per_step=batch_size * self._macs()
        )
        if self.early_stopping:
            self._best_params = [p.detach().clone() for p in self.module_.parameters()]

        self.n_iter_ = 0
        kept = lowest = None
        try:
            # numpy's BLAS keeps to one thread, whose threads would compete
            # with torch's for the cores: the batched trainer multiplies
            # through numpy where torch has one thread.
            with torch_threads(threads), blas_threads(1):
                # Inside the try, where a Ctrl-C is handled: the batched
                # trainer gives the optimizer its (zero) state.
                epoch = self._epoch_runner(
                    X,
                    target,
                    sample_weight,
                    batch_size=batch_size,
                    threads=threads,
                    incremental=incremental,
                    generator=generator,
                    dtype=dtype,
                )
                for _ in range(1 if incremental else self.max_iter):
                    # What a diverging epoch is undone to: one copy per epoch,
                    # and of the optimizer's state for partial_fit alone (fit
                    # makes a new optimizer at each call).
                    kept = _training_snapshot(
                        self._flat, self._optimizer if incremental else None
                    )
                    order = rng.permutation(n_samples) if self.shuffle else None
                    loss = epoch(order)
                    if not (math.isfinite(loss) and _finite_sum(self._flat)):
                        self._undo_divergence(loss, kept, lowest)
                        break
                    if lowest is None or loss < lowest[0]:
                        lowest = (loss, self.n_iter_ + 1, kept)
                    self.n_iter_ += 1
                    self.t_ += n_samples
                    self.loss_ = loss
                    self.loss_curve_.append(loss)
                    message = f"Iteration {self.n_iter_}, loss = {loss:.8f}"
                    if self.early_stopping:
                        self._record_validation(weights, biases, X_val, t_val, sw_val)
                        message += (
                            f", validation score = {self.validation_scores_[-1]:.6f}"
                        )
                    else:
                        self._record_training_loss(loss)
                    if self.verbose:
                        print(message)
                    self._schedule_learning_rate()
                    if self._should_stop():
                        break
                else:
                    # With n_iter_no_change=inf, running all max_iter epochs
                    # is what was asked for (to record whole curves).
                    if not incremental and np.isfinite(self.n_iter_no_change):
                        warnings.warn(
                            max_iter_message(self.max_iter),
                            ConvergenceWarning,
                            stacklevel=4,
                        )
        except KeyboardInterrupt:
            if kept is not None and not _finite_sum(self._flat):
                _restore_training_snapshot(self._flat, self._optimizer, kept)
            # Ctrl-C may have caught the optimizer halfway through a step (its
            # first creates its state): a later partial_fit starts a new one.
            self._optimizer = None
            warnings.warn(
                f"Training interrupted by user after {self.n_iter_} complete "
                "epoch(s); the model keeps the weights it has.",
                stacklevel=4,
            )
        if self.early_stopping:
            with torch.no_grad():
                for param, best in zip(
                    self.module_.parameters(), self._best_params, strict=True
                ):
                    param.copy_(best)
            del self._best_params

    def _epoch_runner(
        self, X, target, sample_weight, *, batch_size, threads, incremental,
        generator, dtype,
    ):  # fmt: skip
        """The function that trains one epoch: ``epoch(order)``, its loss.

        ``order`` is the permutation of the rows (an ndarray) or None. Adam's
        fits of small networks on dense data train through the batched
        trainer, as a batch of one bound to this model's parameters,
        optimizer state and dropout generator: the same draws and steps
        (equal up to rounding), with numpy's products and fewer operations
        per step (W1 0.16 s against 0.26 s, W2 0.36 against 0.45, with the
        loop of _training.run_epoch). Larger networks, whose products run on
        several threads, and everything else train with that loop (W3 took
        3.2 s through the trainer, 2.4 s through it).
        """
        weights, biases = self.module_.layers()
        # The trainer holds a whole epoch's dropout masks; the loop draws
        # them in blocks of 2**20 values, and takes the fits whose masks
        # would need more than _TRAINER_MASK_VALUES.
        mask_values = X.shape[0] * sum(
            b.shape[0]
            for b, p in zip(biases[:-1], self.module_.dropout, strict=True)
            if p
        )
        if (
            not incremental
            and not scipy.sparse.issparse(X)
            and is_plain_fused_adam(self._optimizer)
            and uses_numpy_products(self.device_, threads)
            and mask_values <= _TRAINER_MASK_VALUES
        ):
            checked = SimpleNamespace(
                X=X, target=target, sample_weight=sample_weight,
                rates=self.module_.dropout,
            )  # fmt: skip
            bound = (
                self._flat.detach(),
                self._flat.grad,
                load_adam_state(self._optimizer),
                generator,
            )
            return Trainer(
                [stacked_model(self)], [checked], batch_sizes=[batch_size],
                numpy_products=True, bound=bound,
            ).run_single_epoch  # fmt: skip
        n_weights = sum(W.numel() for W in weights)
        settings = dict(
            weights=weights,
            biases=biases,
            optimizer=self._optimizer,
            X=self._rows(X, dtype),
            target=self._target_tensor(target, dtype),
            sample_weight=self._weight_tensor(sample_weight, dtype),
            batch_size=batch_size,
            activation=self.activation,
            dropout=self.module_.dropout,
            generator=generator,
            alpha=self.alpha,
            loss=self._loss,
            flat_weights=(self._flat.detach()[:n_weights], self._flat.grad[:n_weights]),
            workspace=Workspace(
                weights, batch_size, [p > 0 for p in self.module_.dropout]
            ),
        )

        def epoch(order):
            if order is not None:
                order = to_device(order, self.device_)
            return run_epoch(order=order, **settings).item()

        return epoch

    def _new_optimizer(self):
        """A new torch optimizer of the solver's, over the flat parameter."""
        return make_optimizer(
            [self._flat],
            solver=self.solver,
            learning_rate_init=self.learning_rate_init,
            momentum=self.momentum,
            nesterovs_momentum=self.nesterovs_momentum,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
        )

    def _undo_divergence(self, loss, kept, lowest):
        """Go back to the weights of the epoch of lowest loss, and warn.

        ``kept`` is the snapshot from the start of the diverging epoch;
        ``lowest`` is (loss, epoch, snapshot from its start) or None.
        """
        if self.early_stopping:
            # The weights of the best validation score replace these at the end.
            _restore_training_snapshot(self._flat, self._optimizer, kept)
            what = "the weights of its best validation score"
        elif lowest is None:
            _restore_training_snapshot(self._flat, self._optimizer, kept)
            what = "the weights it had before that epoch"
        else:
            _restore_training_snapshot(self._flat, self._optimizer, lowest[2])
            what = (
                f"the weights it had at the start of epoch {lowest[1]}, the epoch "
                "of lowest loss"
            )
        warnings.warn(
            f"Training diverged in epoch {self.n_iter_ + 1}: the loss ({loss}) "
            f"or the weights became infinite or NaN with solver={self.solver!r} "
            f"and learning_rate_init={self.learning_rate_init!r}. Training "
            f"stopped; the model keeps {what}. Lower learning_rate_init, or "
            "scale X (for instance with StandardScaler).",
            ConvergenceWarning,
            stacklevel=5,
        )

    def _validation_split(self, X, y, target, sample_weight, rng):
        stratify = None
        if y.ndim == 1 and np.unique(y, return_counts=True)[1].min() >= 2:
            stratify = y
        arrays = [X, target] + ([] if sample_weight is None else [sample_weight])
        parts = train_test_split(
            *arrays,
            random_state=rng,
            test_size=self.validation_fraction,
            stratify=stratify,
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

    def _record_validation(self, weights, biases, X_val, t_val, sw_val):
        loss, score = evaluate(
            weights,
            biases,
            X_val,
            t_val,
            sw_val,
            activation=self.activation,
            loss=self._loss,
        )
        self.validation_scores_.append(score)
        self.validation_loss_curve_.append(loss)
        if score < self.best_validation_score_ + self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        if score > self.best_validation_score_:
            self.best_validation_score_ = score
            with torch.no_grad():
                for best, param in zip(
                    self._best_params, self.module_.parameters(), strict=True
                ):
                    best.copy_(param)

    def _record_training_loss(self, loss):
        if loss > self.best_loss_ - self.tol:
            self._no_improvement_count += 1
        else:
            self._no_improvement_count = 0
        self.best_loss_ = min(self.best_loss_, loss)

    def _schedule_learning_rate(self):
        if self.solver == "sgd" and self.learning_rate == "invscaling":
            rate = self.learning_rate_init / (self.t_ + 1) ** self.power_t
            for group in self._optimizer.param_groups:
                group["lr"] = rate

    def _should_stop(self):
        """Stop, or for 'adaptive' SGD divide the learning rate, on a plateau."""
        if self._no_improvement_count <= self.n_iter_no_change:
            return False
        what = "Validation score" if self.early_stopping else "Training loss"
        message = (
            f"{what} did not improve more than tol={self.tol} for "
            f"{self.n_iter_no_change} consecutive epochs."
        )
        group = self._optimizer.param_groups[0]
        if (
            self.solver == "sgd"
            and self.learning_rate == "adaptive"
            and group["lr"] > _MIN_ADAPTIVE_LEARNING_RATE
        ):
            for group in self._optimizer.param_groups:
                group["lr"] = group["lr"] / 5.0
            self._no_improvement_count = 0
            if self.verbose:
                print(f"{message} Setting learning rate to {group['lr']:f}")
            return False
        if self.verbose:
            print(f"{message} Stopping.")
        return True

    def _validates(self):
        """Whether fit holds out a validation split for early stopping."""
        # As in MLPClassifier, 'lbfgs' ignores early_stopping.
        return self.early_stopping and self.solver in _STOCHASTIC_SOLVERS

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
        weights, biases = self.module_.layers()
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
            self._raise_overflow(X[overflowed], len(output))
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
            transform = None
            if proba:
                transform = self._binary_columns(OUTPUT_PROBA_NUMPY, np.concatenate)
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
                transform=self._binary_columns(OUTPUT_PROBA, torch.cat)
                if proba
                else None,
            )

    def _raise_overflow(self, X_bad, n_samples):
        where = (
            f"The network's output is not finite for {X_bad.shape[0]} of the "
            f"{n_samples} samples of X"
        )
        if not _all_finite(self.module_.parameters()):
            raise ValueError(f"{where}: its weights hold infinite or NaN values.")
        weight = max(float(p.detach().abs().max()) for p in self.module_.parameters())
        raise ValueError(
            f"{where}: their values (up to {abs(X_bad).max():.3g} in magnitude) "
            f"with the network's weights (up to {weight:.3g}) overflow float64 "
            "arithmetic. Scale X as for fit (for instance with StandardScaler)."
        )

    def _binary_columns(self, table, concatenate):
        """The output transform, with both columns for a binary target.

        ``table`` and ``concatenate`` are torch's or numpy's.
        """
        transform = table[self.out_activation_]
        if self._label_binarizer.y_type_ != "binary":
            return transform
        return lambda z: transform(concatenate([-z, z], 1))

    def predict(self, X):
        """Predict class labels.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Labels from ``classes_``, or a multilabel indicator matrix.
        """
        check_is_fitted(self)
        logits = self._predict_output(X)
        y_type = self._label_binarizer.y_type_
        if y_type == "multiclass":
            return self.classes_[logits.argmax(axis=1)]
        if y_type == "binary":
            return self.classes_[(logits[:, 0] > 0).astype(np.intp)]
        return self._label_binarizer.inverse_transform((logits > 0).astype(int))

    def predict_proba(self, X):
        """Probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probability of each class, in the order of ``classes_``; for
            multilabel targets, the probability of each label.
        """
        check_is_fitted(self)
        proba = self._predict_output(X, proba=True)
        if self._label_binarizer.y_type_ == "multilabel-indicator":
            # Each label's probability is a sigmoid, which rounds to exactly 0
            # or 1 beyond a logit of about +-37; scikit-learn expects these
            # probabilities strictly inside (0, 1).
            info = np.finfo(proba.dtype)
            np.clip(proba, info.tiny, 1.0 - info.eps, out=proba)
        return proba

    def predict_log_proba(self, X):
        """Logarithm of the probability estimates.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Equivalent to ``log(predict_proba(X))``, in the order of
            ``classes_``.
        """
        proba = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            return np.log(proba, out=proba)

    # ------------------------------------------------ weights as numpy arrays

    @property
    def coefs_(self):
        return [W.detach().cpu().numpy() for W in self.module_.weights]

    @coefs_.setter
    def coefs_(self, values):
        self._assign(self.module_.weights, values, "coefs_")

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
            # Tensors travel on the CPU, so a model fitted on a GPU loads on
            # a machine without one.
            state["module_"] = {
                "coefs": [W.detach().cpu() for W in module.weights],
                "intercepts": [b.detach().cpu() for b in module.biases],
                "activation": module.activation,
                "dropout": module.dropout,
            }
            state["device_"] = str(state["device_"])
        # The flat buffer aliases module_'s parameters; it is rebuilt on load.
        state.pop("_flat", None)
        if state.get("_optimizer") is not None:
            state["_optimizer"] = _tensor_to_cpu(state["_optimizer"].state_dict())
        return state

    def __setstate__(self, state):
        saved = state.get("module_")
        if isinstance(saved, dict):
            device = device_for_loading(state["device_"])
            module = MLPModule(
                saved["coefs"],
                saved["intercepts"],
                activation=saved["activation"],
                dropout=saved["dropout"],
            )
            state["module_"] = module.to(device).eval()
            state["device_"] = device
            optimizer_state = state.get("_optimizer")
            if optimizer_state is not None:
                state["_flat"] = flatten_parameters(module)
                optimizer = make_optimizer(
                    [state["_flat"]],
                    solver=state["solver"],
                    learning_rate_init=state["learning_rate_init"],
                    momentum=state["momentum"],
                    nesterovs_momentum=state["nesterovs_momentum"],
                    beta_1=state["beta_1"],
                    beta_2=state["beta_2"],
                    epsilon=state["epsilon"],
                )
                optimizer.load_state_dict(optimizer_state)
                state["_optimizer"] = optimizer
        super().__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags
