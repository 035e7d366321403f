"""The step decorator our runtime adds (`--with dagster_internal`) to every task
it launches. It runs inside the Metaflow task process and reports what the
orchestrator needs to know next, so the Dagster op never imports Metaflow:

- the number of foreach splits of a foreach step,
- the branch a switch step took,

written as JSON to the file named by METAFLOW_DAGSTER_RESULT_FILE. It also
records the Dagster run and op on the task's metadata, and exposes the events
that triggered the run as `current.trigger`.
"""

import json
import os

from metaflow.decorators import StepDecorator
from metaflow.metadata_provider import MetaDatum

from .env import (
    DAGSTER_OP_ENV,
    DAGSTER_RUN_ID_ENV,
    RESULT_FILE_ENV,
    TRIGGERS_ENV,
)


class DagsterInternalDecorator(StepDecorator):
    name = "dagster_internal"

    def task_pre_step(
        self,
        step_name,
        task_datastore,
        metadata,
        run_id,
        task_id,
        flow,
        graph,
        retry_count,
        max_user_code_retries,
        ubf_context,
        inputs,
    ):
        triggers = json.loads(os.environ.get(TRIGGERS_ENV) or "[]")
        if triggers:
            from metaflow import current
            from metaflow.events import Trigger

            current._update_env({"trigger": Trigger(triggers)})
        entries = {
            "dagster-run-id": os.environ.get(DAGSTER_RUN_ID_ENV),
            "dagster-op": os.environ.get(DAGSTER_OP_ENV),
        }
        if triggers and step_name == graph.start_step:
            entries["execution-triggers"] = json.dumps(triggers)
        metadata.register_metadata(
            run_id,
            step_name,
            task_id,
            [
                MetaDatum(field=k, value=v, type=k, tags=["attempt_id:%d" % retry_count])
                for k, v in entries.items()
                if v
            ],
        )

    def task_finished(
        self, step_name, flow, graph, is_task_ok, retry_count, max_user_code_retries
    ):
        result_file = os.environ.get(RESULT_FILE_ENV)
        if not is_task_ok or not result_file:
            return
        node = graph[step_name]
        result = {}
        if node.type == "foreach":
            result["foreach_num_splits"] = flow._foreach_num_splits
        if node.type == "split-switch":
            result["switch_step"] = flow._transition[0][0]
        with open(result_file, "w") as f:
            json.dump(result, f)
