"""Real servers for the tests that need them: PostgreSQL, Redis, an S3 server (moto) and
Celery workers (dagster-celery).

Each function is a context manager that starts one server on 127.0.0.1, on a free port, writes
its log into the directory it is given, and stops it on exit by its own process id (or, for
servers with children, by its own process group): never by name. Given a `host` (a `Machine`:
tests/hosts.py makes hosts of their own network and files), the server runs there instead, on
the host's address, its directories being paths on that host. A server that cannot start
raises `ServiceError` within about 30 s (90 s for Celery workers) with the tail of its log.

    with services.postgres(tmp_path / "pg") as pg:
        (home / "dagster.yaml").write_text(services.dagster_yaml_for_postgres(pg))

The binaries come from Debian's packages (`scripts/install-services.sh`); the Python parts
(moto, celery, dagster-celery) from the venv of `sys.executable`.
"""

import contextlib
import glob
import http.client
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

# Not resolved: the venv's bin dir holds `python` as a symlink to the base interpreter.
VENV_BIN = Path(sys.executable).parent
INSTALL_HINT = "install the servers with scripts/install-services.sh (as root)"
START_TIMEOUT = 30.0
CELERY_START_TIMEOUT = 90.0
_random = random.SystemRandom()  # unaffected by tests that seed `random`


class ServiceError(RuntimeError):
    """A server could not be started (the message holds the tail of its log)."""


# --------------------------------------------------------------------------- helpers


def free_port(address: str = "127.0.0.1") -> int:
    """A port that `address` can bind now, outside Linux's ephemeral range (32768-60999), so that
    outgoing connections of other processes do not take it before the server binds it."""
    for _ in range(200):
        port = _random.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((address, port))
            except OSError:
                continue
        return port
    raise ServiceError(f"no free port found on {address} in 20000-32000")


def graphql(url: str, query: str, variables: Optional[dict] = None,
            timeout: float = 30) -> dict:
    """The data of a GraphQL query to the Dagster webserver at `url`; a query the server
    refuses or answers with errors fails the test with what the server said."""
    request = urllib.request.Request(
        url + "/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        raise AssertionError("GraphQL %s: %s" % (error.code, error.read()[:2000])) from None
    assert not body.get("errors"), body
    return body["data"]


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"(log {path} is empty)"


def _proc_stat(pid: int):
    """(state, ppid, pgrp, session) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[2]), int(fields[3])


def _all_pids() -> List[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def group_members(pgid: int) -> List[int]:
    """Live processes of a process group (see _live_with)."""
    return _live_with(2, pgid)


def session_members(sid: int) -> List[int]:
    """Live processes of a session (see _live_with)."""
    return _live_with(3, sid)


def _live_with(field: int, value: int) -> List[int]:
    """The processes whose _proc_stat `field` is `value`. Zombies (and dead ones) do not count:
    this machine's init does not necessarily reap orphans."""
    members = []
    for pid in _all_pids():
        stat = _proc_stat(pid)
        if stat and stat[field] == value and stat[0] not in ("Z", "X"):
            members.append(pid)
    return members


def process_tree(pid: int) -> List[int]:
    """pid and all its live descendants."""
    children: Dict[int, List[int]] = {}
    for other in _all_pids():
        stat = _proc_stat(other)
        if stat and stat[0] != "Z":
            children.setdefault(stat[1], []).append(other)
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        if _proc_stat(current) is None:
            continue
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def task_processes(run_id: str, step: Optional[str] = None,
                   task_id: Optional[str] = None) -> List[int]:
    """Live processes of a Dagster run's Metaflow tasks (with what they started), found by the
    run id the op puts in their environment; only the `flow.py step <step> ... --task-id
    <task_id>` processes themselves if either is given."""
    pids = []
    for pid, argv in processes_with_env("METAFLOW_DAGSTER_RUN_ID=%s" % run_id):
        if step is not None and not _follows(argv, "step", step):
            continue
        if task_id is not None and not _follows(argv, "--task-id", task_id):
            continue
        pids.append(pid)
    return pids


def processes_with_env(entry: str) -> List[Tuple[int, List[str]]]:
    """(pid, argv) of the live processes whose environment holds `entry` ("NAME=value")."""
    marker = entry.encode()
    found = []
    for pid in _all_pids():
        stat = _proc_stat(pid)
        try:
            with open("/proc/%d/environ" % pid, "rb") as f:
                environ = f.read().split(b"\0")
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")]
        except OSError:
            continue
        if stat and stat[0] != "Z" and marker in environ:
            found.append((pid, argv))
    return found


def _follows(argv: List[str], option: str, value: str) -> bool:
    return any(a == option and b == value for a, b in zip(argv, argv[1:]))


def rss_mb(pids: Sequence[int]) -> float:
    """Sum of VmRSS of the given processes, in MB (shared pages are counted once per process)."""
    total_kb = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
                        break
        except OSError:
            pass
    return round(total_kb / 1024, 1)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def children(pid: int) -> List[int]:
    """Live direct children of pid."""
    return [other for other in _all_pids()
            if (stat := _proc_stat(other)) and stat[1] == pid and stat[0] != "Z"]


def leader(proc: subprocess.Popen) -> int:
    """The pid of the server itself: the process we started, or, on a host of its own
    (tests/hosts.py), the process it runs as there."""
    return getattr(proc, "leader", proc.pid)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0,
                 target: str = "leader") -> None:
    """Stop a server we started with start_new_session=True (so its pid is its process group id).

    `sig` goes to the server itself (target="leader"), to its direct children (target="children",
    for a wrapper that exits when its child does: nothing is orphaned then) or to its whole group
    (target="group"). SIGKILL goes to the group after `timeout`; then we wait until nothing of
    the group is left (whatever the server left behind is still in its group)."""
    pgid = proc.pid
    if proc.poll() is None:
        if target == "group":
            _signal_group(pgid, sig)
        else:
            server = leader(proc)
            for pid in children(server) if target == "children" else [server]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            proc.wait(10)
    elif group_members(pgid):
        _signal_group(pgid, sig)
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            _signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            if not group_members(pgid):
                break
        time.sleep(0.1)


def _wait_for(ready: Callable[[], bool], proc: subprocess.Popen, what: str, log: Path,
              timeout: float = START_TIMEOUT, interval: float = 0.1) -> float:
    """Poll `ready()` until it is true; fail early if the server exits. Returns the seconds
    waited. The caller stops the server on failure."""
    start = time.monotonic()
    while True:
        if ready():
            return time.monotonic() - start
        code = proc.poll()
        if code is not None:
            raise ServiceError(f"{what} exited with code {code} while starting; log {log}:\n"
                               f"{log_tail(log)}")
        if time.monotonic() - start > timeout:  # the caller stops it
            raise ServiceError(f"{what} was not ready after {timeout:.0f} s; log {log}:\n"
                               f"{log_tail(log)}")
        time.sleep(interval)


def _tcp_open(port: int, address: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((address, port)) == 0


def _log_has(log: Path, pattern: str, after: int = 0) -> bool:
    """Whether the log holds `pattern` (after its first `after` bytes)."""
    try:
        with open(log, "rb") as f:
            f.seek(after)
            return re.search(pattern, f.read().decode(errors="replace")) is not None
    except OSError:
        return False


def _require(path: Optional[str], what: str) -> str:
    if not path or not os.access(path, os.X_OK):
        raise ServiceError(f"{what} not found; {INSTALL_HINT}")
    return path


class Machine:
    """Where a server runs: here, this machine itself (its 127.0.0.1, its files). tests/hosts.py
    makes hosts with a network and files of their own, with the same methods."""

    name = "this machine"
    address = "127.0.0.1"

    @property
    def hostname(self) -> str:
        return socket.gethostname()

    def popen(self, argv: Sequence[str], *, user: Optional[pwd.struct_passwd] = None,
              **kwargs) -> subprocess.Popen:
        """Start `argv` in a session of its own (its pid is its process group id), as `user`
        if given."""
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(list(argv), start_new_session=True, **kwargs)

    def run(self, argv: Sequence[str], *, user: Optional[pwd.struct_passwd] = None,
            **kwargs) -> subprocess.CompletedProcess:
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        return subprocess.run(list(argv), **kwargs)

    def path(self, path) -> Path:
        """Where this process sees the file that is `path` on this machine."""
        return Path(path)

    def call(self, fn: Callable, *args):
        """fn(*args), with this machine's network (e.g. to reach a server on its address)."""
        return fn(*args)

    def free_port(self) -> int:
        return self.call(free_port, self.address)

    def private_tempdir(self, prefix: str) -> Path:
        """A new directory in this machine's /tmp (a path on the machine)."""
        return Path("/tmp") / Path(tempfile.mkdtemp(prefix=prefix, dir=self.path("/tmp"))).name


THIS_MACHINE = Machine()


@dataclass
class _Server:
    proc: subprocess.Popen
    log: Path
    start_seconds: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> float:
        """Resident memory of the server and its children, MB."""
        return rss_mb(process_tree(self.proc.pid))


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bindir() -> str:
    """The newest Debian PostgreSQL (/usr/lib/postgresql/N/bin), else the dir of `initdb` on
    PATH."""
    versions = []
    for bindir in glob.glob("/usr/lib/postgresql/*/bin"):
        match = re.search(r"/postgresql/(\d+)[^/]*/bin$", bindir)
        if match and os.access(os.path.join(bindir, "initdb"), os.X_OK):
            versions.append((int(match.group(1)), bindir))
    if versions:
        return max(versions)[1]
    initdb = shutil.which("initdb")
    return os.path.dirname(_require(initdb, "PostgreSQL (initdb)"))


@dataclass
class Postgres(_Server):
    host: str
    port: int
    user: str
    password: str
    dbname: str
    datadir: Path
    sockdir: Path
    # How to start it again (restart()).
    _start: Optional[Callable[[], subprocess.Popen]] = field(default=None, repr=False)
    _ready: Optional[Callable[[subprocess.Popen], None]] = field(default=None, repr=False)

    def stop(self) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown: backends are told to exit by the server.
        stop_process(self.proc, sig=signal.SIGINT, timeout=20)

    def restart(self, down_seconds: float = 0.0) -> float:
        """Stop the server, wait `down_seconds`, start it again on the same data and port;
        the seconds it was unavailable."""
        stopped = time.monotonic()
        self.stop()
        time.sleep(down_seconds)
        self.proc = self._start()
        self._ready(self.proc)
        return time.monotonic() - stopped

    @property
    def url(self) -> str:
        return (f"postgresql+psycopg2://{self.user}:{self.password}@{self.host}:{self.port}"
                f"/{self.dbname}")

    @property
    def postgres_db(self) -> dict:
        """The `postgres_db` block of a Dagster `storage: postgres:` config."""
        return {"username": self.user, "password": self.password, "hostname": self.host,
                "db_name": self.dbname, "port": self.port, "scheme": "postgresql+psycopg2"}


@contextlib.contextmanager
def postgres(tmpdir, dbname: str = "dagster", user: str = "dagster",
             password: str = "dagster", host: Machine = THIS_MACHINE) -> Iterator[Postgres]:
    """A throwaway PostgreSQL server (trust authentication, fsync off) with database `dbname`
    owned by superuser `user`, listening on the host's address.

    PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user
    (Debian's package creates it), with its data directory in a fresh directory under the
    host's temp dir, since pytest's tmp_path sits below a root-only (0700) directory. The logs
    are always in `tmpdir`."""
    tmpdir = Path(tmpdir)
    host.path(tmpdir).mkdir(parents=True, exist_ok=True)
    bindir = postgres_bindir()
    run_as = None
    own_root = None
    if os.geteuid() == 0:
        try:
            run_as = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceError("PostgreSQL refuses to run as root and there is no 'postgres' "
                               f"user to run it as; {INSTALL_HINT}") from None
        own_root = base = host.private_tempdir("mfd-pg-")
        os.chown(host.path(own_root), run_as.pw_uid, run_as.pw_gid)
        if host is THIS_MACHINE:
            with contextlib.suppress(OSError):
                (tmpdir / "pgdata").symlink_to(own_root / "data")
    else:
        # Unix socket paths are limited to ~107 bytes: pytest's paths can be longer.
        base = tmpdir if len(str(tmpdir)) < 60 else host.private_tempdir("mfd-pg-")
        own_root = None if base == tmpdir else base
    datadir, sockdir = base / "data", base / "sock"
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    env.pop("PGDATA", None)
    proc = server = None
    try:
        host.path(sockdir).mkdir(exist_ok=True)
        if run_as:
            os.chown(host.path(sockdir), run_as.pw_uid, run_as.pw_gid)
        initdb_log = tmpdir / "initdb.log"
        started = time.monotonic()  # start_seconds counts initdb (~0.6 s) too
        with open(host.path(initdb_log), "wb") as out:
            code = host.run(
                [os.path.join(bindir, "initdb"), "-D", str(datadir), "-U", user,
                 "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
                stdout=out, stderr=subprocess.STDOUT, cwd=base, env=env, timeout=START_TIMEOUT,
                user=run_as).returncode
        if code != 0:
            raise ServiceError(f"initdb failed with code {code}; log {host.path(initdb_log)}:\n"
                               f"{log_tail(host.path(initdb_log))}")
        if host.address != "127.0.0.1":
            # initdb trusts the loopback only: trust the clients of the server's own subnet.
            with open(host.path(datadir / "pg_hba.conf"), "a") as hba:
                hba.write("host all all samenet trust\n")
        port = host.free_port()
        log = host.path(tmpdir / "postgres.log")

        def start() -> subprocess.Popen:
            with open(log, "ab") as out:  # the server inherits it: no permission needed
                return host.popen(
                    [os.path.join(bindir, "postgres"), "-D", str(datadir), "-p", str(port),
                     "-k", str(sockdir), "-c", f"listen_addresses={host.address}",
                     "-c", "fsync=off", "-c", "synchronous_commit=off",
                     "-c", "full_page_writes=off"],
                    stdout=out, stderr=subprocess.STDOUT, cwd=base, env=env, user=run_as)

        def ready(server: subprocess.Popen) -> None:
            logged = log.stat().st_size if log.exists() else 0
            _wait_for(lambda: _log_has(log, "ready to accept connections", logged)
                      and host.call(_tcp_open, port, host.address), server, "postgres", log)

        proc = start()
        ready(proc)
        createdb = host.run(
            [os.path.join(bindir, "createdb"), "-h", host.address, "-p", str(port), "-U", user,
             dbname], capture_output=True, text=True, env=env, timeout=START_TIMEOUT)
        if createdb.returncode != 0:
            raise ServiceError(f"createdb {dbname} failed: {createdb.stderr.strip()}\n"
                               f"log {log}:\n{log_tail(log)}")
        server = Postgres(proc=proc, log=log, start_seconds=round(time.monotonic() - started, 2),
                          host=host.address, port=port, user=user, password=password,
                          dbname=dbname, datadir=datadir, sockdir=sockdir, _start=start,
                          _ready=ready)
        yield server
    finally:
        if server is not None:
            server.stop()
        elif proc is not None:
            stop_process(proc, sig=signal.SIGINT, timeout=20)
        if own_root is not None:
            shutil.rmtree(host.path(own_root), ignore_errors=True)


def dagster_yaml_for_postgres(pg: Postgres, extra: str = "", telemetry: bool = False) -> str:
    """A `dagster.yaml` keeping all of Dagster's storage in `pg`, with run monitoring on (and
    telemetry off unless asked: no banner in test output).

    `scheme: postgresql+psycopg2` is needed: with SQLAlchemy 2.x the default `postgresql://`
    dialect is psycopg 3, which dagster-postgres does not install. `extra` (YAML) is appended
    as is."""
    db = pg.postgres_db
    return (
        "storage:\n"
        "  postgres:\n"
        "    postgres_db:\n"
        f"      username: {db['username']}\n"
        f"      password: {db['password']}\n"
        f"      hostname: {db['hostname']}\n"
        f"      db_name: {db['db_name']}\n"
        f"      port: {db['port']}\n"
        f"      scheme: {db['scheme']}\n"
        "run_monitoring:\n"
        "  enabled: true\n"
        "  poll_interval_seconds: 5\n"
        + ("" if telemetry else "telemetry:\n  enabled: false\n")
        + extra
    )


def dagster_yaml_for_s3_compute_logs(s3: "S3Server", prefix: str = "dagster-logs") -> str:
    """The `compute_logs:` block of a `dagster.yaml` keeping step logs in `s3`'s bucket
    (dagster-aws's S3ComputeLogManager): the process running a step uploads its stdout and
    stderr every 5 s and when the step ends; the webserver reads them from there."""
    return (
        "compute_logs:\n"
        "  module: dagster_aws.s3.compute_log_manager\n"
        "  class: S3ComputeLogManager\n"
        "  config:\n"
        f"    bucket: {s3.bucket}\n"
        f"    prefix: {prefix}\n"
        f"    endpoint_url: {s3.endpoint_url}\n"
        "    region: us-east-1\n"
        "    use_ssl: false\n"
        "    upload_interval: 5\n"
    )


# --------------------------------------------------------------------------- Redis


@dataclass
class Redis(_Server):
    port: int
    address: str = "127.0.0.1"
    machine: Machine = field(default=THIS_MACHINE, repr=False)

    def url_for(self, db: int = 0) -> str:
        return f"redis://{self.address}:{self.port}/{db}"

    @property
    def url(self) -> str:
        return self.url_for(0)

    def ping(self) -> bool:
        return self.machine.call(_redis_ping, self.port, self.address)


def _redis_ping(port: int, address: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((address, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis(tmpdir, host: Machine = THIS_MACHINE) -> Iterator[Redis]:
    """redis-server in the foreground as our child, no persistence."""
    tmpdir = Path(tmpdir)
    host.path(tmpdir).mkdir(parents=True, exist_ok=True)
    binary = _require(shutil.which("redis-server") or "/usr/bin/redis-server", "redis-server")
    port = host.free_port()
    log = host.path(tmpdir / "redis.log")
    # Off the loopback, Redis refuses clients that give no password ("protected mode"): the
    # hosts' network is the test's own.
    protected = [] if host.address == "127.0.0.1" else ["--protected-mode", "no"]
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = host.popen(
            [binary, "--bind", host.address, "--port", str(port), "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(tmpdir), *protected],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmpdir)
    try:
        server = Redis(proc=proc, log=log, start_seconds=0.0, port=port, address=host.address,
                       machine=host)
        _wait_for(server.ping, proc, "redis-server", log)
        server.start_seconds = round(time.monotonic() - started, 2)
        yield server
    finally:
        stop_process(proc, timeout=10)


# --------------------------------------------------------------------------- S3 (moto)

FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server(_Server):
    port: int
    bucket: str
    address: str = "127.0.0.1"
    machine: Machine = field(default=THIS_MACHINE, repr=False)

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def client(self):
        """A boto3 client of this server (call it through `machine.call` from elsewhere)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1",
                            aws_access_key_id=FAKE_AWS["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=FAKE_AWS["AWS_SECRET_ACCESS_KEY"])

    def env(self, prefix: str = "metaflow") -> Dict[str, str]:
        """What a Metaflow process needs to keep its datastore in this server, under
        s3://bucket/prefix. Every task process needs METAFLOW_S3_ENDPOINT_URL: without it
        Metaflow retries real AWS for minutes."""
        return {"METAFLOW_DEFAULT_DATASTORE": "s3",
                "METAFLOW_DATASTORE_SYSROOT_S3": f"s3://{self.bucket}/{prefix.strip('/')}",
                "METAFLOW_S3_ENDPOINT_URL": self.endpoint_url,
                **FAKE_AWS}


def _http_up(port: int, address: str = "127.0.0.1", path: str = "/") -> bool:
    conn = http.client.HTTPConnection(address, port, timeout=1)
    try:
        conn.request("GET", path)
        conn.getresponse().read()
        return True
    except OSError:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def s3_server(tmpdir, bucket: str = "metaflow-test",
              host: Machine = THIS_MACHINE) -> Iterator[S3Server]:
    """moto's S3-compatible server (in memory) with `bucket` created."""
    tmpdir = Path(tmpdir)
    host.path(tmpdir).mkdir(parents=True, exist_ok=True)
    try:
        import moto.server  # noqa: F401
    except ImportError:
        raise ServiceError(f"moto[server] is not installed in {sys.executable}'s venv") from None
    port = host.free_port()
    log = host.path(tmpdir / "moto.log")
    started = time.monotonic()
    env = {**os.environ, **FAKE_AWS}
    with open(log, "wb") as out:
        proc = host.popen(
            [sys.executable, "-m", "moto.server", "-H", host.address, "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmpdir, env=env)
    try:
        _wait_for(lambda: host.call(_http_up, port, host.address), proc, "moto server", log,
                  interval=0.2)
        server = S3Server(proc=proc, log=log, start_seconds=0.0, port=port, bucket=bucket,
                          address=host.address, machine=host)
        host.call(lambda: server.client().create_bucket(Bucket=bucket))
        server.start_seconds = round(time.monotonic() - started, 2)
        yield server
    finally:
        stop_process(proc, timeout=10)


# --------------------------------------------------------------------------- Metaflow metadata

METADATA_SERVER = Path(__file__).resolve().parent / "metadata_server.py"


@dataclass
class MetadataService(_Server):
    port: int
    root: Path  # on the server's host: the folder holding its .metaflow
    address: str = "127.0.0.1"
    machine: Machine = field(default=THIS_MACHINE, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def env(self) -> Dict[str, str]:
        """What a Metaflow process needs to keep its metadata in this service."""
        return {"METAFLOW_DEFAULT_METADATA": "service", "METAFLOW_SERVICE_URL": self.url}

    def requests(self, pattern: str = "") -> List[str]:
        """The request lines of its access log containing `pattern` (e.g. "/heartbeat")."""
        text = Path(self.log).read_text(errors="replace")
        return [line for line in text.splitlines() if '"' in line and pattern in line]


@contextlib.contextmanager
def metadata_service(tmpdir, host: Machine = THIS_MACHINE) -> Iterator[MetadataService]:
    """Metaflow's metadata service (tests/metadata_server.py: metaflow-local-service's server),
    its records under `tmpdir`."""
    tmpdir = Path(tmpdir)
    host.path(tmpdir).mkdir(parents=True, exist_ok=True)
    try:
        import metaflow_local_service  # noqa: F401
    except ImportError:
        raise ServiceError("metaflow-local-service is not installed in "
                           f"{sys.executable}'s venv") from None
    port = host.free_port()
    log = host.path(tmpdir / "metadata.log")
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = host.popen(
            [sys.executable, str(METADATA_SERVER), "--host", host.address, "--port", str(port),
             "--root", str(tmpdir)],
            stdout=out, stderr=subprocess.STDOUT, cwd=tmpdir,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        _wait_for(lambda: host.call(_http_up, port, host.address, "/ping"), proc,
                  "metadata service", log, interval=0.2)
        yield MetadataService(proc=proc, log=log,
                              start_seconds=round(time.monotonic() - started, 2), port=port,
                              root=tmpdir, address=host.address, machine=host)
    finally:
        stop_process(proc, timeout=10)


# --------------------------------------------------------------------------- Celery workers


@dataclass
class CeleryWorkers:
    broker_url: str
    backend_url: str
    config_yaml: Path
    names: List[str]  # node names as Celery reports them, e.g. w1@host
    procs: List[subprocess.Popen]
    logs: List[Path]
    start_seconds: float
    env: Dict[str, str] = field(repr=False, default_factory=dict)
    machine: Machine = field(default=THIS_MACHINE, repr=False)

    @property
    def executor_config(self) -> dict:
        """The `celery_executor` config that submits to these workers."""
        return {"broker": self.broker_url, "backend": self.backend_url}

    def ping(self, timeout: float = 5.0) -> Dict[str, dict]:
        """{node name: reply} of our workers that answer a ping within `timeout` (returns as
        soon as all of them have)."""
        return self.machine.call(_celery_ping, self.broker_url, self.backend_url, self.names,
                                 timeout)

    def consume(self, on: bool, queue: str = "dagster") -> None:
        """Stop (or start again) taking tasks from `queue` (dagster-celery's default), by
        Celery's remote control: the workers stay up and answer pings."""
        self.machine.call(_celery_consume, self.broker_url, self.backend_url, self.names,
                          queue, on)

    def pids(self) -> List[int]:
        return [pid for proc in self.procs for pid in group_members(proc.pid)]

    def rss_mb(self) -> float:
        return rss_mb(self.pids())


def _celery_ping(broker_url: str, backend_url: str, names: List[str],
                 timeout: float) -> Dict[str, dict]:
    from celery import Celery

    app = Celery(broker=broker_url, backend=backend_url)
    try:
        replies = app.control.ping(destination=names, timeout=timeout, limit=len(names))
    finally:
        app.close()
    return {name: reply for item in replies for name, reply in item.items()}


def _celery_consume(broker_url: str, backend_url: str, names: List[str], queue: str,
                    on: bool) -> None:
    from celery import Celery

    app = Celery(broker=broker_url, backend=backend_url)
    try:
        control = app.control.add_consumer if on else app.control.cancel_consumer
        replies = control(queue, destination=names, reply=True, timeout=10)
    finally:
        app.close()
    if len(replies) != len(names):
        raise ServiceError(f"not every worker of {names} answered: {replies}")


def _celery_node_name(name: str, hostname: str) -> str:
    from celery.utils.nodenames import host_format

    return host_format(f"{name}@%h", host=hostname)


@contextlib.contextmanager
def celery_workers(tmpdir, broker_url: str, backend_url: str, n: int = 2,
                   cwd=None, env: Optional[Dict[str, str]] = None, names: Sequence[str] = (),
                   queues: Sequence[str] = (), concurrency: int = 1,
                   extra_args: Sequence[str] = ("--without-mingle", "--without-gossip"),
                   timeout: float = CELERY_START_TIMEOUT,
                   host: Machine = THIS_MACHINE) -> Iterator[CeleryWorkers]:
    """n `dagster-celery worker start -A dagster_celery.app -y celery.yaml -n wK` processes, each
    in its own session, all ready (their log says so) when this yields; stopped by killing each
    one's process group (the dagster-celery wrapper leaves its `celery` child otherwise).

    `env` (default: ours) is what the workers and the ops they run see; the venv's bin dir is put
    first on its PATH (the wrapper runs `celery` from PATH). `dagster-celery worker start` needs
    DAGSTER_HOME (it writes the broker config there): if `env` has none, each worker gets its own
    empty one under tmpdir. Tasks use the run's own instance (its instance_ref), whatever the
    worker's DAGSTER_HOME. Workers import the job's code by the path the submitter gave."""
    tmpdir = Path(tmpdir)
    host.path(tmpdir).mkdir(parents=True, exist_ok=True)
    wrapper = _require(str(VENV_BIN / "dagster-celery"),
                       f"dagster-celery (in {VENV_BIN}; pip install dagster-celery)")
    _require(str(VENV_BIN / "celery"), f"celery (in {VENV_BIN})")
    names = list(names) or [f"w{k}" for k in range(1, n + 1)]
    if len(names) != n:
        raise ValueError(f"{n} workers but {len(names)} names")
    config_yaml = tmpdir / "celery.yaml"
    # A bare `broker:` key at the top level is silently ignored (workers then try amqp://:5672).
    host.path(config_yaml).write_text(
        "execution:\n  config:\n"
        f"    broker: {broker_url!r}\n"
        f"    backend: {backend_url!r}\n"
        # The run worker learns which worker took a step as soon as it starts, and can send
        # a retry to another worker (docs/deploy.md, "Celery").
        "    config_source:\n      task_track_started: true\n      worker_direct: true\n")
    base_env = dict(os.environ if env is None else env)
    base_env["PATH"] = os.pathsep.join([str(VENV_BIN), base_env.get("PATH", os.defpath)])
    base_env.setdefault("PYTHONUNBUFFERED", "1")
    procs: List[subprocess.Popen] = []
    logs: List[Path] = []
    started = time.monotonic()
    try:
        for name in names:
            worker_env = dict(base_env)
            if not worker_env.get("DAGSTER_HOME"):
                home = tmpdir / f"{name}-dagster-home"
                host.path(home).mkdir(exist_ok=True)
                # SQLite; only for the wrapper's config file
                host.path(home / "dagster.yaml").touch()
                worker_env["DAGSTER_HOME"] = str(home)
            log = host.path(tmpdir / f"celery-{name}.log")
            argv = [wrapper, "worker", "start", "-A", "dagster_celery.app",
                    "-y", str(config_yaml), "-n", name]  # the wrapper appends "@%h" itself
            for queue in queues:
                argv += ["-q", queue]
            argv += ["--", f"--concurrency={concurrency}", *extra_args]
            with open(log, "wb") as out:
                procs.append(host.popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=str(cwd or tmpdir), env=worker_env))
            logs.append(log)
        node_names = [_celery_node_name(name, host.hostname) for name in names]
        deadline = time.monotonic() + timeout
        for proc, log, node in zip(procs, logs, node_names):
            _wait_for(lambda log=log, node=node: _log_has(log, re.escape(node) + r" ready\."),
                      proc, f"celery worker {node}", log,
                      timeout=max(1.0, deadline - time.monotonic()), interval=0.25)
        yield CeleryWorkers(broker_url=broker_url, backend_url=backend_url,
                            config_yaml=config_yaml, names=node_names, procs=procs, logs=logs,
                            start_seconds=round(time.monotonic() - started, 2), env=base_env,
                            machine=host)
    finally:
        # SIGTERM (Celery's warm shutdown) to each wrapper's `celery` child, all first so that
        # they shut down in parallel; each wrapper then exits by itself and nothing is orphaned.
        for proc in procs:
            if proc.poll() is None:
                for pid in children(leader(proc)):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGTERM)
        for proc in procs:
            stop_process(proc, timeout=15, target="children")
