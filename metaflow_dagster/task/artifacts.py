"""A finished task's artifacts, read from Metaflow's datastore for the op's metadata
(runtime/report/artifacts.py renders them): names, types and sizes, with small values shown.

The index of the task's latest attempt (one small file) gives names, types and sizes;
only the values shown are loaded, in one batch. A value is shown only when all of these
hold:
- it was stored with Metaflow's pickle serializer as a builtin type, in at most
  MAX_VALUE_BYTES; it is unpickled with builtins only, so no user class is imported and
  no code of the flow runs where it is read;
- neither its name nor its text looks like a credential (SECRET_NAME, SECRET_VALUE);
and it is cut to MAX_VALUE_CHARS. Metaflow's own artifacts (`_`-prefixed) are left out.
This reads Metaflow's TaskDataStore index (`_info`), tied to Metaflow 2.19.

A task the op runs on its own host reports its own artifacts when it ends
(decorator.py); those of a cloned task or of one the compute layer ran are read in a
child of the task template (which has imported Metaflow already), or in the op's
process when there is no template.
"""

import builtins
import io
import pickle
import re
from typing import List, Optional

MAX_VALUE_BYTES = 1024
MAX_VALUE_CHARS = 80
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


def read_artifacts(flow: str, ds_type: str, ds_root: str, task_path: str) -> List[dict]:
    """artifact_rows of a task (run_id/step/task_id) in a flow's datastore (in a child
    of the task template)."""
    from .datastore import open_flow_datastore

    return stored_artifact_rows(open_flow_datastore(flow, ds_type, ds_root), task_path)


def stored_artifact_rows(flow_datastore, task_path: str) -> List[dict]:
    """artifact_rows of the latest attempt of a task (run_id/step/task_id)."""
    return artifact_rows(flow_datastore.get_task_datastore(*task_path.split("/")))


def artifact_rows(task_ds) -> List[dict]:
    """The public artifacts of a task's TaskDataStore, sorted by name: name, type (as
    Metaflow records it, "<class 'int'>"), size in bytes, the text shown (value) or why
    a value that could have been shown is not (hidden)."""
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
    values = _load_values(task_ds._ca_store, shown)
    rows = []
    for name in sorted(keys):
        entry = info.get(name, {})
        text, why = values.get(name), hidden.get(name)
        if text is not None and looks_secret(text):
            text, why = None, "value looks like a credential"
        rows.append({"name": name, "type": entry.get("type", "?"),
                     "size": int(entry.get("size", 0)), "value": _cut(text), "hidden": why})
    return rows


def _load_values(ca_store, keys: dict) -> dict:
    """{name: repr of the value} for the artifacts whose blobs load as builtins."""
    if not keys:
        return {}
    names_of = {}
    for name, key in keys.items():
        names_of.setdefault(key, []).append(name)
    values = {}
    for key, blob in ca_store.load_blobs(list(names_of)):
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


def looks_secret(text: str) -> bool:
    if SECRET_VALUE.search(text):
        return True
    return any(re.search("[a-z]", m) and re.search("[A-Z]", m)
               for m in AWS_SECRET.findall(text))


def _cut(text: Optional[str]) -> Optional[str]:
    if text is None or len(text) <= MAX_VALUE_CHARS:
        return text
    return text[:MAX_VALUE_CHARS - 1] + "…"
