"""The command a user types for a short flow: `python flow.py dagster trigger --wait` against
`python flow.py run`, on a hello-world flow (bench/flows/hello.py, 2 trivial tasks).

    python bench/trigger_latency.py              # 5 rounds, the two alternated
    python bench/trigger_latency.py --runs 10

Both from a shell's point of view: the command's wall time, from its start to its exit. The
trigger goes to the embedded default (a SQLite DAGSTER_HOME, created and `dagster create`d
before the clock, as a user's is after the first time). For the trigger, where its time goes,
from the run's event log and the command's clock:
- submit: from the command's start to the run's creation (importing Metaflow and Dagster,
  loading the definitions file, opening the instance, creating the run record);
- process start: from the run's creation to RUN_START (the detached run process: Python,
  Dagster, the instance, the job's definitions);
- run: RUN_START to RUN_SUCCESS (the two tasks, the events);
- notice: from RUN_SUCCESS to the command's exit (its polling for the run's end, and the
  command's teardown).
"""

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLOW = "hello.py"


def timed(argv, cwd: Path, env: dict):
    started_wall = time.time()
    started = time.monotonic()
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - started
    if out.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(argv), out.stdout + out.stderr))
    return started_wall, wall, out.stdout + out.stderr


def trigger_phases(home: Path, started: float, wall: float) -> dict:
    with sqlite3.connect(str(home / "history" / "runs.db")) as conn:
        run_id, created = conn.execute(
            "select run_id, create_timestamp from runs order by id desc limit 1").fetchone()
    with sqlite3.connect(str(home / "history" / "runs" / ("%s.db" % run_id))) as conn:
        # RUN_START and RUN_SUCCESS are stored under their old names.
        times = dict(conn.execute(
            "select dagster_event_type, min(timestamp) from event_logs where dagster_event_type "
            "in ('PIPELINE_START', 'PIPELINE_SUCCESS') group by 1").fetchall())
    created = _epoch(created)
    run_start, run_success = _epoch(times["PIPELINE_START"]), _epoch(times["PIPELINE_SUCCESS"])
    return {"submit": created - started, "process start": run_start - created,
            "run": run_success - run_start, "notice": started + wall - run_success}


def _epoch(value) -> float:
    """SQLite's timestamps are naive UTC datetimes (text)."""
    from datetime import datetime, timezone

    if isinstance(value, (int, float)):
        return float(value)
    return datetime.fromisoformat(str(value)).replace(tzinfo=timezone.utc).timestamp()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="mfd-trigger-latency-"))
    home = workdir / "home"
    env = dict(os.environ, DAGSTER_HOME=str(home), PYTHONDONTWRITEBYTECODE="1",
               METAFLOW_USER=os.environ.get("METAFLOW_USER", "bench"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    shutil.copy(HERE / "flows" / FLOW, workdir)
    (workdir / ".metaflow").mkdir()  # the runs' own datastore, whatever is above workdir
    results = {"run": [], "trigger --wait": []}
    phases = []
    try:
        # The home, its storage and the definitions file exist, as after a user's first time;
        # one untimed trigger also unpacks the code package on this host.
        timed([sys.executable, FLOW, "dagster", "create"], workdir, env)
        timed([sys.executable, FLOW, "dagster", "trigger", "--wait"], workdir, env)
        commands = {"run": [sys.executable, FLOW, "run"],
                    "trigger --wait": [sys.executable, FLOW, "dagster", "trigger", "--wait"]}
        for i in range(args.runs):
            for name in (list(commands) if i % 2 == 0 else list(reversed(list(commands)))):
                started, wall, _ = timed(commands[name], workdir, env)
                results[name].append(wall)
                line = "%-15s %.2f s (load %.1f)" % (name, wall, os.getloadavg()[0])
                if name == "trigger --wait":
                    phases.append(trigger_phases(home, started, wall))
                    line += "  " + ", ".join("%s %.2f" % kv for kv in phases[-1].items())
                print(line, flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nhello world (2 tasks), %d runs each, median (min-max) s:" % args.runs)
    for name, walls in results.items():
        print("  %-15s %.2f (%.2f-%.2f)" % (name, statistics.median(walls), min(walls),
                                            max(walls)))
    gap = [t - r for t, r in zip(results["trigger --wait"], results["run"])]
    print("  trigger - run   %+.2f (%+.2f to %+.2f), round by round" % (
        statistics.median(gap), min(gap), max(gap)))
    print("trigger --wait, phases, median s: " + ", ".join(
        "%s %.2f" % (key, statistics.median(p[key] for p in phases)) for key in phases[0]))


if __name__ == "__main__":
    main()
