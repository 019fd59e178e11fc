"""The loss functions against hand-computed values and gradients."""

import math

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from lossviz import losses as L

LN2, LN3 = math.log(2.0), math.log(3.0)


def np_(x):
    return np.asarray(x)


# ---------------------------------------------------------------- masked softmax / policy-value


def test_masked_softmax_hand_values():
    logits = [[0.0, LN3, 5.0, -2.0], [0.0, LN2, 0.0, 100.0]]
    mask = [[1, 1, 0, 0], [1, 1, 1, 0]]
    p = np_(L.masked_softmax(logits, mask))
    np.testing.assert_allclose(p[0], [0.25, 0.75, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(p[1], [0.25, 0.5, 0.25, 0.0], rtol=1e-6)
    assert p[0, 2] == 0.0 and p[1, 3] == 0.0  # exactly zero, not tiny


def test_masked_softmax_extreme_logits_and_empty_row():
    logits = [[1e4, -1e4, 0.0, 1e4], [3.0, 1.0, 2.0, 0.0]]
    mask = [[1, 1, 1, 0], [0, 0, 0, 0]]
    p = np_(L.masked_softmax(logits, mask))
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[0], [1.0, 0.0, 0.0, 0.0], atol=1e-7)
    np.testing.assert_array_equal(p[1], 0.0)


def test_policy_value_loss_hand_value():
    pi = [[0.5, 0.5, 0.0, 0.0]]
    logits = [[0.0, LN3, 7.0, 0.0]]
    mask = [[1, 1, 0, 0]]
    # p = [1/4, 3/4]; -pi.log p = 0.5 ln 4 + 0.5 ln(4/3); (z - v)^2 = 0.25
    expected = 0.25 + 0.5 * math.log(4.0) + 0.5 * math.log(4.0 / 3.0)
    got = np_(L.policy_value_loss(pi, logits, mask, z=[1.0], v=[[0.5]]))
    np.testing.assert_allclose(got, [expected], rtol=1e-6)
    terms = L.policy_value_terms(pi, logits, mask, np.array([[1.0]]), np.array([0.5]))
    np.testing.assert_allclose(np_(terms["value"]), [0.25], rtol=1e-6)


def test_policy_loss_exact_for_extreme_legal_logit():
    # a legal move with logit -1e4 that holds the target mass: about 1e4, not inf
    loss = np_(L.policy_value_loss([[0.0, 1.0]], [[0.0, -1e4]], [[1, 1]], [0.0], [0.0]))
    np.testing.assert_allclose(loss, [1e4], rtol=1e-6)


def test_policy_loss_infinite_when_target_mass_on_illegal_move():
    loss = np_(L.policy_value_loss([[0.5, 0.5]], [[0.0, 0.0]], [[1, 0]], [0.0], [0.0]))
    assert loss[0] == np.inf


def test_illegal_logit_changes_nothing_and_gets_no_gradient():
    pi = tf.constant([[0.2, 0.8, 0.0]])
    mask = tf.constant([[1.0, 1.0, 0.0]])
    for illegal in (-50.0, 0.0, 1e4):
        logits = tf.Variable([[0.3, -0.4, illegal]])
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(L.policy_value_loss(pi, logits, mask, [0.0], [0.0]))
        grad = tape.gradient(loss, logits).numpy()
        p = np_(L.masked_softmax(logits, mask))
        np.testing.assert_allclose(float(loss), -(0.2 * math.log(p[0, 0]) + 0.8 * math.log(p[0, 1])), rtol=1e-6)
        assert grad[0, 2] == 0.0
        np.testing.assert_allclose(grad[0, :2], p[0, :2] - [0.2, 0.8], atol=1e-6)  # d CE / d logit = p - pi


def test_legal_move_mask_layer_and_its_gradient():
    logits = tf.Variable([[1.0, 2.0, 3.0]])
    mask = tf.constant([[1.0, 0.0, 1.0]])
    with tf.GradientTape() as tape:
        out = L.LegalMoveMask()([logits, mask])
        loss = tf.reduce_sum(L.MaskedPolicyCrossEntropy(reduction=None)(tf.constant([[0.5, 0.0, 0.5]]), out))
    assert np_(out)[0, 1] == -np.inf
    grad = tape.gradient(loss, logits).numpy()
    assert np.all(np.isfinite(grad)) and grad[0, 1] == 0.0


@settings(max_examples=60, deadline=None)
@given(
    logits=hnp.arrays(np.float32, (3, 6), elements=st.floats(-1e4, 1e4, width=32)),
    mask=hnp.arrays(np.int8, (3, 6), elements=st.integers(0, 1)),
)
def test_masked_softmax_properties(logits, mask):
    p = np_(L.masked_softmax(logits, mask))
    assert np.all(np.isfinite(p))
    assert np.all(p[mask == 0] == 0.0)
    sums = p.sum(axis=1)
    has_legal = mask.sum(axis=1) > 0
    np.testing.assert_allclose(sums[has_legal], 1.0, rtol=1e-5)
    np.testing.assert_array_equal(sums[~has_legal], 0.0)


@settings(max_examples=40, deadline=None)
@given(
    logits=hnp.arrays(np.float32, (2, 5), elements=st.floats(-1e4, 1e4, width=32)),
    weights=hnp.arrays(np.float32, (2, 5), elements=st.floats(0.015625, 1.0, width=32)),
)
def test_policy_loss_finite_when_target_is_legal(logits, weights):
    mask = np.array([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0]], dtype=np.float32)
    pi = weights * mask
    pi = pi / pi.sum(axis=1, keepdims=True)
    loss = np_(L.policy_value_loss(pi, logits, mask, [0.0, 1.0], [0.5, -1.0]))
    assert np.all(np.isfinite(loss)) and np.all(loss >= 0)


def test_pi_equals_one_answer_is_blind_to_spread_targets():
    spread = L.pi_equals_one_policy_loss([[0.5, 0.5, 0.0]], [[0.1, 0.1, 0.8]])
    one_hot = L.pi_equals_one_policy_loss([[0.0, 1.0, 0.0]], [[0.5, 0.25, 0.25]])
    assert float(spread[0]) == 0.0
    np.testing.assert_allclose(np_(one_hot), [-math.log(0.25 + 1e-7)], rtol=1e-6)


def test_l2_penalty():
    np.testing.assert_allclose(float(L.l2_penalty([np.array([1.0, 2.0]), np.array([[3.0]])], 0.1)), 1.4, rtol=1e-6)
    assert float(L.l2_penalty([], 0.5)) == 0.0
    with pytest.raises(ValueError):
        L.l2_penalty([np.ones(2)], -1.0)


# ---------------------------------------------------------------- two branches


def test_weighted_two_branch_values_and_checks():
    got = np_(L.weighted_two_branch(np.array([1.0, 2.0]), np.array([3.0, 5.0]), 0.25))
    np.testing.assert_allclose(got, [2.5, 4.25])
    np.testing.assert_allclose(np_(L.weighted_two_branch([1.0], [3.0], tf.constant(1.0))), [1.0])
    for bad in (1.5, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            L.weighted_two_branch([1.0], [2.0], bad)


# ---------------------------------------------------------------- sparse targets


def test_sparse_penalty_bce_hand_values():
    y, p = np.array([[1.0, 0.0]]), np.array([[0.5, 0.5]])
    np.testing.assert_allclose(np_(L.sparse_penalty_bce(y, p, penalty=10.0)), [(10 * LN2 + LN2) / 2], rtol=1e-6)
    np.testing.assert_allclose(np_(L.sparse_penalty_bce(y, np.zeros((1, 2)), 10.0, from_logits=True)),
                               [(10 * LN2 + LN2) / 2], rtol=1e-6)
    # p = 0.25 for a positive: 10 * ln 4
    np.testing.assert_allclose(np_(L.sparse_penalty_bce([[1.0]], [[0.25]], 10.0)), [10 * math.log(4.0)], rtol=1e-6)


def test_sparse_penalty_bce_safe_where_naive_is_not():
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    p = np.array([[0.0], [0.0], [1.0], [1.0]])
    naive = np_(L.naive_sparse_penalty_bce(y, p, 10.0))
    assert np.isnan(naive[0]) and naive[1] == np.inf and np.isnan(naive[2]) and naive[3] == np.inf
    clipped = np_(L.sparse_penalty_bce(y, p, 10.0, epsilon=1e-7))
    assert np.all(np.isfinite(clipped))
    np.testing.assert_allclose(clipped[1], -10 * math.log(1e-7), rtol=1e-3)
    logits = np.array([[-1e4], [-100.0], [1e4], [100.0]])
    exact = np_(L.sparse_penalty_bce(y, logits, 10.0, from_logits=True))
    np.testing.assert_allclose(exact, [0.0, 1000.0, 0.0, 100.0], atol=1e-3)


def test_sparse_penalty_checks():
    for kwargs in ({"penalty": 0.0}, {"penalty": -1.0}, {"epsilon": 0.0}, {"epsilon": 0.5}, {"penalty": math.nan}):
        with pytest.raises(ValueError):
            L.sparse_penalty_bce([[1.0]], [[0.5]], **kwargs)
    with pytest.raises(ValueError):
        L.naive_sparse_penalty_bce([[1.0]], [[0.5]], penalty=0.0)
    with pytest.raises(ValueError):
        L.batch_switch_penalty_bce([[1.0]], [[0.5]], epsilon=0.7)


def test_batch_switch_multiplies_the_whole_batch():
    p = np.full((3, 1), 0.5)
    with_positive = np_(L.batch_switch_penalty_bce(np.array([[1.0], [0.0], [0.0]]), p, penalty=10.0))
    without = np_(L.batch_switch_penalty_bce(np.zeros((3, 1)), p, penalty=10.0))
    np.testing.assert_allclose(with_positive, [10 * LN2] * 3, rtol=1e-6)  # negatives weighted 10 too
    np.testing.assert_allclose(without, [LN2] * 3, rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    p=hnp.arrays(np.float32, (4, 3), elements=st.floats(0.0, 1.0, width=32)),
    y=hnp.arrays(np.float32, (4, 3), elements=st.sampled_from([0.0, 1.0])),
    penalty=st.floats(0.01, 1000.0),
)
def test_safe_bce_is_always_finite(p, y, penalty):
    assert np.all(np.isfinite(np_(L.sparse_penalty_bce(y, p, penalty))))
    assert np.all(np.isfinite(np_(L.batch_switch_penalty_bce(y, p, penalty))))
    logits = (p - 0.5) * 2e4
    assert np.all(np.isfinite(np_(L.sparse_penalty_bce(y, logits, penalty, from_logits=True))))


@settings(max_examples=40, deadline=None)
@given(x=hnp.arrays(np.float32, (5, 2), elements=st.floats(-8.0, 8.0, width=32)),
       y=hnp.arrays(np.float32, (5, 2), elements=st.sampled_from([0.0, 1.0])))
def test_from_logits_matches_probabilities_away_from_the_clip(x, y):
    p = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(np_(L.sparse_penalty_bce(y, x, 3.0, from_logits=True)),
                               np_(L.sparse_penalty_bce(y, p.astype(np.float32), 3.0)), rtol=2e-3, atol=2e-4)


# ---------------------------------------------------------------- maximised MSE


def test_mse_family_hand_values():
    y, yp = np.array([[0.0, 0.0]]), np.array([[1.0, 2.0]])
    np.testing.assert_allclose(np_(L.mse(y, yp)), [2.5])
    np.testing.assert_allclose(np_(L.negative_mse(y, yp)), [-2.5])
    np.testing.assert_allclose(np_(L.inverse_mse(y, yp)), [0.625])
    assert np_(L.inverse_mse([[0.3]], [[0.3]]))[0] == np.inf
    np.testing.assert_allclose(np_(L.inverse_mse([[0.3]], [[0.3]], epsilon=1.0)), [1.0])
    with pytest.raises(ValueError):
        L.inverse_mse(y, yp, epsilon=-1.0)


def test_negative_mse_gradient_is_minus_the_mse_gradient():
    y = tf.constant([[0.2, -0.5, 1.0]])
    yp = tf.Variable([[0.7, 0.5, 0.0]])
    with tf.GradientTape(persistent=True) as tape:
        plus, minus = tf.reduce_sum(L.mse(y, yp)), tf.reduce_sum(L.negative_mse(y, yp))
    g_plus, g_minus = tape.gradient(plus, yp).numpy(), tape.gradient(minus, yp).numpy()
    np.testing.assert_allclose(g_minus, -g_plus)
    np.testing.assert_allclose(g_plus, 2 * (yp.numpy() - y.numpy()) / 3, rtol=1e-6)


def test_inverse_mse_gradient_blows_up_near_zero_residual():
    y = tf.constant([[0.0]])
    grads = []
    for r in (1.0, 0.1, 0.01):
        yp = tf.Variable([[r]])
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(L.inverse_mse(y, yp))
        grads.append(abs(float(tape.gradient(loss, yp)[0, 0])))
    np.testing.assert_allclose(grads, [2.0, 2e3, 2e6], rtol=1e-3)  # |d/dr r^-2| = 2 r^-3
