"""When batching pays: M networks trained as one batch against one by one.

For networks of one hidden-layer width, ``--models`` fits on their own
folds of 1,000 rows of 20 features (binary targets), each fit 10 epochs of
Adam at batch 64 or 200: once as one batch (``skdnn._batched.train_batched``
over all of them, what a batched search does), once one by one (the same
call per model: ``fit``'s own engine path, one network per batch). Prints
the median seconds of each over ``--repeats`` runs, alternating, and the
ratio one-by-one / batched, for 1 and 2 torch threads; the rule the
searches follow (``skdnn.model_selection``: batch where this ratio is above
1) is read from this table.

Run on an idle machine: ``python benchmarks/batching.py [--repeats 5]``.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from skdnn import DNNClassifier
from skdnn._batched import prepare_fit, train_batched

WIDTHS = [8, 32, 64, 128, 256]


def _prepared(width, batch, n_models, rng):
    X = rng.standard_normal((1000, 20))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    base = DNNClassifier(
        (width, width), batch_size=batch, max_iter=10, n_iter_no_change=100,
        n_init=1, dropout=0.1, random_state=0, device="cpu", n_threads=None,
    )  # fmt: skip
    models = [clone(base).set_params(random_state=m) for m in range(n_models)]
    return models, [prepare_fit(model, X, y) for model in models]


def _time(width, batch, n_models, together):
    models, prepared = _prepared(width, batch, n_models, np.random.RandomState(0))
    start = time.perf_counter()
    if together:
        train_batched(models, prepared)
    else:
        for model, fit in zip(models, prepared, strict=True):
            train_batched([model], [fit])
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", type=int, default=20)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    print("threads | batch | width | batched s | one by one s | ratio")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for batch in (64, 200):
            for width in WIDTHS:
                _time(width, batch, 2, True)  # first calls at these shapes
                runs = {True: [], False: []}
                for _ in range(args.repeats):
                    for together in (True, False):
                        runs[together].append(
                            _time(width, batch, args.models, together)
                        )
                batched, alone = (statistics.median(runs[k]) for k in (True, False))
                print(
                    f"{threads} | {batch} | {width} | {batched:.3f} | {alone:.3f} | "
                    f"{alone / batched:.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
