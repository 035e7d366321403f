"""@exit_hook functions, run once after the flow finishes, as on Argo.

Dagster op hooks carry them, because they work wherever the job runs (no daemon
needed): `on_success` hooks follow the success of the end step, which runs last;
`on_error` hooks follow the first op that fails for good (after its retries).
On Argo the exit hook runs once the workflow is over, after every task still
running when the first one failed; so the error hook first waits until no other
step of the run is running or waiting for a retry (see `wait_for_other_steps`).
Several ops may fail at once, so a per-run marker makes the error hooks run only
once per Dagster run (a re-execution that fails again notifies again).
Each hook runs like Metaflow's own exit-hook script, in a subprocess, given the
run if it asks for a `run` argument.
"""

import os
import subprocess
import sys
import tempfile
import time

from dagster import DagsterEventType

from .. import naming
from ..plan import FlowPlan

EXIT_HOOK_SCRIPT = "metaflow.plugins.exit_hook.exit_hook_script"
# The step events that tell whether a step is still running (or will run again).
STEP_EVENTS = {
    DagsterEventType.STEP_WORKER_STARTING,
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_UP_FOR_RETRY,
    DagsterEventType.STEP_RESTARTED,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SKIPPED,
}
STEP_DONE = {
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SKIPPED,
}
# How long the run must stay without a running step before the error hooks run: the
# executor launches a step that became ready a moment after its upstream step ended.
SETTLE_SECONDS = 5.0
POLL_SECONDS = 1.0


def run_exit_hooks(plan: FlowPlan, context, kind: str, env: dict, flow_file: str,
                   cwd: str) -> None:
    """The hooks run from the flow file of the code package, where the tasks run."""
    functions = plan.exit_hooks.get(kind, [])
    if not functions:
        return
    if not _first_call(context.run_id, kind):
        return
    if kind == "on_error":
        wait_for_other_steps(context)
    run = context.instance.get_run_by_id(context.run_id)
    run_pathspec = "%s/%s" % (plan.flow_name, naming.metaflow_run_id_of(run))
    for function in functions:
        context.log.info("Running exit hook %s(%s) for %s" % (function, kind, run_pathspec))
        proc = subprocess.run(
            [sys.executable, "-m", EXIT_HOOK_SCRIPT, flow_file, function, run_pathspec],
            cwd=cwd, env=env, capture_output=True, text=True,
        )
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            context.log.error("Exit hook %s failed (exit code %d)" % (function, proc.returncode))


def wait_for_other_steps(context, settle: float = SETTLE_SECONDS,
                         poll: float = POLL_SECONDS) -> None:
    """Return once no step of the run but this hook's own has been running, or waiting to
    be retried, for `settle` seconds; or once the run is being cancelled.

    Steps that can still start (branches independent of the failure) start while others
    run, so an idle moment that lasts `settle` seconds means the run is over but for us.
    """
    instance, run_id = context.instance, context.run_id
    last_event = {}
    cursor = None
    idle_since = None
    logged = False
    while True:
        connection = instance.get_records_for_run(run_id, cursor=cursor, of_type=STEP_EVENTS)
        cursor = connection.cursor
        for record in connection.records:
            entry = record.event_log_entry
            if entry.step_key:
                last_event[entry.step_key] = entry.dagster_event.event_type
        running = sorted(key for key, kind in last_event.items()
                         if key != context.step_key and kind not in STEP_DONE)
        if running or connection.records:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= settle:
            return
        if running and not logged:
            context.log.info("Exit hooks wait for the steps still running: %s"
                             % ", ".join(running))
            logged = True
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished or run.status.value == "CANCELING":
            return
        time.sleep(poll)


def _first_call(run_id: str, kind: str) -> bool:
    """True the first time this is asked for a run and kind, on this machine."""
    folder = os.path.join(tempfile.gettempdir(), "metaflow-dagster-exit-hooks")
    os.makedirs(folder, exist_ok=True)
    try:
        os.close(os.open(os.path.join(folder, "%s.%s" % (run_id, kind)),
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True
