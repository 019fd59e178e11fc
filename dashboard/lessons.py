"""The Lessons page: a lesson's steps one at a time, a question for the room with its answer behind Reveal, the
step's run (its scenario) and only the one or two charts the step is about, large; Previous and Next.

The address holds ``lesson=ID&step=K`` (and ``present=1`` for the presenter view: large type, the sidebar
closed, the words beside the chart, so a 1280x720 projector shows both without scrolling), so a shared link
opens the same step, and its run reproduces bit for bit (seed 0, the scenario's settings and schedule).
"""

from __future__ import annotations

import urllib.parse

import streamlit as st

from lossviz import charts, demos, lessons, links, records, settings as config
from lossviz.jobs import TrainingJob

from . import sessions
from .common import PRESENT_FONT, legible, presenter_style
from .state import jobs

RUN = "lesson"  # this session's run of the step on screen: jobs(RUN)["A"]
INTERVAL = 0.5


def presenting() -> bool:
    """``present=1`` in the address (set by the toggle, or by a shared link)."""
    return st.query_params.get("present") == "1"


def lessons_page() -> None:
    sessions.watch()  # the step's run stops once this browser is gone, as a demo page's runs do
    lesson, index, problems = _from_address()
    present = presenting()
    if present:
        presenter_style()
    for problem in problems:
        st.warning(problem)
    with st.sidebar:
        st.selectbox("lesson", list(lessons.LESSONS), index=list(lessons.LESSONS).index(lesson.id),
                     format_func=lambda i: lessons.LESSONS[i].title, key="lessons:pick", on_change=_picked)
        st.toggle("presenter view", value=present, key="lessons:present", on_change=_present_toggled,
                  help="large type, the sidebar closed, the words beside the chart (present=1)")
    step = lesson.steps[index]
    st.title(f"{lesson.title}: {index + 1} / {len(lesson.steps)}")
    if present:  # a projector: the words on the left, the chart beside them, all above the fold at 1280x720
        _transport(lesson, index, step)
        words, chart = st.columns([2, 3])
        with words:
            st.markdown(f"**{step.title}.** {step.scenario.text}")
            _question(lesson, index, step, narrow=True)
        with chart:
            _live(lesson, index, step, present)
        return
    if index == 0:
        st.caption(lesson.intro)
    st.markdown(f"**{step.title}.** {step.scenario.text}")
    _question(lesson, index, step)
    _transport(lesson, index, step)
    _live(lesson, index, step, present)


def _from_address() -> tuple[lessons.Lesson, int, list[str]]:
    """The lesson and step (0-based) the address names; a malformed or unknown one falls back to the first, with
    one line saying so."""
    wanted = st.query_params.get("lesson", next(iter(lessons.LESSONS)))
    problems = []
    if wanted not in lessons.LESSONS:
        problems.append(f"No lesson {str(wanted)[:40]!r}: showing the first. Lessons: {', '.join(lessons.LESSONS)}.")
        wanted = next(iter(lessons.LESSONS))
    lesson = lessons.LESSONS[wanted]
    raw = st.query_params.get("step", "1")
    try:
        index = int(raw) - 1
        if not 0 <= index < len(lesson.steps):
            raise ValueError
    except ValueError:
        problems.append(f"step must be 1 to {len(lesson.steps)} for this lesson, got {str(raw)[:20]!r}: showing "
                        "step 1.")
        index = 0
    _address(lesson.id, index)  # the address always names the step on screen
    return lesson, index, problems


def _address(lesson_id: str, index: int) -> None:
    query = {"lesson": lesson_id, "step": str(index + 1)}
    if presenting():
        query["present"] = "1"
    if {k: st.query_params.get(k) for k in st.query_params} != query:
        st.query_params.from_dict(query)


def _go(lesson_id: str, index: int) -> None:
    """A button's callback: another step; the run of the step before is stopped (a room follows one run)."""
    for job in jobs(RUN).values():
        job.stop()
    jobs(RUN).clear()
    _address(lesson_id, index)


def _picked() -> None:
    _go(st.session_state["lessons:pick"], 0)


def _present_toggled() -> None:
    if st.session_state["lessons:present"]:
        st.query_params["present"] = "1"
    elif "present" in st.query_params:
        del st.query_params["present"]


def _question(lesson: lessons.Lesson, index: int, step: lessons.Step, narrow: bool = False) -> None:
    revealed = st.session_state.setdefault("lessons:revealed", set())
    where = (lesson.id, index)
    left, right = (st.container(), st.container()) if narrow else st.columns([6, 1], vertical_alignment="center")
    left.info(f"**Question for the room.** {step.question}")
    if right.button("Reveal", key=f"lessons:reveal:{lesson.id}:{index}", disabled=where in revealed):
        revealed.add(where)
    if where in revealed:
        st.success(f"**Answer.** {step.answer}")


def _transport(lesson: lessons.Lesson, index: int, step: lessons.Step) -> None:
    scenario = step.scenario
    c1, c2, c3, c4 = st.columns([1, 1, 1.3, 2.5])
    c1.button("Previous", key="lessons:previous", disabled=index == 0, on_click=_go, args=(lesson.id, index - 1))
    c2.button("Next", key="lessons:next", disabled=index == len(lesson.steps) - 1, on_click=_go,
              args=(lesson.id, index + 1))
    c3.button("Run this step", key="lessons:run", type="primary", on_click=_start, args=(lesson.id, index))
    c4.link_button("Open this run on its page", _page_address(scenario),
                   help="the demo's full page with this run's settings and schedule: press Train there")


def _page_address(scenario) -> str:
    """The demo page's address of the step's run (settings, seed 0, length, schedule)."""
    state = links.RunState(dict(config.resolve(scenario.demo, scenario.settings)), 0, scenario.steps,
                           schedule=list(scenario.schedule))
    query = urllib.parse.urlencode(links.to_query(scenario.demo, state), doseq=True)
    return f"./{demos.DEMOS[scenario.demo].page.address}?{query}"


def _start(lesson_id: str, index: int) -> None:
    """The button's callback: the step's run, as its scenario starts it (settings, seed 0, schedule)."""
    scenario = lessons.get(lesson_id).steps[index].scenario
    for job in jobs(RUN).values():
        job.stop()
    job = TrainingJob(scenario.demo, scenario.settings, scenario.steps, seed=0, start=False)
    for at, knob, value in scenario.schedule:
        job.trainer.at(at, **{knob: value})
    jobs(RUN).clear()
    jobs(RUN)["A"] = job
    st.session_state["lessons:run_of"] = (lesson_id, index)
    job.resume()


def _job(lesson: lessons.Lesson, index: int) -> TrainingJob | None:
    if st.session_state.get("lessons:run_of") != (lesson.id, index):
        return None
    return jobs(RUN).get("A")


def _live(lesson: lessons.Lesson, index: int, step: lessons.Step, present: bool) -> None:
    job = _job(lesson, index)
    if job is None:
        st.caption(f"Press **Run this step**: {step.scenario.steps} steps of `{step.scenario.demo}`. "
                   f"Checked by the tests: {step.scenario.claim}.")
        return

    @st.fragment(run_every=INTERVAL if job.running else None)
    def live():
        job.watched()
        recs = job.records
        st.caption(f"{job.trainer.step} / {step.scenario.steps} steps ({job.status})")
        if len(recs):
            _charts(step, records.window(recs), present)
        if job.error:
            st.error(f"the run ended with an error: {job.error}")
        if not job.running and job.trainer.step >= step.scenario.steps:
            holds = step.scenario.holds(list(recs))
            (st.success if holds else st.warning)(
                f"{'The claim holds' if holds else 'The claim does not hold'} on this run: {step.scenario.claim}.")
        if not job.running and st.session_state.get("lessons:drawn_final") is not job:
            st.session_state["lessons:drawn_final"] = job
            st.rerun()  # the run ended: one full redraw with the claim, and the fragment stops polling

    live()


def _charts(step: lessons.Step, window, present: bool) -> None:
    figures = charts.live_figures({"run": window})
    shown = [figures[name] for name in step.charts if name in figures]
    height, font = (440, PRESENT_FONT) if present else (400, 14)
    for fig in shown:
        legible(fig, height, font)
    if len(shown) == 2 and not present:
        left, right = st.columns(2)
        left.plotly_chart(shown[0], key="lessons:chart_0")
        right.plotly_chart(shown[1], key="lessons:chart_1")
    else:
        for i, fig in enumerate(shown):
            st.plotly_chart(fig, key=f"lessons:chart_{i}")
