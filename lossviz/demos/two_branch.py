"""Weighted two-branch loss (question 001): two outputs of different shapes mixed by a weight alpha.

``alpha L1 + (1 - alpha) L2`` with a fixed alpha (a live knob), or an alpha mode that shapes the graph: trainable
(minimised with the loss, it runs to a bound), uncertainty weighting (Kendall, Gal, Cipolla 2018), GradNorm (Chen
et al. 2018) or PCGrad (Yu et al. 2020). The mode is its own setting, ``alpha_mode``; ``alpha=trainable`` on the
command line and in an address sets it, as it always has.
"""

from __future__ import annotations

import numpy as np

from .. import data, lazy
from ..knobs import TERM_GRADS, Param, Slider, common
from ..scenario import Scenario, column, finite, mean
from .demo import Context, Demo, Page, View

keras, losses, models, ops = (lazy.module(m) for m in ("keras", "lossviz.losses", "lossviz.models", "keras.ops"))
curves = lazy.module("lossviz.curves")

NAME = "two-branch"
MODES = ("trainable", "uncertainty", "gradnorm", "pcgrad")
ALPHA_HELP = ("weight of branch 1; trainable: a variable clipped to [0, 1]; uncertainty: Kendall et al. 2018; "
              "gradnorm: Chen et al. 2018; pcgrad: Yu et al. 2020 (equal weights, conflicts projected away)")

PARAMS = (
    *common(lr=1e-2),
    Param("alpha_mode", "fixed", "choice", "one of fixed, " + ", ".join(MODES), choices=("fixed", *MODES),
          structural=True, help=ALPHA_HELP, widget="alpha:mode"),
    Param("alpha", 0.5, "float", "a number in [0, 1], trainable, uncertainty, gradnorm or pcgrad",
          lambda v: 0.0 <= v <= 1.0, when=lambda s: s.get("alpha_mode", "fixed") == "fixed",
          alias=lambda raw: ("alpha_mode", str(raw).strip()) if str(raw).strip() in MODES else None,
          implies=(("alpha_mode", "fixed"),), help=ALPHA_HELP, slider=Slider("linear", 0.0, 1.0, 0.01)),
    Param("gradnorm_alpha", 1.5, "float", "a number >= 0", lambda v: v >= 0,
          when=lambda s: s.get("alpha_mode") == "gradnorm",
          help="GradNorm's asymmetry: 0 pulls both branches' gradient norms to one value; larger gives more "
               "weight to the branch whose loss falls slower"),
    TERM_GRADS,
)


def terms(ctx: Context):
    y, out = ctx.targets, ctx.out
    l1 = losses.mse(y["regression"], out["regression"])
    l2 = keras.losses.categorical_crossentropy(y["classification"], out["classification"])
    found = {"branch_1": ops.mean(l1), "branch_2": ops.mean(l2)}
    if ctx.settings["alpha_mode"] in ("fixed", "trainable"):
        total = ops.mean(losses.weighted_two_branch(l1, l2, alpha(ctx)))
    else:
        added = parts(found, ctx)
        total = added["branch_1"] + added["branch_2"]
    return found, ops.reshape(total, ())


def parts(found, ctx: Context):
    """The two addends of the total loss, each with its weight (their gradients are the branches' pulls)."""
    t1, t2 = found["branch_1"], found["branch_2"]
    mode, extra = ctx.settings["alpha_mode"], ctx.extra
    if mode == "uncertainty":
        s1, s2 = ops.reshape(extra["log_var_1"], ()), ops.reshape(extra["log_var_2"], ())
        return {"branch_1": 0.5 * ops.exp(-s1) * t1 + 0.5 * s1, "branch_2": ops.exp(-s2) * t2 + 0.5 * s2}
    if mode == "gradnorm":  # (w1 L1 + w2 L2) / 2 with w1 + w2 = 2: on the scale of alpha L1 + (1 - alpha) L2
        return {"branch_1": 0.5 * ops.reshape(extra["gradnorm_w1"], ()) * t1,
                "branch_2": 0.5 * ops.reshape(extra["gradnorm_w2"], ()) * t2}
    a = alpha(ctx)
    return {"branch_1": a * t1, "branch_2": (1.0 - a) * t2}


def alpha(ctx: Context):
    """The weight of branch 1: the knob, the clipped variable, w1 / (w1 + w2) for uncertainty weighting and
    GradNorm, 0.5 for PCGrad (equal weights; the conflicts are projected away instead)."""
    mode, extra = ctx.settings["alpha_mode"], ctx.extra
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
    return ctx.hp["alpha"]


def metrics(ctx: Context):
    hit = ops.argmax(ctx.out["classification"], axis=-1) == ops.argmax(ctx.targets["classification"], axis=-1)
    return {"accuracy": ops.mean(ops.cast(hit, "float32"))}


def hyperparameter_keys(settings):
    """alpha and gradnorm_alpha reach every structure's step (the modes that do not read them ignore them)."""
    return ("alpha", "gradnorm_alpha")


def weight(settings) -> float:
    """The alpha a surface draws: the knob, or 0.5 where a mode learns it."""
    return float(settings["alpha"]) if settings.get("alpha_mode", "fixed") == "fixed" else 0.5


def surface(settings, n: int = 61):
    """``alpha L1 + (1 - alpha) L2`` over (L1, L2) for the current alpha (0.5 for a learned alpha)."""
    a = weight(settings)
    l1 = np.linspace(0.0, 4.0, n)
    l2 = np.linspace(0.0, 1.0, n)
    grid_1, grid_2 = np.meshgrid(l1, l2)
    z = np.asarray(losses.weighted_two_branch(grid_1, grid_2, a))
    return curves.Surface(f"alpha = {a:g}", l1, l2, z, "L1 (regression MSE)", "L2 (classification CE)")


def loss_curves(settings):
    """The total loss over alpha for L1 = 2, L2 = 0.5: linear in alpha, so minimising over alpha ends at a bound."""
    a = np.linspace(0.0, 1.0, 101)
    return [curves.curve("alpha*2.0 + (1-alpha)*0.5", a, lambda x: losses.weighted_two_branch(2.0, 0.5, x), "alpha")]


SCENARIOS = (
    Scenario(
        NAME, "trainable-alpha", "Trainable alpha, minimised with the loss",
        {"alpha": "trainable"}, 200,
        "Minimising alpha·L1 + (1 - alpha)·L2 over alpha is linear in alpha: it moves towards whichever branch has "
        "the smaller loss and stops at the bound. Here alpha reaches 0 within about 60 steps and branch 1 gets no "
        "weight at all.",
        "alpha ends at a bound (0 or 1)",
        lambda r: column(r, "alpha")[-1] in (0.0, 1.0)),
    Scenario(
        NAME, "uncertainty", "Uncertainty weighting (Kendall et al. 2018)",
        {"alpha": "uncertainty"}, 200,
        "Learned log-variances weight each branch by exp(-s) and pay s for it, so neither weight can run to 0 "
        "for free: the effective alpha moves, but stays strictly inside (0, 1). Both branches keep learning.",
        "alpha stays strictly inside (0, 1)",
        lambda r: 0.0 < min(column(r, "alpha")) and max(column(r, "alpha")) < 1.0),
    Scenario(
        NAME, "alpha-to-one", "Push alpha to 1 while it trains: branch 2 dies",
        {"alpha": 0.5}, 400,
        "At step 201 alpha goes from 0.5 to 1 (the marker): branch 2's head gets no gradient and the shared layers "
        "now serve branch 1 alone, so branch 2's loss rises again and accuracy drops. Try 0.9 with the slider "
        "instead: branch 2 still learns, only slower.",
        "branch 2's loss over the last 20 steps is over 1.5 times its loss just before the change",
        lambda r: finite(r) and mean(r, "loss:branch_2", -20) > 1.5 * mean(r, "loss:branch_2", 180, 200),
        schedule=((201, "alpha", 1.0),)),
)

DEMO = Demo(
    name=NAME,
    build=lambda s: models.two_branch(),
    make_data=lambda s, seed: data.two_branch(seed),
    terms=terms,
    metrics=metrics,
    term_names=("branch_1", "branch_2"),
    metric_names=("accuracy",),
    params=PARAMS,
    main_metric="accuracy",
    compare=("alpha_mode", {"alpha_mode": "trainable"}),
    numeric_keys=hyperparameter_keys,
    extra_variables=lambda s: {"trainable": {"alpha": 0.5},
                               "uncertainty": {"log_var_1": 0.0, "log_var_2": 0.0}}.get(s["alpha_mode"], {}),
    # GradNorm's weights, and each branch's loss at step 1 (0: not measured yet)
    extra_state=lambda s: ({"gradnorm_w1": 1.0, "gradnorm_w2": 1.0, "gradnorm_l0_1": 0.0, "gradnorm_l0_2": 0.0}
                           if s["alpha_mode"] == "gradnorm" else {}),
    alpha=alpha,
    parts=parts,
    shared_layer="trunk",
    page=Page(
        title="Weighted two-branch loss",
        problem="Two outputs of different shapes mixed by a weight alpha. Make alpha trainable and minimise the loss "
                "over it, as suggested, and it runs to 0 or 1, switching a branch off; learned uncertainty "
                "weighting (Kendall et al. 2018) does not.",
        latex=r"L = \alpha L_1 + (1 - \alpha) L_2,\quad \alpha \in [0, 1]",
        nav_title="Two branches, weighted", icon=":material/call_split:", address="Two_branch",
        file="pages/2_Two_branch.py", view=View("trajectory", "The (L1, L2) trajectory")),
    scenarios=SCENARIOS,
    fixes={"term-off": ("learn the weights as uncertainties (Kendall et al. 2018)", {"alpha": "uncertainty"})},
    curves=loss_curves,
    surface=surface,
    module=__name__,
)
