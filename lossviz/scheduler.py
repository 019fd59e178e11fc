"""Run scheduling for one process serving many people: at most ``slots`` runs train at once (default: the
number of cores), the others wait in a FIFO queue and can see how many runs are ahead of them.

A training job holds a slot for a stretch of chunks and gives it back between chunks when someone is waiting:
after one chunk when a newcomer (an owner that never held a slot) waits, after a short slice otherwise, so one
endless Play cannot starve the room; a waiting job that is stopped leaves the queue.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Callable, Hashable

# a waiting owner checks whether it was cancelled this often; a stop wakes it at once (``wake``). Rare checks: at
# 0.05 s, a classroom's thirty waiting runs woke 600 times a second, each taking the GIL from the tracing thread
RECHECK_SECONDS = 0.25


class Scheduler:
    def __init__(self, slots: int | None = None):
        self.slots = max(1, slots or os.cpu_count() or 1)
        self._cv = threading.Condition()
        self._queue: list[Hashable] = []
        self._active: set[Hashable] = set()
        self._served: "weakref.WeakSet" = weakref.WeakSet()  # owners that have held a slot
        self._served_ids: set[int] = set()  # the same, for owners without weak references (plain objects)
        self.most_active = 0  # the most runs that ever held a slot at once (for tests and benchmarks)

    def acquire(self, owner: Hashable, cancelled: Callable[[], bool] = lambda: False) -> bool:
        """Wait in line for a slot; False (and out of the line) once ``cancelled()`` turns true."""
        with self._cv:
            self._queue.append(owner)
            try:
                while self._queue[0] is not owner or len(self._active) >= self.slots:
                    if cancelled():
                        return False
                    self._cv.wait(RECHECK_SECONDS)
                self._active.add(owner)
                self._mark_served(owner)
                self.most_active = max(self.most_active, len(self._active))
                return True
            finally:
                self._queue.remove(owner)
                self._cv.notify_all()

    def release(self, owner: Hashable) -> None:
        with self._cv:
            self._active.discard(owner)
            self._cv.notify_all()

    def wake(self) -> None:
        """Have every waiting owner check now whether it was cancelled (a stop, a sweep's finished point)."""
        with self._cv:
            self._cv.notify_all()

    def position(self, owner: Hashable) -> int | None:
        """How many runs are ahead of ``owner`` in the line, or None when it is not waiting."""
        with self._cv:
            return self._queue.index(owner) if owner in self._queue else None

    def position_where(self, belongs: Callable[[Hashable], bool]) -> int | None:
        """How many are ahead of the first waiting owner for which ``belongs(owner)`` holds, or None."""
        with self._cv:
            return next((i for i, owner in enumerate(self._queue) if belongs(owner)), None)

    @property
    def newcomer_waiting(self) -> bool:
        """Whether a waiting owner has never held a slot (its first record is still to come)."""
        with self._cv:
            return any(not self._was_served(owner) for owner in self._queue)

    def _mark_served(self, owner: Hashable) -> None:
        try:
            self._served.add(owner)
        except TypeError:
            self._served_ids.add(id(owner))

    def _was_served(self, owner: Hashable) -> bool:
        return owner in self._served or id(owner) in self._served_ids  # (a WeakSet says no to plain objects)

    @property
    def waiting(self) -> int:
        with self._cv:
            return len(self._queue)

    @property
    def active(self) -> int:
        with self._cv:
            return len(self._active)


SCHEDULER = Scheduler()  # the process's: every TrainingJob goes through it unless given another
