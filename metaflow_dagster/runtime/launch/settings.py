"""The Metaflow settings of a plan, as they take effect on the host running the ops.

The plan carries the non-secret settings the tasks need, by Metaflow's own
environment variable names (what `argo-workflows create` writes into its pod
specs): the datastore type and root, the S3 endpoint, the metadata provider and
its service URL, the default environment. On the host running an op, a variable
set in the worker's own environment wins over the plan's value. Credentials are
never in the plan: they come from the worker's environment (or Metaflow's config
file) alone.

The ops do some Metaflow work in the Dagster process itself (fetching the code
package, reading attempts, saving logs), and Metaflow reads its configuration
once per process, when it is first imported. So the plan's settings are put into
the process's environment just before that import (datastore.py calls
`apply_to_process` under its first-open lock).
"""

import os
import sys
from functools import lru_cache
from typing import Dict, Optional

from ...naming import DATASTORE_ENV, LOCAL_DATASTORE_DIR, METADATA_ENV, sysroot_env
from ...plan import FlowPlan

LOCAL_SYSROOT = sysroot_env("local")

# The worker's environment as it was before any plan's settings were added to it:
# what "set in the worker's environment" means, also once another definitions
# file loaded in the same process has applied its settings.
WORKER_ENV = dict(os.environ)


def effective_settings(plan: FlowPlan) -> Dict[str, str]:
    """The plan's settings, each overridden by the worker's environment if set there."""
    return {name: WORKER_ENV.get(name) or value for name, value in plan.settings.items()}


def datastore_location(plan: FlowPlan):
    """(type, root) of the datastore the tasks use on this host; root None lets
    Metaflow find it as it would (its config file, then the working directory)."""
    settings = effective_settings(plan)
    ds_type = settings.get(DATASTORE_ENV) or WORKER_ENV.get(DATASTORE_ENV) or "local"
    root = settings.get(sysroot_env(ds_type)) or WORKER_ENV.get(sysroot_env(ds_type))
    if root and ds_type == "local":
        root = os.path.join(root, LOCAL_DATASTORE_DIR)
    return ds_type, root or None


def setting_source(plan: FlowPlan, name: str) -> str:
    """Where a setting's value comes from, for error messages."""
    if WORKER_ENV.get(name):
        return "%s, set in this worker's environment" % name
    if name in plan.settings:
        return "%s, from the definitions file" % name
    return "%s, not set" % name


_applied = set()


def apply_to_process(plan: FlowPlan) -> None:
    """Give this process's first `import metaflow` the plan's settings. Once Metaflow
    has read its configuration (e.g. in the user's own process, which loads the file
    to trigger or resume a run), this does nothing: it would change only what the
    process's other children inherit."""
    if "metaflow.metaflow_config" in sys.modules:
        return
    for name, value in effective_settings(plan).items():
        if name not in os.environ:
            os.environ[name] = value
            _applied.add(name)


def worker_environment() -> Dict[str, str]:
    """This process's environment without what apply_to_process added to it (a
    task must not inherit the settings of another plan loaded in the process)."""
    return {name: value for name, value in os.environ.items() if name not in _applied}


def task_settings(plan: FlowPlan) -> Dict[str, str]:
    """The settings every task of the plan gets on this host.

    Metaflow's *local* metadata provider writes under METAFLOW_DATASTORE_SYSROOT_LOCAL,
    or else under the task's working directory, which with S3 is the unpacked code
    package. With the local datastore the plan sets it (metadata lives beside the
    data); otherwise it is resolved here, as Metaflow would resolve it for the
    worker (its config file, then a `.metaflow` folder from the worker's working
    directory up), so runs are found where the worker runs, as with `kubernetes
    step`, which copies a pod's local metadata to where it was launched from."""
    settings = effective_settings(plan)
    if settings.get(METADATA_ENV, WORKER_ENV.get(METADATA_ENV)) in (None, "local") \
            and LOCAL_SYSROOT not in settings and not WORKER_ENV.get(LOCAL_SYSROOT):
        settings[LOCAL_SYSROOT] = _worker_local_sysroot()
    return settings


def working_directory(plan: FlowPlan, package_root: str) -> str:
    """Where the tasks run: the unpacked code package, as in a pod of `argo-workflows`
    (relative paths reach the packaged files). With a local datastore, the folder
    holding it instead, as under `python flow.py run` in the flow's directory: Metaflow
    finds a local datastore's cards from the working directory alone (in 2.19 its
    METAFLOW_CARD_LOCALROOT setting is ignored), and the Client looks for them beside
    the datastore. The code still comes from the package (the flow file's folder and
    the package's PYTHONPATH come first on the task's import path)."""
    ds_type, root = datastore_location(plan)
    if ds_type == "local" and root:
        return os.path.dirname(root)
    return package_root


@lru_cache(maxsize=None)
def _worker_local_sysroot() -> str:
    # After the datastore is open (runtime/datastore.py imports metaflow first).
    from metaflow.plugins.datastores.local_storage import LocalStorage

    root: Optional[str] = LocalStorage.get_datastore_root_from_config(
        lambda *args, **kwargs: None, create_on_absent=False)
    return os.path.dirname(root) if root else os.getcwd()
