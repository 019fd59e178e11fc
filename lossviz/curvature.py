"""The sharpness of a loss and the stability limit of its optimizer, measured inside the compiled step.

The sharpness is the largest eigenvalue of the Hessian of the step's loss with respect to all trained weights,
on the step's batch, at the weights the step's gradient is taken at. Full-batch gradient descent with step size
lr drives it up to 2/lr, where it hovers while the loss keeps falling, non-monotonically: the edge of stability
(Cohen, Kaur, Li, Kolter, Talwalkar 2021, "Gradient Descent on Neural Networks Typically Occurs at the Edge of
Stability"). For Adam it is the preconditioned sharpness, the largest eigenvalue of P^-1 H with P the optimizer's
diagonal preconditioner, that equilibrates, at 2 (1 + beta_1) / ((1 - beta_1) lr): 38/lr for beta_1 = 0.9 (Cohen
et al. 2022, "Adaptive Gradient Methods at the Edge of Stability").

It is found by power iteration on Hessian-vector products (a double backward pass), warm-started from the last
measurement's eigenvector: a run's first measurement iterates to convergence (a relative change under 1e-3, or
``FIRST_ITERATIONS``), later ones take a few iterations. Power iteration finds the eigenvalue of largest
magnitude; when that one is negative, a second iteration on H - mu I (mu that negative eigenvalue) finds the
largest one, so a large negative curvature is never reported as the sharpness.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from .gradients import measured_steps
from .optimizers import BETA_1, BETA_2, EPSILON

FIRST_ITERATIONS = 100  # a run's first measurement, from a random vector
WARM_ITERATIONS = 20  # later ones, from the last eigenvector, compared with the last value from the first call
WARM_TOLERANCE = 1e-2  # their relative change: 1% (the first measurement's is TOLERANCE)
DIRECTION_ITERATIONS, DIRECTION_TOLERANCE = 500, 1e-7  # the landscape's eigenvector: it must point the right way
TOLERANCE = 1e-3  # relative change of the eigenvalue between two iterations
PRECONDITIONED = ("adam", "rmsprop")  # the optimizers whose preconditioned sharpness is measured
EDGE = 0.10  # within 10% of the limit is at the edge
EDGE_WINDOW = 100  # the edge is judged on the last 100 measurements
FAR = 0.7  # a measurement under 70% of the limit, or over 1/0.7 of it, ends a stretch at the edge


def limit(optimizer: str, lr: float, momentum: float = 0.0) -> float:
    """The largest sharpness an optimizer at learning rate ``lr`` is stable at: 2/lr for plain SGD, 2 (1 + m)/lr
    for SGD with momentum m (lossviz's SGD has none), 2/lr for RMSprop's preconditioned sharpness,
    2 (1 + beta_1) / ((1 - beta_1) lr) for Adam's. A negative lr (gradient ascent) has no limit: NaN."""
    if lr < 0 or math.isnan(lr):
        return math.nan
    scale = _scale(optimizer, momentum)
    return scale / lr if lr > 0 else math.inf


def _scale(optimizer: str, momentum: float = 0.0) -> float:
    if optimizer == "adam":
        return 2.0 * (1.0 + BETA_1) / (1.0 - BETA_1)
    return 2.0 * (1.0 + momentum) if optimizer == "sgd" else 2.0


def limit_in_graph(optimizer: str, lr):
    """:func:`limit` of a tensor lr (inside the step: it follows the lr knob chunk by chunk)."""
    return tf.where(lr < 0, tf.constant(math.nan, tf.float32), _scale(optimizer) / lr)  # (lr = 0: inf)


def preconditioner(optimizer: str, slots, count: int, step):
    """The diagonal P of the optimizer's update ``w <- w - lr P^-1 m`` after this step's slots were updated, one
    tensor per trained variable (lossviz's Adam and RMSprop compute what Keras' do, see ``optimizers``):
    Adam: P = (1 - beta_1^t) (sqrt(v) + eps) / sqrt(1 - beta_2^t); RMSprop: P = sqrt(v + eps)."""
    if optimizer == "adam":
        t = tf.cast(step, tf.float32)
        scale = (1.0 - tf.pow(BETA_1, t)) / tf.sqrt(1.0 - tf.pow(BETA_2, t))
        return [scale * (tf.sqrt(v) + EPSILON) for v in slots[count:]]
    return [tf.sqrt(v + EPSILON) for v in slots]


def _unit(v):
    return v / tf.maximum(tf.norm(v), 1e-30)


def power_iteration(operator, start, iterations, tolerance=TOLERANCE, previous=math.nan):
    """(the eigenvalue of largest magnitude of a symmetric operator, a unit vector for the next start), by power
    iteration from ``start``: the Rayleigh quotient of each iterate, until it changes by less than ``tolerance``
    (relative) from the one before, ``previous`` for the first (a warm start's last measurement: one operator call
    when the eigenvalue has not moved), or after ``iterations`` (at most ``FIRST_ITERATIONS`` unless a Python int).
    One operator call an iteration; the vector returned is the last product normalised, one power step further.
    The eigenvalue converges faster than the vector (its error is the square of the vector's): a vector that
    must point the right way needs a smaller tolerance."""
    def step(v, before):
        w = operator(v)
        value = tf.tensordot(v, w, 1)  # the Rayleigh quotient of v
        return _unit(w), value, tf.abs(value - before) <= tolerance * tf.abs(value)

    v, value, done = step(_unit(start), tf.cast(previous, tf.float32))

    def body(i, v, value, done):
        return (i + 1, *step(v, value))

    def cond(i, v, value, done):
        return tf.logical_and(i < iterations, tf.logical_not(done))

    cap = iterations if isinstance(iterations, int) else FIRST_ITERATIONS
    _, v, value, _ = tf.while_loop(cond, body, (tf.constant(1), v, value, done), maximum_iterations=cap)
    return value, v


def largest(operator, start, iterations, tolerance=TOLERANCE, previous=math.nan):
    """The largest (most positive) eigenvalue of a symmetric operator and a unit vector for the next start: power
    iteration, then, when the dominant eigenvalue mu is negative, power iteration on the operator minus mu (all of
    whose eigenvalues are >= 0), whose dominant one is the largest minus mu."""
    mu, v = power_iteration(operator, start, iterations, tolerance, previous)

    def shifted():
        nu, u = power_iteration(lambda x: operator(x) - mu * x, start, iterations, tolerance, previous - mu)
        return nu + mu, u
    return tf.cond(mu < 0, shifted, lambda: (mu, v))


def period(table, key: str = "sharpness") -> int:
    """The probe's period read back from a run's records: the greatest common divisor of the steps after 1 at
    which the carried value changed (1 when they share none, e.g. in a thinned window: then every row is drawn)."""
    if key not in table or len(table) < 2:
        return 1
    v, steps = table[key].to_numpy(float), table["step"].to_numpy()
    changed = steps[1:][(v[1:] != v[:-1]) & ~(np.isnan(v[1:]) & np.isnan(v[:-1])) & (steps[1:] > 1)]
    return int(np.gcd.reduce(changed.astype(np.int64))) if len(changed) else 1


def measured(table, every: int) -> dict[str, np.ndarray] | None:
    """The measured rows of a run's records (a data frame): ``step``, ``ratio`` (the sharpness the optimizer's
    limit is for, over ``stability_limit``), with finite values and a positive limit; None without the columns."""
    key = "sharpness:preconditioned" if "sharpness:preconditioned" in table else "sharpness"
    if key not in table or "stability_limit" not in table or not len(table):
        return None
    rows = table[measured_steps(table["step"].to_numpy(), every)]
    s, lim = rows[key].to_numpy(float), rows["stability_limit"].to_numpy(float)
    ok = np.isfinite(s) & np.isfinite(lim) & (lim > 0)
    return {"step": rows["step"].to_numpy()[ok].astype(int), "ratio": s[ok] / lim[ok], "limit": lim[ok]}


def status(table, every: int) -> str | None:
    """Where a run is against its stability limit, in words: "past the limit at step N" (the last measurement
    over it before the run's first NaN/inf, or the start of the current stretch over it), "at the edge of stability
    since step N" (within 10% of the limit for most of the last 100 measurements; N: the first one at or over the
    limit, else within 10% of it, since the last one far from it (see ``FAR``) or the last change of the limit),
    or "below the stability limit". None without a measured sharpness."""
    m = measured(table, every)
    if m is None or not len(m["step"]):
        return None
    steps, ratio = m["step"], m["ratio"]
    over = ratio > 1.0 + EDGE
    bad = table["step"][table["nonfinite"] > 0] if "nonfinite" in table else ()
    if len(bad):
        before = over & (steps <= int(bad.iloc[0]))
        if before.any():
            return f"past the limit at step {steps[before][-1]}, the last measurement before the NaN/inf at step " \
                   f"{int(bad.iloc[0])}"
    if over[-1]:
        start = len(over) - int(np.argmin(over[::-1])) if not over.all() else 0
        return f"past the limit at step {steps[start]} ({ratio[-1]:.2f}x the limit now)"
    recent = ratio[-EDGE_WINDOW:]
    if np.mean(np.abs(recent - 1.0) <= EDGE) > 0.5:
        moved = np.r_[False, ~np.isclose(m["limit"][1:], m["limit"][:-1], rtol=1e-6)]  # lr changed: a new limit
        starts = np.r_[0, np.flatnonzero((ratio < FAR) | (ratio > 1.0 / FAR)) + 1, np.flatnonzero(moved)]
        since = np.arange(len(ratio)) >= starts.max()
        reached = np.flatnonzero(since & (ratio >= 1.0))
        reached = reached if len(reached) else np.flatnonzero(since & (ratio >= 1.0 - EDGE))
        if len(reached):  # (none when the last measurement fell far under it)
            return f"at the edge of stability since step {steps[reached[0]]}"
    return f"below the stability limit ({ratio[-1]:.0%} of it)"
