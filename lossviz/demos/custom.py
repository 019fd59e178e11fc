"""Your loss, as a formula (demo ``custom``): a per-sample loss typed on the page, parsed with ``ast`` and walked into
``keras.ops`` (``lossviz.formula``), on the sparse-event net and data (``task=binary``) or the max-MSE ones
(``task=regression``). Its knobs are the formula's parameters, so its settings are a function of the formula.
"""

from __future__ import annotations

import numpy as np

from .. import data, formula, lazy
from ..knobs import METRICS, TASK, Param, SettingError, common
from .demo import Context, Demo, Page, View
from . import max_mse, sparse_penalty

models, ops, tf = (lazy.module(m) for m in ("lossviz.models", "keras.ops", "tensorflow"))
nansource = lazy.module("lossviz.nansource")
curves = lazy.module("lossviz.curves")

NAME = "custom"
# the formula by task when none is given (the sparse-penalty question's loss; a maximised MSE)
DEFAULT_FORMULA = {"binary": "-(w * y * log(p) + (1 - y) * log(1 - p)); w=10", "regression": "-(r ** 2)"}

BASE = (*common(lr=1e-3), TASK, METRICS)


def _loss(task: str) -> Param:
    """The formula itself; its default is the task's."""
    return Param("loss", DEFAULT_FORMULA.get(task, DEFAULT_FORMULA["binary"]), "formula",
                 "a formula of the task's inputs (see lossviz.formula)", structural=True,
                 help="per sample; other names are parameters; defaults after ';'")


def formula_of(settings) -> formula.Formula:
    """The parsed formula of a run (raises ``FormulaError``, a ``SettingError``)."""
    task = settings.get("task", "binary")
    return formula.parse(settings.get("loss", DEFAULT_FORMULA.get(task, "")), task)


def params(settings) -> tuple[Param, ...]:
    """The formula demo's settings and its formula's parameters (the settings' loss and task, or the default
    formula), each a number with the formula's default."""
    found = formula_of(settings)
    base = (*BASE, _loss(settings.get("task", "binary")))
    clash = [name for name in found.parameters if name in {p.key for p in base}]
    if clash:
        raise SettingError(f"the formula's parameter {clash[0]} is also a setting of the run: give it another name")
    return base + tuple(Param(name, default, "float", "a finite number", help="a parameter of your formula")
                        for name, default in found.parameters.items())


def inputs(out, y, task):
    """The values a formula of ``task`` reads, from the model's outputs and the targets."""
    if task == "binary":
        return {"y": y["y"], "p": out["probability"], "z": out["logit"]}
    return {"y": y["y"], "yhat": out["y"], "r": out["y"] - y["y"]}


def terms(ctx: Context):
    loss = formula_of(ctx.settings).compile()
    return {}, ops.mean(loss(inputs(ctx.out, ctx.targets, ctx.settings["task"]), ctx.hp))


def metrics(ctx: Context):
    """The metrics of the net the task trains: sparse-penalty's (recall, ...) or max-mse's (mse)."""
    return (sparse_penalty.metrics if ctx.settings["task"] == "binary" else max_mse.metrics)(ctx)


def metric_names(settings) -> tuple[str, ...]:
    return sparse_penalty.METRICS if settings.get("task", "binary") == "binary" else ("mse",)


def loss_curves(settings):
    """A formula's per-sample loss and its derivative: over p (or over the logit z when it reads z and not p) for
    y = 1 and y = 0, or over the residual r for a regression formula."""
    found = formula_of(settings)
    loss = found.compile()
    values = {k: tf.constant(float(settings[k]), tf.float32) for k in found.parameters}

    def binary(y: float, over_logit: bool):
        def fn(x):
            col = x[:, None]
            z = col if over_logit else tf.math.log(col) - tf.math.log1p(-col)
            p = tf.sigmoid(col) if over_logit else col
            return loss({"y": tf.fill(tf.shape(col), y), "p": p, "z": z}, values)
        return fn

    if found.task == "regression":
        r = curves.residual_grid()
        return [curves.curve("y = 0", r, lambda x: loss({"y": tf.zeros((len(r), 1)), "yhat": x[:, None],
                                                          "r": x[:, None]}, values), "residual r")]
    over_logit = "z" in found.inputs and "p" not in found.inputs
    x = np.linspace(-20.0, 20.0, 401) if over_logit else curves.probability_grid()
    label = "logit z" if over_logit else "predicted probability p"
    return [curves.curve(f"y = {y:g}", x, binary(y, over_logit), label) for y in (1.0, 0.0)]


def diagnose(trainer, first) -> str | None:
    """A run whose loss turned non-finite: replay it (same seed and knob changes) to the step before, and name the
    sub-expression of the formula that turns non-finite first on that step's batch, e.g. ``log(p) = -inf at y = 1,
    p = 0``. None when the loss itself stayed finite."""
    if first["nonfinite_in"] != "loss":
        return None
    with nansource.replay(trainer, first["step"]) as again:
        batch = again.next_batch()
        out = again.forward(batch.inputs, training=True)
        values = inputs(out, batch.targets, again.settings["task"])
        values.update(again.demo.hyperparameters(again.settings))
        return formula_of(again.settings).diagnose(values)


def view(settings) -> View:
    if settings.get("task", "binary") == "binary":
        return View("histogram", "Predicted probabilities on the whole series")
    return View("scatter", "Predictions against their targets")


DEMO = Demo(
    name=NAME,
    build=lambda s: models.sparse_penalty() if s["task"] == "binary" else models.max_mse(),
    make_data=lambda s, seed: data.sparse_events(seed) if s["task"] == "binary" else data.max_mse(seed),
    terms=terms,
    metrics=metrics,
    metric_names=metric_names,
    params=params,
    main_metric=lambda s: "mse" if s.get("task") == "regression" else "recall",
    # the question's loss from logits: the exact form of the default formula, for a side-by-side
    compare=("loss", {"loss": "-(w * y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z)); w=10"}),
    first_keys=("task", "loss"),
    always_written=("task", "loss"),
    metrics_on_eval=True,
    page=Page(
        title="Your loss",
        problem="Type your own per-sample loss as a formula (or start from a preset) and get the whole treatment: its "
                "curve and derivative, live training with its parameters as knobs, where it turns NaN, its landscape "
                "and stability map, and a Keras class to copy. The text is parsed and compiled into `keras.ops`; "
                "nothing you type is executed.",
        nav_title="Your loss (a formula)", icon=":material/functions:", address="Your_loss",
        file="pages/5_Your_loss.py", view=view, header="formula", diagnosis="In the formula",
        link="Write your own loss"),
    diagnose=diagnose,
    curves=loss_curves,
    presets=formula.PRESETS,
    module=__name__,
)
