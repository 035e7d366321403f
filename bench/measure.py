"""Measure one command: wall time, CPU time of its whole process tree, peak memory.

- CPU time: getrusage(RUSAGE_CHILDREN) deltas around the command. Dagster's
  forkserver (and anything else daemonised) is not waited for by its parent, so
  its CPU time would be lost; this process makes itself a *child subreaper*
  (Linux prctl) so orphans are re-parented here, and reaps every descendant after
  the command ends. Their CPU time then lands in RUSAGE_CHILDREN too.
- Peak memory: the process tree (descendants of this process) is polled every
  0.2 s; RSS (VmRSS) and PSS (smaps_rollup, shared pages split between sharers,
  which matters for forked workers) are summed per poll, and the maximum kept.
  Processes that live less than one poll interval can be missed.
- Servers the benchmark started itself (PostgreSQL, say) are children too: their process
  trees, given as `servers`, are neither measured nor reaped.
"""

import ctypes
import os
import signal
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36
POLL_SECONDS = 0.2
REAP_TIMEOUT_SECONDS = 30


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        return False


@dataclass
class Measurement:
    returncode: int
    wall: float
    cpu: float  # user + system seconds of the whole tree
    peak_rss_mb: float
    peak_pss_mb: float
    peak_procs: int
    load_before: float
    load_after: float


def _children_map():
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: split after the last ')'
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    return children


def descendants(root: int, skip=()):
    """The descendants of root, but for the processes in skip and their descendants."""
    children = _children_map()
    out, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child in skip:
                continue
            out.append(child)
            stack.append(child)
    return out


def _memory_kb(pid: int):
    rss = pss = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                    break
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except (OSError, ValueError):
        pass
    return rss, pss


class TreePoller(threading.Thread):
    def __init__(self, servers=()):
        super().__init__(daemon=True)
        self.stop = threading.Event()
        self.servers = frozenset(servers)
        self.peak_rss = self.peak_pss = self.peak_procs = 0

    def run(self):
        me = os.getpid()
        while not self.stop.is_set():
            pids = descendants(me, self.servers)
            rss = pss = 0
            for pid in pids:
                r, p = _memory_kb(pid)
                rss += r
                pss += p
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(pids))
            self.stop.wait(POLL_SECONDS)


def _reap_all(servers=()):
    """Wait for every remaining descendant (re-parented orphans included), but the
    servers' trees."""
    deadline = time.monotonic() + REAP_TIMEOUT_SECONDS
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        if servers and not descendants(os.getpid(), servers):
            return
        if time.monotonic() > deadline:
            for leftover in descendants(os.getpid(), servers):
                try:
                    os.kill(leftover, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = float("inf")
        time.sleep(0.05)


def _cpu_children() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def measure(argv, cwd, env, log_path, servers=()) -> Measurement:
    """`servers`: pids of servers the benchmark started (not measured, left running)."""
    servers = frozenset(servers)
    _reap_all(servers)
    load_before = os.getloadavg()[0]
    cpu0 = _cpu_children()
    poller = TreePoller(servers)
    poller.start()
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        proc.wait()
    wall = time.monotonic() - started
    _reap_all(servers)
    poller.stop.set()
    poller.join()
    return Measurement(
        returncode=proc.returncode,
        wall=wall,
        cpu=_cpu_children() - cpu0,
        peak_rss_mb=poller.peak_rss / 1024.0,
        peak_pss_mb=poller.peak_pss / 1024.0,
        peak_procs=poller.peak_procs,
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )


def median_range(values, fmt: str = "%.1f") -> str:
    """`median (min-max)` of the values, or the one value."""
    med = statistics.median(values)
    if len(values) == 1:
        return fmt % med
    return ("%s (%s-%s)" % (fmt, fmt, fmt)) % (med, min(values), max(values))
