"""A module imported on first use: the demo declarations name Keras and lossviz's models without importing
TensorFlow, so ``settings`` (and a CLI error) answer before TensorFlow loads.

    ops = module("keras.ops")   # nothing imported yet
    ops.mean(x)                 # keras.ops imported here, once

The proxy never enters ``sys.modules``: any other import of the module is an ordinary one.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

_LOCK = threading.Lock()  # TensorFlow's modules must not be imported by two threads at once


class _Module:
    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        self._name = name
        self._module = None

    def __getattr__(self, attr: str) -> Any:
        found = self._module
        if found is None:
            with _LOCK:
                found = self._module = importlib.import_module(self._name)
        return getattr(found, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name}{'' if self._module is None else ' (imported)'}>"


def module(name: str) -> Any:
    """``name``, imported when an attribute is first read."""
    return _Module(name)
