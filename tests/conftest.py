import os

import torch
from hypothesis import settings

# The tests fit many tiny networks; on 2 cores torch's thread pool costs more in
# synchronisation than it gains, so one thread makes the suite much faster.
torch.set_num_threads(1)

# Fitting time varies with machine load, so no per-example deadline.
# "ci" runs the property tests in about two minutes on 2 cores with one torch
# thread; HYPOTHESIS_PROFILE=thorough searches ten times harder.
settings.register_profile("ci", max_examples=1200, deadline=None)
settings.register_profile("thorough", max_examples=12_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
