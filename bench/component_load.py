"""What N flows cost as dg components against N generated definitions files: making them
(`dagster create` each / `dg utils refresh-defs-state`), refreshing one flow's state, and
loading them (in process, and as code servers with --load-with-grpc; `dg list defs` with and
without refreshing the state). Nothing goes to the network (create-dagster --no-uv-sync).

    python bench/component_load.py                  # 20 flows, 3 runs of each load
    python bench/component_load.py --flows 5 --runs 1
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import base_env  # noqa: E402

BIN = os.path.dirname(sys.executable)
COMPONENT = "metaflow_dagster.MetaflowFlowComponent"
FLOW = '''from metaflow import FlowSpec, Parameter, step


class Flow{n:02d}(FlowSpec):
    """Bench flow {n}."""

    scale = Parameter("scale", type=int, default=2)

    @step
    def start(self):
        self.items = [1, 2, 3]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        self.value = self.input * self.scale
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    Flow{n:02d}()
'''


def timed(argv, cwd, env) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit("%s failed:\n%s" % (" ".join(argv), (proc.stdout + proc.stderr)[-3000:]))
    return elapsed


def generated_files(root: str, flows: int, env: dict) -> tuple:
    """N flows, each compiled into its own definitions file; (seconds to create all, files)."""
    os.makedirs(root)
    files, seconds = [], 0.0
    for n in range(1, flows + 1):
        name = "flow_%02d" % n
        with open(os.path.join(root, name + ".py"), "w") as f:
            f.write(FLOW.format(n=n))
        seconds += timed([sys.executable, name + ".py", "dagster", "create",
                          name + "_dagster.py"], root, env)
        files.append(os.path.join(root, name + "_dagster.py"))
    return seconds, files


def dg_project(parent: str, flows: int, env: dict) -> str:
    timed([os.path.join(BIN, "create-dagster"), "project", "--no-uv-sync", "bench"], parent,
          env)
    root = os.path.join(parent, "bench")
    for n in range(1, flows + 1):
        folder = os.path.join(root, "src", "bench", "defs", "flows", "flow_%02d" % n)
        os.makedirs(folder)
        with open(os.path.join(folder, "flow.py"), "w") as f:
            f.write(FLOW.format(n=n))
        set_refresh(folder, True)
    return root


def set_refresh(folder: str, refresh_if_dev: bool) -> None:
    attributes = {"flow_file": "flow.py"}
    if not refresh_if_dev:
        attributes["defs_state"] = {"management_type": "LOCAL_FILESYSTEM",
                                    "refresh_if_dev": False}
    with open(os.path.join(folder, "defs.yaml"), "w") as f:
        yaml.safe_dump({"type": COMPONENT, "attributes": attributes}, f)


# One Python process loading every definitions file, as one code location would (they
# cannot be one: each defines ops named after its steps, and every flow has a `start`).
LOAD_FILES = """
import importlib.util, sys
for n, path in enumerate(sys.argv[1:]):
    spec = importlib.util.spec_from_file_location("defs_%d" % n, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.defs.get_repository_def()
"""
# The project's definitions from stored state, in one process, as its code server loads them.
LOAD_PROJECT = """
import importlib, sys
from pathlib import Path
from dagster.components.core.component_tree import ComponentTree
sys.path.insert(0, sys.argv[1] + "/src")
tree = ComponentTree(defs_module=importlib.import_module("bench.defs"),
                     project_root=Path(sys.argv[1]))
tree.build_defs().get_repository_def()
"""


def median(argv, cwd, env, runs) -> str:
    times = [timed(argv, cwd, env) for _ in range(runs)]
    return "%.1f (%.1f-%.1f)" % (statistics.median(times), min(times), max(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="mfdbench-component-")
    env = base_env()
    env.update(DAGSTER_HOME=os.path.join(work, "home"), DAGSTER_DG_UPDATE_CHECK_ENABLED="0",
               DAGSTER_DISABLE_TELEMETRY="1")
    os.makedirs(env["DAGSTER_HOME"])
    with open(os.path.join(env["DAGSTER_HOME"], "dagster.yaml"), "w") as f:
        f.write("telemetry:\n  enabled: false\n")
    dagster, dg = os.path.join(BIN, "dagster"), os.path.join(BIN, "dg")

    create_s, files = generated_files(os.path.join(work, "generated"), args.flows, env)
    root = dg_project(work, args.flows, env)
    project_env = dict(env, PYTHONPATH=os.path.join(root, "src"))
    refresh_all = timed([dg, "utils", "refresh-defs-state"], root, project_env)
    one = os.path.join(root, "src", "bench", "defs", "flows", "flow_01")
    refresh_one = median([sys.executable, "flow.py", "dagster", "create", "--plan-file",
                          os.path.join(work, "one_state")], one, env, args.runs)

    rows = [("make all N (create each / dg utils refresh-defs-state)",
             "%.1f" % create_s, "%.1f" % refresh_all),
            ("refresh one flow's state (`create --plan-file`, what the refresh runs)",
             "", refresh_one)]
    rows.append(("load in one Python process (import, build the repository)",
                 median([sys.executable, "-c", LOAD_FILES, *files], work, env, args.runs),
                 median([sys.executable, "-c", LOAD_PROJECT, root], root, env, args.runs)))
    generated_argv = [a for f in files for a in ("-f", f)]
    rows.append(("load as code servers (dagster definitions validate --load-with-grpc: one "
                 "per file / one for the project)",
                 median([dagster, "definitions", "validate", "--load-with-grpc",
                         *generated_argv], work, env, args.runs),
                 median([dagster, "definitions", "validate", "--load-with-grpc", "-m",
                         "bench.definitions"], root, project_env, args.runs)))
    rows.append(("dg list defs (refreshes every state)", "",
                 median([dg, "list", "defs"], root, project_env, args.runs)))
    for n in range(1, args.flows + 1):
        set_refresh(os.path.join(root, "src", "bench", "defs", "flows", "flow_%02d" % n),
                    False)
    rows.append(("dg list defs (stored state, refresh_if_dev: false)", "",
                 median([dg, "list", "defs"], root, project_env, args.runs)))

    print("%d flows (4 steps, a foreach), %d run(s) each: seconds, median (min-max)\n"
          % (args.flows, args.runs))
    print("| | %d generated files | a dg project, %d components |" % (args.flows, args.flows))
    print("|---|---|---|")
    for label, generated, component in rows:
        print("| %s | %s | %s |" % (label, generated, component))


if __name__ == "__main__":
    main()
