"""What Dagster's view of a task costs: the seconds the op spends, after its task has
succeeded, reading the task's artifacts and cards for its output metadata
(runtime/report/metadata.py), and the end op's flow-asset materialization.

    python bench/metadata_cost.py                    # foreach.py at width 20, 3 rounds
    python bench/metadata_cost.py --width 100 --card

Runs the flow once as the compiled job (`dagster job execute`, real tasks), then, in a
fresh process that has opened the datastore as the ops' process has, times
task_metadata() for every task of the run and flow_materialization() once, `--rounds`
times each (median per task). `--card` adds a blank @card with Markdown to the foreach
body, so each body task also lists, copies if needed and reads one card.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import base_env  # noqa: E402

CARD_BODY = '''
    @card(type="blank")
    @step
    def body(self):
        current.card.append(Markdown("# item %d" % self.input))
'''

TIMER = r'''
import json, statistics, sys, time
from metaflow_dagster.deploy.definitions import DefinitionsFile
from metaflow_dagster.runtime.datastore import plan_datastore
from metaflow_dagster.runtime.report.metadata import flow_materialization, task_metadata

plan = DefinitionsFile(sys.argv[1]).plan
run_id, rounds = sys.argv[2], int(sys.argv[3])
plan_datastore(plan)  # opened once per process, before the first task ends
tasks = [line.split() for line in sys.stdin.read().splitlines()]
per_task = []
for step, task_id in tasks:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        task_metadata(plan, "%s/%s/%s" % (run_id, step, task_id), 0)
        times.append(time.perf_counter() - t0)
    per_task.append(statistics.median(times))
times = []
for _ in range(rounds):
    t0 = time.perf_counter()
    flow_materialization(plan, run_id, "%s/end/t" % run_id)
    times.append(time.perf_counter() - t0)
print(json.dumps({"tasks": len(per_task), "median": statistics.median(per_task),
                  "max": max(per_task), "materialization": statistics.median(times)}))
'''


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--card", action="store_true")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="mfdbench-metadata-")
    env = dict(base_env(), DAGSTER_HOME=os.path.join(workdir, "home"))
    os.makedirs(env["DAGSTER_HOME"])
    with open(os.path.join(HERE, "flows", "foreach.py")) as f:
        source = f.read()
    if args.card:
        source = source.replace("from metaflow import FlowSpec, Parameter, step",
                                "from metaflow import FlowSpec, Parameter, card, current, step"
                                "\nfrom metaflow.cards import Markdown")
        source = source.replace("\n    @step\n    def body(self):\n", CARD_BODY)
    with open(os.path.join(workdir, "foreach.py"), "w") as f:
        f.write(source)
    try:
        subprocess.run([sys.executable, "foreach.py", "dagster", "create", "job.py"],
                       cwd=workdir, env=env, check=True, capture_output=True)
        with open(os.path.join(workdir, "config.yaml"), "w") as f:
            f.write("ops:\n  start:\n    config:\n      width: %d\n" % args.width)
        started = time.monotonic()
        subprocess.run(["dagster", "job", "execute", "-f", "job.py", "-j", "ForeachFlow", "-c",
                        "config.yaml"], cwd=workdir, env=env, check=True, capture_output=True)
        print("run: %d tasks in %.1f s" % (args.width + 3, time.monotonic() - started))
        run_dir = os.path.join(workdir, ".metaflow", "ForeachFlow")
        run_id = next(d for d in os.listdir(run_dir) if d.startswith("dagster-"))
        tasks = ["%s %s" % (step, task) for step in ("start", "body", "join", "end")
                 for task in sorted(os.listdir(os.path.join(run_dir, run_id, step)))
                 if not task.startswith("_")]
        proc = subprocess.run([sys.executable, "-c", TIMER, "job.py", run_id, str(args.rounds)],
                              cwd=workdir, env=env, input="\n".join(tasks), text=True,
                              capture_output=True)
        print(proc.stdout.strip() if proc.returncode == 0 else proc.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
