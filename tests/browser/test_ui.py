"""The compiled job in the real Dagster UI, driven by a headless browser.

One `dagster dev` and one browser serve the whole module. `ui_flow.py` is compiled with
the real CLI; the job page shows its graph; the launchpad launches a run with
non-default Parameter values typed into its config editor; the run page shows it
succeeding; the tasks saw the values (read back with Metaflow's Client).

Screenshots go to $UI_SCREENSHOT_DIR (default: a pytest temporary directory).

To add a check: give the page a helper in ui.py (`open_<page>(driver, ...)`), then a test
here taking `driver`, `deployment` and, for pages about the launched run, `launched`.
Tests share the browser, so each starts by opening its own page.
"""

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ui  # noqa: E402

pytestmark = pytest.mark.browser

_missing = ui.browser_available()
if _missing and not os.environ.get("CI"):  # CI installs them (scripts/install-services.sh)
    pytest.skip(_missing, allow_module_level=True)

HERE = Path(__file__).resolve().parent
FLOW_FILE = HERE / "ui_flow.py"
FLOW_NAME = "UIFlow"
STEPS = ("start", "square", "join", "report", "end")
# Non-default values for the flow's Parameters (defaults: width 2, "default label").
WIDTH = 3
LABEL = "set in the launchpad"
RUN_CONFIG = (
    "ops:\n"
    "  start:\n"
    "    config:\n"
    "      width: %d\n"
    "      label: %s\n" % (WIDTH, LABEL)
)


@dataclass
class Deployment:
    dev: ui.DagsterDevHandle
    flow_dir: Path
    defs_file: Path
    job_name: str
    datastore_sysroot: str  # the folder holding the tasks' local datastore, as the plan says
    env: dict

    @property
    def url(self) -> str:
        return self.dev.url


@dataclass
class Launched:
    run_id: str  # the Dagster run id
    status: str  # as the run page showed it when it ended


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    path = Path(os.environ.get("UI_SCREENSHOT_DIR") or tmp_path_factory.mktemp("screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plan(defs_file: Path) -> dict:
    """The plan a generated definitions file embeds (the JSON given to from_json), read
    as text so that this test does not depend on the package's module layout."""
    match = re.search(r"from_json\(\s*r'''(.*?)'''", defs_file.read_text(), re.S)
    assert match, "no embedded plan in %s" % defs_file
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui")
    flow_dir = tmp / "flow"
    flow_dir.mkdir()
    flow_file = flow_dir / FLOW_FILE.name
    flow_file.write_text(FLOW_FILE.read_text())
    home = tmp / "dagster_home"
    home.mkdir()
    env = dict(os.environ, METAFLOW_USER="ci", DAGSTER_HOME=str(home),
               METAFLOW_TOKEN_HOME=str(tmp / "tokens"))
    defs_file = flow_dir / "ui_flow_dagster.py"
    proc = subprocess.run([sys.executable, flow_file.name, "dagster", "create", defs_file.name],
                          cwd=flow_dir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = _plan(defs_file)
    dev = ui.start_dagster_dev(defs_file, home, cwd=flow_dir, env=env)
    try:
        yield Deployment(dev, flow_dir, defs_file, plan["job_name"],
                         plan["settings"]["METAFLOW_DATASTORE_SYSROOT_LOCAL"], env)
    finally:
        dev.stop()


@pytest.fixture(scope="module")
def driver():
    d = ui.browser()
    try:
        yield d
    finally:
        d.quit()


@pytest.fixture(scope="module")
def launched(deployment, driver, shots) -> Launched:
    """A run launched from the job's launchpad with RUN_CONFIG, followed on its run page
    until it ended."""
    try:
        ui.open_job(driver, deployment.url, deployment.job_name)
        defaults = ui.open_launchpad(driver)
        assert "width: 2" in defaults, defaults  # the Parameter's default, scaffolded
        ui.set_launchpad_config(driver, RUN_CONFIG)
        ui.screenshot(driver, shots / "02_launchpad.png")
        run_id = ui.launch_run(driver)
        status = ui.wait_run_finished(driver, timeout=180)
    except BaseException:
        ui.screenshot(driver, shots / "launch_failed.png")
        raise
    ui.screenshot(driver, shots / "03_run_finished.png")
    return Launched(run_id, status)


# --- pages ----------------------------------------------------------------------------------


def test_job_page_shows_every_step(deployment, driver, shots):
    url = ui.open_job(driver, deployment.url, deployment.job_name, op_names=STEPS)
    assert url.endswith("/locations/%s/jobs/%s" % (deployment.dev.location, deployment.job_name))
    ui.screenshot(driver, shots / "01_job_graph.png")


def test_run_launched_from_the_launchpad_succeeds(deployment, driver, launched):
    ui.open_run(driver, deployment.url, launched.run_id)
    assert launched.status == "SUCCESS", ui.page_text(driver)[-3000:]
    assert ui.wait_run_finished(driver, timeout=30) == "SUCCESS"
    assert ui.run_status_tag(driver) == "Success"
    # The same through the webserver's GraphQL API, with the config set in the editor.
    info = ui.run_info(deployment.dev, launched.run_id)
    assert info["status"] == "SUCCESS", info
    assert info["jobName"] == deployment.job_name, info
    assert yaml.safe_load(info["runConfigYaml"])["ops"]["start"]["config"] == \
        {"width": WIDTH, "label": LABEL}, info["runConfigYaml"]
    # Every step ran: the foreach body once per split.
    succeeded = [e["stepKey"] for e in ui.run_events(deployment.dev, launched.run_id)
                 if e["__typename"] == "ExecutionStepSuccessEvent"]
    assert len([k for k in succeeded if k.startswith("square[")]) == WIDTH, succeeded
    assert {"start", "join", "report", "end"} <= set(succeeded), succeeded


def test_the_tasks_saw_the_launchpad_values(deployment, launched):
    """Read the run back with Metaflow's Client, pointed at the datastore the tasks used
    (the generated plan's METAFLOW_DATASTORE_SYSROOT_LOCAL)."""
    pathspecs = metaflow_pathspecs(deployment, launched.run_id)
    run_ids = {p.split("/")[1] for p in pathspecs}
    assert len(run_ids) == 1, pathspecs
    run = client_read(deployment, "%s/%s" % (FLOW_NAME, run_ids.pop()))
    assert run["successful"], run
    assert run["seen"] == {"width": WIDTH, "label": LABEL,
                           "squares": [i * i for i in range(WIDTH)]}, run
    assert run["params"] == {"width": WIDTH, "label": LABEL}, run
    assert run["square_tasks"] == WIDTH, run
    assert run["report_cards"] >= 1, run


# --- helpers --------------------------------------------------------------------------------


def metaflow_pathspecs(deployment, run_id):
    """The Metaflow task pathspecs a Dagster run's steps reported (their outputs carry
    a `metaflow_pathspec` metadata entry)."""
    found = []
    for event in ui.run_events(deployment.dev, run_id):
        for entry in event.get("metadataEntries") or []:
            if entry["label"] == "metaflow_pathspec":
                found.append(entry.get("text") or entry.get("path") or entry.get("url"))
    assert found, "no metaflow_pathspec metadata in the run's events"
    return found


CLIENT_SCRIPT = r"""
import json, sys
from metaflow import Run, namespace
from metaflow.cards import get_cards
namespace(None)
run = Run(sys.argv[1])
report = run["report"].task
print(json.dumps({
    "successful": run.successful,
    "seen": report.data.seen,
    "params": {"width": run["end"].task.data.width, "label": run["end"].task.data.label},
    "square_tasks": len(list(run["square"])),
    "report_cards": len(get_cards(report)),
}))
"""


def client_read(deployment, run_pathspec: str) -> dict:
    """Facts about a Metaflow run, read with the Client in a fresh process (outside the
    flow's directory) pointed at the datastore the tasks wrote to
    (METAFLOW_DATASTORE_SYSROOT_LOCAL names the directory *holding* `.metaflow`)."""
    root = Path(deployment.datastore_sysroot)
    assert (root / ".metaflow").is_dir(), root
    env = dict(deployment.env, METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root),
               METAFLOW_DEFAULT_METADATA="local", METAFLOW_DEFAULT_DATASTORE="local")
    proc = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT, run_pathspec],
                          cwd=deployment.flow_dir.parent, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
