"""Fail fast when the datastore or the metadata service cannot be reached.

Metaflow retries its datastore for minutes before a task gives up (S3: up to
S3_RETRY_COUNT retries of 10 attempts each, with backoff), so a worker whose
settings point nowhere would sit silently in its first task for five minutes and
more. Before an op fetches its code package, one request with short timeouts
checks, once per process and location, that the datastore answers (and holds the
package), and says which setting to fix if not. A check that passed is trusted for
FRESH_SECONDS: a host that loses the datastore fails its next ops within seconds (and
their retries can go to a host that still reaches it), while a process running many ops
at once (a foreach under the default executor) checks once in a while, not once per op.
"""

import os
import threading
import time
from typing import Dict, Optional, Tuple

from ...naming import METADATA_ENV, S3_ENDPOINT_ENV, SERVICE_URL_ENV, sysroot_env
from ...plan import FlowPlan
from .settings import WORKER_ENV, effective_settings, setting_source

CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 10

FRESH_SECONDS = 2

# (datastore type, root, metadata service) -> when its check last passed (monotonic).
_passed: Dict[Tuple[str, str, Optional[str]], float] = {}
_lock = threading.Lock()


class Unreachable(Exception):
    """The datastore or the metadata service cannot be used from here; the message says
    why and which setting to fix. `network`: it did not answer this host at all (another
    host may reach it), rather than answering no."""

    def __init__(self, message: str, network: bool = False):
        super().__init__(message)
        self.network = network


def check_reachable(plan: FlowPlan, flow_ds, package_path: str) -> None:
    """Raise Unreachable unless the datastore answers for the package's object (at
    `package_path` in `flow_ds`) and the metadata service, if any, answers its ping."""
    service = metadata_service(plan)
    key = (flow_ds.TYPE, flow_ds.datastore_root, service)
    with _lock:
        if time.monotonic() - _passed.get(key, -FRESH_SECONDS) < FRESH_SECONDS:
            return
    if flow_ds.TYPE == "s3":
        _check_s3(plan, flow_ds, package_path)
    elif flow_ds.TYPE == "local":
        check_local(plan, flow_ds.datastore_root, flow_ds._storage_impl.full_uri(package_path))
    if service:
        check_service(plan, service)
    with _lock:
        _passed[key] = time.monotonic()


def metadata_service(plan: FlowPlan) -> Optional[str]:
    """The URL of the metadata service the tasks use on this host, if they use one."""
    settings = effective_settings(plan)
    if (settings.get(METADATA_ENV) or WORKER_ENV.get(METADATA_ENV)) != "service":
        return None
    return settings.get(SERVICE_URL_ENV) or WORKER_ENV.get(SERVICE_URL_ENV)


def check_local(plan: FlowPlan, datastore_root: str, url: str) -> None:
    """The local datastore is there and holds the package (at `url`, a path)."""
    setting = setting_source(plan, sysroot_env("local"))
    if not os.path.isdir(datastore_root):
        raise Unreachable(
            "The local datastore %s does not exist on this host (%s). Point it at the "
            "folder holding the flow's `.metaflow` datastore, as seen from this host."
            % (datastore_root, setting))
    if not os.path.isfile(url):
        raise Unreachable(_not_there(plan, url, setting))


def _not_there(plan: FlowPlan, url: str, setting: str) -> str:
    return ("The code package of %s is not at %s (it was saved at %s). Check %s, or run "
            "`dagster create` again." % (plan.flow_name, url, plan.package["url"], setting))


def _check_s3(plan: FlowPlan, flow_ds, package_path: str) -> None:
    from botocore.config import Config
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )
    from metaflow.metaflow_config import DATATOOLS_CLIENT_PARAMS, S3_ENDPOINT_URL
    from metaflow.plugins.aws.aws_client import get_aws_client
    from metaflow.plugins.aws.aws_utils import parse_s3_full_path

    url = flow_ds._storage_impl.full_uri(package_path)
    bucket, key = parse_s3_full_path(url)
    endpoint = S3_ENDPOINT_URL or "AWS S3 (no endpoint set)"
    params = dict(DATATOOLS_CLIENT_PARAMS, config=Config(
        connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS,
        retries={"max_attempts": 2, "mode": "standard"}))
    try:
        get_aws_client("s3", client_params=params).head_object(Bucket=bucket, Key=key)
    except NoCredentialsError:
        raise Unreachable(
            "No AWS credentials on this host for the S3 datastore %s: set them in the "
            "worker's environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "AWS_PROFILE) or its AWS config." % flow_ds.datastore_root) from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
            raise Unreachable(_not_there(plan, url, setting_source(
                plan, sysroot_env("s3")))) from None
        raise Unreachable(
            "The S3 datastore refused to read %s: %s. Check the worker's AWS credentials "
            "and %s." % (url, error, setting_source(plan, sysroot_env("s3")))) from None
    except (EndpointConnectionError, BotoCoreError) as error:
        raise Unreachable(
            "Cannot reach the S3 datastore %s at %s within %d s: %s. Check %s (and %s)."
            % (flow_ds.datastore_root, endpoint, CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS,
               error, setting_source(plan, S3_ENDPOINT_ENV),
               setting_source(plan, sysroot_env("s3"))), network=True) from None


def check_service(plan: FlowPlan, url: str) -> None:
    import requests
    from metaflow.metaflow_config import SERVICE_HEADERS  # with the worker's credentials

    try:
        response = requests.get(os.path.join(url, "ping"), headers=dict(SERVICE_HEADERS or {}),
                                timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS))
        response.raise_for_status()
    except requests.RequestException as error:
        no_answer = isinstance(error, (requests.ConnectionError, requests.Timeout))
        raise Unreachable(
            "Cannot reach the Metaflow metadata service at %s: %s. Check %s (and the "
            "service's credentials, METAFLOW_SERVICE_AUTH_KEY or METAFLOW_SERVICE_HEADERS, "
            "in the worker's environment)." % (url, error, setting_source(plan, SERVICE_URL_ENV)),
            network=no_answer) from None
