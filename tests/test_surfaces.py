"""Analytic curves and the model's loss landscape."""

import csv

import numpy as np
import pytest

from lossviz import charts, settings as config, surfaces
from lossviz.cli import main
from lossviz.training import Trainer


# ---------------------------------------------------------------- analytic curves


def test_naive_curve_is_non_finite_at_the_edges_and_clipped_is_flat_there():
    naive = surfaces.curves("sparse-penalty", config.resolve("sparse-penalty", {"variant": "naive"}))
    positive = naive[0]
    assert positive.name == "y = 1" and positive.x[0] == 0.0 and positive.x[-1] == 1.0
    assert positive.y[0] == np.inf and np.isnan(positive.y[-1])  # -log 0; and 0 * log 0 for (1 - y)
    assert np.all(np.isfinite(positive.y[1:-1]))
    clipped = surfaces.curves("sparse-penalty", config.resolve("sparse-penalty", {"variant": "clipped",
                                                                                  "epsilon": 1e-3}))[0]
    assert np.all(np.isfinite(clipped.y))
    flat = clipped.x < 1e-3  # beyond the clip the loss is constant: no gradient reaches the model
    assert flat.any() and np.all(clipped.dy[flat] == 0.0)
    np.testing.assert_allclose(clipped.y[flat], -10 * np.log(1e-3), rtol=1e-5)


def test_logits_curve_is_exact_over_the_logit():
    (pos, neg) = surfaces.curves("sparse-penalty", config.resolve("sparse-penalty", {"variant": "logits"}))
    assert pos.x_label == "logit of p" and np.all(np.isfinite(pos.y)) and np.all(np.isfinite(pos.dy))
    np.testing.assert_allclose(pos.y[0], 10 * 20.0, rtol=1e-5)  # -10 log sigmoid(-20) ~ 200
    np.testing.assert_allclose(pos.dy[0], -10.0, rtol=1e-5)


def test_max_mse_curves():
    mse, neg, inv = surfaces.curves("max-mse", config.resolve("max-mse", {"epsilon": 0}))
    np.testing.assert_allclose(neg.dy, -mse.dy)
    np.testing.assert_allclose(mse.dy, 2 * mse.x, atol=1e-6)
    zero = np.flatnonzero(inv.x == 0.0)
    assert len(zero) == 1 and inv.y[zero[0]] == np.inf
    eps = surfaces.curves("max-mse", config.resolve("max-mse", {"epsilon": 0.01}))[2]
    np.testing.assert_allclose(eps.y[eps.x == 0.0], [100.0], rtol=1e-5)


def test_policy_and_value_curves():
    logits_mode = surfaces.curves("policy-value", config.resolve("policy-value", {}))[0]
    assert logits_mode.dy[0] < -0.9 and abs(logits_mode.dy[-1]) < 1e-3  # -(1 - p) for the target logit
    value = surfaces.curves("policy-value", config.resolve("policy-value", {}))[1]
    np.testing.assert_allclose(value.y, (1 - value.x) ** 2, rtol=1e-5, atol=1e-6)


def test_two_dimensional_surfaces():
    s = surfaces.two_branch_surface({"alpha": 0.25})
    np.testing.assert_allclose(s.z, 0.25 * s.x[None, :] + 0.75 * s.y[:, None], rtol=1e-6)
    pv = surfaces.surface("policy-value", {})
    assert pv.z.shape == (len(pv.y), len(pv.x)) and np.all(np.isfinite(pv.z))
    # (z - v)^2 + log(1 + 2 e^-gap) for one target among 3 legal moves
    j, i = np.argmin(np.abs(pv.y - 0.0)), np.argmin(np.abs(pv.x - 1.0))
    np.testing.assert_allclose(pv.z[j, i], pv.x[i] ** 2 + np.log(1 + 2 * np.exp(-pv.y[j])), rtol=1e-5)
    assert surfaces.surface("max-mse", {}) is None


# ---------------------------------------------------------------- the model's landscape


@pytest.fixture(scope="module")
def policy_trainer():
    with Trainer("policy-value", {}, seed=0) as t:
        list(t.run(60))
        yield t


def test_centre_of_the_landscape_is_the_model_loss(policy_trainer):
    t = policy_trainer
    land = surfaces.random_landscape(t, resolution=5, span=0.5, seed=1, samples=64)
    batch = t.eval_set.take(slice(0, 64))
    direct = t.loss(batch)
    assert land.loss[2, 2] == pytest.approx(direct, rel=1e-5)
    assert land.alpha[2] == 0.0 and land.beta[2] == 0.0
    assert not np.allclose(land.loss, direct)  # the plane is not flat


def test_filter_normalisation(policy_trainer):
    weights = policy_trainer.weights()
    direction = surfaces.filter_normalized_direction(weights, np.random.default_rng(0))
    for w, d, v in zip(weights, direction, policy_trainer.compiled.trained):
        if w.ndim <= 1:
            assert np.all(d == 0.0), v.path
            continue
        axes = tuple(range(w.ndim - 1))
        np.testing.assert_allclose(np.linalg.norm(d.reshape(-1, d.shape[-1]), axis=0),
                                   np.sqrt((w.astype(np.float64) ** 2).sum(axis=axes)), rtol=1e-5, err_msg=v.path)


def test_same_seed_same_grid(policy_trainer):
    a = surfaces.random_landscape(policy_trainer, resolution=4, seed=3, samples=32)
    b = surfaces.random_landscape(policy_trainer, resolution=4, seed=3, samples=32)
    c = surfaces.random_landscape(policy_trainer, resolution=4, seed=4, samples=32)
    np.testing.assert_array_equal(a.loss, b.loss)
    assert not np.array_equal(a.loss, c.loss)


def test_batched_grid_equals_assigning_each_point(policy_trainer):
    t = policy_trainer
    center = t.weights()
    rng = np.random.default_rng(5)
    d1, d2 = surfaces.filter_normalized_direction(center, rng), surfaces.filter_normalized_direction(center, rng)
    coords = np.array([[0.3, -0.2], [-1.0, 0.5], [0.7, 0.7]])
    batched = surfaces.LossGrid(t, samples=32)(center, d1, d2, coords)
    batch = t.eval_set.take(slice(0, 32))
    for (a, b), value in zip(coords, batched):
        t.set_weights([c + a * x + b * y for c, x, y in zip(center, d1, d2)])
        assert t.loss(batch) == pytest.approx(value, rel=1e-5)
    t.set_weights(center)


def test_trajectory_and_interpolation(policy_trainer):
    t = policy_trainer
    land = surfaces.trajectory_landscape(t, resolution=7, samples=32)
    assert land.kind == "pca" and len(land.trajectory) == len(t.snapshots)
    np.testing.assert_allclose(land.trajectory[-1], [0.0, 0.0], atol=1e-6)  # the path ends at the centre
    assert land.alpha.min() < land.trajectory[:, 0].min() and land.trajectory[:, 0].max() < land.alpha.max()
    assert 0.5 < land.explained[0] <= 1.0
    curve = surfaces.interpolation(t, points=5, low=0.0, high=1.0, samples=32)
    grid = surfaces.LossGrid(t, samples=32)
    assert curve.y[0] == pytest.approx(grid.loss_at(t.initial_weights), rel=1e-5)
    assert curve.y[-1] == pytest.approx(grid.loss_at(t.weights()), rel=1e-5)


def test_non_finite_points_stay_marked():
    with Trainer("sparse-penalty", {"variant": "naive"}, seed=0) as t:
        list(t.run(30))
        land = surfaces.random_landscape(t, resolution=9, span=20.0, seed=0, samples=256)
    bad = ~np.isfinite(land.loss)
    assert 0 < bad.sum() < bad.size  # some points blow up, the centre does not
    assert np.isfinite(land.loss[4, 4])
    fig = charts.landscape_contour(land)
    marks = [tr for tr in fig.data if tr.name and tr.name.startswith("non-finite")]
    assert len(marks) == 1 and len(marks[0].x) == bad.sum()
    rows = list(land.rows())
    assert sum(1 for r in rows if not np.isfinite(r["loss"])) == bad.sum()


def test_cli_landscape_writes_resolution_squared_rows(tmp_path):
    out = tmp_path / "land.csv"
    assert main(["landscape", "max-mse", "--steps", "20", "--resolution", "7", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 49 and list(rows[0]) == ["alpha", "beta", "loss"]
    assert {float(r["alpha"]) for r in rows} == {float(r["beta"]) for r in rows}


def test_cli_landscape_rejects_bad_resolution(capsys):
    with pytest.raises(SystemExit) as e:
        main(["landscape", "max-mse", "--resolution", "1", "--out", "x.csv"])
    assert e.value.code == 2 and "from 2 to 201" in capsys.readouterr().err
