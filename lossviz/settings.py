"""Settings of the demos: keys, defaults, allowed values and their checks, in plain Python.

Nothing here imports TensorFlow, so a wrong demo, key or value is reported at once, in one line. A setting
is *structural* when it changes the compiled graph (optimizer, mask mode, variant, alpha mode); the other
settings are numbers fed to the compiled step, so changing them never retraces.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from . import formula
from .knobs import Param, SettingError  # noqa: F401  (re-exported: settings.SettingError, settings.Param)

DEMO_NAMES = ("policy-value", "two-branch", "sparse-penalty", "max-mse", "custom")
# the formula of demo ``custom`` by task, when none is given (the sparse-penalty question's loss; a maximised MSE)
DEFAULT_FORMULA = {"binary": "-(w * y * log(p) + (1 - y) * log(1 - p)); w=10", "regression": "-(r ** 2)"}


def common(lr: float, batch_size: int = 32) -> list[Param]:
    """The keys every run has (COMMON_KEYS), with a demo's default learning rate."""
    return [
        Param("lr", lr, "float", "a finite number (negative means gradient ascent)", log_scale=True,
              help="learning rate"),
        Param("optimizer", "adam", "choice", "one of adam, sgd, rmsprop", choices=("adam", "sgd", "rmsprop"),
              structural=True),
        Param("batch_size", batch_size, "int", "an integer from 1 to 4096", lambda v: 1 <= v <= 4096),
        Param("clipnorm", 0.0, "float", "a number >= 0 (0 = off)", lambda v: v >= 0,
              help="clip each gradient tensor to this norm, as Keras' clipnorm"),
        Param("clipvalue", 0.0, "float", "a number >= 0 (0 = off)", lambda v: v >= 0,
              help="clip each gradient element to [-clipvalue, clipvalue]"),
    ]


def term_period(value: str) -> int:
    """Steps between two measurements of the per-term gradient probe: ``off`` 0, ``every`` 1, ``every-k`` k."""
    if value == "off":
        return 0
    if value == "every":
        return 1
    head, _, k = value.partition("-")
    if head != "every" or not k.isdigit() or not 2 <= int(k) <= 100_000:
        raise ValueError(value)
    return int(k)


def _is_period(value: str) -> bool:
    try:
        return term_period(value) > 0
    except ValueError:
        return False


TERM_GRADS_DEFAULT = "every-10"
# one backward pass per loss term: measured on the steps it names (see benchmarks/train_step.py)
TERM_GRADS = Param("term_grads", TERM_GRADS_DEFAULT, "choice", "off, every or every-k with k an integer >= 2",
                   choices=("every-10", "every", "every-50", "off"), accepts=_is_period, structural=True,
                   help="each loss term's gradient (norm per layer, cosine between terms): at every step, "
                        "every k-th step (and step 1), or off")

_EPSILON_BCE = Param("epsilon", 1e-7, "float", "a number in (0, 0.5)", lambda v: 0 < v < 0.5, log_scale=True,
                     help="clip p to [epsilon, 1 - epsilon]")
_EPSILON_INV = Param("epsilon", 0.0, "float", "a number >= 0", lambda v: v >= 0,
                     help="added to the squared residual of the inverse MSE")

TASK = Param("task", "binary", "choice", "one of binary, regression", choices=("binary", "regression"),
             structural=True, help="binary: y, p and z = logit of p (the sparse-event data and net); "
                                   "regression: y, yhat and r = yhat - y (the max-mse data and net)")

PARAMS: dict[str, tuple[Param, ...]] = {
    "policy-value": (
        *common(lr=1e-3),
        Param("c", 1e-4, "float", "a number >= 0", lambda v: v >= 0, log_scale=True,
              help="L2 regularisation c in c||theta||^2 (kernels)"),
        TERM_GRADS,
        Param("mask", "logits", "choice", "one of logits, none, seed-answer",
              choices=("logits", "none", "seed-answer"), structural=True,
              help="logits: masked softmax; none: plain softmax; seed-answer: mask from pi == 1"),
    ),
    "two-branch": (
        *common(lr=1e-2),
        Param("alpha", 0.5, "alpha", "a number in [0, 1], trainable, uncertainty, gradnorm or pcgrad",
              choices=("trainable", "uncertainty", "gradnorm", "pcgrad"),
              help="weight of branch 1; trainable: a variable clipped to [0, 1]; uncertainty: Kendall et al. 2018; "
                   "gradnorm: Chen et al. 2018; pcgrad: Yu et al. 2020 (equal weights, conflicts projected away)"),
        Param("gradnorm_alpha", 1.5, "float", "a number >= 0", lambda v: v >= 0,
              when=lambda s: s.get("alpha") == "gradnorm",
              help="GradNorm's asymmetry: 0 pulls both branches' gradient norms to one value; larger gives more "
                   "weight to the branch whose loss falls slower"),
        TERM_GRADS,
    ),
    "sparse-penalty": (
        *common(lr=1e-3),
        Param("variant", "logits", "choice", "one of naive, clipped, logits, batch-switch",
              choices=("naive", "clipped", "logits", "batch-switch"), structural=True),
        Param("penalty", 10.0, "float", "a number > 0", lambda v: v > 0, log_scale=True,
              help="weight of each positive sample"),
        _EPSILON_BCE,
        Param("positive_rate", 0.02, "float", "a number in (0, 1)", lambda v: 0 < v < 1,
              help="share of hours with an event", shapes_data=True),
        TERM_GRADS,
    ),
    "max-mse": (
        *common(lr=1e-2),
        Param("variant", "neg-mse", "choice", "one of neg-mse, inverse-mse, neg-lr",
              choices=("neg-mse", "inverse-mse", "neg-lr"), structural=True,
              help="neg-mse: minimise -MSE; inverse-mse: minimise 1/MSE-style; neg-lr: MSE with lr < 0"),
        _EPSILON_INV,
    ),
    "custom": (
        *common(lr=1e-3),
        TASK,
        Param("loss", DEFAULT_FORMULA["binary"], "formula", "a formula of the task's inputs (see lossviz.formula)",
              structural=True, help="per sample; other names are parameters; defaults after ';'"),
    ),
}


@dataclass(frozen=True)
class Spec:
    """What a demo declares about its settings: its knobs (or a function of the settings giving them), its loss
    terms in record order, the metric a stability map reports by default and the setting a comparison changes
    first (with B's default value)."""

    name: str
    params: tuple[Param, ...] | Callable[[Mapping[str, Any]], tuple[Param, ...]]
    terms: tuple[str, ...] = ()
    main_metric: str | Callable[[Mapping[str, Any]], str] = "loss"
    compare: tuple[str, dict[str, Any]] = ("lr", {})
    note: str = ""  # what of the demo's loss is not a knob, and why (an unknown key's message says it)

    def params_of(self, settings: Mapping[str, Any] | None) -> tuple[Param, ...]:
        return self.params(settings or {}) if callable(self.params) else self.params


def _custom_params(settings: Mapping[str, Any]) -> tuple[Param, ...]:
    """The formula demo's settings and its formula's parameters (``settings``' loss and task, or the default
    formula), each a number with the formula's default."""
    base = PARAMS["custom"]
    found = formula_of(settings)
    clash = [name for name in found.parameters if name in {p.key for p in base}]
    if clash:
        raise SettingError(f"the formula's parameter {clash[0]} is also a setting of the run: give it another name")
    return base + tuple(Param(name, default, "float", "a finite number", help="a parameter of your formula")
                        for name, default in found.parameters.items())


_SPECS: dict[str, Spec] = {}


def register(spec: Spec) -> None:
    """Declare a demo's settings (the built-in demos below; a file of your own code in ``usercode``)."""
    _SPECS[spec.name] = spec


def is_file(name) -> bool:
    """Whether a demo name names a file of your own code (``path.py`` or ``path.py:NAME``)."""
    return isinstance(name, str) and name.partition(":")[0].endswith(".py")


def file_label(name: str) -> str:
    """What a page calls a file's demo: the file's name, and ``:NAME`` when the loss is not ``loss``."""
    path, _, obj = name.partition(":")
    return path.replace("\\", "/").rsplit("/", 1)[-1] + (f":{obj}" if obj and obj != "loss" else "")


def spec(demo: str) -> Spec:
    found = _SPECS.get(demo)
    if found is None:
        hint = " (a file of your own code is loaded by lossviz.usercode.load first)" if is_file(demo) else ""
        raise SettingError(f"unknown demo {demo!r}; allowed: {', '.join(DEMO_NAMES)} or a file path.py[:NAME]{hint}")
    return found


def check_demo(name: str) -> str:
    return spec(name).name


def params(demo: str, settings: Mapping[str, Any] | None = None) -> tuple[Param, ...]:
    """The demo's settings, as the demo declares them (for ``custom`` also its formula's parameters)."""
    return spec(demo).params_of(settings)


def terms(demo: str) -> tuple[str, ...]:
    """The terms of the demo's loss, in record order (the per-term gradient probe needs two or more)."""
    return spec(demo).terms


def compare(demo: str) -> tuple[str, dict[str, Any]]:
    """The setting a comparison changes first, and B's values: the question's suggestion against the fix."""
    return spec(demo).compare


def formula_of(settings: Mapping[str, Any]):
    """The parsed formula of a ``custom`` run (raises ``FormulaError``, a ``SettingError``)."""
    task = settings.get("task", "binary")
    return formula.parse(settings.get("loss", DEFAULT_FORMULA.get(task, "")), task)


def keys(demo: str, settings: Mapping[str, Any] | None = None) -> tuple[str, ...]:
    return tuple(p.key for p in params(demo, settings))


def param(demo: str, key: str, settings: Mapping[str, Any] | None = None) -> Param:
    for p in params(demo, settings):
        if p.key == key:
            return p
    note = spec(demo).note
    raise SettingError(f"unknown key {key!r} for {demo}; allowed: {', '.join(keys(demo, settings))}"
                       + (f" ({note})" if note else ""))


def defaults(demo: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {p.key: p.default for p in params(demo, settings)}


def resolve(demo: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The demo's defaults with ``overrides`` parsed and checked; raises :class:`SettingError`. For ``custom``
    the task and the formula come first: the formula's parameters are settings too."""
    overrides = dict(overrides or {})
    settings = defaults(demo)
    if demo == "custom":
        task = param(demo, "task").parse(overrides.pop("task", "binary"))
        loss = param(demo, "loss").parse(overrides.pop("loss", DEFAULT_FORMULA[task]))
        settings = defaults(demo, {"task": task, "loss": loss})
        settings.update(task=task, loss=loss)
    for key, raw in overrides.items():
        settings[key] = param(demo, key, settings).parse(raw)
    return settings


def structure(demo: str, settings: Mapping[str, Any]) -> tuple:
    """The settings that shape the compiled graph (the cache key of a built model and step)."""
    items = []
    for p in params(demo, settings):
        value = settings[p.key]
        if p.kind == "alpha":
            items.append((p.key, value if isinstance(value, str) else "fixed"))
        elif p is TERM_GRADS:  # on every step or every k-th (k reaches the step as a number), or off
            items.append((p.key, {0: "off", 1: "every"}.get(term_period(value), "every-k")))
        elif p.structural:
            items.append((p.key, value))
    return (demo, *items)


def effective_lr(demo: str, settings: Mapping[str, Any]) -> float:
    """The learning rate given to the optimizer: max-mse's neg-lr variant turns any lr into -|lr|."""
    if demo == "max-mse" and settings["variant"] == "neg-lr":
        return -abs(float(settings["lr"]))
    return float(settings["lr"])


def parse_assignment(text: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SettingError(f"--set takes KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def knob_keys(demo: str, settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The numeric settings of a run (the ``set:<key>`` columns of its records); alpha only as a number."""
    return tuple(p.key for p in params(demo, settings)
                 if p.numeric and p.when(settings) and not (p.kind == "alpha" and isinstance(settings[p.key], str)))


def live_change(demo: str, settings: Mapping[str, Any], key: str, raw) -> Any:
    """``raw`` parsed and checked for a run whose settings are ``settings``, so that it can apply from the
    next step on; raises :class:`SettingError` naming the key for a bad value or a key that cannot change
    during a run (one that shapes the compiled graph or the data)."""
    p = param(demo, key, settings)
    if p.structural or (p.kind == "alpha" and isinstance(settings[key], str)):
        raise SettingError(f"{key} shapes the compiled graph, so it cannot change during a run: set it for the whole run")
    if p.shapes_data:
        raise SettingError(f"{key} shapes the run's data, so it cannot change during a run: set it for the whole run")
    value = p.parse(raw)
    if p.kind == "alpha" and isinstance(value, str):
        raise SettingError(f"alpha={value} shapes the compiled graph, so it cannot change during a run: set it for the whole run")
    return value


def parse_change(text: str) -> tuple[int, str, str]:
    """``"STEP:KEY=VALUE"`` -> ``(STEP, KEY, VALUE)`` (the CLI's ``--at``)."""
    step, sep, assignment = text.partition(":")
    try:
        number = int(step)
    except ValueError:
        number = 0
    if not sep or number < 1:
        raise SettingError(f"--at takes STEP:KEY=VALUE with STEP an integer >= 1, got {text!r}")
    key, value = parse_assignment(assignment)
    return number, key, value


def schedule(demo: str, settings: Mapping[str, Any], texts: Sequence[str], steps: int) -> list[tuple[int, str, Any]]:
    """Checked ``STEP:KEY=VALUE`` changes (the CLI's ``--at``, the page's address) in step order: each key may
    change during a run, each value is allowed, each step lies in a run of ``steps`` steps."""
    current = dict(settings)
    changes = []
    for step, key, raw in sorted((parse_change(str(t)) for t in texts), key=lambda c: c[0]):
        if step > steps:
            raise SettingError(f"{step}:{key}={raw}: step {step} is past the run's {steps} steps")
        value = live_change(demo, current, key, raw)
        current[key] = value
        changes.append((step, key, value))
    return changes


def cli_command(demo: str, settings: Mapping[str, Any], steps: int, seed: int, command: str = "train",
                changes: Sequence[tuple[int, str, Any]] = ()) -> str:
    """The ``python -m lossviz`` command that reproduces a run (only the keys that differ from defaults),
    with an ``--at STEP:KEY=VALUE`` for every knob change ``(step, key, value)`` made during the run."""
    base = defaults(demo, settings)
    parts = ["python", "-m", "lossviz", command, demo]
    for key in keys(demo, settings):
        if key in settings and (settings[key] != base[key] or (demo == "custom" and key in ("task", "loss"))):
            parts += ["--set", shlex.quote(f"{key}={format_value(settings[key])}")]
    for step, key, value in changes:
        parts += ["--at", shlex.quote(f"{step}:{key}={format_value(value)}")]
    parts += ["--steps", str(steps), "--seed", str(seed)]
    return " ".join(parts)


def format_value(value) -> str:
    """A setting as text that parses back to the same value (floats round-trip through ``repr``)."""
    return repr(value) if isinstance(value, float) else str(value)


TRAINING_KEYS = ("lr", "optimizer", "batch_size", "clipnorm", "clipvalue", "term_grads")
COMMON_KEYS = tuple(p.key for p in common(lr=1e-3)) + ("term_grads", "task")  # no knob of a file may take these

# The setting a comparison changes first, and to what: the question's own suggestion against the fix.
COMPARE_KEY = {"policy-value": "mask", "two-branch": "alpha", "sparse-penalty": "variant", "max-mse": "variant",
               "custom": "loss"}
COMPARE_DEFAULT: dict[str, dict[str, Any]] = {
    "policy-value": {"mask": "seed-answer"},
    "two-branch": {"alpha": "trainable"},
    "sparse-penalty": {"variant": "naive"},
    "max-mse": {"variant": "inverse-mse"},
    # the question's loss from logits: the exact form of the default formula, for a side-by-side
    "custom": {"loss": "-(w * y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z)); w=10"},
}

# The terms of each demo's loss, in record order (the per-term gradient probe needs two or more).
TERMS: dict[str, tuple[str, ...]] = {"policy-value": ("value", "policy", "l2"), "two-branch": ("branch_1", "branch_2"),
                                     "sparse-penalty": ("positives", "negatives"), "max-mse": (), "custom": ()}

# The metric a stability map reports by default, per demo.
MAIN_METRIC = {"policy-value": "illegal_mass", "two-branch": "accuracy", "sparse-penalty": "recall", "max-mse": "mse",
               "custom": "recall"}


def main_metric(demo: str, settings: Mapping[str, Any] | None = None) -> str:
    """The metric a stability map reports by default (for ``custom``: by task)."""
    found = spec(demo).main_metric
    return found(settings or {}) if callable(found) else found


for _name in DEMO_NAMES:
    register(Spec(_name, _custom_params if _name == "custom" else PARAMS[_name], TERMS[_name],
                  main_metric=MAIN_METRIC[_name] if _name != "custom"
                  else (lambda s: "mse" if s.get("task") == "regression" else "recall"),
                  compare=(COMPARE_KEY[_name], COMPARE_DEFAULT[_name])))
