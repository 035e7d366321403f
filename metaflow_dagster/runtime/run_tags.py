"""The Metaflow facts of a Dagster run as run tags, so the runs list can be searched
by them: the Metaflow run id, the user and what started the run (the flow name and
@project's project and branch are job tags, which every run carries already).

Our CLI and the Deployer set the run id when they launch a run; runs launched from
the UI, a schedule or a sensor do not go through them, so the first op of a run in a
process adds what is missing (one write per run per process).
"""

import json
import threading
from typing import Dict, Optional

from .. import naming

# Tag values are for people to read and search: long trigger lists are cut.
MAX_TAG_CHARS = 200

_tagged = set()
_lock = threading.Lock()


def tag_run_once(context, env: dict) -> None:
    """Add the run's Metaflow tags it lacks; `env` is the environment of its tasks."""
    run = context.run
    with _lock:
        if run.run_id in _tagged:
            return
        _tagged.add(run.run_id)
    missing = {key: value for key, value in metaflow_run_tags(run, env).items()
               if value and key not in run.tags}
    if missing:
        context.instance.add_run_tags(run.run_id, missing)


def metaflow_run_tags(run, env: dict) -> Dict[str, str]:
    return {
        naming.TAG_RUN_ID: naming.metaflow_run_id_of(run),
        naming.TAG_USER: metaflow_user(env),
        naming.TAG_TRIGGER: trigger_text(run.tags),
    }


def metaflow_user(env: dict) -> Optional[str]:
    """The user Metaflow records for the tasks (metaflow.util.get_username, read from
    the tasks' environment rather than this process's)."""
    for key in ("METAFLOW_USER", "SUDO_USER", "USERNAME", "USER"):
        if env.get(key) and env[key] != "root":
            return env[key]
    return None


def trigger_text(tags: Dict[str, str]) -> str:
    """What started the run: "event:<name>" and "run:<Flow/run id>" for each trigger of
    @trigger / @trigger_on_finish, "schedule:<name>", "sensor:<name>", "resume:<run id>",
    else "manual" (the launchpad, our CLI, `dagster job execute`)."""
    triggers = json.loads(tags.get(naming.TAG_TRIGGERS) or "[]")
    if triggers:
        text = ", ".join(
            "run:%s" % "/".join(t["id"].split("/")[:2]) if t.get("type") == "run"
            else "event:%s" % t.get("name") for t in triggers)
    elif tags.get("dagster/schedule_name"):
        text = "schedule:%s" % tags["dagster/schedule_name"]
    elif tags.get("dagster/sensor_name"):
        text = "sensor:%s" % tags["dagster/sensor_name"]
    elif tags.get(naming.TAG_RESUME_ORIGIN):
        text = "resume:%s" % tags[naming.TAG_RESUME_ORIGIN]
    else:
        text = "manual"
    return text if len(text) <= MAX_TAG_CHARS else text[:MAX_TAG_CHARS - 1] + "…"
