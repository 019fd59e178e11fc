"""Names of a traced step that depend on its structure only, so that XLA's disk cache finds the step again.

TensorFlow names each function it traces (the step, its loops and conds, their gradients) with a number from one
counter per process (``ops.uid``), and every eager tensor of every thread advances that counter too. XLA's disk
cache keys a compiled step by those names. So a structure traced while other threads create tensors (a classroom
pressing Train at once) got other names than the same structure traced alone, missed the cache and compiled again:
for policy-value, about 3 s and 350 MiB more (``benchmarks/classroom.py``). Inside :func:`deterministic`, the
tracing thread takes its numbers from a range of its own, fixed by the structure and by how many times this process
has traced it; every other thread keeps TensorFlow's counter.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from contextlib import contextmanager
from typing import Iterator

from tensorflow.python.framework import ops as _ops

BASE = 10**15  # far above any number TensorFlow's own counter reaches in a process
TRACE = 10**6  # numbers a trace may take (a step takes a few thousand)
PER_KEY = 64  # traces of one structure in a process, each with its own range, before the ranges repeat

_local = threading.local()
_lock = threading.Lock()
_traces: dict[str, int] = {}
_tensorflow_uid = _ops.uid


def _uid() -> int:
    counter = getattr(_local, "counter", None)
    return next(counter) if counter is not None else _tensorflow_uid()


_ops.uid = _uid  # TensorFlow's Python code calls ops.uid() by attribute: every name it makes comes through here


def start(key) -> int:
    """The first number of the next trace of ``key`` in this process."""
    text = repr(key)
    with _lock:
        nth = _traces.get(text, 0)
        _traces[text] = nth + 1
    place = int(hashlib.sha1(text.encode()).hexdigest()[:12], 16) % 10**6
    return BASE + (place * PER_KEY + nth % PER_KEY) * TRACE


@contextmanager
def deterministic(key) -> Iterator[None]:
    """Trace inside: the names this thread's trace makes depend on ``key`` (and on how many times this process
    traced it before), not on what other threads do meanwhile."""
    _ops.get_default_graph()  # a thread's first ask makes its default graph, which takes a number: before, not in
    previous = getattr(_local, "counter", None)
    _local.counter = itertools.count(start(key))
    try:
        yield
    finally:
        _local.counter = previous
