"""Runs of a compiled job as the user's commands see them, whichever target
(deploy/targets/__init__.py) they are on."""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .. import naming
from .errors import CommandError

FINISHED = ("SUCCESS", "FAILURE", "CANCELED")

# Metaflow's scheduler words for a run (as Step Functions says them, and Argo
# Workflows in title case), which code written against the Deployer API compares
# with: the state of a Dagster run in them. A canceling run is ABORTED already
# (it will not succeed), though it has not finished until its tasks have stopped.
PENDING, RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED = (
    "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
METAFLOW_STATUS = {
    "NOT_STARTED": PENDING,
    "QUEUED": PENDING,
    "STARTING": PENDING,
    "STARTED": RUNNING,
    "MANAGED": RUNNING,
    # Dagster 1.13 declares it and writes it nowhere yet; a suspended Argo workflow
    # is Running too.
    "SUSPENDED": RUNNING,
    "SUCCESS": SUCCEEDED,
    "FAILURE": FAILED,
    "CANCELING": ABORTED,
    "CANCELED": ABORTED,
}
STEP_FINISHED = ("SUCCESS", "FAILURE", "SKIPPED")
# How many recent runs of a flow are searched for a Metaflow run id.
RUN_SEARCH_LIMIT = 1000


@dataclass(frozen=True)
class StepState:
    key: str
    status: str
    start_time: Optional[float] = None
    # Dagster's attempts of the step (its retries + 1).
    attempts: int = 1
    # For a failed step: its error text, and the Metaflow task and attempt that failed
    # (the `metaflow_pathspec` / `metaflow_attempt` metadata of the op's failure).
    error: Optional[str] = None
    pathspec: Optional[str] = None
    metaflow_attempt: Optional[int] = None


def failure_details(description: Optional[str], metadata: Dict[str, object]) -> dict:
    """StepState fields of a step's failure event."""
    attempt = metadata.get("metaflow_attempt")
    return {
        "error": description,
        "pathspec": metadata.get("metaflow_pathspec"),
        "metaflow_attempt": int(attempt) if attempt is not None else None,
    }


@dataclass(frozen=True)
class RunState:
    run_id: str
    status: str
    job_name: str
    root_run_id: Optional[str] = None
    parent_run_id: Optional[str] = None
    tags: Dict[str, str] = field(default_factory=dict)
    steps: List[StepState] = field(default_factory=list)

    @property
    def metaflow_run_id(self) -> str:
        return naming.metaflow_run_id_of(self)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def find_run(target, flow_name: str, run_id: str) -> RunState:
    """A Dagster run by its id, or the latest Dagster run of a Metaflow run (a
    re-execution continues the Metaflow run of its root run)."""
    if not naming.is_metaflow_run_id(run_id):
        state = target.run_state(run_id)
        if state is None:
            raise CommandError("No run %s in %s." % (run_id, target.describe()))
        _check_flow(state, flow_name)
        return state
    for run in target.flow_runs(flow_name, RUN_SEARCH_LIMIT):
        if run.metaflow_run_id == run_id:
            return target.run_state(run.run_id)
    raise CommandError(
        "No Dagster run of Metaflow run %s/%s in %s." % (flow_name, run_id, target.describe())
    )


def _check_flow(state: RunState, flow_name: str) -> None:
    """A Dagster run id given to the commands of one flow must be a run of that flow."""
    owner = state.tags.get(naming.TAG_FLOW_NAME)
    if owner == flow_name:
        return
    if owner is None:
        raise CommandError(
            "Dagster run %s is a run of job %s, which is not a Metaflow flow deployed with "
            "`dagster create`; see it in the Dagster UI." % (state.run_id, state.job_name))
    raise CommandError(
        "Dagster run %s is a run of flow %s (job %s), not of %s: run the command from %s's "
        "flow file." % (state.run_id, owner, state.job_name, flow_name, owner))


def metaflow_run_of(target, flow_name: str, run_id: str) -> str:
    """The Metaflow run id of a Metaflow or Dagster run id."""
    if naming.is_metaflow_run_id(run_id):
        return run_id
    return find_run(target, flow_name, run_id).metaflow_run_id


def metaflow_status(target, state: RunState, end_step: Optional[str]) -> str:
    """The run's state in Metaflow's words; TIMED_OUT for a run that failed on its
    --workflow-timeout (its failure says so); FAILED for a run Dagster calls
    successful that did not run `end_step`, the flow's end step (None: unknown)."""
    status = METAFLOW_STATUS.get(state.status, RUNNING)
    if status == SUCCEEDED and not end_ran(state, end_step):
        return FAILED
    if status == FAILED and any(naming.WORKFLOW_TIMEOUT_PHRASE in message
                                for message in target.failure_messages(state.run_id)):
        return TIMED_OUT
    return status


def end_ran(state: RunState, end_step: Optional[str]) -> bool:
    """Whether the run ran the flow's end step (its op has the step's name), as far
    as its step states tell: a Metaflow run is complete only once its end step has
    run. A re-execution of some other steps is what Dagster says it is."""
    if end_step is None:
        return True
    end = [step for step in state.steps if step.key == end_step]
    if not end:
        return state.parent_run_id is not None
    return end[0].status == "SUCCESS"


def latest_job_run(target, flow_name: str, job_name: str) -> Optional[RunState]:
    """The latest run of one deployment (job) of the flow."""
    runs = target.flow_runs(flow_name, 1, job_name=job_name)
    return target.run_state(runs[0].run_id) if runs else None
