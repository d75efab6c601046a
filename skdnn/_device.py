"""Choosing the torch device and the number of CPU threads a fit uses."""

# Authors: The skdnn developers
# SPDX-License-Identifier: BSD-3-Clause

import contextlib
import re
import threading
import warnings

import torch
from threadpoolctl import ThreadpoolController

_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")

# Up to this many multiply-adds per training step (batch size times the
# network's weights), one torch thread is as fast as two and does not slow
# down when another process keeps a core busy (benchmarks/threads.py on 2
# cores: 2-6-4-1 with batch 32, idle 0.32 s with either; busy 0.32 s with one
# thread, 1.16 s with two). Above it, all cores pay off on an idle machine
# (23.7M per step: 0.15 s with one thread, 0.10 s with two).
_SINGLE_THREAD_MAX_MACS = 4_000_000


def _cuda_available():
    return torch.cuda.is_available()


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def check_device(device):
    """Check a ``device`` parameter without touching any hardware.

    Parameters
    ----------
    device : str or torch.device
        'auto', 'cpu', 'cuda', 'cuda:N', 'mps' or a :class:`torch.device`.

    Raises
    ------
    ValueError
        If ``device`` is a string that names no device.
    """
    if isinstance(device, torch.device):
        return
    if not _DEVICE_PATTERN.fullmatch(device):
        raise ValueError(
            f"The 'device' parameter must be 'auto', 'cpu', "
            f"'cuda', 'cuda:N', 'mps' or a torch.device. Got {device!r} instead."
        )


def resolve_device(device):
    """Turn a ``device`` parameter into an available :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device
        'auto' picks CUDA, then Apple MPS, then the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the requested accelerator is not available on this machine.
    """
    check_device(device)
    if isinstance(device, str) and device == "auto":
        if _cuda_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda":
        if not _cuda_available():
            raise ValueError(
                f"device={str(device)!r} was requested, but CUDA is not available "
                "on this machine (torch.cuda.is_available() is False). Use "
                "device='auto' or device='cpu'."
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"device={str(device)!r} was requested, but this machine has "
                f"{count} CUDA device(s)."
            )
    elif device.type == "mps" and not _mps_available():
        raise ValueError(
            f"device={str(device)!r} was requested, but Apple MPS is not available "
            "on this machine. Use device='auto' or device='cpu'."
        )
    return device


def device_for_loading(saved_device, *, stacklevel=3):
    """Return the device a model saved from ``saved_device`` is restored on.

    A model fitted on an accelerator that this machine lacks is restored on
    the CPU, with a warning, so that a model trained on a GPU server can still
    be used on a laptop.

    Parameters
    ----------
    saved_device : str
        The device the model was on when it was saved.
    stacklevel : int, default=3
        ``warnings.warn``'s stacklevel, so that the warning names the line
        that loads the model: the default suits a call from ``__setstate__``.

    Returns
    -------
    torch.device
    """
    try:
        return resolve_device(saved_device)
    except ValueError:
        warnings.warn(
            f"This model was fitted on {saved_device!r}, which is not available "
            "here; it is loaded on the CPU.",
            UserWarning,
            stacklevel=stacklevel,
        )
        return torch.device("cpu")


def n_threads_for(n_threads, *, device, macs_per_step):
    """Number of torch threads a fit should use, or None to leave torch alone.

    Parameters
    ----------
    n_threads : 'auto', int or None
        The estimator's ``n_threads`` parameter.
    device : torch.device
        Threads only matter on the CPU.
    macs_per_step : int
        Multiply-adds of one training step's forward pass.

    Returns
    -------
    int or None
    """
    if n_threads is None or device.type != "cpu":
        return None
    if n_threads == "auto":
        return 1 if macs_per_step <= _SINGLE_THREAD_MAX_MACS else None
    return n_threads


# Under OpenMP, the backend of torch's builds, the thread count is a setting
# of each calling thread (a thread that starts later takes the count set
# last). Fits and predictions running in several Python threads at once
# therefore each restore their own thread's count: a count shared between
# threads, restored when the last of them ends, would leave a thread that
# ended earlier with the count it set for itself.


@contextlib.contextmanager
def torch_threads(n):
    """Run the block with ``n`` torch threads, then restore the previous count.

    Safe to enter from several Python threads at once.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


_BLAS = []


def _blas_controller():
    # Inspecting the loaded libraries takes milliseconds; limiting through a
    # controller made once takes about 10 us.
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0]


# The BLAS limit is process-wide, and fits and predictions may run in several
# Python threads at once: restoring, at each block's end, the counts found at
# its start could leave the limit of a block that ended later in place for
# good (A limits to 1, B finds 1, A restores, B restores 1). The blocks
# running now share one limit, the smallest they ask for, and the last to end
# restores the counts from before the first.
_BLAS_LOCK = threading.Lock()
_BLAS_ACTIVE = []  # the limit each running block asked for
_BLAS_ORIGINAL = []  # the limiter that restores the counts before the first


def _set_blas_limit(n, *, first):
    limiter = _blas_controller().limit(limits=n, user_api="blas")
    if first:
        _BLAS_ORIGINAL.append(limiter)


@contextlib.contextmanager
def blas_threads(n):
    """Run the block with numpy's BLAS on at most ``n`` threads (None: as it is).

    Training runs its small matrix products through numpy (see
    ``skdnn._batched``) where it runs torch on one thread; its BLAS must keep
    to one thread too, or its threads compete with torch's and with other
    processes. The limit is process-wide, as BLAS libraries keep it: blocks
    running in several Python threads at once share the smallest limit any
    of them asks for, and the counts from before the first are restored when
    the last ends. Safe to enter from several Python threads at once.
    """
    if n is None:
        yield
        return
    with _BLAS_LOCK:
        _BLAS_ACTIVE.append(n)
        if len(_BLAS_ACTIVE) == 1 or n < min(_BLAS_ACTIVE[:-1]):
            _set_blas_limit(n, first=len(_BLAS_ACTIVE) == 1)
    try:
        yield
    finally:
        with _BLAS_LOCK:
            before = min(_BLAS_ACTIVE)
            _BLAS_ACTIVE.remove(n)
            if not _BLAS_ACTIVE:
                _BLAS_ORIGINAL.pop().restore_original_limits()
            elif min(_BLAS_ACTIVE) > before:
                _set_blas_limit(min(_BLAS_ACTIVE), first=False)
