"""The Check-up section: the loss check-up of the sidebar's settings, its findings as rows coloured by severity,
each with "load this change" and "show me"."""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from lossviz import checkup, links

from . import controls, scenarios
from .state import Shown, key as widget_key, page

BOXES = {"error": st.error, "warning": st.warning, "info": st.info}


def section(demo: str, settings: dict[str, Any] | None, seed: int, steps: int) -> None:
    results = page(demo).checkups
    key = (tuple(sorted((settings or {}).items())), seed)
    pressed = any(st.session_state.get(widget_key(demo, name)) for name in ("checkup", "checkup_quick"))
    # open while it works and once it has findings for these settings (a rerun redraws it as it was)
    with st.expander("Check-up: what will go wrong with this loss, and what to change",
                     expanded=bool(pressed) or key in results):
        if settings is None:
            st.caption("Fix the settings above to check the loss.")
            return
        st.caption("A fixed battery of probes: the loss and its gradient at the edges of the outputs, dead "
                   "gradients, unbounded losses, exploding gradients; then a short run, one batch trained to "
                   "overfit, and a scan over lr and the main knob (the command line: `python -m lossviz check`). "
                   "The quick check-up runs the probes without training.")
        full, quick = st.columns([1, 4])
        run_full = full.button("Check-up", key=widget_key(demo, "checkup"), type="primary")
        run_quick = quick.button("Quick check-up", key=widget_key(demo, "checkup_quick"))
        if run_full or run_quick:
            bar = st.progress(0.0, "starting")
            try:
                results[key] = checkup.check(demo, settings, seed, quick=run_quick,
                                             progress=lambda f, words: bar.progress(min(1.0, f), words))
            except Exception as e:  # noqa: BLE001  (a loss that breaks a probe: said, the page goes on)
                st.error(f"The check-up could not finish: {type(e).__name__}: {e}")
            bar.empty()
        found = results.get(key)
        if found is None:
            return
        for i, finding in enumerate(found):
            _row(demo, settings, seed, steps, finding, i)


def _row(demo: str, settings: dict[str, Any], seed: int, steps: int, finding: checkup.Finding, i: int) -> None:
    box = BOXES[finding.severity]
    box(f"**{finding.severity} · `{finding.id}`** {finding.message}"
        + (f"\n\nChange: {finding.suggestion}" if finding.suggestion else "")
        + (f" (`{' '.join('--set ' + a for a in finding.set_args)}`)" if finding.set else ""))
    left, right, evidence = st.columns([1, 1, 4])
    if finding.set:  # the settings go into the sidebar in the button's callback, before it is drawn
        left.button("load this change", key=widget_key(demo, f"checkup_load:{i}"), on_click=controls.load,
                    args=(demo, links.RunState({**settings, **finding.set}, seed, steps)))
    if finding.severity != "info":
        shown = finding.show or {"settings": {}, "steps": steps}
        right.button("show me", key=widget_key(demo, f"checkup_show:{i}"), on_click=scenarios.start,
                     args=(demo, links.RunState({**settings, **shown["settings"]}, seed, int(shown["steps"])),
                           Shown(f"check-up, {finding.id}", finding.message)))
    if finding.evidence:
        with evidence.popover("evidence"):
            st.code(json.dumps(finding.as_json()["evidence"], indent=1), language="json")
