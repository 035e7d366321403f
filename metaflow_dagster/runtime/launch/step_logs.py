"""Where an op's tasks write their output so that it shows, live, in the step's logs.

Dagster captures a step's output by redirecting file descriptors 1 and 2 of the
process the step runs in (dup2), into the file of the LOGS_CAPTURED event it
announces. That needs sys.stdout to be backed by a file descriptor; a Celery
worker replaces sys.stdout with a logger, so Dagster's capture silently does
nothing there and the tasks' lines would end in the worker's own log. Then the
op writes into the announced file itself, as Dagster's capture would have.

With a compute-log manager in object storage (dagster-aws's S3ComputeLogManager, for
ops on several hosts) the files are staged on the op's host and uploaded when the
capture completes: `capture_files` writes into the staged files and completes the
capture once, after both are written, or not at all when Dagster's own capture
around the step does it.
"""

import sys
from contextlib import ExitStack, contextmanager
from typing import IO, Iterator, Optional, Sequence, Tuple

from dagster import DagsterEventType
from dagster._core.storage.compute_log_manager import ComputeIOType


@contextmanager
def step_streams(context) -> Iterator[Tuple[object, object]]:
    """(stdout, stderr) for the op's tasks."""
    if _on_fd(sys.stdout, 1) and _on_fd(sys.stderr, 2):
        yield sys.stdout, sys.stderr  # Dagster's own capture is in place
        return
    file_key = _captured_file_key(context)
    if file_key is None:  # nothing announced: the worker's own streams, as they are
        yield sys.__stdout__, sys.__stderr__
        return
    manager = context.instance.compute_log_manager
    log_key = manager.build_log_key_for_run(context.run_id, file_key)
    # Dagster's capture around the step completes it (uploads it) when the step ends.
    with capture_files(manager, log_key, complete=False) as streams:
        yield streams


@contextmanager
def capture_files(manager, log_key: Sequence[str], complete: bool) -> Iterator[Tuple[IO, IO]]:
    """(stdout, stderr) files of the compute-log capture `log_key`, to write a step's output
    into; with `complete`, the capture is complete when both are closed.

    A manager in object storage stages the files locally (its `local_manager`) and uploads
    them, then deletes them, when one of its streams closes: closing stderr's stream uploads
    both. So stdout is written through the local manager and closed first."""
    local = getattr(manager, "local_manager", manager)
    with ExitStack() as stack:
        err = stack.enter_context((manager if complete else local).open_log_stream(
            log_key, ComputeIOType.STDERR))
        out = stack.enter_context(local.open_log_stream(log_key, ComputeIOType.STDOUT))
        yield out, err


def _on_fd(stream, fd: int) -> bool:
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False


def _captured_file_key(context) -> Optional[str]:
    """The file key of the latest LOGS_CAPTURED event covering this step."""
    step_key = context.get_step_execution_context().step.key
    records = context.instance.get_records_for_run(
        context.run_id, of_type=DagsterEventType.LOGS_CAPTURED).records
    for record in reversed(records):
        data = record.event_log_entry.dagster_event.event_specific_data
        if step_key in (data.step_keys or []):
            return data.file_key
    return None
