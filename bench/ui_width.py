"""The Dagster UI's run page of a wide foreach: how long it takes to show, in headless Chromium.

    python bench/ui_width.py                       # a foreach of 1,000, run first
    python bench/ui_width.py --width 200 --loads 3

Runs foreach.py (bench/flows/) at `--width` with `dagster job execute` on a fresh SQLite
DAGSTER_HOME (not timed), starts `dagster-webserver` on it (127.0.0.1, stopped by its pid), then
opens the run's page (/runs/<run id>) `--loads` times, each in a fresh headless Chromium
(Debian's /usr/bin/chromium, driven by selenium as tests/browser/ui.py does), and measures from
the request:
- first render: the page shows the run's id (its header);
- timeline: the run's chart shows the mapped steps (a `body[...]` box) and the join;
- settled: the page's status tag reads Success (the whole event log has been read).
Also the size of the run's event log as the page's GraphQL query returns it. A screenshot of
the last load goes to docs/screenshots/ui_width_<width>.png.
"""

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

import services  # noqa: E402
import ui  # noqa: E402

JOB = "ForeachFlow"
TIMEOUT = 600


def run_foreach(workdir: Path, env: dict, width: int) -> str:
    shutil.copy(HERE / "flows" / "foreach.py", workdir)
    (workdir / ".metaflow").mkdir()  # the run's own datastore, whatever is above workdir
    subprocess.run([sys.executable, "foreach.py", "dagster", "create", "job.py"], cwd=workdir,
                   env=env, check=True, capture_output=True)
    config = workdir / "run_config.yaml"
    config.write_text(json.dumps({"ops": {"start": {"config": {"width": width}}}}))
    started = time.monotonic()
    with open(workdir / "run.log", "wb") as log:
        subprocess.run(["dagster", "job", "execute", "-f", "job.py", "-j", JOB, "-c",
                        str(config)], cwd=workdir, env=env, check=True, stdout=log,
                       stderr=subprocess.STDOUT)
    print("foreach %d ran in %.0f s (not part of the figures)" % (
        width, time.monotonic() - started), flush=True)
    home = Path(env["DAGSTER_HOME"])
    with sqlite3.connect(str(home / "history" / "runs.db")) as conn:
        return conn.execute("select run_id from runs order by id desc limit 1").fetchone()[0]


def start_webserver(workdir: Path, env: dict):
    port = services.free_port()
    log = open(workdir / "webserver.log", "wb")
    proc = subprocess.Popen(["dagster-webserver", "-h", "127.0.0.1", "-p", str(port), "-f",
                             "job.py"], cwd=workdir, env=env, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    url = "http://127.0.0.1:%d" % port

    def ready():
        try:
            return services.graphql(url, "{ version }", timeout=5)
        except OSError:
            return None

    ui.wait_until(ready, 180, interval=1, message="dagster-webserver did not start")
    return proc, url


def page_has_chart(driver) -> bool:
    return bool(driver.execute_script(
        "var t = document.body ? document.body.innerText : '';"
        " return /body\\[/.test(t) && /\\bjoin\\b/.test(t);"))


def load_once(url: str, run_id: str, shot: Path = None) -> dict:
    driver = ui.browser(1600, 1000)
    try:
        started = time.monotonic()
        driver.get("%s/runs/%s" % (url, run_id))
        ui.wait_until(lambda: run_id[:8] in ui.page_text(driver), TIMEOUT, interval=0.1,
                      message="the run page never showed the run id")
        first = time.monotonic() - started
        ui.wait_until(lambda: page_has_chart(driver), TIMEOUT, interval=0.1,
                      message="the run's chart never showed the mapped steps")
        chart = time.monotonic() - started
        ui.wait_until(lambda: ui.run_status_tag(driver).upper() == "SUCCESS", TIMEOUT,
                      interval=0.2, message="the status tag never read Success")
        settled = time.monotonic() - started
        if shot is not None:
            time.sleep(1)
            ui.screenshot(driver, shot)
        return {"first_render": first, "timeline": chart, "settled": settled}
    finally:
        driver.quit()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--screenshot", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    missing = ui.browser_available()
    if missing:
        sys.exit(missing)
    workdir = Path(tempfile.mkdtemp(prefix="mfd-ui-width-"))
    home = workdir / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    env = dict(os.environ, DAGSTER_HOME=str(home),
               METAFLOW_USER=os.environ.get("METAFLOW_USER", "bench"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    proc = None
    try:
        run_id = run_foreach(workdir, env, args.width)
        proc, url = start_webserver(workdir, env)
        with sqlite3.connect(str(home / "history" / "runs" / ("%s.db" % run_id))) as conn:
            events = conn.execute("select count(*) from event_logs").fetchone()[0]
        print("run %s: %d event-log rows" % (run_id, events), flush=True)
        loads = []
        for i in range(args.loads):
            shot = Path(args.screenshot) / ("ui_width_%d.png" % args.width) \
                if i == args.loads - 1 else None
            loads.append(load_once(url, run_id, shot))
            print("load %d: first render %.1f s, timeline %.1f s, settled %.1f s (load %.1f)"
                  % (i + 1, loads[-1]["first_render"], loads[-1]["timeline"],
                     loads[-1]["settled"], os.getloadavg()[0]), flush=True)
        print("\nforeach %d, run page, %d loads, median (min-max) s:" % (args.width, args.loads))
        for key in ("first_render", "timeline", "settled"):
            values = [load[key] for load in loads]
            print("  %-12s %.1f (%.1f-%.1f)" % (key, statistics.median(values), min(values),
                                                 max(values)))
        print("webserver RSS at the end: %.0f MB" % services.rss_mb(
            services.process_tree(proc.pid)))
    finally:
        if proc is not None:
            services.stop_process(proc, timeout=20, target="group")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
