"""The loss check-up: a fixed battery of probes on any loss (a built-in demo, a formula, a file of your own code)
that says, with evidence, what will go wrong and what to change.

>>> findings = check("sparse-penalty", {"variant": "naive"})
>>> [f.id for f in findings if f.severity == "error"]
['nonfinite-at-edge']

The probes (ids in ``IDS``):

- without training (``edges``): the loss and its gradient at the edges of each output (``nonfinite-at-edge``),
  samples with zero gradient at initialisation or where a prediction is confidently wrong (``dead-gradient``),
  rays out of the outputs (``unbounded``), the gradient near a zero residual (``exploding-gradient``);
- training (``runs``, skipped by ``quick``): a short run (``term-off``, ``term-drowned``, ``constant-predictor``),
  one fixed batch (``cannot-overfit``: "overfit one batch first"), a scan over lr x the main knob on the sweep
  machinery (``nan-in-scan``), and the short run's sharpness against the optimizer's stability limit
  (``past-stability-limit``, with the scan's NaNs and stalls it explains).

A probe that cannot run on a loss says so as an ``info`` finding.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from .. import catalog, settings as config
from . import edges, runs, stability
from .advice import advisor
from .findings import IDS, SEVERITIES, Finding, num, ranked  # noqa: F401  (the package's names)
from .heads import LossAt

EDGE_BATCH = 128
PARTS = ("edges", "short run", "one batch", "scan")


def check(demo: str, settings: Mapping[str, Any] | None = None, seed: int = 0, quick: bool = False,
          progress: Callable[[float, str], None] | None = None, only: tuple[str, ...] = PARTS,
          jobs: int | None = None) -> list[Finding]:
    """Every probe on ``demo`` at ``settings``; the findings, worst first. ``quick`` skips the short run, the
    one-batch run and the scan; ``only`` runs some parts (tests); ``progress(fraction, words)`` as each part ends."""
    from ..training import Trainer

    name = catalog.get(demo).name
    settings = config.resolve(name, settings)
    parts = [p for p in PARTS if p in only and (p == "edges" or not quick)]
    say = progress or (lambda fraction, words: None)
    suggest = advisor(name, settings)
    findings: list[Finding] = []
    notes: list[Finding] = []

    trainer = Trainer(name, settings, seed)
    batch = runs.sample(trainer.data, EDGE_BATCH, seed)
    at = LossAt(trainer, batch)
    live = runs.prediction_terms(at)
    if "edges" in parts:
        say(0.0, "the loss at the edges of its outputs")
        findings += edges.nonfinite_at_edge(at, suggest)
        dead, quiet = edges.dead_gradient(at, suggest)
        findings += dead
        notes += quiet
        found, _ = edges.unbounded(at, suggest)
        findings += found
        findings += edges.exploding_gradient(at, suggest)
        findings += runs.term_drowned(trainer, live, suggest)
        notes += _unmatched(at)
    short, scanned = None, []
    if "short run" in parts:
        say(0.15, f"a short run of {runs.SHORT_STEPS} steps")
        short = runs.short_run(name, settings, seed)
        findings += runs.term_off(short, live, suggest)
        findings += runs.constant_findings(short, suggest)
        if len(config.terms(name)) < 2:
            notes.append(Finding("term-off", "info", "The loss has one term: the term probes do not apply.", {}))
    if "one batch" in parts:
        say(0.35, f"one batch, {runs.OVERFIT_STEPS} steps")
        found, quiet = runs.overfit(name, settings, seed, trainer.data, suggest)
        findings += found
        notes += quiet
    if "scan" in parts:
        say(0.5, "a stability scan over lr and the main knob")
        done = []

        def row(i, r):
            done.append(i)
            say(0.5 + 0.5 * len(done) / 12, f"scan: {len(done)} cells done")
        found, scanned = runs.scan(name, settings, seed, suggest, jobs=jobs, on_row=row)
        findings += found
    if short is not None:
        findings += stability.past_stability_limit(short, suggest, scanned)
    if quick:
        notes.append(Finding("clean", "info", "--quick: the short run, the one-batch run and the scan were skipped "
                             "(term-off, term-drowned, constant-predictor, cannot-overfit, nan-in-scan, "
                             "past-stability-limit).", {}))
    if not any(f.severity in ("error", "warning") for f in findings):
        findings.append(Finding("clean", "info", "No error or warning: " + ", ".join(parts) + " passed.",
                                {"parts": parts}))
    say(1.0, "done")
    return ranked(findings + notes)


def _unmatched(at: LossAt) -> list[Finding]:
    """One line per output no target has the shape of (an embedding, a distance, sparse labels against class
    scores): the probes at a perfect or wrong prediction skip it."""
    shapes = {k: _shape(v) for k, v in at.batch.targets.items()}
    found = []
    for head in (h for h in at.heads if not h.target):
        found.append(Finding(
            "clean", "info", f"Output {head.read} is {_shape(at.out[head.read])} and no target has that shape (the "
            f"targets: " + ", ".join(f"{k} {v}" for k, v in shapes.items()) + "): the probes at a perfect or wrong "
            f"prediction (nonfinite-at-edge at the targets, dead-gradient where wrong, exploding-gradient, "
            f"constant-predictor) skipped it.", {"output": head.read, "shape": _shape(at.out[head.read]),
                                                 "targets": shapes}))
    return found


def _shape(array) -> str:
    """``(n, 3)``: an array's shape with its batch axis as n."""
    rest = tuple(np.shape(array)[1:])
    return "(" + ", ".join(["n", *map(str, rest)]) + ("," if not rest else "") + ")"


def table(findings: list[Finding]) -> str:
    """The findings as a plain-text table, worst first, then the suggested changes."""
    rows = [("severity", "id", "finding")] + [(f.severity, f.id, f.message) for f in findings]
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}" for r in rows]
    changes = [f for f in findings if f.suggestion and f.severity != "info"]
    if changes:
        lines += ["", "suggested changes:"]
        for f in changes:
            where = " ".join(f"--set {a}" for a in f.set_args)
            lines.append(f"  {f.id}: {f.suggestion}" + (f"  ({where})" if where else ""))
    return "\n".join(lines)


def exit_code(findings: list[Finding]) -> int:
    """0 when no finding is an error, 1 when one is."""
    return 1 if any(f.severity == "error" for f in findings) else 0
