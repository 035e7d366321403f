"""Signals to processes and process groups that may be gone already: the one helper
of the runtime, the task template (task/) and the reaper. Standard library only, as
the reaper and the task template import it."""

import os


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to every process of group `pgid`. False when none is left (or
    none is ours to signal): a task's group outlives it only through its children."""
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_process(pid: int, sig: int) -> bool:
    """Send `sig` to process `pid`; False when it is gone (or not ours to signal)."""
    try:
        os.kill(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
