"""Definitions files already deployed keep working when this package is upgraded:
they are not regenerated, and they import only `metaflow_dagster.runtime`'s own
names. Moving modules inside runtime/ must leave those names where they were."""

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

from metaflow_dagster.compiler.render import render
from metaflow_dagster.deploy.definitions import DefinitionsFile

PACKAGE = "metaflow_dagster"
# Every name a released `dagster create` has written into a definitions file.
NAMES_DEFINITIONS_FILES_IMPORT = [
    "FlowRuntime", "SlackWebhook", "event_sensor", "finish_sensor", "flow_executor",
    "metaflow_multiprocess_executor", "metaflow_task_executor", "notification_sensors",
    "task_paths_io_manager",
]
# A file an earlier `dagster create` wrote (metaflow-dagster 0.2.0, plan version 3; the
# machine's paths in its plan replaced: loading it reads none of them). A new plan
# version (plan.SPEC_VERSION) stops every earlier file with a message to regenerate it,
# this one included: regenerate it then, and keep its imports as they come out.
EARLIER_FILE = Path(__file__).parent / "data" / "definitions_of_an_earlier_release.py"


def test_every_name_a_released_file_imports_still_imports():
    line = "from metaflow_dagster.runtime import %s" % ", ".join(NAMES_DEFINITIONS_FILES_IMPORT)
    # A fresh interpreter, as a Dagster code server loading the file.
    done = subprocess.run([sys.executable, "-c", line], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_file_written_by_an_earlier_release_still_loads():
    loaded = DefinitionsFile(str(EARLIER_FILE))
    assert loaded.job_name == "ProdEventFlow"
    assert loaded.job_def().name == "ProdEventFlow"
    assert [s.name for s in loaded.definitions.sensors] == ["ProdEventFlow_event_sensor"]


def test_new_files_import_only_names_that_stay():
    """A name the compiler starts writing joins the list above for good."""
    plan = DefinitionsFile(str(EARLIER_FILE)).plan
    every_trigger = dict(plan.triggers, flows=[{"flow": "Upstream", "project": None,
                                                 "branch": None}])
    text = render(dataclasses.replace(plan, triggers=every_trigger), "python flow.py ...")
    written = {alias.name for node in ast.walk(ast.parse(text))
               if isinstance(node, ast.ImportFrom) and node.module.startswith(PACKAGE)
               for alias in node.names}
    assert written >= {"FlowRuntime", "event_sensor", "finish_sensor"}
    assert written <= set(NAMES_DEFINITIONS_FILES_IMPORT)
