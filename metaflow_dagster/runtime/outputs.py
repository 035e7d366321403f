"""Where ops keep their outputs for the ops after them: each output is a Metaflow task path
(a short string), which Dagster hands over through the job's IO manager.

Dagster's default IO manager writes a file under the instance's storage directory, on the
host of the process that ran the op: fine on one host, but with ops on several hosts
(Celery workers, pods) the op after it may run where that file is not. So a job whose
tasks keep their datastore in S3 keeps its outputs in S3 too, beside the run's artifacts:

    <METAFLOW_DATASTORE_SYSROOT_S3>/<Flow>/dagster-outputs/
        <Dagster run id>/<step key>/<output name>[/<mapping key>]

(one small JSON object each), through the S3 client Metaflow itself would use on this host
(its endpoint, credentials and client parameters). A job on the local datastore keeps
Dagster's default: a local datastore needs one disk anyway. Dagster names the run whose
output an op reads: a re-execution reads the outputs of the run it re-executes, wherever
its ops ran.
"""

import json
import threading
from typing import Dict, Optional, Sequence

from dagster import Failure, IOManager, io_manager
from dagster._core.storage.fs_io_manager import PickledObjectFilesystemIOManager

from ..naming import S3_ENDPOINT_ENV
from ..plan import FlowPlan
from .launch.preflight import CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS
from .launch.settings import apply_to_process, datastore_location, setting_source

OUTPUTS_DIR = "dagster-outputs"


class S3Outputs:
    """The outputs of one job's runs, in its S3 datastore."""

    def __init__(self, plan: FlowPlan, root: str):
        from metaflow.plugins.aws.aws_utils import parse_s3_full_path

        self.plan = plan
        self.bucket, prefix = parse_s3_full_path(root.rstrip("/"))
        self.prefix = "/".join(p for p in (prefix, plan.flow_name, OUTPUTS_DIR) if p)
        self._client = None
        self._lock = threading.Lock()

    def key(self, identifier: Sequence[str]) -> str:
        return "/".join([self.prefix, *identifier])

    def put(self, identifier: Sequence[str], value) -> None:
        key = self.key(identifier)
        self._call("store", key, lambda s3: s3.put_object(
            Bucket=self.bucket, Key=key, Body=json.dumps(value).encode()))

    def get(self, identifier: Sequence[str]):
        key = self.key(identifier)
        body = self._call("read", key, lambda s3: s3.get_object(Bucket=self.bucket, Key=key))
        return json.loads(body["Body"].read())

    def _call(self, doing: str, key: str, request):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return request(self._s3())
        except (BotoCoreError, ClientError) as error:
            raise Failure(
                description="Could not %s the op output s3://%s/%s: %s. Check %s." % (
                    doing, self.bucket, key, error,
                    setting_source(self.plan, S3_ENDPOINT_ENV))) from None

    def _s3(self):
        with self._lock:
            if self._client is None:
                from botocore.config import Config
                from metaflow.metaflow_config import DATATOOLS_CLIENT_PARAMS
                from metaflow.plugins.aws.aws_client import get_aws_client

                self._client = get_aws_client("s3", client_params=dict(
                    DATATOOLS_CLIENT_PARAMS, config=Config(
                        connect_timeout=CONNECT_TIMEOUT_SECONDS,
                        read_timeout=READ_TIMEOUT_SECONDS,
                        retries={"max_attempts": 3, "mode": "standard"})))
            return self._client


class TaskPathsIOManager(IOManager):
    """S3Outputs for the jobs on an S3 datastore; Dagster's default IO manager otherwise.
    `plan_of` gives the plan of a job by its name (None for a job that is not a compiled
    flow)."""

    def __init__(self, storage_directory: str, plan_of):
        self._default = PickledObjectFilesystemIOManager(base_dir=storage_directory)
        self._plan_of = plan_of
        self._stores: Dict[str, Optional[S3Outputs]] = {}

    def handle_output(self, context, obj) -> None:
        store = self._store(context.job_name)
        if store is None:
            self._default.handle_output(context, obj)
        else:
            store.put(context.get_identifier(), obj)

    def load_input(self, context):
        upstream = context.upstream_output
        store = self._store(upstream.job_name)
        if store is None:
            return self._default.load_input(context)
        return store.get(upstream.get_identifier())

    def _store(self, job_name: str) -> Optional[S3Outputs]:
        if job_name not in self._stores:
            plan = self._plan_of(job_name)
            store = None
            if plan is not None:
                ds_type, root = datastore_location(plan)
                if ds_type == "s3" and root:
                    apply_to_process(plan)  # before Metaflow reads its configuration
                    store = S3Outputs(plan, root)
            self._stores[job_name] = store
        return self._stores[job_name]


@io_manager(description="Op outputs (Metaflow task paths): in the flow's S3 datastore when "
                        "it has one, else Dagster's default files (runtime/outputs.py).")
def task_paths_io_manager(init_context) -> TaskPathsIOManager:
    from .ops import FlowRuntime

    return TaskPathsIOManager(init_context.instance.storage_directory(), FlowRuntime.plan_of_job)
