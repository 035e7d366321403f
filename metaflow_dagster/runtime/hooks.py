"""@exit_hook functions, run once after the flow finishes, as on Argo.

Dagster op hooks carry them, because they work wherever the job runs (no daemon
needed): `on_success` hooks follow the success of the end step; `on_error`
hooks follow the first op that fails for good (after its retries). Several ops
may fail at once, so a per-run marker makes the error hooks run only once.
Each hook runs like Metaflow's own exit-hook script, in a subprocess, given the
run if it asks for a `run` argument.
"""

import os
import subprocess
import sys
import tempfile

from .. import ids
from ..plan import FlowPlan

EXIT_HOOK_SCRIPT = "metaflow.plugins.exit_hook.exit_hook_script"


def run_exit_hooks(plan: FlowPlan, context, kind: str, env: dict) -> None:
    functions = plan.exit_hooks.get(kind, [])
    if not functions:
        return
    run = context.instance.get_run_by_id(context.run_id)
    if not _first_call(run.root_run_id or run.run_id, kind):
        return
    run_pathspec = "%s/%s" % (plan.flow_name, ids.metaflow_run_id(run.root_run_id or run.run_id))
    for function in functions:
        context.log.info("Running exit hook %s(%s) for %s" % (function, kind, run_pathspec))
        proc = subprocess.run(
            [sys.executable, "-m", EXIT_HOOK_SCRIPT, plan.flow_file, function, run_pathspec],
            cwd=plan.cwd, env=env, capture_output=True, text=True,
        )
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            context.log.error("Exit hook %s failed (exit code %d)" % (function, proc.returncode))


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
