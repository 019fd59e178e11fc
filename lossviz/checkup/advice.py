"""What to change for each finding: the demo's own fixes where it declares them (the seeds' fixes, as settings a
page loads), general advice otherwise."""

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
    "past-stability-limit": "lower lr until the sharpness is under the optimizer's stability limit",
    "cannot-overfit": "check the sign, the reduction axis and every term on one batch before a full run",
}


def advisor(demo: str, settings: Mapping[str, Any]) -> Callable[[str], tuple[str, dict[str, Any]]]:
    """``suggest(finding_id) -> (text, settings to load)``: the demo's own fix (``Demo.fixes``: the questions' fixes,
    as settings a page loads) or general advice; the settings are checked against the demo's."""
    fixes = config.spec(demo).fixes_of(settings)

    def suggest(finding: str, extra: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        text, change = fixes.get(finding, (GENERAL.get(finding, ""), {}))
        change = {**change, **(extra or {})}
        try:
            config.resolve(demo, {**settings, **change})
        except config.SettingError:
            change = {}
        return text, change
    return suggest
