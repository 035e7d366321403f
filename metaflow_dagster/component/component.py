"""metaflow_dagster.MetaflowFlowComponent: a Metaflow flow in a `dg` project, declared in
a defs.yaml, the third front door of the one compiler (after `dagster create` and the
Deployer API).

It is a state-backed component, as dagster-dbt's DbtProjectComponent: the expensive
part, importing the flow, compiling its plan and packaging its code, is the component's
state, computed by `python flow.py ... dagster create --plan-file STATE` (the CLI
itself, so every flow option is checked and applied as the CLI does) when `dg utils
refresh-defs-state` runs or a `dg` command loads the project (`dg dev` included).
Loading definitions reads that plan, applies the job's options and builds the same
Definitions the generated file would (definitions.py), without importing the flow.
"""

import difflib
import functools
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Dict, List, Literal, Optional

import dagster as dg
import pydantic
from dagster.components.component.state_backed_component import StateBackedComponent
from dagster.components.core.context import ComponentDeclLoadContext
from dagster.components.resolved.model import Resolver
from dagster.components.scaffold.scaffold import scaffold_with
from dagster.components.utils.defs_state import (
    DefsStateConfig,
    DefsStateConfigArgs,
    ResolvedDefsStateConfig,
)

from ..compiler.job_options import (
    SCHEDULE_STATUSES,
    JobOptions,
    apply_job_options,
    executor_problem,
    max_workers_problem,
    pool_limit_problem,
    pool_problem,
    workflow_timeout_problem,
)
from ..naming import EXECUTORS
from ..plan import FlowPlan
from .definitions import flow_definitions
from .scaffolder import MetaflowFlowScaffolder

# How many lines of the CLI's output a failed refresh shows.
ERROR_TAIL_LINES = 40


class FlowStateError(Exception):
    """The component's state cannot be computed or read."""


@dataclass(frozen=True)
class FlowFile:
    """The flow file of a component: where it is, and where it is in the project (the
    state's key: the same on every machine that builds or serves the project)."""

    path: Path
    in_project: str
    defs_yaml: str


def _resolve_flow_file(context: dg.ResolutionContext, value: str) -> FlowFile:
    path = Path(context.resolve_value(value, as_type=str))
    resolved = context.resolve_source_relative_path(str(path))
    load = ComponentDeclLoadContext.from_resolution_context(context)
    defs_yaml = load.path / "defs.yaml" if load.path.is_dir() else load.path
    if not resolved.is_file():
        raise FlowStateError(
            "flow_file: %s does not exist (looked for %s). Give the path of the flow file "
            "relative to %s." % (path, resolved, defs_yaml))
    try:
        in_project = str(resolved.relative_to(load.project_root))
    except ValueError:
        in_project = str(resolved)
    return FlowFile(resolved, in_project, str(defs_yaml))


def _checked(problem, **resolver_args) -> Resolver:
    """A field checked with the CLI's own check of the same option (job_options.py)."""
    def resolve(context: dg.ResolutionContext, value):
        value = context.resolve_value(value)
        message = problem(value)
        if message:
            raise ValueError(message)
        return value
    return Resolver(resolve, **resolver_args)


@functools.lru_cache(maxsize=None)
def _with_field_check(model: type) -> type:
    """The YAML model, whose unknown fields say which field was meant (Dagster's own check,
    `extra="forbid"`, only says the field is not allowed)."""
    fields = sorted(model.model_fields)

    def known_fields(cls, data):
        unknown = [k for k in data if k not in fields] if isinstance(data, dict) else []
        if unknown:
            raise ValueError("; ".join(_unknown_field(name, fields) for name in unknown))
        return data

    return pydantic.create_model(model.__name__, __base__=model, __validators__={
        "known_fields": pydantic.model_validator(mode="before")(known_fields)})


def _unknown_field(name: str, fields: List[str]) -> str:
    close = difflib.get_close_matches(name, fields, n=1)
    hint = "did you mean %s?" % close[0] if close else "the fields are %s." % ", ".join(fields)
    return ("%s is not a field of metaflow_dagster.MetaflowFlowComponent: %s (`dg utils "
            "inspect-component metaflow_dagster.MetaflowFlowComponent` describes them)"
            % (name, hint))


@scaffold_with(MetaflowFlowScaffolder)
@dataclass
class MetaflowFlowComponent(StateBackedComponent, dg.Resolvable):
    """A Metaflow flow as a Dagster job, schedule, sensors and asset.

    One op per step, the flow's @schedule as a schedule, its @trigger and
    @trigger_on_finish as sensors, the flow as an asset: the definitions `python
    flow.py dagster create` writes for the same options.

    The flow is imported, compiled and its code packaged (into the flow's Metaflow
    datastore) when the component's state is refreshed: `dg utils refresh-defs-state`,
    and every `dg` command (`dg dev` among them) unless `defs_state.refresh_if_dev` is
    false. Loading the definitions reads the stored plan and never imports the flow.

    Scaffold one with `dg scaffold defs metaflow_dagster.MetaflowFlowComponent
    flows/my_flow --flow-file my_flow.py`.

    Example:

        .. code-block:: yaml

            # defs.yaml
            type: metaflow_dagster.MetaflowFlowComponent
            attributes:
              flow_file: my_flow.py
              max_workers: 8
              tags: [nightly]
    """

    flow_file: Annotated[FlowFile, Resolver(
        _resolve_flow_file, model_field_type=str,
        description="The flow file, relative to this defs.yaml (`python <flow_file> dagster "
        "create` is what computes the state).",
        examples=["my_flow.py", "../flows/training_flow.py"])]
    # --- Options of the flow: part of the state (a change needs a refresh) ---
    job_name: Annotated[Optional[str], Resolver.default(
        description="Job name (`--name`; default: the flow name, prefixed by project and "
        "branch under @project).", examples=["nightly_training"])] = None
    with_decorators: Annotated[List[str], Resolver.default(
        description="Step decorators added to every step (`--with`, as Metaflow's).",
        examples=[["retry"], ["retry:times=2", "environment:vars={\"MODE\": \"prod\"}"]])] = \
        field(default_factory=list)
    branch: Annotated[Optional[str], Resolver.default(
        description="@project branch (Metaflow's `--branch`).", examples=["staging"])] = None
    production: Annotated[bool, Resolver.default(
        description="Deploy the @project's production branch (Metaflow's `--production`).",
        examples=[True])] = False
    datastore: Annotated[Optional[str], Resolver.default(
        description="Metaflow's `--datastore` (default: Metaflow's configuration).",
        examples=["local", "s3"])] = None
    metadata: Annotated[Optional[str], Resolver.default(
        description="Metaflow's `--metadata` (default: Metaflow's configuration).",
        examples=["local", "service"])] = None
    environment: Annotated[Optional[str], Resolver.default(
        description="Metaflow's `--environment` (default: Metaflow's configuration).",
        examples=["local", "conda", "pypi"])] = None
    package_suffixes: Annotated[Optional[str], Resolver.default(
        description="Metaflow's `--package-suffixes`: which files of the flow's directory "
        "its code package holds.", examples=[".py,.sql"])] = None
    config_values: Annotated[Dict[str, Any], Resolver.default(
        description="Values of the flow's Configs (Metaflow's `--config-value NAME VALUE`; "
        "a mapping is passed as JSON).", examples=[{"model": {"depth": 3}}])] = \
        field(default_factory=dict)
    # --- Options of the job: applied when the definitions load (no refresh needed) ---
    executor: Annotated[Literal[EXECUTORS], _checked(
        executor_problem,
        description="The job's default executor (`--executor`): metaflow (each op a thread "
        "of the run process, each task its own process), multiprocess, celery, k8s.",
        examples=["metaflow", "celery"])] = "metaflow"
    max_workers: Annotated[int, _checked(
        max_workers_problem, description="Most tasks of one foreach running at once "
        "(`--max-workers`).", examples=[16])] = 100
    pool: Annotated[Optional[str], _checked(
        pool_problem, description="Dagster pool of every op of the job (`--pool`; default: "
        "the job name).", examples=["metaflow"])] = None
    pool_limit: Annotated[Optional[int], _checked(
        pool_limit_problem, description="Most ops of the pool running at once over all "
        "runs (`--pool-limit`).", examples=[4])] = None
    workflow_timeout: Annotated[Optional[int], _checked(
        workflow_timeout_problem, description="Fail a run once it has run this many "
        "seconds (`--workflow-timeout`).", examples=[3600])] = None
    tags: Annotated[List[str], Resolver.default(
        description="Metaflow tags of every task of every run (`--tag`).",
        examples=[["nightly", "team:ml"]])] = field(default_factory=list)
    namespace: Annotated[Optional[str], Resolver.default(
        description="Metaflow namespace of the tasks (`--namespace`).",
        examples=["team_ml"])] = None
    schedule_status: Annotated[Literal[SCHEDULE_STATUSES], Resolver.default(
        description="Whether the flow's @schedule starts running or stopped "
        "(`--schedule-status`).", examples=["stopped"])] = "running"
    defs_state: ResolvedDefsStateConfig = field(
        default_factory=DefsStateConfigArgs.local_filesystem)

    @classmethod
    def get_model_cls(cls):
        return _with_field_check(super().get_model_cls())

    # --- State ---

    def flow_arguments(self) -> List[str]:
        """The command line that computes the state, after `python <flow file>`."""
        top = ["--%s=%s" % (name, value) for name, value in (
            ("datastore", self.datastore), ("metadata", self.metadata),
            ("environment", self.environment), ("package-suffixes", self.package_suffixes),
            ("branch", self.branch)) if value]
        if self.production:
            top.append("--production")
        for name, value in sorted(self.config_values.items()):
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            top += ["--config-value", name, text]
        create = ["--name", self.job_name] if self.job_name else []
        create += [a for decorator in self.with_decorators for a in ("--with", decorator)]
        return top + ["dagster", "create"] + create

    @property
    def defs_state_config(self) -> DefsStateConfig:
        # One state per flow file and flow options: two components of one flow (two
        # branches) keep two states, and a changed option asks for a new one.
        options = hashlib.sha1(" ".join(self.flow_arguments()).encode()).hexdigest()[:8]
        key = "MetaflowFlowComponent[%s:%s]" % (self.flow_file.in_project, options)
        return DefsStateConfig.from_args(self.defs_state, default_key=key)

    def write_state_to_path(self, state_path: Path) -> None:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, self.flow_file.path.name, *self.flow_arguments(),
                "--plan-file", str(state_path.resolve())]
        proc = subprocess.run(argv, cwd=self.flow_file.path.parent, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            output = (proc.stdout + proc.stderr).strip().splitlines()[-ERROR_TAIL_LINES:]
            raise FlowStateError(
                "%s: compiling the flow failed (in %s: python %s %s):\n%s\nFix the flow or "
                "the option in defs.yaml, then run `dg utils refresh-defs-state`."
                % (self.flow_file.defs_yaml, self.flow_file.path.parent,
                   self.flow_file.path.name, " ".join(self.flow_arguments()),
                   "\n".join(output)))

    # --- Definitions ---

    def job_options(self) -> JobOptions:
        return JobOptions(
            tags=list(self.tags), namespace=self.namespace, max_workers=self.max_workers,
            executor=self.executor, pool=self.pool, pool_limit=self.pool_limit,
            workflow_timeout_seconds=self.workflow_timeout,
            schedule_status=self.schedule_status,
        )

    def build_defs_from_state(self, context: dg.ComponentLoadContext,
                              state_path: Optional[Path]) -> dg.Definitions:
        return flow_definitions(apply_job_options(self.stored_plan(state_path),
                                                  self.job_options()))

    def stored_plan(self, state_path: Optional[Path]) -> FlowPlan:
        refresh = "run `dg utils refresh-defs-state` in the project"
        if state_path is None or not state_path.is_file():
            raise FlowStateError(
                "%s: the flow %s has no stored state for these options yet: %s (`dg dev` "
                "and the other `dg` commands compute it unless defs_state.refresh_if_dev "
                "is false)." % (self.flow_file.defs_yaml, self.flow_file.in_project, refresh))
        try:
            return FlowPlan.from_json(state_path.read_text())
        except ValueError as error:
            raise FlowStateError("%s: the stored state of %s cannot be read (%s): %s."
                                 % (self.flow_file.defs_yaml, self.flow_file.in_project,
                                    error, refresh)) from None
