"""Stability maps: train a demo at every point of a grid over one or two settings and summarise each run.

Every point runs in a worker process with TensorFlow pinned to one thread (float sums can depend on the
thread count), with the same seed and data, so the rows do not depend on the backend or the number of
jobs. Local sweeps use joblib's loky process pool (all cores by default, nothing to start); the same sweep
runs on a Ray cluster as Ray tasks (``backend="ray"``, ``address="auto"`` or ``"ray://host:10001"``).
This module imports TensorFlow only inside the workers.
"""

from __future__ import annotations

import importlib
import itertools
import math
import os
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import demos, settings as config
from .records import first_nonfinite, frame
from .scheduler import SCHEDULER, Scheduler

WORKER_ENV = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
              "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow"}
STATUSES = ("ok", "diverged", "stalled", "error")
BACKENDS = ("local", "ray", "threads")


def summary_columns(demo: str, settings: Mapping[str, Any] | None = None) -> list[str]:
    return (["status", "final_loss", "best_loss", f"metric:{config.main_metric(demo, settings)}",
             "first_nonfinite_step", "first_nonfinite", "max_grad_norm", "steps", "message"]
            + anatomy_columns(demo))


def anatomy_columns(demo: str) -> list[str]:
    terms = config.terms(demo)
    return ["mean_cos"] + [f"share:{t}" for t in terms] if len(terms) > 1 else []


def parse_grid(text: str) -> tuple[str, list[str]]:
    """``"KEY=V1,V2,..."`` -> ``(KEY, [V1, V2, ...])``."""
    key, values = config.parse_assignment(text)
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not items:
        raise config.SettingError(f"--grid {key}= needs at least one value, e.g. {key}=V1,V2")
    return key, items


def grid_points(demo: str, grids: Sequence[tuple[str, Sequence[Any]]],
                base: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every combination of the grid values (the first key varies slowest), each checked now, so a bad key
    or value fails before any training. Returns the grid values of each point."""
    config.check_demo(demo)
    keys = [k for k, _ in grids]
    if len(set(keys)) != len(keys):
        raise config.SettingError(f"a --grid key appears twice: {', '.join(keys)}")
    points = []
    for combo in itertools.product(*[values for _, values in grids]):
        point = dict(zip(keys, combo))
        config.resolve(demo, {**(base or {}), **point})  # raises SettingError naming what is allowed
        points.append(point)
    return points


def _anatomy(demo: str, settings: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The per-term gradient probe in one row (NaN with the probe off), read as the page reads it: over the
    measured steps with every term's norm finite, the mean cosine over every pair of terms where both have a
    gradient (``gradients.pair_cosine``) and each term's share of the summed global norms."""
    row = dict.fromkeys(anatomy_columns(demo), math.nan)
    terms = config.terms(demo)
    every = config.term_period(settings.get("term_grads", "off"))
    if not row or not every or not records or f"grad_norm@{terms[0]}" not in records[0]:
        return row
    from . import gradients  # (TensorFlow is loaded in the workers that summarise)

    table = frame(records)
    table = table[gradients.measured_steps(table["step"], every)]
    table = table[np.isfinite(table[[f"grad_norm@{t}" for t in terms]].to_numpy(dtype=float)).all(axis=1)]
    cosines = np.concatenate([gradients.pair_cosine(table, a, b) for a, b in gradients.pairs(terms)])
    if np.isfinite(cosines).any():
        row["mean_cos"] = float(np.nanmean(cosines))
    row.update({f"share:{t}": float(v) for t, v in zip(terms, gradients.pooled_global_shares(table, terms))})
    return row


def summarise(demo: str, settings: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One run in one row: final and best loss, main metric, first non-finite step and place, max gradient
    norm, and ``ok`` | ``diverged`` (a non-finite value) | ``stalled`` (no progress since step 1: the mean
    loss of the last tenth of the run is not below the loss at step 1; one batch is too noisy to judge)."""
    losses = [r["loss"] for r in records]
    finite = [x for x in losses if math.isfinite(x)]
    norms = [r["grad_norm"] for r in records if math.isfinite(r["grad_norm"])]
    first = first_nonfinite(records)
    # the optimizer minimises sign * loss: a negative learning rate (neg-lr) climbs the loss
    sign = 1.0 if config.effective_lr(demo, settings) >= 0 else -1.0
    if first is not None:
        status = "diverged"
    elif len(losses) < 2 or not sign * (_tail_mean(losses) - losses[0]) < 0:
        status = "stalled"
    else:
        status = "ok"
    best = (min(finite) if sign > 0 else max(finite)) if finite else math.nan
    main = f"metric:{config.main_metric(demo, settings)}"
    return {
        "status": status,
        "final_loss": losses[-1] if losses else math.nan,
        "best_loss": best,
        main: records[-1].get(main, math.nan) if records else math.nan,
        "first_nonfinite_step": first["step"] if first else "",
        "first_nonfinite": first["first_nonfinite"] if first else "",
        "max_grad_norm": max(norms) if norms else math.nan,
        "steps": len(records),
        "message": "",
        **_anatomy(demo, settings, records),
    }


def _tail_mean(values: Sequence[float]) -> float:
    tail = values[-max(1, len(values) // 10):]
    return sum(tail) / len(tail)


def run_point(demo: str, overrides: Mapping[str, Any], steps: int, seed: int, module: str = "") -> dict[str, Any]:
    """Train one grid point (in a worker) and summarise it; an exception becomes a row with status error. A worker
    process finds the demo as the sweep's process did: a file of your own code is loaded from its path, a demo
    registered by another module (``module``, ``Demo.module``) by importing that module."""
    for key, value in WORKER_ENV.items():
        os.environ.setdefault(key, value)
    if config.is_file(demo):
        from .catalog import get

        get(demo)
    elif module and demo not in demos.DEMOS:
        importlib.import_module(module)
    return _point_here(demo, overrides, steps, seed)


def sweep(demo: str, grids: Sequence[tuple[str, Sequence[Any]]], base: Mapping[str, Any] | None = None,
          steps: int = 200, seed: int = 0, jobs: int | None = None, backend: str = "local",
          address: str | None = None, on_row: Callable[[int, dict[str, Any]], None] | None = None,
          should_stop: Callable[[], bool] | None = None,
          points: Sequence[dict[str, Any]] | None = None, scheduler: Scheduler | None = None,
          owner: Any = None) -> list[dict[str, Any]]:
    """Run the grid (or only ``points`` of it, e.g. those a resumed sweep still lacks) and return one row per
    point, in order: the grid values, then the summary.

    ``on_row(index, row)`` is called as each point finishes (in any order; the index into the points run).
    ``should_stop()`` is polled: once true, points not started are cancelled and only the finished rows are
    returned. With a ``scheduler`` (local backend), each point waits in its line for a slot and holds it while
    it trains, so a sweep started from a page shares the room's limit with the training runs; ``owner`` marks
    its places in the line (see :class:`SweepJob`).
    """
    points = grid_points(demo, grids, base) if points is None else list(points)
    if backend not in BACKENDS:
        raise config.SettingError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if steps < 1:
        raise config.SettingError(f"steps must be >= 1, got {steps}")
    tasks = [({**(base or {}), **p}, p) for p in points]
    results: dict[int, dict[str, Any]] = {}

    def done(index: int, summary: dict[str, Any]) -> None:
        row = {**tasks[index][1], **summary}
        results[index] = row
        if on_row:
            on_row(index, row)

    stop = should_stop or (lambda: False)
    if backend == "ray":
        _run_ray(demo, [t for t, _ in tasks], steps, seed, jobs, address, done, stop)
    elif backend == "threads":
        _run_threads(demo, [t for t, _ in tasks], steps, seed, jobs, done, stop)
    else:
        _run_local(demo, [t for t, _ in tasks], steps, seed, jobs, done, stop, scheduler, owner)
    return [results[i] for i in sorted(results)]


class _Point:
    """A sweep point's place in a scheduler's line (``owner``: the sweep it belongs to)."""

    __slots__ = ("owner", "index", "__weakref__")

    def __init__(self, owner: Any, index: int):
        self.owner, self.index = owner, index


_pool_workers = 0  # the size of this process's pool: it only grows (shrinking would stop workers that compiled)


def _pool(workers: int):
    """joblib's loky pool of this process, kept between sweeps (a worker imports TensorFlow and traces its models
    once), with at least ``workers`` workers."""
    from joblib.externals.loky import get_reusable_executor

    global _pool_workers
    _pool_workers = max(_pool_workers, workers)
    return get_reusable_executor(max_workers=_pool_workers, env=WORKER_ENV, timeout=600)


def _run_local(demo, overrides, steps, seed, jobs, done, should_stop, scheduler=None, owner=None) -> None:
    """The process pool: ``jobs`` workers (a CLI ``--jobs 1`` starts one), or one per core when ``jobs`` is None
    (a page's sweeps); ``jobs`` caps the runs in flight, and a pool never shrinks, so a later sweep never restarts
    its workers. With a ``scheduler``, a point starts once it holds a slot and gives the slot back when it ends."""
    cores = os.cpu_count() or 1
    in_flight = max(1, min(jobs or cores, len(overrides)))
    executor = _pool(in_flight if jobs else cores)
    queue = list(enumerate(overrides))
    running: dict[Any, int] = {}
    slots: dict[Any, _Point] = {}
    try:
        while queue or running:
            while queue and len(running) < in_flight and not should_stop():
                index, o = queue[0]
                place = _Point(owner, index)
                # a running point that ends meanwhile is collected first (its slot is given back)
                if scheduler is not None and not scheduler.acquire(
                        place, lambda: should_stop() or any(f.done() for f in running)):
                    break
                queue.pop(0)
                future = executor.submit(run_point, demo, o, steps, seed, config.spec(demo).module)
                running[future] = index
                if scheduler is not None:
                    slots[future] = place
                    future.add_done_callback(lambda _: scheduler.wake())  # a point waiting for a slot looks again
            if not running:
                if should_stop() or not queue:
                    return  # stopped before anything else started
                continue
            finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                if future in slots:
                    scheduler.release(slots.pop(future))
                done(running.pop(future), future.result())
            if should_stop():
                queue.clear()  # points not started are dropped; the running ones finish and are kept
    finally:
        for place in slots.values():
            scheduler.release(place)


def _run_threads(demo, overrides, steps, seed, jobs, done, should_stop) -> None:
    """Threads of this process, sharing its compiled steps (no worker imports TensorFlow or compiles again): for a
    few short points of a structure this process has compiled, e.g. the check-up's scan."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(jobs or os.cpu_count() or 1, len(overrides)))) as pool:
        futures = {}
        for i, o in enumerate(overrides):
            if should_stop():
                break
            futures[pool.submit(_point_here, demo, o, steps, seed)] = i
        for future in list(futures):
            done(futures[future], future.result())


def _point_here(demo: str, overrides: Mapping[str, Any], steps: int, seed: int) -> dict[str, Any]:
    settings = config.resolve(demo, overrides)
    try:
        from .training import train

        return summarise(demo, settings, train(demo, settings, steps=steps, seed=seed))
    except Exception as e:  # noqa: BLE001  (the sweep goes on)
        row = {c: math.nan for c in summary_columns(demo, settings)}
        row.update(status="error", first_nonfinite_step="", first_nonfinite="", steps=0,
                   message=f"{type(e).__name__}: {e}")
        return row


def _run_ray(demo, overrides, steps, seed, jobs, address, done, should_stop) -> None:
    import ray

    if not ray.is_initialized():
        here = os.path.dirname(os.path.abspath(__file__))
        ray.init(address=address, runtime_env={"env_vars": WORKER_ENV, "py_modules": [here]},
                 num_cpus=jobs if address is None else None,  # a local instance: jobs caps its workers
                 include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1)(run_point)
    module = config.spec(demo).module
    refs = {remote.remote(demo, o, steps, seed, module): i for i, o in enumerate(overrides)}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1, timeout=0.2)
        for ref in ready:
            done(refs[ref], ray.get(ref))
        if should_stop():
            for ref in pending:
                ray.cancel(ref)
            return


def cli_command(demo: str, grids: Sequence[tuple[str, Sequence[Any]]], base: Mapping[str, Any], steps: int,
                seed: int) -> str:
    """The ``python -m lossviz sweep`` command that reproduces a sweep."""
    parts = ["python", "-m", "lossviz", "sweep", demo]
    for key, values in grids:
        parts += ["--grid", f"{key}=" + ",".join(str(v) for v in values)]
    defaults = config.defaults(demo)
    for key, value in base.items():
        if key not in dict(grids) and value != defaults.get(key):
            parts += ["--set", f"{key}={value}"]
    return " ".join(parts + ["--steps", str(steps), "--seed", str(seed), "--out", f"sweep-{demo}.csv"])


class SweepJob:
    """A sweep in a background thread: ``rows`` fills in as points finish (by grid index); ``stop()`` cancels
    the points not started yet."""

    def __init__(self, demo: str, grids, base: Mapping[str, Any] | None = None, steps: int = 100, seed: int = 0,
                 jobs: int | None = None, scheduler: Scheduler | None = None):
        import threading

        self.demo, self.grids, self.base, self.steps, self.seed = demo, list(grids), dict(base or {}), steps, seed
        self.scheduler = scheduler or SCHEDULER  # the process's: its points share the slots of training runs
        self.points = grid_points(demo, self.grids, self.base)
        self.rows: dict[int, dict[str, Any]] = {}
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, args=(jobs,), name=f"lossviz-sweep-{demo}", daemon=True)
        self._thread.start()

    def _work(self, jobs) -> None:
        try:
            sweep(self.demo, self.grids, self.base, self.steps, self.seed, jobs=jobs,
                  on_row=self.rows.__setitem__, should_stop=self._stop.is_set, scheduler=self.scheduler, owner=self)
        except Exception as e:  # reported to the page
            self.error = f"{type(e).__name__}: {e}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def queue_position(self) -> int | None:
        """How many runs are ahead of this sweep's next point in the line for a slot; None when none waits."""
        return self.scheduler.position_where(lambda place: getattr(place, "owner", None) is self)

    def finished_rows(self) -> list[dict[str, Any]]:
        return [self.rows[i] for i in sorted(self.rows)]

    def stop(self) -> None:
        self._stop.set()
        self.scheduler.wake()  # a point waiting for a slot leaves the line at once

    def wait(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self.running
