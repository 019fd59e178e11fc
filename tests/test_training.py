"""The trainer end to end on tiny settings: records, learning, NaN detection, determinism, reuse."""

import math

import numpy as np
import pytest

from lossviz import data, settings as config
from lossviz.training import Trainer, train


def _mean(records, key, part):
    values = [r[key] for r in records]
    n = max(len(values) // 5, 1)
    return float(np.mean(values[:n] if part == "head" else values[-n:]))


def _same(a, b):
    return all((x == y) or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
               for ra, rb in zip(a, b) for x, y in zip(ra.values(), rb.values())) and len(a) == len(b)


@pytest.mark.parametrize("demo, overrides", [
    ("policy-value", {}),
    ("policy-value", {"mask": "none"}),
    ("two-branch", {"alpha": 0.5}),
    ("two-branch", {"alpha": "uncertainty"}),
    ("sparse-penalty", {"variant": "logits"}),
])
def test_minimising_losses_go_down(demo, overrides):
    records = train(demo, overrides, steps=150, seed=0)
    assert len(records) == 150
    assert [r["step"] for r in records] == list(range(1, 151))
    assert _mean(records, "loss", "tail") < _mean(records, "loss", "head")
    assert all(r["nonfinite"] == 0 for r in records)


def test_record_keys_follow_the_contract():
    (r,) = train("policy-value", {}, steps=1)
    assert list(r)[:5] == ["step", "loss", "loss:value", "loss:policy", "loss:l2"]
    for key in ("grad_norm", "grad_norm:conv", "grad_norm:policy_logits", "grad_norm:value", "nonfinite",
                "first_nonfinite", "metric:illegal_mass"):
        assert key in r
    assert "alpha" not in r
    np.testing.assert_allclose(r["loss"], r["loss:value"] + r["loss:policy"] + r["loss:l2"], rtol=1e-5)
    layers = [k for k in r if k.startswith("grad_norm:")]
    np.testing.assert_allclose(r["grad_norm"], math.sqrt(sum(r[k] ** 2 for k in layers)), rtol=1e-5)
    (r,) = train("two-branch", {"alpha": 0.3}, steps=1)
    assert r["alpha"] == pytest.approx(0.3)
    np.testing.assert_allclose(r["loss"], 0.3 * r["loss:branch_1"] + 0.7 * r["loss:branch_2"], rtol=1e-5)


def test_mask_modes_differ_in_illegal_mass():
    masked = train("policy-value", {"mask": "logits"}, steps=30)
    plain = train("policy-value", {"mask": "none"}, steps=30)
    assert all(r["metric:illegal_mass"] == 0.0 for r in masked)
    assert all(r["metric:illegal_mass"] > 0.05 for r in plain)


def test_seed_answer_mask_ignores_spread_targets():
    ds = data.policy_value(seed=0)
    spread = ~np.any(ds.targets["pi"] == 1.0, axis=1)
    assert 0.5 < spread.mean() < 0.95  # most targets spread mass: the pi == 1 mask is empty for them
    assert np.all(ds.targets["pi"][ds.inputs["mask"] == 0] == 0.0)
    np.testing.assert_allclose(ds.targets["pi"].sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("variant", ["neg-mse", "neg-lr", "inverse-mse"])
def test_max_mse_variants(variant):
    records = train("max-mse", {"variant": variant, "epsilon": 1e-3}, steps=150)
    head, tail = _mean(records, "metric:mse", "head"), _mean(records, "metric:mse", "tail")
    if variant == "inverse-mse":
        # minimising mean(1 / r^2) only pushes the nearest points away: the loss falls, MSE need not rise
        assert _mean(records, "loss", "tail") < _mean(records, "loss", "head")
    else:
        assert tail > head + 0.05
    if variant == "neg-lr":
        assert all(r["loss"] == pytest.approx(r["metric:mse"]) for r in records)


def test_neg_mse_and_neg_lr_climb_the_same_hill():
    a = train("max-mse", {"variant": "neg-mse", "optimizer": "sgd", "lr": 0.5}, steps=20)
    b = train("max-mse", {"variant": "neg-lr", "optimizer": "sgd", "lr": 0.5}, steps=20)
    # SGD on -MSE with lr and SGD on MSE with -lr take the same steps
    np.testing.assert_allclose([r["metric:mse"] for r in a], [r["metric:mse"] for r in b], rtol=1e-4)


def test_naive_bce_nan_is_detected_and_located():
    records = train("sparse-penalty", {"variant": "naive", "lr": 0.05}, steps=10)
    first = next(r for r in records if r["nonfinite"] > 0)
    assert first["step"] == 3 and first["first_nonfinite"] == "loss" and math.isnan(first["loss"])
    assert all(r["nonfinite"] == 0 and r["first_nonfinite"] == "" for r in records[: first["step"] - 1])
    safe = train("sparse-penalty", {"variant": "logits", "lr": 0.05}, steps=10)
    assert all(r["nonfinite"] == 0 for r in safe)


def test_nonfinite_weight_is_located_after_an_overflowing_update():
    records = train("max-mse", {"variant": "inverse-mse", "optimizer": "sgd", "lr": 1e38}, steps=2)
    first = records[0]
    assert math.isfinite(first["loss"]) and math.isfinite(first["grad_norm"])
    assert first["nonfinite"] > 0 and first["nonfinite_in"] == "weight"
    assert first["first_nonfinite"] in {"hidden/kernel", "hidden/bias", "output/kernel", "output/bias"}


def test_stop_on_nonfinite_stops_at_that_step():
    with Trainer("sparse-penalty", {"variant": "naive", "lr": 0.05}, stop_on_nonfinite=True) as t:
        records = list(t.run(50, chunk=7))
        assert t.stopped and records[-1]["step"] == 3 and records[-1]["nonfinite"] > 0
        assert list(t.run(5)) == []


def test_trainable_alpha_stays_in_bounds_and_hits_one():
    records = train("two-branch", {"alpha": "trainable"}, steps=200)
    alphas = [r["alpha"] for r in records]
    assert all(0.0 <= a <= 1.0 for a in alphas)
    assert alphas[-1] in (0.0, 1.0)  # minimising over alpha pushes it to a bound


def test_uncertainty_weighting_stays_inside():
    records = train("two-branch", {"alpha": "uncertainty"}, steps=200)
    assert all(0.0 < r["alpha"] < 1.0 for r in records)
    assert "grad_norm:log_var_1" in records[0] and "grad_norm:log_var_2" in records[0]


def test_same_seed_same_records_and_other_seed_differs():
    a = train("sparse-penalty", {"variant": "clipped", "batch_size": 16}, steps=40, seed=3)
    b = train("sparse-penalty", {"variant": "clipped", "batch_size": 16}, steps=40, seed=3)
    c = train("sparse-penalty", {"variant": "clipped", "batch_size": 16}, steps=40, seed=4)
    assert _same(a, b)
    assert not _same(a, c)


def test_chunking_does_not_change_records():
    with Trainer("policy-value", {}, seed=1) as t:
        a = list(t.run(12, chunk=5))
    with Trainer("policy-value", {}, seed=1) as t:
        b = list(t.run(7, chunk=3)) + list(t.run(5, chunk=20))
    assert _same(a, b)


def test_one_step_per_structure_is_shared_without_retracing():
    with Trainer("max-mse", {"lr": 0.01, "epsilon": 0.1}) as t:
        list(t.run(3))
        compiled = t.compiled
    with Trainer("max-mse", {"lr": 0.2, "epsilon": 0.3, "batch_size": 7, "clipnorm": 1.0}, seed=9) as t:
        assert t.compiled is compiled
        list(t.run(3))
    assert compiled.traces == 1
    with Trainer("max-mse", {"lr": 0.01}) as t1, Trainer("max-mse", {"lr": 0.01}, seed=1) as t2:
        list(t1.run(2))
        list(t2.run(2))
        assert t1.compiled is t2.compiled  # one step ...
        assert not np.array_equal(t1.weights()[0], t2.weights()[0])  # ... and each run its own weights


def test_clipping_limits_the_update():
    free = train("max-mse", {"variant": "inverse-mse", "optimizer": "sgd", "lr": 0.01}, steps=5)
    clipped = train("max-mse", {"variant": "inverse-mse", "optimizer": "sgd", "lr": 0.01, "clipvalue": 0.001},
                    steps=5)
    assert free[0]["grad_norm"] == clipped[0]["grad_norm"]  # norms are measured before clipping
    assert free[1]["loss"] != clipped[1]["loss"]


def test_bad_settings_raise_setting_error():
    for demo, overrides in [("nope", {}), ("two-branch", {"alpha": 2}), ("sparse-penalty", {"epsilon": 0}),
                            ("sparse-penalty", {"lr": float("nan")}), ("max-mse", {"batch_size": 5000}),
                            ("policy-value", {"penalty": 3})]:
        with pytest.raises(config.SettingError):
            Trainer(demo, overrides)
    with Trainer("max-mse") as t, pytest.raises(ValueError):
        list(t.run(0))


def test_sparse_data_positive_rate():
    for rate in (0.02, 0.1):
        y = data.sparse_events(seed=0, positive_rate=rate).targets["y"]
        assert abs(y.mean() - rate) < 0.01


def test_held_out_metrics_are_measured_at_step_one_and_every_kth_step():
    """The setting ``metrics``: the held-out metrics measured at step 1 and every k-th step (default every-50), on
    the weights after that step, and carried in between."""
    with Trainer("sparse-penalty", {"variant": "logits", "lr": 0.01, "metrics": "every-7"}, seed=0) as t:
        rows = list(t.run(7, chunk=5))
        expected = float(np.mean(t.forward(t.eval_set.inputs)["probability"]))
        rows += list(t.run(13, chunk=5))
    changed = [r["step"] for prev, r in zip(rows, rows[1:]) if r["metric:mean_pred"] != prev["metric:mean_pred"]]
    assert changed == [7, 14]
    assert rows[6]["metric:mean_pred"] == pytest.approx(expected, rel=1e-5)
    default = train("sparse-penalty", {"variant": "logits", "lr": 0.01}, steps=101)
    assert [r["step"] for prev, r in zip(default, default[1:])
            if r["metric:mean_pred"] != prev["metric:mean_pred"]] == [50, 100]
    with pytest.raises(config.SettingError, match="metrics must be every or every-k"):
        Trainer("sparse-penalty", {"metrics": "every-0"})  # one line, as every setting
