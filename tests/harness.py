"""Helpers for end-to-end tests: compile a flow with the real CLI, run the job
with the real `dagster job execute` against a temporary SQLite instance, and
read the result back through Dagster's instance and Metaflow's Client."""

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import yaml

REPO = Path(__file__).resolve().parent.parent
FLOWS = REPO / "tests" / "flows"
EXAMPLES = REPO / "examples"
PYTHON = sys.executable
DAGSTER = str(Path(sys.executable).parent / "dagster")


def env_for(dagster_home: Optional[Path] = None, **extra) -> dict:
    env = dict(os.environ)
    env.setdefault("METAFLOW_USER", "tester")
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    env.update({k: str(v) for k, v in extra.items()})
    return env


@dataclass
class Compiled:
    flow_dir: Path
    flow_name: str
    defs_file: Path
    job_name: str
    create_output: str


def copy_flow(tmp_path: Path, flow_file: Path) -> Path:
    flow_dir = tmp_path / "flow"
    flow_dir.mkdir(exist_ok=True)
    shutil.copy(flow_file, flow_dir)
    return flow_dir / flow_file.name


def create(flow_file: Path, *create_args: str, top_args=(), defs_name=None,
           expect_ok=True, env=None) -> subprocess.CompletedProcess:
    defs_name = defs_name or flow_file.stem + "_dagster.py"
    argv = [PYTHON, flow_file.name, *top_args, "dagster", "create", defs_name, *create_args]
    proc = subprocess.run(argv, cwd=flow_file.parent, capture_output=True, text=True,
                          env=env or env_for())
    if expect_ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def compile_flow(tmp_path: Path, name: str, *create_args: str, top_args=(),
                 source_dir: Path = FLOWS) -> Compiled:
    flow_file = copy_flow(tmp_path, source_dir / ("%s.py" % name))
    proc = create(flow_file, *create_args, top_args=top_args)
    defs = flow_file.parent / (name + "_dagster.py")
    job = re.search(r"^    name='([^']+)',$", defs.read_text(), re.M).group(1)
    flow_name = re.search(r"Metaflow flow (\w+)\.", defs.read_text()).group(1)
    return Compiled(flow_file.parent, flow_name, defs, job, proc.stdout + proc.stderr)


@dataclass
class RunResult:
    dagster_run_id: str
    status: str
    steps: dict  # step key -> RunStepKeyStatsSnapshot
    output: str
    metaflow_run_id: str

    @property
    def success(self) -> bool:
        return self.status == "SUCCESS"


def execute(compiled: Compiled, dagster_home: Path, run_config: Optional[dict] = None,
            env_extra: Optional[dict] = None, timeout: int = 300) -> RunResult:
    argv = [DAGSTER, "job", "execute", "-f", str(compiled.defs_file), "-j", compiled.job_name]
    if run_config:
        config_file = compiled.flow_dir / "run_config.yaml"
        config_file.write_text(yaml.safe_dump(run_config))
        argv += ["-c", str(config_file)]
    proc = subprocess.run(argv, cwd=compiled.flow_dir, capture_output=True, text=True,
                          env=env_for(dagster_home, **(env_extra or {})), timeout=timeout)
    return latest_run(dagster_home, compiled.job_name, proc.stdout + proc.stderr)


def latest_run(dagster_home: Path, job_name: str, output: str = "") -> RunResult:
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import RunsFilter

    from metaflow_dagster import ids

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_runs(filters=RunsFilter(job_name=job_name), limit=1)[0]
        steps = {s.step_key: s for s in instance.get_run_step_stats(run.run_id)}
        return RunResult(run.run_id, run.status.value, steps, output,
                         ids.metaflow_run_id(run.root_run_id or run.run_id))


def metaflow_run(compiled: Compiled, result: RunResult):
    from metaflow import Run, metadata, namespace

    metadata("local@%s" % compiled.flow_dir)
    namespace(None)
    return Run("%s/%s" % (compiled.flow_name, result.metaflow_run_id))


def step_statuses(result: RunResult) -> dict:
    return {key: stats.status.value for key, stats in result.steps.items()}


def failure_messages(dagster_home: Path, run_id: str) -> List[str]:
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE)
        return [r.dagster_event.event_specific_data.error.message for r in records]
