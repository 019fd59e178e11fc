"""Command line: ``python -m lossviz train DEMO [--set KEY=VALUE]... [--at STEP:KEY=VALUE]... [--steps N] [--seed S]
[--out FILE.csv]``; ``landscape`` and ``sweep`` as documented in the README; ``check DEMO [--set KEY=VALUE]...
[--json] [--quick]`` runs the loss check-up (exit 0: no error-level finding, 1: one, 2: bad usage).

A wrong demo, key or value exits with status 2 and one line that names what is allowed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sys
from typing import Sequence

from . import settings as config


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, status 2, no usage dump
        self.exit(2, f"lossviz: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m lossviz", description="Explore custom Keras losses.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = sub.add_parser("train", help="train a demo and write one CSV row per step")
    _add_run_arguments(train)
    _add_schedule_argument(train)
    train.add_argument("--out", default="-", help="CSV file (default: standard output)")
    train.add_argument("--stop-on-nonfinite", action="store_true",
                       help="stop at the first step with a NaN or inf (default: keep going)")
    land = sub.add_parser("landscape", help="train as train does, then write the loss on a 2-D grid around the weights")
    _add_run_arguments(land)
    _add_schedule_argument(land)
    land.add_argument("--resolution", type=_resolution, default=41, help="grid points per axis (2 to 201)")
    land.add_argument("--span", type=_positive_float, default=1.0, help="the grid covers [-span, span]^2")
    land.add_argument("--out", required=True, help="CSV file with columns alpha, beta, loss")
    sweep = sub.add_parser("sweep", help="train every point of a grid over one or two settings; one CSV row per point")
    _add_run_arguments(sweep)
    sweep.add_argument("--grid", dest="grids", action="append", required=True, metavar="KEY=V1,V2,...",
                       help="a setting and its values; give one or two")
    sweep.add_argument("--jobs", type=_positive_int, default=None,
                       help="runs in flight: worker processes, threads, or a local Ray's workers (default: all cores)")
    sweep.add_argument("--backend", choices=("local", "ray", "threads"), default="local",
                       help="local: a process per core; ray: Ray tasks; threads: this process (shares its compiled steps)")
    sweep.add_argument("--address", default=None, help="Ray address: auto or ray://host:10001 (backend ray)")
    sweep.add_argument("--out", required=True, help="CSV file, one row per grid point")
    sweep.add_argument("--resume", action="store_true",
                       help="run only the points missing from --out (an interrupted sweep of the same grid, seed, steps)")
    check = sub.add_parser("check", help="audit the loss: findings with evidence and the change to make")
    check.add_argument("demo", help=f"one of {', '.join(config.DEMO_NAMES)}, or a file of your own code: path.py[:NAME]")
    check.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                       help="a demo or training setting; repeat for several")
    check.add_argument("--seed", type=_non_negative_int, default=0)
    check.add_argument("--json", action="store_true", help="a JSON list of {id, severity, message, evidence, suggestion}")
    check.add_argument("--quick", action="store_true", help="skip the short run, the one-batch run and the scan")
    check.set_defaults(steps=1)
    rep = sub.add_parser("report", help="a standalone HTML report of lossviz CSVs (the Runs page's charts, offline)")
    rep.add_argument("files", nargs="+", metavar="RUN.csv", help="CSVs of train, sweep, landscape or a Recorder")
    rep.add_argument("--out", required=True, help="the HTML file to write")
    rep.add_argument("--title", default="lossviz report")
    board = sub.add_parser("dashboard", help="serve the dashboard (Streamlit) on 127.0.0.1, as tensorboard --logdir")
    board.add_argument("files", nargs="*", metavar="FILE.py", help="files of your own code, each a page")
    board.add_argument("--runs", default=None, metavar="DIR", help="a folder of lossviz CSVs for the Runs page")
    board.add_argument("--port", type=_positive_int, default=8501)
    return parser


def dashboard_command(files: Sequence[str], runs: str | None, port: int) -> list[str]:
    """The ``streamlit run`` command serving the installed app with the project's settings (its
    ``.streamlit/config.toml`` is not in the current folder): no file watcher, no collection after every run."""
    from pathlib import Path

    import dashboard

    root = Path(dashboard.__file__).resolve().parents[1]
    app = root / "app.py" if (root / "app.py").exists() else root / "lossviz_app" / "app.py"
    def absolute(name: str) -> str:  # "path.py[:NAME]" with the path made absolute
        path, sep, obj = name.partition(":")
        return str(Path(path).resolve()) + sep + obj

    extra = [absolute(f) for f in files] + (["--runs", str(Path(runs).resolve())] if runs else [])
    return [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(port),
            "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
            "--runner.postScriptGC", "false", "--runner.magicEnabled", "false", "--browser.gatherUsageStats", "false",
            "--", *extra]


def _dashboard(args) -> int:
    for name in args.files:
        path = name.partition(":")[0]
        if not path.endswith(".py") or not os.path.isfile(path):
            print(f"lossviz: error: {name}: not a .py file", file=sys.stderr)
            return 2
    if args.runs is not None and not os.path.isdir(args.runs):
        print(f"lossviz: error: --runs {args.runs}: no such folder", file=sys.stderr)
        return 2
    command = dashboard_command(args.files, args.runs, args.port)
    print(f"lossviz dashboard: http://127.0.0.1:{args.port}", file=sys.stderr)
    os.execv(command[0], command)  # Streamlit takes over this process (and its signals)


def _check(args) -> int:
    from . import checkup

    with contextlib.ExitStack() as stack:
        from tqdm import tqdm

        bar = stack.enter_context(tqdm(total=100, unit="%", desc="check-up", disable=None, file=sys.stderr,
                                       bar_format="{desc}: {percentage:3.0f}% {postfix}"))

        def progress(fraction, words):
            bar.update(round(100 * fraction) - bar.n)
            bar.set_postfix_str(words)
        findings = checkup.check(args.demo, args.overrides, seed=args.seed, quick=args.quick, progress=progress)
    if args.json:
        print(json.dumps([f.as_json() for f in findings], indent=2), file=args.stdout)
    else:
        print(checkup.table(findings), file=args.stdout)
    return checkup.exit_code(findings)


def _resolution(text: str) -> int:
    value = _int(text)
    if not 2 <= value <= 201:
        raise argparse.ArgumentTypeError(f"must be an integer from 2 to 201, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("demo", help=f"one of {', '.join(config.DEMO_NAMES)}, or a file of your own code: path.py[:NAME]")
    p.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                   help="a demo or training setting; repeat for several")
    p.add_argument("--steps", type=_positive_int, default=200)
    p.add_argument("--seed", type=_non_negative_int, default=0)


def _add_schedule_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--at", dest="changes", action="append", default=[], metavar="STEP:KEY=VALUE",
                   help="change a numeric setting from step STEP on (as the page's knobs do); repeat for several")


def _trainer(args, **options):
    """The run's trainer with its ``--at`` schedule."""
    from .training import Trainer

    trainer = Trainer(args.demo, args.settings, seed=args.seed, **options)
    for step, key, value in args.schedule:
        trainer.at(step, **{key: value})
    return trainer


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _train_with_progress(trainer, steps: int, desc: str, on_record=None) -> None:
    from tqdm import tqdm

    from .shutdown import INTERRUPTED, raise_if_interrupted

    with tqdm(total=steps, unit="step", desc=desc, disable=None, file=sys.stderr) as bar:
        for record in trainer.run(steps, should_stop=INTERRUPTED.is_set):  # stops after the chunk a signal came in
            if on_record is not None:
                on_record(record)
            bar.update(1)
    raise_if_interrupted()


def _train(args) -> int:
    from . import records as rec

    with _output(args.out, args.stdout) as out, _trainer(args, stop_on_nonfinite=args.stop_on_nonfinite) as trainer:
        writer = rec.CsvWriter(out)
        if args.out != "-":  # beside the CSV, what reproduces it (a report shows it): as a sweep's meta file
            with open(f"{args.out}{rec.META_SUFFIX}", "w") as f:
                json.dump({"demo": args.demo, "seed": args.seed, "steps": args.steps, "command": config.cli_command(
                    args.demo, args.settings, args.steps, args.seed, changes=args.schedule)}, f)

        def write(record):
            writer.write(record)
            writer.flush()  # a killed run keeps every finished step

        try:
            _train_with_progress(trainer, args.steps, args.demo, on_record=write)
        except KeyboardInterrupt:
            writer.flush()
            where = args.out if args.out != "-" else "standard output"
            print(f"interrupted at step {writer.rows}: {writer.rows} rows in {where}", file=sys.stderr)
            return 130
        where = rec.describe_first_nonfinite(trainer.records)
        print(f"{trainer.step} steps, final loss {trainer.records[-1]['loss']:.6g}; "
              f"first non-finite: {where or 'none'}", file=sys.stderr)
        if where and trainer.demo.diagnose is not None:  # the demo's own words for it (a replay)
            from .training import diagnosis

            words = trainer.demo.page.diagnosis.lower() if trainer.demo.page else "where it was born"
            print(f"{words}: {diagnosis(trainer) or 'not found by the replay (see the gradient)'}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _output(path: str, stdout):
    """Standard output for ``-``, else the file, opened before any work so a bad path fails at once."""
    if path == "-":
        yield stdout
    else:
        with open(path, "w", newline="") as f:
            yield f


@contextlib.contextmanager
def _whole_file(path: str):
    """A file that appears only once complete: written as ``PATH.part``, renamed at the end, removed on error."""
    part = f"{path}.part"
    try:
        with open(part, "w", newline="") as f:
            yield f
        os.replace(part, path)
    finally:
        if os.path.exists(part):
            os.remove(part)


def _report(args) -> int:
    from . import runfiles
    from .html_report import report

    try:
        found = report(args.files, args.title)
        with _whole_file(args.out) as out:
            out.write(found.html())
    except runfiles.RunFileError as e:
        print(f"lossviz: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"lossviz: error: {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(found.shared)} run(s)", file=sys.stderr)
    return 0


def _landscape(args) -> int:
    from tqdm import tqdm

    from . import records as rec
    from .shutdown import raise_if_interrupted
    from .surfaces import random_landscape

    with _whole_file(args.out) as out, _trainer(args) as trainer:
        _train_with_progress(trainer, args.steps, f"{args.demo} train")
        with tqdm(total=args.resolution ** 2, unit="point", desc="landscape", disable=None, file=sys.stderr) as bar:
            def progress(fraction):
                raise_if_interrupted()
                bar.update(round(fraction * bar.total) - bar.n)

            landscape = random_landscape(trainer, args.resolution, args.span, seed=args.seed, on_progress=progress)
        rows = list(landscape.rows())
        rec.write_csv(rows, out, header=["alpha", "beta", "loss"])
        bad = sum(1 for r in rows if not math.isfinite(r["loss"]))
        print(f"{len(rows)} grid points after {trainer.step} steps; {bad} non-finite", file=sys.stderr)
    return 0


def _sweep(args) -> int:
    from tqdm import tqdm

    from . import records as rec
    from .sweep import STATUSES, summary_columns, sweep

    header = [k for k, _ in args.grid_values] + summary_columns(args.demo, args.settings)
    meta = {"demo": args.demo, "grids": args.grid_values, "base": args.overrides, "seed": args.seed,
            "steps": args.steps}
    done = _resumed_rows(args, header, meta) if args.resume else {}
    todo = [i for i, point in enumerate(args.points) if _point_key(point) not in done]
    if args.resume:
        print(f"resuming: {len(done)} of {len(args.points)} points already in {args.out}", file=sys.stderr)
    with open(f"{args.out}{rec.META_SUFFIX}", "w") as f:
        json.dump(meta, f)
    rows: dict[int, dict] = {}
    with open(args.out, "a" if done else "w", newline="") as out, tqdm(
            total=len(args.points), initial=len(args.points) - len(todo), unit="run", desc=f"{args.demo} sweep",
            disable=None, file=sys.stderr) as bar:
        writer = rec.CsvWriter(out, header)
        if not done:
            writer.start()
            writer.flush()

        def finished(i, row):  # each row is in the file as soon as its point ends
            rows[todo[i]] = row
            writer.write(row)
            writer.flush()
            bar.update(1)

        try:
            if todo:
                sweep(args.demo, args.grid_values, base=args.overrides, steps=args.steps, seed=args.seed,
                      jobs=args.jobs, backend=args.backend, address=args.address, on_row=finished,
                      points=[args.points[i] for i in todo])
        except KeyboardInterrupt:
            print(f"interrupted: {len(done) + len(rows)} of {len(args.points)} points in {args.out}; "
                  "--resume runs the others", file=sys.stderr)
            return 130
    every = [rows.get(i) or done[_point_key(point)] for i, point in enumerate(args.points)]
    with _whole_file(args.out) as out:  # the finished sweep in grid order, whatever order the points ended in
        rec.write_csv(every, out, header=header)
    counts = {s: sum(1 for r in every if r["status"] == s) for s in STATUSES}
    print(f"{len(every)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n), file=sys.stderr)
    return 0


def _point_key(point) -> tuple:
    return tuple(str(v) for v in point.values())


def _resumed_rows(args, header, meta) -> dict[tuple, dict]:
    """The rows of an interrupted sweep of the same grid, seed and steps, by grid point; refuses another sweep's
    file in one line."""
    from .records import META_SUFFIX

    try:
        with open(f"{args.out}{META_SUFFIX}") as f:
            before = json.load(f)
        with open(args.out, newline="") as f:
            reader = csv.DictReader(f)
            found = list(reader)
            fields = reader.fieldnames
    except (OSError, ValueError) as e:
        raise config.SettingError(f"--resume needs the file of an interrupted sweep and its .lossviz.json: {e}") from None
    before["grids"] = [tuple(g) for g in before.get("grids", [])]
    mismatch = [k for k in meta if json.loads(json.dumps(meta[k])) != json.loads(json.dumps(before.get(k)))]
    if mismatch or fields != header:
        what = ", ".join(mismatch) or "columns"
        raise config.SettingError(f"{args.out} holds another sweep (its {what} differ): drop --resume or use another --out")
    keys = [k for k, _ in args.grid_values]
    return {tuple(row[k] for k in keys): row for row in found}


COMMANDS = {"train": _train, "landscape": _landscape, "sweep": _sweep, "check": _check}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "dashboard":
        return _dashboard(args)
    if args.command == "report":
        return _report(args)
    from .shutdown import terminate_as_interrupt

    terminate_as_interrupt()  # SIGTERM ends a run as Ctrl-C does: finished rows kept, exit 130
    args.stdout = sys.stdout  # the command's output (a CSV, the check-up's JSON) alone
    with contextlib.redirect_stdout(sys.stderr):  # what a file of your own code prints goes to standard error
        return _command(args)


def _command(args) -> int:
    try:
        if config.is_file(args.demo):  # the operator's own code, named on this command line
            from .catalog import get

            get(args.demo)
            note = config.spec(args.demo).note
            if note:
                print(f"lossviz: note: {note}", file=sys.stderr)
        args.overrides = dict(config.parse_assignment(a) for a in args.assignments)
        args.settings = config.resolve(config.check_demo(args.demo), args.overrides)
        args.schedule = config.schedule(args.demo, args.settings, getattr(args, "changes", []), args.steps)
        if args.command == "sweep":
            from .sweep import grid_points, parse_grid

            args.grid_values = [parse_grid(g) for g in args.grids]
            if len(args.grid_values) > 2:
                raise config.SettingError("give one or two --grid settings")
            args.points = grid_points(args.demo, args.grid_values, args.overrides)
    except config.SettingError as e:
        print(f"lossviz: error: {e}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except config.SettingError as e:
        print(f"lossviz: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"lossviz: error: {e}", file=sys.stderr)
        return 2
