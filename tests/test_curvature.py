"""The curvature probe (issue 29): the sharpness against an explicit Hessian, the stability limit's formulas, the
edge of stability reproduced (Cohen et al. 2021), the probe's settings and its place in the records."""

import contextlib
import io
import math

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from lossviz import charts, checkup, cli, curvature, records, surfaces
from lossviz.checkup import stability
from lossviz.optimizers import BETA_1, BETA_2, EPSILON
from lossviz.training import Trainer

EOS = "edge-of-stability"


def _tanh_net_loss(data, shapes):
    """The demo's loss (half the mean squared error of a tanh 2x32 net) of one flat weight vector, written here
    from its definition, not lossviz's step."""
    x, y = tf.constant(data.inputs["x"], tf.float64), tf.constant(data.targets["y"], tf.float64)
    sizes = [int(np.prod(s)) for s in shapes]

    def loss(flat):
        w1, b1, w2, b2, w3, b3 = [tf.reshape(p, s) for p, s in zip(tf.split(flat, sizes), shapes)]
        h = tf.tanh(x @ w1 + b1)
        h = tf.tanh(h @ w2 + b2)
        return 0.5 * tf.reduce_mean(tf.square(h @ w3 + b3 - y))
    return loss


_EXPLICIT: dict = {}


def _hessian_and_gradient(trainer):
    """The explicit Hessian and gradient at the run's initial weights, on its data; computed once per seed and
    weights (the Jacobian of 1249 gradients takes seconds, and the tests here share seed 0)."""
    key = (trainer.seed, b"".join(w.tobytes() for w in trainer.initial_weights))
    if key not in _EXPLICIT:
        _EXPLICIT[key] = _hessian_and_gradient_now(trainer)
    return _EXPLICIT[key]


def _hessian_and_gradient_now(trainer):
    weights = trainer.initial_weights
    flat = tf.constant(np.concatenate([w.reshape(-1) for w in weights]).astype(np.float64))
    loss = _tanh_net_loss(trainer.data, [w.shape for w in weights])
    with tf.GradientTape() as outer:
        outer.watch(flat)
        with tf.GradientTape() as inner:
            inner.watch(flat)
            value = loss(flat)
        grad = inner.gradient(value, flat)
    return outer.jacobian(grad, flat).numpy(), grad.numpy()


def _first(settings, steps=1):
    with Trainer(EOS, settings, seed=0) as t:
        found = list(t.run(steps))
        hessian, grad = _hessian_and_gradient(t)
    return found, hessian, grad


def test_the_first_sharpness_is_the_explicit_hessians_largest_eigenvalue():
    records, hessian, _ = _first({"sharpness": "every", "optimizer": "sgd", "lr": 0.01})
    assert hessian.shape == (1249, 1249)
    assert records[0]["sharpness"] == pytest.approx(np.linalg.eigvalsh(hessian)[-1], rel=0.01)


def test_adams_preconditioned_sharpness_is_that_of_its_preconditioner_at_the_step():
    records, hessian, grad = _first({"sharpness": "every", "optimizer": "adam", "lr": 0.001})
    v = (1 - BETA_2) * grad ** 2  # Adam's second moment after step 1, and its bias-corrected diagonal P
    p = (1 - BETA_1) * (np.sqrt(v) + EPSILON) / np.sqrt(1 - BETA_2)
    root = 1 / np.sqrt(p)
    expected = np.linalg.eigvalsh(root[:, None] * hessian * root[None, :])[-1]  # P^-1 H's spectrum
    assert records[0]["sharpness"] == pytest.approx(np.linalg.eigvalsh(hessian)[-1], rel=0.01)
    assert records[0]["sharpness:preconditioned"] == pytest.approx(expected, rel=0.01)


def test_a_larger_negative_eigenvalue_is_not_the_sharpness():
    matrix = tf.constant(np.diag([-5.0, -4.0, 2.0]).astype(np.float32))
    value, vector = curvature.largest(lambda v: tf.linalg.matvec(matrix, v), tf.constant([1.0, 1.0, 1.0]), 100)
    assert float(value) == pytest.approx(2.0, rel=1e-3)
    assert abs(float(vector[2])) == pytest.approx(1.0, rel=1e-3)
    value, _ = curvature.largest(lambda v: tf.constant([-5.0, -3.0]) * v,
                                 tf.constant([1.0, 1.0]), 100)  # every eigenvalue negative: the largest is -3
    assert float(value) == pytest.approx(-3.0, rel=1e-3)


@pytest.mark.parametrize("optimizer, lr, expected", [
    ("sgd", 0.1, 20.0), ("sgd", 0.5, 4.0), ("adam", 0.01, 2 * 1.9 / (0.1 * 0.01)), ("rmsprop", 0.02, 100.0),
    ("sgd", -0.1, math.nan), ("adam", -0.01, math.nan)])
def test_the_stability_limit_is_each_optimizers_formula(optimizer, lr, expected):
    assert curvature.limit(optimizer, lr) == pytest.approx(expected, nan_ok=True)
    with Trainer(EOS, {"optimizer": optimizer, "lr": lr}, seed=0) as t:
        record = list(t.run(1))[0]
    assert record["stability_limit"] == pytest.approx(expected, rel=1e-6, nan_ok=True)


def test_the_limit_with_momentum_and_adams_38_over_lr():
    assert curvature.limit("sgd", 0.1, momentum=0.9) == pytest.approx(2 * 1.9 / 0.1)
    assert curvature.limit("adam", 1.0) == pytest.approx(38.0)


def test_the_limit_follows_the_lr_knob_from_the_next_chunk_and_the_columns_carry_between_measurements():
    with Trainer(EOS, {"optimizer": "sgd", "lr": 0.1, "sharpness": "every-5"}, seed=0) as t:
        t.at(8, lr=0.05)
        found = list(t.run(12))
    assert [r["stability_limit"] for r in found] == pytest.approx([20.0] * 7 + [40.0] * 5)
    s = [r["sharpness"] for r in found]
    assert s[0] == s[1] == s[3] != s[4] == s[8] != s[9]  # measured at steps 1, 5, 10; carried in between
    assert "sharpness:preconditioned" not in found[0]


def test_off_by_default_elsewhere_and_no_columns():
    with Trainer("max-mse", {}, seed=0) as t:
        record = list(t.run(1))[0]
    assert "sharpness" not in record and "stability_limit" not in record


def test_batch_size_full_trains_on_the_whole_set():
    with Trainer(EOS, {"batch_size": "full"}, seed=0) as t:
        assert t.batch == len(t.data) == 256
        list(t.run(2))
        assert t.settings["batch_size"] == 0


def _cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("value", ["every-0", "sometimes", "every-x", "every--3", "nan"])
def test_a_bad_sharpness_value_is_one_line_and_exit_2(value):
    code, out, err = _cli("train", EOS, "--set", f"sharpness={value}", "--steps", 1)
    assert code == 2 and not out
    assert len(err.strip().splitlines()) == 1 and "sharpness" in err and "every-k" in err


def test_the_cli_takes_batch_size_full_and_writes_the_columns(tmp_path):
    code, _, err = _cli("train", "max-mse", "--set", "batch_size=full", "--set", "sharpness=every-2",
                        "--set", "optimizer=sgd", "--steps", 3, "--out", tmp_path / "run.csv")
    assert code == 0, err
    run = pd.read_csv(tmp_path / "run.csv")
    assert {"sharpness", "stability_limit"} <= set(run.columns) and run["sharpness"].notna().all()
    assert list(run["stability_limit"]) == pytest.approx([2 / 0.01] * 3)  # max-mse's lr 0.01
    # the Runs page reads it as a train CSV and draws its curvature too
    from lossviz import runfiles

    found = runfiles.parse((tmp_path / "run.csv").read_bytes(), "run.csv")
    assert found.kind == "train"
    assert "curvature_chart" in charts.live_figures({"run.csv": records.window(found.rows)})


def _edge(records, limit):
    """(the first step the sharpness reaches the limit, its largest relative distance from it from then on)."""
    s = np.array([r["sharpness"] for r in records])
    first = int(np.flatnonzero(s >= limit)[0])
    return first, float(np.max(np.abs(s[first:] / limit - 1)))


def test_full_batch_gradient_descent_trains_at_the_edge_of_stability():
    """Cohen et al. 2021, in miniature: the sharpness rises to 2/lr, then stays within 15% of it for the rest of
    2,000 steps while the loss keeps falling; at a quarter of the lr it stays under 2/lr."""
    lr = 0.3
    with Trainer(EOS, {"lr": lr, "optimizer": "sgd", "batch_size": "full", "sharpness": "every-10"}, seed=0) as t:
        found = list(t.run(2000))
    s = np.array([r["sharpness"] for r in found])
    loss = np.array([r["loss"] for r in found])
    assert s[0] < 0.8 * 2 / lr  # it starts well below the limit: progressive sharpening
    first, distance = _edge(found, 2 / lr)
    assert 100 < first < 1500 and distance <= 0.15
    assert loss[-100:].mean() < 0.7 * loss[first:first + 100].mean()  # still falling at the edge
    assert np.any(np.diff(loss[first:]) > 0)  # non-monotonically
    with Trainer(EOS, {"lr": lr / 4, "optimizer": "sgd", "batch_size": "full", "sharpness": "every-10"},
                 seed=0) as t:
        quarter = np.array([r["sharpness"] for r in t.run(2000)])
    assert quarter.max() < 2 / (lr / 4)


# ----------------------------------------------------------------------------- the check-up's past-stability-limit

def _limit_finding(found):
    return [f for f in found if f.id == "past-stability-limit"]


def test_the_check_up_says_past_stability_limit_and_its_lr_is_under_the_limit():
    found = checkup.check("edge-of-stability", {"lr": 1.0}, only=("short run", "scan"), jobs=1)
    finding, = _limit_finding(found)
    e = finding.evidence
    # by hand: sgd's limit is 2 / lr = 2; the ratio is sharpness / limit = sharpness x lr / 2
    assert e["limit"] == pytest.approx(2.0) and e["ratio"] == pytest.approx(e["sharpness"] * 1.0 / 2)
    assert e["lr_under_limit"] == pytest.approx(0.9 / e["ratio"], rel=0.05) and finding.set == {"lr": e["lr_under_limit"]}
    assert {"lr": 10.0, "status": "diverged"} in e["scan_past_limit"]  # the scan's NaN at lr 10 is named with it
    assert "Cohen et al. 2021" in finding.message and "\n" not in finding.message
    again = checkup.check("edge-of-stability", {"lr": 1.0, **finding.set}, only=("short run",))
    assert not _limit_finding(again)  # the suggested lr is under the limit


def test_no_past_stability_limit_at_the_demos_own_settings_nor_on_a_healthy_demo():
    assert not _limit_finding(checkup.check("edge-of-stability", {}, only=("short run",)))
    assert not _limit_finding(checkup.check("sparse-penalty", {"variant": "logits"}, only=("short run",)))


def test_rmsprop_past_its_preconditioned_limit_is_a_warning_that_names_it():
    finding, = _limit_finding(checkup.check("edge-of-stability", {"optimizer": "rmsprop"}, only=("short run",)))
    assert finding.severity == "warning" and finding.evidence["step"] > 1  # step 1 is left out for rmsprop
    assert "preconditioned sharpness" in finding.message and finding.evidence["ratio"] >= stability.FACTOR


# ----------------------------------------------------------------------------- status words, the chart

def _table(ratios, every=10, nan_at=None):
    """Records as a page holds them: the sharpness measured at step 1 and every ``every``-th step, carried between."""
    steps = np.arange(1, every * (len(ratios) - 1) + 2)
    at = np.maximum(steps // every, 0)  # the measurement each step carries: step 1 -> 0, step k every -> k
    at[0] = 0
    sharp = np.asarray(ratios, float)[np.minimum(at, len(ratios) - 1)] * 2.0  # the limit is 2 (sgd at lr 1)
    bad = np.zeros(len(steps), int) if nan_at is None else (steps >= nan_at).astype(int)
    return pd.DataFrame({"step": steps, "sharpness": sharp, "stability_limit": 2.0, "nonfinite": bad})


def test_the_status_words_below_at_the_edge_and_past_the_limit():
    assert curvature.status(_table([0.3, 0.4, 0.5, 0.6]), 10) == "below the stability limit (60% of it)"
    edge = [0.3, 0.5, 0.8, 0.95, 1.05, 0.85, 1.02, 0.97, 1.08, 0.99]  # first at the limit: the 5th, step 40
    assert curvature.status(_table(edge), 10) == "at the edge of stability since step 40"
    spiked = edge + [1.6, 0.8, 0.93, 1.0, 0.98, 1.04]  # over 1/0.7 at step 100: the stretch starts again, at 130
    assert curvature.status(_table(spiked), 10) == "at the edge of stability since step 130"
    moved = _table(edge + [0.92, 0.95, 1.01, 0.97])  # lr doubles at step 101: a new limit, a new stretch
    moved.loc[moved["step"] > 100, ["sharpness", "stability_limit"]] /= 2
    assert curvature.status(moved, 10) == "at the edge of stability since step 120"
    assert curvature.status(_table([0.5, 0.9, 1.3, 1.5]), 10) == "past the limit at step 20 (1.50x the limit now)"
    nan = curvature.status(_table([0.5, 1.3, 2.0, 0.5], nan_at=25), 10)
    assert nan == "past the limit at step 20, the last measurement before the NaN/inf at step 25"
    assert curvature.status(pd.DataFrame({"step": [1], "loss": [1.0]}), 10) is None


def test_the_period_is_read_back_from_the_carried_column():
    assert curvature.period(_table([1, 2, 3, 4, 5], every=10)) == 10
    assert curvature.period(_table([1, 2, 3, 4], every=1)) == 1


def test_the_curvature_chart_is_on_the_live_charts_with_the_limit_and_the_knob_change():
    trainer = Trainer("edge-of-stability", {})
    trainer.advance(30)
    trainer.set(lr=0.6)
    trainer.advance(20)
    figures = charts.live_figures({"A": records.window(trainer.records)})
    fig = figures["curvature_chart"]
    assert fig.layout.yaxis.type == "log" and fig.layout.title.text == "Curvature"
    names = [t.name for t in fig.data]
    assert names == ["A sharpness", "A stability limit"]
    limit = np.asarray(fig.data[1].y, float)
    assert limit[0] == pytest.approx(2 / 0.3, rel=1e-5) and limit[-1] == pytest.approx(2 / 0.6, rel=1e-5)
    assert list(fig.data[0].x) == [1, 10, 20, 30, 40, 50]  # the measured steps only
    assert any("lr 0.3 -> 0.6" in note.text for note in fig.layout.annotations)
    assert "curvature_chart" not in charts.live_figures({"A": records.window(Trainer("max-mse", {}).records)})


# ----------------------------------------------------------------------------- the landscape's sharpest direction

def test_the_sharpest_line_is_the_explicit_hessians_top_eigenvector_and_marks_one_step():
    with Trainer(EOS, {"lr": 1.0}, seed=0) as t:  # untrained: lr x sharpness is about 4.8, past the limit 2
        line = surfaces.sharpest_line(t)
        hessian, grad = _hessian_and_gradient(t)
    eigenvalues, eigenvectors = np.linalg.eigh(hessian)
    assert line.rows == 256 and line.sharpness == pytest.approx(eigenvalues[-1], rel=0.01)
    top = eigenvectors[:, -1] * -np.sign(grad @ eigenvectors[:, -1])  # pointed downhill, as the line is
    assert line.slope == pytest.approx(grad @ top, rel=0.02) and line.step == pytest.approx(-1.0 * line.slope)
    # the drawn loss: its value and curvature at t = 0 are the loss's and the sharpness (finite differences)
    i, h = len(line.t) // 2, line.t[1] - line.t[0]
    assert line.t[i] == pytest.approx(0.0, abs=1e-12) and line.loss[i] == pytest.approx(line.quadratic[i], rel=1e-4)
    assert (line.loss[i + 1] - 2 * line.loss[i] + line.loss[i - 1]) / h ** 2 == pytest.approx(line.sharpness, rel=0.05)
    assert line.limit == pytest.approx(2.0) and line.landing > -line.start  # past the limit the step lands across
    fig = charts.sharpest_chart(line)
    assert fig.layout.title.text == "Loss along the sharpest direction" and len(fig.layout.annotations) == 1


# ----------------------------------------------------------------------------- the page

def _titles(at):
    import json

    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_the_curvature_page_draws_the_chart_with_the_status_and_a_compare_run_overlaid():
    from test_pages import PAGES, _app, _button, _finish

    at = _app(PAGES[EOS])
    at.sidebar.number_input(key=f"{EOS}:steps").set_value(40)
    at.sidebar.checkbox(key=f"{EOS}:compare").check().run()  # B: a quarter of the lr (the demo's compare)
    _button(at, "Train").click()
    at.run()
    _finish(at, EOS)
    assert not at.exception and not at.error
    a, b = at.session_state["jobs"][EOS].values()
    assert b.trainer.settings["lr"] == pytest.approx(a.trainer.settings["lr"] / 4)
    assert "Curvature" in _titles(at)
    chart = next(c for c in at.get("plotly_chart") if '"Curvature"' in c.proto.spec)
    import json

    names = [t["name"] for t in json.loads(chart.proto.spec)["data"]]
    assert sum("sharpness" in n for n in names) == 2 and sum("stability limit" in n for n in names) == 2
    words = " ".join(p.proto.text for p in at.get("progress"))
    assert words.count("curvature: below the stability limit") == 2  # 40 steps: still climbing
    assert not any("mini-batch" in c.value for c in at.caption)  # full batch: no noise note


def test_a_mini_batch_run_with_the_probe_says_it_is_noisier():
    from test_pages import PAGES, _app, _train

    at = _app(PAGES["sparse-penalty"])
    at.sidebar.selectbox(key="sparse-penalty:sharpness").set_value("every-10").run()
    _train(at, "sparse-penalty", 20)
    assert not at.exception
    assert "Curvature" in _titles(at)
    assert any("measured on each step's mini-batch" in c.value for c in at.caption)
