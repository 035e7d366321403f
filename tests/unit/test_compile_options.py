"""`dagster create`'s options that the plan keeps as given are the plan's own fields
(one definition of each), and compiling puts every one of them into the plan."""

from dataclasses import MISSING, fields

from _flow_init import TwoStepFlow, init_flow

from metaflow_dagster.compiler.compile import FROM_OPTIONS, CompileOptions, compile_flow
from metaflow_dagster.plan import FlowPlan


class OptionsFlow(TwoStepFlow):
    pass


GIVEN = dict(
    flow_file="options_flow.py", job_name="Nightly", tags=["team:ml"], namespace="user:ci",
    max_workers=7, executor="multiprocess", pool="gpu", pool_limit=2,
    workflow_timeout_seconds=600, top_level_args=["--quiet"],
    project={"project_name": "shop"}, schedule={"cron": "0 3 * * *", "timezone": "UTC"},
    triggers={"events": [], "flows": []}, settings={"METAFLOW_DEFAULT_DATASTORE": "local"},
    exit_hooks={"on_success": ["notify"]}, run_retries=2,
)


def _default(f):
    return f.default_factory() if f.default_factory is not MISSING else f.default


def test_each_option_is_a_field_of_the_plan_with_its_type_and_default():
    plan_fields = {f.name: f for f in fields(FlowPlan)}
    for option in (f for f in fields(CompileOptions) if f.name in FROM_OPTIONS):
        plan_field = plan_fields[option.name]
        if option.name in ("job_name", "pool"):  # unset: named after the flow
            assert _default(option) is None
            continue
        assert option.type == plan_field.type, option.name
        assert _default(option) == _default(plan_field), option.name


def test_compiling_puts_every_option_into_the_plan():
    assert set(GIVEN) == set(FROM_OPTIONS)
    flow = init_flow(OptionsFlow)
    plan = compile_flow(flow, flow._graph, CompileOptions(**GIVEN, schedule_status="stopped"))
    # The schedule's status is an option of its own (job_options.py), kept in the schedule.
    expected = dict(GIVEN, schedule=dict(GIVEN["schedule"], status="STOPPED"))
    assert {name: getattr(plan, name) for name in GIVEN} == expected


def test_unset_names_come_from_the_flow():
    flow = init_flow(OptionsFlow)
    plan = compile_flow(flow, flow._graph, CompileOptions(flow_file="options_flow.py"))
    assert (plan.job_name, plan.pool) == ("OptionsFlow", "OptionsFlow")
