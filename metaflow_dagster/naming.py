"""Every name that crosses between processes, each in one place: run and task
ids, run tags, environment variables, the task-result keys and the default file
names. Imported by the compiler, the runtime, the task process and the CLI; it
imports nothing.

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

import re

# --- Metaflow run and task ids -------------------------------------------------

RUN_ID_PREFIX = "dagster-"
PARAMETERS_STEP = "_parameters"
ROOT_TASK_ID = "t"
PARAMETERS_TASK_ID = "params"


def metaflow_run_id(dagster_run_id: str) -> str:
    """Metaflow run id for a Dagster run id (pass the root run id)."""
    return RUN_ID_PREFIX + dagster_run_id.replace("-", "")[:16]


def metaflow_run_id_of(dagster_run) -> str:
    """Metaflow run id of a Dagster run (anything with run_id and root_run_id): a
    re-execution shares its root's Metaflow run."""
    return metaflow_run_id(dagster_run.root_run_id or dagster_run.run_id)


def is_metaflow_run_id(run_id: str) -> bool:
    """True for a Metaflow run id of ours (`dagster-...`), False for a Dagster run id."""
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


# --- Dagster tags ------------------------------------------------------------------

# On every run of a compiled job (job tags).
TAG_FLOW_NAME = "metaflow/flow_name"
TAG_PROJECT = "metaflow/project_name"
TAG_BRANCH = "metaflow/branch_name"
# Set on a run when it is launched by our CLI or Deployer.
TAG_RUN_ID = "metaflow/run_id"
# The events that triggered a run: a JSON list of dicts with exactly the keys
# metaflow.events.MetaflowEvent takes (name, id, timestamp, type).
TAG_TRIGGERS = "metaflow/triggers"
# A resume run: the run it resumes, and the steps it re-runs (a JSON list).
TAG_RESUME_ORIGIN = "metaflow/resume_origin_run_id"
TAG_RESUME_RERUN_STEPS = "metaflow/resume_rerun_steps"
# "<dagster run id>@<host>:<pid>" of the detached process executing an embedded run.
TAG_RUN_WORKER = "metaflow/dagster_run_worker"
# Op tags: the foreach an op is mapped over (the per-foreach cap), and @timeout.
TAG_FOREACH = "metaflow/foreach"
TAG_OP_TIMEOUT = "dagster/op_execution_timeout"

# --- Environment of the task process (set by the op) ------------------------------

RESULT_FILE_ENV = "METAFLOW_DAGSTER_RESULT_FILE"
DAGSTER_RUN_ID_ENV = "METAFLOW_DAGSTER_RUN_ID"
DAGSTER_OP_ENV = "METAFLOW_DAGSTER_OP"
TRIGGERS_ENV = "METAFLOW_DAGSTER_TRIGGERS"
PARAMETERS_READY_ENV = "METAFLOW_DAGSTER_PARAMETERS_READY"

# What the task reports back through RESULT_FILE_ENV (a JSON object).
RESULT_FOREACH_SPLITS = "foreach_num_splits"
RESULT_SWITCH_STEP = "switch_step"

# --- Environment of the op's process --------------------------------------------

# "0": start every task as a fresh interpreter instead of forking it from a task
# template that has imported Metaflow already (runtime/task_forkserver.py).
FORKSERVER_ENV = "METAFLOW_DAGSTER_FORKSERVER"

# --- Environment of the user's commands --------------------------------------------

DAGSTER_URL_ENV = "METAFLOW_DAGSTER_URL"
UI_URL_ENV = "METAFLOW_DAGSTER_UI_URL"

# --- Files -------------------------------------------------------------------------

EVENT_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


def default_definitions_file(flow_name: str) -> str:
    """Where `dagster create` writes, and the other commands look, by default."""
    return "%s_dagster.py" % flow_name.lower()
