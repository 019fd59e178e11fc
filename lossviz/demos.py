"""The four demos: their settings (keys, defaults, allowed values), models, data, loss terms and metrics.

A setting is either *structural* (it changes the compiled graph: optimizer, mask mode, variant, alpha
mode) or *numeric* (fed to the compiled step as a tensor, so changing it never retraces). The CLI, the
pages and the sweep all validate settings here, through :func:`resolve`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import keras
import numpy as np
from keras import ops

from . import data, losses, models


class SettingError(ValueError):
    """A wrong demo, key or value; the message is one line that names what is allowed."""


@dataclass(frozen=True)
class Param:
    key: str
    default: Any
    kind: str  # "float", "int", "choice", "alpha"
    allowed: str  # words for the error message and the UI help
    check: Callable[[Any], bool] = lambda v: True
    choices: tuple[str, ...] = ()
    structural: bool = False
    log_scale: bool = False
    help: str = ""

    def parse(self, raw) -> Any:
        """A typed, checked value from a string (CLI) or a Python value (pages, API)."""
        value = raw
        try:
            if self.kind == "choice":
                value = str(raw)
                ok = value in self.choices
            elif self.kind == "alpha":
                if isinstance(raw, str) and raw in self.choices:
                    return raw
                value = float(raw)
                ok = math.isfinite(value) and 0.0 <= value <= 1.0
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


def _common(lr: float, batch_size: int = 32) -> list[Param]:
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


def _mean(x):
    return ops.mean(x)


# ----------------------------------------------------------------------------- per-demo graphs


def _kernels(model):
    return [w for w in model.trainable_weights if w.path.endswith("kernel")]


def _policy_value_terms(model, out, batch, hp, extra, settings):
    x, y = batch
    mode = settings["mask"]
    logits, mask = out["policy"], x["mask"]
    if mode == "seed-answer":
        policy = losses.pi_equals_one_policy_loss(y["pi"], ops.softmax(logits, axis=-1))
        value = ops.square(y["z"][:, 0] - out["value"][:, 0])
        terms = {"value": value, "policy": policy}
    else:
        legal = mask if mode == "logits" else ops.ones_like(mask)
        terms = losses.policy_value_terms(y["pi"], logits, legal, y["z"], out["value"])
    terms = {k: _mean(v) for k, v in terms.items()}
    terms["l2"] = losses.l2_penalty(_kernels(model), hp["c"])
    return terms, sum(terms.values())


def _policy_value_metrics(model, out, batch, hp, extra, settings):
    x, _ = batch
    mask = x["mask"]
    if settings["mask"] == "logits":
        p = losses.masked_softmax(out["policy"], mask)
    else:
        p = ops.softmax(out["policy"], axis=-1)
    return {"illegal_mass": ops.mean(ops.sum(p * (1.0 - mask), axis=-1))}


def _two_branch_terms(model, out, batch, hp, extra, settings):
    _, y = batch
    l1 = losses.mse(y["regression"], out["regression"])
    l2 = keras.losses.categorical_crossentropy(y["classification"], out["classification"])
    terms = {"branch_1": _mean(l1), "branch_2": _mean(l2)}
    if settings["alpha"] == "uncertainty":
        s1, s2 = extra["log_var_1"], extra["log_var_2"]
        total = 0.5 * ops.exp(-s1) * terms["branch_1"] + ops.exp(-s2) * terms["branch_2"] + 0.5 * (s1 + s2)
    else:
        total = _mean(losses.weighted_two_branch(l1, l2, _alpha(hp, extra, settings)))
    return terms, ops.reshape(total, ())


def _alpha(hp, extra, settings):
    """The weight of branch 1: the setting, the clipped variable, or w1 / (w1 + w2) for uncertainty weighting."""
    mode = settings["alpha"]
    if mode == "trainable":
        return ops.reshape(extra["alpha"], ())
    if mode == "uncertainty":
        w1 = 0.5 * ops.exp(-extra["log_var_1"])
        w2 = ops.exp(-extra["log_var_2"])
        return ops.reshape(w1 / (w1 + w2), ())
    return hp["alpha"]


def _two_branch_metrics(model, out, batch, hp, extra, settings):
    _, y = batch
    hit = ops.argmax(out["classification"], axis=-1) == ops.argmax(y["classification"], axis=-1)
    return {"accuracy": ops.mean(ops.cast(hit, "float32"))}


def _sparse_per_sample(out, y, hp, variant):
    if variant == "naive":
        return losses.naive_sparse_penalty_bce(y, out["probability"], hp["penalty"])
    if variant == "logits":
        return losses.sparse_penalty_bce(y, out["logit"], hp["penalty"], hp["epsilon"], from_logits=True)
    if variant == "batch-switch":
        return losses.batch_switch_penalty_bce(y, out["probability"], hp["penalty"], hp["epsilon"])
    return losses.sparse_penalty_bce(y, out["probability"], hp["penalty"], hp["epsilon"])


def _sparse_terms(model, out, batch, hp, extra, settings):
    _, y = batch
    per_sample = _sparse_per_sample(out, y["y"], hp, settings["variant"])
    positive = y["y"][:, 0] > 0
    n = ops.cast(ops.shape(per_sample)[0], "float32")
    terms = {
        "positives": ops.sum(ops.where(positive, per_sample, 0.0)) / n,
        "negatives": ops.sum(ops.where(positive, 0.0, per_sample)) / n,
    }
    return terms, _mean(per_sample)


def _sparse_metrics(model, out, batch, hp, extra, settings):
    _, y = batch
    truth = y["y"][:, 0] > 0.5
    predicted = out["probability"][:, 0] > 0.5
    tp = ops.sum(ops.cast(truth & predicted, "float32"))
    positives = ops.sum(ops.cast(truth, "float32"))
    flagged = ops.sum(ops.cast(predicted, "float32"))
    return {
        "recall": tp / ops.maximum(positives, 1.0),
        "precision": tp / ops.maximum(flagged, 1.0),
        "mean_pred": ops.mean(out["probability"]),
    }


def _max_mse_terms(model, out, batch, hp, extra, settings):
    _, y = batch
    variant = settings["variant"]
    if variant == "neg-mse":
        total = losses.negative_mse(y["y"], out["y"])
    elif variant == "inverse-mse":
        total = losses.inverse_mse(y["y"], out["y"], hp["epsilon"])
    else:
        total = losses.mse(y["y"], out["y"])
    return {}, _mean(total)


def _max_mse_metrics(model, out, batch, hp, extra, settings):
    _, y = batch
    return {"mse": _mean(losses.mse(y["y"], out["y"]))}


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Demo:
    name: str
    title: str
    params: tuple[Param, ...]
    build: Callable[[Mapping[str, Any]], keras.Model]
    make_data: Callable[[Mapping[str, Any], int], data.Dataset]
    terms: Callable  # (model, outputs, batch, hp, extra, settings) -> (dict of scalar terms, total)
    metrics: Callable  # same arguments -> dict of scalar metrics
    term_names: tuple[str, ...]
    metric_names: tuple[str, ...]
    main_metric: str
    metrics_on_eval: bool = False  # metrics on a fixed evaluation sample instead of the batch
    extra_variables: Callable[[Mapping[str, Any]], dict[str, float]] = lambda s: {}
    alpha: Callable | None = None
    lr_sign: Callable[[Mapping[str, Any]], float] = lambda s: 1.0
    numeric_keys: tuple[str, ...] = field(default=())

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(p.key for p in self.params)

    def param(self, key: str) -> Param:
        for p in self.params:
            if p.key == key:
                return p
        raise SettingError(f"unknown key {key!r} for {self.name}; allowed: {', '.join(self.keys)}")

    def defaults(self) -> dict[str, Any]:
        return {p.key: p.default for p in self.params}

    def structure(self, settings: Mapping[str, Any]) -> tuple:
        """The settings that shape the compiled graph (the cache key of a built model and step)."""
        items = []
        for p in self.params:
            value = settings[p.key]
            if p.kind == "alpha":
                value = value if isinstance(value, str) else "fixed"
            if p.structural or p.kind == "alpha":
                items.append((p.key, value))
        return (self.name, *items)

    def hyperparameters(self, settings: Mapping[str, Any]) -> dict[str, float]:
        """The numeric settings fed to the compiled step as float32 scalars (a fixed set of keys per demo)."""
        hp = {}
        for key in self.numeric_keys:
            value = settings[key]
            hp[key] = float(value) if not isinstance(value, str) else 0.5
        return hp


_EPSILON_BCE = Param("epsilon", 1e-7, "float", "a number in (0, 0.5)", lambda v: 0 < v < 0.5, log_scale=True,
                     help="clip p to [epsilon, 1 - epsilon]")
_EPSILON_INV = Param("epsilon", 0.0, "float", "a number >= 0", lambda v: v >= 0,
                     help="added to the squared residual of the inverse MSE")

DEMOS: dict[str, Demo] = {
    "policy-value": Demo(
        name="policy-value",
        title="Masked policy/value loss (AlphaGo Zero)",
        params=(
            *_common(lr=1e-3),
            Param("c", 1e-4, "float", "a number >= 0", lambda v: v >= 0, log_scale=True,
                  help="L2 regularisation c in c||theta||^2 (kernels)"),
            Param("mask", "logits", "choice", "one of logits, none, seed-answer",
                  choices=("logits", "none", "seed-answer"), structural=True,
                  help="logits: masked softmax; none: plain softmax; seed-answer: mask from pi == 1"),
        ),
        build=lambda s: models.policy_value(masked=s["mask"] == "logits"),
        make_data=lambda s, seed: data.policy_value(seed),
        terms=_policy_value_terms,
        metrics=_policy_value_metrics,
        term_names=("value", "policy", "l2"),
        metric_names=("illegal_mass",),
        main_metric="illegal_mass",
        numeric_keys=("c",),
    ),
    "two-branch": Demo(
        name="two-branch",
        title="Weighted two-branch loss",
        params=(
            *_common(lr=1e-2),
            Param("alpha", 0.5, "alpha", "a number in [0, 1], trainable or uncertainty",
                  choices=("trainable", "uncertainty"),
                  help="weight of branch 1; trainable: a variable clipped to [0, 1]; uncertainty: Kendall et al. 2018"),
        ),
        build=lambda s: models.two_branch(),
        make_data=lambda s, seed: data.two_branch(seed),
        terms=_two_branch_terms,
        metrics=_two_branch_metrics,
        term_names=("branch_1", "branch_2"),
        metric_names=("accuracy",),
        main_metric="accuracy",
        extra_variables=lambda s: {"trainable": {"alpha": 0.5},
                                   "uncertainty": {"log_var_1": 0.0, "log_var_2": 0.0}}.get(s["alpha"], {}),
        alpha=_alpha,
        numeric_keys=("alpha",),
    ),
    "sparse-penalty": Demo(
        name="sparse-penalty",
        title="Sparse-penalty binary cross-entropy",
        params=(
            *_common(lr=1e-3),
            Param("variant", "logits", "choice", "one of naive, clipped, logits, batch-switch",
                  choices=("naive", "clipped", "logits", "batch-switch"), structural=True),
            Param("penalty", 10.0, "float", "a number > 0", lambda v: v > 0, log_scale=True,
                  help="weight of each positive sample"),
            _EPSILON_BCE,
            Param("positive_rate", 0.02, "float", "a number in (0, 1)", lambda v: 0 < v < 1,
                  help="share of hours with an event"),
        ),
        build=lambda s: models.sparse_penalty(),
        make_data=lambda s, seed: data.sparse_events(seed, positive_rate=s["positive_rate"]),
        terms=_sparse_terms,
        metrics=_sparse_metrics,
        term_names=("positives", "negatives"),
        metric_names=("recall", "precision", "mean_pred"),
        main_metric="recall",
        metrics_on_eval=True,
        numeric_keys=("penalty", "epsilon"),
    ),
    "max-mse": Demo(
        name="max-mse",
        title="Maximised MSE",
        params=(
            *_common(lr=1e-2),
            Param("variant", "neg-mse", "choice", "one of neg-mse, inverse-mse, neg-lr",
                  choices=("neg-mse", "inverse-mse", "neg-lr"), structural=True,
                  help="neg-mse: minimise -MSE; inverse-mse: minimise 1/MSE-style; neg-lr: MSE with lr < 0"),
            _EPSILON_INV,
        ),
        build=lambda s: models.max_mse(),
        make_data=lambda s, seed: data.max_mse(seed),
        terms=_max_mse_terms,
        metrics=_max_mse_metrics,
        term_names=(),
        metric_names=("mse",),
        main_metric="mse",
        lr_sign=lambda s: -1.0 if s["variant"] == "neg-lr" else 1.0,
        numeric_keys=("epsilon",),
    ),
}


def get_demo(name: str) -> Demo:
    try:
        return DEMOS[name]
    except KeyError:
        raise SettingError(f"unknown demo {name!r}; allowed: {', '.join(DEMOS)}") from None


def resolve(demo: str | Demo, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The demo's defaults with ``overrides`` parsed and checked; raises :class:`SettingError`."""
    demo = get_demo(demo) if isinstance(demo, str) else demo
    settings = demo.defaults()
    for key, raw in (overrides or {}).items():
        settings[key] = demo.param(key).parse(raw)
    return settings


def parse_assignment(text: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` -> ``(KEY, VALUE)``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise SettingError(f"--set takes KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def effective_lr(demo: Demo, settings: Mapping[str, Any]) -> float:
    """The learning rate given to the optimizer: neg-lr turns any lr into -|lr|."""
    sign = demo.lr_sign(settings)
    return -abs(settings["lr"]) if sign < 0 else float(settings["lr"])


def cli_command(demo: str, settings: Mapping[str, Any], steps: int, seed: int, command: str = "train") -> str:
    """The ``python -m lossviz`` command that reproduces a run (only the keys that differ from defaults)."""
    d = get_demo(demo)
    defaults = d.defaults()
    parts = ["python", "-m", "lossviz", command, demo]
    for key in d.keys:
        if key in settings and settings[key] != defaults[key]:
            parts += ["--set", f"{key}={_format_value(settings[key])}"]
    parts += ["--steps", str(steps), "--seed", str(seed)]
    return " ".join(parts)


def _format_value(value) -> str:
    if isinstance(value, float):
        return repr(value) if not value.is_integer() or abs(value) >= 1e16 else str(value)
    return str(value)


