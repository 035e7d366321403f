"""The step decorator our runtime adds (`--with dagster_internal`) to every task
it launches. It runs inside the Metaflow task process and reports what the
orchestrator needs to know next, so the Dagster op need not read it back:

- the number of foreach splits of a foreach step, and Metaflow's text of each item
  (the splits' labels in Dagster),
- the branch a switch step took, and the steps any step's self.next() named (the
  op checks them against the graph, as Metaflow's runtime does),
- its artifacts as the op shows them (artifacts.py), read here, where the
  datastore is open already, rather than by another process after the task,

written as JSON to the file named by METAFLOW_DAGSTER_RESULT_FILE. It also
records the Dagster run and op on the task's metadata, exposes the events that
triggered the run as `current.trigger`, and makes a start task launched alongside
`flow.py init` wait until the run's Parameters are persisted. Before anything, it
makes the task die with the op's process (parent_death.py).
"""

import json
import os
import time

from metaflow.decorators import StepDecorator
from metaflow.exception import MetaflowException
from metaflow.metadata_provider import MetaDatum

from ..naming import (
    DAGSTER_OP_ENV,
    DAGSTER_RUN_ID_ENV,
    PARAMETERS_READY_ENV,
    PARAMETERS_STEP,
    PARAMETERS_TASK_ID,
    RESULT_ARTIFACTS,
    RESULT_FILE_ENV,
    RESULT_FOREACH_SPLITS,
    RESULT_FOREACH_VALUES,
    RESULT_NEXT_STEPS,
    RESULT_SWITCH_STEP,
    TRIGGERS_ENV,
)
from .artifacts import artifact_rows
from .parent_death import die_with_launcher

_process_checked = False


class DagsterInternalDecorator(StepDecorator):
    name = "dagster_internal"

    def step_init(self, flow, graph, step_name, decorators, environment, flow_datastore,
                  logger):
        # Runs (for every step of the flow) before the task reads its inputs; for
        # the start task, its input is the _parameters task `flow.py init` writes.
        _once_per_process(flow, graph)
        ready_file = os.environ.pop(PARAMETERS_READY_ENV, None)
        if ready_file:
            _wait_for_parameters(ready_file)

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
        self._task_datastore = task_datastore
        if step_name != graph.start_step:
            _read_parameters_of_resumed_run(task_datastore, inputs, run_id)
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
        next_steps = list(flow._transition[0]) if flow._transition else []
        result = {RESULT_NEXT_STEPS: next_steps}
        if node.type == "foreach":
            result[RESULT_FOREACH_SPLITS] = flow._foreach_num_splits
            # None unless METAFLOW_INCLUDE_FOREACH_STACK (on by default).
            result[RESULT_FOREACH_VALUES] = getattr(flow, "_foreach_values", None)
        if node.type == "split-switch" and next_steps:
            result[RESULT_SWITCH_STEP] = next_steps[0]
        # Metaflow calls task_finished once the task's datastore is written whole.
        try:
            result[RESULT_ARTIFACTS] = artifact_rows(self._task_datastore)
        except Exception:
            pass  # a display matter only: the op then reads them from the datastore
        with open(result_file, "w") as f:
            json.dump(result, f)


def _read_parameters_of_resumed_run(task_datastore, inputs, run_id) -> None:
    """In a resumed run, a task reads the Parameters of its own run, not those its
    inputs carry: an input may be a task cloned from the origin run, and a resume can
    be given new values (`dagster resume --alpha 2`). Metaflow gives a task the
    Parameters of its first input, lazily (Task._init_parameters), and a task's
    artifacts inherit its input's: pointing the inputs and the task's own datastore
    at this run's _parameters task does both. The start task reads that task already."""
    from metaflow import current

    if not current.get("origin_run_id"):
        return
    # Set by Metaflow when the task initialised its Parameters (the flow's class
    # attributes are properties by then).
    names = current.get("parameter_names") or []
    if not names:
        return
    parameters_ds = task_datastore.parent_datastore.get_task_datastore(
        run_id, PARAMETERS_STEP, PARAMETERS_TASK_ID)
    for datastore in list(inputs) + [task_datastore]:
        # TaskDataStore.passdown_partial, which refuses a datastore open for reading
        # (as the inputs are): the same records of the same stored objects.
        for name in names:
            if name in parameters_ds._objects:
                datastore._objects[name] = parameters_ds._objects[name]
                datastore._info[name] = parameters_ds._info[name]


def _once_per_process(flow, graph) -> None:
    """Before the first step_init of the task process."""
    global _process_checked
    if _process_checked:
        return
    _process_checked = True
    die_with_launcher()


def _wait_for_parameters(ready_file: str) -> None:
    """Wait until the op says `flow.py init` has exited (see runtime/launch/launcher.py,
    ParametersInit); give up if the op's process is gone."""
    parent = os.getppid()
    while not os.path.exists(ready_file):
        if os.getppid() != parent:
            raise MetaflowException("The Dagster op that launched this task has gone away.")
        time.sleep(0.01)
    with open(ready_file) as f:
        if f.read() != "ok":
            raise MetaflowException(
                "The Parameters of this run could not be persisted (`init` failed; see "
                "the start op's log), so the start step does not run."
            )
