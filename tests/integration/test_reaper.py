"""Tasks never outlive the process that launched them (metaflow_dagster/reaper.py):
a launcher process starts tasks the way ops do (runtime/processes.run_process), from
its main thread, from a plain thread and from a thread pool's worker (as region ops
do); each task starts one child that stays in its process group and one that leaves
it (a new session). The launcher is then killed with SIGKILL: every task and every
child must be gone within seconds."""

import json
import os
import signal
import subprocess
import sys
import time

from harness import process_alive, wait_until

from metaflow_dagster import naming
from metaflow_dagster.reaper import Reaper, kill_marked

# A task: arms its parent-death signal as dagster_internal does, starts a child in its
# group and one in a session of its own, writes the three pids, then sleeps.
TASK = r"""
import json, subprocess, sys, time
from metaflow_dagster.task.parent_death import die_with_launcher
die_with_launcher()
stay = subprocess.Popen(["sleep", "300"])
leave = subprocess.Popen(["sleep", "300"], start_new_session=True)
with open(sys.argv[1], "w") as f:
    json.dump({"task": __import__("os").getpid(), "children": [stay.pid, leave.pid]}, f)
time.sleep(300)
"""

LAUNCHER = r"""
import sys, threading
from concurrent.futures import ThreadPoolExecutor
from metaflow_dagster.runtime.launch.processes import run_process

task, out = sys.argv[1], sys.argv[2]

def launch(name):
    run_process([sys.executable, task, "%s/%s.json" % (out, name)], {}, out)

threading.Thread(target=launch, args=("thread",), daemon=True).start()
pool = ThreadPoolExecutor(max_workers=2)
pool.submit(launch, "pool")
launch("main")
"""


def _pids(directory, names):
    pids = []
    for name in names:
        data = json.loads((directory / ("%s.json" % name)).read_text())
        pids += [data["task"]] + data["children"]
    return pids


def test_killing_the_launcher_kills_every_task_and_child(tmp_path):
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "launcher.py").write_text(LAUNCHER)
    names = ("main", "thread", "pool")
    launcher = subprocess.Popen([sys.executable, str(tmp_path / "launcher.py"),
                                 str(tmp_path / "task.py"), str(tmp_path)],
                                start_new_session=True)
    pids = []
    try:
        assert wait_until(lambda: all((tmp_path / ("%s.json" % n)).exists() for n in names),
                          60), "the tasks did not start"
        time.sleep(0.2)  # the json files are written whole before the task sleeps
        pids = _pids(tmp_path, names)
        assert len(pids) == 9 and all(process_alive(p) for p in pids)

        os.kill(launcher.pid, signal.SIGKILL)
        killed = time.monotonic()
        launcher.wait()
        assert wait_until(lambda: not any(process_alive(p) for p in pids), 15), [
            p for p in pids if process_alive(p)]
        seconds = time.monotonic() - killed
        print("\nlauncher SIGKILL -> last of 3 tasks and 6 children gone: %.2f s" % seconds)
    finally:
        for pid in pids:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_released_reaper_kills_leftovers_and_calls_nothing(tmp_path):
    """release() is the normal end: marked leftovers are killed, on_death is not called."""
    mark = "%s=%s" % (naming.TASK_OWNER_ENV, "test-%d" % os.getpid())
    name, _, value = mark.partition("=")
    env = dict(os.environ, **{name: value})
    leftover = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    called = tmp_path / "called"
    reaper = Reaper([mark], on_death="os:mkdir", args=str(called))
    try:
        reaper.release()
        assert wait_until(lambda: leftover.poll() is not None, 10)
        time.sleep(0.5)
        assert not called.exists()
    finally:
        if leftover.poll() is None:
            leftover.kill()
        leftover.wait()


def test_kill_marked_finds_a_process_by_its_environment():
    mark = "%s=%s" % (naming.TASK_OWNER_ENV, "other-%d" % os.getpid())
    name, _, value = mark.partition("=")
    unmarked = subprocess.Popen(["sleep", "300"])
    marked = subprocess.Popen(["sleep", "300"], env=dict(os.environ, **{name: value}))
    try:
        time.sleep(0.2)  # until exec: the environment is the new program's
        assert kill_marked([mark]) == 1
        assert marked.wait(timeout=10) == -signal.SIGKILL
        assert unmarked.poll() is None
    finally:
        for proc in (marked, unmarked):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


# A task process arming its parent-death signal as dagster_internal does; it reports
# whether its own children would still see the launcher's pid.
ARMED_TASK = r"""
import os, sys, time
from metaflow_dagster import naming
from metaflow_dagster.task.parent_death import die_with_launcher
die_with_launcher()
with open(sys.argv[1], "w") as f:
    f.write(str(naming.LAUNCHER_PID_ENV in os.environ))
time.sleep(300)
"""

# A launcher without any reaper: only the parent-death signal can stop its task.
BARE_LAUNCHER = r"""
import os, subprocess, sys, time
from metaflow_dagster import naming
env = dict(os.environ)
if sys.argv[3] == "armed":
    env[naming.LAUNCHER_PID_ENV] = str(os.getpid())
task = subprocess.Popen([sys.executable, sys.argv[1], sys.argv[2]], env=env)
with open(sys.argv[2] + ".pid", "w") as f:
    f.write(str(task.pid))
task.wait()
"""


def _bare_launch(tmp_path, mode):
    (tmp_path / "task.py").write_text(ARMED_TASK)
    (tmp_path / "launcher.py").write_text(BARE_LAUNCHER)
    out = tmp_path / mode
    launcher = subprocess.Popen([sys.executable, str(tmp_path / "launcher.py"),
                                 str(tmp_path / "task.py"), str(out), mode])
    assert wait_until(out.exists, 60)
    time.sleep(0.2)
    task = int(out.with_suffix(".pid").read_text())
    os.kill(launcher.pid, signal.SIGKILL)
    launcher.wait()
    return task, out.read_text()


def test_a_task_dies_with_its_launcher_even_without_a_reaper(tmp_path):
    task, launcher_pid_visible = _bare_launch(tmp_path, "armed")
    try:
        assert wait_until(lambda: not process_alive(task), 5)
        assert launcher_pid_visible == "False"  # the task's own children do not inherit it
    finally:
        _kill_if_alive(task)
    unarmed, _ = _bare_launch(tmp_path, "unarmed")
    try:
        time.sleep(1)
        assert process_alive(unarmed)  # what the signal is for
    finally:
        _kill_if_alive(unarmed)


def _kill_if_alive(pid):
    if process_alive(pid):
        os.kill(pid, signal.SIGKILL)
