"""A finished task's artifacts as Dagster metadata: a Markdown table of their names,
types and sizes, with small values shown.

They are read through Metaflow's datastore, not the Client: the index of the task's
latest attempt (one small file) gives names, types and sizes; only the values shown are
loaded, in one batch. A value is shown only when all of these hold:
- it was stored with Metaflow's pickle serializer as a builtin type, in at most
  MAX_VALUE_BYTES; it is unpickled with builtins only, so no user class is imported and
  no code of the flow runs in the Dagster process;
- neither its name nor its text looks like a credential (SECRET_NAME, SECRET_VALUE);
and it is cut to MAX_VALUE_CHARS. Metaflow's own artifacts (`_`-prefixed) are left out.
This reads Metaflow's TaskDataStore index (`_info`), tied to Metaflow 2.19.
"""

import builtins
import io
import pickle
import re
from dataclasses import dataclass
from typing import List, Optional

from ..plan import FlowPlan
from .datastore import plan_datastore

MAX_VALUE_BYTES = 1024
MAX_VALUE_CHARS = 80
MAX_ROWS = 50
SHOWN_TYPES = {"<class '%s'>" % t for t in (
    "str", "int", "float", "bool", "NoneType", "list", "tuple", "dict", "set", "frozenset")}
SECRET_NAME = re.compile(
    r"secret|token|passw|pwd|credential|key|auth|cookie|session|signature|cert|private",
    re.IGNORECASE)
SECRET_VALUE = re.compile(
    r"(?<![A-Z0-9])(AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Z0-9])"  # AWS key id
    r"|-----BEGIN [A-Z ]*PRIVATE KEY"
    r"|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_\w{20,}"  # GitHub
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|\bsk-[A-Za-z0-9_-]{20,}"  # OpenAI-style API keys
    r"|\b[Bb]earer\s+[A-Za-z0-9._~+/-]{16,}")
# An AWS secret access key: 40 base64 characters, upper and lower case mixed.
AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])")


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


def task_artifacts(plan: FlowPlan, task_path: str) -> List[Artifact]:
    """The public artifacts of a task (run_id/step/task_id), sorted by name."""
    run_id, step, task_id = task_path.split("/")
    task_ds = plan_datastore(plan).get_task_datastore(run_id, step, task_id)
    info = task_ds._info
    keys = {name: key for name, key in task_ds.items() if not name.startswith("_")}
    shown = {}
    hidden = {}
    for name in keys:
        entry = info.get(name, {})
        if (entry.get("type") not in SHOWN_TYPES or "pickle" not in entry.get("encoding", "")
                or entry.get("size", MAX_VALUE_BYTES + 1) > MAX_VALUE_BYTES):
            continue
        if SECRET_NAME.search(name):
            hidden[name] = "name looks like a credential"
        else:
            shown[name] = keys[name]
    values = _load_values(plan, shown)
    artifacts = []
    for name in sorted(keys):
        entry = info.get(name, {})
        text, why = values.get(name), hidden.get(name)
        if text is not None and _looks_secret(text):
            text, why = None, "value looks like a credential"
        artifacts.append(Artifact(name, entry.get("type", "?"), int(entry.get("size", 0)),
                                  _cut(text), why))
    return artifacts


def _load_values(plan: FlowPlan, keys: dict) -> dict:
    """{name: repr of the value} for the artifacts whose blobs load as builtins."""
    if not keys:
        return {}
    names_of = {}
    for name, key in keys.items():
        names_of.setdefault(key, []).append(name)
    values = {}
    for key, blob in plan_datastore(plan).ca_store.load_blobs(list(names_of)):
        try:
            text = repr(_BuiltinsOnly(io.BytesIO(blob)).load())
        except Exception:  # not builtins only after all: show no value
            continue
        for name in names_of[key]:
            values[name] = text
    return values


class _BuiltinsOnly(pickle.Unpickler):
    ALLOWED = {"set", "frozenset", "complex", "range", "slice", "bytearray"}

    def find_class(self, module, name):
        if module == "builtins" and name in self.ALLOWED:
            return getattr(builtins, name)
        raise pickle.UnpicklingError("%s.%s is not a builtin" % (module, name))


def _looks_secret(text: str) -> bool:
    if SECRET_VALUE.search(text):
        return True
    return any(re.search("[a-z]", m) and re.search("[A-Z]", m)
               for m in AWS_SECRET.findall(text))


def _cut(text: Optional[str]) -> Optional[str]:
    if text is None or len(text) <= MAX_VALUE_CHARS:
        return text
    return text[:MAX_VALUE_CHARS - 1] + "…"


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
