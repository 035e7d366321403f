"""The hosts of tests/hosts.py share nothing but their network, and leave nothing behind."""

import os
import subprocess
import sys

import hosts
import pytest
import services
from harness import wait_until

pytestmark = pytest.mark.services

# Says which host it runs on to whoever connects.
SERVE = ("import socket, sys\n"
         "s = socket.socket(); s.bind((sys.argv[1], 7000)); s.listen()\n"
         "print('listening', flush=True)\n"
         "while True:\n"
         "    c = s.accept()[0]; c.sendall(socket.gethostname().encode()); c.close()\n")


def _connects(address: str, port: int = 7000, timeout: float = 2.0) -> bool:
    """Whether the head's server answers at address. (Not just whether a connection opens:
    this machine's own network may accept any connection to an address it does not have.)"""
    import socket

    try:
        with socket.create_connection((address, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(64) == b"head"
    except OSError:
        return False


def _sh(host, script: str) -> subprocess.CompletedProcess:
    return host.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)


def _leftovers(tag: str) -> dict:
    """What the machine still has of a topology: namespaces, links, mounts, processes."""
    return {
        "netns": [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                            text=True).stdout.split() if n.startswith(tag)],
        "links": [line for line in subprocess.run(["ip", "link"], capture_output=True,
                                                  text=True).stdout.splitlines() if tag in line],
        "mounts": [line for line in subprocess.run(["findmnt", "-l"], capture_output=True,
                                                   text=True).stdout.splitlines()
                   if tag in line],
    }


def test_hosts_share_the_network_only_and_leave_nothing(tmp_path):
    with hosts.topology(tmp_path / "hosts") as net:
        head, one, two, client = (net[name] for name in ("head", "worker-1", "worker-2",
                                                         "client"))
        server = head.popen([sys.executable, "-c", SERVE, head.address],
                            stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "listening"
        head_pids = head.pids()

        # The network: the head's address from every host, not from the machine itself.
        assert all(h.call(_connects, head.address) for h in (one, two, client))
        assert not _connects(head.address, timeout=0.5)
        # A cut cable: nothing answers, until it is plugged back.
        two.unplug()
        assert not two.call(_connects, head.address, 7000, 1.0)
        assert one.call(_connects, head.address)
        two.plug()
        assert two.call(_connects, head.address)

        # The files: each host its own /tmp and /srv; the machine's files are read-only.
        out = _sh(one, "hostname; echo one > /tmp/mine; echo one > /srv/home/mine; "
                       "touch /work/x 2>&1; touch /usr/x 2>&1; echo $HOME")
        assert out.stdout.splitlines()[0] == "worker-1"
        assert out.stdout.count("Read-only file system") == 2, out
        assert out.stdout.splitlines()[-1] == "/srv/home"
        assert _sh(two, "cat /tmp/mine /srv/home/mine").returncode != 0
        assert one.path("/tmp/mine").read_text() == "one\n"
        assert not os.path.exists("/tmp/mine")

        # The processes: a host sees its own only, and cannot signal another's.
        seen = _sh(one, "ls /proc | grep -c '^[0-9]'; kill -0 %d; echo $?" % head_pids[-1])
        assert int(seen.stdout.split()[0]) <= 4, seen  # its init, sh, ls, grep
        assert seen.stdout.split()[-1] != "0", seen
        assert all(head.owns(pid) for pid in services.process_tree(server.pid)[1:])
        assert not one.owns(server.leader)
        tag = net.tag

    assert _leftovers(tag) == {"netns": [], "links": [], "mounts": []}
    assert server.poll() is not None
    assert not any(services._proc_stat(pid) for pid in head_pids)


def test_a_crashed_sessions_hosts_are_removed(tmp_path):
    """Namespaces named after a test process that is gone, with a process still in them."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    name = "%s-%d-1-head" % (hosts.PREFIX, gone.pid)
    subprocess.run(["ip", "netns", "add", name], check=True)
    stray = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "600"],
                             start_new_session=True)
    try:
        assert wait_until(lambda: str(stray.pid) in subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split(), 10)
        assert name in hosts.remove_leftovers()
        assert stray.wait(10) == -9
        assert _leftovers(name)["netns"] == []
    finally:
        if stray.poll() is None:
            stray.kill()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
