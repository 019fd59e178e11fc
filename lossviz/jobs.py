"""A run in a background thread, with the transport a page needs: play, pause, step, knobs, stop.

A job waits in the process's scheduler (``lossviz.scheduler``) for one of its K slots, trains chunk after chunk,
and gives the slot back between chunks when another run waits, so many sessions share the cores fairly. There is
nothing else to give back: every run of a structure calls the same compiled step with its own state.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Mapping

from . import records, shutdown
from .scheduler import SCHEDULER, Scheduler
from .training import DEFAULT_CHUNK, Trainer

SLICE_SECONDS = 0.25  # a run holds its slot this long when the runs waiting for one have all trained before
# A Play run (no step budget) that no page has drawn for this long pauses itself: a closed or forgotten tab
# leaves no endless run behind. LOSSVIZ_UNWATCHED_SECONDS shortens it (the tests do).
UNWATCHED_SECONDS = float(os.environ.get("LOSSVIZ_UNWATCHED_SECONDS", "60"))
UNWATCHED = "nobody is watching"
PREPARING = "preparing the trainer"
# a run's first call trains one step, so its first record comes as soon as the step is compiled, even when a room
# of newcomers waits for the same compile (benchmarks/classroom.py); the records are the same in any chunking
FIRST_CHUNK = 1


class TrainingJob:
    """A :class:`~lossviz.training.Trainer` in a background thread, so a UI can redraw, pause, step and turn knobs
    while it trains.

    ``steps`` is the run's length (``None``: until paused or stopped). ``records`` grows as chunks complete (the
    trainer's own log). ``pause()`` ends the current stretch after its chunk, ``resume()`` goes on towards
    ``steps``, ``play()`` goes on with no end, ``step(n)`` trains n more steps and pauses again, ``set(**knobs)``
    changes numbers from the next chunk on, ``stop()`` ends the run. The state carries over from one stretch to
    the next, so a paused and resumed run equals an uninterrupted one, bit for bit. ``error`` holds the message
    of an exception that ended it.

    A page calls ``watched()`` whenever it draws the run. A stretch with no step budget (Play) that nobody has
    watched for ``unwatched_seconds`` pauses itself after its chunk; its status says so, and ``play()`` goes on.
    """

    def __init__(self, demo: str, settings: Mapping[str, Any] | None, steps: int | None, seed: int = 0,
                 stop_on_nonfinite: bool = False, chunk: int = DEFAULT_CHUNK, start: bool = True,
                 scheduler: Scheduler | None = None):
        self.trainer = Trainer(demo, settings, seed, stop_on_nonfinite)
        self.scheduler = scheduler or SCHEDULER
        self.steps = None if steps is None else int(steps)
        self.chunk = chunk
        self.error: str | None = None
        self.paused = not start
        self.pause_reason: str | None = None  # UNWATCHED when it paused itself
        self.unwatched_seconds = UNWATCHED_SECONDS
        self.clock = time.monotonic  # what "nobody has watched for a while" is measured with (tests give their own)
        self._watched = self.clock()
        self._stop = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._control = threading.Lock()  # one control call at a time (pages rerun from several threads)
        shutdown.register(self)
        if start:
            self._launch(self.steps)

    def _launch(self, until: int | None, pause_after: bool = False) -> None:
        """Train in a new thread up to step ``until`` (None: no end); the previous stretch has ended."""
        self._stop.clear()
        self.paused = False
        self.pause_reason = None
        self._watched = self.clock()
        left = None if until is None else until - self.trainer.step
        if left is not None and left < 1:
            self.paused = pause_after
            return
        self._thread = threading.Thread(target=self._work, args=(left, pause_after),
                                        name=f"lossviz-{self.trainer.demo.name}", daemon=True)
        self._thread.start()

    def _work(self, left: int | None, pause_after: bool) -> None:
        """Train in stretches: wait for a slot, train chunk after chunk, and give the slot back between chunks
        when another run waits, or when done (or, with no step budget, when nobody watches)."""
        playing = left is None

        def forgotten() -> bool:  # a Play that no page draws any more
            return playing and self.unwatched

        try:
            while self.can_continue and not self._stop.is_set() and (left is None or left > 0):
                if forgotten() or not self.scheduler.acquire(self, lambda: self._stop.is_set() or forgotten()):
                    if forgotten() and not self._stop.is_set():
                        self.pause_reason = UNWATCHED
                    break
                held = time.perf_counter()
                try:
                    while True:
                        size = FIRST_CHUNK if self.trainer.step == 0 else self.chunk
                        done = self.trainer.advance(size if left is None else min(size, left), self.chunk)
                        if left is not None:
                            left -= done
                        if (done == 0 or self._stop.is_set() or not self.can_continue
                                or (left is not None and left <= 0) or self._should_yield(held) or forgotten()):
                            break
                finally:
                    self.scheduler.release(self)
        except Exception as e:  # reported to the page, never raised into it
            self.error = f"{type(e).__name__}: {e}"
        if (pause_after or self.pause_reason) and not self._stop.is_set():
            self.paused = True

    def _should_yield(self, held: float) -> bool:
        """Give the slot back after this chunk: at once when a run that has not trained yet waits (its first
        record comes quickly), after a slice of SLICE_SECONDS when only runs that have trained wait."""
        if not self.scheduler.waiting:
            return False
        return self.scheduler.newcomer_waiting or time.perf_counter() - held >= SLICE_SECONDS

    def _halt(self) -> None:
        self._stop.set()
        self.scheduler.wake()  # out of the line at once, if waiting
        if self._thread is not None:
            self._thread.join()

    # -- controls -------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Pause after the current chunk (blocks until it is done, a chunk at most)."""
        with self._control:
            self._halt()
            self.paused = not self.finished

    def resume(self) -> None:
        """Go on towards ``steps`` (with no end for a played run)."""
        with self._control:
            if not self.running and self.can_continue:
                self._stopped = False
                self._launch(self.steps)

    def play(self) -> None:
        """Go on with no step budget, until paused or stopped."""
        with self._control:
            self.steps = None
        self.resume()

    def step(self, n: int | None = None) -> None:
        """Train ``n`` more steps (default: one chunk), then pause."""
        with self._control:
            self._halt()
            if self.can_continue:
                target = self.trainer.step + (n or self.chunk)
                if self.steps is not None:
                    self.steps = max(self.steps, target)
                self._stopped = False
                self._launch(target, pause_after=True)

    def stop(self) -> None:
        """End the run after the current chunk (does not wait)."""
        self._stopped = True
        self.paused = False
        self._stop.set()
        self.scheduler.wake()

    def set(self, **knobs) -> None:
        """Knob changes from the next chunk on; see :meth:`Trainer.set`."""
        self.trainer.set(**knobs)

    def watched(self) -> None:
        """A page has just drawn this run (a Play run nobody draws pauses itself, see ``unwatched_seconds``)."""
        self._watched = self.clock()

    @property
    def unwatched(self) -> bool:
        return self.clock() - self._watched > self.unwatched_seconds

    # -- state ----------------------------------------------------------------------------------------

    @property
    def records(self) -> records.RecordLog:
        return self.trainer.records

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def can_continue(self) -> bool:
        return not self.trainer.stopped and self.error is None

    @property
    def finished(self) -> bool:
        """Ended for good: its steps are done, a non-finite value stopped it, or an error."""
        if self.running:
            return False
        done = self.steps is not None and self.trainer.step >= self.steps
        return not self.can_continue or (done and not self.paused)

    @property
    def queue_position(self) -> int | None:
        """How many runs are ahead of this one while it waits for a slot; None when it is not waiting."""
        return self.scheduler.position(self)

    @property
    def status(self) -> str:
        """``queued``, ``preparing the trainer`` (the first run of a structure waits for its step to compile),
        ``running``, ``paused`` (``paused: nobody is watching`` when it paused itself), ``stopped`` (by
        ``stop()``) or ``finished``."""
        if self.running:
            if self.queue_position is not None:
                return "queued"
            return "running" if self.trainer.ready or self.trainer.step else PREPARING
        if self.paused and self.can_continue:
            return f"paused: {self.pause_reason}" if self.pause_reason else "paused"
        if self._stopped and not self.finished:
            return "stopped"
        return "finished"

    @property
    def stopped_early(self) -> bool:
        return self.status == "stopped"

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current stretch ends; True when it has ended."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return not self.running

