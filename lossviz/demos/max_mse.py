"""Maximised MSE (question 003): a generator that must maximise an MSE, as -MSE, as 1/MSE, or as the MSE with a
negative learning rate."""

from __future__ import annotations

import numpy as np

from .. import data, lazy
from ..knobs import Param, Slider, common
from ..scenario import Scenario, column, mean
from .demo import Context, Demo, Page, View

losses, models, ops = (lazy.module(m) for m in ("lossviz.losses", "lossviz.models", "keras.ops"))
curves = lazy.module("lossviz.curves")

NAME = "max-mse"

PARAMS = (
    *common(lr=1e-2),
    Param("variant", "neg-mse", "choice", "one of neg-mse, inverse-mse, neg-lr",
          choices=("neg-mse", "inverse-mse", "neg-lr"), structural=True,
          help="neg-mse: minimise -MSE; inverse-mse: minimise 1/MSE-style; neg-lr: MSE with lr < 0"),
    Param("epsilon", 0.0, "float", "a number >= 0", lambda v: v >= 0,
          help="added to the squared residual of the inverse MSE", slider=Slider("log", -9, 0)),
)


def terms(ctx: Context):
    y, out = ctx.targets["y"], ctx.out["y"]
    variant = ctx.settings["variant"]
    if variant == "neg-mse":
        total = losses.negative_mse(y, out)
    elif variant == "inverse-mse":
        total = losses.inverse_mse(y, out, ctx.hp["epsilon"])
    else:
        total = losses.mse(y, out)
    return {}, ops.mean(total)


def metrics(ctx: Context):
    return {"mse": ops.mean(losses.mse(ctx.targets["y"], ctx.out["y"]))}


def learning_rate(settings) -> float:
    """The neg-lr variant turns any lr into -|lr|: gradient ascent on the MSE."""
    lr = float(settings["lr"])
    return -abs(lr) if settings["variant"] == "neg-lr" else lr


def loss_curves(settings):
    """MSE, -MSE and the inverse MSE over the residual r = y_pred - y_true."""
    eps = float(settings["epsilon"])
    r = curves.residual_grid()
    zero = np.zeros((len(r), 1), np.float32)
    return [
        curves.curve("MSE (neg-lr ascends it)", r, lambda x: losses.mse(zero, x[:, None]), "residual r"),
        curves.curve("-MSE (neg-mse)", r, lambda x: losses.negative_mse(zero, x[:, None]), "residual r"),
        curves.curve(f"1/(r^2 + {eps:g}) (inverse-mse)", r, lambda x: losses.inverse_mse(zero, x[:, None], eps),
                     "residual r"),
    ]


def cause(settings):
    if settings.get("variant") == "inverse-mse" and settings.get("epsilon", 0) == 0:
        return "variant=inverse-mse with epsilon=0: a residual reached 0 and 1/r^2 is inf; set epsilon > 0"
    return None


FIXES = {
    "unbounded": ("1/MSE with an epsilon has a floor of 0", {"variant": "inverse-mse", "epsilon": 0.001}),
    "exploding-gradient": ("an epsilon in 1/(r^2 + epsilon) caps the gradient", {"epsilon": 0.001}),
    "nonfinite-at-edge": ("an epsilon in 1/(r^2 + epsilon) keeps it finite", {"epsilon": 0.001}),
}

SCENARIOS = (
    Scenario(
        NAME, "neg-mse", "-MSE: the generator climbs the MSE",
        {"variant": "neg-mse"}, 300,
        "Minimising -MSE maximises the MSE: the loss falls below 0 as the predictions leave the diagonal (see the "
        "mse metric rise). The climb slows as the sigmoid outputs reach 0 or 1.",
        "the MSE rises by more than 0.05",
        lambda r: mean(r, "metric:mse", -20) > mean(r, "metric:mse", 0, 20) + 0.05),
    Scenario(
        NAME, "inverse-exploding", "1/MSE with epsilon 0: an exploding gradient",
        {"variant": "inverse-mse", "epsilon": 0.0, "lr": 0.05}, 300,
        "1/r² with no epsilon: near a zero residual its gradient grows like 1/r³. Look at the gradient norm (log "
        "scale): it spikes by several orders of magnitude, to over a million, whenever a prediction crosses its "
        "target. Set epsilon > 0 to bound it.",
        "the gradient norm exceeds 1e6",
        lambda r: max(column(r, "grad_norm")) > 1e6),
    Scenario(
        NAME, "neg-lr", "MSE with a negative learning rate",
        {"variant": "neg-lr", "optimizer": "sgd", "lr": 0.5}, 300,
        "Plain SGD on the MSE with lr = -0.5 takes exactly the steps of SGD on -MSE with lr = 0.5: the same climb, "
        "but the loss shown is the MSE itself, rising. A negative lr is gradient ascent on whatever the loss is.",
        "the MSE (here the loss) rises by more than 0.05",
        lambda r: mean(r, "loss", -20) > mean(r, "loss", 0, 20) + 0.05),
)

DEMO = Demo(
    name=NAME,
    build=lambda s: models.max_mse(),
    make_data=lambda s, seed: data.max_mse(seed),
    terms=terms,
    metrics=metrics,
    metric_names=("mse",),
    params=PARAMS,
    main_metric="mse",
    compare=("variant", {"variant": "inverse-mse"}),
    learning_rate=learning_rate,
    page=Page(
        title="Maximised MSE",
        problem="A generator that must maximise an MSE. -MSE and a negative learning rate climb the same hill; "
                "1/MSE only pushes the nearest points away and its gradient explodes near a zero residual.",
        latex=r"-\tfrac{1}{n}\sum (\hat y - y)^2 \quad\text{or}\quad "
              r"\tfrac{1}{n}\sum \frac{1}{(\hat y - y)^2 + \epsilon}",
        nav_title="Maximised MSE", icon=":material/trending_up:", address="Max_MSE", file="pages/4_Max_MSE.py",
        view=View("scatter", "Generator outputs against their targets")),
    scenarios=SCENARIOS,
    cause=cause,
    fixes=FIXES,
    curves=loss_curves,
    module=__name__,
)
