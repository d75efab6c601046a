"""DNNRegressor: scikit-learn's regressor contract on a PyTorch network."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import torch
from sklearn.base import RegressorMixin
from sklearn.utils import assert_all_finite
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._base import BaseDNN, _uses_stochastic_solver
from ._compat import StrOptions, _fit_context
from ._defaults import TUNED_REGRESSION, resolved
from ._engine.losses import LOSSES

# The output activation (the inverse link) of each loss, as MLPRegressor's.
_OUT_ACTIVATION = {"squared_error": "identity", "poisson": "exp"}


class DNNRegressor(RegressorMixin, BaseDNN):
    """Deep neural network regressor, trained with PyTorch.

    A drop-in for :class:`sklearn.neural_network.MLPRegressor`: it takes
    every MLPRegressor parameter with the same name and meaning, and adds
    dropout, a learnable input scale, restarts and a choice of device (the
    GPU when there is one). It works wherever scikit-learn takes a
    regressor: pipelines, ``TransformedTargetRegressor``, grid searches,
    cross-validation, clone and pickle.

    Its defaults train a more accurate network than MLPRegressor's:
    ``hidden_layer_sizes='auto'`` is three hidden layers of 128 units (with
    the default solver, 'adam'), and the parameters left at ``'auto'`` then
    take the values measured best with it (``dropout=0.15``,
    ``input_scaling=24``, ``alpha=1e-3``, ``batch_size=128``,
    ``early_stopping=True``, ``target_scaling=True``). On
    ``benchmarks/quality.py``'s 9 regression sets (after a StandardScaler,
    with the target standardized, 5-fold) its mean test R^2 is 0.833,
    against 0.793 for MLPRegressor's defaults, 0.790 for
    HistGradientBoostingRegressor and 0.835 for pytabkit's RealMLP-TD, and
    no set scores more than 0.01 below MLPRegressor's; see the Accuracy page
    of the documentation. With an architecture of your own, the ``'auto'``
    parameters take MLPRegressor's values, so that
    ``DNNRegressor(**MLPRegressor().get_params())`` trains MLPRegressor's
    network.

    Parameters
    ----------
    loss : {'squared_error', 'poisson'}, default='squared_error'
        The loss minimised: half the squared error of an identity output,
        or half the Poisson deviance of an exponential output (a log link),
        which needs ``y >= 0`` and predicts ``exp`` of the network's output.
        Each is summed over the outputs of a multi-output target (its
        gradient is MLPRegressor's; MLPRegressor reports the squared error
        averaged over the outputs).

    hidden_layer_sizes : array-like of shape (n_hidden_layers,), int or \
            'auto', default='auto'
        The ith element is the number of units of the ith hidden layer.
        ``()`` gives no hidden layer: a linear model. 'auto' is skdnn's
        default network, ``(128, 128, 128)``, trained with the tuned values
        of ``dropout``, ``input_scaling``, ``alpha``, ``batch_size``,
        ``early_stopping`` and ``target_scaling`` where these are 'auto';
        with 'sgd' or 'lbfgs', for which those values were not measured, it
        is MLPRegressor's ``(100,)`` with MLPRegressor's values. Changed
        from MLPRegressor's ``(100,)``, as for DNNClassifier: with its tuned
        values it lifts make_regression with 100 features from 0.749 to
        0.930 test R^2 and the Playground's multi-Gaussian from 0.347 to
        0.462.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function of the hidden layers.

    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'adam' and 'sgd' are torch's Adam and SGD optimizers on minibatches;
        'lbfgs' is scipy's L-BFGS-B on the full batch, with gradients from
        torch. 'lbfgs' takes no dropout.

    alpha : float or 'auto', default='auto'
        Strength of the L2 penalty, ``alpha / 2 * ||W||^2`` divided by the
        batch's total sample weight, as in MLPRegressor. 'auto' is 1e-3 for
        ``hidden_layer_sizes='auto'`` and MLPRegressor's 1e-4 otherwise
        (1e-2 moved the regression sets' mean by 0.001 to 0.002, within
        noise).

    batch_size : int or 'auto', default='auto'
        Minibatch size of the stochastic solvers; 'auto' is 128 for
        ``hidden_layer_sizes='auto'`` (with early stopping, the regression
        sets' mean R^2 0.867 against 0.859 with 64 and diabetes 0.482
        against 0.435) and MLPRegressor's ``min(200, n_samples)`` otherwise.

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

    early_stopping : bool or 'auto', default='auto'
        Whether to hold out ``validation_fraction`` of the training data and
        stop when its R^2 (the ``score``, not the loss, as in MLPRegressor)
        fails to improve by ``tol`` for ``n_iter_no_change`` epochs. The
        best weights are kept. 'auto' is True for
        ``hidden_layer_sizes='auto'`` (without it the default network
        overfits small sets: diabetes scores 0.283 against MLPRegressor's
        0.456, the mean of 7 sets 0.835 against 0.859) and MLPRegressor's
        False otherwise; 'auto' trains without it where the validation
        split would hold fewer than 10 samples (an R^2 of fewer moves with
        the noise of a sample or two), and in partial_fit, which never stops
        early. Changed from MLPRegressor's False.

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

    dropout : float, array-like of shape (n_hidden_layers,) or 'auto', \
            default='auto'
        Fraction of each hidden layer's units dropped at random while
        training, one rate for all hidden layers or one per layer, each in
        [0, 1). Kept units are scaled by ``1 / (1 - rate)``, so prediction,
        where dropout is off, needs no rescaling. 'auto' is 0.15 for
        ``hidden_layer_sizes='auto'`` with 'adam' (without it the regression
        sets' mean falls from 0.835 to 0.813 without early stopping; 0.3
        with early stopping cost friedman1 0.01), and 0 otherwise, as
        MLPRegressor has none.

    n_init : int or 'auto', default='auto'
        Number of networks a fit trains, each from its own initial weights,
        as one batch: the same data order, dropout draws and stopping rules
        for each. The fit keeps the one of lowest training loss in its last
        epoch, or of best validation score with ``early_stopping``. The
        first is the network ``n_init=1`` trains, so more starts never end
        at a higher training loss. 'auto' trains 6 for a network whose hidden
        layers all have fewer than 32 units, fitted with 'adam' or 'sgd' on
        dense input, and 1 otherwise: a few units can all start badly
        placed (see DNNClassifier for the measurements). partial_fit and
        warm_start's continued fits train one network; 'lbfgs' takes 1 or
        'auto'. ``n_init=1`` trains
        MLPRegressor's single network.

    input_scaling : float or 'auto', default='auto'
        With a positive value, the network multiplies each input feature by
        a scale of its own, learned with the weights, before the first
        layer: RealMLP's diagonal scaling layer, which lets training damp
        uninformative features and amplify informative ones. The scales
        start at 1 and learn ``input_scaling`` times as fast as the weights
        under 'adam' (their parameter is ``scale / input_scaling``; under
        'sgd', ``input_scaling**2`` times). ``coefs_[0]`` holds the first
        layer's weights times the scales, so prediction and ``coefs_`` need
        nothing else. 0 trains no scale: MLPRegressor's network. 'auto' is
        24 for ``hidden_layer_sizes='auto'`` (measured with DNNClassifier,
        where it lifts the mean test accuracy of 15 sets from 0.899 to
        0.909), and 0 otherwise.

    target_scaling : bool or 'auto', default='auto'
        Whether the network trains on a scaled target: with the squared
        error, y less its mean, divided by its standard deviation (each
        output's, from the first fit's y: warm_start and partial_fit keep
        them); with the Poisson deviance, y divided by its mean. Predictions,
        ``coefs_`` and ``intercepts_`` (the scaling folded into the last
        layer) are in the units of y; ``module_``'s output, ``loss_`` and
        ``loss_curve_`` are on the scaled target. A network starts with
        outputs of order 1, and with patience for 10 epochs early stopping
        gives up on a target far from 0 before its output gets there: on
        scikit-learn's check data (mean 4.4), the default network scores a
        training R^2 of -0.11 without scaling and 0.80 with it. 'auto' is
        True for ``hidden_layer_sizes='auto'`` and MLPRegressor's False (no
        scaling) otherwise; :class:`~sklearn.compose.TransformedTargetRegressor`
        does the same from outside, for any network.

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
    loss_ : float or None
        Loss of the last epoch (mean over its batches, penalty included) or
        the last L-BFGS iteration; None when a new fit stopped (interrupted,
        or diverged) before its first one completed.

    best_loss_ : float or None
        Lowest training loss reached; None when ``early_stopping=True``.

    loss_curve_ : list of float
        Loss of each epoch (or L-BFGS iteration).

    validation_scores_ : list of float or None
        The coefficient of determination R^2 (``score``) on the validation
        split after each epoch, when ``early_stopping=True``; else None.
        Early stopping follows this score, as MLPRegressor's does, not the
        loss.

    validation_loss_curve_ : list of float or None
        Loss (without the penalty) on the validation split after each epoch,
        when ``early_stopping=True``; else None.

    best_validation_score_ : float or None
        Best validation R^2, when ``early_stopping=True``; else None.

    t_ : int
        Number of training samples seen by the stochastic solvers.

    coefs_ : list of ndarray of shape (fan_in, fan_out)
        Weight matrix of each layer.

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
        Number of outputs: 1 for a 1-D target, else its number of columns.

    out_activation_ : str
        Output activation: 'identity' for the squared error, 'exp' for the
        Poisson deviance.

    module_ : torch.nn.Module
        The trained network; its forward pass returns the raw output, before
        the output activation, on the scaled target with
        ``target_scaling``.

    device_ : torch.device
        Device the network lives on.

    See Also
    --------
    sklearn.neural_network.MLPRegressor : The numpy network this replaces.
    DNNClassifier : The classifier, with the same parameters.

    Notes
    -----
    A network learns best when its inputs and its target are of order 1:
    scale X (for instance with StandardScaler) and, for the squared error,
    the target too, with
    :class:`~sklearn.compose.TransformedTargetRegressor`.

    Training stops early and leaves a usable model on Ctrl-C (with a warning;
    ``n_iter_`` counts the completed epochs) and when the loss or the weights
    become infinite or NaN (with a ConvergenceWarning), as DNNClassifier's.

    Examples
    --------
    >>> from sklearn.compose import TransformedTargetRegressor
    >>> from sklearn.datasets import make_friedman1
    >>> from sklearn.model_selection import train_test_split
    >>> from sklearn.preprocessing import StandardScaler
    >>> from skdnn import DNNRegressor
    >>> X, y = make_friedman1(n_samples=500, noise=0.5, random_state=0)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    >>> reg = DNNRegressor(hidden_layer_sizes=(32, 32), max_iter=300, random_state=0)
    >>> model = TransformedTargetRegressor(reg, transformer=StandardScaler())
    >>> model.fit(X_train, y_train).predict(X_test[:3]).round(1)
    array([13.9, 22.2,  4.6])
    >>> y_test[:3].round(1)
    array([13.5, 22. ,  2.7])
    >>> round(model.score(X_test, y_test), 2)
    0.91
    """

    _parameter_constraints: dict = {
        **BaseDNN._parameter_constraints,
        "loss": [StrOptions(set(_OUT_ACTIVATION))],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "target_scaling": ["boolean", StrOptions({"auto"})],
    }
    # The values of the parameters left at 'auto' with the default network.
    _tuned_defaults = TUNED_REGRESSION

    def __init__(
        self,
        loss="squared_error",
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
        early_stopping="auto",
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dropout="auto",
        n_init="auto",
        input_scaling="auto",
        target_scaling="auto",
        device="auto",
        n_threads="auto",
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            dropout=dropout,
            n_init=n_init,
            input_scaling=input_scaling,
            device=device,
            n_threads=n_threads,
        )
        self.loss, self.target_scaling = loss, target_scaling

    # ------------------------------------------------------------------ fit

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the network to data X and targets y.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. float32 data is trained in float32, other data in
            float64 (float32 on Apple MPS, which has no float64).

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values, finite (and at least 0 with ``loss='poisson'``).

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples.

        Returns
        -------
        self : DNNRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_uses_stochastic_solver)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, sample_weight=None):
        """Train the network for one epoch over the given data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.

        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Target values, with as many outputs as on the first call.

        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples.

        Returns
        -------
        self : DNNRegressor
            The updated estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    # ------------------------------------------------- what is a regressor's

    def _check_targets(self, y, *, first_pass, incremental, classes):
        """Check the target values; return them (float, 1-D or 2-D), and
        the target's scaling: a new fit's, or the fitted one's."""
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.dtype.kind not in "biuf":
            try:
                y = y.astype(np.float64)
            except (TypeError, ValueError):
                raise ValueError(
                    f"DNNRegressor needs numeric target values; got y of dtype "
                    f"{y.dtype} (for instance {y.ravel()[:3].tolist()}). For "
                    "labels, use DNNClassifier."
                ) from None
            assert_all_finite(y, input_name="y", estimator_name="DNNRegressor")
        if y.ndim == 2 and y.shape[1] == 0:
            raise ValueError("y has 0 output columns; it needs at least one.")
        self._check_target_values(y)
        if not first_pass:
            outputs = 1 if y.ndim == 1 else y.shape[1]
            if outputs != self.n_outputs_:
                call = "partial_fit" if incremental else "warm_start"
                raise ValueError(
                    f"y has {outputs} output(s), but the network was fitted with "
                    f"{self.n_outputs_}: {call} continues a fit on targets of the "
                    "same shape. Fit another shape with a new estimator, or with "
                    "warm_start=False."
                )
            return y, self._y_scaler
        return y, self._target_scaler(y)

    def _encoder_for_reuse(self, y, encoder):
        self._check_target_values(y)
        return self._target_scaler(y)

    def _target_scaler(self, y):
        """What the network's target is divided by, and less first, per
        output: ``(shift, scale)``, or None without target scaling.

        The squared error's target is standardized (a constant output keeps
        scale 1, as in StandardScaler); the Poisson target, which must stay
        at least 0, is divided by its mean (where it is positive).
        """
        if not resolved(self, "target_scaling"):
            return None
        values = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if self.loss == "poisson":
            mean = values.mean(axis=0)
            return np.zeros_like(mean), np.where(mean > 0, mean, 1.0)
        std = values.std(axis=0)
        return values.mean(axis=0), np.where(std > 0, std, 1.0)

    def _check_target_values(self, y):
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(
                f"loss='poisson' needs target values >= 0 (counts or rates); y "
                f"has {int((y < 0).sum())} negative value(s), down to "
                f"{y.min():.6g}. Use loss='squared_error' for such a target."
            )

    def _check_fit_params(self, incremental):
        checked = super()._check_fit_params(incremental)
        if hasattr(self, "module_") and (self.warm_start or incremental):
            fitted = self.out_activation_
            if fitted != _OUT_ACTIVATION[self.loss]:
                raise ValueError(
                    f"The network was fitted with the {fitted!r} output of "
                    f"another loss; warm_start and partial_fit cannot continue "
                    f"it with loss={self.loss!r}. Set warm_start=False to fit a "
                    "new network."
                )
        return checked

    def _set_encoder(self, encoder):
        # The target's scaling, or None: the network trains on y as given.
        self._y_scaler = encoder

    def _output_layer(self, target):
        """One output unit per target column, with the loss's inverse link."""
        return target.shape[1], _OUT_ACTIVATION[self.loss]

    @staticmethod
    def _encode_targets(encoder, y):
        """The target as a float matrix, one column per output, scaled."""
        target = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
        if encoder is None:
            return target
        shift, scale = encoder
        return (target - shift) / scale

    def _output_transform(self, *, numpy):
        """The loss's inverse link (numpy's or torch's) on the raw output,
        then the target's scaling undone."""
        loss = LOSSES[self.loss]
        link = loss.inverse_link_numpy if numpy else (lambda z: loss.inverse_link(z, 1))
        scaler = self._y_scaler
        if scaler is None:
            return link

        def transform(z):
            shift, scale = scaler
            if not numpy:
                shift, scale = (
                    torch.as_tensor(a, dtype=z.dtype, device=z.device)
                    for a in (shift, scale)
                )
            else:
                shift, scale = shift.astype(z.dtype), scale.astype(z.dtype)
            return link(z) * scale + shift

        return transform

    # ------------------------------------------ weights, the scaling folded

    def _folded_last_layer(self, W, b):
        """The last layer's weights and biases with the target's scaling
        folded in: the network's output in the units of y."""
        shift, scale = self._y_scaler
        if self.loss == "poisson":
            # exp(z) * scale = exp(z + log(scale)).
            return W, b + np.log(scale).astype(b.dtype)
        scale = scale.astype(W.dtype)
        return W * scale, b * scale + shift.astype(b.dtype)

    @property
    def coefs_(self):
        coefs = BaseDNN.coefs_.fget(self)
        if self._y_scaler is not None:
            b = self.module_.biases[-1].detach().cpu().numpy()
            coefs[-1] = self._folded_last_layer(coefs[-1], b)[0]
        return coefs

    @coefs_.setter
    def coefs_(self, values):
        self._fold_target_scaling()
        BaseDNN.coefs_.fset(self, values)

    @property
    def intercepts_(self):
        intercepts = BaseDNN.intercepts_.fget(self)
        if self._y_scaler is not None:
            W = self.module_.weights[-1].detach().cpu().numpy()
            intercepts[-1] = self._folded_last_layer(W, intercepts[-1])[1]
        return intercepts

    @intercepts_.setter
    def intercepts_(self, values):
        self._fold_target_scaling()
        BaseDNN.intercepts_.fset(self, values)

    def _fold_target_scaling(self):
        # Weights assigned are in the units of y, as coefs_ and intercepts_
        # give them: the scaling moves into the network first.
        if self._y_scaler is None:
            return
        W, b = self.module_.weights[-1], self.module_.biases[-1]
        folded = self._folded_last_layer(
            W.detach().cpu().numpy(), b.detach().cpu().numpy()
        )
        with torch.no_grad():
            for param, value in zip((W, b), folded, strict=True):
                param.copy_(torch.as_tensor(value))
        self._y_scaler = None

    # -------------------------------------------------------------- predict

    def predict(self, X):
        """Predict target values.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The input samples.

        Returns
        -------
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predicted values: the network's output through the output
            activation (its exponential with ``loss='poisson'``).
        """
        check_is_fitted(self)
        y = self._predict_output(X, proba=True)
        return y.ravel() if y.shape[1] == 1 else y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        # As PoissonRegressor's: scikit-learn's checks then give y >= 0.
        tags.target_tags.positive_only = self.loss == "poisson"
        return tags
