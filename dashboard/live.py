"""The live section: Train / Play / Pause / Step / Reset / Stop, status, the charts redrawn while runs train
(a bounded window of each run's records, knob changes marked), the NaN panel, and each run's table, CSV and
reproducing command."""

from __future__ import annotations

import functools
from typing import Any, Callable

import streamlit as st

from lossviz import charts, curvature, html_report, links, records, training
from lossviz.jobs import TrainingJob
from lossviz.knobs import FULL_BATCH
from lossviz import settings as config

from . import anatomy, controls, landscape, pacing
from .common import fmt, legible, smoothing_slider
from .state import Meta, jobs, key, page

TABLE_ROWS = 200


def labels(demo: str) -> dict[str, str]:
    meta = page(demo).meta
    return meta.labels if meta is not None else {}


def start(demo: str, runs: dict[str, dict[str, Any]], steps: int | None, seed: int, stop_nan: bool,
          compare_key: str | None) -> dict[str, TrainingJob]:
    """Replace this session's jobs of the demo by new, not yet started ones (A, and B when compared), each
    with the schedule loaded from a scenario or an address."""
    for job in jobs(demo).values():
        job.stop()
    here = page(demo)
    new = {}
    for name, settings in runs.items():
        job = TrainingJob(demo, settings, steps, seed=seed, stop_on_nonfinite=stop_nan, start=False)
        for step, knob, value in here.schedule.get(name, []):
            try:
                job.trainer.at(step, **{knob: value})
            except config.SettingError as e:
                st.warning(f"run {name}: the scheduled change {step}:{knob}={value} is skipped: {e}")
        new[name] = job
    st.session_state.setdefault("jobs", {})[demo] = new
    here.meta = Meta(runs, seed, compare_key, {name: controls.label(demo, name, s, runs["A"] if name == "B" else None)
                                              for name, s in runs.items()})
    here.landscape = here.shown = None
    return new


def _mismatch(demo: str, runs: dict[str, dict[str, Any]], seed: int) -> list[str]:
    """Changes on the left that shape the graph or the data, so they cannot reach the runs in progress."""
    found = []
    current = jobs(demo)
    if current and set(runs) != set(current):
        found.append("run B " + ("added" if "B" in runs else "removed"))
    for name, job in current.items():
        want = runs.get(name)
        if want is None:
            continue
        if job.trainer.seed != seed:
            found.append(f"seed {job.trainer.seed} -> {seed}")
        for p in config.params(demo, job.trainer.settings):
            old, new = job.trainer.settings.get(p.key), want.get(p.key)
            if p.effect != "live" and old != new:
                found.append(f"{name}: {p.key} {config.format_value(old)} -> {config.format_value(new)}")
    return list(dict.fromkeys(found))


def transport(demo: str, runs: dict[str, dict[str, Any]], choice: dict[str, Any], errors: list[str]) -> None:
    """The buttons. A knob moved on the left reaches playing or paused runs by itself (see ``controls``)."""
    current = jobs(demo)
    running = any(job.running for job in current.values())
    can_go = any(job.can_continue for job in current.values())
    buttons = st.columns(6)
    pressed = {
        "train": buttons[0].button("Train", type="primary", disabled=bool(errors), key=key(demo, "train"),
                                   help=f"new weights from the seed, then {choice['steps']} steps"),
        "play": buttons[1].button("Play", disabled=bool(errors) or running, key=key(demo, "play"),
                                  help="train until Pause; knobs moved meanwhile act from the next chunk"),
        "pause": buttons[2].button("Pause", disabled=not running, key=key(demo, "pause")),
        "step": buttons[3].button("Step", disabled=bool(errors) or running, key=key(demo, "step"),
                                  help=f"train one chunk ({training.DEFAULT_CHUNK} steps), then pause"),
        "reset": buttons[4].button("Reset", disabled=not current, key=key(demo, "reset"),
                                   help="stop, clear the history; the next run starts from new weights"),
        "stop": buttons[5].button("Stop", disabled=not running, key=key(demo, "stop")),
    }
    action = next((name for name, hit in pressed.items() if hit), None)
    if action is None:
        return
    compare_key = choice["other"][0] if choice["other"] else None
    fresh = not current or not can_go
    if action == "train":
        for job in start(demo, runs, choice["steps"], choice["seed"], choice["stop_nan"], compare_key).values():
            job.resume()
    elif action == "play":
        for job in (start(demo, runs, None, choice["seed"], choice["stop_nan"], compare_key) if fresh
                    else current).values():
            job.play()
    elif action == "step":
        for job in (start(demo, runs, None, choice["seed"], choice["stop_nan"], compare_key) if fresh
                    else current).values():
            job.step()
    elif action == "pause":
        for job in current.values():
            job.pause()
    elif action == "stop":
        for job in current.values():
            job.stop()
    elif action == "reset":
        for job in current.values():
            job.stop()
        st.session_state.setdefault("jobs", {})[demo] = {}
        here = page(demo)
        here.meta = here.landscape = here.shown = None
    st.rerun()


def section(demo: str, runs: dict[str, dict[str, Any]], choice: dict[str, Any], errors: list[str],
            extra_view: Callable[[Any], None] | None, present: bool = False) -> None:
    """The transport, the runs' status and charts, and after a run its views and tables (``present``: the
    presenter view, the transport and the loss chart alone)."""
    _schedule_note(demo)
    transport(demo, runs, choice, errors)
    mismatch = _mismatch(demo, runs, choice["seed"]) if not errors else []
    if mismatch:
        st.warning("Changed on the left: " + "; ".join(mismatch) + ". These shape the compiled graph or the data, "
                   "so they cannot apply to the run in progress: press **Reset**, then Play or Train, to start "
                   "over with them.")
    current = jobs(demo)
    if not current:
        st.info("Set the loss and the training on the left, then press Train (a fixed number of steps) or Play "
                "(until Pause; move the sliders while it trains).")
        return
    running = any(job.running for job in current.values())
    _live(demo, running, present)
    if not running and not present:
        shown = {labels(demo).get(name, name): job for name, job in current.items()}
        if extra_view is not None and any(len(job.records) for job in current.values()):
            extra_view(shown)
        anatomy.section(demo, shown)
        landscape.section(demo, shown, page(demo).meta)
        _tables(demo)


def _schedule_note(demo: str) -> None:
    here = page(demo)
    if not any(here.schedule.values()):
        return
    words = "; ".join(f"run {name}: " + ", ".join(f"step {s}: {k} -> {fmt(v)}" for s, k, v in changes)
                      for name, changes in here.schedule.items() if changes)
    left, right = st.columns([5, 1])
    left.caption(f"Scheduled knob changes for the next Train or Play: {words}")
    if right.button("Clear schedule", key=key(demo, "clear_schedule")):
        here.schedule = {}
        st.rerun()


def _live(demo: str, running: bool, present: bool = False) -> None:
    pace = page(demo).pace
    pace.asked = None  # a full run of the page declares the fragment again: the browser's timer restarts

    @st.fragment(run_every=pace.interval if running else None)
    def live():
        current = jobs(demo)
        draw = pacing.start(pace, running)
        names = labels(demo)
        shown = page(demo).shown
        if shown is not None:
            st.info(f"**Scenario: {shown.title}.** {shown.text}")
        for name, job in current.items():
            job.watched()  # a Play run nobody draws pauses itself
            _status(names.get(name, name), job)
        if not present:
            _nan_panel(demo, current)
        if draw and present:  # the loss chart alone, large (its red crosses mark the NaNs)
            st.plotly_chart(legible(charts.loss_chart(_windows(current, names),
                                                      st.session_state.get(key(demo, "log_y"), False)), 520),
                            key="loss_chart")
        elif draw:
            _charts(current, names, st.session_state.get(key(demo, "log_y"), False),
                    st.session_state.get(key(demo, "smoothing"), 0.0))
        pacing.done(pace, running)
        if running and not any(job.running for job in current.values()):
            st.rerun()  # the runs paused or ended: redraw the whole page once, with the final views

    live()
    left, right = st.columns([1, 2])
    left.checkbox("log scale for the loss", key=key(demo, "log_y"))
    with right:
        smoothing_slider(key(demo, "smoothing"))


def _charts(current: dict[str, TrainingJob], names: dict[str, str], log_y: bool, smoothing: float = 0.0) -> None:
    """The live charts of the runs, from a bounded window of each run's records."""
    data = _windows(current, names)
    every = next((job.trainer.term_every for job in current.values() if job.trainer.term_every), 0)
    noisy = [names.get(name, name) for name, job in current.items()
             if job.trainer.sharpness_every and job.trainer.settings["batch_size"] != FULL_BATCH]
    note = (f"{', '.join(noisy)}: the sharpness is measured on each step's mini-batch, so it is noisier than the "
            "full-batch sharpness the edge of stability is about (batch_size=full measures the whole set)."
            if noisy else None)
    draw(charts.live_figures(data, every, log_y, smoothing=smoothing), len(data), every, note,
         _metrics_note(current.values()))


def _metrics_note(jobs) -> str | None:
    """Under the metrics chart: how often a run measures them on its held-out sample (the setting ``metrics``)."""
    held_out = {(j.trainer.metrics_every, len(j.trainer.eval_set)) for j in jobs if j.trainer.demo.metrics_on_eval}
    if not held_out:
        return None
    every, rows = min(held_out)
    when = "at every step" if every == 1 else f"at step 1 and every {every} steps"
    return (f"Metrics measured on {rows:,} held-out rows {when} (the setting metrics), carried in between: "
            "every-10 measures more often, and trains slower.")


def _windows(current: dict[str, TrainingJob], names: dict[str, str]) -> dict[str, Any]:
    """A bounded window of each run's records, by the run's label: what the live charts draw."""
    return {names.get(name, name): records.window(job.records) for name, job in current.items()}


def draw(figures: dict[str, Any], runs: int, every: int, curvature_note: str | None = None,
         metrics_note: str | None = None) -> None:
    """The charts of ``charts.live_figures`` in their places: the loss, the curvature, the gradient norm and the
    metrics, a heatmap per run, the gradient anatomy (the demo pages' live section, the Runs page)."""
    st.plotly_chart(figures["loss_chart"], key="loss_chart")
    if "curvature_chart" in figures:
        st.plotly_chart(figures["curvature_chart"], key="curvature_chart")
        if curvature_note:
            st.caption(curvature_note)
    c1, c2 = st.columns(2)
    c1.plotly_chart(figures["grad_chart"], key="grad_chart")
    c2.plotly_chart(figures["metrics_chart"], key="metrics_chart")
    if metrics_note:
        c2.caption(metrics_note)
    for i in range(runs):
        st.plotly_chart(figures[f"heatmap_{i}"], key=f"heatmap_{i}")
    anatomy.live(figures, every)


def _status(name: str, job: TrainingJob) -> None:
    step, status = job.trainer.step, job.status
    ahead = job.queue_position
    if ahead is not None:
        status = f"queued, {ahead} ahead of you"
    words = f"{name}: {status}, step {step:,}"
    edge = None
    if job.trainer.sharpness_every and len(job.records):
        edge = curvature.status(records.window(job.records), job.trainer.sharpness_every)
    if job.records.thinned:
        words += f" (older steps thinned to keep memory bounded: {len(job.records):,} records kept)"
    if job.steps is not None:
        st.progress(min(step / max(job.steps, 1), 1.0), text=f"{name}: {step} / {job.steps} steps"
                    + ("" if status in ("running", "finished") else f" ({status})")
                    + (f"; curvature: {edge}" if edge else ""))
    else:
        st.markdown(words + (f"; curvature: {edge}" if edge else ""))
    if job.error:
        st.error(f"{name} ended with an error: {job.error}")


def _nan_panel(demo: str, current: dict[str, TrainingJob]) -> None:
    names = labels(demo)
    for name, job in current.items():
        recs = job.records
        where = records.describe_first_nonfinite(recs)
        if where is None:
            continue
        bad = int((records.column(recs, "nonfinite") > 0).sum())
        demo_of = job.trainer.demo
        cause = records.likely_cause(job.trainer.initial_settings, recs, demo_of.cause)
        inside = job.trainer.diagnosis() if demo_of.diagnose is not None else None
        words = demo_of.page.diagnosis if demo_of.page is not None else "Where it was born"
        st.error(f"**{names.get(name, name)}** - first NaN/inf at {where}; {bad} of {len(recs)} steps non-finite.  \n"
                 + (f"{words}: **{inside}**.  \n" if inside else "") + f"Most likely cause: {cause}")


def run_state(demo: str, runs: dict[str, dict[str, Any]], choice: dict[str, Any]) -> links.RunState | None:
    """What reproduces the page: the runs shown (settings at step 1 and their knob changes), or, before any
    run, the settings on the left with the loaded schedule."""
    current = jobs(demo)
    if "A" in current and len(current["A"].records):
        a = current["A"]
        state = links.RunState(_initial(a), a.trainer.seed, a.steps or a.trainer.step,
                               schedule=_changes(a))
        b = current.get("B")
        meta = page(demo).meta
        compared = meta.compare_key if meta is not None else None
        if b is not None and compared is not None and len(b.records):
            state.compare = (compared, config.typed(demo, _initial(b), compared))
            state.schedule_b = [c for c in _changes(b) if c[1] == compared]
        return state
    if "A" not in runs:
        return None
    schedule = page(demo).schedule
    state = links.RunState(runs["A"], choice["seed"], max(choice["steps"], 1), schedule=list(schedule.get("A", [])))
    if choice["other"] and "B" in runs:
        state.compare = (choice["other"][0], runs["B"][choice["other"][0]])
    return state


def _initial(job: TrainingJob) -> dict[str, Any]:
    return config.Settings(job.trainer.demo.name, {**job.trainer.initial_settings, **records.knobs_of(job.records[0])})


def _changes(job: TrainingJob) -> list[tuple[int, str, Any]]:
    return [(step, key, new) for step, key, _, new in records.knob_changes(job.records)]


def _html(recs, name: str, command: str, title: str) -> str:
    """A run's standalone HTML report, built when its button is pressed (a callable: no 5 MB on every rerun)."""
    return html_report.of_csv(recs.csv(), name, command, f"lossviz: {title}").html()


def _tables(demo: str) -> None:
    st.subheader("Runs")
    names = labels(demo)
    for name, job in jobs(demo).items():
        recs = job.records
        if not len(recs):
            continue
        shown = names.get(name, name)
        st.markdown(f"**{shown}** - {job.trainer.step} steps, final loss {fmt(recs[-1]['loss'])}")
        command = config.cli_command(demo, _initial(job), job.trainer.step, job.trainer.seed, changes=_changes(job))
        st.code(command, language="bash")
        file = f"lossviz-{demo}-{name}"
        left, right, _ = st.columns([1, 1, 3])
        left.download_button(f"Download {name} as CSV", recs.csv(), file_name=f"{file}.csv", mime="text/csv",
                             key=key(demo, f"download:{name}"))
        right.download_button("Download as HTML", functools.partial(_html, recs, f"{file}.csv", command, shown),
                              file_name=f"{file}.html", mime="text/html", key=key(demo, f"download_html:{name}"),
                              help="one standalone file with this run's charts (opens offline, no lossviz needed)")
        st.dataframe(charts.display(recs[-TABLE_ROWS:]), height=240, key=key(demo, f"table:{name}"))
