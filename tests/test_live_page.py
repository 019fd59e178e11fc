"""The instrument on the pages (AppTest): sliders, Play / Pause / Step / Reset, knob changes during a run and
their markers, compare runs that mirror or take their own knobs, scenarios, and the state in the address."""

import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from lossviz import links, scenarios
from lossviz.training import DEFAULT_CHUNK, Trainer
from test_live import _same
from test_pages import PAGES, _app, _button, _finish


def _job(at, demo, name="A"):
    return at.session_state["jobs"][demo][name]


def _until(job, step):
    deadline = time.time() + 120
    while job.trainer.step < step:
        assert time.time() < deadline, "the run did not get there"
        time.sleep(0.02)


def _press(at, label):
    _button(at, label).click()
    at.run()
    assert not at.exception


def _widget(elements, value_key, which):
    """The current instance of a knob's slider or box (its key carries a version: see dashboard.controls)."""
    return next(w for w in elements if w.key and w.key.startswith(f"{value_key}:{which}:"))


def _box(at, value_key):
    return _widget(at.sidebar.text_input, value_key, "box")


def _log_slider(at, value_key):
    return _widget(at.sidebar.select_slider, value_key, "slider")


def _annotations(at, index):
    spec = json.loads(at.get("plotly_chart")[index].proto.spec)
    return [a.get("text") for a in spec["layout"].get("annotations", [])]


@pytest.mark.parametrize("demo, key, kind", [
    ("sparse-penalty", "penalty", "log"), ("sparse-penalty", "epsilon", "log"), ("sparse-penalty", "lr", "log"),
    ("sparse-penalty", "clipnorm", "log"), ("sparse-penalty", "clipvalue", "log"),
    ("sparse-penalty", "batch_size", "log"), ("sparse-penalty", "positive_rate", "linear"),
    ("policy-value", "c", "log"), ("two-branch", "alpha", "linear"), ("max-mse", "epsilon", "log"),
])
def test_every_numeric_knob_has_a_slider_and_an_exact_box(demo, key, kind):
    at = _app(PAGES[demo])
    slider = _widget(at.sidebar.select_slider if kind == "log" else at.sidebar.slider, f"{demo}:{key}", "slider")
    box = _box(at, f"{demo}:{key}")
    assert box.value is not None
    if key == "lr":
        assert "-0.01" in slider.options and "1e-05" in slider.options  # ascent stays reachable
    if key in ("clipnorm", "clipvalue"):
        assert slider.options[0] == "off"
    if key == "alpha":
        assert (slider.min, slider.max) == (0.0, 1.0)


def test_slider_writes_the_box_and_the_box_moves_the_slider():
    at = _app(PAGES["sparse-penalty"])
    _log_slider(at, "sparse-penalty:penalty").set_value(50.0).run()
    assert _box(at, "sparse-penalty:penalty").value == "50.0"
    _box(at, "sparse-penalty:lr").set_value("0.0023").run()
    assert _log_slider(at, "sparse-penalty:lr").value == 0.002
    assert _box(at, "sparse-penalty:lr").value == "0.0023"  # the exact value stays in force
    _box(at, "sparse-penalty:lr").set_value("-0.01").run()
    assert _log_slider(at, "sparse-penalty:lr").value == -0.01
    assert not at.error
    _box(at, "sparse-penalty:penalty").set_value("abc").run()
    assert not at.exception
    assert any("penalty must be a number > 0" in e.value for e in at.error)


def test_play_change_a_slider_pause_marks_the_change():
    demo = "sparse-penalty"
    at = _app(PAGES[demo])
    _press(at, "Play")
    job = _job(at, demo)
    assert job.steps is None
    _until(job, 40)
    before = job.trainer.step
    _log_slider(at, f"{demo}:penalty").set_value(50.0).run()
    after = job.trainer.step
    _until(job, after + 40)
    _press(at, "Pause")
    assert job.status == "paused" and not at.exception
    records = list(job.records)
    first = next(r for r in records if r["set:penalty"] == 50.0)
    assert before < first["step"] <= after + DEFAULT_CHUNK  # from the chunk after the one running when the slider moved
    assert all(r["set:penalty"] == 10.0 for r in records[: first["step"] - 1])
    assert "penalty 10 -> 50" in _annotations(at, 1)  # the loss chart (after the analytic curve)
    assert f"{first['step']}:penalty=50.0" in at.query_params["at"]
    assert any(f"--at {first['step']}:penalty=50.0 --steps {job.trainer.step}" in c.value for c in at.code)


def test_step_then_reset():
    demo = "max-mse"
    at = _app(PAGES[demo])
    _press(at, "Step")
    job = _job(at, demo)
    job.wait()
    at.run()
    assert job.trainer.step == DEFAULT_CHUNK and job.status == "paused"
    _press(at, "Step")
    job.wait()
    assert job.trainer.step == 2 * DEFAULT_CHUNK and _job(at, demo) is job  # the same run went on
    _press(at, "Reset")
    assert at.session_state["jobs"][demo] == {}
    assert any("press Train" in i.value for i in at.info)


def test_a_graph_shaping_change_mid_run_is_refused_with_reset_offered():
    demo = "sparse-penalty"
    at = _app(PAGES[demo])
    _press(at, "Step")
    job = _job(at, demo)
    job.wait()
    at.sidebar.selectbox(key=f"{demo}:variant").set_value("naive").run()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "A: variant logits -> naive" in warning and "Reset" in warning
    _press(at, "Step")
    job.wait()
    assert _job(at, demo) is job and job.trainer.settings["variant"] == "logits"
    _press(at, "Reset")
    _press(at, "Step")
    _job(at, demo).wait()
    assert _job(at, demo).trainer.settings["variant"] == "naive"


def test_run_b_mirrors_a_and_takes_its_own_compared_knob():
    demo = "max-mse"
    at = _app(PAGES[demo])
    at.sidebar.checkbox(key=f"{demo}:compare").check().run()
    at.sidebar.selectbox(key=f"{demo}:compare_key").set_value("lr").run()
    _box(at, f"B:{demo}:lr").set_value("0.05").run()
    _press(at, "Step")
    a, b = _job(at, demo, "A"), _job(at, demo, "B")
    a.wait(), b.wait()
    _box(at, f"{demo}:epsilon").set_value("0.5").run()  # A's knob: B mirrors it
    _box(at, f"{demo}:lr").set_value("0.02").run()  # B compares lr: it keeps its own
    _box(at, f"B:{demo}:lr").set_value("0.1").run()  # B's own knob
    _press(at, "Step")
    a.wait(), b.wait()
    at.run()  # the rerun the page's fragment asks for once the runs pause
    ra, rb = list(a.records), list(b.records)
    k = DEFAULT_CHUNK  # the first Step trained one chunk
    assert [(r["set:lr"], r["set:epsilon"]) for r in (ra[k - 1], ra[k])] == [(0.01, 0.0), (0.02, 0.5)]
    assert [(r["set:lr"], r["set:epsilon"]) for r in (rb[k - 1], rb[k])] == [(0.05, 0.0), (0.1, 0.5)]
    assert at.query_params["compare"] == "lr:0.05"
    assert at.query_params.get("at_b") == f"{k + 1}:lr=0.1"


@pytest.mark.parametrize("scenario", scenarios.SCENARIOS, ids=lambda s: f"{s.demo}:{s.name}")
def test_each_scenario_runs_on_its_page_and_its_claim_holds(scenario):
    demo = scenario.demo
    at = _app(PAGES[demo])
    index = scenarios.for_demo(demo).index(scenario)
    at.radio(key=f"{demo}:scenario_pick").set_value(index).run()
    _press(at, "Run this scenario")
    _finish(at, demo)
    assert not at.exception
    job = _job(at, demo)
    assert job.trainer.step == scenario.steps
    assert scenario.holds(list(job.records)), scenario.claim
    assert any(scenario.title in i.value for i in at.info)


def test_the_address_round_trips_and_reproduces_the_run():
    demo = "sparse-penalty"
    query = {"variant": "clipped", "lr": "0.02", "seed": "3", "steps": "40", "compare": "penalty:30.0",
             "at": ["11:lr=0.005", "25:penalty=20.0"], "at_b": ["30:penalty=60.0"]}
    at = AppTest.from_file(str(ROOT / PAGES[demo]), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception and not at.warning
    assert at.sidebar.selectbox(key=f"{demo}:variant").value == "clipped"
    assert _box(at, f"{demo}:lr").value == "0.02"
    assert at.sidebar.number_input(key=f"{demo}:seed").value == 3
    assert _box(at, f"B:{demo}:penalty").value == "30.0"
    assert any("step 11: lr -> 0.005" in c.value for c in at.caption)
    _press(at, "Train")
    _finish(at, demo)
    a, b = _job(at, demo, "A"), _job(at, demo, "B")
    with Trainer(demo, {"variant": "clipped", "lr": 0.02}, seed=3) as t:
        t.at(11, lr=0.005)
        t.at(25, penalty=20.0)
        assert _same(list(a.records), list(t.run(40)))
    # B follows A's lr change, not A's penalty change (it compares penalty), and takes its own
    assert [(r["step"], r["set:lr"], r["set:penalty"]) for r in b.records if r["step"] in (10, 11, 29, 30)] == [
        (10, 0.02, 30.0), (11, 0.005, 30.0), (29, 0.005, 30.0), (30, 0.005, 60.0)]
    assert _state(at.query_params) == _state(query)


def _state(query):
    """A page's address (AppTest keeps a key's single value as a string) as the run state it carries."""
    return links.from_query("sparse-penalty", {k: v if isinstance(v, list) else [v] for k, v in query.items()})


@pytest.mark.parametrize("query", [
    {"lr": "nan"}, {"foo": "1"}, {"at": "x"}, {"steps": "1e999"}, {"__import__('os').system('id')": "1"},
    {"compare": "variant"}, {"lr": "1" * 5000}, {"at": "5:variant=naive"}, {"at_b": "5:lr=0.1"},
    {"seed": "-1"}, {"penalty": "0"}, {"at": "999:lr=0.1", "steps": "10"},
])
def test_a_bad_address_shows_a_warning_and_the_defaults(query):
    demo = "sparse-penalty"
    at = AppTest.from_file(str(ROOT / PAGES[demo]), default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception
    assert any("cannot use" in w.value for w in at.warning)
    assert _box(at, f"{demo}:lr").value == "0.001"
    assert _box(at, f"{demo}:penalty").value == "10.0"
    assert not at.error


def test_a_scenario_starts_in_one_script_run(monkeypatch):
    """The button's callback loads the scenario into the sidebar before the script runs, and that run starts it:
    no second run. The process's slots are held meanwhile, so the run waits in line and cannot end (and ask for
    the redraw of a finished run) before the script has."""
    from dashboard import controls
    from lossviz.scheduler import SCHEDULER

    demo = "sparse-penalty"
    at = _app(PAGES[demo])
    scenario = scenarios.get(demo, "logits-raise-penalty")
    at.radio(key=f"{demo}:scenario_pick").set_value(scenarios.for_demo(demo).index(scenario)).run()
    drawn = []
    sidebar = controls.sidebar
    monkeypatch.setattr(controls, "sidebar", lambda d: drawn.append(d) or sidebar(d))
    holders = [object() for _ in range(SCHEDULER.slots)]
    for holder in holders:
        assert SCHEDULER.acquire(holder)
    try:
        next(b for b in at.button if b.label == "Run this scenario").click()
        at.run()
        assert not at.exception and drawn == [demo]  # one script run
        job = _job(at, demo)
        assert job.running and job.trainer.settings["penalty"] == 1.0 and job.steps == scenario.steps
        assert _box(at, f"{demo}:penalty").value == "1.0"  # the sidebar shows what runs
    finally:
        for holder in holders:
            SCHEDULER.release(holder)
    job.wait(120)
    assert scenario.holds(list(job.records)), scenario.claim
