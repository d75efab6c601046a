"""DNNRegressor: scikit-learn's regressor contract on a PyTorch network."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._base import BaseDNN, _uses_stochastic_solver
from ._compat import StrOptions, _fit_context
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
        of ``dropout``, ``input_scaling``, ``alpha`` and ``batch_size`` where
        these are 'auto'; with 'sgd' or 'lbfgs', for which those values were
        not measured, it is MLPRegressor's ``(100,)`` with MLPRegressor's
        values. Changed from MLPRegressor's ``(100,)``: three
        layers of 128 lift the spiral and the checkerboard of
        ``benchmarks/quality.py`` from 0.62 and 0.65 test accuracy to 0.96
        and 0.95, and the mean over its 15 sets from 0.845 to 0.890 alone.

    activation : {'identity', 'logistic', 'tanh', 'relu'}, default='relu'
        Activation function of the hidden layers.

    solver : {'lbfgs', 'sgd', 'adam'}, default='adam'
        'adam' and 'sgd' are torch's Adam and SGD optimizers on minibatches;
        'lbfgs' is scipy's L-BFGS-B on the full batch, with gradients from
        torch. 'lbfgs' takes no dropout.

    alpha : float or 'auto', default='auto'
        Strength of the L2 penalty, ``alpha / 2 * ||W||^2`` divided by the
        batch's total sample weight, as in MLPRegressor. 'auto' is 1e-3 for
        ``hidden_layer_sizes='auto'`` (with 1e-4, digits ends 0.006 below
        MLPRegressor's 0.977; with 1e-3, 0.002) and MLPRegressor's 1e-4
        otherwise.

    batch_size : int or 'auto', default='auto'
        Minibatch size of the stochastic solvers; 'auto' is 64 for
        ``hidden_layer_sizes='auto'`` (0.899 against 0.890 at the 15 sets'
        mean with 200) and MLPRegressor's ``min(200, n_samples)`` otherwise.

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

    dropout : float, array-like of shape (n_hidden_layers,) or 'auto', \
            default='auto'
        Fraction of each hidden layer's units dropped at random while
        training, one rate for all hidden layers or one per layer, each in
        [0, 1). Kept units are scaled by ``1 / (1 - rate)``, so prediction,
        where dropout is off, needs no rescaling. Rates of 0.2 to 0.5 fight
        overfitting in large networks. 'auto' is 0.15 for
        ``hidden_layer_sizes='auto'`` (the 10-class set
        of ``benchmarks/quality.py`` gains 0.09 with it, 0.3 loses
        elsewhere) with 'adam', and 0 otherwise, as MLPRegressor has none.

    n_init : int or 'auto', default='auto'
        Number of networks a fit trains, each from its own initial weights,
        as one batch: the same data order, dropout draws and stopping rules
        for each. The fit keeps the one of lowest training loss in its last
        epoch, or of best validation score with ``early_stopping``. The
        first is the network ``n_init=1`` trains, so more starts never end
        at a higher training loss. 'auto' trains 6 for a network whose hidden
        layers all have fewer than 32 units, fitted with 'adam' or 'sgd' on
        dense input, and 1 otherwise: a few units can all start badly
        placed. On the tutorial's XOR (1,000 points, (6, 4), ReLU, Adam at
        1e-3, 100 epochs, batch 32), 20 data draws x random_state 0..9 end
        below 0.93 test accuracy 39 times in 200 with one network, median
        0.972, and never with 6 (median 0.988, lowest 0.944), at 1.19 times
        the fit time. partial_fit and warm_start's continued fits train one
        network; 'lbfgs' takes 1 or 'auto'. ``n_init=1`` trains
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
        24 for ``hidden_layer_sizes='auto'`` (on ``benchmarks/quality.py``
        it lifts make_classification with 20 and 200 features from 0.771
        and 0.732 to 0.823 and 0.781, and the mean over 15 sets from 0.899
        to 0.909; 12 gave 0.905, 48 cost breast_cancer 0.01), and 0
        otherwise.

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
        the output activation.

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
    }

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
        self.loss = loss

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
        """Check the target values; return them (float, 1-D or 2-D), and no
        encoder."""
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
            if not np.isfinite(y).all():
                raise ValueError("Input y contains NaN or infinity.")
        if y.ndim == 2 and y.shape[1] == 0:
            raise ValueError("y has 0 output columns; it needs at least one.")
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(
                f"loss='poisson' needs target values >= 0 (counts or rates); y "
                f"has {int((y < 0).sum())} negative value(s), down to "
                f"{y.min():.6g}. Use loss='squared_error' for such a target."
            )
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
        return y, None

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
        # A regressor's targets need no encoder: they are trained as given.
        pass

    def _output_layer(self, target):
        """One output unit per target column, with the loss's inverse link."""
        return target.shape[1], _OUT_ACTIVATION[self.loss]

    @staticmethod
    def _encode_targets(encoder, y):
        """The target as a float matrix, one column per output."""
        return np.asarray(y, dtype=np.float64).reshape(len(y), -1)

    def _output_transform(self, *, numpy):
        """The loss's inverse link (numpy's or torch's) on the raw output."""
        loss = LOSSES[self.loss]
        if numpy:
            return loss.inverse_link_numpy
        return lambda z: loss.inverse_link(z, 1)

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
