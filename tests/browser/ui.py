"""Helpers for driving the real Dagster UI in a headless browser.

- The webserver they drive is harness.DagsterDev's `dg dev -f DEFS`.
- `browser` makes a headless Selenium Chrome on Debian's chromium + chromedriver.
- `wait_text`, `wait_css`, `click_text`, `screenshot`, `set_codemirror`: small page helpers.

Nothing here knows about metaflow-dagster's package layout: it only talks HTTP/GraphQL to
the webserver.
"""

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional
from urllib.parse import quote

from harness import DagsterDev

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.5,
               message: str = "") -> object:
    """Poll predicate until it returns something truthy; that value. AssertionError
    (with message) on timeout. A predicate that trips over a page element React replaced
    meanwhile (StaleElementReferenceException) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception as error:
            if type(error).__name__ != "StaleElementReferenceException":
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s: %s" % (timeout, message))
        time.sleep(interval)


def browser_available() -> Optional[str]:
    """None when the headless browser can run here, else why not (for pytest.skip)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return "%s is missing (apt-get install --no-install-recommends chromium " \
                   "chromium-driver)" % path
    return None


# --- the browser -------------------------------------------------------------------------------

def browser(width: int = 1600, height: int = 1000):
    """A headless Chrome webdriver on Debian's chromium and chromedriver, with a fresh
    profile (removed on quit). Use it as a context manager or call quit()."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ui-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--user-data-dir=%s" % profile, "--window-size=%d,%d" % (width, height)):
        options.add_argument(flag)
    service = Service(executable_path=CHROMEDRIVER, log_output=subprocess.DEVNULL)
    driver = webdriver.Chrome(service=service, options=options)
    # --window-size is the outer size: grow the window so the page itself (what
    # screenshots show) is width x height.
    inner_w, inner_h, outer_w, outer_h = driver.execute_script(
        "return [innerWidth, innerHeight, outerWidth, outerHeight]")
    driver.set_window_size(width + outer_w - inner_w, height + outer_h - inner_h)

    quit_ = driver.quit

    def quit_and_clean():
        try:
            quit_()
        finally:
            import shutil
            shutil.rmtree(profile, ignore_errors=True)

    driver.quit = quit_and_clean
    return driver


def page_text(driver) -> str:
    return driver.execute_script("return document.body ? document.body.innerText : ''") or ""


def wait_text(driver, text: str, timeout: float = 30) -> None:
    """Until `text` shows in the page's visible text."""
    wait_until(lambda: text in page_text(driver), timeout, interval=0.5,
               message="%r not on %s" % (text, driver.current_url))


def wait_any_text(driver, texts, timeout: float = 30) -> str:
    """Until one of `texts` shows in the page's visible text; which one."""
    def found():
        body = page_text(driver)
        return next((t for t in texts if t in body), None)

    return wait_until(found, timeout, interval=0.5,
                      message="none of %r on %s" % (list(texts), driver.current_url))


def wait_css(driver, selector: str, timeout: float = 30):
    """Until an element matching the CSS selector is displayed; the element."""
    from selenium.webdriver.common.by import By

    def shown():
        return next((e for e in driver.find_elements(By.CSS_SELECTOR, selector)
                     if e.is_displayed()), None)

    return wait_until(shown, timeout, interval=0.5,
                      message="no %s on %s" % (selector, driver.current_url))


def find_by_text(driver, text: str, tags=("button", "a", "span", "div")):
    """Displayed elements whose own visible text is exactly `text`, innermost tags first
    in `tags` order (a button before the span inside it)."""
    from selenium.webdriver.common.by import By

    found = []
    for tag in tags:
        xpath = "//%s[normalize-space(.)=%s]" % (tag, _xpath_literal(text))
        found += [e for e in driver.find_elements(By.XPATH, xpath) if e.is_displayed()]
    return found


def click_text(driver, text: str, timeout: float = 30, tags=("button", "a", "span", "div")):
    """Click the first displayed, enabled element whose text is exactly `text` (found
    again if the page re-renders it under our feet)."""
    def clicked():
        for element in find_by_text(driver, text, tags):
            if element.is_enabled():
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'})",
                                      element)
                element.click()
                return True
        return False

    wait_until(clicked, timeout, interval=0.5,
               message="nothing to click named %r on %s" % (text, driver.current_url))


def _xpath_literal(text: str) -> str:
    if "'" not in text:
        return "'%s'" % text
    if '"' not in text:
        return '"%s"' % text
    return "concat(%s)" % ", \"'\", ".join("'%s'" % p for p in text.split("'"))


def set_codemirror(driver, text: str, selector: str = ".CodeMirror") -> str:
    """Replace the content of a CodeMirror 5 editor through its own API (typing into it
    gets auto-indented); the editor's content afterwards."""
    editor = wait_css(driver, selector)
    return driver.execute_script(
        "var cm = arguments[0].CodeMirror; cm.setValue(arguments[1]); cm.focus();"
        " return cm.getValue();", editor, text)


def get_codemirror(driver, selector: str = ".CodeMirror") -> str:
    editor = wait_css(driver, selector)
    return driver.execute_script("return arguments[0].CodeMirror.getValue();", editor)


def screenshot(driver, path) -> Path:
    """Save a PNG of the viewport at path (its directory is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path)), "screenshot failed: %s" % path
    return path


# --- Dagster UI pages (Dagster 1.13) -----------------------------------------------------------
# One helper per page. Each leaves the browser on its page, loaded, and returns what a test
# needs from it. Navigation goes through the UI (links and tabs) where a user would click.

TERMINAL_RUN_STATUSES = ("SUCCESS", "FAILURE", "CANCELED")


def open_job(driver, base_url: str, job_name: str, op_names=()) -> str:
    """The job's overview (its op graph), reached from the Jobs list; its URL
    (/locations/<location>/jobs/<job>). Waits until every name in op_names is drawn."""
    driver.get(base_url + "/jobs")
    wait_text(driver, job_name)
    click_text(driver, job_name, tags=("a",))
    wait_until(lambda: "/jobs/%s" % job_name in driver.current_url, 30,
               message="job page of %s did not open: %s" % (job_name, driver.current_url))
    wait_text(driver, "Launchpad")
    for name in op_names:
        wait_text(driver, name)
    return driver.current_url.rstrip("/")


def open_launchpad(driver) -> str:
    """From a job page, its Launchpad tab (/locations/<location>/jobs/<job>/playground);
    the config editor's initial YAML (the scaffolded defaults)."""
    click_text(driver, "Launchpad", tags=("a",))
    wait_until(lambda: driver.current_url.rstrip("/").endswith("/playground"), 30,
               message="launchpad did not open: %s" % driver.current_url)
    wait_css(driver, ".CodeMirror")
    wait_until(lambda: get_codemirror(driver).strip(), 30, message="empty config editor")
    return get_codemirror(driver)


def set_launchpad_config(driver, config_yaml: str, settle: float = 1.5,
                         timeout: float = 30) -> None:
    """Replace the launchpad's run config and wait until the UI has validated it: the
    errors panel says "No errors" and 'Launch Run' is enabled, both for `settle` seconds
    in a row (after a change the panel shows the previous verdict for up to ~1 s)."""
    assert set_codemirror(driver, config_yaml) == config_yaml
    since = [None]

    def valid_and_settled():
        buttons = find_by_text(driver, "Launch Run", tags=("button",))
        ok = "No errors" in page_text(driver) and any(b.is_enabled() for b in buttons)
        if not ok:
            since[0] = None
            return False
        since[0] = since[0] or time.monotonic()
        return time.monotonic() - since[0] >= settle

    wait_until(valid_and_settled, timeout, interval=0.25,
               message="launchpad config not accepted:\n" + config_yaml
               + "\npage says:\n" + page_text(driver).split("ERRORS")[-1][:1500])


def launch_run(driver, timeout: float = 60) -> str:
    """Click 'Launch Run' on the launchpad; the UI then opens the run's page
    (/runs/<run id>). The Dagster run id."""
    before = driver.current_url
    click_text(driver, "Launch Run", tags=("button",))
    match = wait_until(
        lambda: driver.current_url != before and re.search(r"/runs/([0-9a-f-]{36})",
                                                           driver.current_url),
        timeout, message="no run page after Launch Run (still %s): %s" % (
            driver.current_url, page_text(driver)[-2000:]))
    return match.group(1)


def open_run(driver, base_url: str, run_id: str) -> None:
    """The run's page (/runs/<run id>): header, Gantt chart and event log."""
    driver.get("%s/runs/%s" % (base_url, run_id))
    wait_text(driver, run_id[:8])


def open_step_events(driver, base_url: str, run_id: str, step_key: str) -> None:
    """The run's page with its event log showing one step's events, as after clicking
    the step in the run's chart (/runs/<run id>?selection=<step>&logs=step:<step>)."""
    driver.get("%s/runs/%s?selection=%s&logs=%s" % (
        base_url, run_id, quote(step_key), quote("step:%s" % step_key)))
    wait_text(driver, run_id[:8])
    wait_text(driver, "STEP_SUCCESS")


def open_full_message(driver, event_type: str):
    """Click 'View full message' on the event log's row of `event_type` (a row whose
    metadata does not fit shows only its top); the dialog showing the whole event."""
    from selenium.webdriver.common.by import By

    xpath = ("//*[normalize-space(.)=%s]/ancestor::*[.//button[normalize-space(.)="
             "'View full message']][1]//button[normalize-space(.)='View full message']"
             % _xpath_literal(event_type))
    button = wait_until(lambda: next((b for b in driver.find_elements(By.XPATH, xpath)
                                      if b.is_displayed()), None), 30,
                        message="no 'View full message' on a %s row" % event_type)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    button.click()
    dialog = wait_css(driver, "[role=dialog]")
    wait_until(lambda: event_type in dialog.text, 10,
               message="the dialog is not the %s event: %s" % (event_type, dialog.text))
    return dialog


def metadata_row(scope, label: str):
    """The displayed metadata row (a table row of an event) whose label is `label`,
    within `scope` (the driver, or an element such as a dialog)."""
    from selenium.webdriver.common.by import By

    xpath = ".//tr[td[1][normalize-space(.)=%s]]" % _xpath_literal(label)
    return wait_until(lambda: next((e for e in scope.find_elements(By.XPATH, xpath)
                                    if e.is_displayed()), None), 30,
                      message="no metadata row %r" % label)


def _dialogs(driver) -> list:
    from selenium.webdriver.common.by import By

    return [e for e in driver.find_elements(By.CSS_SELECTOR, "[role=dialog]")
            if e.is_displayed()]


def show_markdown(driver, scope, label: str) -> str:
    """Click [Show Markdown] in the metadata row `label` (within `scope`); the text of
    the dialog it opens, which stays open: close it with close_dialog."""
    from selenium.webdriver.common.by import By

    row = metadata_row(scope, label)
    before = len(_dialogs(driver))
    next(e for e in row.find_elements(By.XPATH, ".//*[self::button or self::a]")
         if "Show Markdown" in e.text).click()
    wait_until(lambda: len(_dialogs(driver)) > before, 10, message="no Markdown dialog")
    dialog = _dialogs(driver)[-1]
    wait_until(lambda: dialog.text.strip(), 10, message="empty Markdown dialog")
    return dialog.text


def close_dialog(driver) -> None:
    """Close the topmost dialog (Escape, as a user would)."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    before = len(_dialogs(driver))
    ActionChains(driver).send_keys(Keys.ESCAPE).perform()
    wait_until(lambda: len(_dialogs(driver)) < before, 10, message="the dialog stayed open")


def follow_link(driver, link) -> str:
    """Click a link that opens in a new tab (target=_blank) and switch to that tab; the
    tab it came from (switch back with driver.switch_to.window)."""
    origin = driver.current_window_handle
    before = set(driver.window_handles)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()
    new = wait_until(lambda: set(driver.window_handles) - before, 30,
                     message="the link opened no new tab")
    driver.switch_to.window(new.pop())
    return origin


def open_asset(driver, base_url: str, asset_path, timeout: float = 30) -> str:
    """An asset's page, reached from the Catalog (/assets) by clicking its name; its URL
    (/assets/<path>)."""
    driver.get(base_url + "/assets")
    wait_text(driver, " / ".join(asset_path), timeout)  # how the Catalog lists a key
    wanted = "/assets/" + "/".join(asset_path)
    link = wait_css(driver, "a[href$='%s']" % wanted, timeout)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()
    wait_until(lambda: wanted in driver.current_url, timeout,
               message="asset page %s did not open: %s" % (wanted, driver.current_url))
    wait_text(driver, "Latest materialization", timeout)
    return driver.current_url


def toggle_run_chart(driver) -> None:
    """On a run page, the chart toolbar's expand / collapse button: the run's chart
    takes the whole page (or gives half of it back to the event log)."""
    from selenium.webdriver.common.by import By

    icons = "[aria-label=expand_arrows], [aria-label=collapse_arrows]"
    button = wait_until(lambda: next(
        (b for b in driver.find_elements(By.TAG_NAME, "button")
         if b.is_displayed() and b.find_elements(By.CSS_SELECTOR, icons)), None), 30,
        message="no expand button on %s" % driver.current_url)
    button.click()
    time.sleep(1)  # the panels animate


def runs_with_tag(driver, base_url: str, key: str, value: str,
                  timeout: float = 30) -> List[str]:
    """The Runs list filtered by a tag, as its "Add tag to filter" (a run's tag menu)
    leaves it (/runs?q[0]=tag:<key>=<value>); the ids (first 8 characters) it lists."""
    from selenium.webdriver.common.by import By

    driver.get("%s/runs?%s=%s" % (base_url, quote("q[0]"), quote("tag:%s=%s" % (key, value))))
    wait_text(driver, "Tag is", timeout)
    wait_until(lambda: "No runs" in page_text(driver) or driver.find_elements(
        By.CSS_SELECTOR, "a[href*='/runs/']"), timeout, message="the Runs list did not load")
    time.sleep(1)  # rows still arriving
    ids = set()
    for link in driver.find_elements(By.CSS_SELECTOR, "a[href*='/runs/']"):
        match = re.search(r"/runs/([0-9a-f]{8})[0-9a-f-]*$", link.get_attribute("href") or "")
        if match and link.is_displayed():
            ids.add(match.group(1))
    return sorted(ids)


def run_page_status(driver) -> Optional[str]:
    """The run's status as the run page shows it: its document title ends with
    "[STATUS]" (e.g. "Runs | UIFlow | 1a2b3c4d [SUCCESS]")."""
    match = re.search(r"\[([A-Z_]+)\]\s*$", driver.title or "")
    return match.group(1) if match else None


def run_status_tag(driver) -> str:
    """The text of the status tag in the run page's header: 'Queued', 'Starting',
    'Started', then 'Success', 'Failure' or 'Canceled'. It is the tag just before the
    'Run of <job>' tag; read in one script, as the header re-renders while the run goes."""
    return driver.execute_script(
        "var tags = Array.from(document.querySelectorAll('.BaseTag'));"
        " var i = tags.findIndex(function (t) { return /^Run of/.test(t.innerText.trim()); });"
        " return i > 0 ? tags[i - 1].innerText.trim() : '';")


def wait_run_finished(driver, timeout: float = 180) -> str:
    """On a run page, until the run has ended; its status (SUCCESS, FAILURE, CANCELED).
    The page title and the header's status tag must agree: once, reading the title twice
    in a row gave SUCCESS then STARTED."""
    def finished():
        status = run_page_status(driver)
        if status in TERMINAL_RUN_STATUSES and run_status_tag(driver).upper() == status:
            return status
        return None

    try:
        return wait_until(finished, timeout, interval=1)
    except AssertionError:
        # What the page shows at the end, not when the wait began.
        raise AssertionError("run not finished after %.0f s: page title %r, header tag %r"
                             % (timeout, driver.title, run_status_tag(driver))) from None


# --- the same facts through GraphQL ------------------------------------------------------------

def run_info(dev: DagsterDev, run_id: str) -> dict:
    """A run as the webserver knows it: status, jobName, runConfigYaml, tags (key/value)."""
    data = dev.graphql("query($id: ID!) { runOrError(runId: $id) { __typename "
                       "... on Run { status jobName runConfigYaml tags { key value } } } }",
                       {"id": run_id})
    assert data["runOrError"]["__typename"] == "Run", data
    return data["runOrError"]


def run_status(dev: DagsterDev, run_id: str) -> str:
    return run_info(dev, run_id)["status"]


def run_events(dev: DagsterDev, run_id: str) -> List[dict]:
    """Every event of a run: __typename, stepKey, message, and metadataEntries
    (label plus text/url/path/json value) where the event has them."""
    query = """
    query($id: ID!, $after: String) {
      logsForRun(runId: $id, afterCursor: $after) {
        __typename
        ... on EventConnection {
          cursor hasMore
          events {
            __typename
            ... on MessageEvent { message stepKey }
            ... on DisplayableEvent {
              metadataEntries {
                label
                ... on TextMetadataEntry { text }
                ... on UrlMetadataEntry { url }
                ... on PathMetadataEntry { path }
                ... on JsonMetadataEntry { jsonString }
              }
            }
          }
        }
      }
    }"""
    events, cursor = [], None
    while True:
        data = dev.graphql(query, {"id": run_id, "after": cursor})["logsForRun"]
        assert data["__typename"] == "EventConnection", data
        events += data["events"]
        cursor = data["cursor"]
        if not data["hasMore"]:
            return events
