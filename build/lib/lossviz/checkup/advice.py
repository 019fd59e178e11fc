"""What to change for each finding: the seeds' fixes where a built-in demo has them (as settings a page loads),
general advice otherwise."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .. import settings as config

GENERAL = {
    "nonfinite-at-edge": "compute the loss from logits (log_sigmoid, log_softmax) or keep log/divide away from 0",
    "dead-gradient": "do not select or clip samples out of the loss: weight them, or compute it from logits",
    "unbounded": "give the loss a floor (e.g. a bounded transform of the error) or bound the output it pushes",
    "exploding-gradient": "add an epsilon inside the division or log, or clip the gradient norm",
    "constant-predictor": "weight the rare class per sample (about (1 - rate) / rate), not per batch",
    "term-off": "keep each weight away from its bounds (uncertainty weighting, or a fixed weight)",
    "term-drowned": "raise the weight of the drowned term until the shares are comparable",
    "nan-in-scan": "keep the learning rate below the boundary, or clip the gradient norm",
    "cannot-overfit": "check the sign, the reduction axis and every term on one batch before a full run",
}

# (demo, finding id) -> (text, settings): the questions' fixes
FIXES: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    ("sparse-penalty", "nonfinite-at-edge"): ("compute the penalised BCE from logits", {"variant": "logits"}),
    ("sparse-penalty", "dead-gradient"): ("compute the penalised BCE from logits: no clip, no dead gradient",
                                          {"variant": "logits"}),
    ("sparse-penalty", "constant-predictor"): ("weight each positive sample, from logits", {"variant": "logits"}),
    ("policy-value", "dead-gradient"): ("mask the logits of illegal moves instead of selecting pi == 1",
                                        {"mask": "logits"}),
    ("policy-value", "nonfinite-at-edge"): ("mask the logits of illegal moves", {"mask": "logits"}),
    ("two-branch", "term-off"): ("learn the weights as uncertainties (Kendall et al. 2018)", {"alpha": "uncertainty"}),
    ("max-mse", "unbounded"): ("1/MSE with an epsilon has a floor of 0", {"variant": "inverse-mse", "epsilon": 0.001}),
    ("max-mse", "exploding-gradient"): ("an epsilon in 1/(r^2 + epsilon) caps the gradient", {"epsilon": 0.001}),
    ("max-mse", "nonfinite-at-edge"): ("an epsilon in 1/(r^2 + epsilon) keeps it finite", {"epsilon": 0.001}),
}


def advisor(demo: str, settings: Mapping[str, Any]) -> Callable[[str], tuple[str, dict[str, Any]]]:
    """``suggest(finding_id) -> (text, settings to load)``; the settings are checked against the demo's."""
    def suggest(finding: str, extra: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        text, change = FIXES.get((demo, finding), (GENERAL.get(finding, ""), {}))
        change = {**change, **(extra or {})}
        if finding == "term-drowned" and demo == "sparse-penalty":
            rate = float(settings.get("positive_rate", 0.02))
            change = {"penalty": round((1 - rate) / rate, 1)}
            text = "raise the positives' penalty to about (1 - rate) / rate"
        try:
            config.resolve(demo, {**settings, **change})
        except config.SettingError:
            change = {}
        return text, change
    return suggest
