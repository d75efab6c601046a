import os

import numpy as np
import pytest
import torch
from hypothesis import settings

import skdnn._base

# The Playground's page in a real browser is tox's "browser" environment
# (`tox -e browser`, which .ci/run runs): it needs Chromium and Playwright,
# which the main suite's environments do not install.
collect_ignore = ["browser"]

# The tests fit many tiny networks; on 2 cores torch's thread pool costs more in
# synchronisation than it gains, so one thread makes the suite much faster.
torch.set_num_threads(1)

# Fitting time varies with machine load, so no per-example deadline.
# "ci" runs the property tests in about two minutes on 2 cores with one torch
# thread; HYPOTHESIS_PROFILE=thorough searches ten times harder. "min", for
# tox's environment of the minimum versions, checks that the properties hold
# there with a tenth of the examples: the search for counterexamples is the
# "ci" profile's job, and the code under test is the same.
settings.register_profile("ci", max_examples=1200, deadline=None)
settings.register_profile("min", max_examples=120, deadline=None)
settings.register_profile("thorough", max_examples=12_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def fit_from_the_same_weights(monkeypatch):
    """A function ``fit(ours, theirs, X, y)``: fits the skdnn estimator
    ``ours``, then scikit-learn's MLP ``theirs`` from the initial weights and
    biases ``ours`` drew; returns both."""
    start = []
    real = skdnn._base.init_params

    def recorded(*args, **kwargs):
        start.append(real(*args, **kwargs))
        return start[-1]

    monkeypatch.setattr(skdnn._base, "init_params", recorded)

    def fit(ours, theirs, X, y):
        ours.fit(X, y)
        layers = iter(zip(*start[0], strict=True))
        theirs._init_coef = lambda fan_in, fan_out, dtype: [
            np.array(a) for a in next(layers)
        ]
        return ours, theirs.fit(X, y)

    return fit


def pytest_collection_modifyitems(config, items):
    # One check for the whole run: the "cuda" tests (see pyproject.toml's
    # markers) run wherever torch sees a CUDA GPU and are reported as skipped,
    # with the reason, everywhere else, so the suite passes on any machine.
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        # The marker itself, not item.keywords, which also holds test names
        # and parameter ids such as test_device.py's "cuda".
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)
