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
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from io import BytesIO
from typing import Dict, Optional

from ... import naming
from ...naming import sysroot_env
from ...plan import FlowPlan
from ..datastore import plan_datastore
from . import DeploymentUnavailable
from .preflight import Unreachable, check_local, check_reachable, metadata_service
from .settings import datastore_location, setting_source


class PackageUnavailable(DeploymentUnavailable):
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


# Metaflow's post-extract variables of a package (get_post_extract_env_vars), written
# in its folder when it is unpacked: a host that has the package unpacked runs from
# it without importing Metaflow.
POST_EXTRACT_FILE = ".metaflow_dagster_env.json"

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
        package = _unpacked.get(sha)
        if package is None:
            _unpacked[sha] = _unpacked_here(plan) or _fetch_and_unpack(plan)
            return _unpacked[sha]
    # The tasks need the datastore: it may have become unreachable since (preflight.py).
    _check_datastore(plan, package.url)
    return package


def _unpacked_here(plan: FlowPlan) -> Optional[UnpackedPackage]:
    """The package as this host has it unpacked already, found without importing
    Metaflow: with a local datastore and no metadata service (whose check needs
    Metaflow's settings), else None."""
    sha = plan.package["sha"]
    ds_type, ds_root = datastore_location(plan)
    root = os.path.join(package_cache_dir(), sha)
    saved = os.path.join(root, POST_EXTRACT_FILE)
    if ds_type != "local" or not ds_root or metadata_service(plan) or \
            not os.path.isfile(saved):
        return None
    # Where LocalStorage keeps it: Metaflow's content-addressed layout under the root.
    url = os.path.join(ds_root, plan.flow_name, "data", sha[:2], sha)
    _check_datastore(plan, url)
    return _package_at(plan, root, url)


def _fetch_and_unpack(plan: FlowPlan) -> UnpackedPackage:
    """The package from the flow's datastore, unpacked unless this host has it."""
    sha = plan.package["sha"]
    flow_ds = plan_datastore(plan)
    path = _package_path(plan, flow_ds)
    url = flow_ds._storage_impl.full_uri(path)
    # Also when the package is unpacked already: the tasks need the datastore.
    _check_datastore(plan, url, flow_ds)
    root = os.path.join(package_cache_dir(), sha)
    if not os.path.isdir(root):
        _unpack(plan, _fetch(plan, flow_ds, path, url), root)
    return _package_at(plan, root, url)


def _package_path(plan: FlowPlan, flow_ds) -> str:
    """Where the package is in `flow_ds`: Metaflow's content-addressed layout,
    <flow>/data/<sha[:2]>/<sha>."""
    sha = plan.package["sha"]
    return flow_ds._storage_impl.path_join(plan.flow_name, "data", sha[:2], sha)


def _check_datastore(plan: FlowPlan, url: str, flow_ds=None) -> None:
    """PackageUnavailable unless this host reaches the datastore (and the metadata
    service) and finds the package at `url` there."""
    ds_type, ds_root = datastore_location(plan)
    try:
        if ds_type == "local" and ds_root and not metadata_service(plan):
            check_local(plan, ds_root, url)  # without importing Metaflow
        else:
            flow_ds = flow_ds or plan_datastore(plan)
            check_reachable(plan, flow_ds, _package_path(plan, flow_ds))
    except Unreachable as error:
        raise PackageUnavailable(str(error), network=error.network) from None


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
        with open(os.path.join(scratch, POST_EXTRACT_FILE), "w") as f:
            json.dump(MetaflowPackage.get_post_extract_env_vars(
                plan.package["metadata"], dest_dir=root), f)
        # Every task and task template imports Metaflow from the package: compiled
        # once here, each import takes about half the CPU it takes from source, and
        # Python would not cache the bytecode itself where PYTHONDONTWRITEBYTECODE is set.
        compileall.compile_dir(scratch, quiet=2, workers=1)
        try:
            os.rename(scratch, root)
        except OSError:
            if not os.path.isdir(root):  # not a lost race: a real error
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _package_at(plan: FlowPlan, root: str, url: str) -> UnpackedPackage:
    return UnpackedPackage(root, os.path.join(root, plan.flow_file), url,
                           _task_env(plan, url, _post_extract_env(plan, root)))


def _post_extract_env(plan: FlowPlan, root: str) -> Dict[str, str]:
    saved = os.path.join(root, POST_EXTRACT_FILE)
    if os.path.isfile(saved):
        with open(saved) as f:
            return json.load(f)
    from metaflow.package import MetaflowPackage  # a folder unpacked without the file

    return MetaflowPackage.get_post_extract_env_vars(plan.package["metadata"], dest_dir=root)


def _task_env(plan: FlowPlan, url: str, post_extract: Dict[str, str]) -> Dict[str, str]:
    env = {naming.CODE_PACKAGE_ENV[key]: plan.package[key] for key in naming.CODE_PACKAGE_ENV}
    env[naming.CODE_PACKAGE_ENV["url"]] = url
    # Metaflow's own post-extract variables: a name ending in ":" replaces, the others
    # go first on the search path (as in get_package_commands).
    for name, value in post_extract.items():
        if name.endswith(":"):
            env[name[:-1]] = value
        else:
            current = os.environ.get(name)
            env[name] = value + (os.pathsep + current if current else "")
    return env
