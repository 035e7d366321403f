"""The naming conventions shared by the compiler, the runtime, the CLI and the
deployer. Each rule lives here once.

- A Dagster run maps to one Metaflow run. Its id derives from the *root* Dagster
  run id, so a Dagster "re-execute from failure" continues the same Metaflow run.
- Task ids are deterministic: a step outside any foreach has task id "t"; a task
  inside foreach splits is "t-<i>[-<j>...]", the split indices from the
  outermost foreach inward. Deterministic ids make retries, re-execution and
  resume address the same Metaflow task. They are never plain integers: the
  local metadata provider assumes integer ids were issued by itself and would
  not register them.
- The parameters task of a run is "_parameters/params".
"""

RUN_ID_PREFIX = "dagster-"
PARAMETERS_STEP = "_parameters"
ROOT_TASK_ID = "t"
PARAMETERS_TASK_ID = "params"

# Tags put on every Dagster run of a compiled job (as job tags).
TAG_FLOW_NAME = "metaflow/flow_name"
TAG_PROJECT = "metaflow/project_name"
TAG_BRANCH = "metaflow/branch_name"
TAG_RUN_ID = "metaflow/run_id"
# Run tag holding the events that triggered a run: a JSON list of dicts with exactly
# the keys metaflow.events.MetaflowEvent takes (name, id, timestamp, type).
TAG_TRIGGERS = "metaflow/triggers"


def metaflow_run_id(dagster_run_id: str) -> str:
    """Metaflow run id for a Dagster run id (pass the root run id)."""
    return RUN_ID_PREFIX + dagster_run_id.replace("-", "")[:16]


def metaflow_run_id_of(dagster_run) -> str:
    """Metaflow run id of a Dagster run (anything with run_id and root_run_id): a
    re-execution shares its root's Metaflow run."""
    return metaflow_run_id(dagster_run.root_run_id or dagster_run.run_id)


def is_dagster_run_id_prefix(run_id: str) -> bool:
    return run_id.startswith(RUN_ID_PREFIX)


def task_id(split_indices=()) -> str:
    """Task id of a task at the given foreach split indices (outermost first)."""
    return "-".join([ROOT_TASK_ID] + [str(i) for i in split_indices])


def split_indices(task_id_: str) -> tuple:
    """Inverse of task_id()."""
    return tuple(int(p) for p in task_id_.split("-")[1:])


def task_pathspec(run_id: str, step: str, task_id_: str) -> str:
    return "%s/%s/%s" % (run_id, step, task_id_)


def parameters_pathspec(run_id: str) -> str:
    return task_pathspec(run_id, PARAMETERS_STEP, PARAMETERS_TASK_ID)


def config_field_name(param_name: str) -> str:
    """Dagster config keys cannot hold dashes; Metaflow parameter names can."""
    return param_name.replace("-", "_")
