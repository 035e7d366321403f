"""The flow's code as `dagster create` packaged it, unpacked on the host running
the op; every task of the job runs from there (`python <package>/flow.py step ...`;
the working directory is settings.working_directory), whatever became of the flow's
own directory since.

A package is fetched from the flow's datastore by its sha once per host: it is
unpacked into a cache folder named after the sha (METAFLOW_DAGSTER_PACKAGE_CACHE,
default below), first into a temporary folder beside it, where its Python files are
compiled, then renamed into place.
A rename is atomic, so when several ops or processes race, each either finds the
complete folder or makes its own and the loser of the rename discards its copy.
The package holds Metaflow and metaflow-dagster too (see metaflow_dagster/__init__);
the task finds them first on its PYTHONPATH, as in a pod of `argo-workflows`.
"""

import compileall
import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from io import BytesIO
from typing import Dict

from .. import naming
from ..naming import sysroot_env
from ..plan import FlowPlan
from .datastore import plan_datastore
from .preflight import Unreachable, check_reachable
from .settings import setting_source


class PackageUnavailable(Exception):
    """The code package could not be fetched or unpacked; the message says why."""


@dataclass(frozen=True)
class UnpackedPackage:
    root: str
    flow_file: str
    # Where the package is in the datastore the tasks use on this host (the plan's
    # url, unless the worker's environment moved the datastore's root).
    url: str
    # What a task needs to run from the package: PYTHONPATH first, and Metaflow's
    # METAFLOW_CODE_* (so the task registers its code package, `Run(...).code`).
    env: Dict[str, str]


def package_cache_dir() -> str:
    return os.environ.get(naming.PACKAGE_CACHE_ENV) or os.path.join(
        tempfile.gettempdir(), "metaflow-dagster-packages-%d" % os.getuid())


_unpacked: Dict[str, UnpackedPackage] = {}
_lock = threading.Lock()


def code_package(plan: FlowPlan) -> UnpackedPackage:
    """The plan's package, unpacked on this host (fetched on first use)."""
    if not plan.package:
        raise PackageUnavailable(
            "This definitions file has no code package; regenerate it with "
            "`python <flow>.py dagster create`.")
    sha = plan.package["sha"]
    with _lock:  # one fetch per process; the threads of other ops wait for it
        if sha not in _unpacked:
            flow_ds = plan_datastore(plan)
            # The layout of Metaflow's content-addressed store: <flow>/data/<sha[:2]>/<sha>.
            path = flow_ds._storage_impl.path_join(plan.flow_name, "data", sha[:2], sha)
            url = flow_ds._storage_impl.full_uri(path)
            try:
                # Also when the package is unpacked already: the tasks need the datastore.
                check_reachable(plan, flow_ds, path)
            except Unreachable as error:
                raise PackageUnavailable(str(error)) from None
            root = os.path.join(package_cache_dir(), sha)
            if not os.path.isdir(root):
                _unpack(plan, _fetch(plan, flow_ds, path, url), root)
            _unpacked[sha] = UnpackedPackage(root, os.path.join(root, plan.flow_file), url,
                                             _task_env(plan, root, url))
        return _unpacked[sha]


def _fetch(plan: FlowPlan, flow_ds, path: str, url: str) -> bytes:
    sha = plan.package["sha"]
    storage = flow_ds._storage_impl
    if not storage.is_file([path])[0]:  # (the preflight checks this for s3 and local)
        raise PackageUnavailable(
            "The code package of %s is not at %s (it was saved at %s). Check %s, or run "
            "`dagster create` again." % (plan.flow_name, url, plan.package["url"],
                                         setting_source(plan, sysroot_env(flow_ds.TYPE))))
    try:
        blob = bytes(next(iter(flow_ds.load_data([sha], force_raw=True)))[1])
    except Exception as error:  # whatever the datastore raised: say which package
        raise PackageUnavailable("Could not fetch the code package %s: %s: %s" % (
            url, type(error).__name__, error)) from None
    if hashlib.sha1(blob).hexdigest() != sha:
        raise PackageUnavailable("The code package %s does not match its sha %s." % (url, sha))
    return blob


def _unpack(plan: FlowPlan, blob: bytes, root: str) -> None:
    from metaflow.package import MetaflowPackage

    os.makedirs(os.path.dirname(root), exist_ok=True)
    scratch = tempfile.mkdtemp(dir=os.path.dirname(root), prefix=".unpack-")
    try:
        MetaflowPackage.cls_extract_into(plan.package["metadata"], BytesIO(blob), scratch)
        # Every task and task template imports Metaflow from the package: compiled
        # once here (~0.6 s), each import takes half the CPU it takes from source, and
        # Python would not cache the bytecode itself where PYTHONDONTWRITEBYTECODE is set.
        compileall.compile_dir(scratch, quiet=2, workers=1)
        try:
            os.rename(scratch, root)
        except OSError:
            if not os.path.isdir(root):  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _task_env(plan: FlowPlan, root: str, url: str) -> Dict[str, str]:
    from metaflow.package import MetaflowPackage

    env = {naming.CODE_PACKAGE_ENV[key]: plan.package[key] for key in naming.CODE_PACKAGE_ENV}
    env[naming.CODE_PACKAGE_ENV["url"]] = url
    # Metaflow's own post-extract variables: a name ending in ":" replaces, the others
    # go first on the search path (as in get_package_commands).
    for name, value in MetaflowPackage.get_post_extract_env_vars(
            plan.package["metadata"], dest_dir=root).items():
        if name.endswith(":"):
            env[name[:-1]] = value
        else:
            current = os.environ.get(name)
            env[name] = value + (os.pathsep + current if current else "")
    return env
