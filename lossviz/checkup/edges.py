"""The probes that need no training: the loss and its gradient at the edges of its heads, at initialisation,
at confidently wrong predictions, along rays out of the outputs' range and near a perfect prediction.

Gradients are per sample, with respect to each head's pre-activation (``heads``), scaled by the batch size so a
mean loss gives each sample's own gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .findings import Finding, num
from .heads import Head, LossAt, perfect_z

SATURATED = 1e4  # logits of +-1e4: p = 0 and 1 exactly in float32
NEAR = 16.118  # the logit of 1 - 1e-7: p = 1e-7 from the edge
WRONG = 20.0  # confidently wrong: p = 2e-9 on the wrong side
PUSH = 1e-9  # a per-sample gradient below this moves nothing: the edge is not approached
RAYS = (0.0, 1.0, 10.0, 100.0, 1e3, 1e4)
DELTAS = (1e-1, 1e-2, 1e-3, 1e-4)
FAR = 1.0  # the farthest point from a perfect prediction: a bounded gradient 1e3 times larger nearer is enormous


@dataclass
class Edge:
    label: str
    z: np.ndarray  # per sample
    approach: np.ndarray | None = None  # a point just inside it: does descent move towards the edge?


def groups(head: Head, y: np.ndarray | None, n: int) -> list[tuple[str, np.ndarray]]:
    """The target groups a finding names: y = 1 / y = 0, one-hot / spread targets, or every sample."""
    if y is None:
        return [("every sample", np.ones(n, bool))]
    flat = y.reshape(len(y), -1)
    name = head.target.rpartition(":")[2] if head.target else "y"
    if head.target_kind == "binary" and flat.shape[1] == 1:
        found = [(f"{name} = 1", flat[:, 0] > 0.5), (f"{name} = 0", flat[:, 0] <= 0.5)]
    elif head.target_kind == "distribution":  # a sample is one-hot when each of its rows of classes is
        one_hot = np.isclose(y.reshape(len(y), -1, y.shape[-1]).max(axis=-1), 1.0).all(axis=1)
        found = [(f"one-hot {name}", one_hot), (f"spread {name} (no entry is 1)", ~one_hot)]
    else:
        found = [("every target", np.ones(n, bool))]
    return [(label, mask) for label, mask in found if mask.any()]


def _full(value: float, like: np.ndarray) -> np.ndarray:
    return np.full(like.shape, value, np.float32)


def _onehot(index: np.ndarray, like: np.ndarray, value: float) -> np.ndarray:
    """``value`` at each row's class ``index`` (over the last axis: a sample's, a pixel's, a time step's), 0 elsewhere."""
    out = np.zeros(like.shape, np.float32)
    np.put_along_axis(out, np.asarray(index)[..., None], np.float32(value), axis=-1)
    return out


def edges(head: Head, y: np.ndarray | None, z0: np.ndarray) -> list[Edge]:
    """The head's edges the data allows: saturated, 1e-7 from saturation, the perfect and the worst prediction,
    a zero and a huge residual."""
    if head.kind == "sigmoid":
        found = [Edge("p = 0 (logit -1e4)", _full(-SATURATED, z0), _full(-NEAR, z0)),
                 Edge("p = 1 (logit +1e4)", _full(SATURATED, z0), _full(NEAR, z0)),
                 Edge("p = 1e-7", _full(-NEAR, z0)), Edge("p = 1 - 1e-7", _full(NEAR, z0))]
        if y is not None and head.target_kind == "real":
            zp = perfect_z(head, y)[0]
            found.append(Edge("zero residual (p = y)", zp, zp + 1e-3 * np.sign(z0 - zp + 1e-12)))
        return found
    if head.kind == "softmax":
        if y is None:
            return [Edge("one-hot (logit +1e4 on class 0)", _onehot(np.zeros(z0.shape[:-1], int), z0, SATURATED))]
        right, wrong = np.argmax(y, axis=-1), np.argmin(y, axis=-1)
        return [Edge("all mass on the target's class", _onehot(right, z0, SATURATED), _onehot(right, z0, NEAR)),
                Edge("all mass on a wrong class", _onehot(wrong, z0, SATURATED), _onehot(wrong, z0, NEAR)),
                Edge("uniform", _full(0.0, z0))]
    if head.kind == "tanh":
        found = [Edge("v = -1 (pre-activation -1e4)", _full(-SATURATED, z0), _full(-8.0, z0)),
                 Edge("v = +1 (pre-activation +1e4)", _full(SATURATED, z0), _full(8.0, z0))]
        if y is not None and head.target_kind != "none":
            zp = perfect_z(head, y)[0]
            found.append(Edge("zero residual (v = target)", zp, zp + 1e-3 * np.sign(z0 - zp + 1e-12)))
        return found
    found = [Edge("+1e4 everywhere", _full(SATURATED, z0), _full(1e3, z0)),
             Edge("-1e4 everywhere", _full(-SATURATED, z0), _full(-1e3, z0))]
    if y is not None:
        y = y.astype(np.float32)
        found += [Edge("zero residual (output = target)", y, y + np.float32(1e-3) * np.sign(z0 - y + 1e-12)),
                  Edge("huge residual (+1e4)", y + SATURATED, y + 1e3), Edge("huge residual (-1e4)", y - SATURATED, y - 1e3)]
    return found


def wrong(head: Head, y: np.ndarray | None, z0: np.ndarray) -> Edge | None:
    """A confidently wrong prediction (2e-9 on the wrong side of a class), where a head has classes."""
    if y is None:
        return None
    if head.kind == "sigmoid" and head.target_kind == "binary":
        return Edge("confidently wrong (p = 2e-9 for y = 1, 1 - 2e-9 for y = 0)",
                    np.where(y > 0.5, -WRONG, WRONG).astype(np.float32))
    if head.kind == "softmax" and head.target_kind in ("one-hot", "distribution"):
        return Edge("confidently wrong (all but 2e-9 of the mass on a wrong class)",
                    _onehot(np.argmin(y, axis=-1), z0, WRONG))
    return None


def _targets(at: LossAt, head: Head):
    return at.batch.targets[head.target] if head.target else None


def _nonfinite(value, key, rows) -> str | None:
    if not np.isfinite(value.total):
        return "loss"
    if not np.isfinite(value.grads[key]).all():
        return "gradient"
    return None


def _bad_value(value, key) -> str:
    if not np.isfinite(value.total):
        return num(value.total)
    g = value.grads[key]
    return "nan" if np.isnan(g).any() else "inf"


def nonfinite_at_edge(at: LossAt, suggest: Callable) -> list[Finding]:
    """NaN or inf in the loss or its gradient at an edge, per target group; an error when descent just inside the
    edge moves predictions towards it (training goes there), a warning otherwise."""
    broken = []
    for head in at.heads:
        y = _targets(at, head)
        for label, mask in groups(head, y, len(at.batch)):
            rows = np.flatnonzero(mask)
            for edge in edges(head, y, at.z0[head.key]):
                value = at({head.key: edge.z}, rows)
                where = _nonfinite(value, head.key, rows)
                if where is None:
                    continue
                pulled = False
                if edge.approach is not None:
                    inside = at({head.key: edge.approach}, rows)
                    towards = np.sign(edge.z[rows] - edge.approach[rows])
                    push = -(inside.grads[head.key] * towards).reshape(len(rows), -1).sum(axis=1)
                    pulled = bool(np.isfinite(push).all() and np.mean(push) > PUSH)
                broken.append({"output": head.read, "target": label, "prediction": edge.label, "in": where,
                               "value": _bad_value(value, head.key), "training_moves_towards_it": pulled})
    if not broken:
        return []
    pulled = [b for b in broken if b["training_moves_towards_it"]]
    first = (pulled or broken)[0]
    message = (f"The {first['in']} is {first['value']} at {first['target']}, {first['prediction']} (output "
               f"{first['output']})" + (", and descent moves predictions towards it" if pulled else
                                        "; descent does not move predictions there, so a run rarely reaches it"))
    text, change = suggest("nonfinite-at-edge")
    return [Finding("nonfinite-at-edge", "error" if pulled else "warning", message + ".",
                    {"edges": broken[:8], "count": len(broken)}, text, change)]


def _dead(grads: np.ndarray) -> np.ndarray:
    flat = grads.reshape(len(grads), -1)
    return np.isfinite(flat).all(axis=1) & (flat == 0).all(axis=1)


def _common(head: Head, y, dead: np.ndarray) -> str:
    """What the dead samples have in common: the target group holding (nearly) all of them."""
    for label, mask in groups(head, y, len(dead)):
        if mask.all():
            continue
        if dead[mask].mean() >= 0.9 and (dead & mask).sum() >= 0.9 * dead.sum():
            return label
    return ""


def dead_gradient(at: LossAt, suggest: Callable) -> tuple[list[Finding], list[Finding]]:
    """(findings, notes): samples with exactly zero gradient at initialisation, and at confidently wrong
    predictions. A head no sample gets a gradient from is a note (the loss does not read it)."""
    found, notes = [], []
    start = at()
    live_heads = [h for h in at.heads if not _dead(start.grads[h.key]).all()]
    for head in at.heads:
        y = _targets(at, head)
        dead = _dead(start.grads[head.key])
        share = float(dead.mean())
        if share == 1.0:
            if live_heads:
                notes.append(Finding("dead-gradient", "info", f"The loss does not read output {head.read}: no sample "
                                     f"gets a gradient through it.", {"output": head.read, "share": 1.0}))
                continue
        if share >= 0.01:
            common = _common(head, y, dead)
            message = (f"{share:.0%} of the samples get exactly zero gradient through output {head.read} at "
                       f"initialisation" + (f": the {common}" if common else "") + ".")
            evidence = {"output": head.read, "share": round(share, 4), "when": "initialisation",
                        "samples": int(dead.sum()), "of": len(dead), "in_common": common}
            if common:
                mask = dict(groups(head, y, len(dead)))[common]
                evidence["share_of_that_group"] = round(float(dead[mask].mean()), 4)
            text, change = suggest("dead-gradient")
            found.append(Finding("dead-gradient", "error" if share >= 0.5 else "warning", message, evidence, text,
                                 change))
            continue
        edge = wrong(head, y, at.z0[head.key])
        if edge is None:
            continue
        value = at({head.key: edge.z})
        dead_wrong = _dead(value.grads[head.key])
        if dead_wrong.mean() >= 0.5:
            text, change = suggest("dead-gradient")
            found.append(Finding(
                "dead-gradient", "warning",
                f"{dead_wrong.mean():.0%} of the samples get exactly zero gradient through output {head.read} where "
                f"the prediction is confidently wrong: training cannot correct such a prediction.",
                {"output": head.read, "share": round(float(dead_wrong.mean()), 4), "when": edge.label,
                 "loss_there": value.total}, text, change))
    return found, notes


def _ray(at: LossAt, head: Head, direction: float, t: float):
    if head.outputs.get(head.key, "own") is None:  # the free value is an output: move it, the others follow
        return at({head.key: at.z0[head.key] + np.float32(direction * t)})
    return at(raw={head.key: at.out[head.key] + np.float32(direction * t)})


def unbounded(at: LossAt, suggest: Callable) -> tuple[list[Finding], float]:
    """The loss along rays out of each output (its own values, past an activation's range): unbounded when it keeps
    falling at least as fast at every decade. Returns the findings and the lowest loss met on any ray."""
    lowest = np.inf
    for head in at.heads:
        for direction in (1.0, -1.0):
            losses = [_ray(at, head, direction, t).total for t in RAYS]
            finite = [x for x in losses if np.isfinite(x)]
            if finite:
                lowest = min(lowest, min(finite))
            if not np.isfinite(losses).all() and -np.inf not in losses:
                continue
            drops = -np.diff(losses[-3:])
            if -np.inf in losses or (np.all(drops > 0) and drops[-1] >= drops[0] and losses[-1] < losses[0] - 1.0):
                text, change = suggest("unbounded")
                sign = "+" if direction > 0 else "-"
                moved = head.key  # the value moved: a logit feeding its probability, or the output itself
                return [Finding(
                    "unbounded", "error",
                    f"The loss falls without bound as output {moved} moves {sign}1e4 from the model's values: "
                    f"{num(losses[0])} there, {num(losses[-1])} at {sign}1e4. Minimising it diverges by design.",
                    {"output": moved, "direction": f"{sign}1", "offsets": list(RAYS), "loss": losses},
                    text, change)], float(min(lowest, losses[-1]))
    return [], float(lowest)


def exploding_gradient(at: LossAt, suggest: Callable) -> list[Finding]:
    """The gradient approaching a perfect prediction of a real-valued target: exploding when it grows 3x or more
    at every step 10x closer and passes 1e3 (no bound), or when it is 1e3 times or more larger somewhere nearer
    than at the farthest point, ``FAR`` (bounded, by an epsilon say, but enormous)."""
    for head in at.heads:
        y = _targets(at, head)
        if y is None or (head.target_kind != "real" and head.kind != "linear"):
            continue
        zp = perfect_z(head, y)[0]
        side = np.where(at.z0[head.key] >= zp, 1.0, -1.0).astype(np.float32)

        def norm(delta):
            g = at({head.key: zp + np.float32(delta) * side}).grads[head.key]
            return float(np.mean(np.linalg.norm(g.reshape(len(g), -1), axis=1)))

        norms, far = [norm(d) for d in DELTAS], norm(FAR)
        growth = [b / a if a > 0 else np.inf for a, b in zip(norms, norms[1:])]
        evidence = {"output": head.read, "distance": list(DELTAS), "mean_gradient_norm": norms}
        text, change = suggest("exploding-gradient")
        if not np.isfinite(norms[-1]) or (all(r >= 3 for r in growth[1:]) and norms[-1] >= 1e3):
            return [Finding(
                "exploding-gradient", "warning" if np.isfinite(norms[-1]) else "error",
                f"The gradient through output {head.read} grows without bound near a perfect prediction: "
                f"{num(norms[0])} at 1e-1 from it, {num(norms[-1])} at 1e-4 (x{num(growth[-1])} per step 10x closer).",
                evidence, text, change)]
        peak = int(np.argmax(norms))
        factor = norms[peak] / far if far > 0 else np.inf
        if factor >= 1e3 and norms[peak] > 0:
            return [Finding(
                "exploding-gradient", "warning",
                f"The gradient through output {head.read} is x{num(factor)} larger near a perfect prediction than "
                f"{FAR:g} from it: {num(norms[peak])} at {DELTAS[peak]:g} from it, against {num(far)}. Finite (bounded), "
                f"but one step there throws the prediction far away.",
                {**evidence, "far": FAR, "gradient_far": far, "peak": norms[peak], "at_distance": DELTAS[peak],
                 "growth": factor}, text, change)]
    return []


def perfect_loss(at: LossAt) -> float | None:
    """The loss at a perfect prediction of every head with a target (the lowest over each head's candidates);
    None when no head has one."""
    options = [(h, perfect_z(h, at.batch.targets[h.target])) for h in at.heads if h.target]
    if not options:
        return None
    best = np.inf
    for choice in range(max(len(c) for _, c in options)):
        z = {h.key: c[min(choice, len(c) - 1)] for h, c in options}
        best = min(best, at(z).total)
    return float(best)
