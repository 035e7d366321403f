"""Hosts that share nothing but a network, on this one machine, for the tests of a deployment
on many hosts (head, workers, a user's laptop).

A host is a Linux network namespace (`ip netns`), plus a mount, PID and UTS namespace of its own
held by a small init process (`unshare`): its own address on a private subnet, its own
processes (a process on one host can neither see nor signal another's), its own host name, and
its own files: a private `/tmp`, `/var/tmp`, `/dev/shm` and `/srv` (which holds its HOME, its
working directories and its DAGSTER_HOME), backed by a directory of the test's. The rest of the
machine's file system (the project and its venv: installed software) is read-only on a host.
The hosts are plugged into one bridge, in a namespace of its own: cutting a host's cable is
`host.unplug()`.

    with hosts.topology(tmp_path / "hosts") as net:
        head, worker = net["head"], net["worker-1"]
        with services.redis("/srv/redis", host=head) as redis: ...
        worker.run([PYTHON, "-c", "..."], cwd="/srv/work")

`services.py`'s servers take such a host (`host=`); the test process itself stays outside
every host and reaches their network with `host.call(fn)` (fn runs on a thread that joined the
host's network namespace).

Every namespace is named `mfh-<pid of the test process>-<n>-<host>`: on exit (also when a test
fails) each host's init is killed, which kills every process left in its PID namespace, and
each namespace is deleted; a crashed session's leftovers (namespaces whose test process is
gone, and their processes) are removed by the next `topology()`. Needs root, iproute2 and
util-linux (`nsenter`, `unshare`).
"""

import contextlib
import ctypes
import itertools
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import services

PREFIX = "mfh"
SUBNET = "10.77.0"
# The host part of each host's address on the private subnet.
ADDRESSES = {"head": 1, "worker-1": 11, "worker-2": 12, "client": 21}
# Host.cut_off_from: the routing table of the cut ports, and an address no host has.
CUT_TABLE = "77"
NO_SUCH_GATEWAY = 250
SWITCH = "switch"
# A host's own directories, each backed by a directory of the test's (private to the host).
PRIVATE_DIRS = ("/srv", "/var/tmp", "/tmp")  # /tmp last: the backing directories live there
HOME = "/srv/home"
PATH = os.pathsep.join([str(services.VENV_BIN), "/usr/local/sbin", "/usr/local/bin",
                        "/usr/sbin", "/usr/bin", "/sbin", "/bin"])
CLONE_NEWNET = 0x40000000
# PID 1 of a host: reaps the orphans that end up with it (as init does), exits on SIGTERM.
INIT = ("import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "while True:\n"
        "    try:\n"
        "        os.wait()\n"
        "    except ChildProcessError:\n"
        "        time.sleep(0.5)\n")
_libc = ctypes.CDLL(None, use_errno=True)
_topologies = itertools.count(1)


class HostError(RuntimeError):
    """A host could not be made (the message says which command failed and how)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise HostError("ip %s: %s" % (" ".join(args), proc.stderr.strip()))
    return proc


class HostProcess(subprocess.Popen):
    """A process started on a host. `pid` is `nsenter`'s, in the machine's PID namespace (it
    leads the process group, and exits with the process's status); `leader` is the process
    itself, which nsenter forked into the host's PID namespace."""

    @property
    def leader(self) -> int:
        deadline = time.monotonic() + 10
        while True:
            inner = services.children(self.pid)
            if inner:
                return inner[0]
            if self.poll() is not None or time.monotonic() > deadline:
                return self.pid
            time.sleep(0.01)


class Host(services.Machine):
    """One host: see the module's docstring. Paths given to its methods are paths on the host."""

    def __init__(self, name: str, netns: str, address: str, root: Path, switch: str):
        self.name, self.netns, self.address = name, netns, address
        self.root = root  # where this process sees the host's private directories
        self.switch = switch  # the namespace of the bridge
        self.init: Optional[subprocess.Popen] = None
        self.init_pid = 0  # PID 1 of the host, as the machine numbers it

    def __repr__(self) -> str:
        return f"Host({self.name} {self.address})"

    @property
    def hostname(self) -> str:
        return self.name

    @property
    def port(self) -> str:
        """The bridge's port this host is plugged into (in the switch's namespace)."""
        return self.name

    # ------------------------------------------------------------------ files

    def path(self, path) -> Path:
        path = Path(path)
        for private in PRIVATE_DIRS:
            if path == Path(private) or Path(private) in path.parents:
                return self.root / private.strip("/").replace("/", "_") / path.relative_to(
                    private)
        return path  # the machine's own files, read-only on the host

    # ------------------------------------------------------------------ processes

    def env(self, **extra: str) -> Dict[str, str]:
        """A login environment on this host: its PATH (the venv first), HOME, locale and
        METAFLOW_USER; nothing of the test process's own environment."""
        return {"PATH": PATH, "HOME": HOME, "USER": "root", "LANG": "C.UTF-8",
                "LC_ALL": "C.UTF-8", "METAFLOW_USER": "ci", "PYTHONUNBUFFERED": "1",
                "PYTHONDONTWRITEBYTECODE": "1", **extra}

    def _argv(self, argv: Sequence[str], cwd, user) -> List[str]:
        # nsenter opens the working directory before it enters the host: name it through the
        # init's root, which is the host's view of the files.
        workdir = f"/proc/{self.init_pid}/root/{str(cwd or HOME).lstrip('/')}"
        command = ["nsenter", f"--target={self.init_pid}", "--mount", "--net", "--pid", "--uts",
                   f"--wd={workdir}"]
        if user is not None:
            command += [f"--setuid={user.pw_uid}", f"--setgid={user.pw_gid}"]
        return command + ["--", *map(str, argv)]

    def _env(self, env: Optional[dict]) -> dict:
        """`env` as it applies on this host: its own HOME and temp dir, not the caller's."""
        if env is None:
            return self.env()
        env = dict(env, HOME=HOME)
        env.pop("TMPDIR", None)
        return env

    def popen(self, argv, *, user=None, cwd=None, env=None, **kwargs) -> HostProcess:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return HostProcess(self._argv(argv, cwd, user), env=self._env(env),
                           start_new_session=True, **kwargs)

    def run(self, argv, *, user=None, cwd=None, env=None, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self._argv(argv, cwd, user), env=self._env(env), **kwargs)

    def pids(self) -> List[int]:
        """The live processes of this host (as the machine numbers them), its init included."""
        return [pid for pid in services._all_pids() if self.owns(pid)]

    def owns(self, pid: int) -> bool:
        """Whether `pid` runs on this host (in its PID namespace)."""
        try:
            return os.readlink(f"/proc/{pid}/ns/pid") == self._pid_ns
        except OSError:
            return False

    # ------------------------------------------------------------------ network

    def call(self, fn, *args):
        """fn(*args) on a thread that joined this host's network namespace (the calling
        thread's own network is untouched). Sockets fn opens belong to the host's network."""
        outcome = {}

        def on_host():
            fd = os.open(f"/run/netns/{self.netns}", os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    outcome["error"] = OSError(errno, "setns %s: %s" % (self.netns,
                                                                        os.strerror(errno)))
                    return
            finally:
                os.close(fd)
            try:
                outcome["value"] = fn(*args)
            except BaseException as error:  # re-raised in the caller's thread
                outcome["error"] = error

        thread = threading.Thread(target=on_host, name=f"on-{self.name}")
        thread.start()
        thread.join()
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    def unplug(self) -> None:
        """Pull this host's cable: its port on the bridge goes down (connections hang, nothing
        is refused, as when a host drops off the network)."""
        _ip("-n", self.switch, "link", "set", self.port, "down")

    def plug(self) -> None:
        _ip("-n", self.switch, "link", "set", self.port, "up")

    def cut_off_from(self, other: "Host", port: int) -> None:
        """This host no longer reaches `port` on `other`, its other ports still answer: a
        routing rule sends those packets to a gateway that is not there, so a connection
        hangs until the neighbour lookup gives up ("No route to host", after seconds)."""
        _ip("-n", self.netns, "route", "add", f"{other.address}/32", "via",
            f"{SUBNET}.{NO_SUCH_GATEWAY}", "table", CUT_TABLE)
        _ip("-n", self.netns, "rule", "add", "to", f"{other.address}/32", "ipproto", "tcp",
            "dport", str(port), "lookup", CUT_TABLE)

    def reconnect_to(self, other: "Host", port: int) -> None:
        _ip("-n", self.netns, "rule", "del", "to", f"{other.address}/32", "ipproto", "tcp",
            "dport", str(port), "lookup", CUT_TABLE)
        _ip("-n", self.netns, "route", "del", f"{other.address}/32", "table", CUT_TABLE)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Make the host's directories and start its init in its namespaces (mounts done)."""
        for private in PRIVATE_DIRS:
            backing = self.path(private)
            backing.mkdir(parents=True, exist_ok=True)
            backing.chmod(0o1777 if "tmp" in private else 0o755)
        self.path(HOME).mkdir(exist_ok=True)
        ready = self.path("/srv/.host-ready")
        mounts = [f"mount -n --bind {self.path(d)} {d}" for d in PRIVATE_DIRS]
        script = " && ".join(
            [f"hostname {self.name}", "mount -n -t tmpfs -o size=512m tmpfs /dev/shm", *mounts,
             # The machine's files (the project, its venv, Python) are installed software.
             "mount -n -o remount,bind,ro /", "touch /srv/.host-ready",
             f"exec /usr/bin/python3 -c '{INIT}'"])
        self.init = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "unshare", "--pid", "--fork", "--mount-proc",
             "--uts", "--propagation", "private", "--", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while not ready.exists():
            if self.init.poll() is not None or time.monotonic() > deadline:
                output = self.init.stdout.read().decode(errors="replace") if \
                    self.init.poll() is not None else "(still running)"
                raise HostError(f"host {self.name} did not start: {output}")
            time.sleep(0.02)
        self.init_pid = services.children(self.init.pid)[0]
        self._pid_ns = os.readlink(f"/proc/{self.init_pid}/ns/pid")

    def stop(self) -> None:
        """Kill the host's init: the kernel then kills every process left on the host."""
        if self.init is None:
            return
        if self.init_pid and services._proc_stat(self.init_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
        services.stop_process(self.init, sig=signal.SIGKILL, timeout=10, target="group")
        deadline = time.monotonic() + 10
        while self.init_pid and self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.init.stdout:
            self.init.stdout.close()


class Topology(Dict[str, Host]):
    """The hosts by name, and the namespace of the bridge between them."""

    def __init__(self, tag: str, switch: str):
        super().__init__()
        self.tag, self.switch = tag, switch

    def namespaces(self) -> List[str]:
        return [self.switch] + [host.netns for host in self.values()]


def _namespaces() -> List[str]:
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line]


def remove_leftovers() -> List[str]:
    """Delete the namespaces (and kill the processes in them) that an earlier test session
    made and left behind when it died: those named after a process that no longer exists."""
    removed = []
    for name in _namespaces():
        match = re.match(rf"{PREFIX}-(\d+)-", name)
        if not match or services._proc_stat(int(match.group(1))):
            continue
        pids = _ip("netns", "pids", name, check=False).stdout.split()
        for pid in map(int, pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _ip("netns", "del", name, check=False)
        removed.append(name)
    return removed


@contextlib.contextmanager
def topology(base, names: Sequence[str] = tuple(ADDRESSES)) -> Iterator[Topology]:
    """The hosts `names` (of ADDRESSES), on one bridge; their private directories under `base`.
    Everything is removed on exit."""
    missing = [tool for tool in ("ip", "nsenter", "unshare") if not shutil.which(tool)]
    if missing or os.geteuid() != 0:
        raise HostError("hosts need root and %s; install iproute2 and util-linux "
                        "(scripts/install-services.sh)" % (", ".join(missing) or "root"))
    remove_leftovers()
    tag = f"{PREFIX}-{os.getpid()}-{next(_topologies)}"
    net = Topology(tag, f"{tag}-{SWITCH}")
    base = Path(base)
    try:
        _ip("netns", "add", net.switch)
        _ip("-n", net.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", net.switch, "link", "set", "br0", "up")
        for name in names:
            host = Host(name, f"{tag}-{name}", f"{SUBNET}.{ADDRESSES[name]}", base / name,
                        net.switch)
            net[name] = host
            _ip("netns", "add", host.netns)
            # The host's end is its eth0; the other end, named after the host, is on the bridge.
            _ip("link", "add", "eth0", "netns", host.netns, "type", "veth",
                "peer", "name", host.port, "netns", net.switch)
            _ip("-n", net.switch, "link", "set", host.port, "master", "br0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            host.start()
        yield net
    finally:
        for host in net.values():
            host.stop()
        for name in net.namespaces():
            if name in _namespaces():
                _ip("netns", "del", name, check=False)
