"""Names a deployment goes by (its job, its definitions file, its token's prefix)
and how `create` resolves its production token, as `argo-workflows create` does:
kept in the flow's datastore, kept across redeployments by its owner, asked of
anyone else."""

import pytest
from metaflow import metaflow_config
from metaflow.exception import MetaflowException

from metaflow_dagster import naming
from metaflow_dagster.compiler.compile import job_name_for
from metaflow_dagster.deploy.packaging.production_token import (
    IncorrectProductionToken,
    resolve_token,
    token_prefix,
)
from metaflow_dagster.deployment_record import read_record
from metaflow_dagster.task.datastore import open_flow_datastore

PROJECT = {"project_name": "shop", "branch_name": "test.feature-1",
           "project_flow_name": "shop.test.feature-1.TrainFlow"}


@pytest.mark.parametrize("project,job", [
    ({}, "TrainFlow"),
    (PROJECT, "shop_test_feature_1_TrainFlow"),
])
def test_a_job_is_named_after_the_flow_and_its_project_branch(project, job):
    assert job_name_for("TrainFlow", project) == job


def test_each_job_has_a_definitions_file_of_its_own():
    files = {naming.default_definitions_file(job_name_for("TrainFlow", p))
             for p in ({}, PROJECT, dict(PROJECT, project_flow_name="shop.prod.TrainFlow"))}
    assert files == {"trainflow_dagster.py", "shop_test_feature_1_trainflow_dagster.py",
                     "shop_prod_trainflow_dagster.py"}


def test_a_project_branch_shares_one_token_prefix_whatever_the_flow():
    assert token_prefix("TrainFlow", {}) == "TrainFlow"
    one = token_prefix("shop_test_feature_1_TrainFlow", PROJECT)
    other = token_prefix("shop_test_feature_1_ScoreFlow", PROJECT)
    assert one == other and one.startswith("mfprj-")
    assert token_prefix("x", dict(PROJECT, branch_name="prod")) != one


class Deployments:
    """`create`'s token resolution against a real local datastore and token home."""

    def __init__(self, tmp_path, monkeypatch):
        monkeypatch.setenv("METAFLOW_TOKEN_HOME", str(tmp_path / "tokens"))
        self.monkeypatch = monkeypatch
        self.datastore = open_flow_datastore("TrainFlow", "local", str(tmp_path / ".metaflow"))
        self.said = []

    def create(self, user, **options):
        # What METAFLOW_USER gives a fresh process (Metaflow reads it at import).
        self.monkeypatch.setattr(metaflow_config, "USER", user)
        return resolve_token(lambda line, **_: self.said.append(line), self.datastore,
                             "TrainFlow", "TrainFlow", options.pop("is_project", False),
                             **options)

    def record(self):
        return read_record(self.datastore._storage_impl, "TrainFlow")


@pytest.fixture
def deployments(tmp_path, monkeypatch):
    return Deployments(tmp_path, monkeypatch)


def test_the_first_deployment_makes_a_token_and_records_its_owner(deployments):
    token = deployments.create("alice")
    assert deployments.record() == ("alice", token)
    assert "    production:%s" % token in deployments.said


def test_the_owner_redeploys_under_the_same_token(deployments):
    token = deployments.create("alice")
    assert deployments.create("alice") == token


def test_someone_else_needs_the_token_and_then_keeps_it(deployments, monkeypatch, tmp_path):
    token = deployments.create("alice")
    monkeypatch.setenv("METAFLOW_TOKEN_HOME", str(tmp_path / "bob's tokens"))
    with pytest.raises(IncorrectProductionToken, match="deployed by \\*alice\\*"):
        deployments.create("bob")
    assert deployments.create("bob", authorize="production:%s" % token) == token
    assert deployments.record() == ("bob", token)


def test_a_new_token_can_be_asked_for_or_given(deployments):
    first = deployments.create("alice")
    second = deployments.create("alice", generate_new_token=True)
    assert second != first
    assert deployments.create("alice", given_token="production:chosen") == "chosen"


def test_a_project_flow_cannot_be_given_a_token(deployments):
    with pytest.raises(MetaflowException, match="--given-token is not supported"):
        deployments.create("alice", is_project=True, given_token="chosen")
