"""A verbose search's progress: epochs done, models still training, time."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import time


class BatchProgress:
    """Reports a batch's training, epoch by epoch, as a search's ``verbose``
    asks: through a tqdm progress bar where tqdm is installed, in plain
    lines (at most one every ``interval`` seconds, and the last) otherwise.

    Parameters
    ----------
    label : str
        Which batch, as the lines name it.
    n_networks : int
        The networks of the batch.
    max_epochs : int
        Its most epochs: the largest ``max_iter`` (early stopping or the
        stopping rule may end it sooner, so the time left is at most what
        is said).
    interval : float, default=2.0
        Seconds between plain lines.
    """

    def __init__(self, label, n_networks, max_epochs, *, interval=2.0):
        self.label, self.n_networks, self.max_epochs = label, n_networks, max_epochs
        self.interval, self.epoch = interval, 0
        self.start = self.last = time.monotonic()
        self.bar = _progress_bar(label, max_epochs)

    def __call__(self, n_running):
        """One more epoch done; ``n_running`` networks still training."""
        self.epoch += 1
        now = time.monotonic()
        if self.bar is not None:
            self.bar.set_postfix(
                training=f"{n_running}/{self.n_networks}", refresh=False
            )
            self.bar.update(1)
            if n_running == 0:
                self.bar.close()
            return
        if n_running and now - self.last < self.interval:
            return
        self.last = now
        print(self.line(n_running, now - self.start), flush=True)

    def line(self, n_running, elapsed):
        """The plain line after this epoch, ``elapsed`` seconds in."""
        left = elapsed / self.epoch * (self.max_epochs - self.epoch)
        ending = "done" if not n_running else f"at most {left:.1f} s left"
        return (
            f"{self.label}: epoch {self.epoch}/{self.max_epochs}, "
            f"{n_running} of {self.n_networks} networks training, "
            f"{elapsed:.1f} s elapsed, {ending}"
        )


def _progress_bar(label, total):
    """A tqdm bar of ``total`` epochs, or None where tqdm is not installed."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=label, unit="epoch", leave=False)
