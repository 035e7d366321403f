"""Helpers for the tests of our commands (trigger, status, resume, Deployer): run the
real `python flow.py dagster ...` commands in a flow directory of its own, wait on
Dagster run states, count task executions."""

import collections
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import List, Optional

from harness import FLOWS, PYTHON, env_for

from metaflow_dagster.deploy.runs import FINISHED
from metaflow_dagster.deploy.targets.embedded import EmbeddedTarget
from metaflow_dagster.deploy.targets.graphql import GraphQLTarget


def flow_dir(tmp_path: Path, *names: str) -> Path:
    """A directory holding copies of the named test flows (its own .metaflow)."""
    directory = tmp_path / "flow"
    directory.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(FLOWS / ("%s.py" % name), directory)
    return directory


def mf(directory: Path, flow: str, *args: str, dagster_home: Optional[Path] = None,
       expect_rc: Optional[int] = 0, timeout: int = 180, **env) -> subprocess.CompletedProcess:
    """`python <flow>.py <args>` in the flow directory."""
    proc = subprocess.run([PYTHON, "%s.py" % flow, *args], cwd=directory, capture_output=True,
                          text=True, env=env_for(dagster_home, **env), timeout=timeout)
    if expect_rc is not None:
        assert proc.returncode == expect_rc, proc.stdout + proc.stderr
    return proc


class Following:
    """`python <flow>.py <args>` started in the background in the flow directory,
    its stdout read line by line as it comes (`wait_for_line`)."""

    def __init__(self, directory: Path, flow: str, *args: str,
                 dagster_home: Optional[Path] = None):
        self.proc = subprocess.Popen(
            [PYTHON, "%s.py" % flow, *args], cwd=directory, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=env_for(dagster_home))
        self.lines: List[str] = []
        self._stderr: List[str] = []
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self._readers = [threading.Thread(target=self._pump, daemon=True),
                         threading.Thread(target=self._stderr.extend, args=(self.proc.stderr,),
                                          daemon=True)]
        for reader in self._readers:
            reader.start()

    def _pump(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _next(self, timeout: float) -> Optional[str]:
        line = self._queue.get(timeout=max(timeout, 0.01))
        if line is not None:
            self.lines.append(line)
        return line

    def wait_for_line(self, text: str, timeout: float = 150) -> str:
        """The first stdout line holding `text`, once it is printed."""
        deadline = time.monotonic() + timeout
        for line in self.lines:
            if text in line:
                return line
        while True:
            try:
                line = self._next(deadline - time.monotonic())
            except queue.Empty:
                raise AssertionError("no %r within %ss in %s" % (
                    text, timeout, self.lines)) from None
            assert line is not None, "%r never printed: %s\n%s" % (
                text, self.lines, "".join(self._stderr))
            if text in line:
                return line

    def finish(self, timeout: float = 180):
        """(exit code, stdout lines, stderr) once the command has ended."""
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        while self._next(10) is not None:
            pass
        return self.proc.returncode, self.lines, "".join(self._stderr)


def field(proc, label: str) -> str:
    """The value printed after `label:` by trigger / resume (Metaflow's echo
    writes to stderr)."""
    output = proc if isinstance(proc, str) else proc.stdout + proc.stderr
    for line in output.replace("\x1b[K", "").splitlines():
        if line.strip().startswith(label + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no %r in:\n%s" % (label, output))


def wait_for(target, run_id: str, statuses=FINISHED, timeout: float = 150):
    """Poll the run until its status is one of `statuses`; its RunState."""
    deadline = time.monotonic() + timeout
    while True:
        state = target.run_state(run_id)
        if state is not None and state.status in statuses:
            return state
        assert time.monotonic() < deadline, "run %s still %s" % (
            run_id, state.status if state else "missing")
        time.sleep(1)


def embedded(dagster_home: Path) -> EmbeddedTarget:
    return EmbeddedTarget(str(dagster_home))


def executions(directory: Path) -> collections.Counter:
    """(step, task id, attempt) -> how many times it ran, from executions.log."""
    path = directory / "executions.log"
    if not path.exists():
        return collections.Counter()
    return collections.Counter(tuple(line.split()) for line in path.read_text().splitlines())


def client(directory: Path):
    """Metaflow's Client, reading the flow directory's local metadata."""
    import metaflow

    metaflow.metadata("local@%s" % directory)
    metaflow.namespace(None)
    return metaflow


def graphql(url: str) -> GraphQLTarget:
    return GraphQLTarget(url)
