"""A foreach on hosts that share only a network (tests/many_hosts.py): on one worker host, then
on two, each host's Celery worker with two processes; Metaflow's S3 datastore, op outputs and
step logs in the head's S3 server (moto), metadata in its metadata service.

    python bench/many_hosts.py                # foreach100 (103 tasks)
    python bench/many_hosts.py --width 20

Needs root (network, mount and PID namespaces). Every "host" shares this machine's cores: a
second worker host adds worker processes, not CPU. Prints, per variant: the wall time from
`trigger` (on the client host) to SUCCESS, per task, the mean time of an op (Dagster's step
stats: what one task costs inside a worker) and the ops each host ran.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import many_hosts  # noqa: E402
from deployment import celery_workers_of  # noqa: E402

FLOW = HERE / "flows" / "foreach.py"


def measure(workers, width: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-hosts-") as base, \
            many_hosts.site(Path(base), FLOW, workers) as site:
        print("%s: %s" % ("+".join(workers), many_hosts.figures(site)), flush=True)
        started = time.monotonic()
        run_id = site.trigger("--width", str(width))
        status = site.wait_finished(run_id, timeout=3600)
        wall = time.monotonic() - started
        if status != "SUCCESS":
            raise RuntimeError("run %s: %s" % (run_id, status))

        def step_facts(instance):
            stats = instance.get_run_step_stats(run_id)
            durations = [s.end_time - s.start_time for s in stats if s.end_time]
            per_host = {}
            for s in stats:
                for name in celery_workers_of(instance, run_id, s.step_key):
                    host = name.split("@")[1]
                    per_host[host] = per_host.get(host, 0) + 1
            return statistics.mean(durations), per_host

        mean_op, per_host = site.instance(step_facts)
        return {"workers": "+".join(workers), "wall": wall, "tasks": width + 3,
                "mean_op": mean_op, "per_host": per_host}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=100)
    args = parser.parse_args()
    rows = [measure(workers, args.width)
            for workers in (("worker-1",), ("worker-1", "worker-2"))]
    print("\n| worker hosts | tasks | trigger to SUCCESS | per task | mean op | ops per host |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| %s | %d | %.0f s | %.2f s | %.2f s | %s |" % (
            row["workers"], row["tasks"], row["wall"], row["wall"] / row["tasks"],
            row["mean_op"], row["per_host"]))


if __name__ == "__main__":
    main()
