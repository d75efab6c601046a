"""How many torch threads should a CPU fit use? One, or all cores?

Fits networks of several sizes with ``n_threads=1`` and with all cores, on an
idle machine and with another process keeping one core busy, and prints the
median fit times. The crossover sets ``skdnn._device._SINGLE_THREAD_MAX_MACS``,
the size below which ``n_threads='auto'`` trains with one thread.

Run: ``python benchmarks/threads.py [--repeats N]``.
"""

import argparse
import multiprocessing
import os
import statistics
import time
import warnings

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning

from skdnn import DNNClassifier

# (name, n_features, hidden_layer_sizes, n_classes, batch_size, n_samples, epochs)
WORKLOADS = [
    ("xor 2-6-4-1, batch 32", 2, (6, 4), 2, 32, 800, 20),
    ("64-128-64-10, batch 64", 64, (128, 64), 10, 64, 1400, 10),
    ("100-256-256-5, batch 64", 100, (256, 256), 5, 64, 4000, 2),
    ("100-256-256-5, batch 256", 100, (256, 256), 5, 256, 8000, 2),
    ("100-512-512-5, batch 256", 100, (512, 512), 5, 256, 8000, 1),
]


def _spin(stop):
    while not stop.is_set():
        pass


def _fit_seconds(n_features, sizes, n_classes, batch, n_samples, epochs, threads):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n_samples, n_features)).astype(np.float32)
    y = rng.randint(n_classes, size=n_samples)
    clf = DNNClassifier(
        sizes, batch_size=batch, max_iter=epochs, n_threads=threads, random_state=0
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cores = os.cpu_count()
    torch.set_num_threads(cores)
    print(f"torch {torch.__version__}, {cores} cores")
    print(f"{'workload':28} {'MACs/step':>10} {'load':>5} {'1 thread':>9} "
          f"{cores} threads")  # fmt: skip
    for name, *shape in WORKLOADS:
        macs = shape[3] * sum(
            a * b
            for a, b in zip([shape[0], *shape[1]], [*shape[1], shape[2]], strict=True)
        )
        for busy in (False, True):
            stop = multiprocessing.Event()
            spinner = multiprocessing.Process(target=_spin, args=(stop,))
            if busy:
                spinner.start()
            times = {1: [], cores: []}
            for _ in range(args.repeats):
                for threads in times:
                    times[threads].append(_fit_seconds(*shape, threads=threads))
            if busy:
                stop.set()
                spinner.join()
            one, many = (statistics.median(times[t]) for t in times)
            print(
                f"{name:28} {macs:>10,} {'busy' if busy else 'idle':>5} "
                f"{one:8.3f}s {many:8.3f}s"
            )


if __name__ == "__main__":
    main()
