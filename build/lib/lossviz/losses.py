"""The four loss families of lossviz, as pure functions on ``keras.ops`` plus thin Keras loss classes.

Every function accepts numpy arrays or tensors and returns a tensor. "Per sample" means reduced over
the last axis only, so a batch of shape (B, K) gives a loss of shape (B,).

Families:
1. Masked policy/value loss (AlphaGo Zero, Silver et al. 2017):
   ``l = (z - v)^2 - pi^T log p + c ||theta||^2`` with ``p = masked_softmax(logits, legal)``.
2. Weighted two-branch loss: ``alpha * L1 + (1 - alpha) * L2``.
3. Sparse-penalty binary cross-entropy: ``-(penalty * y log p + (1 - y) log(1 - p))``.
4. Maximised MSE: ``-MSE`` and ``1 / MSE``-style losses.

How the legal-move mask reaches a compiled Keras loss: the model takes the mask as an input (as in the
AlphaGo Zero set-up) and its policy head ends in :class:`LegalMoveMask`, which sets the logit of every
illegal move to ``-inf`` (probability exactly 0). :class:`MaskedPolicyCrossEntropy` reads the mask back
from the output as ``logits != -inf``, so no ``custom_objects`` or extra loss input are needed.
"""

from __future__ import annotations

import math
import numbers

import keras
from keras import ops

__all__ = [
    "masked_softmax",
    "masked_log_softmax",
    "policy_value_terms",
    "policy_value_loss",
    "pi_equals_one_policy_loss",
    "l2_penalty",
    "weighted_two_branch",
    "sparse_penalty_bce",
    "naive_sparse_penalty_bce",
    "batch_switch_penalty_bce",
    "negative_mse",
    "inverse_mse",
    "mse",
    "LegalMoveMask",
    "MaskedPolicyCrossEntropy",
    "WeightedBranchLoss",
    "SparsePenaltyBCE",
    "NaiveSparsePenaltyBCE",
    "BatchSwitchPenaltyBCE",
    "NegativeMSE",
    "InverseMSE",
]

_PACKAGE = "lossviz"


# ----------------------------------------------------------------------------- argument checks


def _is_python_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _check_alpha(alpha) -> None:
    if _is_python_number(alpha) and not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be a finite number in [0, 1], got {alpha!r}")


def _check_penalty(penalty) -> None:
    if _is_python_number(penalty) and not (math.isfinite(penalty) and penalty > 0):
        raise ValueError(f"penalty must be a finite number > 0, got {penalty!r}")


def _check_epsilon(epsilon, low_inclusive: bool = False, high: float = 0.5) -> None:
    if not _is_python_number(epsilon):
        return
    low_ok = epsilon >= 0 if low_inclusive else epsilon > 0
    if not (math.isfinite(epsilon) and low_ok and epsilon < high):
        interval = f"[0, {high})" if low_inclusive else f"(0, {high})"
        raise ValueError(f"epsilon must be in {interval}, got {epsilon!r}")


def _float_tensor(x):
    x = ops.convert_to_tensor(x)
    if not str(x.dtype).startswith(("float", "bfloat")):
        x = ops.cast(x, keras.config.floatx())
    return x


def _as_vector(x):
    """(B,) or (B, 1) -> (B,)."""
    x = _float_tensor(x)
    if len(x.shape) >= 2 and x.shape[-1] == 1:
        x = ops.squeeze(x, axis=-1)
    return x


# ----------------------------------------------------------------------------- 1. policy / value


def _legal(mask):
    """A boolean mask from a 0/1 mask of any dtype (or a boolean one)."""
    mask = ops.convert_to_tensor(mask)
    return mask if mask.dtype == "bool" else ops.cast(mask, "float32") > 0


def _legal_shift(logits, legal):
    """Logits minus the row max over legal moves (0 on illegal moves, and for a row with no legal move)."""
    row_max = ops.max(ops.where(legal, logits, -math.inf), axis=-1, keepdims=True)
    row_max = ops.stop_gradient(ops.where(ops.isfinite(row_max), row_max, 0.0))
    return ops.where(legal, logits - row_max, 0.0)


def masked_softmax(logits, mask):
    """Softmax over the legal moves only.

    ``p_i = mask_i exp(x_i) / sum_j mask_j exp(x_j)``: exactly 0 where ``mask == 0``, summing to 1 over the
    legal moves, finite for any finite logits (the row max over legal moves is subtracted first). A row
    with no legal move gives all zeros, never NaN.
    """
    logits = _float_tensor(logits)
    legal = _legal(mask)
    exp = ops.where(legal, ops.exp(_legal_shift(logits, legal)), 0.0)
    total = ops.sum(exp, axis=-1, keepdims=True)
    return exp / ops.where(total > 0, total, 1.0)


def masked_log_softmax(logits, mask):
    """``log masked_softmax(logits, mask)`` computed without taking the log of a probability.

    ``log p_i = (x_i - m) - log sum_j mask_j exp(x_j - m)`` with ``m`` the max legal logit, so a legal move
    with logit -1e4 gets about -1e4, not -inf. Illegal moves get ``-inf`` (their probability is 0).
    """
    logits = _float_tensor(logits)
    legal = _legal(mask)
    shifted = _legal_shift(logits, legal)
    total = ops.sum(ops.where(legal, ops.exp(shifted), 0.0), axis=-1, keepdims=True)
    log_total = ops.log(ops.where(total > 0, total, 1.0))
    return ops.where(legal, shifted - log_total, -math.inf)


def _cross_entropy_from_log_probs(pi, log_p):
    """``-sum(pi * log p)`` per sample, where terms with ``pi == 0`` contribute exactly 0 (0 * -inf := 0)."""
    pi = _float_tensor(pi)
    safe_log_p = ops.where(pi > 0, log_p, 0.0)
    return -ops.sum(pi * safe_log_p, axis=-1)


def policy_value_terms(pi, logits, mask, z, v):
    """The two data terms of the AlphaGo Zero loss, per sample: ``{"value": (z - v)^2, "policy": -pi^T log p}``.

    ``p = masked_softmax(logits, mask)``; the log comes from :func:`masked_log_softmax`, so the policy term
    is exact and finite whenever ``pi`` is 0 on illegal moves. Target mass on an illegal move gives +inf.
    """
    value = ops.square(_as_vector(z) - _as_vector(v))
    policy = _cross_entropy_from_log_probs(pi, masked_log_softmax(logits, mask))
    return {"value": value, "policy": policy}


def policy_value_loss(pi, logits, mask, z, v):
    """Per-sample ``(z - v)^2 - sum(pi * log masked_softmax(logits, mask))`` (Silver et al. 2017, eq. 1).

    The ``c ||theta||^2`` term does not depend on the sample: add :func:`l2_penalty` once per batch.
    ``z`` and ``v`` may be shaped (B,) or (B, 1).
    """
    terms = policy_value_terms(pi, logits, mask, z, v)
    return terms["value"] + terms["policy"]


def pi_equals_one_policy_loss(pi, p, epsilon=1e-7):
    """The policy loss of a popular answer, kept to show its flaw: ``-sum(1[pi == 1] * log(p + epsilon))``.

    It builds the "mask" from ``pi == 1``, so whenever ``pi`` spreads its mass over several moves (as MCTS
    visit counts do) the mask is empty and the loss is 0: the policy head gets no gradient at all.
    """
    pi, p = _float_tensor(pi), _float_tensor(p)
    hit = ops.cast(ops.equal(pi, 1.0), p.dtype)
    return -ops.sum(hit * ops.log(p + epsilon), axis=-1)


def l2_penalty(weights, c):
    """``c * sum_w ||w||^2`` over a list of weight tensors (the ``c ||theta||^2`` regulariser)."""
    if _is_python_number(c) and not (math.isfinite(c) and c >= 0):
        raise ValueError(f"c must be a finite number >= 0, got {c!r}")
    squares = [ops.sum(ops.square(_float_tensor(w))) for w in weights]
    total = ops.sum(ops.stack(squares)) if squares else ops.convert_to_tensor(0.0)
    return c * total


# ----------------------------------------------------------------------------- 2. two branches


def weighted_two_branch(loss_1, loss_2, alpha):
    """``alpha * loss_1 + (1 - alpha) * loss_2`` for per-sample losses of two outputs of different shapes.

    Reduce each branch to shape (B,) first (e.g. MSE of a (B, 1) head and cross-entropy of a (B, 2) head).
    A Python ``alpha`` must be finite and in [0, 1]; a tensor alpha (trainable, scheduled) is used as is.
    """
    _check_alpha(alpha)
    return alpha * _float_tensor(loss_1) + (1.0 - alpha) * _float_tensor(loss_2)


# ----------------------------------------------------------------------------- 3. sparse targets


def _penalised_bce(y, log_p, log_1mp, penalty):
    return ops.mean(-(penalty * y * log_p + (1.0 - y) * log_1mp), axis=-1)


def sparse_penalty_bce(y_true, y_pred, penalty=10.0, epsilon=1e-7, from_logits=False):
    """Per-sample mean of ``-(penalty * y log p + (1 - y) log(1 - p))``: each positive weighs ``penalty``.

    With ``from_logits=False``, ``p`` is clipped to ``[epsilon, 1 - epsilon]``; with ``from_logits=True``,
    ``log p = -softplus(-x)`` and ``log(1 - p) = -softplus(x)`` are exact for any finite logit ``x``.
    Always finite for finite input. ``penalty <= 0`` or ``epsilon`` outside (0, 0.5) raise ValueError.
    """
    _check_penalty(penalty)
    _check_epsilon(epsilon)
    y_pred = _float_tensor(y_pred)
    y = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    if from_logits:
        log_p, log_1mp = -ops.softplus(-y_pred), -ops.softplus(y_pred)
    else:
        p = ops.clip(y_pred, epsilon, 1.0 - epsilon)
        log_p, log_1mp = ops.log(p), ops.log(1.0 - p)
    return _penalised_bce(y, log_p, log_1mp, penalty)


def naive_sparse_penalty_bce(y_true, y_pred, penalty=10.0):
    """The same formula as :func:`sparse_penalty_bce` with no clipping, kept on purpose.

    At ``p == 0`` or ``p == 1`` it gives inf, or NaN (``0 * log 0``), as a hand-written loss does.
    """
    _check_penalty(penalty)
    y_pred = _float_tensor(y_pred)
    y = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    return _penalised_bce(y, ops.log(y_pred), ops.log(1.0 - y_pred), penalty)


def batch_switch_penalty_bce(y_true, y_pred, penalty=10.0, epsilon=1e-7):
    """The variant often suggested online: clipped BCE, times ``penalty`` for *every* sample of a batch
    that holds any positive (a per-batch switch, ``K.switch(K.sum(y) > 0, ...)``), per sample.

    It does not up-weight the positives against the negatives of their batch, so it does not fight the
    "always 0" solution; it only makes batches with a positive count more.
    """
    _check_penalty(penalty)
    _check_epsilon(epsilon)
    y_pred = _float_tensor(y_pred)
    y = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    p = ops.clip(y_pred, epsilon, 1.0 - epsilon)
    bce = ops.mean(-(y * ops.log(p) + (1.0 - y) * ops.log(1.0 - p)), axis=-1)
    switch = ops.where(ops.sum(y) > 0, penalty, 1.0)
    return switch * bce


# ----------------------------------------------------------------------------- 4. maximised MSE


def mse(y_true, y_pred):
    """Per-sample ``mean((y_pred - y_true)^2)``."""
    y_pred = _float_tensor(y_pred)
    y = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    return ops.mean(ops.square(y_pred - y), axis=-1)


def negative_mse(y_true, y_pred):
    """Per-sample ``-mean((y_pred - y_true)^2)``: minimising it maximises the MSE. Unbounded below."""
    return -mse(y_true, y_pred)


def inverse_mse(y_true, y_pred, epsilon=0.0):
    """Per-sample ``mean(1 / ((y_pred - y_true)^2 + epsilon))``: minimising it pushes residuals apart.

    ``epsilon = 0`` keeps the inf at ``y_pred == y_true`` (and a gradient that blows up near it).
    """
    _check_epsilon(epsilon, low_inclusive=True, high=math.inf)
    y_pred = _float_tensor(y_pred)
    y = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
    return ops.mean(1.0 / (ops.square(y_pred - y) + epsilon), axis=-1)


# ----------------------------------------------------------------------------- Keras classes


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LegalMoveMask(keras.layers.Layer):
    """``[logits, mask] -> logits`` with ``-inf`` on illegal moves (``mask == 0``).

    ``keras.ops.softmax`` of the output already gives probability 0 to illegal moves; use
    :func:`masked_softmax` on ``(output, output != -inf)`` to also handle a row with no legal move.
    Gradients reach the legal logits only.
    """

    def call(self, inputs):
        logits, mask = inputs
        return ops.where(_legal(mask), logits, -math.inf)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaskedPolicyCrossEntropy(keras.losses.Loss):
    """``-pi^T log p`` for a policy head ending in :class:`LegalMoveMask` (illegal logits are ``-inf``).

    Compile the AlphaGo Zero pair as ``loss={"policy": MaskedPolicyCrossEntropy(), "value": "mse"}`` and
    put ``c ||theta||^2`` in the layers as ``kernel_regularizer=keras.regularizers.L2(c)``.
    """

    def __init__(self, name="masked_policy_cross_entropy", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_pred = _float_tensor(y_pred)
        legal = y_pred != -math.inf
        return _cross_entropy_from_log_probs(y_true, masked_log_softmax(y_pred, legal))

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedBranchLoss(keras.losses.Loss):
    """One branch of ``alpha * L1 + (1 - alpha) * L2``: ``alpha * loss`` (branch 1) or ``(1 - alpha) * loss``
    (branch 2), so that ``compile(loss={out_1: WeightedBranchLoss("mse", alpha, 1), out_2:
    WeightedBranchLoss("categorical_crossentropy", alpha, 2)})`` minimises the weighted sum for a fixed
    alpha. A trainable alpha needs a variable: the lossviz trainer keeps one, clipped to [0, 1].
    """

    def __init__(self, loss="mse", alpha=0.5, branch=1, name=None, reduction="sum_over_batch_size", dtype=None):
        _check_alpha(alpha)
        if branch not in (1, 2):
            raise ValueError(f"branch must be 1 or 2, got {branch!r}")
        super().__init__(name=name or f"weighted_branch_{branch}", reduction=reduction, dtype=dtype)
        self.loss = loss
        self.alpha = float(alpha)
        self.branch = branch
        self._fn = keras.losses.get(loss)

    def call(self, y_true, y_pred):
        weight = self.alpha if self.branch == 1 else 1.0 - self.alpha
        return weight * self._fn(y_true, y_pred)

    def get_config(self):
        return {"loss": self.loss, "alpha": self.alpha, "branch": self.branch, "name": self.name,
                "reduction": self.reduction}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SparsePenaltyBCE(keras.losses.Loss):
    """Keras loss for :func:`sparse_penalty_bce`."""

    def __init__(self, penalty=10.0, epsilon=1e-7, from_logits=False, name="sparse_penalty_bce",
                 reduction="sum_over_batch_size", dtype=None):
        _check_penalty(penalty)
        _check_epsilon(epsilon)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.penalty, self.epsilon, self.from_logits = float(penalty), float(epsilon), bool(from_logits)

    def call(self, y_true, y_pred):
        return sparse_penalty_bce(y_true, y_pred, self.penalty, self.epsilon, self.from_logits)

    def get_config(self):
        return {"penalty": self.penalty, "epsilon": self.epsilon, "from_logits": self.from_logits,
                "name": self.name, "reduction": self.reduction}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NaiveSparsePenaltyBCE(keras.losses.Loss):
    """Keras loss for :func:`naive_sparse_penalty_bce` (produces NaN on purpose)."""

    def __init__(self, penalty=10.0, name="naive_sparse_penalty_bce", reduction="sum_over_batch_size", dtype=None):
        _check_penalty(penalty)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.penalty = float(penalty)

    def call(self, y_true, y_pred):
        return naive_sparse_penalty_bce(y_true, y_pred, self.penalty)

    def get_config(self):
        return {"penalty": self.penalty, "name": self.name, "reduction": self.reduction}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BatchSwitchPenaltyBCE(keras.losses.Loss):
    """Keras loss for :func:`batch_switch_penalty_bce`."""

    def __init__(self, penalty=10.0, epsilon=1e-7, name="batch_switch_penalty_bce",
                 reduction="sum_over_batch_size", dtype=None):
        _check_penalty(penalty)
        _check_epsilon(epsilon)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.penalty, self.epsilon = float(penalty), float(epsilon)

    def call(self, y_true, y_pred):
        return batch_switch_penalty_bce(y_true, y_pred, self.penalty, self.epsilon)

    def get_config(self):
        return {"penalty": self.penalty, "epsilon": self.epsilon, "name": self.name, "reduction": self.reduction}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class NegativeMSE(keras.losses.Loss):
    """Keras loss for :func:`negative_mse`."""

    def __init__(self, name="negative_mse", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return negative_mse(y_true, y_pred)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class InverseMSE(keras.losses.Loss):
    """Keras loss for :func:`inverse_mse`."""

    def __init__(self, epsilon=0.0, name="inverse_mse", reduction="sum_over_batch_size", dtype=None):
        _check_epsilon(epsilon, low_inclusive=True, high=math.inf)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        return inverse_mse(y_true, y_pred, self.epsilon)

    def get_config(self):
        return {"epsilon": self.epsilon, "name": self.name, "reduction": self.reduction}
