"""What Dagster shows of a flow, in memory: docstrings as descriptions and the flow as
an asset in the rendered definitions, foreach items in the splits' mapping keys, the
artifacts table and what it hides, simple cards as Markdown, the trigger run tag, and
`dagster status` on a failed run."""

import pytest
from dagster import AssetKey
from test_layout_and_render import FOREACH, build, plan_of, step

from metaflow_dagster import naming
from metaflow_dagster.deploy.report import describe_state
from metaflow_dagster.deploy.runs import RunState, StepState
from metaflow_dagster.runtime.report.artifacts import Artifact, artifacts_markdown
from metaflow_dagster.runtime.report.cards import html_markdown
from metaflow_dagster.runtime.run_tags import trigger_text
from metaflow_dagster.task.artifacts import looks_secret

DOC = ("Trains a model.\n\nIt reads the data, fits it and reports a score; this line is "
       "long enough to be wrapped in the generated file, 'quotes' and all.")


def test_docstrings_are_the_job_and_op_descriptions():
    steps = [step("start", "start", ["end"], doc="Read the data."),
             step("end", "end", [], ["start"], doc=DOC)]
    text, job = build(plan_of(steps, description=DOC))
    assert job.description == DOC
    assert job.graph.node_named("start").definition.description == "Read the data."
    assert job.graph.node_named("end").definition.description == DOC
    assert max(len(line) for line in text.splitlines() if "from_json" not in line
               and not line.startswith(("  {", ' "'))) <= 88


def test_a_region_op_says_which_steps_it_runs_after_the_entry_steps_doc():
    steps = [
        step("start", "foreach", ["outer"], matching_join="outer_join"),
        step("outer", "foreach", ["inner"], ["start"], foreach_stack=["start"],
             matching_join="inner_join", doc="Split again."),
        step("inner", "linear", ["inner_join"], ["outer"], foreach_stack=["start", "outer"]),
        step("inner_join", "join", ["outer_join"], ["inner"], foreach_stack=["start"],
             joins="outer"),
        step("outer_join", "join", ["end"], ["inner_join"], joins="start"),
        step("end", "end", [], ["outer_join"]),
    ]
    _, job = build(plan_of(steps))
    assert job.graph.node_named("outer").definition.description == (
        "Split again.\n\nRuns the steps outer, inner, inner_join as one op.")


def _asset_graph(plan):
    text, _ = build(plan)
    import types

    module = types.ModuleType("assets_%d" % id(plan))
    exec(compile(text, "<definitions>", "exec"), module.__dict__)
    return module.defs.get_repository_def().asset_graph


def test_the_flow_is_an_asset_whose_deps_are_its_upstream_flows():
    plan = plan_of(FOREACH, description=DOC, triggers={"flows": [
        {"flow": "Upstream", "project": None, "branch": None},
        {"flow": "Features", "project": "shop", "branch": "prod"},
    ]})
    graph = _asset_graph(plan)
    node = graph.get(AssetKey(["metaflow", "HandFlow"]))
    assert node.description == DOC
    assert node.parent_keys == {AssetKey(["metaflow", "Upstream"]),
                                AssetKey(["metaflow", "shop", "prod", "Features"])}


def test_under_project_the_asset_key_holds_project_and_branch():
    plan = plan_of(FOREACH, project={"project_name": "shop", "branch_name": "user.ci",
                                     "project_flow_name": "shop.user.ci.HandFlow"})
    assert AssetKey(["metaflow", "shop", "user.ci", "HandFlow"]) in \
        _asset_graph(plan).get_all_asset_keys()


@pytest.mark.parametrize("index,item,key", [
    (3, "alice", "3_alice"),
    (0, "carol-ann", "0_carol_ann"),
    (2, "2", "2"),  # range(): the item says nothing the index does not
    (1, "x" * 25, "1"),  # too long
    (4, "tab\there", "4"),  # not printable
    (5, "***", "5"),  # nothing left of it
    (6, None, "6"),  # METAFLOW_INCLUDE_FOREACH_STACK off
    (7, "{'a': 1}", "7_a_1"),
])
def test_split_mapping_keys_show_short_printable_items(index, item, key):
    assert naming.split_mapping_key(index, item) == key
    assert naming.split_index_of(key) == index


def test_credentials_are_recognised():
    for text in ("'AKIAIOSFODNN7EXAMPLE'", "'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
                 "'-----BEGIN RSA PRIVATE KEY-----'", "'ghp_abcdefghijklmnopqrstuvwxyz0123'",
                 "'xoxb-1234567890-abcdefghij'", "{'auth': 'Bearer abcdefghijklmnop1234'}"):
        assert looks_secret(text), text
    for text in ("'da39a3ee5e6b4b0d3255bfef95601890afd80709'",  # a git sha: hex, one case
                 "[1, 2, 3]", "'hello world'"):
        assert not looks_secret(text), text


def test_the_artifacts_table():
    table = artifacts_markdown([
        Artifact("model", "<class 'sklearn.linear_model.Ridge'>", 5 * 1024 * 1024),
        Artifact("pipes", "<class 'str'>", 20, "'a|b'"),
        Artifact("secret_key", "<class 'str'>", 20, None, "name looks like a credential"),
        Artifact("tick", "<class 'str'>", 12, "'`'"),
    ])
    assert table.splitlines() == [
        "| artifact | type | size | value |",
        "|---|---|---|---|",
        "| `model` | sklearn.linear_model.Ridge | 5.0 MB |  |",
        "| `pipes` | str | 20 B | `'a\\|b'` |",
        "| `secret_key` | str | 20 B | *(hidden: name looks like a credential)* |",
        "| `tick` | str | 12 B | ``'`'`` |",
    ]


class _Task:
    pathspec = "HandFlow/1/report/t"


def _blank_card(*components) -> str:
    """A card as Metaflow's own BlankCard renders it."""
    from metaflow.plugins.cards.card_modules.basic import BlankCard

    return BlankCard(components=[c.render() for c in components]).render(_Task())


def test_a_card_of_markdown_and_text_is_shown_as_markdown():
    from metaflow.cards import Markdown
    from metaflow.plugins.cards.card_modules.basic import TextComponent

    html = _blank_card(Markdown("# Report\n\n| a | b |\n|---|---|\n| 1 | 2 |"),
                       TextComponent("done"))
    assert html_markdown(html) == "# Report\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\ndone"


def test_a_card_with_anything_else_is_only_linked():
    from metaflow.cards import Markdown, Table

    assert html_markdown(_blank_card(Markdown("# Report"), Table([[1, 2]]))) is None
    assert html_markdown(_blank_card(Markdown("x" * 5000))) is None  # too long
    assert html_markdown("<html>a custom card</html>") is None


@pytest.mark.parametrize("tags,text", [
    ({}, "manual"),
    ({"dagster/schedule_name": "TrainFlow_schedule"}, "schedule:TrainFlow_schedule"),
    ({naming.TAG_TRIGGERS: '[{"type": "event", "name": "data_ready", "id": "e1"}]'},
     "event:data_ready"),
    ({naming.TAG_TRIGGERS: '[{"type": "run", "name": "metaflow.Up.end", '
                           '"id": "Up/dagster-0123/end/t"}]'}, "run:Up/dagster-0123"),
    ({naming.TAG_RESUME_ORIGIN: "dagster-0123"}, "resume:dagster-0123"),
])
def test_the_trigger_tag_says_what_started_the_run(tags, text):
    assert trigger_text(tags) == text


def test_status_shows_a_failed_steps_error_attempts_and_logs():
    error = "Step *b* failed (F/dagster-1/b/t, attempt 2, exit code 1):\n" + "\n".join(
        "line %d" % i for i in range(20)) + "\nValueError: boom"
    state = RunState("abc", "FAILURE", "F", steps=[
        StepState("a", "SUCCESS", 1.0),
        StepState("b", "FAILURE", 2.0, attempts=3, error=error,
                  pathspec="F/dagster-1/b/t", metaflow_attempt=2),
    ])
    lines = describe_state(state, "F", "FAILED", "f.py", "http://ui:3000")
    assert lines[1:] == [
        "  a     SUCCESS",  # step keys padded to at least 4 characters
        "  b     FAILURE  (3 attempts)",
        "Failed steps:",
        "  b: F/dagster-1/b/t, 3 attempts (the last: Metaflow attempt 2)",
        "      Step *b* failed (F/dagster-1/b/t, attempt 2, exit code 1):",
        "      ...",
        *["      line %d" % i for i in range(13, 20)],
        "      ValueError: boom",
        "    logs: python f.py logs dagster-1/b/t --attempt 2",
        "          http://ui:3000/runs/abc?logs=step%3Ab  (the op's log in the Dagster UI)",
    ]
