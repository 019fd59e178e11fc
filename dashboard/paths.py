"""Where the app lives: the folder of ``app.py`` and ``pages/`` (a checkout's top level, or the installed package
``lossviz_app``). Plain Python: the navigation reads it before anything heavy is imported."""

from __future__ import annotations

from pathlib import Path


def _root() -> Path:
    here = Path(__file__).resolve().parents[1]
    return here if (here / "app.py").exists() else here / "lossviz_app"


ROOT = _root()
PAGE_DIR = ROOT / "pages"
