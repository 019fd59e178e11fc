"""lossviz: explore custom training losses of Keras models (library part, no UI)."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # no start-up banner; same numbers on every CPU
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _cpu() -> str:
    """A short name of this CPU's model and features: code compiled for one CPU is never loaded on another (XLA
    warns, and may fail with SIGILL, when a cache made elsewhere is used)."""
    import hashlib
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            lines = [line for line in f if line.startswith(("model name", "flags", "Features"))][:2]
    except OSError:
        lines = []
    return hashlib.sha1("".join(lines or [platform.processor(), platform.machine()]).encode()).hexdigest()[:8]


def _xla_cache() -> None:
    """Compiled steps go to a disk cache shared by the processes of this machine (the dashboard, the CLI, the
    sweep's workers): a structure compiled once loads in a second elsewhere, without the compiler's memory peak.
    ``LOSSVIZ_XLA_CACHE`` names another folder; empty turns it off."""
    default = f"lossviz-xla-{getattr(os, 'getuid', lambda: 0)()}-{_cpu()}"
    folder = os.environ.get("LOSSVIZ_XLA_CACHE", os.path.join(tempfile.gettempdir(), default))
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if folder and "tf_xla_persistent_cache_directory" not in flags:
        os.environ["TF_XLA_FLAGS"] = f"{flags} --tf_xla_persistent_cache_directory={folder}".strip()


_xla_cache()

__version__ = "0.1.0"


def report(sources, title: str = "lossviz report"):
    """A standalone HTML report of lossviz CSVs (paths or ``runfiles.RunFile``s): the Runs page's charts, plotly.js
    inline; a notebook shows it inline, ``.write(path)`` saves it (``lossviz.html_report``)."""
    from .html_report import report as build

    return build(sources, title)


def __getattr__(name):
    """``lossviz.keras`` (the Recorder callback) on first use: ``import lossviz`` stays free of TensorFlow."""
    if name == "keras":
        import importlib

        return importlib.import_module(".keras", __name__)
    raise AttributeError(f"module 'lossviz' has no attribute {name!r}")
