"""No run outlives its browser session: once Streamlit has had no connection to a session for a short grace (its
tab was closed, or the connection dropped and did not come back), that session's runs and sweeps are stopped,
and their models go back to the pool.

Every page run calls :func:`watch`. One thread per process looks at the watched sessions every few seconds.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import streamlit as st

# seconds without a connection before a session's runs stop (a reconnect after a network blip takes ~1 s);
# LOSSVIZ_SESSION_GRACE_SECONDS shortens it (the tests do)
GRACE_SECONDS = float(os.environ.get("LOSSVIZ_SESSION_GRACE_SECONDS", "15"))
CHECK_SECONDS = 2.0

_LOCK = threading.Lock()
_WATCHED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}  # session id -> its (jobs, sweeps) dicts
_GONE_SINCE: dict[str, float] = {}
_THREAD: threading.Thread | None = None


def watch() -> None:
    """Remember this session's runs (``st.session_state["jobs"]`` and ``["sweeps"]``) for the reaper."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None or not Runtime.exists():  # e.g. under AppTest: no connections to watch
        return
    runs = (st.session_state.setdefault("jobs", {}), st.session_state.setdefault("sweeps", {}))
    global _THREAD
    with _LOCK:
        _WATCHED[ctx.session_id] = runs
        if _THREAD is None:
            _THREAD = threading.Thread(target=_reap, name="lossviz-sessions", daemon=True)
            _THREAD.start()


def stop_runs(jobs: dict[str, Any], sweeps: dict[str, Any]) -> int:
    """Stop every training job and sweep of one session; returns how many were running."""
    found = [job for runs in list(jobs.values()) for job in list(runs.values())] + list(sweeps.values())
    running = [job for job in found if job.running]
    for job in found:
        job.stop()
    return len(running)


def _reap() -> None:
    from streamlit.runtime import Runtime

    while True:
        time.sleep(CHECK_SECONDS)
        if not Runtime.exists():
            continue
        runtime = Runtime.instance()
        now = time.monotonic()
        with _LOCK:
            watched = list(_WATCHED.items())
        for session_id, (jobs, sweeps) in watched:
            if runtime.is_active_session(session_id):
                _GONE_SINCE.pop(session_id, None)
                continue
            gone = _GONE_SINCE.setdefault(session_id, now)
            if now - gone >= GRACE_SECONDS:
                stop_runs(jobs, sweeps)
                with _LOCK:
                    _WATCHED.pop(session_id, None)
                _GONE_SINCE.pop(session_id, None)
