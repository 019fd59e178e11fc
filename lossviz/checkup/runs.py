"""The probes that train: a short run at the given settings (terms switched off or drowned, a constant
predictor), one fixed batch trained to overfit, and a stability scan over the learning rate and the main knob.
Each reads the trainer's records, as every other view does."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np

from .. import gradients, records as rec, settings as config
from ..data import Dataset
from ..training import Trainer
from .edges import perfect_loss
from . import stability
from .findings import Finding, num
from .heads import LossAt, classes as classes_of

SHORT_STEPS = 300
OVERFIT_STEPS = 300
OVERFIT_BATCH = 32
SCAN_STEPS = 100
SCAN_LR = (0.1, 1.0, 10.0, 100.0)  # times the run's learning rate
WINDOW = 5  # measured steps pooled for a term's share (a batch without a term's samples is not its defeat)


def sample(data: Dataset, size: int, seed: int) -> Dataset:
    """``size`` rows of ``data``, seeded; a rare class of a 0/1 target gets up to a quarter of them."""
    rng = np.random.default_rng([seed, 7])
    n = len(data)
    chosen = rng.permutation(n)[:size]
    for y in data.targets.values():
        flat = y.reshape(n, -1)
        if flat.shape[1] != 1 or not np.isin(flat, (0.0, 1.0)).all():
            continue
        rare = np.flatnonzero(flat[:, 0] == (1.0 if flat.mean() < 0.5 else 0.0))
        have = np.isin(chosen, rare).sum()
        want = min(len(rare), size // 4)
        if have < want:
            extra = rng.choice(np.setdiff1d(rare, chosen), want - have, replace=False)
            common = chosen[~np.isin(chosen, rare)]
            chosen = np.concatenate([chosen[np.isin(chosen, rare)], extra, common[:size - want]])
        break
    return data.take(np.sort(chosen))


def short_run(demo: str, settings: Mapping[str, Any], seed: int, steps: int = SHORT_STEPS) -> Trainer:
    """A run of ``steps`` steps at the settings, with the per-term probe on where the loss has terms and the sharpness
    probe on (``stability``)."""
    settings = stability.with_probe(dict(settings))
    if len(config.terms(demo)) > 1 and settings.get("term_grads", "off") == "off":
        settings["term_grads"] = config.TERM_GRADS_DEFAULT
    trainer = Trainer(demo, settings, seed)
    trainer.advance(steps)
    return trainer


def prediction_terms(at: LossAt) -> list[str]:
    """The terms that depend on the predictions (a regulariser on the weights does not)."""
    moved = at({h.key: at.z0[h.key] + np.float32(0.5) for h in at.heads})
    return [t for t in at.trainer.layout.terms if at().terms.get(t) != moved.terms.get(t)]


def term_off(trainer: Trainer, live: list[str], suggest: Callable) -> list[Finding]:
    """During the run: a term's pooled share of the gradient under 1% (over WINDOW measured steps), or a trainable
    weight of the loss at a bound. ``live``: the terms that depend on the predictions (:func:`prediction_terms`)."""
    found = []
    table = trainer.records.frame(range(len(trainer.records)))
    if "alpha" in table and trainer.demo.extra_variables(trainer.settings):
        alpha = table["alpha"].to_numpy(float)
        hit = np.flatnonzero((alpha <= 0.01) | (alpha >= 0.99))
        if len(hit):
            i = int(hit[0])
            off = trainer.layout.terms[1] if alpha[i] >= 0.99 else trainer.layout.terms[0]
            text, change = suggest("term-off")
            found.append(Finding(
                "term-off", "error",
                f"The loss's own weight alpha reached {num(alpha[i])} at step {int(table['step'].iloc[i])}: the term "
                f"{off} is switched off (minimising over alpha puts all weight on the smaller term).",
                {"term": off, "step": int(table["step"].iloc[i]), "alpha": float(alpha[i]), "start": float(alpha[0])},
                text, change))
    terms = gradients.probe_terms(table.columns)
    if len(terms) < 2:
        return found
    every = config.term_period(trainer.settings.get("term_grads", "off"))
    measured = table[gradients.measured_steps(table["step"], every)]
    live = [t for t in live if t in terms]
    norms = measured[[f"grad_norm@{t}" for t in terms]].to_numpy(float)
    steps = measured["step"].to_numpy()
    for j, term in enumerate(terms):
        if term not in live or any(f.id == "term-off" and f.evidence["term"] == term for f in found):
            continue
        for end in range(WINDOW, len(norms) + 1):
            pooled = norms[end - WINDOW:end]
            if not np.isfinite(pooled).all() or pooled.sum() <= 0:
                continue
            share = pooled[:, j].sum() / pooled.sum()
            if share < 0.01:
                text, change = suggest("term-off")
                found.append(Finding(
                    "term-off", "warning",
                    f"The term {term} carries {share:.2%} of the gradient over steps {int(steps[end - WINDOW])} to "
                    f"{int(steps[end - 1])}: it is as good as switched off.",
                    {"term": term, "step": int(steps[end - 1]), "share": float(share)}, text, change))
                break
    return found


def term_drowned(trainer: Trainer, live: list[str], suggest: Callable, size: int = 1024) -> list[Finding]:
    """At initialisation, on ``size`` samples drawn as training draws them: one term with 90% or more of every
    layer's gradient (each term's own backward pass; ``live``: the terms that depend on the predictions, so a
    regulariser on the weights is left out)."""
    import tensorflow as tf

    terms = trainer.layout.terms
    if len(terms) < 2:
        return []
    rng = np.random.default_rng([trainer.seed, 8])
    batch = trainer.data.take(np.sort(rng.permutation(len(trainer.data))[:size]))
    if len(live) < 2:
        return []
    step = trainer.compiled
    trained, fixed, _, _ = trainer.state.parts()
    grads = step.term_gradients([tf.constant(v) for v in trained], [tf.constant(v) for v in fixed],
                                {k: tf.constant(v) for k, v in batch.inputs.items()},
                                {k: tf.constant(v) for k, v in batch.targets.items()}, trainer.hp)
    norms = {t: {layer: float(v) for layer, v in gradients.norms(grads[t], step.groups)[1].items()} for t in live}
    layers = [layer for layer in step.groups if sum(norms[t][layer] for t in live) > 0]
    found = []
    for term in live:
        shares = {layer: norms[term][layer] / sum(norms[t][layer] for t in live) for layer in layers}
        if layers and min(shares.values()) >= 0.9:
            drowned = [t for t in live if t != term]
            text, change = suggest("term-drowned")
            found.append(Finding(
                "term-drowned", "warning",
                f"At initialisation the term {term} carries {min(shares.values()):.0%} or more of every layer's "
                f"gradient (on {len(batch)} samples): {', '.join(drowned)} hardly move the weights.",
                {"term": term, "drowned": drowned, "lowest_share": min(shares.values()), "layers": shares,
                 "samples": len(batch)}, text, change))
    return found


def constant_findings(trainer: Trainer, suggest: Callable) -> list[Finding]:
    """After the short run: a classification output that predicts one class for (nearly) every held-out sample,
    with the loss of the loss's own best constant against the trained loss."""
    batch = sample(trainer.eval_set, 512, trainer.seed)
    at = LossAt(trainer, batch)
    found = []
    for head in at.heads:
        if not head.target or head.target_kind not in ("binary", "one-hot") or head.kind not in ("sigmoid", "softmax"):
            continue
        y, probs = batch.targets[head.target], at.out[head.read]
        if head.kind == "sigmoid":  # each entry a yes/no (a sample's, a label's, a pixel's)
            predicted, truth = (probs.reshape(-1) > 0.5).astype(int), (y.reshape(-1) > 0.5).astype(int)
        else:  # each row of classes (a sample's, a pixel's, a time step's)
            predicted, truth = classes_of(probs).argmax(axis=1), classes_of(y).argmax(axis=1)
        what = "samples" if len(truth) == len(batch) else "predictions (every entry of every sample)"
        classes = np.unique(truth)
        if len(classes) < 2:
            continue
        majority = np.bincount(predicted).max() / len(predicted)
        recall = {int(c): float((predicted[truth == c] == c).mean()) for c in classes}
        if majority < 0.99:
            continue
        always = int(np.bincount(predicted).argmax())
        best_z, best = 0.0, math.inf
        if head.kind == "sigmoid":
            for c in np.linspace(-12, 12, 49):
                value = at({head.key: np.full_like(at.z0[head.key], c)}).total
                if value < best:
                    best_z, best = float(c), value
        trained = at().total
        text, change = suggest("constant-predictor")
        evidence = {"output": head.read, "predicts": always, "share": float(majority), "recall_per_class": recall,
                    "trained_loss": trained, "steps": trainer.step}
        if head.kind == "sigmoid":
            evidence.update(best_constant=float(1 / (1 + math.exp(-best_z))), best_constant_loss=best,
                            base_rate=float(truth.mean()))
        found.append(Finding(
            "constant-predictor", "warning",
            f"After {trainer.step} steps output {head.read} predicts class {always} for {majority:.0%} of the held-out "
            f"{what} (recall of the other class: {min(recall.values()):.0%}): a constant does as well"
            + (f"; the loss's best constant p = {num(evidence['best_constant'])} scores {num(best)} against the "
               f"trained {num(trained)}" if head.kind == "sigmoid" else "") + ".",
            evidence, text, change))
    return found


def overfit(demo: str, settings: Mapping[str, Any], seed: int, data: Dataset, suggest: Callable,
            steps: int = OVERFIT_STEPS) -> tuple[list[Finding], list[Finding]]:
    """(findings, notes): train one fixed batch; ``cannot-overfit`` when the loss ends far from its value at a
    perfect prediction (or the loss is lower away from the targets than at them)."""
    batch = sample(data, OVERFIT_BATCH, seed)
    trainer = Trainer(demo, settings, seed)
    trainer.train_on(batch)
    at = LossAt(trainer, batch)
    perfect = perfect_loss(at)
    if perfect is None:
        return [], [Finding("cannot-overfit", "info", "No output has a target of its shape, so the loss at a perfect "
                            "prediction is unknown: the one-batch probe did not run.", {})]
    losses = rec.column(list(trainer.run(steps)), "loss")
    first, best = float(losses[0]), float(np.nanmin(losses)) if np.isfinite(losses).any() else math.nan
    step = int(np.nanargmin(losses)) + 1 if np.isfinite(losses).any() else 0
    evidence = {"first_loss": first, "lowest_loss": best, "at_step": step, "loss_at_perfect": perfect,
                "steps": steps, "batch": len(batch)}
    sign = 1.0 if config.effective_lr(trainer.demo.name, trainer.settings) >= 0 else -1.0
    if sign < 0:
        return [], [Finding("cannot-overfit", "info", "The learning rate is negative (the run climbs the loss): the "
                            "one-batch probe does not apply.", evidence)]
    if not math.isfinite(best) or not math.isfinite(first):
        gap_closed = 0.0
    else:
        gap_closed = (first - best) / (first - perfect) if first > perfect else (1.0 if best <= perfect else 0.0)
    if math.isfinite(best) and best < perfect - 1e-3 * (1 + abs(perfect)):
        return [], []  # lower than at the targets: the loss's optimum is elsewhere (``unbounded`` / rays say where)
    if gap_closed >= 0.8:
        return [], []
    text, change = suggest("cannot-overfit")
    return [Finding(
        "cannot-overfit", "error" if gap_closed <= 0.1 else "warning",
        f"Trained on one fixed batch of {len(batch)} for {steps} steps, the loss got to {num(best)} (step {step}) from "
        f"{num(first)}, not near its value at a perfect prediction, {num(perfect)}: {gap_closed:.0%} of the way.",
        {**evidence, "gap_closed": gap_closed}, text, change)], []


def main_knob(demo: str, settings: Mapping[str, Any]) -> str | None:
    """The numeric knob a scan crosses with the learning rate: the comparison's key when numeric, else the
    demo's first numeric knob that is not a training setting."""
    key = config.compare(demo)[0]
    knobs = [k for k in config.knob_keys(demo, settings) if k not in config.TRAINING_KEYS]
    if key in knobs:
        return key
    return knobs[0] if knobs else None


def _knob_values(demo: str, settings, key: str) -> list[Any]:
    p = config.param(demo, key, settings)
    value = float(settings[key])
    if p.kind == "alpha":
        candidates = [0.1, value, 0.9]
    elif value == 0:
        candidates = [0.0, 1e-6, 1e-3]
    else:
        candidates = [value / 10, value, value * 10]
    found = []
    for v in candidates:
        try:
            parsed = p.parse(v)
        except config.SettingError:
            continue
        if parsed not in found:
            found.append(parsed)
    return found


def scan(demo: str, settings: Mapping[str, Any], seed: int, suggest: Callable, steps: int = SCAN_STEPS,
         jobs: int | None = None, on_row: Callable | None = None) -> tuple[list[Finding], list[dict]]:
    """(findings, rows): the sweep machinery over lr x the main knob; ``nan-in-scan`` names the boundary."""
    from ..sweep import sweep

    lr = float(settings["lr"])
    lrs = [float(f"{lr * f:.3g}") for f in SCAN_LR]
    grids = [("lr", lrs)]
    key = main_knob(demo, settings)
    if key is not None:
        grids.append((key, _knob_values(demo, settings, key)))
    base = {k: v for k, v in settings.items() if k not in dict(grids)}
    rows = sweep(demo, grids, base, steps=steps, seed=seed, jobs=jobs, on_row=on_row, backend="threads")
    bad = [r for r in rows if r["status"] in ("diverged", "error")]
    stalled = [r for r in rows if r["status"] == "stalled"]
    if not bad and not stalled:
        return [], rows
    parts, mine_bad = [], False
    values = dict(grids).get(key, [None])
    for v in values:
        line = [r for r in rows if key is None or r[key] == v]
        diverged = sorted(float(r["lr"]) for r in line if r["status"] in ("diverged", "error"))
        trains = sorted(float(r["lr"]) for r in line if r["status"] == "ok")
        where = f" at {key} {config.format_value(v)}" if key is not None else ""
        if diverged:
            safe = [x for x in trains if x < diverged[0]]
            parts.append(f"NaN for lr >= {num(diverged[0])}{where}"
                         + (f"; trains for lr <= {num(safe[-1])}" if safe else "; no lr of the scan trains"))
        stall = sorted(float(r["lr"]) for r in line if r["status"] == "stalled")
        if stall:
            parts.append(f"stalls at lr {', '.join(num(x) for x in stall)}{where}")
        mine_bad |= any(abs(float(r["lr"]) - lr) <= 1e-12 * max(1, lr) and r["status"] == "diverged"
                        and (key is None or r[key] == settings[key]) for r in line)
    safe_lrs = [float(r["lr"]) for r in rows if r["status"] == "ok"]
    extra = {"lr": max(x for x in safe_lrs if x <= lr)} if mine_bad and any(x <= lr for x in safe_lrs) else {}
    text, change = suggest("nan-in-scan", extra)
    first_bad = min(bad, key=lambda r: float(r["lr"])) if bad else None
    show = ({"settings": {**{k: r for k, r in first_bad.items() if k in dict(grids)}}, "steps": steps}
            if first_bad else None)
    return [Finding(
        "nan-in-scan", "error" if mine_bad else "warning" if bad else "info",
        "The scan over " + " x ".join(f"{k} ({len(v)} values)" for k, v in grids) + f", {steps} steps each: "
        + "; ".join(parts) + ".",
        {"cells": len(rows), "diverged": len(bad), "stalled": len(stalled), "grid": {k: list(v) for k, v in grids},
         "rows": [{k: r[k] for k in [*dict(grids), "status", "first_nonfinite_step"]} for r in rows]},
        text, change, show)], rows
