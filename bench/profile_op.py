"""Where one op's time goes: runs a flow as our Dagster job once and splits each
step's time using the run's own event log plus timestamps our op code logs.

    python bench/profile_op.py                       # linear6 under the generated executor
    python bench/profile_op.py --flow foreach20 --variant threads

Phases per Dagster step (all from event-log timestamps, except those marked *):
  queue       previous step's STEP_SUCCESS (or RUN_START) -> STEP_WORKER_STARTING
              (linear flows only; the executor noticing and launching the next step)
  worker      STEP_WORKER_STARTING -> STEP_WORKER_STARTED (process start / fork)
  setup       STEP_WORKER_STARTED (or, without workers, STEP_START) -> STEP_START:
              resources, log capture
  pre-task    STEP_START -> our task subprocess starts*  (inputs, plan, `flow.py init`)
  task        `python flow.py step` subprocess*, end to end
  save-logs   saving the task's logs to the Metaflow datastore* (`import metaflow`
              the first time in a process)
  post        end of save-logs* -> STEP_SUCCESS (outputs, IO manager, events)
The starred timestamps come from a small wrapper the profiler appends to the
generated definitions file around runtime.launch.launcher.run_process and
runtime.job.save_task_logs; it writes JSON lines to $MFD_PROFILE_FILE.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import FLOWS, base_env  # noqa: E402
from variants import VARIANTS  # noqa: E402

PROFILE_PATCH = '''

# --- appended by bench/profile_op.py: timestamps around the op's phases ---
def _mfd_profile():
    import functools, json, os, sys, threading, time
    import metaflow_dagster.runtime.ops as ops_mod
    import metaflow_dagster.runtime.launch.launcher as tasks_mod
    path = os.environ["MFD_PROFILE_FILE"]
    lock = threading.Lock()

    def record(**fields):
        with lock, open(path, "a") as f:
            f.write(json.dumps(fields) + "\\n")

    def wrap(mod, name, label):
        original = getattr(mod, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            fresh = "metaflow" not in sys.modules
            t0 = time.time()
            try:
                return original(*args, **kwargs)
            finally:
                if label == "task":
                    argv, env = args[0], args[1]
                    op = env.get("METAFLOW_DAGSTER_OP")
                    step = argv[argv.index("step") + 1] if "step" in argv else "_init"
                    task = argv[argv.index("--task-id") + 1]
                else:  # save_task_logs(..., pathspec "run/step/task", attempt, ...)
                    path = next(a for a in args if isinstance(a, str) and a.count("/") == 2)
                    _, step, task = path.split("/")
                    op = None
                record(phase=label, t0=t0, t1=time.time(), pid=os.getpid(),
                       thread=threading.get_ident(), op=op, step=step, task=task,
                       metaflow_imported_here=fresh and "metaflow" in sys.modules)
        setattr(mod, name, timed)

    wrap(tasks_mod, "run_process", "task")
    wrap(ops_mod, "save_task_logs", "save-logs")


_mfd_profile()
'''


def read_events(home, run_id=None):
    os.environ["DAGSTER_HOME"] = home
    from dagster import DagsterInstance

    instance = DagsterInstance.get()
    runs = instance.get_runs()
    run = runs[0] if run_id is None else instance.get_run_by_id(run_id)
    return run, instance.all_logs(run.run_id)


def breakdown(events, profile):
    """Per Dagster step key: a dict of phase -> seconds."""
    steps = {}
    order = []
    last_success = None
    run_start = None
    for e in events:
        et = e.dagster_event.event_type_value if e.dagster_event else None
        key = e.step_key
        if et in ("RUN_START", "PIPELINE_START"):
            run_start = e.timestamp
        if key is None:
            continue
        s = steps.setdefault(key, {})
        if key not in order:
            order.append(key)
        if et and et not in s:
            s[et] = e.timestamp
        if et == "STEP_WORKER_STARTING" and "queue_from" not in s:
            s["queue_from"] = last_success or run_start
        if et == "STEP_SUCCESS":
            last_success = e.timestamp
    # profile spans -> Dagster step: same op (save-logs: the op of the task it
    # saved), inside the step's window, and for mapped steps the same split index
    op_of_task = {(p["step"], p["task"]): p["op"] for p in profile if p["phase"] == "task"}
    for p in profile:
        if p["op"] is None:
            p["op"] = op_of_task.get((p["step"], p["task"]))
    rows = []
    for key in order:
        s = steps[key]
        op = key.split("[")[0]
        mapping = key[len(op) + 1:-1] if "[" in key else None
        spans = [p for p in profile if p["op"] == op
                 and s.get("STEP_START", 0) - 0.01 <= p["t0"] <= s.get("STEP_SUCCESS", 1e20)
                 and (mapping is None or p["task"].split("-")[1:2] == [mapping])]
        row = {"step": key}
        if "STEP_WORKER_STARTING" in s:
            if s.get("queue_from"):
                row["queue"] = s["STEP_WORKER_STARTING"] - s["queue_from"]
            row["worker"] = s.get("STEP_WORKER_STARTED", s["STEP_WORKER_STARTING"]) \
                - s["STEP_WORKER_STARTING"]
            row["setup"] = s.get("STEP_START", 0) - s.get("STEP_WORKER_STARTED", 0)
        tasks = [p for p in spans if p["phase"] == "task" and p["step"] != "_init"]
        inits = [p for p in spans if p["phase"] == "task" and p["step"] == "_init"]
        saves = [p for p in spans if p["phase"] == "save-logs"]
        if tasks and "STEP_START" in s:
            first = min(p["t0"] for p in tasks)
            row["pre-task"] = first - s["STEP_START"] - sum(p["t1"] - p["t0"] for p in inits)
            row["init"] = sum(p["t1"] - p["t0"] for p in inits)
            # tasks of a region overlap: count the time any of them ran
            row["task"] = _union([(p["t0"], p["t1"]) for p in tasks])
            row["save-logs"] = sum(p["t1"] - p["t0"] for p in saves)
            row["import-mf"] = any(p.get("metaflow_imported_here") for p in saves)
            row["post"] = s.get("STEP_SUCCESS", 0) - max(p["t1"] for p in spans)
            row["n"] = len(tasks)
        if "STEP_START" in s and "STEP_SUCCESS" in s:
            row["op body"] = s["STEP_SUCCESS"] - s["STEP_START"]
        rows.append(row)
    return rows


def _union(intervals):
    total, end = 0.0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


PHASES = ["queue", "worker", "setup", "pre-task", "init", "task", "save-logs", "post", "op body"]


def print_table(rows, limit=12):
    print("| step | " + " | ".join(PHASES) + " | import metaflow in op |")
    print("|---" * (len(PHASES) + 2) + "|")
    shown = rows if len(rows) <= limit else rows[:limit // 2] + [None] + rows[-limit // 2:]
    for r in shown:
        if r is None:
            print("| ... |" + " |" * (len(PHASES) + 1))
            continue
        cells = ["%.2f" % r[p] if p in r else "" for p in PHASES]
        print("| %s | %s | %s |" % (r["step"], " | ".join(cells), "yes" if r.get("import-mf")
                                     else ""))
    med = {p: statistics.median([r[p] for r in rows if p in r]) for p in PHASES
           if any(p in r for r in rows)}
    print("| **median** | %s | |" % " | ".join("%.2f" % med[p] if p in med else ""
                                             for p in PHASES))
    return med


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flow", default="linear6", choices=sorted(FLOWS))
    parser.add_argument("--variant", default="dagster",
                        choices=[v for v in VARIANTS if v != "metaflow"])
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", help="write the rows as JSON here")
    parser.add_argument("--analyze", metavar="DIR",
                        help="only analyse a directory kept by an earlier --keep run")
    args = parser.parse_args(argv)
    if args.analyze:
        return analyze(args.analyze, args.flow, args.variant, None, None, None, None, args.json)
    bench_flow = FLOWS[args.flow]
    file = bench_flow.file
    variant = VARIANTS[args.variant]
    workdir = tempfile.mkdtemp(prefix="mfdprofile-")
    shutil.copy(os.path.join(HERE, "flows", file), workdir)
    home = os.path.join(workdir, "dagster_home")
    os.makedirs(home)
    with open(os.path.join(home, "dagster.yaml"), "w") as f:
        f.write("telemetry:\n  enabled: false\n")
    env = base_env()
    env.update(variant.env)
    env.update(DAGSTER_HOME=home,
               MFD_PROFILE_FILE=os.path.join(workdir, "profile.jsonl"))
    subprocess.run([sys.executable, file, "dagster", "create", "job_dagster.py"]
                   + variant.create_args, cwd=workdir, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    path = os.path.join(workdir, "job_dagster.py")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text + PROFILE_PATCH)
    load0 = os.getloadavg()
    t0 = time.monotonic()
    launched = time.time()
    with open(os.path.join(workdir, "run.log"), "wb") as log:
        rc = subprocess.run(bench_flow.dagster_command(workdir) + variant.run_args,
                            cwd=workdir, env=env, stdout=log,
                            stderr=subprocess.STDOUT).returncode
    wall = time.monotonic() - t0
    exited = time.time()
    load1 = os.getloadavg()
    analyze(workdir, args.flow, args.variant, rc, wall, (load0[0], load1[0]),
            (launched, exited), args.json)
    if args.keep:
        print("kept", workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)


def analyze(workdir, flow, variant, rc, wall, loads, process_times, json_path):
    home = os.path.join(workdir, "dagster_home")
    profile_file = os.path.join(workdir, "profile.jsonl")
    profile = []
    if os.path.exists(profile_file):
        with open(profile_file) as f:
            profile = [json.loads(line) for line in f]
    run, events = read_events(home)
    rows = breakdown(events, profile)
    print("flow=%s variant=%s rc=%s status=%s wall=%s steps=%d events=%d load(1m)=%s"
          % (flow, variant, rc, run.status.value, wall and "%.1fs" % wall, len(rows),
             len(events), loads and "%.2f->%.2f" % loads))
    first = next(e.timestamp for e in events if e.dagster_event and
                 e.dagster_event.event_type_value in ("RUN_START", "PIPELINE_START"))
    last = max(e.timestamp for e in events)
    if process_times:
        print("fixed: process start -> RUN_START %.2f s; last event -> process exit %.2f s"
              % (first - process_times[0], process_times[1] - last))
    med = print_table(rows)
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"flow": flow, "variant": variant, "wall": wall, "load": loads,
                       "rows": rows, "median": med}, f, indent=1)


if __name__ == "__main__":
    main()
