"""Metaflow events recorded in a real (temporary, SQLite) Dagster instance."""

import os
import subprocess
import sys
import uuid

import pytest
from _dagster_home import temp_instance
from click.testing import CliRunner
from dagster import AssetMaterialization
from harness import FLOWS, copy_flow, create, env_for

from metaflow_dagster.__main__ import cli
from metaflow_dagster.deploy.events import send_event
from metaflow_dagster.runtime.triggers.events import event_asset_key, read_event


@pytest.fixture(scope="module")
def home_and_instance():
    """One instance for the module (creating one is slow); tests use distinct names."""
    with temp_instance() as pair:
        yield pair


def _events(instance, name):
    records = instance.fetch_materializations(event_asset_key(name), limit=100, ascending=True)
    return [read_event(record) for record in records.records]


def test_send_event_records_a_runless_materialization(home_and_instance):
    _, instance = home_and_instance
    event_id = send_event("data.ready", {"table": "t1", "rows": 3}, instance=instance)
    send_event("data.ready", {}, instance=instance)
    send_event("other", {"x": 1}, instance=instance)

    first, second = _events(instance, "data.ready")
    assert first["id"] == event_id and uuid.UUID(event_id)
    assert first["name"] == "data.ready"
    assert first["payload"] == {"table": "t1", "rows": 3}
    assert isinstance(first["timestamp"], int)  # Trigger turns only ints into datetimes
    assert second["payload"] == {} and second["id"] != event_id
    assert second["storage_id"] > first["storage_id"]
    assert event_asset_key("data.ready").path == ["metaflow_event", "data.ready"]
    record = instance.fetch_materializations(event_asset_key("other"), limit=1).records[0]
    assert record.run_id == ""  # runless


def test_foreign_materializations_still_read_as_events(home_and_instance):
    _, instance = home_and_instance
    instance.report_runless_asset_event(AssetMaterialization(asset_key=event_asset_key("alien")))
    (event,) = _events(instance, "alien")
    assert event["id"] == "storage-%d" % event["storage_id"]
    assert event["payload"] == {} and isinstance(event["timestamp"], int)


@pytest.mark.parametrize(
    "name, payload, error",
    [
        ("bad name", {}, ValueError),
        ("ok", ["not", "a", "dict"], ValueError),
        ("ok", {1: "int key"}, ValueError),
        ("ok", {"x": object()}, TypeError),
    ],
)
def test_send_event_refuses_bad_input(home_and_instance, name, payload, error):
    _, instance = home_and_instance
    with pytest.raises(error):
        send_event(name, payload, instance=instance)


def test_cli_send_event(home_and_instance):
    home, instance = home_and_instance
    result = CliRunner().invoke(
        cli,
        ["send-event", "cli.event", "--payload", "table=t1", "-p", "expr=a=b"],
        env={"DAGSTER_HOME": home},
    )
    assert result.exit_code == 0, result.output
    (event,) = _events(instance, "cli.event")
    assert event["payload"] == {"table": "t1", "expr": "a=b"}
    assert event["id"] in result.output


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["send-event", "e"], {"DAGSTER_HOME": "relative/dir"}, "absolute path"),
        (["send-event", "e", "-p", "novalue"], None, "KEY=VALUE"),
        (["send-event", "bad name"], None, "invalid"),
    ],
)
def test_cli_send_event_errors(home_and_instance, args, env, message):
    home, _ = home_and_instance
    result = CliRunner().invoke(cli, args, env=env or {"DAGSTER_HOME": home})
    assert result.exit_code == 2
    assert message in result.output


def test_send_event_without_dagster_home_uses_the_default_home(tmp_path):
    """DAGSTER_HOME unset: the default home, created with its dagster.yaml on first use
    (the command says where, once); `python -m metaflow_dagster home` names it."""
    from dagster import DagsterInstance

    env = {"DAGSTER_HOME": None, "HOME": str(tmp_path)}
    runner = CliRunner()
    first = runner.invoke(cli, ["send-event", "first", "-p", "k=v"], env=env)
    second = runner.invoke(cli, ["send-event", "second"], env=env)
    named = runner.invoke(cli, ["home"], env=env)
    home = tmp_path / ".metaflow_dagster" / "dagster_home"
    assert first.exit_code == second.exit_code == named.exit_code == 0, first.output
    assert "Created the Dagster home %s " % home in first.stderr
    assert "Created" not in second.stderr and "Created" not in named.stderr
    assert named.stdout.strip() == str(home)
    # Written once, with run monitoring and run retries on.
    written = (home / "dagster.yaml").read_text()
    assert written.count("run_monitoring:\n  enabled: true") == 1, written
    assert "run_retries:\n  enabled: true" in written, written
    with DagsterInstance.from_config(str(home)) as instance:
        assert [e["payload"] for e in _events(instance, "first")] == [{"k": "v"}]
        assert len(_events(instance, "second")) == 1


def test_a_dagster_home_that_does_not_exist_yet_is_created(tmp_path):
    home = tmp_path / "new" / ".dagster_home"
    result = CliRunner().invoke(cli, ["home"], env={"DAGSTER_HOME": str(home)})
    assert result.exit_code == 0 and result.stdout.strip() == str(home)
    assert "telemetry:\n  enabled: false" in (home / "dagster.yaml").read_text()


def test_python_dash_m_send_event(home_and_instance):
    home, instance = home_and_instance
    env = dict(os.environ, DAGSTER_HOME=home)
    done = subprocess.run(
        [sys.executable, "-m", "metaflow_dagster", "send-event", "ping", "--payload", "k=v"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (event,) = _events(instance, "ping")
    assert event["payload"] == {"k": "v"}


def test_send_event_says_which_deployed_flow_listens(tmp_path):
    """Before the flow listening for data_ready is deployed in the Dagster home, the
    command says nothing listens; after `dagster create`, it names the flow."""
    home = tmp_path / "dagster_home"
    env = env_for(home)

    def send(name):
        return subprocess.run([sys.executable, "-m", "metaflow_dagster", "send-event", name],
                              env=env, capture_output=True, text=True, timeout=120)

    before = send("data_ready")
    assert before.returncode == 0, before.stderr
    assert "Event data_ready sent" in before.stdout
    assert ("No flow deployed in the Dagster home %s listens for event data_ready: it starts "
            "no run." % home) in before.stderr
    assert "deployed later will not see it" in before.stderr

    create(copy_flow(tmp_path, FLOWS / "prod_event_flow.py"), env=env)
    after = send("data_ready")
    assert after.returncode == 0 and "No flow" not in after.stderr, after.stderr
    assert "It starts a run of ProdEventFlow (job ProdEventFlow) once its sensor sees it" \
        in after.stdout
    other = send("other_event")
    assert "No flow deployed in the Dagster home" in other.stderr
