"""LossCurveDisplay: training and validation curves of a fitted network."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from sklearn.base import is_classifier, is_regressor
from sklearn.utils.validation import check_is_fitted


class LossCurveDisplay:
    """Training loss, validation loss and validation score per epoch.

    Training loss falling while validation loss rises is overfitting; this
    display shows it at a glance. It is best created with
    :meth:`from_estimator`. All parameters are stored as attributes.

    A :class:`~skdnn.DNNClassifier` or :class:`~skdnn.DNNRegressor` records
    validation curves only with ``early_stopping=True``. To record them
    without stopping early, set ``n_iter_no_change=np.inf``: the network then
    trains for ``max_iter`` epochs (without a ConvergenceWarning, since that
    is what was asked for), and records the loss and the score (a
    classifier's accuracy, a regressor's R^2) on the held-out
    ``validation_fraction`` after each one::

        DNNClassifier(early_stopping=True, n_iter_no_change=np.inf)

    With ``early_stopping=True`` the fitted network keeps the weights of its
    best epoch, the first with the highest validation score, not those of
    its last; the display marks that epoch.

    Parameters
    ----------
    loss_curve : array-like of shape (n_epochs,)
        Training loss of each epoch (with the L2 penalty).

    validation_loss_curve : array-like of shape (n_epochs,), default=None
        Loss on the validation split after each epoch (without the penalty),
        or None when none was recorded.

    validation_scores : array-like of shape (n_epochs,), default=None
        Score on the validation split after each epoch, or None.

    score_name : str, default=None
        What the score measures, for its legend entry and axis label
        ("validation accuracy"); None gives "validation score".

    best_epoch : int, default=None
        The epoch (counted from 1) whose weights the model kept, marked with a
        vertical line; None marks the last epoch, where training stopped.

    xlabel : str, default="epoch"
        Label of the x-axis.

    estimator_name : str, default=None
        Name of the estimator, used as the legend's title.

    Attributes
    ----------
    lines_ : dict of str to matplotlib Line2D
        One line per recorded curve: "training loss", and "validation loss"
        and "validation score" when recorded.

    marker_ : matplotlib Line2D
        The vertical line at the best or stopping epoch.

    score_ax_ : matplotlib Axes or None
        Second y-axis of the validation score, or None without scores.

    ax_ : matplotlib Axes
        Axes of the losses.

    figure_ : matplotlib Figure
        Figure containing the display.

    See Also
    --------
    NetworkDisplay : The network's neurons and connections on 2-D input.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from skdnn import DNNClassifier
    >>> from skdnn.datasets import make_xor
    >>> from skdnn.inspection import LossCurveDisplay
    >>> X, y = make_xor(n_samples=200, noise=0.2, random_state=0)
    >>> clf = DNNClassifier(hidden_layer_sizes=(32, 32), max_iter=30,
    ...                     early_stopping=True, n_iter_no_change=np.inf,
    ...                     random_state=0).fit(X, y)
    >>> clf.n_iter_, len(clf.validation_loss_curve_)
    (30, 30)
    >>> display = LossCurveDisplay.from_estimator(clf)
    >>> sorted(display.lines_)
    ['training loss', 'validation loss', 'validation score']
    >>> display.score_ax_.get_ylabel()
    'validation accuracy'
    >>> plt.close(display.figure_)
    """

    def __init__(
        self,
        *,
        loss_curve,
        validation_loss_curve=None,
        validation_scores=None,
        score_name=None,
        best_epoch=None,
        xlabel="epoch",
        estimator_name=None,
    ):
        self.loss_curve = loss_curve
        self.validation_loss_curve = validation_loss_curve
        self.validation_scores = validation_scores
        self.score_name = score_name
        self.best_epoch = best_epoch
        self.xlabel = xlabel
        self.estimator_name = estimator_name

    def plot(self, ax=None):
        """Plot the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes to draw the losses on; the validation score goes on a second
            y-axis sharing its x-axis. None creates a new figure.

        Returns
        -------
        display : LossCurveDisplay
            The display, with the artists as attributes.
        """
        import matplotlib.pyplot as plt

        if ax is None:
            # Constrained layout leaves room for the legend above the axes.
            _, ax = plt.subplots(layout="constrained")
        epochs = np.arange(1, len(self.loss_curve) + 1)
        self.lines_ = {}
        (self.lines_["training loss"],) = ax.plot(
            epochs, self.loss_curve, color="C0", label="training loss"
        )
        if self.validation_loss_curve is not None:
            (self.lines_["validation loss"],) = ax.plot(
                epochs, self.validation_loss_curve, color="C1", label="validation loss"
            )
        ax.set_xlabel(self.xlabel)
        ax.set_ylabel("loss")

        self.score_ax_ = None
        if self.validation_scores is not None:
            score = f"validation {self.score_name or 'score'}"
            self.score_ax_ = ax.twinx()
            (self.lines_["validation score"],) = self.score_ax_.plot(
                epochs, self.validation_scores, color="C2", linewidth=1.0, label=score
            )
            self.score_ax_.set_ylabel(score)

        if self.best_epoch is None:
            epoch, label = len(epochs), f"stopped at {self.xlabel} {len(epochs)}"
        else:
            epoch = self.best_epoch
            label = f"best {self.xlabel} {epoch} (weights kept)"
        self.marker_ = ax.axvline(epoch, color="0.4", linestyle="--", label=label)

        # Above the axes: inside, the legend would hide the end of a curve on
        # one of the two y-axes.
        handles = [*self.lines_.values(), self.marker_]
        ax.legend(
            handles=handles,
            labels=[h.get_label() for h in handles],
            title=self.estimator_name,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncols=2,
            frameon=False,
        )
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_estimator(cls, estimator, *, ax=None):
        """Plot the loss curves of a fitted network.

        Parameters
        ----------
        estimator : estimator instance
            A fitted :class:`~skdnn.DNNClassifier` or
            :class:`~skdnn.DNNRegressor`, or any estimator with a
            ``loss_curve_``, such as scikit-learn's MLPClassifier and
            MLPRegressor. Its ``validation_loss_curve_`` and
            ``validation_scores_``, when not None, are drawn too: the
            score is named accuracy for a classifier and R^2 for a regressor,
            what their ``score`` methods return.

        ax : matplotlib Axes, default=None
            Axes to draw on. None creates a new figure.

        Returns
        -------
        display : LossCurveDisplay
            The display, with the artists as attributes.
        """
        check_is_fitted(estimator)
        if not hasattr(estimator, "loss_curve_"):
            raise ValueError(
                f"{type(estimator).__name__} has no loss_curve_: LossCurveDisplay "
                "needs a network trained by epochs, such as a DNNClassifier or "
                "a DNNRegressor."
            )
        scores = getattr(estimator, "validation_scores_", None)
        best_epoch = None
        if scores is not None and len(scores):
            # With early stopping the network keeps the weights of the first
            # epoch with the highest score.
            best_epoch = int(np.argmax(scores)) + 1
        solver = getattr(estimator, "solver", None)
        # The validation score is the estimator's ``score``; R^2 in mathtext.
        score_name = None
        if is_classifier(estimator):
            score_name = "accuracy"
        elif is_regressor(estimator):
            score_name = "$R^2$"
        display = cls(
            loss_curve=estimator.loss_curve_,
            validation_loss_curve=getattr(estimator, "validation_loss_curve_", None),
            validation_scores=scores,
            score_name=score_name,
            best_epoch=best_epoch,
            xlabel="iteration" if solver == "lbfgs" else "epoch",
            estimator_name=type(estimator).__name__,
        )
        return display.plot(ax=ax)
