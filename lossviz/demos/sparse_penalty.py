"""Sparse-penalty binary cross-entropy (question 002): events in 2% of the hours, a hand-written penalised BCE.

``-(penalty y log p + (1 - y) log(1 - p))`` per sample, as written (``naive``: NaN once p reaches 0 or 1), clipped
(finite but flat beyond the clip), from logits (exact) or with the per-batch ``K.switch`` an answer suggested.
"""

from __future__ import annotations

import numpy as np

from .. import data, lazy
from ..knobs import METRICS, TERM_GRADS, Param, Slider, common
from ..scenario import Scenario, finite, first_nan_at, mean, column
from .demo import Context, Demo, Page, View

losses, models, ops = (lazy.module(m) for m in ("lossviz.losses", "lossviz.models", "keras.ops"))
curves = lazy.module("lossviz.curves")

NAME = "sparse-penalty"
VARIANTS = ("naive", "clipped", "logits", "batch-switch")

PARAMS = (
    *common(lr=1e-3),
    Param("variant", "logits", "choice", "one of naive, clipped, logits, batch-switch", choices=VARIANTS,
          structural=True),
    Param("penalty", 10.0, "float", "a number > 0", lambda v: v > 0, log_scale=True,
          help="weight of each positive sample", slider=Slider("log", -1, 3)),
    Param("epsilon", 1e-7, "float", "a number in (0, 0.5)", lambda v: 0 < v < 0.5, log_scale=True,
          help="clip p to [epsilon, 1 - epsilon]", slider=Slider("log", -9, 0)),
    Param("positive_rate", 0.02, "float", "a number in (0, 1)", lambda v: 0 < v < 1,
          help="share of hours with an event", shapes_data=True, slider=Slider("linear", 0.005, 0.5, 0.005)),
    TERM_GRADS,
    METRICS,
)


def per_sample(out, y, hp, variant):
    """The per-sample loss of a variant, from the outputs (the logit and its probability)."""
    if variant == "naive":
        return losses.naive_sparse_penalty_bce(y, out["probability"], hp["penalty"])
    if variant == "logits":
        return losses.sparse_penalty_bce(y, out["logit"], hp["penalty"], hp["epsilon"], from_logits=True)
    if variant == "batch-switch":
        return losses.batch_switch_penalty_bce(y, out["probability"], hp["penalty"], hp["epsilon"])
    return losses.sparse_penalty_bce(y, out["probability"], hp["penalty"], hp["epsilon"])


def terms(ctx: Context):
    y = ctx.targets["y"]
    loss = per_sample(ctx.out, y, ctx.hp, ctx.settings["variant"])
    positive = y[:, 0] > 0
    n = ops.cast(ops.shape(loss)[0], "float32")
    found = {"positives": ops.sum(ops.where(positive, loss, 0.0)) / n,
             "negatives": ops.sum(ops.where(positive, 0.0, loss)) / n}
    return found, ops.mean(loss)


def metrics(ctx: Context):
    """Recall, precision and the mean predicted probability (a 0.5 threshold)."""
    truth = ctx.targets["y"][:, 0] > 0.5
    predicted = ctx.out["probability"][:, 0] > 0.5
    tp = ops.sum(ops.cast(truth & predicted, "float32"))
    positives = ops.sum(ops.cast(truth, "float32"))
    flagged = ops.sum(ops.cast(predicted, "float32"))
    return {"recall": tp / ops.maximum(positives, 1.0), "precision": tp / ops.maximum(flagged, 1.0),
            "mean_pred": ops.mean(ctx.out["probability"])}


METRICS = ("recall", "precision", "mean_pred")


def loss_curves(settings):
    """Per-sample loss for a positive (y = 1) and a negative (y = 0): over the predicted probability p, or over the
    logit for the ``logits`` variant (which never forms p, so it has no edge to fall off)."""
    variant, penalty, eps = settings["variant"], float(settings["penalty"]), float(settings["epsilon"])
    x = np.linspace(-20.0, 20.0, 401) if variant == "logits" else curves.probability_grid()

    def loss_for(y: float):
        def fn(v):
            col, target = v[:, None], np.full((len(x), 1), y, np.float32)
            if variant == "naive":
                return losses.naive_sparse_penalty_bce(target, col, penalty)
            if variant == "logits":
                return losses.sparse_penalty_bce(target, col, penalty, eps, from_logits=True)
            if variant == "batch-switch":  # a batch of one: it holds a positive exactly when y = 1
                return losses.batch_switch_penalty_bce(target, col, penalty, eps)
            return losses.sparse_penalty_bce(target, col, penalty, eps)
        return fn

    label = "logit of p" if variant == "logits" else "predicted probability p"
    return [curves.curve(f"y = {y:g}", x, loss_for(y), label) for y in (1.0, 0.0)]


def cause(settings):
    if settings.get("variant") != "naive":
        return None
    return ("variant=naive: the sigmoid output reached exactly 0 or 1 in float32, so log(p) or log(1 - p) is -inf "
            f"and 0 * log(0) is NaN; lr={settings.get('lr')} drives the logits there. Use variant=logits (exact) or "
            "clipped (finite, but flat beyond the clip)")


def fixes(settings):
    rate = float(settings.get("positive_rate", 0.02))
    return {
        "nonfinite-at-edge": ("compute the penalised BCE from logits", {"variant": "logits"}),
        "dead-gradient": ("compute the penalised BCE from logits: no clip, no dead gradient", {"variant": "logits"}),
        "constant-predictor": ("weight each positive sample, from logits", {"variant": "logits"}),
        "term-drowned": ("raise the positives' penalty to about (1 - rate) / rate",
                         {"penalty": round((1 - rate) / rate, 1)}),
    }


SCENARIOS = (
    Scenario(
        NAME, "naive-nan", "The question's loss at lr 0.05: NaN at step 3",
        {"variant": "naive", "penalty": 10.0, "lr": 0.05}, 100,
        "The hand-written -(penalty·y·log p + (1 - y)·log(1 - p)) on the sigmoid output. At lr 0.05 two updates "
        "push some logits so far that p is exactly 0 or 1 in float32: log(0) = -inf, 0·(-inf) = NaN. Look at the "
        "NaN panel and the red crosses on the loss chart; every weight is NaN from then on.",
        "the first non-finite value is in the loss, at step 3",
        first_nan_at(3, "loss")),
    Scenario(
        NAME, "clipped-flat", "Clipped: finite, but flat",
        {"variant": "clipped", "penalty": 10.0, "lr": 0.05}, 300,
        "Clipping p to [epsilon, 1 - epsilon] removes the NaN, and the gradient with it: once the sigmoid output "
        "sits beyond the clip, the clip's derivative is 0. The gradient norm drops to exactly 0 and the net says "
        "'no event' for ever (recall 0).",
        "no NaN; the gradient norm is exactly 0 over the last 50 steps and recall is 0",
        lambda r: finite(r) and max(column(r, "grad_norm")[-50:]) == 0.0 and mean(r, "metric:recall", -50) == 0.0),
    Scenario(
        NAME, "batch-switch", "The per-batch switch: learns 'almost always 0'",
        {"variant": "batch-switch", "penalty": 10.0}, 600,
        "The suggested K.switch multiplies the whole batch's loss by the penalty when the batch holds a positive. "
        "That weights batches, not positives: inside a batch the many negatives still win, and the mean "
        "prediction sinks towards the 2% base rate. Recall stays under 10%.",
        "recall averaged over the last 50 steps is below 0.1",
        lambda r: finite(r) and mean(r, "metric:recall", -50) < 0.1),
    Scenario(
        NAME, "logits-raise-penalty", "From logits, then raise the penalty while it trains",
        {"variant": "logits", "penalty": 1.0, "lr": 0.003}, 800,
        "From logits the loss is exact and finite. With penalty 1 (plain BCE) the net learns 'always 0': recall 0. "
        "At step 401 the penalty jumps to 50 (the dashed marker): recall climbs to 1 while precision stays low; the "
        "penalty trades false alarms for hits. Press Play and move the penalty slider yourself.",
        "recall is 0 over steps 351-400 and above 0.8 over the last 50 steps",
        lambda r: finite(r) and mean(r, "metric:recall", 350, 400) == 0.0 and mean(r, "metric:recall", -50) > 0.8,
        schedule=((401, "penalty", 50.0),)),
)

DEMO = Demo(
    name=NAME,
    build=lambda s: models.sparse_penalty(),
    make_data=lambda s, seed: data.sparse_events(seed, positive_rate=s["positive_rate"]),
    terms=terms,
    metrics=metrics,
    term_names=("positives", "negatives"),
    metric_names=METRICS,
    params=PARAMS,
    main_metric="recall",
    compare=("variant", {"variant": "naive"}),
    metrics_on_eval=True,
    page=Page(
        title="Sparse-penalty binary cross-entropy",
        problem="Events in 2% of the hours. Plain BCE learns 'always 0'; the hand-written penalised loss gives NaN; "
                "clipping makes it finite but flat (no gradient); the suggested per-batch `K.switch` does not "
                "weight the positives at all. From logits it is exact.",
        latex=r"L = -\big(\text{penalty}\cdot y \log p + (1 - y)\log(1 - p)\big)",
        nav_title="Sparse-penalty BCE", icon=":material/scatter_plot:", address="Sparse_penalty",
        file="pages/3_Sparse_penalty.py", view=View("histogram", "Predicted probabilities on the whole series")),
    scenarios=SCENARIOS,
    cause=cause,
    fixes=fixes,
    drowning=("negatives", "The negatives drown the positives: the positives' penalty is too small for this "
                           "positive rate (about (1 - rate) / rate balances them)."),
    curves=loss_curves,
    module=__name__,
)
