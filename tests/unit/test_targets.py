"""The two targets of the user's commands (the embedded instance, a webserver's
GraphQL API) answer the same questions: every method of the Target protocol, with
the same parameters, so a command never asks which one it has."""

import inspect

import pytest

from metaflow_dagster.deploy.targets import EmbeddedTarget, GraphQLTarget, Target

QUESTIONS = [name for name, value in vars(Target).items()
             if callable(value) and not name.startswith("_")]


def test_the_protocol_names_every_question_the_commands_ask():
    assert {"launch", "run_state", "terminate", "tag_run", "flow_runs"} <= set(QUESTIONS)


@pytest.mark.parametrize("target", [EmbeddedTarget, GraphQLTarget])
@pytest.mark.parametrize("question", QUESTIONS)
def test_each_target_answers_each_question_with_the_same_parameters(target, question):
    expected = list(inspect.signature(getattr(Target, question)).parameters)
    assert list(inspect.signature(getattr(target, question)).parameters) == expected
