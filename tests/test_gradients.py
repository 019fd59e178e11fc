"""Gradient anatomy: per-term gradient norms and cosines against hand-computed values, PCGrad and GradNorm
against their closed forms, the probe's cost switch, the records, the CLI, the stability map and the page."""

from collections import OrderedDict

import keras
import numpy as np
import pytest
import tensorflow as tf
from streamlit.testing.v1 import AppTest

from lossviz import charts, data, demos, gradients, records, step, sweep, training
from lossviz import settings as config
from test_pages import PAGES, _app, _train

X = np.array([[1.0, 2.0], [0.5, -1.0], [-1.5, 0.5], [2.0, 1.0]], np.float32)
A = np.array([[1.0], [0.0], [2.0], [-1.0]], np.float32)
B = np.array([[-2.0], [1.0], [0.5], [3.0]], np.float32)


# ----------------------------------------------------------------------------- a linear model, two quadratic terms


def _linear_model(settings):
    x = keras.Input(shape=(2,), name="x")
    y = keras.layers.Dense(1, use_bias=False, name="linear")(x)
    return keras.Model({"x": x}, {"y": y})


def _quadratic_terms(ctx):
    y = ctx.targets
    r = ctx.out["y"]
    terms = {"branch_1": keras.ops.mean(keras.ops.square(r - y["a"])),
             "branch_2": keras.ops.mean(keras.ops.square(r - y["b"]))}
    return terms, terms["branch_1"] + terms["branch_2"]


@pytest.fixture
def linear_demo(monkeypatch):
    """The two-branch demo's settings on a linear model y = x w with L1 = mean((y - a)^2), L2 = mean((y - b)^2);
    steps of its own, so no other test gets this structure's step."""
    demo = demos.Demo(name="two-branch", build=_linear_model,
                      make_data=lambda s, seed: data.Dataset({"x": X}, {"a": A, "b": B}),
                      terms=_quadratic_terms, metrics=lambda *a: {}, term_names=("branch_1", "branch_2"),
                      metric_names=(), numeric_keys=("alpha", "gradnorm_alpha"), params=demos.DEMOS["two-branch"].params)
    monkeypatch.setitem(demos.DEMOS, "two-branch", demo)
    monkeypatch.setattr(step, "_STEPS", OrderedDict())
    return demo


def _hand_gradients(w):
    """d/dw mean((X w - t)^2) = 2/n X^T (X w - t), in float64."""
    x, w = X.astype(np.float64), w.astype(np.float64)
    g1 = 2 / len(x) * x.T @ (x @ w - A)
    g2 = 2 / len(x) * x.T @ (x @ w - B)
    return g1.ravel(), g2.ravel()


def _cos(a, b):
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


@pytest.mark.parametrize("every", ["every", "every-2"])
def test_recorded_term_norms_and_cosine_equal_the_hand_computed_ones(linear_demo, every):
    lr = 0.05
    settings = {"optimizer": "sgd", "lr": lr, "batch_size": 4, "term_grads": every}
    with training.Trainer("two-branch", settings, seed=3) as trainer:
        w = trainer.initial_weights[0].astype(np.float64)
        recs = list(trainer.run(5))
    k = config.term_period(every)
    last = None
    for r in recs:  # the batch is the whole data set (order does not change a mean), plain SGD
        g1, g2 = _hand_gradients(w)
        if r["step"] == 1 or r["step"] % k == 0:
            last = (np.linalg.norm(g1), np.linalg.norm(g2), _cos(g1, g2))
        assert r["grad_norm@branch_1"] == pytest.approx(last[0], rel=1e-5)
        assert r["grad_norm@branch_2"] == pytest.approx(last[1], rel=1e-5)
        assert r["grad_norm@branch_1:linear"] == pytest.approx(last[0], rel=1e-5)  # the model's one layer
        assert r["cos:branch_1|branch_2"] == pytest.approx(last[2], rel=1e-5, abs=1e-6)
        assert r["grad_norm"] == pytest.approx(np.linalg.norm(g1 + g2), rel=1e-5)
        w = w - lr * (g1 + g2).reshape(w.shape)
    assert last[2] < 0  # these two targets pull the weights apart


def test_the_terms_gradients_sum_to_the_total_gradient():
    settings = config.resolve("policy-value", {})
    compiled = step.get(demos.get_demo("policy-value"), settings)
    state = compiled.initial_state(0)
    trained = [tf.constant(v) for v in state.trained]
    batch = demos.get_demo("policy-value").make_data(settings, 0).take(np.arange(32))
    hp = {"c": tf.constant(1e-2)}
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(trained)
        with compiled.scope(trained, state.fixed):
            loss, terms, _ = compiled.loss_and_terms(batch.inputs, batch.targets, hp)
    parts = [compiled._gradients(tape, terms[t], trained) for t in ("value", "policy", "l2")]
    whole = compiled._gradients(tape, loss, trained)
    for summed, g in zip(gradients.total(parts), whole):
        np.testing.assert_allclose(summed.numpy(), g.numpy(), rtol=1e-5, atol=1e-7)


def test_cosine_is_zero_for_a_zero_gradient_and_nan_for_a_nan():
    zero, g = [tf.zeros(2)], [tf.constant([1.0, 2.0])]
    assert float(gradients.cosine(zero, g)) == 0.0
    assert np.isnan(float(gradients.cosine([tf.constant([np.nan, 1.0])], g)))


# ----------------------------------------------------------------------------- PCGrad and GradNorm


def test_pcgrad_projects_conflicting_gradients_in_closed_form():
    # L1 = w . (1, 0), L2 = w . (-1, 1): constant gradients with g1 . g2 = -1 < 0
    g1, g2 = [tf.constant([1.0, 0.0])], [tf.constant([-1.0, 1.0])]
    # g1 - (g1.g2 / |g2|^2) g2 = (1, 0) + (-1, 1) / 2 = (0.5, 0.5); g2 - (g2.g1 / |g1|^2) g1 = (0, 1)
    np.testing.assert_allclose(gradients.pcgrad([g1, g2])[0].numpy(), [0.5, 1.5], rtol=1e-6)
    # agreeing gradients pass unchanged
    np.testing.assert_allclose(gradients.pcgrad([g1, [tf.constant([1.0, 1.0])]])[0].numpy(), [2.0, 1.0])
    # after the projection, each projected gradient is orthogonal to the other term's gradient
    projected = (np.array([0.5, 0.5]), np.array([0.0, 1.0]))
    assert projected[0] @ np.array([-1.0, 1.0]) == pytest.approx(0) and projected[1] @ np.array([1.0, 0.0]) == 0


def test_pcgrad_update_in_the_trainer(linear_demo):
    lr = 0.1
    settings = {"optimizer": "sgd", "lr": lr, "batch_size": 4, "alpha": "pcgrad", "term_grads": "every"}
    with training.Trainer("two-branch", settings, seed=3) as trainer:
        w = np.zeros(2)  # where the two targets' gradients conflict: X^T a = (-4, 2), X^T b = (3.75, -1.75)
        trainer.set_weights([w.reshape(2, 1).astype(np.float32)])
        record = next(trainer.run(1))
        after = trainer.weights()[0].ravel()
    g1, g2 = _hand_gradients(w.reshape(2, 1))
    assert _cos(g1, g2) < 0
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    np.testing.assert_allclose(after, w - lr * (p1 + p2), rtol=1e-5)
    assert record["grad_norm"] == pytest.approx(np.linalg.norm(p1 + p2), rel=1e-5)
    assert record["grad_norm@branch_1"] == pytest.approx(np.linalg.norm(g1), rel=1e-5)  # the unprojected pulls


def test_gradnorm_weights_by_hand():
    # w = (1, 1), |grad_W L| = (2, 1), L = (0.5, 0.9), L(0) = (1, 1), asymmetry 1, lr 0.1:
    # G = (2, 1), mean 1.5; L/L0 = (0.5, 0.9), r = (0.5, 0.9) / 0.7; target = 1.5 r = (1.0714, 1.9286)
    # sign(G - target) = (+1, -1): w - 0.1 (2, -1) = (0.8, 1.1), renormalised to sum 2: (0.8421, 1.1579)
    new = gradients.gradnorm_weights(tf.constant([1.0, 1.0]), tf.constant([2.0, 1.0]), tf.constant([0.5, 0.9]),
                                     tf.constant([1.0, 1.0]), tf.constant(1.0), tf.constant(0.1))
    np.testing.assert_allclose(new.numpy(), [0.8 * 2 / 1.9, 1.1 * 2 / 1.9], rtol=1e-6)
    # asymmetry 0: the target is the mean weighted norm; equal weighted norms leave the weights alone
    same = gradients.gradnorm_weights(tf.constant([0.5, 1.5]), tf.constant([3.0, 1.0]), tf.constant([0.2, 0.9]),
                                      tf.constant([1.0, 1.0]), tf.constant(0.0), tf.constant(0.1))
    np.testing.assert_allclose(same.numpy(), [0.5, 1.5], rtol=1e-6)


def test_gradnorm_in_the_trainer_moves_alpha_as_computed_by_hand():
    settings = {"alpha": "gradnorm", "gradnorm_alpha": 1.5, "term_grads": "every", "lr": 0.05}
    with training.Trainer("two-branch", settings, seed=0) as trainer:
        recs = list(trainer.run(3))
    # step 1: w = (1, 1) and L(0) = L, so every r_i = 1 and the target is the mean weighted norm G = 2 |grad part|
    r = recs[0]
    weighted = 2 * np.array([r["grad_norm@branch_1:trunk"], r["grad_norm@branch_2:trunk"]], np.float64)
    step = np.sign(weighted - weighted.mean()) * weighted  # |grad_W L_i| = G_i / w_i with w_i = 1
    w = np.maximum(1.0 - 0.05 * step, 1e-3)
    w = w * 2 / w.sum()
    assert r["alpha"] == pytest.approx(w[0] / 2, rel=1e-4)
    assert r["alpha"] != pytest.approx(0.5)
    assert all(np.isfinite(x["loss"]) and 0 < x["alpha"] < 1 for x in recs)
    # the branch with the larger weighted norm on the trunk loses weight
    assert (r["alpha"] < 0.5) == (weighted[0] > weighted[1])


# ----------------------------------------------------------------------------- the probe on the demos


def test_sparse_demo_with_a_small_penalty_negatives_carry_the_gradient():
    recs = training.train("sparse-penalty", {"penalty": 0.1, "term_grads": "every"}, steps=20, seed=0)
    table = records.frame(recs)
    terms = ["positives", "negatives"]
    layers = gradients.probe_layers(table.columns, "positives")
    assert layers == ["dense_1", "dense_2", "dense_3", "logit"]
    assert (gradients.shares(recs[0], terms, layers)[:, 1] > 0.9).all()  # step 1, every layer
    assert (gradients.pooled_shares(table, terms, layers)[:, 1] > 0.9).all()  # the first 20 steps
    words = " ".join(gradients.describe(table, "sparse-penalty"))
    assert "**negatives** carries 9" in words and "every layer" in words and "drown" in words
    # a large penalty turns it round
    heavy = records.frame(training.train("sparse-penalty", {"penalty": 49, "term_grads": "every"}, steps=20, seed=0))
    assert (gradients.pooled_shares(heavy, terms, layers)[:, 0] > 0.5).all()
    assert "drown" not in " ".join(gradients.describe(heavy, "sparse-penalty"))


@pytest.mark.parametrize("demo", ["policy-value", "two-branch", "sparse-penalty"])
def test_probe_columns_follow_the_setting(demo):
    terms = config.TERMS[demo]
    on = training.train(demo, {"term_grads": "every-3"}, steps=7, seed=0)
    assert f"grad_norm@{terms[0]}" in on[0] and f"cos:{terms[0]}|{terms[1]}" in on[0]
    layers = gradients.probe_layers(list(on[0]), terms[0])
    assert layers and all(f"grad_norm:{layer}" in on[0] for layer in layers)
    # measured at 1, 3 and 6, carried in between
    norms = [r[f"grad_norm@{terms[1]}"] for r in on]  # (a batch may hold no positives)
    assert norms[1] == norms[0] and norms[3] == norms[2] and norms[4] == norms[2] and norms[6] == norms[5]
    assert norms[2] != norms[0] and norms[5] != norms[2]
    every = training.train(demo, {"term_grads": "every"}, steps=3, seed=0)
    assert [r[f"grad_norm@{terms[1]}"] for r in every][0] == pytest.approx(norms[0], rel=1e-6)
    off = training.train(demo, {"term_grads": "off"}, steps=3, seed=0)
    assert not any("@" in c or c.startswith("cos:") for c in off[0])
    # the probe only measures: the training itself is the same with it on or off
    assert [r["loss"] for r in off] == [r["loss"] for r in every]


def test_term_grads_setting_values():
    assert config.resolve("sparse-penalty", {})["term_grads"] == config.TERM_GRADS_DEFAULT == "every-10"
    assert config.resolve("sparse-penalty", {"term_grads": "every-7"})["term_grads"] == "every-7"
    for bad in ("every-1", "sometimes", "every-x", "every-0"):
        with pytest.raises(config.SettingError, match="term_grads=.* must be off, every or every-k"):
            config.resolve("sparse-penalty", {"term_grads": bad})
    # k reaches the step as a number: every-k settings share one compiled graph
    assert (config.structure("sparse-penalty", config.resolve("sparse-penalty", {"term_grads": "every-5"}))
            == config.structure("sparse-penalty", config.resolve("sparse-penalty", {"term_grads": "every-50"})))
    with pytest.raises(config.SettingError, match="compiled graph"):
        config.live_change("sparse-penalty", config.resolve("sparse-penalty", {}), "term_grads", "every")
    assert "gradnorm_alpha" in config.knob_keys("two-branch", config.resolve("two-branch", {"alpha": "gradnorm"}))
    assert "gradnorm_alpha" not in config.knob_keys("two-branch", config.resolve("two-branch", {}))


def test_cli_train_writes_the_probe_columns(tmp_path):
    from lossviz import cli

    out = tmp_path / "run.csv"
    assert cli.main(["train", "two-branch", "--set", "term_grads=every", "--set", "alpha=pcgrad", "--steps", "4",
                     "--out", str(out)]) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert {"grad_norm@branch_1", "grad_norm@branch_2:trunk", "cos:branch_1|branch_2"} <= set(header)
    assert cli.main(["train", "two-branch", "--set", "term_grads=off", "--steps", "2", "--out", str(out)]) == 0
    assert "cos:" not in out.read_text()


# ----------------------------------------------------------------------------- charts, stability map, page


def test_charts_of_the_probe():
    recs = training.train("policy-value", {"term_grads": "every-2"}, steps=12, seed=0)
    runs = {"A": recs}
    norms = charts.term_grad_chart(runs, every=2)
    assert {t.name for t in norms.data} == {"A value", "A policy", "A l2"}
    assert list(norms.data[0].x) == [1, 2, 4, 6, 8, 10, 12]  # the measured steps only
    cos = charts.term_cosine_chart(runs, every=2)
    lines = [t for t in cos.data if t.mode != "none"]
    assert [t.name for t in lines] == ["A value vs policy", "A value vs l2", "A policy vs l2"]
    assert cos.layout.yaxis.range == (-1.05, 1.05)
    shade = next(t for t in cos.data if t.mode == "none")  # the conflicts: the area between min(cos, 0) and 0
    assert shade.fill == "tozeroy" and np.nanmax(np.asarray(shade.y, dtype=float)) <= 0
    heat = charts.term_share_heatmap(recs[-1], "(A)")
    assert list(heat.data[0].x) == ["value", "policy", "l2"]
    z = np.array(heat.data[0].z, dtype=float)
    np.testing.assert_allclose(np.nansum(z, axis=1)[np.isfinite(z).any(axis=1)], 1.0, rtol=1e-5)
    # the value head's layers take no gradient from the policy term
    value_row = list(heat.data[0].y).index("value_1")
    assert z[value_row, 1] == 0


def test_conflict_stretches():
    steps = np.arange(1, 11)
    cos = np.array([0.2, -0.1, -0.3, 0.1, -0.2, np.nan, 0.5, -0.4, -0.5, -0.1])
    assert gradients.conflicts(steps, cos) == [(2, 3), (5, 5), (8, 10)]
    assert gradients.conflicts(steps, cos, limit=2) == [(2, 5), (8, 10)]


def test_sweep_rows_carry_the_mean_cosine_and_the_shares():
    settings = config.resolve("sparse-penalty", {"penalty": 0.1, "term_grads": "every"})
    row = sweep.summarise("sparse-penalty", settings, training.train("sparse-penalty", settings, steps=20, seed=0))
    assert -1 <= row["mean_cos"] < 0
    assert row["share:negatives"] > 0.9 and row["share:positives"] + row["share:negatives"] == pytest.approx(1)
    assert list(row) == sweep.summary_columns("sparse-penalty")
    fig = charts.stability_map([{**row, "lr": 0.001}], ["lr"], [0.001], None, "mean_cos")
    assert fig.data[0].colorscale and fig.data[0].zmin == -1 and fig.data[0].z[0][0] == pytest.approx(row["mean_cos"])
    off = config.resolve("sparse-penalty", {"term_grads": "off"})
    assert np.isnan(sweep.summarise("sparse-penalty", off, training.train("sparse-penalty", off, steps=3))["mean_cos"])


def test_page_shows_the_gradient_anatomy():
    at = _app(PAGES["sparse-penalty"])
    at.sidebar.selectbox(key="sparse-penalty:term_grads").set_value("every").run()
    _train(at, "sparse-penalty", 30)
    assert not at.exception and not at.error
    assert any(s.value == "Gradient anatomy" for s in at.subheader)
    titles = [c.proto.spec for c in at.get("plotly_chart")]
    for title in ("Gradient norm per term", "Cosine between terms", "Share of each layer"):
        assert any(title in spec for spec in titles), title
    words = " ".join(m.value for m in at.markdown)
    assert "measured steps up to step 30" in words and "positives and negatives" in words
    at.slider(key="sparse-penalty:anatomy:step").set_value(1).run()
    assert not at.exception
    assert any('"step 1"' in c.proto.spec for c in at.get("plotly_chart"))


def test_two_branch_page_offers_gradnorm_and_pcgrad():
    at = _app(PAGES["two-branch"])
    assert not any("gradnorm_alpha" in w.key for w in at.sidebar.text_input if w.key)  # only with gradnorm
    at.sidebar.selectbox(key="two-branch:alpha:mode").set_value("gradnorm").run()
    assert any(w.key.startswith("two-branch:gradnorm_alpha:box") for w in at.sidebar.text_input if w.key)
    _train(at, "two-branch", 20)
    assert not at.exception and not at.error
    job = at.session_state["jobs"]["two-branch"]["A"]
    assert job.trainer.settings["alpha"] == "gradnorm" and job.records[-1]["alpha"] != 0.5


def test_the_server_keeps_training_threads_running():
    """Streamlit ends every script run with keras' clear_session, a full collection and a walk over every
    imported module's files; the dashboard turns them off (see dashboard.common.keep_training_smooth)."""
    import tomllib

    from conftest import ROOT

    config_file = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config_file["runner"]["postScriptGC"] is False
    assert config_file["server"]["fileWatcherType"] == "none"
    _app(PAGES["two-branch"])
    from dashboard import common

    assert keras.backend.clear_session is common._no_clear_session
