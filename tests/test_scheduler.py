"""The run scheduler: at most K runs train at once, FIFO, queue positions, Stop on a queued run, and records
equal to unscheduled runs."""

import threading
import time

import pytest

from lossviz import training
from lossviz.scheduler import Scheduler
from lossviz.jobs import TrainingJob
from lossviz.training import train
from test_live import _same


def test_k_slots_fifo_positions_and_cancel():
    scheduler = Scheduler(slots=2)
    order, holding = [], []
    blockers = [object(), object()]
    for b in blockers:
        assert scheduler.acquire(b)
    waiters = [object() for _ in range(4)]
    cancel = threading.Event()
    threads = []
    for i, w in enumerate(waiters):
        def wait(w=w, i=i):
            if scheduler.acquire(w, cancel.is_set if i == 2 else (lambda: False)):
                order.append(i)
                holding.append(w)
        threads.append(threading.Thread(target=wait))
        threads[-1].start()
        while scheduler.position(w) is None:
            time.sleep(0.005)
    assert [scheduler.position(w) for w in waiters] == [0, 1, 2, 3]
    cancel.set()  # the third waiter gives up: it leaves the line
    deadline = time.time() + 5
    while scheduler.position(waiters[2]) is not None:
        assert time.time() < deadline
        time.sleep(0.01)
    assert [scheduler.position(w) for w in (waiters[0], waiters[1], waiters[3])] == [0, 1, 2]
    for b in blockers:
        scheduler.release(b)
    deadline = time.time() + 30
    while len(order) < 2:  # the two slots are taken
        assert time.time() < deadline
        time.sleep(0.01)
    assert order == [0, 1] and scheduler.active == 2  # first come, first served; never more than 2
    assert scheduler.position(waiters[3]) == 0  # and the fourth still waits, first in line
    for w in list(holding):
        scheduler.release(w)
    for t in threads:
        t.join(5)
    assert order == [0, 1, 3] and scheduler.most_active == 2


class _CountingJobs(Scheduler):
    """A scheduler that also keeps the most training jobs (not blockers) that held a slot at once."""

    most_jobs = 0

    def acquire(self, owner, cancelled=lambda: False):
        got = super().acquire(owner, cancelled)
        with self._cv:
            self.most_jobs = max(self.most_jobs, sum(isinstance(o, TrainingJob) for o in self._active))
        return got


def test_jobs_share_k_slots_and_give_the_same_records():
    scheduler = _CountingJobs(slots=2)
    blockers = [object(), object()]  # hold both slots until every job waits (building a model takes a while)
    for b in blockers:
        assert scheduler.acquire(b)
    demos = ["max-mse", "sparse-penalty", "max-mse", "two-branch", "max-mse"]  # K + 3 runs at once
    jobs = [TrainingJob(d, {}, 60, seed=i, scheduler=scheduler) for i, d in enumerate(demos)]
    deadline = time.time() + 30
    while scheduler.waiting < len(jobs):
        assert time.time() < deadline
        time.sleep(0.01)
    for b in blockers:
        scheduler.release(b)
    for job in jobs:
        job.wait(120)
    assert scheduler.most_active == 2 and scheduler.most_jobs == 2  # never more than K, and K used
    assert scheduler.active == 0 and scheduler.waiting == 0
    for i, (d, job) in enumerate(zip(demos, jobs)):
        assert job.status == "finished" and job.trainer.step == 60
        assert _same(list(job.records), train(d, {}, steps=60, seed=i))  # yielding between chunks changes nothing


def test_stop_removes_a_queued_run_and_it_never_trains():
    scheduler = Scheduler(slots=1)
    blocker = object()
    assert scheduler.acquire(blocker)
    job = TrainingJob("max-mse", {}, None, scheduler=scheduler)
    deadline = time.time() + 10
    while job.queue_position is None:
        assert time.time() < deadline
        time.sleep(0.01)
    assert job.status == "queued" and job.queue_position == 0
    job.stop()
    job.wait(5)
    assert not job.running and job.queue_position is None and len(job.records) == 0
    assert job.trainer.state is None  # a waiting run never took weights
    scheduler.release(blocker)


def test_a_paused_run_goes_on_exactly():
    with training.Trainer("policy-value", {}, seed=4) as t:
        a = list(t.run(13, chunk=5))
        a += list(t.run(17, chunk=5))
    assert _same(a, train("policy-value", {}, steps=30, seed=4))


def test_two_sessions_one_queued_see_their_positions():
    from lossviz.scheduler import SCHEDULER
    from test_pages import PAGES, _app, _button, _finish

    blockers = [object() for _ in range(SCHEDULER.slots)]  # the room is busy: every slot taken
    for b in blockers:
        assert SCHEDULER.acquire(b)
    try:
        first, second = _app(PAGES["max-mse"]), _app(PAGES["max-mse"])
        for at in (first, second):
            at.sidebar.number_input(key="max-mse:steps").set_value(40)
            _button(at, "Train").click()
            at.run()
            job = at.session_state["jobs"]["max-mse"]["A"]
            deadline = time.time() + 10
            while job.queue_position is None:
                assert time.time() < deadline
                time.sleep(0.01)
        first.run()
        second.run()
        assert any("queued, 0 ahead of you" in p.proto.text for p in first.get("progress"))
        assert any("queued, 1 ahead of you" in p.proto.text for p in second.get("progress"))
    finally:
        for b in blockers:
            SCHEDULER.release(b)
    _finish(first, "max-mse")
    _finish(second, "max-mse")
    assert all(len(at.session_state["jobs"]["max-mse"]["A"].records) == 40 for at in (first, second))


def test_a_page_sweep_shares_the_slots_with_a_playing_run():
    """One slot: a run that plays without end and a sweep of three points. The sweep's points wait in the same
    line (reporting their place), the playing run yields between chunks, never more than one holds the slot,
    and the sweep's rows equal those of a sweep outside any scheduler."""
    from lossviz import sweep as sweeps

    scheduler = Scheduler(slots=1)
    player = TrainingJob("max-mse", {}, None, seed=0, scheduler=scheduler)
    try:
        while player.trainer.step == 0:
            time.sleep(0.02)
        grids = [("lr", [0.001, 0.01, 0.1])]
        job = sweeps.SweepJob("max-mse", grids, steps=30, seed=0, scheduler=scheduler)
        seen_waiting = False
        deadline = time.time() + 240
        while job.running:
            assert time.time() < deadline, "the sweep did not get the slot"
            seen_waiting |= job.queue_position is not None
            time.sleep(0.01)
        assert job.error is None and seen_waiting
        assert player.running and player.trainer.step > 0  # the run plays on once the sweep is done
    finally:
        player.stop()
        player.wait(30)
    assert scheduler.most_active == 1 and scheduler.active == 0 and scheduler.waiting == 0
    alone = sweeps.sweep("max-mse", grids, steps=30, seed=0)
    assert _rows(job.finished_rows()) == _rows(alone)


def _rows(rows):
    return [{k: (str(v) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]


def test_a_stopped_sweep_leaves_the_line():
    from lossviz import sweep as sweeps

    scheduler = Scheduler(slots=1)
    holder = object()
    assert scheduler.acquire(holder)
    job = sweeps.SweepJob("max-mse", [("lr", [0.001, 0.01])], steps=10, seed=0, scheduler=scheduler)
    deadline = time.time() + 30
    while job.queue_position is None:
        assert time.time() < deadline
        time.sleep(0.01)
    assert job.queue_position == 0
    job.stop()
    assert job.wait(30) and job.finished_rows() == [] and scheduler.waiting == 0
    scheduler.release(holder)


def test_newcomers_are_told_apart_from_runs_that_trained_before():
    """A run yields its slot after one chunk to a run that has not trained yet, and after a slice otherwise."""
    scheduler = Scheduler(slots=1)
    first, second = object(), object()
    assert scheduler.acquire(first)
    waiter = threading.Thread(target=lambda: scheduler.acquire(second))
    waiter.start()
    while scheduler.position(second) is None:
        time.sleep(0.005)
    assert scheduler.newcomer_waiting  # second has never held a slot
    scheduler.release(first)
    waiter.join(5)
    again = threading.Thread(target=lambda: scheduler.acquire(first))
    again.start()
    while scheduler.position(first) is None:
        time.sleep(0.005)
    assert scheduler.waiting == 1 and not scheduler.newcomer_waiting  # first trained before
    scheduler.release(second)
    again.join(5)
    scheduler.release(first)
