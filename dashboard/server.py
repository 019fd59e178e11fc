"""The dashboard served on 127.0.0.1 in a child process, as the browser tests and the soak benchmark start it, and
the headless Chromium that drives it. Nothing here imports TensorFlow."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from .paths import ROOT

CHROMIUM = os.environ.get("LOSSVIZ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env: dict[str, str] | None = None, output=None, wait: float = 90.0) -> tuple[subprocess.Popen, str]:
    """``streamlit run app.py`` (headless, from the repository root) on a free port of 127.0.0.1, with ``env``
    added to the environment and its output to ``output`` (a file; by default a temporary one, read with
    :func:`said`: never a pipe nobody reads, which a chatty server fills and then blocks on); returns (process,
    address) once the server answers its health check. Raises ``RuntimeError`` after ``wait`` seconds, with the
    server's last output."""
    port = free_port()
    log = output if output is not None else tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    proc.log = log
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + wait
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    proc.wait()
    said_so_far = said(proc)[-2000:]
    raise RuntimeError(f"streamlit did not start within {wait:g} s: {said_so_far}")


def said(proc: subprocess.Popen) -> str:
    """Everything a server started by :func:`start` has written (when its output went to a file it can read)."""
    try:
        proc.log.flush()
        proc.log.seek(0)
        return proc.log.read().decode(errors="replace")
    except (AttributeError, OSError, ValueError):
        return ""
