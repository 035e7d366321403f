"""Steps that Metaflow's compute layer runs (@kubernetes, @batch, or every step with
`--with kubernetes`): the command their decorator gives Metaflow's runtime.

Under `python flow.py run`, Metaflow's runtime lets each step decorator rewrite a
task's command line (`runtime_step_cli`): @kubernetes turns `step` into `kubernetes
step` plus the code package and the pod's resources (@resources merged in, @timeout
as the run time limit), @batch into `batch step`. The ops launch these tasks the
same way, so the decorator itself is asked, once, at create time; the runtime adds
the code package and the task's own options (runtime/launch/launcher.py).
"""

import sys
from typing import Dict, List

COMPUTE_LAYERS = ("kubernetes", "batch")


class _StepCommand:
    """What metaflow.runtime.CLIArgs holds for a task, as far as a decorator's
    runtime_step_cli reads and edits it."""

    def __init__(self, step_name: str):
        self.entrypoint = [sys.executable, "flow.py"]
        self.top_level_options: Dict[str, object] = {}
        self.commands = ["step"]
        self.command_args = [step_name]
        self.command_options: Dict[str, object] = {}
        self.env: Dict[str, str] = {}


def compute_layer(node) -> Dict[str, List[str]]:
    """{"command": [...], "options": [...]} for a step the compute layer runs, else {}."""
    decos = [deco for deco in node.decorators if deco.name in COMPUTE_LAYERS]
    if not decos:
        return {}
    from metaflow.runtime import CLIArgs

    command = _StepCommand(node.name)
    # Attempt 0 of 0 user-code retries: the decorator hands the task over; which
    # attempts go to the compute layer is decided per attempt at run time.
    decos[0].runtime_step_cli(command, 0, 0, None)
    layer_command = list(command.commands)
    # The package's metadata, sha and url (appended to command_args) come from the
    # plan at run time; the options are rendered by Metaflow's own CLIArgs.
    command.entrypoint, command.commands, command.command_args = [], [], []
    return {"command": layer_command, "options": [str(a) for a in CLIArgs.get_args(command)]}
