"""Runs check_flow.py as a compiled Dagster job under an executor variant and checks
what must not change: run status, retry events, per-step compute logs, Metaflow
logs via the Client, and (with --terminate) that SIGINT/SIGTERM kills the tasks.

    python bench/prototypes/check_executor.py --variant threads
    python bench/prototypes/check_executor.py --variant threads --terminate
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from variants import VARIANTS  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="threads")
    parser.add_argument("--terminate", action="store_true")
    args = parser.parse_args()
    variant = VARIANTS[args.variant]
    work = tempfile.mkdtemp(prefix="mfdcheck-")
    shutil.copy(os.path.join(HERE, "check_flow.py"), work)
    home = os.path.join(work, "dh")
    os.makedirs(home)
    env = dict(os.environ, DAGSTER_HOME=home, METAFLOW_USER=os.environ.get("METAFLOW_USER", "dev"),
               **variant.env())
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    if args.terminate:
        env["SLEEP"] = "300"
    subprocess.run([sys.executable, "check_flow.py", "dagster", "create", "job.py"], cwd=work,
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = os.path.join(work, "job.py")
    text = open(path).read()
    open(path, "w").write(variant.transform(text))
    log = open(os.path.join(work, "run.log"), "wb")
    proc = subprocess.Popen(["dagster", "job", "execute", "-f", "job.py", "-j", "CheckFlow"],
                            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    if args.terminate:
        # wait until the sleeping body tasks run, then interrupt the run
        deadline = time.time() + 240
        while time.time() < deadline and not _sleepers(work):
            time.sleep(1)
        sleepers = _sleepers(work)
        print("sleeping body tasks before SIGINT:", sleepers)
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            print("FAIL: run did not stop within 60 s of SIGINT")
            proc.kill()
        time.sleep(2)
        alive = [p for p in sleepers if os.path.exists("/proc/%d" % p)]
        print("rc=%s; body tasks still alive after termination: %s -> %s"
              % (proc.returncode, alive, "FAIL" if alive else "ok"))
    else:
        proc.wait()
    os.environ["DAGSTER_HOME"] = home
    from dagster import DagsterInstance
    instance = DagsterInstance.get()
    run = instance.get_runs()[0]
    events = instance.all_logs(run.run_id)
    types = {}
    for e in events:
        if e.dagster_event:
            types.setdefault(e.dagster_event.event_type_value, []).append(e.step_key)
    print("run status:", run.status.value)
    for t in ("STEP_UP_FOR_RETRY", "STEP_RESTARTED", "STEP_FAILURE", "LOGS_CAPTURED"):
        print("%-18s %s" % (t, types.get(t)))
    print("STEP_SUCCESS      ", sorted(types.get("STEP_SUCCESS", [])))
    # per-step compute logs: which step keys does each captured log file belong to
    manager = instance.compute_log_manager
    for e in events:
        de = e.dagster_event
        if de and de.event_type_value == "LOGS_CAPTURED":
            data = de.logs_captured_data
            key = manager.build_log_key_for_run(run.run_id, data.file_key)
            out = manager.get_log_data(key)
            print("  log %s steps=%s stdout=%r stderr=%r" % (
                data.file_key, data.step_keys, (out.stdout or b"")[:80],
                (out.stderr or b"")[-80:]))
    if not args.terminate:
        out = subprocess.run([sys.executable, "-c", """
from metaflow import Flow, namespace
namespace(None)
run = Flow('CheckFlow').latest_run
print('metaflow run', run.pathspec, 'successful', run.successful)
for s in run:
    for t in s:
        print(' ', t.pathspec, 'stdout=%r' % t.stdout.strip()[:60])
"""], cwd=work, env=env, capture_output=True, text=True)
        print(out.stdout, out.stderr[-2000:])
    print("workdir", work)


def _sleepers(work):
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmd = open("/proc/%s/cmdline" % name, "rb").read().split(b"\0")
            except OSError:
                continue
            if any(c.endswith(b"check_flow.py") for c in cmd) and b"body" in cmd and b"step" in cmd:
                try:
                    cwd = os.readlink("/proc/%s/cwd" % name)
                except OSError:
                    continue
                if cwd == work:
                    pids.append(int(name))
    return pids


if __name__ == "__main__":
    main()
