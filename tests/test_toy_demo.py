"""A family declared in one file and registered in one call (``tests/toy_demo.py``) works everywhere with no edit to
any module of lossviz: the CLI's train, sweep (worker processes import the declaring module), landscape and check,
the trainer's knobs, and a dashboard page."""

import contextlib
import io
import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

import toy_demo  # noqa: F401  (registers the demo "toy")
from lossviz import cli, demos, scenarios, settings as config
from lossviz.training import Trainer


def _cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_the_commands_take_a_registered_demo(tmp_path):
    status, _, err = _cli("train", "toy", "--set", "scale=0.5", "--at", "3:scale=0.05", "--steps", 5,
                          "--out", tmp_path / "run.csv")
    assert status == 0, err
    run = pd.read_csv(tmp_path / "run.csv")
    assert list(run["set:scale"]) == [0.5, 0.5, 0.05, 0.05, 0.05]
    assert {"loss:fit", "loss:size", "metric:mae", "grad_norm@fit", "cos:fit|size"} <= set(run.columns)
    assert run["loss"].iloc[0] == pytest.approx(run["loss:fit"].iloc[0] + run["loss:size"].iloc[0], rel=1e-5)
    status, _, err = _cli("sweep", "toy", "--grid", "scale=0.01,1", "--grid", "penalty=square,abs", "--steps", 5,
                          "--jobs", 1, "--out", tmp_path / "sweep.csv")  # in a worker process
    assert status == 0, err
    sweep = pd.read_csv(tmp_path / "sweep.csv")
    assert len(sweep) == 4 and set(sweep["status"]) <= {"ok", "stalled"} and "metric:mae" in sweep
    status, _, err = _cli("landscape", "toy", "--steps", 3, "--resolution", 3, "--out", tmp_path / "land.csv")
    assert status == 0 and len(pd.read_csv(tmp_path / "land.csv")) == 9, err
    status, out, err = _cli("check", "toy", "--quick", "--json")
    assert status in (0, 1) and json.loads(out), err
    assert _cli("train", "toy", "--at", "2:penalty=abs")[0] == 2  # it declared penalty graph-shaping


def test_its_knobs_scenario_and_command_come_from_its_declaration():
    assert "toy" in demos.names() and "toy" not in config.DEMO_NAMES  # registered, not built in
    with Trainer("toy", {"scale": 0.2}, seed=0) as t:
        list(t.run(2))
        t.set(scale=0.4)
        assert list(t.run(1))[0]["set:scale"] == 0.4
    scenario = scenarios.get("toy", "fits")
    with Trainer("toy", scenario.settings, seed=0) as t:
        assert scenario.holds(list(t.run(scenario.steps)))
    assert config.cli_command("toy", config.resolve("toy", {"scale": 0.3}), 10, 0) == \
        "python -m lossviz train toy --set scale=0.3 --steps 10 --seed 0"


TOY_PAGE = """
import toy_demo
from dashboard.page import demo_page
demo_page("toy")
"""


def test_a_page_draws_it_and_trains_it():
    at = AppTest.from_string(TOY_PAGE, default_timeout=120)
    at.run()
    assert not at.exception and at.title[0].value == "A toy family"
    assert any(w.key and w.key.startswith("toy:scale:box:") for w in at.sidebar.text_input)
    at.sidebar.number_input(key="toy:steps").set_value(20)
    next(b for b in at.button if b.label == "Train").click()
    at.run()
    job = at.session_state["jobs"]["toy"]["A"]
    job.wait(120)
    at.run()
    assert not at.exception and job.trainer.step == 20
    assert any("python -m lossviz train toy" in c.value for c in at.code)
