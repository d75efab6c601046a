"""
==============================================
Grid searches and out-of-core training on Dask
==============================================

scikit-learn runs the fits of a grid search or a cross-validation through
joblib, and joblib's 'dask' backend sends them to a `Dask
<https://docs.dask.org>`_ cluster. Here a ``LocalCluster`` of two workers on
this machine stands in for a real cluster: the code is the same with a
cluster of many machines. Then :class:`~skdnn.DNNClassifier` learns
from a Dask array block by block with ``partial_fit``, so that no process
ever holds all the data, first through dask-ml's ``Incremental`` wrapper and
then with a plain loop over the blocks.

See :doc:`/user_guide/distributed` for Ray, real clusters and threads.
"""

# %%
# A cluster
# ---------
# Two workers with one thread each, and no dashboard. ``Client`` connects to
# the cluster and becomes the default for every Dask computation that
# follows.
#
# The workers here are threads of this process (``processes=False``), so
# that the example runs as it is, cell by cell or as a script. Worker
# processes, ``LocalCluster``'s default, each import the script that
# started them, so a script that starts them must do so under
# ``if __name__ == "__main__":``, as in :doc:`/user_guide/distributed`.
import dask
import dask.array as da
import joblib
import matplotlib.pyplot as plt
import numpy as np
from dask_ml.wrappers import Incremental
from distributed import Client, LocalCluster
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skdnn import DNNClassifier
from skdnn.datasets import make_xor

cluster = LocalCluster(
    n_workers=2,
    threads_per_worker=1,
    processes=False,
    dashboard_address=None,
)
client = Client(cluster)
print(f"{len(client.scheduler_info()['workers'])} workers")

# %%
# A grid search on the cluster
# ----------------------------
# Inside ``joblib.parallel_config(backend="dask")``, ``n_jobs=-1`` means
# every thread of every worker. The estimator, the data and the
# cross-validation splits travel to the workers, each worker fits its share
# of the 20 candidate-fold pairs, and the scores come back; the best
# candidate is refitted here.
X, y = make_xor(400, noise=0.1, random_state=0)
clf = DNNClassifier(
    hidden_layer_sizes=(8,),
    batch_size=32,
    learning_rate_init=0.03,
    max_iter=50,
    n_iter_no_change=np.inf,
    random_state=0,
)
grid = {"dropout": [0.0, 0.2, 0.4, 0.6]}
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)

with joblib.parallel_config(backend="dask"):
    search = GridSearchCV(clf, grid, cv=cv, n_jobs=-1).fit(X, y)
print(f"best parameters: {search.best_params_}, accuracy {search.best_score_:.3f}")

# %%
# With an int ``random_state``, a fit on the CPU gives the same network
# wherever it runs, so the search in this process finds the same scores.
local = GridSearchCV(clf, grid, cv=cv).fit(X, y)
same = np.array_equal(
    search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
)
print(f"same scores as in this process: {same}")

# %%
# Out-of-core training with dask-ml's Incremental
# -----------------------------------------------
# 200,000 XOR points in 20 blocks of 10,000 rows. The array is lazy: each
# block is drawn on a worker when a task needs it, and never all at once.
# ``Incremental.partial_fit`` passes the blocks, in a random order, one
# after the other to the network's ``partial_fit``: one epoch over each
# block, on whichever worker holds it, the network travelling from worker to
# worker.
rng = da.random.default_rng(0)
X_big = rng.uniform(-1, 1, size=(200_000, 2), chunks=(10_000, 2))
y_big = (X_big[:, 0] * X_big[:, 1] > 0).astype(np.int64)
X_test = rng.uniform(-1, 1, size=(20_000, 2), chunks=(10_000, 2))
y_test = (X_test[:, 0] * X_test[:, 1] > 0).astype(np.int64)

incremental = Incremental(
    DNNClassifier(hidden_layer_sizes=(16, 8), learning_rate_init=0.01, random_state=0),
    scoring="accuracy",
    random_state=0,
)
for epoch in range(2):
    incremental.partial_fit(X_big, y_big, classes=[0, 1])
    print(f"pass {epoch + 1}: test accuracy {incremental.score(X_test, y_test):.3f}")

# %%
# The same without dask-ml
# ------------------------
# A loop over the blocks does what ``Incremental`` does, with the network in
# this process: ``dask.compute`` brings one block at a time here, so this
# process holds one block, never the whole array.
net = DNNClassifier(hidden_layer_sizes=(16, 8), learning_rate_init=0.01, random_state=0)
order = np.random.RandomState(0)
for _ in range(2):
    for block in order.permutation(X_big.numblocks[0]):
        X_block, y_block = dask.compute(X_big.blocks[block], y_big.blocks[block])
        net.partial_fit(X_block, y_block, classes=[0, 1])
X_test_here, y_test_here = dask.compute(X_test, y_test)
print(f"test accuracy: {net.score(X_test_here, y_test_here):.3f}")

# %%
# ``loss_curve_`` has one entry per ``partial_fit`` call: the loss of each
# block's epoch.
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(np.arange(1, len(net.loss_curve_) + 1), net.loss_curve_, marker=".")
ax.set_xlabel("blocks seen")
ax.set_ylabel("training loss")
ax.set_title("Training block by block, 10,000 rows each")
fig.tight_layout()

# %%
# Closing the cluster
# -------------------
# The client, then the cluster, which stops its worker processes.
client.close()
cluster.close()
