"""The dashboard's navigation, titled, drawn before anything heavy is imported; and the warm-up of its trainers.

Streamlit runs a top-level ``pages/`` folder next to ``app.py`` through an automatic navigation of raw file
names, and a page's address opened directly (``/Two_branch?lr=0.05``) runs that page's file through it, without
``app.py``. So every page file starts with :func:`enter`: outside the titled navigation it runs the titled one
(which resolves the same address to the same page) and stops the outer run. This module imports no TensorFlow.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path

import streamlit as st

from lossviz import demos  # plain Python: the declarations import no TensorFlow
from lossviz.settings import file_label, is_file

from .paths import ROOT

HOME = ("pages/home.py", "Home", ":material/home:", "")
RUNS = ("pages/6_Runs.py", "Runs (CSV files)", ":material/folder_open:", "Runs")
LESSONS = ("pages/8_Lessons.py", "Lessons", ":material/school:", "Lessons")


def _pages() -> tuple[tuple[str, str, str, str], ...]:
    """The dashboard's pages: (file, title in the navigation, icon, address); the home page, every demo that declares
    a page file (``Demo.page``), the Lessons page and the Runs page."""
    found = [HOME]
    for name in demos.names():
        page = demos.DEMOS[name].page
        if page is not None and page.file:
            found.append((page.file, page.nav_title or page.title, page.icon, page.address))
    return (*found, LESSONS, RUNS)


PAGES = _pages()
WARMED = tuple(name for name in demos.names() if demos.DEMOS[name].warm)  # their default structures

_inside = threading.local()  # set while the titled navigation runs a page, in that script thread
_warming: threading.Thread | None = None
_warming_lock = threading.Lock()
# TensorFlow's modules import each other in cycles: two threads importing it at once can deadlock (Python then
# raises _DeadlockError in one, and the page shows it). The warm-up imports it holding this lock; a page waits for
# the lock before it runs, so it finds TensorFlow imported, or imports it alone.
_importing = threading.Lock()


def code_files(argv=None, environ=None) -> tuple[str, ...]:
    """The files of your own code this server was started with, as given: ``streamlit run app.py -- a.py
    b.py:NAME`` or ``LOSSVIZ_CODE=a.py:b.py`` (paths separated by ``:``; a part that is not a ``.py`` path names
    the loss in the file before it). Only these: nothing a browser sends adds a file."""
    if argv is None:  # Streamlit gives the script the arguments after ``--``, behind the script's path
        argv = sys.argv[1:] if sys.argv and sys.argv[0].endswith("app.py") else []
    environ = os.environ if environ is None else environ
    found = [a for a in argv if is_file(a)]
    for part in (p for p in environ.get("LOSSVIZ_CODE", "").split(":") if p):
        if is_file(part) or not found:
            found.append(part)
        else:
            found[-1] += f":{part}"
    return tuple(dict.fromkeys(found))


def runs_folder(argv=None, environ=None) -> str | None:
    """The folder of runs this server was started with: ``streamlit run app.py -- --runs DIR`` or
    ``LOSSVIZ_RUNS=DIR``. Only this one: nothing a browser sends names another."""
    if argv is None:
        argv = sys.argv[1:] if sys.argv and sys.argv[0].endswith("app.py") else []
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--runs" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--runs="):
            return arg.partition("=")[2]
    environ = os.environ if environ is None else environ
    return environ.get("LOSSVIZ_RUNS") or None


def _code_page(name: str, url: str):
    """A file's page: a function of the navigation (the file is loaded in it, so a bad one fails on its page)."""
    def page() -> None:
        from dashboard.page import code_page  # TensorFlow: only when the page is opened

        code_page(name)
    page.__name__ = url
    return page


def code_pages() -> list[tuple[str, str]]:
    """(file as given, address) for each file of your own code."""
    pages, used = [], set()
    for name in code_files():
        path, _, obj = name.partition(":")
        url = "code_" + re.sub(r"[^A-Za-z0-9_]+", "_", Path(path).stem + (f"_{obj}" if obj else ""))
        while url in used:
            url += "_"
        used.add(url)
        pages.append((name, url))
    return pages


def run(default: str | Path = PAGES[0][0]) -> None:
    """Draw the titled navigation and run the page the address names; ``default`` (a page's file) is the page of
    an address that names none (``app.py``: the home page). The navigation goes out before the warm-up starts
    importing TensorFlow in its thread, so nothing competes with drawing it."""
    default = (ROOT / default).resolve()
    _inside.active = True
    try:
        pages = [st.Page(ROOT / path, title=title, icon=icon, url_path=url or None,
                         default=(ROOT / path).resolve() == default)
                 for path, title, icon, url in PAGES]
        pages += [st.Page(_code_page(name, url), title=file_label(name), icon=":material/code:", url_path=url)
                  for name, url in code_pages()]
        page = st.navigation(pages)
        warm()
        with _importing:
            pass
        page.run()
    finally:
        _inside.active = False


def enter(page: str) -> None:
    """First thing in every page file (``page``: its ``__file__``): a page reached outside the titled navigation
    (an address opened directly, or the file run on its own) runs again through it, and this run stops."""
    if getattr(_inside, "active", False):
        return
    run(default=PAGES[0][0] if _address_names_a_page() else page)
    st.stop()


def _address_names_a_page() -> bool:
    """Whether the browser's address names a page (a direct visit); a page file run on its own has none, and is
    then the default page of the navigation."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    manager = getattr(ctx, "pages_manager", None)
    return bool(getattr(manager, "intended_page_name", None) or getattr(manager, "intended_page_script_hash", None))


def warm() -> None:
    """Once per process, in the background: compile the default structure of every page, so a first Train
    starts from a ready step (until then its status says ``preparing the trainer``). ``LOSSVIZ_WARM=0`` skips it
    (a small machine, a server that only shows runs)."""
    global _warming
    if os.environ.get("LOSSVIZ_WARM", "1") == "0":
        return
    with _warming_lock:
        if _warming is None:
            holding = threading.Event()
            _warming = threading.Thread(target=_warm, args=(holding,), name="lossviz-warm-start", daemon=True)
            _warming.start()
            holding.wait()


def _warm(holding: threading.Event) -> None:
    with _importing:
        holding.set()
        from lossviz import training  # TensorFlow: in this thread, after the navigation is drawn

    training.Warming(WARMED + tuple(name for name, _ in code_pages()))
