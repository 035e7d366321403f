"""Helpers for end-to-end tests: compile a flow with the real CLI, run the job
with the real `dagster job execute` against a temporary SQLite instance, and
read the result back through Dagster's instance and Metaflow's Client."""

import importlib.util
import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import yaml
from services import free_port, graphql, group_members, log_tail

REPO = Path(__file__).resolve().parent.parent
FLOWS = REPO / "tests" / "flows"
EXAMPLES = REPO / "examples"
PYTHON = sys.executable
DAGSTER = str(Path(sys.executable).parent / "dagster")
DG = str(Path(sys.executable).parent / "dg")


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
           expect_ok=True, env=None, with_file=True) -> subprocess.CompletedProcess:
    """`python flow.py [top_args] dagster create FILE [create_args]`, in the flow's
    directory; with_file=False leaves FILE out (create picks its default name)."""
    defs_name = defs_name or flow_file.stem + "_dagster.py"
    file_arg = [defs_name] if with_file else []
    argv = [PYTHON, flow_file.name, *top_args, "dagster", "create", *file_arg, *create_args]
    proc = subprocess.run(argv, cwd=flow_file.parent, capture_output=True, text=True,
                          env=env or env_for())
    if expect_ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def compile_flow(tmp_path: Path, name: str, *create_args: str, top_args=(),
                 source_dir: Path = FLOWS) -> Compiled:
    flow_file = copy_flow(tmp_path, source_dir / ("%s.py" % name))
    return compile_file(flow_file, *create_args, top_args=top_args)


def compile_file(flow_file: Path, *create_args: str, top_args=(), defs_name=None,
                 env=None) -> Compiled:
    """Compile a flow file already in place (several deployments of one flow file can
    sit side by side under different defs_name)."""
    defs_name = defs_name or flow_file.stem + "_dagster.py"
    proc = create(flow_file, *create_args, top_args=top_args, defs_name=defs_name, env=env)
    defs = flow_file.parent / defs_name
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


def execute_argv(compiled: Compiled, run_config: Optional[dict] = None) -> List[str]:
    """The `dagster job execute` command line for a compiled job (run it in
    compiled.flow_dir with env_for(dagster_home))."""
    argv = [DAGSTER, "job", "execute", "-f", str(compiled.defs_file), "-j", compiled.job_name]
    if run_config:
        config_file = compiled.flow_dir / "run_config.yaml"
        config_file.write_text(yaml.safe_dump(run_config))
        argv += ["-c", str(config_file)]
    return argv


def run_dagster(compiled: Compiled, dagster_home: Path, run_config: Optional[dict] = None,
                env_extra: Optional[dict] = None,
                timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `dagster job execute` to completion; the finished process."""
    return subprocess.run(execute_argv(compiled, run_config), cwd=compiled.flow_dir,
                          capture_output=True, text=True,
                          env=env_for(dagster_home, **(env_extra or {})), timeout=timeout)


def execute(compiled: Compiled, dagster_home: Path, run_config: Optional[dict] = None,
            env_extra: Optional[dict] = None, timeout: int = 300) -> RunResult:
    proc = run_dagster(compiled, dagster_home, run_config, env_extra, timeout)
    return latest_run(dagster_home, compiled.job_name, proc.stdout + proc.stderr)


def latest_run(dagster_home: Path, job_name: str, output: str = "") -> RunResult:
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import RunsFilter

    from metaflow_dagster import naming

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_runs(filters=RunsFilter(job_name=job_name), limit=1)[0]
        steps = {s.step_key: s for s in instance.get_run_step_stats(run.run_id)}
        return RunResult(run.run_id, run.status.value, steps, output,
                         naming.metaflow_run_id_of(run))


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


def output_metadata(dagster_home: Path, run_id: str) -> dict:
    """{(step key, mapping key or None): {label: value}} of the run's op outputs."""
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.all_logs(run_id, of_type=DagsterEventType.STEP_OUTPUT)
    outputs = {}
    for record in records:
        data = record.dagster_event.event_specific_data
        outputs[(record.dagster_event.step_key, data.mapping_key)] = {
            k: v.value for k, v in data.metadata.items()}
    return outputs


_loaded = itertools.count()


def load_definitions(defs_file: Path):
    """Import a generated definitions file in-process, as Dagster does; the module
    (its `defs`, and `FLOW.plan`, the plan it embeds)."""
    name = "metaflow_dagster_generated_%d" % next(_loaded)
    spec = importlib.util.spec_from_file_location(name, defs_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def built_job(compiled: Compiled):
    """The Dagster JobDefinition a compiled definitions file builds."""
    return load_definitions(compiled.defs_file).defs.get_job_def(compiled.job_name)


def executor_of(job, run_config: Optional[dict] = None, instance=None, wrapped: bool = False):
    """The executor a run of `job` with `run_config` gets (built, not run): the one
    that runs the steps, looked through the wrappers that check the run's end
    (runtime/executors/end_check.py), send its heartbeat
    (runtime/executors/run_heartbeat.py) and supervise its worker
    (runtime/executors/multiprocess.py); with wrapped=True, the executor as built."""
    from dagster import DagsterInstance, InitExecutorContext
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.system_config.objects import ResolvedRunConfig

    from metaflow_dagster.runtime.executors.wrapping import WrappingExecutor

    config = ResolvedRunConfig.build(job, run_config or {}).execution.execution_engine_config
    with DagsterInstance.ephemeral() if instance is None else nullcontext(instance) as instance:
        executor = job.executor_def.executor_creation_fn(InitExecutorContext(
            job=InMemoryJob(job), executor_def=job.executor_def, executor_config=config,
            instance=instance))
    while not wrapped and isinstance(executor, WrappingExecutor):
        executor = executor.inner
    return executor


def process_alive(pid: int) -> bool:
    """True while pid is a live process; a zombie (exited, not yet reaped) is dead."""
    try:
        with open("/proc/%d/status" % pid) as f:
            state = next(line for line in f if line.startswith("State:"))
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return False
    return state.split()[1] not in ("Z", "X")


def forked_from_template(pid: int) -> bool:
    """True when the live process pid is a child of a task template (a forked task),
    not of the op's process (a fresh interpreter)."""
    with open("/proc/%d/stat" % pid) as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    with open("/proc/%d/cmdline" % ppid, "rb") as f:
        return b"metaflow_dagster.task.template" in f.read()


def wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:
    """Poll predicate until it is true or timeout seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(interval)
    return True


# --- a real `dg dev` (webserver + daemon: schedules, sensors, queued runs) -----------------

FINISHED_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")


def quiet_instance(dagster_home: Path) -> Path:
    """Turn telemetry off in a Dagster home (no banner, no network), as tests want it."""
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return dagster_home


class DagsterDev:
    """`dg dev -f DEFS [-f DEFS ...]` against dagster_home, as the README opens the UI, on
    127.0.0.1 and a free port; as a context manager.

    Started in its own session so that stopping it reaches every process it started
    (code servers, webserver, daemon, run workers): SIGINT first, as Ctrl-C would, then
    SIGKILL for whatever is left. Its output goes to dagster_dev.log in dagster_home.
    """

    def __init__(self, dagster_home: Path, defs_files: List[Path], cwd: Path,
                 env: Optional[dict] = None, log_level: Optional[str] = None,
                 port: Optional[int] = None, command: Optional[List[str]] = None):
        """`env` (default: env_for(dagster_home)) is used as given; `command`, when given,
        is run instead of the `dg dev` built here and must serve defs_files on `port`
        (e.g. the README's own command line)."""
        self.dagster_home = Path(dagster_home)
        self.defs_files = [Path(f) for f in defs_files]
        self.cwd = cwd
        self.env = env_for(dagster_home) if env is None else dict(env)
        self.log_level = log_level
        self.port = port or free_port()
        self.command = command
        self.log_path = self.dagster_home / "dagster_dev.log"
        self.location = ""  # the first code location's name, once loaded
        self.proc: Optional[subprocess.Popen] = None
        self._stopped = False

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    def __enter__(self) -> "DagsterDev":
        argv = self.command or self._dg_dev()
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(argv, cwd=self.cwd, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=_default_signals)
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _dg_dev(self) -> List[str]:
        argv = [DG, "dev", "-h", "127.0.0.1", "-p", str(self.port)]
        for defs in self.defs_files:
            argv += ["-f", str(defs)]
        if self.log_level:
            argv += ["--log-level", self.log_level]
        return argv

    def locations(self) -> List[dict]:
        """The workspace's code locations: name, loadStatus, and the load error if any."""
        data = self.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
            "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
        return data["workspaceOrError"].get("locationEntries") or []

    def wait_ready(self, timeout: float = 180) -> None:
        """Until every code location has loaded (the webserver answers for all of them)."""
        def ready():
            assert self.proc.poll() is None, "dg dev exited (%s):\n%s" % (
                self.proc.returncode, self.log_tail())
            try:
                entries = self.locations()
            except (OSError, ValueError):
                return False  # not listening yet, or answering but not ready
            for entry in entries:
                error = entry["locationOrLoadError"]
                assert not (error and error["__typename"] == "PythonError"), \
                    "code location %s failed to load:\n%s" % (entry["name"], error["message"])
            loaded = [e for e in entries if e["loadStatus"] == "LOADED"
                      and e["locationOrLoadError"]]
            return len(loaded) == len(entries) == len(self.defs_files)

        assert wait_until(ready, timeout, interval=1), "dg dev not ready:\n" + self.log_tail()
        self.location = self.locations()[0]["name"]

    def graphql(self, query: str, variables: Optional[dict] = None, timeout: float = 30) -> dict:
        return graphql(self.url, query, variables, timeout)

    def stop_schedule(self, defs_file: Path, schedule_name: str) -> None:
        selector = {"repositoryLocationName": defs_file.name,
                    "repositoryName": "__repository__", "scheduleName": schedule_name}
        state = self.graphql(
            "query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) "
            "{ ... on Schedule { scheduleState { id } } } }", {"s": selector}
        )["scheduleOrError"]["scheduleState"]
        result = self.graphql(
            "mutation($id: String!) { stopRunningSchedule(id: $id) { __typename "
            "... on ScheduleStateResult { scheduleState { status } } } }", {"id": state["id"]}
        )["stopRunningSchedule"]
        assert result["scheduleState"]["status"] == "STOPPED", result

    def stop(self, grace: float = 20) -> None:
        """SIGINT to the process group it leads, then SIGKILL to whatever is left after
        grace seconds. Stopping twice is stopping once."""
        if self.proc is None or self._stopped:
            return
        self._stopped = True
        pgid = self.proc.pid  # it leads its own session, so its pid is the group id
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            if wait_until(lambda: self.proc.poll() is not None and not group_alive(pgid),
                          grace, interval=0.5):
                break
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)


def _default_signals() -> None:
    """In the child, before exec: a shell that runs the tests in the background leaves
    SIGINT ignored, and `dg dev` would inherit that and not stop on Ctrl-C's signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is left in process group pgid."""
    return bool(group_members(pgid))


def job_runs(dagster_home: Path, job_name: str) -> list:
    """Every Dagster run of a job in the instance (DagsterRun objects, oldest first)."""
    from dagster import DagsterInstance
    from dagster._core.storage.dagster_run import RunsFilter

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        return list(reversed(instance.get_runs(filters=RunsFilter(job_name=job_name))))


def sensor_ticked_after(dagster_home: Path, sensor_name: str, timestamp: float) -> bool:
    """True once the daemon has finished a tick of the sensor that began after
    `timestamp`: whatever the sensor had to start by then, it has asked for."""
    from dagster import DagsterInstance
    from dagster._core.definitions.run_request import InstigatorType
    from dagster._core.scheduler.instigation import TickStatus

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.name == sensor_name:
                ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id,
                                           after=timestamp)
                return any(tick.status != TickStatus.STARTED for tick in ticks)
    return False


def wait_for_runs(dagster_home: Path, job_name: str, count: int, timeout: float,
                  finished: bool = True) -> list:
    """Poll until the job has at least `count` runs (all finished if `finished`);
    the runs, oldest first. Fails naming what it saw."""
    seen = []

    def enough():
        seen[:] = job_runs(dagster_home, job_name)
        done = [r for r in seen if r.status.value in FINISHED_STATUSES]
        return len(seen) >= count and (not finished or len(done) == len(seen))

    assert wait_until(enough, timeout, interval=1), "%s: wanted %d finished runs, got %s" % (
        job_name, count, [(r.run_id, r.status.value) for r in seen])
    return seen


def result_of(dagster_home: Path, run) -> RunResult:
    """A RunResult (steps, Metaflow run id) for a DagsterRun, e.g. one a daemon started."""
    from dagster import DagsterInstance

    from metaflow_dagster import naming

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        run = instance.get_run_by_id(run.run_id)
        steps = {s.step_key: s for s in instance.get_run_step_stats(run.run_id)}
    return RunResult(run.run_id, run.status.value, steps, "",
                     naming.metaflow_run_id_of(run))
