"""Which task a step runs next, from the pathspecs of the tasks feeding it: task ids
follow the foreach split indices (naming.task_id), so the same flow gives the same
ids in every run, and a resumed run finds each task's origin by its id."""

import pytest

from metaflow_dagster import naming
from metaflow_dagster.compiler.layout import layout_ops
from metaflow_dagster.plan import FlowPlan, StepPlan
from metaflow_dagster.runtime.launch.launcher import next_task

RUN = "dagster-abc"


def _plan(*steps: StepPlan) -> FlowPlan:
    return FlowPlan(flow_name="F", flow_file="f.py", job_name="F", start_step="start",
                    end_step="end", steps=list(steps), ops=layout_ops(list(steps)))


# start -> foreach over outer -> foreach over inner -> body -> join_inner -> join_outer -> end
NESTED = _plan(
    StepPlan("start", "foreach", ["outer"], [], matching_join="join_outer"),
    StepPlan("outer", "foreach", ["body"], ["start"], foreach_stack=["start"],
             matching_join="join_inner"),
    StepPlan("body", "linear", ["join_inner"], ["outer"], foreach_stack=["start", "outer"]),
    StepPlan("join_inner", "join", ["join_outer"], ["body"], joins="outer",
             foreach_stack=["start"]),
    StepPlan("join_outer", "join", ["end"], ["join_inner"], joins="start"),
    StepPlan("end", "end", [], ["join_outer"]),
)
BRANCH = _plan(
    StepPlan("start", "split", ["a", "b"], [], matching_join="join"),
    StepPlan("a", "linear", ["join"], ["start"]),
    StepPlan("b", "linear", ["join"], ["start"]),
    StepPlan("join", "join", ["end"], ["a", "b"], joins="start"),
    StepPlan("end", "end", [], ["join"]),
)


def path(step: str, *indices: int) -> str:
    return naming.task_pathspec(RUN, step, naming.task_id(indices))


@pytest.mark.parametrize("indices", [(), (0,), (3, 12), (1, 0, 7)])
def test_a_task_id_gives_back_its_split_indices(indices):
    assert naming.split_indices(naming.task_id(indices)) == indices


def test_the_start_task_is_the_root():
    task = next_task(NESTED, "start", [])
    assert (task.task_id, task.input_paths, task.split_index) == ("t", [], None)


def test_a_foreach_child_adds_its_split_index():
    outer = next_task(NESTED, "outer", [path("start")], split_index=2)
    assert (outer.task_id, outer.split_index) == ("t-2", 2)
    body = next_task(NESTED, "body", [path("outer", 2)], split_index=5)
    assert (body.task_id, body.split_index) == ("t-2-5", 5)


def test_a_foreach_join_drops_the_last_index_and_reads_its_inputs_in_split_order():
    inputs = [path("body", 2, 10), path("body", 2, 9), path("body", 2, 1)]
    join = next_task(NESTED, "join_inner", inputs)
    assert join.task_id == "t-2"
    assert join.input_paths == [path("body", 2, 1), path("body", 2, 9), path("body", 2, 10)]
    assert join.split_index is None
    assert next_task(NESTED, "join_outer", [path("join_inner", 1), path("join_inner", 0)]
                     ).task_id == "t"


def test_a_split_index_given_to_a_step_not_fed_by_a_foreach_is_dropped():
    task = next_task(BRANCH, "a", [path("start")], split_index=4)
    assert (task.task_id, task.split_index) == ("t", None)


def test_a_static_join_keeps_the_indices_of_its_branches():
    join = next_task(BRANCH, "join", [path("b"), path("a")])
    assert join.task_id == "t"
    assert sorted(join.input_paths) == [path("a"), path("b")]


@pytest.mark.parametrize("index,item,key", [
    (0, None, "0"),
    (3, "alice", "3_alice"),
    (4, "two words!", "4_two_words"),
    (6, "tab\there", "6"),
    (5, "x" * (naming.MAX_SPLIT_LABEL_CHARS + 1), "5"),
])
def test_a_split_mapping_key_leads_with_its_index(index, item, key):
    assert naming.split_mapping_key(index, item) == key
    assert naming.split_index_of(key) == index
