"""The tasks' output lines of a run, as `trigger --wait` prints them: read back from
the run's captured logs (the files Dagster's compute log manager keeps for each
step, announced by the run's LOGS_CAPTURED events) as they grow, on either target.

The op writes each line of its tasks there headed as `python flow.py run` shows it
(naming.task_line_head); only such lines are printed, so Dagster's own lines in a
step's capture (under the multiprocess executor) are not."""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .. import naming
from .runs import STEP_FINISHED, RunState

STREAMS = ("stdout", "stderr")


def log_key(run_id: str, file_key: str) -> List[str]:
    """The key of a step's captured logs (ComputeLogManager.build_log_key_for_run)."""
    return [run_id, "compute_logs", file_key]


@dataclass
class _Capture:
    step_keys: List[str]
    cursor: Optional[str] = None
    # The end of each stream that is not a whole line yet.
    partial: Dict[str, str] = field(default_factory=lambda: dict.fromkeys(STREAMS, ""))
    done: bool = False


class TaskOutput:
    """Follows the captured logs of one run; `new_lines` gives what was written since
    the last call."""

    def __init__(self, target, run_id: str):
        self.target = target
        self.run_id = run_id
        self._events_cursor = None
        self._captures: Dict[Tuple[str, ...], _Capture] = {}

    def new_lines(self, state: RunState) -> List[str]:
        """The tasks' lines written since the last call, in the order they were
        written; `state` (read before this call) says which steps have finished:
        their captures are read to the end, once more, and then left alone."""
        captures, self._events_cursor = self.target.log_captures(
            self.run_id, self._events_cursor)
        for step_keys, file_key in captures:
            self._captures.setdefault(tuple(log_key(self.run_id, file_key)),
                                      _Capture(list(step_keys)))
        finished = {s.key for s in state.steps if s.status in STEP_FINISHED}
        reading = [(key, capture) for key, capture in self._captures.items()
                   if not capture.done]
        for _, capture in reading:
            capture.done = state.finished or all(k in finished for k in capture.step_keys)
        chunks = self.target.captured_logs([(list(key), capture.cursor)
                                            for key, capture in reading]) if reading else []
        lines = []
        for (_, capture), chunk in zip(reading, chunks):
            lines += _whole_lines(capture, chunk)
        # Several tasks write at once: their heads' timestamps order their lines.
        return sorted((line for line in lines if naming.TASK_LINE.match(line)),
                      key=lambda line: line[:23])


def _whole_lines(capture: _Capture, chunk) -> List[str]:
    """The whole lines of (stdout, stderr, next cursor) read from a capture; the
    rest waits for its end, or is a line itself once the capture is done."""
    capture.cursor = chunk[-1]
    lines = []
    for stream, text in zip(STREAMS, chunk):
        text = capture.partial[stream] + (text or "")
        *whole, capture.partial[stream] = text.split("\n")
        if capture.done and capture.partial[stream]:
            whole.append(capture.partial[stream])
        lines += [line.rstrip("\r") for line in whole]
    return lines
