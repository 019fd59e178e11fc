"""Masked policy/value loss (question 000, AlphaGo Zero): a two-headed network whose loss needs both heads.

``(z - v)^2 - pi^T log p + c ||theta||^2`` with p a softmax over the legal moves only (``mask=logits``), a plain
softmax over every move (``none``), or the popular answer's mask built from ``pi == 1`` (``seed-answer``), which
ignores every spread target.
"""

from __future__ import annotations

import numpy as np

from .. import data, lazy
from ..knobs import TERM_GRADS, Param, Slider, common
from ..scenario import Scenario, column, finite, mean
from .demo import Context, Demo, Page, View

losses, models, ops, tf = (lazy.module(m) for m in ("lossviz.losses", "lossviz.models", "keras.ops", "tensorflow"))
curves = lazy.module("lossviz.curves")

NAME = "policy-value"

PARAMS = (
    *common(lr=1e-3),
    Param("c", 1e-4, "float", "a number >= 0", lambda v: v >= 0, log_scale=True,
          help="L2 regularisation c in c||theta||^2 (kernels)", slider=Slider("log", -6, 0)),
    TERM_GRADS,
    Param("mask", "logits", "choice", "one of logits, none, seed-answer", choices=("logits", "none", "seed-answer"),
          structural=True, help="logits: masked softmax; none: plain softmax; seed-answer: mask from pi == 1"),
)


def _kernels(model):
    return [w for w in model.trainable_weights if w.path.endswith("kernel")]


def terms(ctx: Context):
    mode = ctx.settings["mask"]
    logits, mask, y = ctx.out["policy"], ctx.inputs["mask"], ctx.targets
    if mode == "seed-answer":
        policy = losses.pi_equals_one_policy_loss(y["pi"], ops.softmax(logits, axis=-1))
        value = ops.square(y["z"][:, 0] - ctx.out["value"][:, 0])
        found = {"value": value, "policy": policy}
    else:
        legal = mask if mode == "logits" else ops.ones_like(mask)
        found = losses.policy_value_terms(y["pi"], logits, legal, y["z"], ctx.out["value"])
    found = {k: ops.mean(v) for k, v in found.items()}
    found["l2"] = losses.l2_penalty(_kernels(ctx.model), ctx.hp["c"])
    return found, sum(found.values())


def policy_probabilities(policy_logits, mask, mode: str):
    """The move probabilities a policy-value model of ``mode`` plays with: masked softmax for ``logits``, plain
    softmax (illegal moves included) otherwise."""
    if mode == "logits":
        return losses.masked_softmax(policy_logits, mask)
    return ops.softmax(policy_logits, axis=-1)


def metrics(ctx: Context):
    mask = ctx.inputs["mask"]
    p = policy_probabilities(ctx.out["policy"], mask, ctx.settings["mask"])
    return {"illegal_mass": ops.mean(ops.sum(p * (1.0 - mask), axis=-1))}


def loss_curves(settings, moves: int = 8, legal: int = 3):
    """The policy term over the logit of the target move (other legal logits 0, illegal logits 2), with the demo's
    mask mode, and the value term over v for z = 1."""
    gap = np.linspace(-10.0, 10.0, 401)
    mask = np.zeros((len(gap), moves), np.float32)
    mask[:, :legal] = 1.0
    pi = np.zeros_like(mask)
    pi[:, 0] = 1.0
    mode = settings["mask"]

    def policy(x):
        logits = tf.concat([x[:, None], tf.zeros((len(gap), legal - 1)), tf.fill((len(gap), moves - legal), 2.0)], 1)
        if mode == "seed-answer":
            return losses.pi_equals_one_policy_loss(pi, tf.nn.softmax(logits))
        used = mask if mode == "logits" else np.ones_like(mask)
        return losses.policy_value_terms(pi, logits, used, np.zeros(len(gap)), np.zeros(len(gap)))["policy"]

    v = np.linspace(-1.0, 1.0, 201)
    return [
        curves.curve(f"policy term, mask={mode}", gap, policy, "logit of the target move"),
        curves.curve("value term (z = 1)", v, lambda x: tf.square(1.0 - x), "predicted value v"),
    ]


def surface(settings, n: int = 61):
    """The per-sample policy/value loss over (value error z - v, logit gap of the target move), 3 legal moves."""
    err = np.linspace(-2.0, 2.0, n)
    gap = np.linspace(-8.0, 8.0, n)
    grid_e, grid_g = np.meshgrid(err, gap)
    logits = np.zeros((grid_g.size, 3), np.float32)
    logits[:, 0] = grid_g.ravel()
    pi = np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (grid_g.size, 1))
    z = grid_e.ravel().astype(np.float32)
    loss = np.asarray(losses.policy_value_loss(pi, logits, np.ones_like(pi), z, np.zeros_like(z)))
    return curves.Surface("one target move among 3 legal", err, gap, loss.reshape(grid_g.shape), "value error z - v",
                          "logit gap of the target move")


FIXES = {
    "dead-gradient": ("mask the logits of illegal moves instead of selecting pi == 1", {"mask": "logits"}),
    "nonfinite-at-edge": ("mask the logits of illegal moves", {"mask": "logits"}),
}

SCENARIOS = (
    Scenario(
        NAME, "seed-answer", "The accepted answer's mask (pi == 1)",
        {"mask": "seed-answer"}, 300,
        "The accepted answer builds the mask from pi == 1. Most targets here spread their visits over several "
        "moves, so for them the mask is empty and the policy term is 0: the net never learns to avoid illegal "
        "moves from them. After 300 steps a fifth or more of the probability still sits on illegal moves.",
        "illegal_mass averaged over the last 50 steps is above 0.2",
        lambda r: finite(r) and mean(r, "metric:illegal_mass", -50) > 0.2),
    Scenario(
        NAME, "no-mask", "No mask: a plain softmax over every move",
        {"mask": "none"}, 300,
        "A plain softmax over all 32 moves learns to lower illegal moves only through the targets' zeros; it never "
        "reaches 0. Compare the illegal_mass metric with the masked run.",
        "illegal_mass stays above 0.1 to the end",
        lambda r: finite(r) and min(column(r, "metric:illegal_mass")) > 0.1),
    Scenario(
        NAME, "masked", "Masked logits: illegal moves get exactly 0",
        {"mask": "logits"}, 300,
        "The legal-move mask sets illegal logits to -inf before the softmax: their probability is exactly 0 at "
        "every step (illegal_mass = 0, never NaN), and the loss falls. The legal moves' probabilities still sum "
        "to 1: the mask changes where the mass goes, not how much there is.",
        "illegal_mass is exactly 0 at every step and the loss falls",
        lambda r: finite(r) and max(column(r, "metric:illegal_mass")) == 0.0
        and mean(r, "loss", -30) < mean(r, "loss", 0, 30)),
    Scenario(
        NAME, "raise-c", "Raise c in c||theta||^2 while it trains",
        {"mask": "logits", "c": 1e-4}, 400,
        "At step 201 c goes from 1e-4 to 0.05 (the marker): the l2 term jumps about 500-fold and dominates the "
        "loss; the optimizer then spends its steps shrinking the kernels, and the l2 term falls again. Watch "
        "the terms on the loss chart, and their own gradients in the gradient anatomy.",
        "the l2 term jumps over 100-fold at step 201, then falls over 5-fold by the end",
        lambda r: finite(r) and mean(r, "loss:l2", 200, 205) > 100 * mean(r, "loss:l2", 190, 200)
        and mean(r, "loss:l2", -10) < mean(r, "loss:l2", 200, 205) / 5,
        schedule=((201, "c", 0.05),)),
)

DEMO = Demo(
    name=NAME,
    build=lambda s: models.policy_value(masked=s["mask"] == "logits"),
    make_data=lambda s, seed: data.policy_value(seed),
    terms=terms,
    metrics=metrics,
    term_names=("value", "policy", "l2"),
    metric_names=("illegal_mass",),
    params=PARAMS,
    main_metric="illegal_mass",
    compare=("mask", {"mask": "seed-answer"}),
    page=Page(
        title="Masked policy/value loss (AlphaGo Zero)",
        problem="A two-headed network whose loss needs both heads, and a legal-move mask. A popular answer builds the "
                "mask from `pi == 1`: whenever the search spreads its visits over several moves, that mask is empty "
                "and the policy head learns nothing. Here p is a softmax over the legal moves only.",
        latex=r"l = (z - v)^2 - \pi^\top \log p + c\,\lVert\theta\rVert^2",
        nav_title="Policy / value (AlphaGo Zero)", icon=":material/grid_on:", address="Policy_value",
        file="pages/1_Policy_value.py", view=View("board", "A position: target pi against the predicted p")),
    scenarios=SCENARIOS,
    fixes=FIXES,
    curves=loss_curves,
    surface=surface,
    module=__name__,
)
