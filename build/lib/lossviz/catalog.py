"""Every demo by name: the built-in ones, and a file of your own code (``path.py[:NAME]``), loaded on first use."""

from __future__ import annotations

from . import demos, usercode


def get(name: str) -> demos.Demo:
    """The demo of ``name``; a file's is imported and registered the first time (raises ``usercode.CodeError``)."""
    if usercode.is_file(name):
        usercode.load(name)
    return demos.get_demo(name)
