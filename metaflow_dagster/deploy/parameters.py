"""The Parameters of a run started from the shell: from the command line, from an
origin run (resume), and as Dagster run config."""

import json
from typing import Dict

from .. import naming
from ..compiler.parameters import flow_parameters
from ..plan import FlowPlan, start_op_run_config
from .errors import CommandError


def command_line_values(flow, kwargs: dict) -> dict:
    """The Parameters given on the command line (already checked and converted by
    click against the flow's types), by Metaflow name."""
    from metaflow.parameters import DelayedEvaluationParameter

    values = {}
    for _, param in flow_parameters(flow):
        value = kwargs.get(param.name.replace("-", "_").lower())
        if value is None:
            continue
        if isinstance(value, DelayedEvaluationParameter):
            value = value(return_str=True)
        values[param.name] = value
    return values


def origin_run_values(flow, plan: FlowPlan, origin_run_id: str) -> dict:
    """The origin run's Parameter values: a resumed run keeps them, as in Metaflow."""
    from metaflow.datastore.exceptions import DataException

    from ..runtime.datastore import plan_datastore

    flow_ds = plan_datastore(plan)
    try:
        params = flow_ds.get_task_datastore(
            origin_run_id, naming.PARAMETERS_STEP, naming.PARAMETERS_TASK_ID)
    except DataException:
        raise CommandError(
            "Run %s/%s has no parameters in the datastore at %s: it did not run from this "
            "deployment." % (plan.flow_name, origin_run_id, flow_ds.datastore_root)) from None
    return {param.name: params[var] for var, param in flow_parameters(flow) if var in params}


def run_config(plan: FlowPlan, values: Dict[str, object]) -> dict:
    """Run config setting the flow's Parameters (by Metaflow name) on the start op."""
    known = {p.name: p for p in plan.parameters}
    config = {}
    for name, value in values.items():
        if name not in known:
            raise CommandError(
                "Parameter %s is not in the definitions file of %s; regenerate it with "
                "`python <flow>.py dagster create`." % (name, plan.flow_name)
            )
        param = known[name]
        if param.type == "json" and not isinstance(value, str):
            value = json.dumps(value)
        config[param.field] = value
    return start_op_run_config(plan.start_step, config)
