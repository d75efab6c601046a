"""n_init: how many networks a fit trains, and the copies that train them.

A fit with restarts trains its estimator's network and n_init - 1 others of
the same architecture, each from its own initial weights, in one batch
(``_fitting.fit_restarts``), and keeps the one that fitted best.
"""

import copy
from types import SimpleNamespace

import numpy as np
import scipy.sparse

from ._fitting import _TRAINER_MASK_VALUES

# n_init='auto': restarts of a narrow network's fit (see n_restarts).
AUTO_RESTARTS = 6
NARROW_UNITS = 32


def check_n_init(estimator):
    """Refuse several starts with L-BFGS, before any work."""
    if estimator.solver == "lbfgs" and estimator.n_init not in ("auto", 1):
        raise ValueError(
            f"n_init={estimator.n_init!r} needs a stochastic solver ('adam' or "
            "'sgd'), whose restarts train as one batch. Use n_init=1 or "
            "'auto' with solver='lbfgs'."
        )


def n_restarts(estimator, fit):
    """How many networks this fit trains, each from its own initial weights.

    'auto': ``AUTO_RESTARTS`` for a first fit of a narrow network (every
    hidden layer under ``NARROW_UNITS`` units) with 'adam' or 'sgd' on
    dense input whose stacked dropout masks fit one trainer, 1 otherwise.
    A few units can all start badly placed (on the tutorial's XOR, 1 in 5
    initial weights of a (6, 4) network end below 0.93 accuracy), and a
    narrow network's steps cost little more stacked six times (the
    tutorial's fit takes 1.19 times as long).
    partial_fit and warm_start's continued fits train one network.
    """
    if fit.incremental or estimator.solver == "lbfgs":
        return 1
    if estimator.n_init != "auto":
        return estimator.n_init
    masked = sum(w for w, p in zip(fit.sizes, fit.rates, strict=True) if p)
    stackable = (
        not scipy.sparse.issparse(fit.X)
        and AUTO_RESTARTS * masked * fit.X.shape[0] <= _TRAINER_MASK_VALUES
    )
    # Without a hidden layer the loss is convex: one start is enough.
    if stackable and fit.sizes and max(fit.sizes) < NARROW_UNITS:
        return AUTO_RESTARTS
    return 1


def restart_twins(estimator, fit, dtype):
    """The fit's restarts after the first, each a copy of this estimator
    with its own initial weights, and what training reads of it: the
    fit's checked input, with a copy of its RandomState, so that every
    restart shuffles as the first one does.

    Restart k draws its weights from a RandomState of its own, seeded by
    the fit's torch seed and k: the fit's RandomState draws what a fit of
    one network draws, so the first restart is that fit, and n_init can
    only lower the training loss a fit ends with.
    """
    twins = []
    for k in range(1, n_restarts(estimator, fit)):
        seed = np.random.SeedSequence([fit.torch_seed, k]).generate_state(4)
        twin = copy.copy(estimator)
        twin._initialize(
            fit.sizes, fit.rates, fit.X.shape[1], fit.target, dtype,
            np.random.RandomState(seed), fit.device,
        )  # fmt: skip
        twins.append(twin)
    return [
        (twin, SimpleNamespace(**{**vars(fit), "rng": copy.deepcopy(fit.rng),
                                  "restarts": []}))
        for twin in twins
    ]  # fmt: skip
