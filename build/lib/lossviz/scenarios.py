"""Teaching scenarios: the set-ups of the four questions behind lossviz (shared/seeds), each with what to look
at and a check of its claim on the run's records (the tests run every scenario and check every claim).

A scenario is settings, a run length and an optional schedule of knob changes ``(step, key, value)``, exactly
what ``python -m lossviz train DEMO --set ... --at STEP:KEY=VALUE --steps N`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from . import records as rec
from . import settings as config

Records = Sequence[dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    demo: str
    name: str
    title: str
    settings: dict[str, Any]
    steps: int
    text: str  # two or three sentences: what happens and where to look
    claim: str  # the checked statement, in words
    check: Callable[[Records], bool] = field(repr=False)
    schedule: tuple[tuple[int, str, Any], ...] = ()

    def holds(self, records: Records) -> bool:
        """Whether the run's records bear the claim out (a full run of ``steps`` steps)."""
        return len(records) == self.steps and bool(self.check(records))

    def cli_command(self, seed: int = 0) -> str:
        return config.cli_command(self.demo, config.resolve(self.demo, self.settings), self.steps, seed,
                                  changes=self.schedule)


def _mean(records: Records, key: str, start: int | None = None, stop: int | None = None) -> float:
    """Mean of a column over records[start:stop] (positions, as in a list)."""
    return float(np.mean(rec.column(records, key)[start:stop]))


def _first_nan_at(step: int, place: str) -> Callable[[Records], bool]:
    def check(records):
        first = rec.first_nonfinite(records)
        return first is not None and first["step"] == step and first["first_nonfinite"] == place
    return check


def _finite(records: Records) -> bool:
    return rec.first_nonfinite(records) is None


SCENARIOS: tuple[Scenario, ...] = (
    # ----------------------------------------------------------------------- sparse-penalty (question 002)
    Scenario(
        "sparse-penalty", "naive-nan", "The question's loss at lr 0.05: NaN at step 3",
        {"variant": "naive", "penalty": 10.0, "lr": 0.05}, 100,
        "The hand-written -(penalty·y·log p + (1 - y)·log(1 - p)) on the sigmoid output. At lr 0.05 two updates "
        "push some logits so far that p is exactly 0 or 1 in float32: log(0) = -inf, 0·(-inf) = NaN. Look at the "
        "NaN panel and the red crosses on the loss chart; every weight is NaN from then on.",
        "the first non-finite value is in the loss, at step 3",
        _first_nan_at(3, "loss")),
    Scenario(
        "sparse-penalty", "clipped-flat", "Clipped: finite, but flat",
        {"variant": "clipped", "penalty": 10.0, "lr": 0.05}, 300,
        "Clipping p to [epsilon, 1 - epsilon] removes the NaN, and the gradient with it: once the sigmoid output "
        "sits beyond the clip, the clip's derivative is 0. The gradient norm drops to exactly 0 and the net says "
        "'no event' for ever (recall 0).",
        "no NaN; the gradient norm is exactly 0 over the last 50 steps and recall is 0",
        lambda r: _finite(r) and max(rec.column(r, "grad_norm")[-50:]) == 0.0
        and _mean(r, "metric:recall", -50) == 0.0),
    Scenario(
        "sparse-penalty", "batch-switch", "The per-batch switch: learns 'almost always 0'",
        {"variant": "batch-switch", "penalty": 10.0}, 600,
        "The suggested K.switch multiplies the whole batch's loss by the penalty when the batch holds a positive. "
        "That weights batches, not positives: inside a batch the many negatives still win, and the mean "
        "prediction sinks towards the 2% base rate. Recall stays under 10%.",
        "recall averaged over the last 50 steps is below 0.1",
        lambda r: _finite(r) and _mean(r, "metric:recall", -50) < 0.1),
    Scenario(
        "sparse-penalty", "logits-raise-penalty", "From logits, then raise the penalty while it trains",
        {"variant": "logits", "penalty": 1.0, "lr": 0.003}, 800,
        "From logits the loss is exact and finite. With penalty 1 (plain BCE) the net learns 'always 0': recall 0. "
        "At step 401 the penalty jumps to 50 (the dashed marker): recall climbs to 1 while precision stays low; the "
        "penalty trades false alarms for hits. Press Play and move the penalty slider yourself.",
        "recall is 0 over steps 351-400 and above 0.8 over the last 50 steps",
        lambda r: _finite(r) and _mean(r, "metric:recall", 350, 400) == 0.0 and _mean(r, "metric:recall", -50) > 0.8,
        schedule=((401, "penalty", 50.0),)),
    # ----------------------------------------------------------------------- policy-value (question 000)
    Scenario(
        "policy-value", "seed-answer", "The accepted answer's mask (pi == 1)",
        {"mask": "seed-answer"}, 300,
        "The accepted answer builds the mask from pi == 1. Most targets here spread their visits over several "
        "moves, so for them the mask is empty and the policy term is 0: the net never learns to avoid illegal "
        "moves from them. After 300 steps a fifth or more of the probability still sits on illegal moves.",
        "illegal_mass averaged over the last 50 steps is above 0.2",
        lambda r: _finite(r) and _mean(r, "metric:illegal_mass", -50) > 0.2),
    Scenario(
        "policy-value", "no-mask", "No mask: a plain softmax over every move",
        {"mask": "none"}, 300,
        "A plain softmax over all 32 moves learns to lower illegal moves only through the targets' zeros; it never "
        "reaches 0. Compare the illegal_mass metric with the masked run.",
        "illegal_mass stays above 0.1 to the end",
        lambda r: _finite(r) and min(rec.column(r, "metric:illegal_mass")) > 0.1),
    Scenario(
        "policy-value", "masked", "Masked logits: illegal moves get exactly 0",
        {"mask": "logits"}, 300,
        "The legal-move mask sets illegal logits to -inf before the softmax: their probability is exactly 0 at "
        "every step (illegal_mass = 0, never NaN), and the loss falls.",
        "illegal_mass is exactly 0 at every step and the loss falls",
        lambda r: _finite(r) and max(rec.column(r, "metric:illegal_mass")) == 0.0
        and _mean(r, "loss", -30) < _mean(r, "loss", 0, 30)),
    Scenario(
        "policy-value", "raise-c", "Raise c in c||theta||^2 while it trains",
        {"mask": "logits", "c": 1e-4}, 400,
        "At step 201 c goes from 1e-4 to 0.05 (the marker): the l2 term jumps about 500-fold and dominates the "
        "loss; the optimizer then spends its steps shrinking the kernels, and the l2 term falls again.",
        "the l2 term jumps over 100-fold at step 201, then falls over 5-fold by the end",
        lambda r: _finite(r) and _mean(r, "loss:l2", 200, 205) > 100 * _mean(r, "loss:l2", 190, 200)
        and _mean(r, "loss:l2", -10) < _mean(r, "loss:l2", 200, 205) / 5,
        schedule=((201, "c", 0.05),)),
    # ----------------------------------------------------------------------- two-branch (question 001)
    Scenario(
        "two-branch", "trainable-alpha", "Trainable alpha, minimised with the loss",
        {"alpha": "trainable"}, 200,
        "Minimising alpha·L1 + (1 - alpha)·L2 over alpha is linear in alpha: it moves towards whichever branch has "
        "the smaller loss and stops at the bound. Here alpha reaches 0 within about 60 steps and branch 1 gets no "
        "weight at all.",
        "alpha ends at a bound (0 or 1)",
        lambda r: rec.column(r, "alpha")[-1] in (0.0, 1.0)),
    Scenario(
        "two-branch", "uncertainty", "Uncertainty weighting (Kendall et al. 2018)",
        {"alpha": "uncertainty"}, 200,
        "Learned log-variances weight each branch by exp(-s) and pay s for it, so neither weight can run to 0 "
        "for free: the effective alpha moves, but stays strictly inside (0, 1).",
        "alpha stays strictly inside (0, 1)",
        lambda r: 0.0 < min(rec.column(r, "alpha")) and max(rec.column(r, "alpha")) < 1.0),
    Scenario(
        "two-branch", "alpha-to-one", "Push alpha to 1 while it trains: branch 2 dies",
        {"alpha": 0.5}, 400,
        "At step 201 alpha goes from 0.5 to 1 (the marker): branch 2's head gets no gradient and the shared layers "
        "now serve branch 1 alone, so branch 2's loss rises again and accuracy drops. Try 0.9 with the slider "
        "instead: branch 2 still learns, only slower.",
        "branch 2's loss over the last 20 steps is over 1.5 times its loss just before the change",
        lambda r: _finite(r) and _mean(r, "loss:branch_2", -20) > 1.5 * _mean(r, "loss:branch_2", 180, 200),
        schedule=((201, "alpha", 1.0),)),
    # ----------------------------------------------------------------------- max-mse (question 003)
    Scenario(
        "max-mse", "neg-mse", "-MSE: the generator climbs the MSE",
        {"variant": "neg-mse"}, 300,
        "Minimising -MSE maximises the MSE: the loss falls below 0 as the predictions leave the diagonal (see the "
        "mse metric rise). The climb slows as the sigmoid outputs reach 0 or 1.",
        "the MSE rises by more than 0.05",
        lambda r: _mean(r, "metric:mse", -20) > _mean(r, "metric:mse", 0, 20) + 0.05),
    Scenario(
        "max-mse", "inverse-exploding", "1/MSE with epsilon 0: an exploding gradient",
        {"variant": "inverse-mse", "epsilon": 0.0, "lr": 0.05}, 300,
        "1/r² with no epsilon: near a zero residual its gradient grows like 1/r³. Look at the gradient norm (log "
        "scale): it spikes by several orders of magnitude, to over a million, whenever a prediction crosses its "
        "target. Set epsilon > 0 to bound it.",
        "the gradient norm exceeds 1e6",
        lambda r: max(rec.column(r, "grad_norm")) > 1e6),
    Scenario(
        "max-mse", "neg-lr", "MSE with a negative learning rate",
        {"variant": "neg-lr", "optimizer": "sgd", "lr": 0.5}, 300,
        "Plain SGD on the MSE with lr = -0.5 takes exactly the steps of SGD on -MSE with lr = 0.5: the same climb, "
        "but the loss shown is the MSE itself, rising.",
        "the MSE (here the loss) rises by more than 0.05",
        lambda r: _mean(r, "loss", -20) > _mean(r, "loss", 0, 20) + 0.05),
)


def for_demo(demo: str) -> list[Scenario]:
    return [s for s in SCENARIOS if s.demo == demo]


def get(demo: str, name: str) -> Scenario:
    for s in for_demo(demo):
        if s.name == name:
            return s
    raise KeyError(f"no scenario {name!r} for {demo}")
