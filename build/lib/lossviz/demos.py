"""The four demos as graphs: model, data, loss terms and metrics of each (settings live in ``settings``).

Every term and metric function takes ``(model, outputs, (inputs, targets), hp, extra, settings)``, where
``hp`` holds the numeric settings as float32 tensors and ``extra`` the demo's own variables (alpha or
the log-variances), and returns scalars, so the trainer can trace it inside its compiled step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import keras
from keras import ops

from . import data, losses, models, settings as config


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
    p = policy_probabilities(out["policy"], mask, settings["mask"])
    return {"illegal_mass": ops.mean(ops.sum(p * (1.0 - mask), axis=-1))}


def _two_branch_terms(model, out, batch, hp, extra, settings):
    _, y = batch
    l1 = losses.mse(y["regression"], out["regression"])
    l2 = keras.losses.categorical_crossentropy(y["classification"], out["classification"])
    terms = {"branch_1": _mean(l1), "branch_2": _mean(l2)}
    if not isinstance(settings["alpha"], str) or settings["alpha"] == "trainable":
        total = _mean(losses.weighted_two_branch(l1, l2, _alpha(hp, extra, settings)))
    else:
        parts = _two_branch_parts(terms, hp, extra, settings)
        total = parts["branch_1"] + parts["branch_2"]
    return terms, ops.reshape(total, ())


def _two_branch_parts(terms, hp, extra, settings):
    """The two addends of the total loss, each with its weight (their gradients are the branches' pulls)."""
    t1, t2 = terms["branch_1"], terms["branch_2"]
    mode = settings["alpha"]
    if mode == "uncertainty":
        s1, s2 = ops.reshape(extra["log_var_1"], ()), ops.reshape(extra["log_var_2"], ())
        return {"branch_1": 0.5 * ops.exp(-s1) * t1 + 0.5 * s1, "branch_2": ops.exp(-s2) * t2 + 0.5 * s2}
    if mode == "gradnorm":  # (w1 L1 + w2 L2) / 2 with w1 + w2 = 2: on the scale of alpha L1 + (1 - alpha) L2
        return {"branch_1": 0.5 * ops.reshape(extra["gradnorm_w1"], ()) * t1,
                "branch_2": 0.5 * ops.reshape(extra["gradnorm_w2"], ()) * t2}
    alpha = _alpha(hp, extra, settings)
    return {"branch_1": alpha * t1, "branch_2": (1.0 - alpha) * t2}


def _alpha(hp, extra, settings):
    """The weight of branch 1: the setting, the clipped variable, w1 / (w1 + w2) for uncertainty weighting and
    GradNorm, 0.5 for PCGrad (equal weights; the conflicts are projected away instead)."""
    mode = settings["alpha"]
    if mode == "trainable":
        return ops.reshape(extra["alpha"], ())
    if mode == "uncertainty":
        w1 = 0.5 * ops.exp(-extra["log_var_1"])
        w2 = ops.exp(-extra["log_var_2"])
        return ops.reshape(w1 / (w1 + w2), ())
    if mode == "gradnorm":
        w1, w2 = extra["gradnorm_w1"], extra["gradnorm_w2"]
        return ops.reshape(w1 / (w1 + w2), ())
    if mode == "pcgrad":
        return ops.convert_to_tensor(0.5, "float32")
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


def formula_inputs(out, y, task):
    """The values a formula of ``task`` reads, from the model's outputs and the targets."""
    if task == "binary":
        return {"y": y["y"], "p": out["probability"], "z": out["logit"]}
    return {"y": y["y"], "yhat": out["y"], "r": out["y"] - y["y"]}


def _custom_terms(model, out, batch, hp, extra, settings):
    _, y = batch
    loss = config.formula_of(settings).compile()
    per_sample = loss(formula_inputs(out, y, settings["task"]), hp)
    return {}, _mean(per_sample)


def _custom_metrics(model, out, batch, hp, extra, settings):
    if settings["task"] == "binary":
        return _sparse_metrics(model, out, batch, hp, extra, settings)
    return _max_mse_metrics(model, out, batch, hp, extra, settings)


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Demo:
    name: str
    build: Callable[[Mapping[str, Any]], keras.Model]
    make_data: Callable[[Mapping[str, Any], int], data.Dataset]
    terms: Callable  # -> (dict of scalar terms, total loss)
    metrics: Callable  # -> dict of scalar metrics
    term_names: tuple[str, ...]
    metric_names: tuple[str, ...] | Callable[[Mapping[str, Any]], tuple[str, ...]]
    numeric_keys: tuple[str, ...] | Callable[[Mapping[str, Any]], tuple[str, ...]]  # fed to the step as tensors
    metrics_on_eval: bool = False  # metrics on a fixed evaluation sample instead of the batch
    extra_variables: Callable[[Mapping[str, Any]], dict[str, float]] = lambda s: {}  # trained with the model
    extra_state: Callable[[Mapping[str, Any]], dict[str, float]] = lambda s: {}  # kept by the step, not trained
    alpha: Callable | None = None
    # the addends of the total loss, named as the terms (default: the terms themselves); their gradients are
    # what the per-term gradient probe measures, and they sum to the total loss
    parts: Callable | None = None
    shared_layer: str | None = None  # the last layer all terms pass through (GradNorm's W)
    # a file of your own code: its validation data (None: a sample of the data), how its model is called on the
    # flat dict of inputs (returning a flat dict of outputs), and weights from the layers' own initialisers
    make_eval: Callable[[Mapping[str, Any], int], data.Dataset | None] = lambda s, seed: None
    call: Callable | None = None
    own_initializers: bool = False

    def forward(self, model, inputs, training: bool):
        """The model's outputs, as a dict of tensors, on a dict of input tensors."""
        return self.call(model, inputs, training) if self.call is not None else model(inputs, training=training)

    def parts_of(self, terms, hp, extra, settings):
        return self.parts(terms, hp, extra, settings) if self.parts is not None else dict(terms)

    def metrics_of(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return self.metric_names(settings) if callable(self.metric_names) else self.metric_names

    def hyperparameters(self, settings: Mapping[str, Any]) -> dict[str, float]:
        """The numeric settings as floats (alpha's modes "trainable"/"uncertainty" feed a 0.5 that is unused)."""
        keys = self.numeric_keys(settings) if callable(self.numeric_keys) else self.numeric_keys
        return {k: 0.5 if isinstance(settings[k], str) else float(settings[k]) for k in keys}


DEMOS: dict[str, Demo] = {
    "policy-value": Demo(
        name="policy-value",
        build=lambda s: models.policy_value(masked=s["mask"] == "logits"),
        make_data=lambda s, seed: data.policy_value(seed),
        terms=_policy_value_terms,
        metrics=_policy_value_metrics,
        term_names=config.TERMS["policy-value"],
        metric_names=("illegal_mass",),
        numeric_keys=("c",),
    ),
    "two-branch": Demo(
        name="two-branch",
        build=lambda s: models.two_branch(),
        make_data=lambda s, seed: data.two_branch(seed),
        terms=_two_branch_terms,
        metrics=_two_branch_metrics,
        term_names=config.TERMS["two-branch"],
        metric_names=("accuracy",),
        numeric_keys=("alpha", "gradnorm_alpha"),
        extra_variables=lambda s: {"trainable": {"alpha": 0.5},
                                   "uncertainty": {"log_var_1": 0.0, "log_var_2": 0.0}}.get(s["alpha"], {}),
        # GradNorm's weights, and each branch's loss at step 1 (0: not measured yet)
        extra_state=lambda s: ({"gradnorm_w1": 1.0, "gradnorm_w2": 1.0, "gradnorm_l0_1": 0.0, "gradnorm_l0_2": 0.0}
                               if s["alpha"] == "gradnorm" else {}),
        alpha=_alpha,
        parts=_two_branch_parts,
        shared_layer="trunk",
    ),
    "sparse-penalty": Demo(
        name="sparse-penalty",
        build=lambda s: models.sparse_penalty(),
        make_data=lambda s, seed: data.sparse_events(seed, positive_rate=s["positive_rate"]),
        terms=_sparse_terms,
        metrics=_sparse_metrics,
        term_names=config.TERMS["sparse-penalty"],
        metric_names=("recall", "precision", "mean_pred"),
        numeric_keys=("penalty", "epsilon"),
        metrics_on_eval=True,
    ),
    "max-mse": Demo(
        name="max-mse",
        build=lambda s: models.max_mse(),
        make_data=lambda s, seed: data.max_mse(seed),
        terms=_max_mse_terms,
        metrics=_max_mse_metrics,
        term_names=(),
        metric_names=("mse",),
        numeric_keys=("epsilon",),
    ),
    "custom": Demo(
        name="custom",
        build=lambda s: models.sparse_penalty() if s["task"] == "binary" else models.max_mse(),
        make_data=lambda s, seed: data.sparse_events(seed) if s["task"] == "binary" else data.max_mse(seed),
        terms=_custom_terms,
        metrics=_custom_metrics,
        term_names=(),
        metric_names=lambda s: ("recall", "precision", "mean_pred") if s["task"] == "binary" else ("mse",),
        numeric_keys=lambda s: tuple(config.formula_of(s).parameters),
        metrics_on_eval=True,
    ),
}


def get_demo(name: str) -> Demo:
    return DEMOS[config.check_demo(name)]


def register(demo: Demo) -> None:
    """Add a demo (a file of your own code: ``usercode``); its settings are registered in ``settings``."""
    DEMOS[demo.name] = demo


def policy_probabilities(policy_logits, mask, mode: str):
    """The move probabilities a policy-value model of ``mode`` plays with: masked softmax for ``logits``,
    plain softmax (illegal moves included) otherwise."""
    if mode == "logits":
        return losses.masked_softmax(policy_logits, mask)
    return ops.softmax(policy_logits, axis=-1)
