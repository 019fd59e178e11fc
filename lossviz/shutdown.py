"""Ending a process cleanly while runs train: every training job stops after its chunk and its thread is
joined before the interpreter winds down (a thread still inside TensorFlow at exit can abort the process with
"terminate called without an active exception"), and SIGTERM ends a command-line run as Ctrl-C does.

``training`` registers :func:`stop_all` with ``atexit``; a server that stops on SIGTERM or SIGINT (Streamlit
does) therefore exits without an abort. :func:`terminate_as_interrupt` is for the main thread of a program.
"""

from __future__ import annotations

import signal
import threading
import time
import weakref

_JOBS: "weakref.WeakSet" = weakref.WeakSet()
JOIN_SECONDS = 4.0  # in all, for every job to end its chunk


def register(job) -> None:
    """Track a training job (anything with ``stop()`` and ``wait(timeout)``) for :func:`stop_all`."""
    _JOBS.add(job)


def stop_all(timeout: float = JOIN_SECONDS) -> int:
    """Stop every live job after its chunk and wait for them, ``timeout`` seconds in all; returns how many were
    still running when asked."""
    jobs = [job for job in list(_JOBS) if job.running]
    for job in jobs:
        job.stop()
    deadline = time.monotonic() + timeout
    for job in jobs:
        job.wait(max(0.0, deadline - time.monotonic()))
    return len(jobs)


def terminate_as_interrupt() -> None:
    """In the main thread: SIGTERM raises ``KeyboardInterrupt``, so a command ends as on Ctrl-C (its finished
    rows written, exit status 130). Elsewhere it does nothing."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
