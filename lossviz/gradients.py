"""Gradient anatomy: each loss term's own gradient, its norm per layer, the cosine between two terms'
gradients, and two ways to combine term gradients that balance the terms.

- PCGrad: Yu et al. 2020, "Gradient Surgery for Multi-Task Learning". When two terms' gradients conflict
  (negative dot product), each is projected onto the normal plane of the other before they are summed.
- GradNorm: Chen et al. 2018, "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
  Multitask Networks". The terms' weights move so that their weighted gradient norms on the last shared
  layer approach a common target, scaled by each term's relative inverse training rate to the power
  ``asymmetry`` (the paper's alpha).

Every function takes gradients as lists of tensors (one per variable, in the trainer's variable order), so
it runs inside the trainer's compiled step and eagerly in tests. Sums over variables are one ``reduce_sum`` over
the variables laid end to end, never ``add_n`` (no fixed order), so the records are reproducible bit for bit.
"""

from __future__ import annotations

import itertools
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf

from . import demos


def pairs(terms: Sequence[str]) -> list[tuple[str, str]]:
    return list(itertools.combinations(terms, 2))


def columns(terms: Sequence[str], layers: Sequence[str]) -> list[str]:
    """The record columns of the probe: ``grad_norm@<term>``, ``grad_norm@<term>:<layer>``, ``cos:<a>|<b>``."""
    return ([f"grad_norm@{t}" for t in terms] + [f"grad_norm@{t}:{layer}" for t in terms for layer in layers]
            + [f"cos:{a}|{b}" for a, b in pairs(terms)])


def _flat(tensors: Sequence[tf.Tensor]) -> tf.Tensor:
    return tf.concat([tf.reshape(t, (-1,)) for t in tensors], 0)


def dot(a: Sequence[tf.Tensor], b: Sequence[tf.Tensor]) -> tf.Tensor:
    """The dot product of two gradients over all variables (one reduction over the variables laid end to end)."""
    return tf.reduce_sum(_flat(a) * _flat(b))


def group_squares(grads: Sequence[tf.Tensor], groups: Mapping[str, Sequence[int]]) -> tf.Tensor:
    """Each group's sum of squares (``groups``: layer -> indices of its variables), stacked in the groups' order:
    one reduction a group over its tensors laid end to end, not one a tensor (the dense net's step runs about a
    hundred microseconds, and each small reduction costs it a few)."""
    return tf.stack([tf.reduce_sum(tf.square(_flat([grads[i] for i in idx]))) for idx in groups.values()])


def norms(grads: Sequence[tf.Tensor], groups: Mapping[str, Sequence[int]]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """A gradient's global norm and its norm per group of variables (``groups``: layer -> indices of its
    variables, every variable in one group; empty: the global norm only)."""
    if not groups:
        return tf.sqrt(tf.reduce_sum(tf.square(_flat(grads)))), {}
    return norms_of(group_squares(grads, groups), groups)


def norms_of(sums: tf.Tensor, groups: Mapping[str, Sequence[int]]) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """:func:`norms` from the groups' sums of squares (:func:`group_squares`)."""
    return tf.sqrt(tf.reduce_sum(sums)), {name: tf.sqrt(sums[j]) for j, name in enumerate(groups)}


def _cosine(d: tf.Tensor, na: tf.Tensor, nb: tf.Tensor) -> tf.Tensor:
    return tf.math.divide_no_nan(d, na * nb)


def cosine(a: Sequence[tf.Tensor], b: Sequence[tf.Tensor]) -> tf.Tensor:
    """cos(a, b) over all variables; 0 when either gradient is zero, NaN when either has a NaN."""
    return _cosine(dot(a, b), norms(a, {})[0], norms(b, {})[0])


def anatomy(term_grads: Mapping[str, Sequence[tf.Tensor]], groups: Mapping[str, Sequence[int]]) -> tf.Tensor:
    """The probe's values in the order of :func:`columns`: each term's global gradient norm, its norm per
    layer (``groups``: layer -> indices of its variables), and the cosine of each pair of terms."""
    found = {term: norms(grads, groups) for term, grads in term_grads.items()}
    cosines = [_cosine(dot(term_grads[a], term_grads[b]), found[a][0], found[b][0]) for a, b in pairs(list(term_grads))]
    return tf.stack([found[t][0] for t in found] + [n for t in found for n in found[t][1].values()] + cosines)


def total(term_grads: Sequence[Sequence[tf.Tensor]]) -> list[tf.Tensor]:
    """The sum of the terms' gradients, variable by variable (the gradient of the sum of the terms)."""
    return [tf.reduce_sum(tf.stack(per_variable), axis=0) for per_variable in zip(*term_grads)]


def pcgrad(term_grads: Sequence[Sequence[tf.Tensor]]) -> list[tf.Tensor]:
    """PCGrad's update direction: for each term i, its gradient g_i is projected off every other term's
    original gradient g_j it conflicts with, g_i <- g_i - (g_i . g_j) / |g_j|^2 g_j when g_i . g_j < 0, and
    the projected gradients are summed. The paper visits the other terms in random order; here they are
    visited in term order, so runs are reproducible (with two terms the order does not matter)."""
    squared = [tf.reduce_sum(tf.square(_flat(g))) for g in term_grads]
    projected = []
    for i, g in enumerate(term_grads):
        g = list(g)
        for j, other in enumerate(term_grads):
            if j == i:
                continue
            d = dot(g, other)
            scale = tf.where(d < 0, tf.math.divide_no_nan(d, squared[j]), 0.0)
            g = [x - scale * y for x, y in zip(g, other)]
        projected.append(g)
    return total(projected)


def gradnorm_weights(weights: tf.Tensor, shared_norms: tf.Tensor, losses: tf.Tensor, initial_losses: tf.Tensor,
                     asymmetry: tf.Tensor, lr: tf.Tensor, floor: float = 1e-3) -> tf.Tensor:
    """One GradNorm update of the terms' weights ``w`` (they sum to the number of terms T).

    ``shared_norms`` are the unweighted norms |grad_W L_i| on the last shared layer W, so the weighted norms
    are G_i = w_i |grad_W L_i|. With r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0)), the target of G_i is
    mean(G) * r_i ** asymmetry, held constant; the loss |G_i - target_i| summed over i has the gradient
    sign(G_i - target_i) |grad_W L_i| with respect to w_i. One gradient step of size ``lr``, then every
    weight at least ``floor`` and the weights renormalised to sum to T, as in the paper."""
    count = tf.cast(tf.size(weights), tf.float32)
    weighted = weights * shared_norms
    ratio = losses / tf.maximum(initial_losses, 1e-12)
    inverse_rate = ratio / tf.reduce_mean(ratio)
    target = tf.stop_gradient(tf.reduce_mean(weighted) * tf.pow(inverse_rate, asymmetry))
    step = tf.sign(weighted - target) * shared_norms
    new = tf.maximum(weights - lr * step, floor)
    return new * count / tf.reduce_sum(new)


# ----------------------------------------------------------------------------- reading the records

def probe_terms(columns: Sequence[str]) -> list[str]:
    """The terms measured by the probe, from a record's or a table's columns."""
    return [c[len("grad_norm@"):] for c in columns if c.startswith("grad_norm@") and ":" not in c]


def probe_layers(columns: Sequence[str], term: str) -> list[str]:
    prefix = f"grad_norm@{term}:"
    return [c[len(prefix):] for c in columns if c.startswith(prefix)]


def _share(norms: np.ndarray) -> np.ndarray:
    """Norms over the last axis (the terms) as shares of their sum; NaN where the sum is 0 or not finite."""
    totals = norms.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = norms / totals
    return np.where(np.isfinite(out) & (totals > 0), out, np.nan)


def _norms(table, terms: Sequence[str], layers: Sequence[str]) -> np.ndarray:
    """(rows x layers x terms) for a frame, (layers x terms) for one record: the per-term norm of each layer."""
    return np.stack([np.stack([np.asarray(table[f"grad_norm@{t}:{layer}"], dtype=float) for t in terms], axis=-1)
                     for layer in layers], axis=-2)


def shares(table, terms: Sequence[str], layers: Sequence[str]) -> np.ndarray:
    """(rows x layers x terms) for a frame, (layers x terms) for one record: each term's share of the summed
    per-term gradient norms of each layer, NaN where the layer has no gradient or a norm is not finite. Over
    the terms, a layer's shares sum to 1."""
    return _share(_norms(table, terms, layers))


def pooled_shares(table, terms: Sequence[str], layers: Sequence[str]) -> np.ndarray:
    """(layers x terms) over the rows of a frame: each term's share of the norms summed over the rows (the
    steps with a large gradient weigh more; a batch without a term's samples does not count as its defeat)."""
    norms = _norms(table, terms, layers)
    finite = np.isfinite(norms).all(axis=(1, 2))
    return _share(norms[finite].sum(axis=0)) if finite.any() else np.full(norms.shape[1:], np.nan)


def pooled_global_shares(table, terms: Sequence[str]) -> np.ndarray:
    """Each term's share of its global gradient norm summed over the rows with every term's norm finite."""
    norms = np.stack([np.asarray(table[f"grad_norm@{t}"], dtype=float) for t in terms], axis=-1)
    finite = np.isfinite(norms).all(axis=-1)
    return _share(norms[finite].sum(axis=0)) if finite.any() else np.full(len(terms), np.nan)


def pair_cosine(table, a: str, b: str) -> np.ndarray:
    """The cosine between terms a and b on every row, NaN where a term has no gradient (a zero gradient, e.g.
    the positives of a batch without positives, neither agrees nor conflicts) or a non-finite one."""
    cos = np.asarray(table[f"cos:{a}|{b}"], dtype=float)
    both = (np.asarray(table[f"grad_norm@{a}"], dtype=float) > 0) & (np.asarray(table[f"grad_norm@{b}"], dtype=float) > 0)
    return np.where(both & np.isfinite(cos), cos, np.nan)


def measured_steps(steps: np.ndarray, every: int) -> np.ndarray:
    """Which of ``steps`` the probe measured (step 1 and every ``every``-th step; each one when ``every`` is 1)."""
    steps = np.asarray(steps)
    if every <= 1:
        return np.ones(len(steps), bool)
    return (steps == 1) | (steps % every == 0)


def conflicts(steps: Sequence[int], cos: Sequence[float], limit: int = 60) -> list[tuple[int, int]]:
    """The stretches of consecutive rows with a negative cosine, as (first, last) step; past ``limit`` stretches
    the nearest ones are merged."""
    steps, cos = np.asarray(steps), np.asarray(cos, dtype=float)
    bad = np.isfinite(cos) & (cos < 0)
    stretches: list[list[int]] = []
    for i in np.flatnonzero(bad):
        if stretches and i > 0 and bad[i - 1]:
            stretches[-1][1] = int(steps[i])
        else:
            stretches.append([int(steps[i]), int(steps[i])])
    while len(stretches) > limit:
        gaps = [stretches[k + 1][0] - stretches[k][1] for k in range(len(stretches) - 1)]
        k = int(np.argmin(gaps))
        stretches[k][1] = stretches[k + 1][1]
        del stretches[k + 1]
    return [(a, b) for a, b in stretches]


def describe(table, demo: str | None = None) -> list[str]:
    """Sentences on a run's measured steps (a frame of its records): which term carries the gradient of which
    layer (shares of the norms summed over the table's rows), how often and how much each pair of terms conflicts, and a hint
    where a demo's known failure shows (e.g. the sparse loss's negatives drowning its positives)."""
    terms = probe_terms(table.columns)
    if len(terms) < 2 or table.empty:
        return []
    layers = probe_layers(table.columns, terms[0])
    with np.errstate(all="ignore"):
        mean = pooled_shares(table, terms, layers)
    words = []
    lead = np.nanargmax(np.where(np.isfinite(mean), mean, -1), axis=1)
    for j, term in enumerate(terms):
        mine = [(layer, mean[i, j]) for i, layer in enumerate(layers) if lead[i] == j and np.isfinite(mean[i, j])]
        if not mine:
            continue
        low = min(share for _, share in mine)
        where = "every layer" if len(mine) == len(layers) else ", ".join(layer for layer, _ in mine)
        words.append(f"**{term}** carries {low:.0%} or more of the gradient of {where}.")
    for a, b in pairs(terms):
        cos = pair_cosine(table, a, b)
        finite = cos[np.isfinite(cos)]
        if not len(finite):
            words.append(f"{a} and {b}: no measured step where both have a finite, non-zero gradient.")
            continue
        share = float((finite < 0).mean())
        if share == 0:
            words.append(f"{a} and {b} never conflict (cosine >= 0 on every measured step).")
        else:
            first, last = max(conflicts(table["step"], cos), key=lambda stretch: stretch[1] - stretch[0])
            longest = f"step {first}" if first == last else f"steps {first} to {last}"
            words.append(f"{a} and {b} conflict (cosine < 0) on {share:.0%} of the measured steps where both pull "
                         f"(the longest stretch: {longest}); the mean cosine is {finite.mean():+.2f}, the lowest "
                         f"{finite.min():+.2f}.")
        if finite.mean() < -0.8:
            words.append(f"{a} and {b} nearly cancel: training sits where their pulls balance, and a weight on "
                         f"one of them (a penalty, alpha) moves that balance point.")
    drowning = demos.DEMOS[demo].drowning if demo in demos.DEMOS else None  # the demo's own words for it
    if drowning is not None and drowning[0] in terms:
        j = terms.index(drowning[0])
        if np.all(lead == j) and np.nanmin(mean[:, j]) > 0.9:
            words.append(drowning[1])
    return words
