"""Many runs at once: `python flow.py dagster trigger` of foreach20 (bench/flows/foreach.py),
started together, on two instances.

    python bench/concurrency.py                          # 50 runs, PostgreSQL + run queue of 8
    python bench/concurrency.py --runs 50 --max-concurrent-runs 8 --instances postgres
    python bench/concurrency.py --runs 20 --instances sqlite

- postgres: a DAGSTER_HOME on a PostgreSQL this benchmark starts on 127.0.0.1 (tests/services.py),
  with Dagster's QueuedRunCoordinator (`max_concurrent_runs` below the number of runs), and a
  `dagster-webserver` and `dagster-daemon` it starts (tests/deployment.py); every trigger goes
  through the webserver (`trigger --dagster-url`), the daemon dequeues the runs. All stopped by
  their pids at the end.
- sqlite: the embedded default (a DAGSTER_HOME with no storage configured: SQLite), every trigger
  starting its run process at once on this machine (no queue).

Checked for every run: Dagster's status SUCCESS within the timeout (none stuck QUEUED or
STARTED), and, through Metaflow's Client, a Metaflow run of its own (run ids all different),
successful, whose join saw all 20 inputs. Prints the time from the first trigger to the last
run's end, and for the embedded instance what failed and how.
"""

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import deployment  # noqa: E402
import services  # noqa: E402

FLOW = "foreach.py"
WIDTH = 20
RUN_TIMEOUT_SECONDS = 3600


def queued_yaml(max_concurrent_runs: int) -> str:
    return ("run_coordinator:\n"
            "  module: dagster._core.run_coordinator\n"
            "  class: QueuedRunCoordinator\n"
            "  config:\n"
            "    max_concurrent_runs: %d\n" % max_concurrent_runs)


def trigger_all(flow_dir: Path, env: dict, runs: int, extra=()):
    """Start `runs` triggers together; their (returncode, output), in order."""
    procs = []
    for i in range(runs):
        log = open(flow_dir / ("trigger-%d.log" % i), "w+")
        procs.append((subprocess.Popen(
            [sys.executable, FLOW, "dagster", "trigger", "--width", str(WIDTH), *extra],
            cwd=flow_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL), log))
    results = []
    for proc, log in procs:
        proc.wait()
        log.seek(0)
        results.append((proc.returncode, log.read()))
        log.close()
    return results


def run_ids(output: str):
    dagster = metaflow = None
    for line in output.splitlines():
        if line.strip().startswith("Dagster run id:"):
            dagster = line.split(":", 1)[1].strip()
        if line.strip().startswith("Metaflow run:"):
            metaflow = line.split(":", 1)[1].strip().split("/")[1]
    return dagster, metaflow


def wait_all(home: Path, dagster_ids, timeout: float):
    """Status of each run once all have ended (or the timeout passed)."""
    from dagster import DagsterInstance

    deadline = time.monotonic() + timeout
    statuses = {}
    with DagsterInstance.from_config(str(home)) as instance:
        while time.monotonic() < deadline:
            statuses = {run_id: instance.get_run_by_id(run_id).status.value
                        for run_id in dagster_ids}
            if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses.values()):
                break
            time.sleep(2)
    return statuses


def check_metaflow_runs(flow_dir: Path, env: dict, metaflow_ids):
    """Through the Client: each run exists, succeeded, and its join summed all splits."""
    code = (
        "import sys\n"
        "from metaflow import Flow, namespace\n"
        "namespace(None)\n"
        "bad = []\n"
        "for rid in sys.argv[1:]:\n"
        "    run = Flow('ForeachFlow')[rid]\n"
        "    n = len(list(run['body']))\n"
        "    if not run.successful or n != %d or run['join'].task.data.total != %d:\n"
        "        bad.append('%%s: successful=%%s, %%d body tasks' %% (rid, run.successful, n))\n"
        "print('\\n'.join(bad) or 'ok')\n" % (WIDTH, WIDTH * (WIDTH - 1)))
    out = subprocess.run([sys.executable, "-c", code, *metaflow_ids], cwd=flow_dir, env=env,
                         capture_output=True, text=True)
    return (out.stdout + out.stderr).strip()


def summarize(name, started, triggers, statuses, checked):
    elapsed = time.monotonic() - started
    ids = [run_ids(out) for _, out in triggers]
    failed_triggers = [out for code, out in triggers if code != 0]
    metaflow_ids = [m for _, m in ids if m]
    print("\n%s: %d triggers, %d failed; %d runs SUCCESS, %s; %d distinct Metaflow run ids; "
          "%.0f s from the first trigger to the last run's end (load %.1f)" % (
              name, len(triggers), len(failed_triggers),
              sum(1 for s in statuses.values() if s == "SUCCESS"),
              ", ".join("%d %s" % (list(statuses.values()).count(s), s)
                        for s in sorted(set(statuses.values())) if s != "SUCCESS") or "no other",
              len(set(metaflow_ids)), elapsed, os.getloadavg()[0]))
    print("Client check: %s" % checked)
    for out in failed_triggers[:3]:
        print("--- a failed trigger said:\n%s" % "\n".join(out.strip().splitlines()[-8:]))


def postgres_variant(base: Path, env: dict, runs: int, max_concurrent_runs: int):
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(services.postgres(base / "pg"))
        home = base / "pg-home"
        home.mkdir()
        (home / "dagster.yaml").write_text(services.dagster_yaml_for_postgres(
            pg, extra=queued_yaml(max_concurrent_runs)))
        flow_dir = base / "pg-flow"
        flow_dir.mkdir()
        shutil.copy(HERE / "flows" / FLOW, flow_dir)
        (flow_dir / ".metaflow").mkdir()  # the runs' own datastore, whatever is above
        env = dict(env, DAGSTER_HOME=str(home))
        subprocess.run([sys.executable, FLOW, "dagster", "create", "job.py"], cwd=flow_dir,
                       env=env, check=True, capture_output=True)
        workspace = deployment.workspace_yaml(base / "workspace.yaml", [flow_dir / "job.py"],
                                              flow_dir)
        dagster = stack.enter_context(deployment.webserver_and_daemon(
            base / "dagster", home, workspace, env))
        print("PostgreSQL, webserver and daemon ready; %d triggers at once, "
              "max_concurrent_runs %d" % (runs, max_concurrent_runs), flush=True)
        started = time.monotonic()
        triggers = trigger_all(flow_dir, env, runs,
                               ("--definitions-file", "job.py", "--dagster-url", dagster.url))
        print("all triggers returned after %.0f s" % (time.monotonic() - started), flush=True)
        dagster_ids = [d for d, _ in (run_ids(out) for _, out in triggers) if d]
        statuses = wait_all(home, dagster_ids, RUN_TIMEOUT_SECONDS)
        checked = check_metaflow_runs(flow_dir, env, [m for _, m in (
            run_ids(out) for _, out in triggers) if m])
        summarize("postgres + run queue", started, triggers, statuses, checked)
        print("RSS MB at the end: postgres %.0f, webserver+daemon %.0f" % (
            pg.rss_mb(), dagster.rss_mb()))


def sqlite_variant(base: Path, env: dict, runs: int):
    home = base / "sqlite-home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    flow_dir = base / "sqlite-flow"
    flow_dir.mkdir()
    shutil.copy(HERE / "flows" / FLOW, flow_dir)
    (flow_dir / ".metaflow").mkdir()  # the runs' own datastore, whatever is above
    env = dict(env, DAGSTER_HOME=str(home))
    subprocess.run([sys.executable, FLOW, "dagster", "create", "job.py"], cwd=flow_dir, env=env,
                   check=True, capture_output=True)
    print("SQLite (embedded): %d triggers at once" % runs, flush=True)
    started = time.monotonic()
    triggers = trigger_all(flow_dir, env, runs, ("--definitions-file", "job.py"))
    print("all triggers returned after %.0f s" % (time.monotonic() - started), flush=True)
    dagster_ids = [d for d, _ in (run_ids(out) for _, out in triggers) if d]
    statuses = wait_all(home, dagster_ids, RUN_TIMEOUT_SECONDS)
    checked = check_metaflow_runs(flow_dir, env, [m for _, m in (
        run_ids(out) for _, out in triggers) if m])
    summarize("sqlite (embedded)", started, triggers, statuses, checked)
    failed = [run_id for run_id, s in statuses.items() if s != "SUCCESS"]
    for run_id in failed[:3]:
        log = home / "metaflow_dagster" / "run_workers" / ("%s.log" % run_id)
        print("--- run %s (%s), its worker's log ends:\n%s" % (
            run_id, statuses[run_id], services.log_tail(log, 8)))
    # The instance must still be usable after whatever went wrong.
    probe = subprocess.run([sys.executable, FLOW, "dagster", "status", "--definitions-file",
                            "job.py"], cwd=flow_dir, env=env, capture_output=True, text=True)
    print("`dagster status` afterwards: exit %d, %s" % (
        probe.returncode, (probe.stdout + probe.stderr).strip().splitlines()[-1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--max-concurrent-runs", type=int, default=8)
    parser.add_argument("--instances", default="postgres,sqlite")
    args = parser.parse_args()
    env = dict(os.environ, METAFLOW_USER=os.environ.get("METAFLOW_USER", "bench"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    base = Path(tempfile.mkdtemp(prefix="mfd-concurrency-"))
    try:
        for name in args.instances.split(","):
            if name == "postgres":
                postgres_variant(base, env, args.runs, args.max_concurrent_runs)
            elif name == "sqlite":
                sqlite_variant(base, env, args.runs)
            else:
                parser.error("unknown instance %r" % name)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
