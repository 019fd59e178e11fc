"""Every page under streamlit's AppTest: renders, trains with a small budget, shows errors for bad input."""

import functools
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from lossviz import demos
from lossviz.training import train

PAGES = {name: demos.DEMOS[name].page.file for name in demos.BUILT_IN}


def _app(path: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / path), default_timeout=120)  # absolute: see PITFALLS
    at.run()
    assert not at.exception
    return at


def _finish(at: AppTest, demo: str) -> None:
    """Rerun until this session's training jobs have ended (the browser's fragment would redraw)."""
    deadline = time.time() + 120
    while any(job.running for job in at.session_state["jobs"][demo].values()):
        assert time.time() < deadline, "training did not finish"
        time.sleep(0.2)
        at.run()
    at.run()


def _train(at: AppTest, demo: str, steps: int) -> None:
    """Set the step budget, press Train and wait for the run to end."""
    at.sidebar.number_input(key=f"{demo}:steps").set_value(steps)
    _button(at, "Train").click()
    at.run()
    _finish(at, demo)


def _text_input(at: AppTest, label: str):
    return next(w for w in at.sidebar.text_input if w.label.startswith(label))


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_home_page_renders_a_card_per_family():
    at = _app("app.py")
    assert len(at.get("plotly_chart")) == 4
    assert len(at.latex) == 4
    assert not at.error


@pytest.mark.parametrize("demo", PAGES)
def test_page_trains_and_shows_charts_and_table(demo):
    at = _app(PAGES[demo])
    assert not at.error
    assert at.info and "press Train" in at.info[0].value
    _train(at, demo, 30)
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) >= 6  # analytic curve, loss, gradient norm, metrics, heatmap, page view
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 30
    assert any(f"python -m lossviz train {demo}" in c.value for c in at.code)
    records = list(at.session_state["jobs"][demo].values())[0].records
    assert [r["step"] for r in records] == list(range(1, 31))


def test_rerun_does_not_retrain():
    at = _app(PAGES["max-mse"])
    _train(at, "max-mse", 10)
    job = list(at.session_state["jobs"]["max-mse"].values())[0]
    at.run()
    at.sidebar.checkbox(key="max-mse:stop_nan").check().run()
    assert list(at.session_state["jobs"]["max-mse"].values())[0] is job


def test_compare_overlays_two_runs_with_the_same_seed():
    at = _app(PAGES["sparse-penalty"])
    at.sidebar.number_input(key="sparse-penalty:steps").set_value(20)
    _text_input(at, "lr").set_value("0.05")
    at.sidebar.checkbox(key="sparse-penalty:compare").check().run()
    _button(at, "Train").click()
    at.run()
    _finish(at, "sparse-penalty")
    jobs = at.session_state["jobs"]["sparse-penalty"]
    assert len(jobs) == 2
    a, b = jobs.values()
    assert a.trainer.settings["variant"] == "logits" and b.trainer.settings["variant"] == "naive"
    # same seed: same data, same initial weights, same first batch (the loss differs only in rounding)
    assert all(np.array_equal(x, y) for x, y in zip(a.trainer.initial_weights, b.trainer.initial_weights))
    assert np.array_equal(a.trainer.data.targets["y"], b.trainer.data.targets["y"])
    assert a.records[0]["loss"] == pytest.approx(b.records[0]["loss"], rel=1e-6)
    assert not at.exception
    # the naive run breaks: the NaN panel names the step, the place and the cause
    panel = " ".join(e.value for e in at.error)
    assert "first NaN/inf at step 3, in the loss" in panel and "variant=naive" in panel
    assert len(at.dataframe) == 2


@pytest.mark.parametrize("demo, label, value, words", [
    ("sparse-penalty", "epsilon", "0", "epsilon must be a number in (0, 0.5)"),
    ("sparse-penalty", "lr", "nan", "lr must be a finite number"),
    ("policy-value", "c", "-1", "c must be a number >= 0"),
    ("two-branch", "alpha value", "1.5", "alpha must be a number in [0, 1]"),
    ("max-mse", "batch_size", "abc", "batch_size must be an integer"),
])
def test_bad_input_shows_an_error_not_a_traceback(demo, label, value, words):
    at = _app(PAGES[demo])
    _text_input(at, label).set_value(value).run()
    assert not at.exception
    assert any(words in e.value for e in at.error)
    assert _button(at, "Train").disabled


def test_zero_steps_is_refused():
    at = _app(PAGES["two-branch"])
    at.sidebar.number_input(key="two-branch:steps").set_value(0).run()
    assert any("steps must be an integer >= 1" in e.value for e in at.error)
    assert _button(at, "Train").disabled


def test_landscape_section_on_demand():
    at = _app(PAGES["two-branch"])
    _train(at, "two-branch", 60)
    before = len(at.get("plotly_chart"))
    at.slider(key="two-branch:resolution").set_value(11)
    _button(at, "Compute landscape").click()
    at.run()
    assert not at.exception
    stored = at.session_state["page:two-branch"].landscape
    assert stored["random"].loss.shape == (11, 11) and stored["pca"].loss.shape == (11, 11)
    assert stored["sharpest"].sharpness > 0
    # contour, 3-D surface, PCA plane with path, interpolation, the sharpest direction
    assert len(at.get("plotly_chart")) == before + 5
    at.run()  # a rerun keeps the landscape without recomputing it
    assert at.session_state["page:two-branch"].landscape is stored


def test_stability_map_section_with_a_tiny_grid(monkeypatch):
    from lossviz import sweep as sweeps

    # the points on this process's compiled steps: the page's process pool is the browser test's (its sweep of
    # 12 runs) and test_sweep's; starting one here costs two TensorFlow imports and their compiles
    monkeypatch.setattr(sweeps, "sweep", functools.partial(sweeps.sweep, backend="threads"))
    at = _app(PAGES["sparse-penalty"])
    at.selectbox(key="sparse-penalty:sweep:y").set_value("variant").run()
    at.multiselect(key="sparse-penalty:sweep:y:values").set_value(["naive", "logits"]).run()
    at.text_input(key="sparse-penalty:sweep:x:low").set_value("0.001").run()
    at.text_input(key="sparse-penalty:sweep:x:high").set_value("0.05").run()
    at.number_input(key="sparse-penalty:sweep:x:count").set_value(2).run()
    at.number_input(key="sparse-penalty:sweep:steps").set_value(40).run()
    _button(at, "Sweep").click().run()
    job = at.session_state["sweeps"]["sparse-penalty"]
    deadline = time.time() + 120
    while job.running:
        assert time.time() < deadline
        time.sleep(0.3)
        at.run()
    at.run()
    assert not at.exception and not at.error
    rows = job.finished_rows()
    assert [(r["lr"], r["variant"]) for r in rows] == [(0.001, "naive"), (0.001, "logits"), (0.05, "naive"),
                                                      (0.05, "logits")]
    assert rows[2]["status"] == "diverged" and rows[2]["first_nonfinite_step"] == 3
    assert any("python -m lossviz sweep sparse-penalty --grid lr=0.001,0.05 --grid variant=naive,logits" in c.value
               for c in at.code)
    # load the diverged cell into the sidebar
    at.selectbox(key="sparse-penalty:sweep:pick").set_value(2).run()
    _button(at, "Load into the sidebar").click().run()
    assert not at.exception
    assert _text_input(at, "lr").value == "0.05"
    assert at.sidebar.selectbox(key="sparse-penalty:variant").value == "naive"


def test_stability_map_refuses_a_bad_range():
    at = _app(PAGES["policy-value"])
    at.text_input(key="policy-value:sweep:x:low").set_value("-1").run()
    assert not at.exception
    assert any("log-scale range of lr needs values > 0" in e.value for e in at.error)


def test_two_sessions_training_at_once_keep_their_own_runs():
    first, second = _app(PAGES["max-mse"]), _app(PAGES["max-mse"])
    first.sidebar.number_input(key="max-mse:steps").set_value(300)
    second.sidebar.number_input(key="max-mse:steps").set_value(40)
    _text_input(second, "lr").set_value("0.05")
    _button(first, "Train").click()
    _button(second, "Train").click()
    first.run()
    second.run()  # both train at the same time, in two threads of this process
    _finish(first, "max-mse")
    _finish(second, "max-mse")
    (job_1,) = first.session_state["jobs"]["max-mse"].values()
    (job_2,) = second.session_state["jobs"]["max-mse"].values()
    assert len(job_1.records) == 300 and len(job_2.records) == 40
    assert job_1.trainer.compiled is job_2.trainer.compiled  # one step, each run its own state
    assert job_1.trainer.settings["lr"] == 0.01 and job_2.trainer.settings["lr"] == 0.05
    alone = train("max-mse", {"lr": 0.05}, steps=40)
    assert [r["loss"] for r in job_2.records] == [r["loss"] for r in alone]  # undisturbed by the other run


def test_run_table_spells_nan_and_shows_compact_numbers():
    at = _app(PAGES["sparse-penalty"])
    at.sidebar.selectbox(key="sparse-penalty:variant").set_value("naive").run()
    _text_input(at, "lr").set_value("0.05").run()
    _train(at, "sparse-penalty", 20)
    table = at.dataframe[0].value
    assert table["loss"].tolist()[2:5] == ["nan", "nan", "nan"]  # NaN is not shown as "None"
    for value in table["grad_norm"].tolist()[:2] + table["metric:mean_pred"].tolist()[:2]:
        mantissa = value.split("e")[0].replace("-", "").replace(".", "").lstrip("0")
        assert 1 <= len(mantissa) <= 5, value  # at most 5 significant digits


def test_the_presenter_toggle_keeps_the_transport_the_knobs_and_the_loss_chart():
    at = _app(PAGES["sparse-penalty"])
    at.toggle(key="sparse-penalty:present").set_value(True).run()
    assert not at.exception and not at.latex and not at.expander  # no formula, scenarios, check-up, stability map
    _train(at, "sparse-penalty", 20)
    assert not at.exception
    import json

    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert titles == ["Loss and its terms"] and not at.dataframe  # the loss chart alone, no tables
    assert _button(at, "Train") and at.sidebar.text_input  # the transport and the knobs stay
    at.toggle(key="sparse-penalty:present").set_value(False).run()
    assert len(at.get("plotly_chart")) >= 6 and at.latex
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download A as CSV", "Download as HTML"]
    from dashboard.live import _html  # what the button's callable builds when pressed

    job = list(at.session_state["jobs"]["sparse-penalty"].values())[0]
    page = _html(job.records, "lossviz-sparse-penalty-A.csv", "python -m lossviz train sparse-penalty", "A")
    assert "python -m lossviz train sparse-penalty" in page and 'id="chart-0"' in page and "<script src" not in page
