"""The Lessons page under AppTest: every step of every lesson walked with Next and Previous, the address kept, the
Reveal button, each step's run and its claim, a step opened from its address reproducing its run."""

import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from lossviz import lessons, scenarios
from lossviz.training import Trainer

PAGE = str(ROOT / "pages/8_Lessons.py")


def _app(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception
    return at


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _address(at: AppTest) -> dict:
    return {k: at.query_params[k][0] if isinstance(at.query_params[k], list) else at.query_params[k]
            for k in at.query_params}


def _finish(at: AppTest) -> None:
    deadline = time.time() + 120
    job = at.session_state["jobs"]["lesson"]["A"]
    while job.running:
        assert time.time() < deadline, "the step's run did not finish"
        time.sleep(0.2)
    at.run()
    at.run()


def test_every_lesson_has_four_to_eight_steps_and_every_run_is_a_scenario_of_its_demo():
    assert set(lessons.LESSONS) == {"sparse-penalty", "policy-value", "two-branch", "max-mse", "curvature"}
    for lesson in lessons.LESSONS.values():
        assert 4 <= len(lesson.steps) <= 8
        for step in lesson.steps:
            scenario = step.scenario
            assert scenario in scenarios.for_demo(scenario.demo) or scenario in lessons.NEW_SCENARIOS
            assert step.question.endswith("?") and step.answer and set(step.charts) <= set(lessons.CHARTS)
            assert 2 <= scenario.text.count(". ") + 1 <= 5  # two to four sentences


@pytest.mark.parametrize("scenario", lessons.NEW_SCENARIOS, ids=lambda s: f"{s.demo}:{s.name}")
def test_the_lessons_own_runs_bear_out_their_claims(scenario):
    # the other steps are the demos' scenarios: test_live_page checks their claims on their pages
    with Trainer(scenario.demo, scenario.settings, seed=0) as t:
        for step, key, value in scenario.schedule:
            t.at(step, **{key: value})
        assert scenario.holds(list(t.run(scenario.steps))), scenario.claim


@pytest.mark.parametrize("lesson_id", list(lessons.LESSONS))
def test_walk_a_lesson_with_next_and_previous_keeping_the_address(lesson_id):
    lesson = lessons.LESSONS[lesson_id]
    at = _app({"lesson": lesson_id})
    for index, step in enumerate(lesson.steps):
        assert _address(at) == {"lesson": lesson_id, "step": str(index + 1)}
        assert at.title[0].value.endswith(f"{index + 1} / {len(lesson.steps)}")
        assert step.question in at.info[0].value and not at.success  # the answer is hidden
        _button(at, "Reveal").click().run()
        assert step.answer in at.success[0].value
        assert _button(at, "Previous").disabled == (index == 0)
        if index < len(lesson.steps) - 1:
            _button(at, "Next").click().run()
            assert not at.exception
    assert _button(at, "Next").disabled
    _button(at, "Previous").click().run()
    assert _address(at) == {"lesson": lesson_id, "step": str(len(lesson.steps) - 1)}


def test_a_step_opened_from_its_address_runs_its_scenario_bit_for_bit_and_says_the_claim_holds():
    step = lessons.LESSONS["two-branch"].steps[0]
    at = _app({"lesson": "two-branch", "step": "1", "present": "1"})
    _button(at, "Run this step").click().run()
    _finish(at)
    assert not at.exception and len(at.get("plotly_chart")) == len(step.charts)
    assert any("The claim holds on this run" in s.value for s in at.success)
    job = at.session_state["jobs"]["lesson"]["A"]
    with Trainer(step.scenario.demo, step.scenario.settings, seed=0) as t:
        again = list(t.run(step.scenario.steps))
    assert np.array_equal([r["loss"] for r in job.records], [r["loss"] for r in again])
    assert _address(at) == {"lesson": "two-branch", "step": "1", "present": "1"}


def test_a_malformed_address_shows_a_warning_and_the_first_step():
    at = _app({"lesson": "<script>", "step": "x"})
    assert [w.value.split(":")[0] for w in at.warning] == ["No lesson '<script>'", "step must be 1 to 5 for this lesson, got 'x'"]
    assert _address(at) == {"lesson": "sparse-penalty", "step": "1"}
    at = _app({"lesson": "max-mse", "step": "99"})
    assert "step must be 1 to 4" in at.warning[0].value and _address(at)["step"] == "1"
