"""The task process dies with the process that launched it (the Dagster op's
process), even if that process's reaper is gone too (metaflow_dagster/reaper.py):
Linux's parent-death signal, SIGKILL, armed before any user code runs.

The launcher passes its pid; the variable is removed from this process's
environment, so that the task's own children (a card being rendered, a helper
process) neither arm it nor mistake the task for a dead launcher. The kernel
sends the signal when the launching *thread* ends: the op's thread (or a region's
worker thread) that waits for this task, so in practice when the process dies.
"""

import os
import signal
import sys

from ..naming import LAUNCHER_PID_ENV

PR_SET_PDEATHSIG = 1


def die_with_launcher() -> None:
    launcher = os.environ.pop(LAUNCHER_PID_ENV, None)
    if not launcher or not sys.platform.startswith("linux"):
        return
    import ctypes  # only here: no other part of a task imports it

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(launcher):  # the launcher died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)
