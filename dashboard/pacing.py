"""How often the live section redraws: at most twice a second, and never faster than the browser takes the
redraws in, so a slow browser can never fill Streamlit's send queue (which drops the session without a word).

Before each redraw the live section measures what is behind: the messages of earlier redraws still waiting in
the session's send queue, the time since the browser last asked for a redraw, and how long the last redraw
took to build. It then slows down (0.5 s, 1 s, 2 s, 5 s) rather than queue, and comes back up once nothing has
been behind for a while. When even 5 s leaves a fifth of Streamlit's queue waiting, the redraw sends the status
lines only, until the browser has caught up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import streamlit as st

LADDER = (0.5, 1.0, 2.0, 5.0)  # seconds between redraws
SEND_QUEUE_CAP = 500  # Streamlit 1.67: a client whose send queue holds this many messages is dropped
TOO_MUCH = SEND_QUEUE_CAP // 5  # this many waiting: draw no charts until the browser catches up
BEHIND = 10  # more than this many waiting at the next redraw: the browser has not taken the last one in
CALM = 12  # redraws in a row with nothing behind before the interval steps down
SHARE = 0.2  # building a redraw may take at most this share of the interval (training threads need the GIL)


@dataclass
class Pace:
    """One page's redraw pace (kept in the session): the interval, and what was measured at the last redraw."""

    level: int = 0
    calm: int = 0
    asked: float | None = None  # when the last redraw started (the browser's request arrived)
    build: float = 0.0  # seconds the last redraw took to build
    behind: int = 0  # messages waiting in the send queue when the last redraw started
    drew: bool = True  # whether the last redraw drew its charts
    _started: float = 0.0

    @property
    def interval(self) -> float:
        return LADDER[self.level]

    def step(self, behind: int, now: float) -> bool:
        """Move the interval from what is behind at the start of a redraw; return whether to draw the charts."""
        late = self.asked is not None and now - self.asked > 2 * self.interval  # the browser asked late
        self.asked, self.behind = now, behind
        slow = self.build > SHARE * self.interval
        if behind >= TOO_MUCH or behind > BEHIND or late or slow:
            self.level = len(LADDER) - 1 if behind >= TOO_MUCH else min(self.level + 1, len(LADDER) - 1)
            self.calm = 0
        else:
            self.calm += 1
            if self.calm >= CALM and self.level > 0 and self.build <= SHARE * LADDER[self.level - 1]:
                self.level, self.calm = self.level - 1, 0
        self.drew = behind < TOO_MUCH
        return self.drew

    def words(self) -> str:
        text = f"redrawn every {self.interval:g} s"
        if self.behind:
            text += f", {self.behind} messages waiting to be sent"
        if not self.drew:
            text += ": charts paused until the browser catches up"
        return text


def start(pace: Pace, live: bool) -> bool:
    """At the start of a redraw: measure, move the interval (telling the browser when it changed, if ``live``);
    return whether to draw the charts."""
    before = pace.interval
    draw = pace.step(waiting(), time.monotonic())
    pace._started = time.perf_counter()
    if live and pace.interval != before:
        _tell_browser(pace.interval)
    return draw


def done(pace: Pace, live: bool) -> None:
    """At the end of a redraw: its build time; while runs train, the pace in a caption."""
    pace.build = time.perf_counter() - pace._started
    if live:
        st.caption(pace.words())


def waiting() -> int:
    """Messages of this session waiting to be sent to its browser (0 outside a server, e.g. under AppTest)."""
    try:
        from streamlit.runtime import Runtime
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        if ctx is None or not Runtime.exists():
            return 0
        client = Runtime.instance().get_client(ctx.session_id)
        queue = getattr(client, "_send_queue", None)  # the Starlette client's asyncio.Queue (Streamlit 1.67)
        return int(queue.qsize()) if queue is not None else 0
    except Exception:  # an internal that moved: pace by the other measures
        return 0


def _tell_browser(interval: float) -> None:
    """Change the browser's timer for this fragment: the same AutoRerun message ``st.fragment(run_every=...)``
    sends; the browser replaces the timer of a fragment that has one."""
    try:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from streamlit.runtime.scriptrunner import get_script_run_ctx
        from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState

        ctx, fragment = get_script_run_ctx(), ThreadState.get().fragment_id
        if ctx is None or not fragment:
            return
        msg = ForwardMsg()
        msg.auto_rerun.interval = interval
        msg.auto_rerun.fragment_id = fragment
        ctx.enqueue(msg)
    except Exception:  # the next full rerun declares the fragment with the new interval anyway
        return
