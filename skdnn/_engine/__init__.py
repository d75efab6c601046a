"""skdnn's training engine: networks, losses, optimizers and the epoch loop.

Private. Nothing here imports an estimator module: the estimators and the
batched searches call into the engine, never the other way round, so that a
capability built here (a loss, an optimizer, a stopping rule) serves every
estimator and every search at once.
"""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause
