"""The compiled job in the real Dagster UI, driven by a headless browser.

One `dg dev`, one Metaflow card server (`python ui_flow.py card server`) and one
browser serve the whole module. `ui_flow.py` is compiled with the real CLI; the job page
shows its graph and the flow's docstring; the launchpad launches a run with non-default
Parameter values typed into its config editor; the run page shows it succeeding; the
tasks saw the values (read back with Metaflow's Client); a step's events show its
artifacts, attempt and a link to its card, which opens the rendered card; the flow is
an asset in the Catalog, materialized by the run; the run carries its Metaflow run id
as a tag.

Screenshots go to $UI_SCREENSHOT_DIR (default: a pytest temporary directory); the ones
in docs/screenshots come from `UI_SCREENSHOT_DIR=docs/screenshots pytest tests/browser`.

To add a check: give the page a helper in ui.py (`open_<page>(driver, ...)`), then a test
here taking `driver`, `deployment` and, for pages about the launched run, `launched`.
Tests share the browser, so each starts by opening its own page.
"""

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ui  # noqa: E402
from harness import DagsterDev  # noqa: E402
from services import free_port  # noqa: E402

pytestmark = pytest.mark.browser

_missing = ui.browser_available()
if _missing and not os.environ.get("CI"):  # CI installs them (scripts/install-services.sh)
    pytest.skip(_missing, allow_module_level=True)

HERE = Path(__file__).resolve().parent
FLOW_FILE = HERE / "ui_flow.py"
FLOW_NAME = "UIFlow"
STEPS = ("start", "square", "join", "report", "end")
FLOW_DOC = "Squares the first width integers in parallel and reports them on a card."
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
    dev: DagsterDev
    flow_dir: Path
    defs_file: Path
    job_name: str
    datastore_sysroot: str  # the folder holding the tasks' local datastore, as the plan says
    env: dict
    card_server: str  # base URL of the Metaflow card server the card links point at

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
    # No telemetry (no network traffic, no banner) and no "Join the Dagster community"
    # dialog over the first page the browser opens.
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    env = dict(os.environ, METAFLOW_USER="ci", DAGSTER_HOME=str(home),
               METAFLOW_TOKEN_HOME=str(tmp / "tokens"))
    defs_file = flow_dir / "ui_flow_dagster.py"
    proc = subprocess.run([sys.executable, flow_file.name, "dagster", "create", defs_file.name],
                          cwd=flow_dir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = _plan(defs_file)
    card_port = free_port()
    card_server = "http://127.0.0.1:%d" % card_port
    cards = start_card_server(flow_dir, flow_file.name, card_port, env)
    try:
        # The ops' card links point at this card server (naming.CARD_SERVER_URL_ENV).
        dev_env = dict(env, METAFLOW_DAGSTER_CARD_SERVER_URL=card_server)
        with DagsterDev(home, [defs_file], flow_dir, env=dev_env, log_level="warning") as dev:
            yield Deployment(dev, flow_dir, defs_file, plan["job_name"],
                             plan["settings"]["METAFLOW_DATASTORE_SYSROOT_LOCAL"], env,
                             card_server)
    finally:
        os.killpg(cards.pid, signal.SIGKILL)
        cards.wait(timeout=30)


def start_card_server(flow_dir: Path, flow_file: str, port: int, env: dict):
    """`python ui_flow.py card server --port PORT` in the flow's directory (so it reads
    the cards where the tasks wrote them), in its own session; once it answers."""
    log = open(flow_dir.parent / "card_server.log", "w")
    proc = subprocess.Popen([sys.executable, flow_file, "card", "server", "--port", str(port)],
                            cwd=flow_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)

    def answers():
        assert proc.poll() is None, (flow_dir.parent / "card_server.log").read_text()
        try:
            return urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5).status
        except OSError:
            return None

    ui.wait_until(answers, 120, interval=0.5, message="the card server did not answer")
    return proc


@pytest.fixture(scope="module")
def driver():
    d = ui.browser(1280, 800)
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
    ui.toggle_run_chart(driver)  # the whole run's chart, for the picture
    ui.screenshot(driver, shots / "03_run_finished.png")
    ui.toggle_run_chart(driver)
    return Launched(run_id, status)


# --- pages ----------------------------------------------------------------------------------


def test_job_page_shows_every_step(deployment, driver, shots):
    url = ui.open_job(driver, deployment.url, deployment.job_name, op_names=STEPS)
    assert url.endswith("/locations/%s/jobs/%s" % (deployment.dev.location, deployment.job_name))
    ui.wait_text(driver, FLOW_DOC)  # the flow's docstring is the job's description
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
    assert run["report_cards"] == 1, run


def test_a_steps_metadata_shows_its_artifacts_and_links_to_its_card(deployment, driver,
                                                                     launched, shots):
    """The report step's events: its Metaflow task, attempt and artifacts, and a link to
    its card; following the link opens the card, rendered by Metaflow's card server."""
    ui.open_step_events(driver, deployment.url, launched.run_id, "report")
    run_id = metaflow_run_id(deployment, launched)
    pathspec = "%s/%s/report/t" % (FLOW_NAME, run_id)
    output = ui.open_full_message(driver, "STEP_OUTPUT")
    assert ui.metadata_row(output, "metaflow_pathspec").text.endswith(pathspec)
    assert ui.metadata_row(output, "metaflow_attempt").text.endswith("0")
    assert 'Task("%s")' % pathspec in ui.metadata_row(output, "client").text.replace("\n", "")
    ui.screenshot(driver, shots / "04_step_metadata.png")
    # A blank card with Markdown only is shown in place too.
    assert "squares: [0, 1, 4]" in ui.show_markdown(driver, output, "card content")
    ui.close_dialog(driver)
    artifacts = ui.show_markdown(driver, output, "artifacts")
    assert re.search(r"seen\s+dict\s+\d+ B\s+\{'width': 3, 'label': '%s'" % LABEL, artifacts), \
        artifacts
    ui.close_dialog(driver)

    from selenium.webdriver.common.by import By
    link = ui.metadata_row(output, "card").find_element(By.CSS_SELECTOR, "a[href]")
    assert link.get_attribute("href").startswith(
        "%s/card/%s/" % (deployment.card_server, pathspec)), link.get_attribute("href")
    origin = ui.follow_link(driver, link)
    try:
        ui.wait_text(driver, LABEL)  # the card's title, rendered by the card's own script
        ui.wait_text(driver, "squares: [0, 1, 4]")
        ui.screenshot(driver, shots / "05_card.png")
    finally:
        driver.close()
        driver.switch_to.window(origin)
    ui.close_dialog(driver)


def test_the_flow_is_an_asset_materialized_by_the_run(deployment, driver, launched, shots):
    ui.open_asset(driver, deployment.url, ["metaflow", FLOW_NAME])
    ui.wait_text(driver, FLOW_DOC)
    run_pathspec = "%s/%s" % (FLOW_NAME, metaflow_run_id(deployment, launched))
    ui.wait_text(driver, run_pathspec)  # the latest materialization's metaflow_run
    ui.screenshot(driver, shots / "06_asset.png")


def test_runs_can_be_found_by_their_metaflow_run_id(deployment, driver, launched):
    """The run was launched from the UI, not our CLI: its first op tagged it."""
    run_id = metaflow_run_id(deployment, launched)
    assert ui.runs_with_tag(driver, deployment.url, "metaflow/run_id", "dagster-0") == []
    listed = ui.runs_with_tag(driver, deployment.url, "metaflow/run_id", run_id)
    assert listed == [launched.run_id[:8]], listed
    data = deployment.dev.graphql(
        "query($tags: [ExecutionTag!]) { runsOrError(filter: {tags: $tags}) { "
        "... on Runs { results { runId tags { key value } } } } }",
        {"tags": [{"key": "metaflow/run_id", "value": run_id}]})
    runs = data["runsOrError"]["results"]
    assert [r["runId"] for r in runs] == [launched.run_id], runs
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert tags["metaflow/flow_name"] == FLOW_NAME
    assert tags["metaflow/user"] == "ci"
    assert tags["metaflow/trigger"] == "manual"


# --- helpers --------------------------------------------------------------------------------


def metaflow_run_id(deployment, launched) -> str:
    run_ids = {p.split("/")[1] for p in metaflow_pathspecs(deployment, launched.run_id)}
    assert len(run_ids) == 1, run_ids
    return run_ids.pop()


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
