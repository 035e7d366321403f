"""A real `dg` project: made by Dagster's own scaffolding tool (`create-dagster project`),
two flows added with `dg scaffold defs metaflow_dagster.MetaflowFlowComponent` (one with
@schedule, one with @trigger_on_finish on the first), checked and listed with the real
`dg` CLI, and each job run with `dg launch`; artifacts read back through Metaflow's
Client. Nothing is installed and nothing goes to the network: the project is not
installed (its src/ is on PYTHONPATH), create-dagster runs no `uv sync`, and dg's
update check is off."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from harness import FLOWS, REPO, env_for, latest_run

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
COMPONENT = "metaflow_dagster.MetaflowFlowComponent"


class Project:
    def __init__(self, root: Path, dagster_home: Path):
        self.root = root
        self.dagster_home = dagster_home
        self.defs = root / "src" / root.name / "defs"

    def env(self) -> dict:
        return env_for(self.dagster_home, PYTHONPATH=self.root / "src",
                       PATH="%s:%s" % (BIN, env_for()["PATH"]),
                       DAGSTER_DG_UPDATE_CHECK_ENABLED=0, DAGSTER_DISABLE_TELEMETRY=1)

    def dg(self, *args: str, expect_ok=True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(BIN / "dg"), *args], cwd=self.root, capture_output=True,
                              text=True, env=self.env(), timeout=300)
        if expect_ok:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    def attributes(self, component: str) -> dict:
        return yaml.safe_load((self.defs / component / "defs.yaml").read_text())["attributes"]

    def set_attributes(self, component: str, attributes: dict) -> None:
        (self.defs / component / "defs.yaml").write_text(yaml.safe_dump(
            {"type": COMPONENT, "attributes": attributes}, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dg")
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    proc = subprocess.run([str(BIN / "create-dagster"), "project", "--no-uv-sync", "shop"],
                          cwd=tmp, capture_output=True, text=True, timeout=120,
                          env=Project(tmp / "shop", home).env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    project = Project(tmp / "shop", home)
    # The scheduled flow beside its defs.yaml: the scaffolder writes an example flow
    # under the name given, which we replace with ours.
    project.dg("scaffold", "defs", COMPONENT, "flows/orders", "--flow-file", "orders_flow.py")
    example = (project.defs / "flows/orders/orders_flow.py").read_text()
    assert "class OrdersFlow(FlowSpec)" in example
    shutil.copy(FLOWS / "dg_orders_flow.py", project.defs / "flows/orders/orders_flow.py")
    # The downstream flow where it already is: defs.yaml points at it.
    (project.root / "metaflow_flows").mkdir()
    shutil.copy(FLOWS / "dg_report_flow.py", project.root / "metaflow_flows")
    project.dg("scaffold", "defs", COMPONENT, "flows/report",
               "--flow-file", "metaflow_flows/dg_report_flow.py")
    attributes = project.attributes("flows/orders")
    project.set_attributes("flows/orders", dict(attributes, max_workers=2, tags=["shop"]))
    return project


def test_dg_lists_the_component_with_its_description(project):
    out = project.dg("list", "components", "--json").stdout
    [entry] = [c for c in json.loads(out)["items"] if c["key"] == COMPONENT]
    assert entry["summary"].startswith("A Metaflow flow as a Dagster job")


def test_scaffolded_defs_yaml_points_at_the_flow(project):
    assert project.attributes("flows/orders") == {
        "flow_file": "orders_flow.py", "max_workers": 2, "tags": ["shop"]}
    report = project.attributes("flows/report")
    assert report == {"flow_file": "../../../../../metaflow_flows/dg_report_flow.py"}
    assert (project.defs / "flows/report" / report["flow_file"]).resolve() == \
        project.root / "metaflow_flows/dg_report_flow.py"


def test_dg_checks_lists_and_runs_both_flows(project):
    assert "validated successfully" in project.dg("check", "yaml").stdout
    checked = project.dg("check", "defs")
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    listed = json.loads(project.dg("list", "defs", "--json").stdout)
    assert sorted(j["name"] for j in listed["jobs"]) == ["DgOrdersFlow", "DgReportFlow"]
    assert [(s["name"], s["cron_schedule"]) for s in listed["schedules"]] == [
        ("DgOrdersFlow_schedule", "0 0 * * *")]
    assert [s["name"] for s in listed["sensors"]] == ["DgReportFlow_finish_sensor"]
    assets = {a["asset_key"]: a["dependency_keys"] for a in listed["assets"]}
    assert assets == {"metaflow/DgOrdersFlow": [],
                      "metaflow/DgReportFlow": ["metaflow/DgOrdersFlow"]}

    from metaflow import Run, metadata, namespace

    project.dg("launch", "--job", "DgOrdersFlow")
    orders = latest_run(project.dagster_home, "DgOrdersFlow")
    assert orders.success, orders.status
    metadata("local@%s" % (project.defs / "flows/orders"))
    namespace(None)
    run = Run("DgOrdersFlow/%s" % orders.metaflow_run_id)
    assert run.data.total == (1 + 2 + 3) * 2
    assert "shop" in run.tags  # an option of defs.yaml reached the tasks

    project.dg("launch", "--job", "DgReportFlow")
    report = latest_run(project.dagster_home, "DgReportFlow")
    assert report.success, report.status
    metadata("local@%s" % (project.root / "metaflow_flows"))
    assert Run("DgReportFlow/%s" % report.metaflow_run_id).data.report == "report of manual"


def test_dg_check_names_the_file_the_field_and_what_to_do(project):
    good = project.attributes("flows/orders")
    try:
        project.set_attributes("flows/orders", dict(good, max_workrs=3))
        # dg 1.13's `check yaml` keeps one defs.yaml per component type (the last one
        # found) when given no path, so it is given the component's folder here.
        defs_yaml = project.defs / "flows/orders/defs.yaml"
        line = defs_yaml.read_text().splitlines().index("  max_workrs: 3") + 1
        proc = project.dg("check", "yaml", str(project.defs / "flows/orders"), expect_ok=False)
        assert proc.returncode != 0
        assert "%s:%d" % (defs_yaml, line) in proc.stdout
        assert "attributes.max_workrs" in proc.stdout and "not allowed" in proc.stdout
        proc = project.dg("check", "defs", expect_ok=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "attributes at %s:" % defs_yaml in output
        assert "max_workrs is not a field of metaflow_dagster.MetaflowFlowComponent: did " \
            "you mean max_workers?" in output

        project.set_attributes("flows/orders", dict(good, flow_file="order_flow.py"))
        proc = project.dg("check", "defs", expect_ok=False)
        output = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "flows/orders/defs.yaml:" in output and "attributes.flow_file" in output
        assert "order_flow.py does not exist" in output
        assert "Give the path of the flow file relative to" in output
    finally:
        project.set_attributes("flows/orders", good)


def _readme_block(mark: str) -> str:
    text = (REPO / "README.md").read_text()
    return re.search(r"<!-- test: %s -->\n```\w+\n(.*?)^```$" % re.escape(mark), text,
                     re.S | re.M).group(1)


def test_the_readmes_defs_yaml_loads_the_readmes_flow(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    project = Project(tmp_path / "readme", home)
    proc = subprocess.run([str(BIN / "create-dagster"), "project", "--no-uv-sync", "readme"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=project.env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = project.defs / "flows/my_flow"
    folder.mkdir(parents=True)
    (folder / "my_flow.py").write_text(_readme_block("file my_flow.py"))
    (folder / "defs.yaml").write_text(_readme_block("file defs.yaml"))
    project.dg("check", "defs")
    listed = json.loads(project.dg("list", "defs", "--json").stdout)
    assert [j["name"] for j in listed["jobs"]] == ["MyFlow"]
    assert [a["asset_key"] for a in listed["assets"]] == ["metaflow/MyFlow"]
