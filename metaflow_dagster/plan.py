"""The plan: a frozen, JSON-serialisable description of a compiled flow.

The compiler builds it from the flow (pure, no I/O), the renderer turns it into
the definitions file, and the runtime reads it back inside Dagster. Nothing
else crosses from `dagster create` time to run time.
"""

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Dict, Iterable, List, Mapping, Optional

SPEC_VERSION = 3


def reachable(successors: Mapping[str, Iterable[str]], starts: Iterable[str]) -> set:
    """The steps reachable from `starts` (included), following `successors`
    (step name -> the names of the steps after it)."""
    seen, todo = set(), list(starts)
    while todo:
        name = todo.pop()
        if name not in seen and name in successors:
            seen.add(name)
            todo.extend(successors[name])
    return seen


def start_op_run_config(start_op: str, config: dict) -> dict:
    """Run config giving the start op its config (the flow's Parameters)."""
    return {"ops": {start_op: {"config": config}}} if config else {}


@dataclass(frozen=True)
class StepPlan:
    """One Metaflow step and the policies that apply to each of its tasks."""

    name: str
    # Metaflow's node type: start, linear, split, join, foreach, split-switch, end.
    type: str
    next: List[str]
    parents: List[str]
    # For a join: the split or foreach step it closes.
    joins: Optional[str] = None
    # For a split or foreach: the join that closes it.
    matching_join: Optional[str] = None
    # The foreach steps this step runs inside, outermost first.
    foreach_stack: List[str] = field(default_factory=list)
    # For a split-switch: the step each case leads to.
    switch_cases: Dict[str, str] = field(default_factory=dict)
    user_code_retries: int = 0
    error_retries: int = 0
    retry_delay_seconds: int = 0
    timeout_seconds: Optional[int] = None
    env: Dict[str, str] = field(default_factory=dict)
    resources: Dict[str, str] = field(default_factory=dict)
    # Decorator specs added with --with, passed to the step subprocess.
    decospecs: List[str] = field(default_factory=list)
    # The step's docstring (the op's description).
    doc: Optional[str] = None
    # How many @card decorators the step has (its ops link to the rendered cards).
    cards: int = 0
    # For a step Metaflow's compute layer runs (@kubernetes, @batch): "command", what
    # replaces `step` (["kubernetes", "step"]), and "options", its options, both as
    # the decorator's own runtime_step_cli gives them to Metaflow's runtime.
    compute: Dict[str, List[str]] = field(default_factory=dict)
    # Names of all the step's decorators (its own, --with, those flow decorators
    # add); None in plans written before this field existed.
    decorators: Optional[List[str]] = None

    @property
    def total_retries(self) -> int:
        return self.user_code_retries + self.error_retries


@dataclass(frozen=True)
class ParameterPlan:
    name: str
    # Dagster config key (parameter names may hold dashes, config keys may not).
    field: str
    # One of: str, int, float, bool, json.
    type: str
    default: object = None
    required: bool = False
    help: Optional[str] = None


@dataclass(frozen=True)
class OpPlan:
    """One Dagster op: a single step, or a region of steps run inside one op
    (what Dagster cannot express: nested foreach, a switch inside a foreach)."""

    name: str
    # step | foreach | switch | region
    kind: str
    # The step that starts the op; for a region, its entry step.
    step: str
    steps: List[str]
    # Names of the ops feeding each input, in order.
    inputs: List[str] = field(default_factory=list)
    # True when the op's input is the fan-in list of a switch's branches.
    fan_in: bool = False
    # Output name of the upstream op to read, per input (switch cases).
    input_outputs: List[Optional[str]] = field(default_factory=list)
    # The Dagster foreach (mapped) context this op runs in, if any.
    mapped_by: Optional[str] = None
    # True for the op that collects the mapped outputs of a foreach.
    collects: bool = False


@dataclass(frozen=True)
class FlowPlan:
    flow_name: str
    # The flow file, relative to the root of the code package.
    flow_file: str
    job_name: str
    start_step: str
    end_step: str
    steps: List[StepPlan]
    ops: List[OpPlan]
    parameters: List[ParameterPlan] = field(default_factory=list)
    # Metaflow options placed before `step` / `init` in every task command.
    top_level_args: List[str] = field(default_factory=list)
    # The flow's code as `dagster create` packaged it (Metaflow's MetaflowPackage,
    # saved in the flow's datastore): "url", "sha", "datastore" (its type) and
    # "metadata" (the package's format). Every task runs from it.
    package: Dict[str, str] = field(default_factory=dict)
    # Non-secret Metaflow settings the tasks need (datastore, metadata, environment),
    # by Metaflow's own environment variable names; the worker's environment wins.
    settings: Dict[str, str] = field(default_factory=dict)
    # Environment set for every task.
    env: Dict[str, str] = field(default_factory=dict)
    tags: List[str] = field(default_factory=list)
    namespace: Optional[str] = None
    max_workers: int = 100
    # The default executor, one of naming.EXECUTORS (runtime/executors/selector.py); run
    # config can choose another.
    executor: str = "metaflow"
    # The Dagster pool every op of the job is in, and the limit the executor gives
    # it on the instance if it has none (a cap over all the job's runs).
    pool: Optional[str] = None
    pool_limit: Optional[int] = None
    workflow_timeout_seconds: Optional[int] = None
    project: Dict[str, str] = field(default_factory=dict)
    schedule: Optional[Dict[str, str]] = None
    triggers: Dict[str, list] = field(default_factory=dict)
    # @exit_hook function names: {"on_success": [...], "on_error": [...]}.
    exit_hooks: Dict[str, List[str]] = field(default_factory=dict)
    # The job's and the flow asset's description: `create --workflow-description`, then
    # the flow's docstring.
    description: Optional[str] = None
    # Job tags of every run: `--workflow-title` (naming.TAG_TITLE), `--workflow-priority`
    # (Dagster's run queue order) and `--run-retries` (Dagster's whole-run retries).
    title: Optional[str] = None
    priority: Optional[int] = None
    run_retries: int = 0
    # `--notify-*`: "events" (a list of "error", "success") and "channels" (channel name
    # -> the environment variable holding its webhook URL or key; never the secret).
    notifications: Dict[str, object] = field(default_factory=dict)
    spec_version: int = SPEC_VERSION

    def step(self, name: str) -> StepPlan:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def step_names(self) -> List[str]:
        return [step.name for step in self.steps]

    def successors(self) -> Dict[str, List[str]]:
        return {step.name: step.next for step in self.steps}

    def op(self, name: str) -> OpPlan:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    def to_json(self) -> str:
        """Sorted keys, one line per field and per step, op or parameter."""
        fields_ = []
        for key, value in sorted(asdict(self).items()):
            if isinstance(value, list) and value and isinstance(value[0], dict):
                items = ",\n".join("  " + json.dumps(v, sort_keys=True) for v in value)
                fields_.append(' "%s": [\n%s\n ]' % (key, items))
            else:
                fields_.append(' "%s": %s' % (key, json.dumps(value, sort_keys=True)))
        return "{\n%s\n}" % ",\n".join(fields_)

    @classmethod
    def from_json(cls, text: str) -> "FlowPlan":
        data = json.loads(text)
        if data.get("spec_version") != SPEC_VERSION:
            raise ValueError(
                "This definitions file was generated with plan version %s; this "
                "metaflow-dagster reads version %d. Regenerate it with "
                "`python <flow>.py dagster create`." % (data.get("spec_version"), SPEC_VERSION)
            )
        data["steps"] = [StepPlan(**s) for s in data["steps"]]
        data["ops"] = [OpPlan(**o) for o in data["ops"]]
        data["parameters"] = [ParameterPlan(**p) for p in data["parameters"]]
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def option_fields(names: Iterable[str]) -> list:
    """(name, type, default) of the plan's fields in `names`, for make_dataclass: the
    options a front door takes to set those fields (compile.CompileOptions,
    job_options.JobOptions) are declared once, here, as the plan's."""
    specs = []
    for plan_field in fields(FlowPlan):
        if plan_field.name not in names:
            continue
        if plan_field.default_factory is not MISSING:
            default = field(default_factory=plan_field.default_factory)
        elif plan_field.default is not MISSING:
            default = field(default=plan_field.default)
        else:
            specs.append((plan_field.name, plan_field.type))
            continue
        specs.append((plan_field.name, plan_field.type, default))
    return specs
