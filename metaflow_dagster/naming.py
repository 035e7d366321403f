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


# A foreach split's Dagster mapping key: its index, then the item when that is short and
# printable (`3_alice`), so the UI's `train[3_alice]` says which item a split took.
# Dagster allows only ^[A-Za-z0-9_]+$ in mapping keys; the index comes first and is
# what split_index_of() reads back.
MAX_SPLIT_LABEL_CHARS = 24


def split_mapping_key(index: int, item: object = None) -> str:
    """`item` is Metaflow's text of the foreach item (`_foreach_values`), or None."""
    text = item if isinstance(item, str) else ""
    if not text.isprintable() or len(text) > MAX_SPLIT_LABEL_CHARS:
        return str(index)
    label = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    return "%d_%s" % (index, label) if label and label != str(index) else str(index)


def split_index_of(mapping_key: str) -> int:
    """Inverse of split_mapping_key()."""
    return int(mapping_key.split("_", 1)[0])


def task_pathspec(run_id: str, step: str, task_id_: str) -> str:
    return "%s/%s/%s" % (run_id, step, task_id_)


def parameters_pathspec(run_id: str) -> str:
    return task_pathspec(run_id, PARAMETERS_STEP, PARAMETERS_TASK_ID)


# --- a task's output lines -----------------------------------------------------
# As `python flow.py run` shows them (Metaflow's runtime: metaflow/runtime.py,
# Worker.log, and metaflow/cli.py, logger): the local time, then the task and its
# pid. The op writes its tasks' lines so into its captured logs; `trigger --wait`
# prints the lines that start so.

TASK_LINE_TIME_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # cut to milliseconds
TASK_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \[(?P<task>[^\]\s]+) \(pid (?P<pid>\d+)\)\] ")


def task_line_head(when, task_path: str, pid: int) -> str:
    """What precedes a line of task `task_path` (run/step/task), printed at `when`
    (a datetime), by process `pid`."""
    return "%s [%s (pid %d)] " % (when.strftime(TASK_LINE_TIME_FORMAT)[:-3], task_path, pid)


# --- why a task failed ---------------------------------------------------------
# A failed task's stderr ends in a long traceback; the lines that say why it failed
# may sit above its last lines: Metaflow's "<flow F step s> failed:" (the exception's
# headline and message follow it) and a timeout (Metaflow's @timeout in the task,
# or the launcher that terminated the task). The op keeps them in the failure it
# reports, and `dagster status` shows them.

FAILURE_REASON_START = re.compile(r"^\s*(<flow \S+ step \S+> failed:|.*\btimed out after\b)")
# Where a reason ends: a stack or a traceback begins.
FAILURE_REASON_END = re.compile(r"^\s*(Traceback |Stack when |>|File \")")
# Most lines of one reason.
FAILURE_REASON_LINES = 6


def failure_excerpt(lines: list, tail: int, keep_first: bool = False) -> list:
    """The lines of a failure worth showing: the first (if `keep_first`), those that
    say why the task failed, then the last `tail`; "..." where lines are left out."""
    keep = set(range(max(0, len(lines) - tail), len(lines)))
    keep.update(_reason_lines(lines))
    if keep_first and lines:
        keep.add(0)
    excerpt, previous = [], -1
    for index in sorted(keep):
        if index > previous + 1:
            excerpt.append("...")
        excerpt.append(lines[index])
        previous = index
    return excerpt


def _reason_lines(lines: list):
    index = 0
    while index < len(lines):
        if not FAILURE_REASON_START.match(lines[index]):
            index += 1
            continue
        end = index + 1
        while end < min(len(lines), index + FAILURE_REASON_LINES) and not (
                FAILURE_REASON_END.match(lines[end]) or FAILURE_REASON_START.match(lines[end])):
            end += 1
        yield from range(index, end)
        index = end


def config_field_name(param_name: str) -> str:
    """Dagster config keys cannot hold dashes; Metaflow parameter names can."""
    return param_name.replace("-", "_")


# --- Dagster tags ------------------------------------------------------------------

# On every run of a compiled job (job tags).
TAG_FLOW_NAME = "metaflow/flow_name"
TAG_PROJECT = "metaflow/project_name"
TAG_BRANCH = "metaflow/branch_name"
# The run's Metaflow run id, user and what started it ("manual", "schedule:<name>",
# "event:<name>", "run:<Flow/run id>"): set by our CLI, and by the first op of a run
# (runs launched from the UI, a schedule or a sensor do not go through our CLI).
TAG_RUN_ID = "metaflow/run_id"
TAG_USER = "metaflow/user"
TAG_TRIGGER = "metaflow/trigger"
# The events that triggered a run: a JSON list of dicts with exactly the keys
# metaflow.events.MetaflowEvent takes (name, id, timestamp, type).
TAG_TRIGGERS = "metaflow/triggers"
# A resume run: the run it resumes, and the steps it re-runs (a JSON list).
TAG_RESUME_ORIGIN = "metaflow/resume_origin_run_id"
TAG_RESUME_RERUN_STEPS = "metaflow/resume_rerun_steps"
# "<dagster run id>@<host>:<pid>:<start time>" of the process executing a run (the run
# worker): set by `dagster trigger` when it starts one, and by the executors at the start
# of every run (runtime/executors/workers.py).
TAG_RUN_WORKER = "metaflow/dagster_run_worker"
# Set on a run that was failed because its worker died before the run finished: why.
TAG_RUN_WORKER_LOST = "metaflow/dagster_run_worker_lost"
# Set to "true" on a run by `dagster suspend`, to "false" by `unsuspend` (Dagster can
# add and change run tags, not remove them): while it is "true", no new task of the
# run starts (runtime/suspension.py). The UI shows the tag.
TAG_SUSPENDED = "metaflow/suspended"
SUSPENDED, NOT_SUSPENDED = "true", "false"
# Op tags: the foreach an op is mapped over (the per-foreach cap), and @timeout.
TAG_FOREACH = "metaflow/foreach"
TAG_OP_TIMEOUT = "dagster/op_execution_timeout"
# The run's title (`create --workflow-title` on every run, `trigger --run-title` on one):
# the Runs list shows it.
TAG_TITLE = "metaflow/title"
# Dagster's own run tags: the run queue starts queued runs of a higher priority first;
# the daemon re-executes a failed run from its failure up to max_retries times.
TAG_PRIORITY = "dagster/priority"
TAG_MAX_RETRIES = "dagster/max_retries"
TAG_RETRY_STRATEGY = "dagster/retry_strategy"

# --- Executors ---------------------------------------------------------------------

# What `dagster create --executor` offers, and what run config can switch to
# (`execution: config: {<name>: {...}}`): metaflow (ops as threads of the run
# process), Dagster's multiprocess, Celery (dagster-celery), Kubernetes (dagster-k8s).
EXECUTORS = ("metaflow", "multiprocess", "celery", "k8s")
# The optional ones: executor -> (the module it needs, our pip extra that installs it).
EXECUTOR_PACKAGES = {"celery": ("dagster_celery", "celery"), "k8s": ("dagster_k8s", "k8s")}


def executor_package_missing(executor: str, module_found) -> str:
    """What to tell a user whose chosen executor's package is not installed ("" if it
    is); module_found(name) -> bool says whether a module can be imported."""
    if executor not in EXECUTOR_PACKAGES:
        return ""
    module, extra = EXECUTOR_PACKAGES[executor]
    if module_found(module):
        return ""
    return ("The %s executor needs %s, which is not installed: pip install "
            "'metaflow-on-dagster[%s]'." % (executor, module.replace("_", "-"), extra))


# --- Environment of the task process (set by the op) ------------------------------

RESULT_FILE_ENV = "METAFLOW_DAGSTER_RESULT_FILE"
DAGSTER_RUN_ID_ENV = "METAFLOW_DAGSTER_RUN_ID"
DAGSTER_OP_ENV = "METAFLOW_DAGSTER_OP"
TRIGGERS_ENV = "METAFLOW_DAGSTER_TRIGGERS"
PARAMETERS_READY_ENV = "METAFLOW_DAGSTER_PARAMETERS_READY"
# Marks every process of a task's tree (inherited through the environment) with the
# process that launched the task, so that its reaper finds them all (runtime/reaper.py).
TASK_OWNER_ENV = "METAFLOW_DAGSTER_TASK_OWNER"
# The pid of the process that launched the task (task/parent_death.py).
LAUNCHER_PID_ENV = "METAFLOW_DAGSTER_LAUNCHER_PID"

# What the task reports back through RESULT_FILE_ENV (a JSON object).
RESULT_FOREACH_SPLITS = "foreach_num_splits"
# Metaflow's text of each foreach item (`_foreach_values`), for the splits' mapping keys.
RESULT_FOREACH_VALUES = "foreach_values"
RESULT_SWITCH_STEP = "switch_step"
# The steps the task's self.next() named (Metaflow's `_transition`; [] if it named none).
RESULT_NEXT_STEPS = "next_steps"
# The task's artifacts as the op shows them (task/artifacts.py, artifact_rows).
RESULT_ARTIFACTS = "artifacts"

# The code package a task runs from (Metaflow's own names: a task registers them as
# its `code-package` metadata, so `Run(...).code` finds the deployed code).
CODE_PACKAGE_ENV = {
    "url": "METAFLOW_CODE_URL",
    "sha": "METAFLOW_CODE_SHA",
    "datastore": "METAFLOW_CODE_DS",
    "metadata": "METAFLOW_CODE_METADATA",
}
# The production token of the deployment (read at run time, never in the file).
PRODUCTION_TOKEN_ENV = "METAFLOW_PRODUCTION_TOKEN"
# Metaflow's settings the plan carries (FlowPlan.settings), by Metaflow's names.
DATASTORE_ENV = "METAFLOW_DEFAULT_DATASTORE"
METADATA_ENV = "METAFLOW_DEFAULT_METADATA"
ENVIRONMENT_ENV = "METAFLOW_DEFAULT_ENVIRONMENT"
S3_ENDPOINT_ENV = "METAFLOW_S3_ENDPOINT_URL"
SERVICE_URL_ENV = "METAFLOW_SERVICE_URL"
# Metaflow keeps a local datastore (and local metadata) in this folder of its sysroot.
LOCAL_DATASTORE_DIR = ".metaflow"


def sysroot_env(datastore: str) -> str:
    """Metaflow's setting for the root of a datastore type (s3 -> ..._SYSROOT_S3)."""
    return "METAFLOW_DATASTORE_SYSROOT_%s" % datastore.upper()


# --- Environment of the Dagster process running the ops -----------------------------

# Where ops unpack code packages, one directory per package sha (default: a folder
# under the system's temporary directory, see runtime/launch/code_package.py).
PACKAGE_CACHE_ENV = "METAFLOW_DAGSTER_PACKAGE_CACHE"
# "0": start every task as a fresh interpreter instead of forking it from a task
# template that has imported Metaflow already (runtime/launch/task_template.py).
TASK_TEMPLATE_ENV = "METAFLOW_DAGSTER_TASK_TEMPLATE"

# --- Environment of the user's commands --------------------------------------------

DAGSTER_URL_ENV = "METAFLOW_DAGSTER_URL"
UI_URL_ENV = "METAFLOW_DAGSTER_UI_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"

# What the failure of a run that ran past --workflow-timeout says (runtime/ops.py,
# runtime/launch/launcher.py); the user's commands report such a run as TIMED_OUT.
WORKFLOW_TIMEOUT_PHRASE = "exceeded its workflow timeout"
# --- Environment of the Dagster processes -------------------------------------------

# Where the ops' card links point: Metaflow's own card server (`python flow.py card
# server`), which serves a card at <base>/card/<Flow>/<run>/<step>/<task>/<hash>.
CARD_SERVER_URL_ENV = "METAFLOW_DAGSTER_CARD_SERVER_URL"
DEFAULT_CARD_SERVER_URL = "http://localhost:8324"
# Where notifications link to the Dagster UI (UI_URL_ENV, the same as our commands use),
# PagerDuty's Events API v2 endpoint (another region's, e.g.
# https://events.eu.pagerduty.com/v2/enqueue), and how often the notification sensors
# look for finished runs (seconds; Dagster's run-status sensors default to 30).
PAGERDUTY_EVENTS_URL_ENV = "METAFLOW_DAGSTER_PAGERDUTY_EVENTS_URL"
NOTIFY_INTERVAL_ENV = "METAFLOW_DAGSTER_NOTIFY_INTERVAL_SECONDS"
# The definitions file's resource key of each notification channel.
NOTIFY_RESOURCE_KEYS = {"msteams": "notify_msteams", "pagerduty": "notify_pagerduty",
                        "slack": "notify_slack"}

# --- Assets ------------------------------------------------------------------------

FLOW_ASSET_PREFIX = "metaflow"


def flow_asset_key(flow_name: str, project=None, branch=None) -> list:
    """The path of a flow's asset key: ["metaflow", flow], or with @project
    ["metaflow", project, branch, flow] (one asset per deployed branch, as
    Metaflow's project_flow_name)."""
    namespace = [project, branch] if project and branch else []
    return [FLOW_ASSET_PREFIX] + [p.replace("/", "_") for p in namespace] + [flow_name]

# --- Files -------------------------------------------------------------------------

EVENT_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

# The Dagster home of the user's commands when DAGSTER_HOME is unset (deploy/targets/home.py).
DEFAULT_DAGSTER_HOME = "~/.metaflow_dagster/dagster_home"
# Where `dagster create` keeps each deployment's owner and production token, in the
# flow's datastore (read back by the ops at run time).
DEPLOYMENTS_STORAGE_ROOT = "mf.dagster"



def default_definitions_file(job_name: str) -> str:
    """Where `dagster create` writes, and the other commands look, by default. Named
    after the job (the flow name, prefixed by @project name and branch), so two
    deployments of one flow (other --branch, --production) never share a file."""
    return "%s_dagster.py" % job_name.lower()
