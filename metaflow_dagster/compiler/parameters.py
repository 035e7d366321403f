"""The flow's Parameters: which count, and how they become Dagster config fields."""

import json
from typing import Iterator, List, Tuple

from metaflow.parameters import JSONTypeClass, deploy_time_eval

from ..naming import config_field_name
from ..plan import ParameterPlan


def flow_parameters(flow) -> Iterator[Tuple[str, object]]:
    """(attribute name, Parameter) of each Parameter a run can set: Config
    parameters are fixed at `create` time and are not among them."""
    for var, param in flow._get_parameters():
        if not param.IS_CONFIG_PARAMETER:
            yield var, param


PARAMETER_TYPES = {str: "str", int: "int", float: "float", bool: "bool"}


def parameter_plans(flow) -> List[ParameterPlan]:
    """Deploy-time default functions are evaluated here, once, as on Argo."""
    plans = []
    for _, param in flow_parameters(flow):
        kind = _parameter_type(param)
        default = deploy_time_eval(param.kwargs.get("default"))
        if kind == "json" and default is not None and not isinstance(default, str):
            default = json.dumps(default, sort_keys=True)
        plans.append(
            ParameterPlan(
                name=param.name,
                field=config_field_name(param.name),
                type=kind,
                default=default,
                required=bool(param.kwargs.get("required", False)),
                help=param.kwargs.get("help"),
            )
        )
    return plans


def parameter_fields(flow) -> List[ParameterPlan]:
    """The Parameters as config fields only: names and types, no defaults (so no
    deploy-time function runs), e.g. to trigger a job deployed elsewhere."""
    return [ParameterPlan(name=param.name, field=config_field_name(param.name),
                          type=_parameter_type(param))
            for _, param in flow_parameters(flow)]


def _parameter_type(param) -> str:
    declared = param.kwargs.get("type")
    if isinstance(declared, JSONTypeClass):
        return "json"
    return PARAMETER_TYPES.get(declared, "str")
