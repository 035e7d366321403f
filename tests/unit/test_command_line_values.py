"""Parameter values on their way from the user's command line to a task's: which
ones a command passes on, how they become Dagster run config, and how the op writes
them on `flow.py init`'s command line."""

import json

import pytest
from _flow_init import TwoStepFlow, init_flow
from metaflow import Config, JSONType, Parameter

from metaflow_dagster.deploy.errors import CommandError
from metaflow_dagster.deploy.parameters import command_line_values, run_config
from metaflow_dagster.plan import FlowPlan, ParameterPlan, StepPlan
from metaflow_dagster.runtime.launch.launcher import _cli_value


class ValuesFlow(TwoStepFlow):
    alpha = Parameter("alpha", default=0.5, type=float)
    learning_rate = Parameter("learning-rate", default="0.1")
    grid = Parameter("grid", default={"depth": [2, 4]}, type=JSONType)
    settings = Config("settings", default_value={"fixed": True})


FLOW = init_flow(ValuesFlow)
PLAN = FlowPlan(flow_name="ValuesFlow", flow_file="values_flow.py", job_name="ValuesFlow",
                start_step="start", end_step="end",
                steps=[StepPlan("start", "start", ["end"], []), StepPlan("end", "end", [], [])],
                ops=[], parameters=[
                    ParameterPlan("alpha", "alpha", "float", 0.5),
                    ParameterPlan("learning-rate", "learning_rate", "str", "0.1"),
                    ParameterPlan("grid", "grid", "json", '{"depth": [2, 4]}'),
                ])


def test_only_the_parameters_given_are_passed_on_by_their_metaflow_names():
    # click's keyword names: dashes become underscores; options not given are None.
    given = {"alpha": 0.9, "learning_rate": None, "grid": {"depth": [8]}, "settings": "x",
             "wait": True}
    assert command_line_values(FLOW, given) == {"alpha": 0.9, "grid": {"depth": [8]}}


def test_a_dashed_name_reaches_its_parameter():
    assert command_line_values(FLOW, {"learning_rate": "0.01"}) == {"learning-rate": "0.01"}


def test_run_config_sets_the_start_op_by_config_field_with_json_as_text():
    config = run_config(PLAN, {"learning-rate": "0.01", "grid": {"depth": [8]}})
    start = config["ops"]["start"]["config"]
    assert start == {"learning_rate": "0.01", "grid": '{"depth": [8]}'}


def test_run_config_refuses_a_parameter_the_file_does_not_know():
    with pytest.raises(CommandError, match="Parameter beta is not in the definitions file"):
        run_config(PLAN, {"beta": 1})


@pytest.mark.parametrize("value,text", [
    (0.5, "0.5"), (3, "3"), (True, "True"), ("a b", "a b"),
    ({"depth": [2, 4]}, '{"depth": [2, 4]}'), ([1, "x"], '[1, "x"]'),
])
def test_a_value_on_the_init_command_line_is_what_metaflow_parses_back(value, text):
    assert _cli_value(value) == text
    if isinstance(value, (dict, list)):
        assert json.loads(text) == value
