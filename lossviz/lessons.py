"""Lessons a class can follow: one per question behind lossviz, each a few steps of a question to the room, a run
and the one or two charts it is about.

A step's run is a :class:`lossviz.scenario.Scenario` (settings, a run length, a knob schedule, the words, a claim
the tests check on the run), mostly the demo's own scenarios, so a lesson's run is the very run of the scenario
button and of ``python -m lossviz train``. The lessons are written for someone who knows what a loss is, but not
these pitfalls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import scenarios
from .scenario import Scenario, column, finite

CHARTS = ("loss_chart", "curvature_chart", "grad_chart", "metrics_chart", "term_grad_chart", "term_cosine_chart")


@dataclass(frozen=True)
class Step:
    scenario: Scenario  # the run, its title, its two to four sentences and its checked claim
    question: str  # for the room, before the run
    answer: str  # behind Reveal
    charts: tuple[str, ...] = ("loss_chart",)  # the one or two charts of the step (``charts.live_figures`` names)

    @property
    def title(self) -> str:
        return self.scenario.title


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    intro: str
    steps: tuple[Step, ...]


def _own(demo: str, name: str) -> Scenario:
    return scenarios.get(demo, name)


def _ratio(records) -> np.ndarray:
    return column(records, "sharpness") / column(records, "stability_limit")


def _measured(records, every: int = 10) -> np.ndarray:
    s = column(records, "sharpness")
    return s[every - 1::every]


PLAIN_BCE = Scenario(
    "sparse-penalty", "plain-bce", "Plain binary cross-entropy on a rare event",
    {"variant": "logits", "penalty": 1.0}, 300,
    "Two samples in a hundred are events. Plain BCE (penalty 1, computed from the logits, so it is exact) is "
    "lowest, early on, for a net that says 'no event' to everything: the mean prediction sinks to the 2% base "
    "rate and not one event is found. Watch recall in the metrics chart.",
    "recall is 0 at the end and the mean prediction below 0.05",
    lambda r: column(r, "metric:recall")[-1] == 0 and column(r, "metric:mean_pred")[-1] < 0.05)

FIXED_HALF = Scenario(
    "two-branch", "fixed-half", "A fixed alpha of 0.5: both branches learn",
    {"alpha": 0.5}, 200,
    "The loss is 0.5·L1 + 0.5·L2: each branch's head gets half the gradient, the shared layers serve both. Both "
    "branch losses (the dashed lines) fall together. This is the baseline the next steps break.",
    "each branch's loss ends below a quarter of its start",
    lambda r: all(column(r, k)[-1] < 0.25 * column(r, k)[0] for k in ("loss:branch_1", "loss:branch_2")))

BOUNDED_INVERSE = Scenario(
    "max-mse", "inverse-bounded", "1/(MSE + epsilon) with epsilon 0.1: a bounded climb",
    {"variant": "inverse-mse", "epsilon": 0.1}, 300,
    "Minimising 1/(MSE + epsilon) also pushes the MSE up, but epsilon caps the loss at 1/epsilon and its gradient "
    "near a zero residual. The MSE climbs, the gradient norm stays small, nothing goes NaN.",
    "no NaN; the MSE ends over three times its start and the gradient norm stays under 10",
    lambda r: finite(r) and column(r, "metric:mse")[-1] > 3 * column(r, "metric:mse")[0]
    and np.nanmax(column(r, "grad_norm")) < 10)

QUARTER_LR = Scenario(
    "edge-of-stability", "quarter-lr", "A small step: lr 0.075, far under the edge",
    {"lr": 0.075}, 800,
    "Full-batch gradient descent at a quarter of the demo's lr. The stability limit 2/lr is 26.7, and the "
    "sharpness (the largest curvature of the loss, on the Curvature chart) stays far under it: every step is "
    "stable, the loss falls smoothly.",
    "the sharpness stays under half the limit at every step",
    lambda r: float(np.max(_ratio(r))) < 0.5)

TO_THE_EDGE = Scenario(
    "edge-of-stability", "to-the-edge", "lr 0.3: the sharpness climbs to 2/lr",
    {"lr": 0.3}, 800,
    "Same net, four times the step. The sharpness starts under the limit 2/lr = 6.7 and rises while it trains "
    "(progressive sharpening) until it reaches the line; from there it hovers at it, and the loss keeps falling "
    "with small bumps. This is the edge of stability (Cohen et al. 2021).",
    "the sharpness starts under 80% of the limit and is within 15% of it over steps 600-800",
    lambda r: _ratio(r)[0] < 0.8 and bool(np.all(np.abs(_ratio(r)[600:800] - 1) <= 0.15)))

MINI_BATCH = Scenario(
    "edge-of-stability", "mini-batch", "Mini-batches of 32: a noisier measure",
    {"lr": 0.3, "batch_size": 32}, 400,
    "The same run on batches of 32. Each measurement is the sharpness of that step's batch, not of the whole "
    "training set, so it jumps from one measurement to the next. The edge of stability is a full-batch effect; "
    "with mini-batches, read the trend, not a single point.",
    "between two measurements the sharpness changes by a median of more than 3%",
    lambda r: float(np.median(np.abs(np.diff(_measured(r))) / _measured(r)[1:])) > 0.03)

NEW_SCENARIOS = (PLAIN_BCE, FIXED_HALF, BOUNDED_INVERSE, QUARTER_LR, TO_THE_EDGE, MINI_BATCH)

LESSONS: dict[str, Lesson] = {lesson.id: lesson for lesson in (
    Lesson("sparse-penalty", "A rare event: weighting the positives",
           "A binary target that is 1 twice in a hundred samples. The question behind it wrote its own weighted "
           "cross-entropy and got NaN; the fixes people suggest each fail in their own way.",
           (Step(PLAIN_BCE, "Two samples in a hundred are events. What does a net trained with plain BCE predict?",
                 "'No event', for everything: that already gets 98% right and a low loss. Recall is 0.",
                 ("metrics_chart", "loss_chart")),
            Step(_own("sparse-penalty", "naive-nan"),
                 "We weight the positives by 10 in a hand-written BCE on the sigmoid output, at lr 0.05. What "
                 "happens in the first steps?",
                 "NaN at step 3. Two large updates push some p to exactly 0 or 1 in float32; log(0) is -inf and "
                 "0 x -inf is NaN. From then on every weight is NaN.", ("loss_chart",)),
            Step(_own("sparse-penalty", "clipped-flat"),
                 "A common fix clips p to [epsilon, 1 - epsilon] before the log. Will the net now learn the events?",
                 "No: the NaN is gone, and so is the gradient. Beyond the clip its derivative is exactly 0, the "
                 "gradient norm drops to 0 and recall stays 0.", ("grad_chart", "metrics_chart")),
            Step(_own("sparse-penalty", "logits-raise-penalty"),
                 "Compute the same loss from the logits (exact, never NaN), first with penalty 1, then raise it to "
                 "50 at step 401. What happens to recall and precision?",
                 "With penalty 1 it is plain BCE: recall 0. At 50 recall climbs to about 1 while precision stays "
                 "low: the penalty trades false alarms for hits.", ("metrics_chart", "loss_chart")),
            Step(_own("sparse-penalty", "batch-switch"),
                 "Another answer multiplies a whole batch's loss by the penalty when the batch holds a positive. "
                 "Does that find the events?",
                 "No: it weights batches, not positives. Inside a batch the many negatives still win, and the net "
                 "learns 'almost always 0' (recall under 10%).", ("metrics_chart",)))),
    Lesson("policy-value", "Two heads, one loss: policy and value",
           "A network with a policy head (a softmax over 32 moves, some illegal) and a value head, trained with "
           "(z - v)^2 - pi log p + c ||theta||^2 as in AlphaGo Zero. The question: where does the mask of illegal "
           "moves go?",
           (Step(_own("policy-value", "no-mask"),
                 "No mask at all: a softmax over every move. Does the net learn to put 0 on illegal moves?",
                 "Only through the targets' zeros, and never quite: illegal_mass stays above 0.1.",
                 ("metrics_chart", "loss_chart")),
            Step(_own("policy-value", "seed-answer"),
                 "The accepted answer builds the mask from pi == 1. Most targets spread their visits over several "
                 "moves. What does the mask do with them?",
                 "It is empty for them, so their policy term is 0: a fifth or more of the probability still sits on "
                 "illegal moves after 300 steps.", ("metrics_chart",)),
            Step(_own("policy-value", "masked"),
                 "Mask the logits instead: illegal moves get -inf before the softmax. Can that produce a NaN?",
                 "No: their probability is exactly 0 (exp(-inf) = 0) and the legal ones still sum to 1; "
                 "illegal_mass is 0 at every step and the loss falls.", ("metrics_chart", "loss_chart")),
            Step(_own("policy-value", "raise-c"),
                 "At step 201 the weight decay c goes from 1e-4 to 0.05. Which term takes over the loss?",
                 "The l2 term: it jumps about 500-fold and dominates, the optimizer spends its steps shrinking the "
                 "kernels, and the l2 term falls again.", ("loss_chart", "term_grad_chart")))),
    Lesson("two-branch", "Two branches mixed by alpha",
           "Two branches share layers; their losses are mixed as alpha L1 + (1 - alpha) L2. What if alpha is "
           "trained too?",
           (Step(FIXED_HALF, "alpha = 0.5, fixed. Do both branches learn?",
                 "Yes: each head gets half the gradient and both branch losses fall below a quarter of their start.",
                 ("loss_chart",)),
            Step(_own("two-branch", "trainable-alpha"),
                 "Now alpha is trained with the loss. Where does it go?",
                 "To a bound: the loss is linear in alpha, so it moves towards the smaller loss and stops at 0 or 1. "
                 "Here it reaches 0 within about 60 steps and branch 1 gets no weight at all.",
                 ("metrics_chart", "loss_chart")),
            Step(_own("two-branch", "uncertainty"),
                 "Kendall et al. (2018) learn a log-variance per branch and pay for it. Can a weight still run "
                 "to 0?",
                 "No: a weight of exp(-s) costs s, so neither runs off for free; the effective alpha moves but stays "
                 "strictly inside (0, 1).", ("metrics_chart",)),
            Step(_own("two-branch", "alpha-to-one"),
                 "At step 201 alpha jumps from 0.5 to 1. What happens to branch 2?",
                 "Its head gets no gradient and the shared layers serve branch 1 alone: branch 2's loss rises "
                 "again, over 1.5 times where it was.", ("loss_chart",)))),
    Lesson("max-mse", "Maximising an MSE",
           "A generator must push its outputs away from a target: maximise the MSE. Three ways to write it, and "
           "what each does to training.",
           (Step(_own("max-mse", "neg-mse"), "Minimise -MSE. Is the loss bounded below?",
                 "On this net yes, barely: the outputs are sigmoids, so the climb slows as they reach 0 or 1. On an "
                 "unbounded output -MSE falls for ever. The MSE rises.", ("metrics_chart", "loss_chart")),
            Step(_own("max-mse", "inverse-exploding"),
                 "Minimise 1/MSE instead, with no epsilon. What does its gradient do near a zero residual?",
                 "It grows like 1/r^3: the gradient norm spikes past a million whenever a prediction crosses its "
                 "target.", ("grad_chart",)),
            Step(BOUNDED_INVERSE, "Add epsilon = 0.1: 1/(MSE + epsilon). What changes?",
                 "The loss is capped at 1/epsilon and so is its gradient: the MSE still climbs, the gradient norm "
                 "stays under 10.", ("grad_chart", "metrics_chart")),
            Step(_own("max-mse", "neg-lr"),
                 "Keep the plain MSE and give SGD a negative learning rate, -0.5. Is that the same as minimising "
                 "-MSE at lr 0.5?",
                 "Step for step, yes: the same updates. Only the loss drawn differs: here it is the MSE itself, "
                 "rising.", ("loss_chart",)))),
    Lesson("curvature", "The edge of stability",
           "Why does a loss spike or go NaN above some learning rate? A gradient step overshoots along a direction "
           "whose curvature is over 2/lr. Full-batch gradient descent drives the largest curvature, the sharpness, "
           "up to exactly that line (Cohen et al. 2021).",
           (Step(QUARTER_LR, "A small learning rate, 0.075: limit 2/lr = 26.7. Where will the sharpness be?",
                 "Far under the line: about a fifth of it. Nothing pushes it there; the loss falls smoothly.",
                 ("curvature_chart", "loss_chart")),
            Step(TO_THE_EDGE, "Four times the step: lr 0.3, limit 6.7. The sharpness starts at about 4.8. Then?",
                 "It rises until it meets 2/lr, then hovers there, within a few percent, while the loss keeps "
                 "falling: training at the edge of stability.", ("curvature_chart", "loss_chart")),
            Step(_own("edge-of-stability", "edge"),
                 "At the edge, lr doubles at step 1001: the limit drops to 3.3, under the sharpness. What happens?",
                 "The loss spikes over tenfold, then the sharpness falls under the new line within 50 steps (the "
                 "run catapults to a flatter region) and climbs back to it.", ("curvature_chart", "loss_chart")),
            Step(MINI_BATCH, "Same lr on mini-batches of 32. Will the curve look the same?",
                 "Noisier: each point is the sharpness of one batch, which jumps by about 10% from one measurement "
                 "to the next instead of 0.4%. Read the trend.", ("curvature_chart",)))),
)}


def get(lesson_id: str) -> Lesson:
    if lesson_id not in LESSONS:
        raise KeyError(f"no lesson {lesson_id!r}: one of {', '.join(LESSONS)}")
    return LESSONS[lesson_id]
