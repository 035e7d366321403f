"""What Dagster shows of a real run: the job's and ops' descriptions, each task's
artifacts, attempt, Client snippet and card links on its op's output, the foreach items
in the splits' names, the Metaflow facts as run tags, the flow asset's materialization;
cards where the deployment's Client looks for them; a plain Dagster asset downstream of
a flow; `dagster status` on a failed run."""

import json
import re
import subprocess

import pytest
from commands import embedded, field, flow_dir, mf, wait_for
from harness import (
    DAGSTER,
    EXAMPLES,
    FLOWS,
    PYTHON,
    compile_file,
    copy_flow,
    env_for,
    execute,
    load_definitions,
    output_metadata,
)

from metaflow_dagster import naming

pytestmark = pytest.mark.e2e

CARD_SERVER = "http://cards.example.com:8324"


def _materializations(dagster_home, run_id):
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)
    return [r.dagster_event.event_specific_data.materialization for r in records]


def _client(directory, sysroot, code: str) -> str:
    """Run Client code in a fresh process outside the flow's directory, with the
    deployment's datastore root (METAFLOW_DATASTORE_SYSROOT_LOCAL); its stdout."""
    env = env_for(METAFLOW_DATASTORE_SYSROOT_LOCAL=sysroot, METAFLOW_DEFAULT_METADATA="local",
                  METAFLOW_DEFAULT_DATASTORE="local")
    proc = subprocess.run([PYTHON, "-c", code], cwd=directory.parent, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def metadata_run(tmp_path_factory):
    """metadata_flow compiled with its datastore root set away from the flow's
    directory (as METAFLOW_DATASTORE_SYSROOT_LOCAL does), then run."""
    tmp_path = tmp_path_factory.mktemp("view")
    flow_file = copy_flow(tmp_path, FLOWS / "metadata_flow.py")
    sysroot = tmp_path / "datastore"
    sysroot.mkdir()
    compiled = compile_file(flow_file, env=env_for(METAFLOW_DATASTORE_SYSROOT_LOCAL=sysroot))
    home = tmp_path / "dagster_home"
    home.mkdir()
    result = execute(compiled, home, env_extra={naming.CARD_SERVER_URL_ENV: CARD_SERVER})
    assert result.success, result.output[-3000:]
    outputs = output_metadata(home, result.dagster_run_id)
    materializations = _materializations(home, result.dagster_run_id)
    return compiled, home, sysroot, result, outputs, materializations


def test_descriptions_come_from_the_docstrings(metadata_run):
    compiled = metadata_run[0]
    defs = load_definitions(compiled.defs_file).defs
    job = defs.get_job_def(compiled.job_name)
    assert job.description.startswith("Counts the letters of a few names.\n\nA second")
    assert job.description.endswith("which it does between words.")
    assert job.graph.node_named("count").definition.description == "Count one name's letters."
    assert job.graph.node_named("join").definition.description is None


def test_splits_are_named_after_their_items(metadata_run):
    result = metadata_run[3]
    assert sorted(k for k in result.steps if k.startswith("count[")) == [
        "count[0_alice]", "count[1_bob]", "count[2_carol_ann]"]


def test_each_output_shows_its_tasks_artifacts_attempt_and_client_snippet(metadata_run):
    compiled, _, sysroot, result, outputs, _ = metadata_run
    pathspec = "MetadataFlow/%s/start/t" % result.metaflow_run_id
    start = outputs[("start", "0_alice")]
    assert start["metaflow_pathspec"] == pathspec
    assert start["metaflow_attempt"] == 0
    assert start["client"].endswith('Task("%s")' % pathspec)
    # Each split's output says which item it took; the task's metadata is on the first.
    assert outputs[("start", "2_carol_ann")] == {"metaflow_pathspec": pathspec,
                                                 "foreach_item": "carol-ann"}
    rows = {row.split(" | ")[0].strip("| `"): row for row in start["artifacts"].splitlines()}
    assert rows["names"] == "| `names` | list | %s | `['alice', 'bob', 'carol-ann']` |" % (
        rows["names"].split(" | ")[2])
    assert rows["api_token"].endswith("*(hidden: name looks like a credential)* |")
    assert rows["note"].endswith("*(hidden: value looks like a credential)* |")
    assert "…" in rows["long_text"] and len(rows["long_text"]) < 150  # cut to 80 characters
    assert rows["big"].endswith("| str | 4.9 KB |  |")  # over the size limit: no value
    assert rows["points"].endswith("| list | %s |  |" % rows["points"].split(" | ")[2])
    assert not any(name.startswith("_") for name in rows if name not in ("artifact", "---"))
    # The snippet is copy-ready: the Client runs it as it is.
    shown = _client(compiled.flow_dir, sysroot, start["client"] + '.data.names[0]; '
                    'print(Task("%s").data.names)' % pathspec)
    assert shown.strip() == "['alice', 'bob', 'carol-ann']"


def test_card_steps_link_their_cards_and_show_simple_ones_in_place(metadata_run):
    compiled, _, sysroot, result, outputs, _ = metadata_run
    bob = outputs[("count[1_bob]", None)]
    pathspec = "MetadataFlow/%s/count/t-1" % result.metaflow_run_id
    assert re.fullmatch(r"%s/card/%s/[0-9a-f]{32}" % (CARD_SERVER, pathspec), bob["card"])
    assert bob["card content"] == "## bob has 3 letters"
    assert "card" not in outputs[("join", None)]
    # The card is where the deployment's Client looks (its datastore root), though the
    # tasks ran in the flow's directory; and it is the card the link names.
    found = json.loads(_client(compiled.flow_dir, sysroot, (
        "import json; from metaflow import Task, namespace; from metaflow.cards import "
        "get_cards; namespace(None); print(json.dumps([c.hash for c in get_cards(Task(%r))]))"
    ) % pathspec))
    assert found == [bob["card"].rsplit("/", 1)[1]]


def test_the_run_is_tagged_with_its_metaflow_facts(metadata_run):
    from dagster import DagsterInstance, RunsFilter

    _, home, _, result, _, _ = metadata_run
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(filters=RunsFilter(
            tags={naming.TAG_RUN_ID: result.metaflow_run_id}))
    assert [r.run_id for r in runs] == [result.dagster_run_id]
    tags = runs[0].tags
    assert tags[naming.TAG_FLOW_NAME] == "MetadataFlow"
    assert tags[naming.TAG_USER] == env_for()["METAFLOW_USER"]
    assert tags[naming.TAG_TRIGGER] == "manual"


def test_a_successful_run_materializes_the_flow_asset(metadata_run):
    _, _, _, result, _, materializations = metadata_run
    assert len(materializations) == 1
    materialization = materializations[0]
    assert materialization.asset_key.path == ["metaflow", "MetadataFlow"]
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["metaflow_run"] == "MetadataFlow/%s" % result.metaflow_run_id
    cards = {k: v for k, v in metadata.items() if k.startswith("card")}
    assert sorted(cards) == ["card: count/t-0", "card: count/t-1", "card: count/t-2"]
    assert "| `total` | int |" in metadata["end artifacts"]
    assert "`17`" in metadata["end artifacts"]  # 5 + 3 + 9 letters


def test_a_dagster_asset_downstream_of_a_flow(tmp_path, dagster_home):
    """The README's example: a plain Dagster asset that depends on the flow's asset and
    reads the latest run's artifact, materialized after a run of the flow."""
    flow_file = copy_flow(tmp_path, EXAMPLES / "hello_flow.py")
    downstream = copy_flow(tmp_path, EXAMPLES / "downstream_asset.py")
    compiled = compile_file(flow_file)
    assert execute(compiled, dagster_home).success
    proc = subprocess.run(
        [DAGSTER, "asset", "materialize", "-f", downstream.name, "--select", "hello_report"],
        cwd=compiled.flow_dir, env=env_for(dagster_home), capture_output=True, text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        event = instance.get_latest_materialization_event(AssetKey("hello_report"))
        flow_event = instance.get_latest_materialization_event(
            AssetKey(["metaflow", "HelloFlow"]))
    report = event.asset_materialization.metadata
    flow_run = flow_event.asset_materialization.metadata["metaflow_run"].value
    assert report["metaflow_run"].value == flow_run
    assert report["message"].value == "Hello, Ada! Hello, Grace! Hello, Linus!"
    defs = load_definitions(downstream).defs
    graph = defs.get_repository_def().asset_graph
    assert graph.get(AssetKey("hello_report")).parent_keys == {
        AssetKey(["metaflow", "HelloFlow"])}


def test_status_shows_each_failed_steps_error_attempts_and_logs(tmp_path, dagster_home):
    directory = flow_dir(tmp_path, "failing_flow")
    mf(directory, "failing_flow", "dagster", "create")
    ui = "https://dagster.example.com:8443/ui"
    triggered = mf(directory, "failing_flow", "dagster", "trigger", dagster_home=dagster_home,
                   METAFLOW_DAGSTER_UI_URL=ui + "/")
    run_id = field(triggered, "Dagster run id")
    assert field(triggered, "Dagster UI") == "%s/runs/%s" % (ui, run_id)
    state = wait_for(embedded(dagster_home), run_id)
    assert state.status == "FAILURE"
    shown = mf(directory, "failing_flow", "dagster", "status",
               dagster_home=dagster_home).stdout.splitlines()
    task = "%s/b/t" % state.metaflow_run_id
    at = shown.index("Failed steps:")
    assert shown[at + 1] == "  b: FailingFlow/%s, 1 attempt (the last: Metaflow attempt 0)" % task
    error = shown[at + 2:shown.index(next(s for s in shown if s.startswith("    logs:")))]
    assert error[0].strip().startswith("Step *b* failed (FailingFlow/%s, attempt 0" % task)
    assert error[-1].strip() == "ValueError: boom from step b"
    logs = [s.split(":", 1)[1].strip() if s.startswith("    logs:") else s.strip()
            for s in shown[at + 2 + len(error):]]
    assert logs[0] == "python failing_flow.py logs %s --attempt 0" % task
    assert logs[1].startswith("http://127.0.0.1:3000/runs/%s?logs=step%%3Ab" % run_id)
    # The UI of this Dagster home is elsewhere: the links say so.
    elsewhere = mf(directory, "failing_flow", "dagster", "status", dagster_home=dagster_home,
                   METAFLOW_DAGSTER_UI_URL=ui).stdout
    assert "          %s/runs/%s?logs=step%%3Ab  (the op's log" % (ui, run_id) in elsewhere
    # The command it names shows the task's error.
    printed = mf(directory, "failing_flow", *logs[0].split()[2:])
    assert "ValueError: boom from step b" in printed.stdout + printed.stderr


def test_status_says_a_step_timed_out(tmp_path, dagster_home):
    """Metaflow's @timeout line sits between the task's first line and its long
    stack: `status` shows it, then where the step was when time ran out."""
    directory = flow_dir(tmp_path, "timeout_flow")
    mf(directory, "timeout_flow", "dagster", "create")
    mf(directory, "timeout_flow", "dagster", "trigger", "--wait", dagster_home=dagster_home,
       expect_rc=1)
    shown = [line.strip() for line in mf(directory, "timeout_flow", "dagster", "status",
                                         dagster_home=dagster_home).stdout.splitlines()]
    at = shown.index("Failed steps:")
    assert shown[at + 3:at + 7] == [
        "<flow TimeoutFlow step slow> failed:", "@timeout:",
        "Step slow timed out after 0 hours, 0 minutes, 4 seconds", "..."], shown
    logs = next(i for i, line in enumerate(shown) if line.startswith("logs:"))
    assert shown[logs - 1] == ">      time.sleep(120)", shown
