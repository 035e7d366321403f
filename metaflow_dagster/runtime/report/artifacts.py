"""A finished task's artifacts as Dagster metadata: a Markdown table of their names,
types and sizes, with small values shown (read by task/artifacts.py, which says which
values are shown; most tasks report their own as they end).
"""

import re
from dataclasses import dataclass
from typing import List, Optional

from ...plan import FlowPlan
from ...task.artifacts import stored_artifact_rows
from ..datastore import plan_datastore
from ..launch.settings import datastore_location
from ..launch.task_template import read_in_template

MAX_ROWS = 50


@dataclass(frozen=True)
class Artifact:
    name: str
    type: str  # as Metaflow records it: "<class 'int'>"
    size: int  # bytes, as stored
    value: Optional[str] = None  # the text shown, if any
    hidden: Optional[str] = None  # why the value is not shown, if it could have been

    @property
    def type_name(self) -> str:
        match = re.match(r"<class '(.*)'>$", self.type)
        return match.group(1) if match else self.type


def task_artifacts(plan: FlowPlan, task_path: str,
                   reported: Optional[List[dict]] = None) -> List[Artifact]:
    """The public artifacts of a task (run_id/step/task_id), sorted by name: those the
    task `reported` as it ended, else read by a child of the task template if there is
    one, so this process need not import Metaflow; else here."""
    rows = reported
    if rows is None:
        ds_type, ds_root = datastore_location(plan)
        rows = read_in_template(plan, "metaflow_dagster.task.artifacts:read_artifacts",
                                flow=plan.flow_name, ds_type=ds_type, ds_root=ds_root,
                                task_path=task_path)
    if rows is None:
        rows = stored_artifact_rows(plan_datastore(plan), task_path)
    return [Artifact(**row) for row in rows]


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (size, unit)
        size /= 1024.0
    return ""


def artifacts_markdown(artifacts: List[Artifact]) -> str:
    """A Markdown table: name, type, size, value."""
    if not artifacts:
        return "No artifacts."
    rows = ["| artifact | type | size | value |", "|---|---|---|---|"]
    for artifact in artifacts[:MAX_ROWS]:
        if artifact.value is not None:
            value = _code(artifact.value)
        else:
            value = "*(hidden: %s)*" % artifact.hidden if artifact.hidden else ""
        rows.append("| %s | %s | %s | %s |" % (
            _code(artifact.name), _cell(artifact.type_name), human_size(artifact.size), value))
    if len(artifacts) > MAX_ROWS:
        rows.append("| … and %d more | | | |" % (len(artifacts) - MAX_ROWS))
    return "\n".join(rows)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    return "%s%s%s" % (fence, _cell(text), fence)
