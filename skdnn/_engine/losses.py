"""Losses as objects: a link, a per-sample loss and its gradient at the raw output.

Modelled on scikit-learn's ``sklearn/_loss/loss.py``: a network's last layer
gives the *raw* output; the loss's inverse link maps it to a prediction
(probabilities, a mean), its per-sample loss scores that prediction against
the target, and its gradient with respect to the raw output is where
backpropagation starts. Because every loss pairs with its canonical link,
that gradient is ``inverse_link(raw) - target`` for each loss here, computed
without forming the loss.

Every method takes the axis of the outputs as ``dim``, so that the same loss
serves one network's row-major batch ``(n_samples, n_outputs)`` (``dim=1``),
the stacked networks' feature-major ``(n_models, n_outputs, batch)``
(``dim=1``) and an epoch's ``(n_steps, n_models, n_outputs, batch)``
(``dim=2``). Per-sample values keep that axis, with size 1.

A loss is stateless and picklable; :data:`LOSSES` holds one of each by name.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
import scipy.special
import torch
import torch.nn.functional as F

from .._compat import log_softmax_into


class Loss:
    """The interface of a loss; see the module's docstring.

    Attributes
    ----------
    name : str
        The key of :data:`LOSSES`.
    out_activation : str
        The inverse link's name, as ``out_activation_`` reports it.
    index_target : bool
        Whether the target is class indices (int64, one per sample, with
        the outputs' axis of size 1) rather than values, one per output.
    classification : bool
        Whether the loss is a classifier's: its models are scored by
        accuracy (:meth:`hits`), a regressor's by R^2.
    """

    name = None
    out_activation = None
    index_target = False
    classification = False

    def per_sample(self, raw, target, dim):
        """Each sample's loss, summed over its outputs (keeps ``dim``)."""
        raise NotImplementedError

    def gradient(self, raw, target, dim, *, out, scratch=None):
        """d per_sample / d raw, written into ``out`` (a tensor like ``raw``).

        ``scratch`` is a buffer the loss may use, shaped and typed like
        ``target`` (the multiclass loss's -1 per sample); made when None.
        """
        raise NotImplementedError

    def loss_gradient(self, raw, target, dim, *, out, scratch=None):
        """:meth:`per_sample`, returned, and :meth:`gradient`, into ``out``.

        One call where a loss computes both from shared work (the multiclass
        loss's log-softmax), as scikit-learn's ``loss_gradient``.
        """
        per_sample = self.per_sample(raw, target, dim)
        self.gradient(raw, target, dim, out=out, scratch=scratch)
        return per_sample

    def inverse_link(self, raw, dim):
        """The prediction, from the raw output (a Tensor)."""
        raise NotImplementedError

    def inverse_link_numpy(self, raw):
        """The prediction from a row-major ndarray, overwriting it where it can."""
        raise NotImplementedError

    def hits(self, raw, target, dim):
        """Per sample, whether the prediction is right (classification only)."""
        raise NotImplementedError(f"the {self.name} loss has no notion of right")

    def __repr__(self):
        return f"{type(self).__name__}()"

    def __reduce__(self):
        # One instance per name: unpickling gives the registry's own.
        return (loss_by_name, (self.name,))


class MulticlassLogLoss(Loss):
    """Cross-entropy of a softmax output; the target is class indices."""

    name = "multiclass_log_loss"
    out_activation = "softmax"
    index_target = True
    classification = True

    def per_sample(self, raw, target, dim):
        return torch.log_softmax(raw, dim=dim).gather(dim, target).neg_()

    def gradient(self, raw, target, dim, *, out, scratch=None):
        log_softmax_into(raw, dim, out=out)
        return _minus_onehot(out.exp_(), target, dim, scratch)

    def loss_gradient(self, raw, target, dim, *, out, scratch=None):
        # The log-probabilities, once: the loss gathers them, and their exp
        # less the one-hot target is the gradient.
        log_proba = log_softmax_into(raw, dim, out=out)
        per_sample = log_proba.gather(dim, target).neg_()
        _minus_onehot(out.exp_(), target, dim, scratch)
        return per_sample

    def inverse_link(self, raw, dim):
        return torch.softmax(raw, dim=dim)

    def inverse_link_numpy(self, raw):
        return scipy.special.softmax(raw, axis=1)

    def hits(self, raw, target, dim):
        return raw.argmax(dim=dim, keepdim=True) == target


def _minus_onehot(proba, target, dim, scratch):
    # proba - onehot(target), the one-hot subtracted in place; ``scratch``
    # holds the -1 per sample (made when None).
    if scratch is None:
        scratch = torch.full(target.shape, -1.0, dtype=proba.dtype, device=proba.device)
    return proba.scatter_add_(dim, target, scratch)


class MultilabelLogLoss(Loss):
    """Binary cross-entropy of each logistic output, summed over the outputs.

    A binary problem is its one-output case; the target is 0 or 1 per output
    (no other value: the per-sample loss relies on it).
    """

    name = "multilabel_log_loss"
    out_activation = "logistic"
    classification = True

    def per_sample(self, raw, target, dim):
        # An output's loss is softplus(raw) for target 0 and softplus(-raw)
        # for target 1: softplus of the signed logit raw (1 - 2 target),
        # which is a sum of positive terms, exact to rounding. torch's
        # binary_cross_entropy_with_logits subtracts nearly equal terms for
        # target 0: at raw = -30 it was 1.3% off, at -40 it gave 0 for
        # 4.2e-18. Also faster: an epoch of W4's 36 models, 108 against
        # 120 us; one model's, 4.9 against 6.4.
        signed = torch.addcmul(raw, target, raw, value=-2)
        # Above 40, softplus(x) = x + exp(-x) is x to rounding (float64 too).
        loss = F.softplus(signed, threshold=40.0)
        if loss.shape[dim] == 1:
            # A binary problem's one output: its sum is itself, and the sum
            # would be one more pass, with a zeroed temporary, over an
            # epoch's losses (23 of 113 us for a grid search's 36 models).
            return loss
        return loss.sum(dim=dim, keepdim=True)

    def gradient(self, raw, target, dim, *, out, scratch=None):
        return torch.sigmoid(raw, out=out).sub_(target)

    def inverse_link(self, raw, dim):
        return torch.sigmoid(raw)

    def inverse_link_numpy(self, raw):
        return scipy.special.expit(raw, out=raw)

    def hits(self, raw, target, dim):
        # scikit-learn's accuracy of a multilabel prediction: all outputs right.
        return ((raw > 0) == (target > 0.5)).all(dim=dim, keepdim=True)


class HalfSquaredError(Loss):
    """Half the squared error of an identity output, summed over the outputs.

    scikit-learn's ``HalfSquaredError``: its gradient is ``raw - target``.
    """

    name = "squared_error"
    out_activation = "identity"

    def per_sample(self, raw, target, dim):
        return (raw - target).square_().sum(dim=dim, keepdim=True).mul_(0.5)

    def gradient(self, raw, target, dim, *, out, scratch=None):
        return torch.sub(raw, target, out=out)

    def inverse_link(self, raw, dim):
        return raw

    def inverse_link_numpy(self, raw):
        return raw


class HalfPoissonDeviance(Loss):
    """Half the Poisson deviance of a log-link output, summed over the outputs.

    ``exp(raw) - y raw + y log y - y`` per output: scikit-learn's
    ``HalfPoissonLoss`` plus its constant, so that a perfect prediction has
    loss 0. The target is a count or rate, at least 0.
    """

    name = "poisson"
    out_activation = "exp"

    def per_sample(self, raw, target, dim):
        loss = torch.exp(raw) - target * raw + torch.xlogy(target, target) - target
        return loss.sum(dim=dim, keepdim=True)

    def gradient(self, raw, target, dim, *, out, scratch=None):
        return torch.exp(raw, out=out).sub_(target)

    def inverse_link(self, raw, dim):
        return torch.exp(raw)

    def inverse_link_numpy(self, raw):
        return np.exp(raw, out=raw)


LOSSES = {
    loss.name: loss
    for loss in (
        MulticlassLogLoss(),
        MultilabelLogLoss(),
        HalfSquaredError(),
        HalfPoissonDeviance(),
    )
}

# A classifier's output activation names its loss.
_BY_OUT_ACTIVATION = {loss.out_activation: loss for loss in LOSSES.values()}


def loss_by_name(name):
    """The loss of :data:`LOSSES` named ``name``."""
    return LOSSES[name]


def loss_for_output(out_activation):
    """The loss whose inverse link is ``out_activation`` ('softmax', ...)."""
    return _BY_OUT_ACTIVATION[out_activation]
