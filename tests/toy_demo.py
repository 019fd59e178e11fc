"""A loss family declared in this one file and registered in one call (issue 28's proof): a linear model fitting a
linear target, with a size penalty on its predictions. ``tests/test_toy_demo.py`` runs every command and a page on
it, with no edit to any module of lossviz."""

import numpy as np

from lossviz import data, demos, lazy
from lossviz.curves import curve
from lossviz.knobs import TERM_GRADS, Param, Slider, common
from lossviz.scenario import Scenario, finite, mean

keras, ops = lazy.module("keras"), lazy.module("keras.ops")

WEIGHTS = np.array([[1.0], [-2.0], [0.5]], np.float32)


def build(settings):
    x = keras.Input((3,), name="x")
    return keras.Model({"x": x}, {"y": keras.layers.Dense(1, name="linear")(x)})


def make_data(settings, seed):
    x = np.random.default_rng(seed).normal(size=(256, 3)).astype(np.float32)
    return data.Dataset({"x": x}, {"y": x @ WEIGHTS})


def terms(ctx):
    error = ctx.out["y"] - ctx.targets["y"]
    size = ops.abs(ctx.out["y"]) if ctx.settings["penalty"] == "abs" else ops.square(ctx.out["y"])
    found = {"fit": ops.mean(ops.square(error)), "size": ctx.hp["scale"] * ops.mean(size)}
    return found, found["fit"] + found["size"]


def metrics(ctx):
    return {"mae": ops.mean(ops.abs(ctx.out["y"] - ctx.targets["y"]))}


def loss_curves(settings):
    r = np.linspace(-2.0, 2.0, 81)
    return [curve("fit term over the error", r, lambda x: x * x, "error")]


DEMO = demos.register(demos.Demo(
    name="toy",
    build=build,
    make_data=make_data,
    terms=terms,
    metrics=metrics,
    term_names=("fit", "size"),
    metric_names=("mae",),
    params=(*common(lr=0.01), Param("scale", 0.1, "float", "a number >= 0", lambda v: v >= 0, log_scale=True,
                                    slider=Slider("log", -3, 1), help="weight of the size term"),
            Param("penalty", "square", "choice", "one of square, abs", choices=("square", "abs"), structural=True),
            TERM_GRADS),
    main_metric="mae",
    compare=("scale", {"scale": 1.0}),
    page=demos.Page(title="A toy family", problem="A linear fit with a size penalty: raise `scale` and the fit "
                    "gives way.", latex=r"L = (\hat y - y)^2 + s\,\hat y^2"),
    scenarios=(Scenario("toy", "fits", "The fit term falls", {}, 60, "Watch the fit term fall.",
                        "the fit term over the last 10 steps is below its first 10 steps'",
                        lambda r: finite(r) and mean(r, "loss:fit", -10) < mean(r, "loss:fit", 0, 10)),),
    fixes={"term-drowned": ("lower the size term's weight", {"scale": 0.01})},
    cause=lambda s: f"scale={s.get('scale')} with lr={s.get('lr')}",
    curves=loss_curves,
    module=__name__,
))
