"""A knob of a run: its key, default, allowed values, check, slider and effect, in plain Python (no TensorFlow, no
other module of lossviz). Each demo (a built-in family, the formula, a file of your own code) declares its own knobs
as :class:`Param` values; :func:`common` gives the keys every run has.

A knob's *effect* is declared once, here, and read everywhere: ``"graph"`` (it shapes the compiled step: a variant,
an optimizer, a mode), ``"data"`` (the run's data are drawn with it) or ``"live"`` (a number fed to the compiled
step, which may change between chunks of a run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping


class SettingError(ValueError):
    """A wrong demo, key or value; the message is one line that names what is allowed."""


@dataclass(frozen=True)
class Slider:
    """How a page draws a numeric knob: ``log`` over decades ``low`` to ``high`` (mirrored to negative values when the
    knob allows them), or ``linear`` from ``low`` to ``high`` in steps of ``step``. Without one, a page derives a
    slider from the default."""

    scale: str  # "log" | "linear"
    low: float
    high: float
    step: float = 0.0
    off_at_zero: bool = False  # 0 means "off" (clipping)


@dataclass(frozen=True)
class Param:
    key: str
    default: Any
    kind: str  # "float", "int", "choice", "formula"
    allowed: str  # words for the error message and the UI help
    check: Callable[[Any], bool] = lambda v: True
    choices: tuple[str, ...] = ()
    structural: bool = False
    log_scale: bool = False
    help: str = ""
    shapes_data: bool = False  # the run's data are drawn with it (positive_rate): fixed for a run
    accepts: Callable[[str], bool] | None = None  # a choice that also takes values outside ``choices``
    when: Callable[[Mapping[str, Any]], bool] = lambda settings: True  # a knob of the run only when this holds
    slider: Slider | None = None
    graph_part: Callable[[Any], Any] | None = None  # what of a graph-shaping value shapes the graph (default: all)
    alias: Callable[[Any], tuple[str, Any] | None] | None = None  # a value that sets another key (alpha=trainable)
    implies: tuple[tuple[str, Any], ...] = ()  # set with it (a number for alpha means alpha_mode=fixed)
    widget: str = ""  # the name of its widget on a page, when not its key (alpha_mode's is "alpha:mode")
    words: Mapping[Any, str] | None = None  # values written as words (batch_size 0: "full"), and read back

    @property
    def numeric(self) -> bool:
        return self.kind in ("float", "int")

    @property
    def effect(self) -> str:
        """``graph``, ``data`` or ``live``: whether a change can reach a run in progress, and why not."""
        if self.structural:
            return "graph"
        if self.shapes_data:
            return "data"
        return "live"

    def shaping(self, value) -> Any:
        """The part of a value that shapes the compiled graph (a step's cache key)."""
        return self.graph_part(value) if self.graph_part is not None else value

    def parse(self, raw) -> Any:
        """A typed, checked value from a string (CLI) or a Python value (pages, API)."""
        value = raw
        for word_of, word in (self.words or {}).items():
            if isinstance(raw, str) and raw.strip() == word:  # batch_size=full
                return word_of
        try:
            if self.kind == "formula":  # checked against its task by ``resolve``
                return str(raw).strip()
            if self.kind == "choice":
                value = str(raw).strip()
                ok = value in self.choices or (self.accepts is not None and self.accepts(value))
            elif self.kind == "int":
                if isinstance(raw, float) and not raw.is_integer():
                    raise ValueError
                value = int(raw)
                ok = self.check(value)
            else:
                value = float(raw)
                ok = math.isfinite(value) and self.check(value)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise SettingError(f"{self.key}={raw!s} is not allowed: {self.key} must be {self.allowed}")
        return value


def _decades(low: int, high: int, off_at_zero: bool = False) -> Slider:
    return Slider("log", low, high, off_at_zero=off_at_zero)


FULL_BATCH = 0  # batch_size=full: every step on the whole training set (full-batch gradient descent)


def common(lr: float, batch_size: int = 32, optimizer: str = "adam", sharpness: str = "off") -> list[Param]:
    """The keys every run has (``COMMON_KEYS``), with a demo's defaults."""
    return [
        Param("lr", lr, "float", "a finite number (negative means gradient ascent)", log_scale=True,
              help="learning rate", slider=_decades(-5, 0)),
        Param("optimizer", optimizer, "choice", "one of adam, sgd, rmsprop", choices=("adam", "sgd", "rmsprop"),
              structural=True),
        Param("batch_size", batch_size, "int", "an integer from 1 to 4096, or full", lambda v: 1 <= v <= 4096
              or v == FULL_BATCH, alias=lambda raw: ("batch_size", FULL_BATCH) if str(raw).strip() == "full" else None,
              words={FULL_BATCH: "full"},
              help="samples a step; full: every step on the whole training set (full-batch gradient descent)"),
        Param("clipnorm", 0.0, "float", "a number >= 0 (0 = off)", lambda v: v >= 0,
              help="clip each gradient tensor to this norm, as Keras' clipnorm", slider=_decades(-3, 2, True)),
        Param("clipvalue", 0.0, "float", "a number >= 0 (0 = off)", lambda v: v >= 0,
              help="clip each gradient element to [-clipvalue, clipvalue]", slider=_decades(-3, 2, True)),
        _sharpness(sharpness),
    ]


def period(value: str, least: int = 2) -> int:
    """Steps between two measurements of a probe: ``off`` 0, ``every`` 1, ``every-k`` k (k >= ``least``)."""
    if value == "off":
        return 0
    if value == "every":
        return 1
    head, _, k = value.partition("-")
    if head != "every" or not k.isdigit() or not least <= int(k) <= 100_000:
        raise ValueError(value)
    return int(k)


def term_period(value: str) -> int:
    """Steps between two measurements of the per-term gradient probe: ``off`` 0, ``every`` 1, ``every-k`` k."""
    return period(value)


def sharpness_period(value: str) -> int:
    """Steps between two measurements of the sharpness: ``off`` 0, ``every`` 1, ``every-k`` k (k >= 1)."""
    return period(value, least=1)


def metrics_period(value: str) -> int:
    """Steps between two measurements of the held-out metrics: ``every`` 1, ``every-k`` k (k >= 1)."""
    return period(value, least=1)


def _measured(read: Callable[[str], int]) -> Callable[[str], bool]:
    def accepts(value: str) -> bool:
        try:
            return read(value) > 0
        except ValueError:
            return False
    return accepts


def _graph_part(read: Callable[[str], int]) -> Callable[[str], str]:
    """off / every / every-k: k reaches the step as a number, so only these three shape the graph."""
    return lambda value: {0: "off", 1: "every"}.get(read(value), "every-k")


def _sharpness(default: str) -> Param:
    return Param("sharpness", default, "choice", "off, every or every-k with k an integer >= 1",
                 choices=("off", "every-50", "every-10", "every"), accepts=_measured(sharpness_period),
                 structural=True, graph_part=_graph_part(sharpness_period),
                 help="the largest eigenvalue of the loss's Hessian (Cohen et al. 2021), by power iteration on "
                      "Hessian-vector products, at step 1 and every k-th step; drawn against the optimizer's "
                      "stability limit. Noisier with mini-batches: the edge of stability is a full-batch effect")


TERM_GRADS_DEFAULT = "every-10"
# one backward pass per loss term: measured on the steps it names (see benchmarks/train_step.py); k reaches the
# step as a number, so only off / every / every-k shape the graph
TERM_GRADS = Param("term_grads", TERM_GRADS_DEFAULT, "choice", "off, every or every-k with k an integer >= 2",
                   choices=("every-10", "every", "every-50", "off"), accepts=_measured(term_period), structural=True,
                   graph_part=_graph_part(term_period),
                   help="each loss term's gradient (norm per layer, cosine between terms): at every step, "
                        "every k-th step (and step 1), or off")

METRICS_DEFAULT = "every-50"
# the held-out metrics: one forward pass over the evaluation sample (1,024 rows) on the steps it names, which costs
# the dense net several of its training steps at batch 32: every-10 trained it about a fifth slower than every-50
# (benchmarks/train_step.py). Which steps measure is a number fed to the step: no value shapes the graph
METRICS = Param("metrics", METRICS_DEFAULT, "choice", "every or every-k with k an integer >= 1",
                choices=("every-50", "every-10", "every"), accepts=_measured(metrics_period), structural=True,
                graph_part=lambda value: "measured",
                help="how often the metrics are measured on the held-out sample: at step 1 and every k-th step (the "
                     "records in between carry the latest measurement)")

TASK = Param("task", "binary", "choice", "one of binary, regression", choices=("binary", "regression"),
             structural=True, help="binary: y, p and z = logit of p (the sparse-event data and net); "
                                   "regression: y, yhat and r = yhat - y (the max-mse data and net)")

TRAINING_KEYS = ("lr", "optimizer", "batch_size", "clipnorm", "clipvalue", "sharpness", "term_grads", "metrics")
COMMON_KEYS = tuple(p.key for p in common(lr=1e-3)) + ("term_grads", "metrics", "task")  # no knob of a file may take these
