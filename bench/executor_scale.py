"""The run process's own cost at width, without Metaflow: a plain Dagster job (a dynamic fan-out
of N trivial ops and a join collecting them) run by our executor (runtime/executors/threads.py)
on an in-memory instance, so that what grows with N in the executor's bookkeeping and Dagster's step
machinery shows apart from the tasks. The instance keeps its event log in memory (`--storage
memory`, the default: the bookkeeping alone) or in SQLite (`--storage sqlite`, as the embedded
default). CPU seconds of this process (not wall time), so the figures hold under other people's
load.

    python bench/executor_scale.py                       # widths 500,1000,2000
    python bench/executor_scale.py --widths 1000,4000 --profile out.prof
"""

import argparse
import cProfile
import importlib
import os
import pstats
import sys
import tempfile
import threading
import time

from dagster import (
    DagsterInstance,
    DynamicOut,
    DynamicOutput,
    In,
    execute_job,
    job,
    op,
    reconstructable,
)

# Another module to compare with (a copy of an earlier version of the executor, say).
EXECUTOR_MODULE = os.environ.get("EXECUTOR_SCALE_MODULE",
                                 "metaflow_dagster.runtime.executors.threads")
metaflow_task_executor = importlib.import_module(EXECUTOR_MODULE).metaflow_task_executor

MEMORY_STORAGE = """\
event_log_storage:
  module: dagster._core.storage.event_log
  class: InMemoryEventLogStorage
telemetry:
  enabled: false
"""


@op(out=DynamicOut(int))
def fan(context):
    for i in range(int(context.run.tags["width"])):
        yield DynamicOutput(i, mapping_key=str(i))


@op
def body(x: int) -> int:
    return x


@op(ins={"xs": In(list)})
def join(xs) -> int:
    return len(xs)


@job(executor_def=metaflow_task_executor)
def executor_scale():
    join(fan().map(body).collect())


def run(width: int, storage: str):
    """CPU seconds of the process, and of its main thread (the executor's loop: which
    steps to start, the events it hands on), for a run of the job at `width`."""
    with tempfile.TemporaryDirectory(prefix="mfd-executor-scale-") as home:
        return _run_in(home, width, storage)


def _run_in(home: str, width: int, storage: str):
    with open(home + "/dagster.yaml", "w") as f:
        f.write(MEMORY_STORAGE if storage == "memory" else "telemetry:\n  enabled: false\n")
    with DagsterInstance.from_config(home) as instance:
        started, started_main = time.process_time(), time.thread_time()
        with execute_job(reconstructable(executor_scale), instance=instance,
                         tags={"width": str(width)}) as result:
            cpu = time.process_time() - started, time.thread_time() - started_main
            assert result.success
            assert result.output_for_node("join") == width
    return cpu


def profiled(function, path):
    """function(), with a cProfile per thread (timed by the thread's own CPU clock), merged
    into `path`."""
    profiles = [cProfile.Profile(time.thread_time)]

    def start_thread_profile(frame, event, arg):
        sys.setprofile(None)
        profile = cProfile.Profile(time.thread_time)
        profiles.append(profile)
        profile.enable()

    threading.setprofile(start_thread_profile)
    profiles[0].enable()
    try:
        return function()
    finally:
        threading.setprofile(None)
        for profile in profiles:
            profile.disable()
        stats = pstats.Stats(profiles[0])
        for profile in profiles[1:]:
            try:
                stats.add(profile)
            except TypeError:  # a thread that made no call
                pass
        stats.dump_stats(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", default="500,1000,2000")
    parser.add_argument("--storage", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--profile", help="cProfile the widest run into this file (every "
                        "thread, CPU time of each thread)")
    args = parser.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    for width in widths:
        if args.profile and width == max(widths):
            cpu = profiled(lambda w=width: run(w, args.storage), args.profile)
        else:
            cpu = run(width, args.storage)
        print("width %6d: %6.1f s CPU, %.2f ms per op; the executor's loop %.1f s, %.2f ms per op"
              % (width, cpu[0], 1000 * cpu[0] / (width + 2), cpu[1], 1000 * cpu[1] / (width + 2)),
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
