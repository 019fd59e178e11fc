"""Curvature: full-batch gradient descent on a small tanh regression net trains at the edge of stability.

The sharpness (the largest eigenvalue of the loss's Hessian) rises until it reaches 2/lr, then hovers there while
the loss keeps falling, non-monotonically (Cohen, Kaur, Li, Kolter, Talwalkar 2021). Raise lr mid-run and the limit
drops under the sharpness: the loss spikes and the sharpness falls back under the new limit. The demo's defaults
are the paper's set-up in miniature: plain SGD, every step on the whole training set, the probe every 10 steps.
"""

from __future__ import annotations

import numpy as np

from .. import data, lazy
from ..knobs import FULL_BATCH, common
from ..scenario import Scenario, column, finite
from .demo import Context, Demo, Page, View

keras, ops = lazy.module("keras"), lazy.module("keras.ops")

NAME = "edge-of-stability"
FEATURES, SAMPLES, WIDTH = 4, 256, 32
LR = 0.3

PARAMS = tuple(common(lr=LR, batch_size=FULL_BATCH, optimizer="sgd", sharpness="every-10"))


def build(settings):
    """Two tanh layers of 32 units and a linear output."""
    x = keras.Input((FEATURES,), name="x")
    h = keras.layers.Dense(WIDTH, activation="tanh", name="tanh_1")(x)
    h = keras.layers.Dense(WIDTH, activation="tanh", name="tanh_2")(h)
    return keras.Model({"x": x}, {"y": keras.layers.Dense(1, name="y")(h)}, name="tanh_regression")


def make_data(settings, seed: int) -> data.Dataset:
    """A smooth target of 4 features: y = sin(x . u) + cos(x . v) / 2, with u, v drawn from the seed."""
    rng = np.random.default_rng([seed, 11])
    x = rng.normal(size=(SAMPLES, FEATURES)).astype(np.float32)
    u, v = rng.normal(size=(2, FEATURES)) / np.sqrt(FEATURES)
    y = np.sin(x @ u) + 0.5 * np.cos(x @ v)
    return data.Dataset({"x": x}, {"y": y[:, None].astype(np.float32)})


def terms(ctx: Context):
    return {}, 0.5 * ops.mean(ops.square(ctx.out["y"] - ctx.targets["y"]))


def metrics(ctx: Context):
    return {"mse": ops.mean(ops.square(ctx.out["y"] - ctx.targets["y"]))}


def _near(records, start: int, stop: int, tolerance: float) -> bool:
    """The sharpness within ``tolerance`` of the stability limit at every measured record of [start, stop)."""
    s, lim = column(records, "sharpness")[start:stop], column(records, "stability_limit")[start:stop]
    return bool(np.all(np.abs(s / lim - 1.0) <= tolerance))


def _catapult(records) -> bool:
    """After lr doubles at step 1001: the loss jumps over tenfold, the sharpness falls under the new limit within 50
    steps, and nothing goes NaN."""
    loss, s = column(records, "loss"), column(records, "sharpness")
    return (finite(records) and max(loss[1000:1100]) > 10 * loss[999]
            and min(s[1000:1050]) < column(records, "stability_limit")[1000])


SCENARIOS = (
    Scenario(
        NAME, "edge", "The sharpness rises to 2/lr and stays there; then lr doubles",
        {"lr": LR}, 1400,
        "Full-batch gradient descent at lr 0.3: the sharpness (Curvature chart, log scale) climbs from about 5 "
        "until it meets the stability limit 2/lr = 6.7, then hovers at it while the loss keeps falling, with small "
        "spikes. At step 1001 lr doubles to 0.6 (the marker): the limit drops to 3.3, under the sharpness; the loss "
        "spikes, the sharpness falls under the new line and climbs back to it. Drag lr yourself while it plays.",
        "the sharpness is within 15% of 2/lr over steps 700-1000 and the loss at step 1000 is below a tenth of its "
        "start; after lr doubles the loss jumps over tenfold, the sharpness falls under the new limit within 50 "
        "steps, and the run stays finite",
        lambda r: _near(r, 700, 1000, 0.15) and column(r, "loss")[999] < 0.1 * column(r, "loss")[0] and _catapult(r),
        schedule=((1001, "lr", 2 * LR),)),
)

DEMO = Demo(
    name=NAME,
    build=build,
    make_data=make_data,
    terms=terms,
    metrics=metrics,
    metric_names=("mse",),
    params=PARAMS,
    main_metric="mse",
    compare=("lr", {"lr": LR / 4}),
    page=Page(
        title="Curvature: the edge of stability",
        problem="Is the loss broken, or is the learning rate too large for it? Full-batch gradient descent drives "
                "the sharpness of the loss (the largest eigenvalue of its Hessian) up to 2/lr and then trains at "
                "that edge (Cohen et al. 2021); above it, a step overshoots along the sharpest direction and the loss "
                "spikes. The Curvature chart draws the sharpness against the limit, live.",
        latex=r"\lambda_{\max}\!\left(\nabla^2 L(\theta_t)\right) \;\to\; 2/\eta",
        nav_title="Curvature (edge of stability)", icon=":material/ssid_chart:", address="Curvature",
        file="pages/7_Curvature.py", view=View("scatter", "Predictions against their targets"), card=False),
    scenarios=SCENARIOS,
    fixes={"past-stability-limit": ("lower lr until the sharpness is under the limit (2/lr for sgd)", {})},
    module=__name__,
)
