"""Ending a process cleanly while runs train: every training job stops after its chunk and its thread is
joined before the interpreter winds down (a thread still inside TensorFlow at exit can abort the process with
"terminate called without an active exception"), and SIGTERM ends a command-line run as Ctrl-C does.

This module registers :func:`stop_all` with ``atexit``; a server that stops on SIGTERM or SIGINT (Streamlit
does) therefore exits without an abort. :func:`terminate_as_interrupt` is for the main thread of a program.
"""

from __future__ import annotations

import atexit
import signal
import threading
import time
import weakref

_JOBS: "weakref.WeakSet" = weakref.WeakSet()
_PATIENCE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
JOIN_SECONDS = 4.0  # in all, for every job to end its chunk
COMPILE_SECONDS = 60.0  # for a compile in flight (it cannot be interrupted, and it must not be cut at exit)


def register(job, patience: float | None = None) -> None:
    """Track a training job (anything with ``stop()``, ``wait(timeout)`` and ``running``) for :func:`stop_all`;
    ``patience``: how long it may take to stop, when longer than a chunk (a compile)."""
    _JOBS.add(job)
    if patience is not None:
        _PATIENCE[job] = patience


def stop_all(timeout: float = JOIN_SECONDS) -> int:
    """Stop every live job after its chunk and wait for them, ``timeout`` seconds in all (longer for those
    registered with more patience); returns how many were still running when asked."""
    jobs = [job for job in list(_JOBS) if job.running]
    for job in jobs:
        job.stop()
    start = time.monotonic()
    for job in jobs:
        job.wait(max(0.0, start + max(timeout, _PATIENCE.get(job, 0.0)) - time.monotonic()))
    return len(jobs)


INTERRUPTED = threading.Event()  # set by the signal: a loop checks it, should library code swallow the exception


def terminate_as_interrupt() -> None:
    """In the main thread: SIGTERM raises ``KeyboardInterrupt``, so a command ends as on Ctrl-C (its finished
    rows written, exit status 130), and both signals set ``INTERRUPTED`` (SIGINT only where it is not ignored, as
    in a shell's background job). Elsewhere it does nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupt)


def _interrupt(signum, frame):
    INTERRUPTED.set()
    raise KeyboardInterrupt


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` when a signal came, even if the exception it raised was caught on the way."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


atexit.register(stop_all)  # no training thread is left inside TensorFlow when the interpreter ends
