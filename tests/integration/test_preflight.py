"""The check an op makes before its first task: a metadata service that does not
answer fails it within seconds, naming the setting to fix (the datastore's checks
run in tests/e2e/test_deploy_anywhere.py, against a real S3 server)."""

import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from harness import free_port

from metaflow_dagster.plan import FlowPlan
from metaflow_dagster.runtime.launch import preflight, settings


@pytest.fixture(autouse=True)
def worker_sets_nothing(monkeypatch):
    monkeypatch.setattr(preflight, "WORKER_ENV", {})
    monkeypatch.setattr(settings, "WORKER_ENV", {})


def _plan(url: str) -> FlowPlan:
    return FlowPlan(flow_name="F", flow_file="f.py", job_name="F", start_step="start",
                    end_step="end", steps=[], ops=[], settings={
                        "METAFLOW_DEFAULT_METADATA": "service", "METAFLOW_SERVICE_URL": url})


def test_a_metadata_service_that_does_not_answer_names_its_setting():
    url = "http://127.0.0.1:%d/api" % free_port()  # nothing listens there
    plan = _plan(url)
    assert preflight.metadata_service(plan) == url
    started = time.monotonic()
    with pytest.raises(preflight.Unreachable) as raised:
        preflight.check_service(plan, url)
    assert time.monotonic() - started < 30
    message = str(raised.value)
    assert url in message and "METAFLOW_SERVICE_URL, from the definitions file" in message


def test_a_metadata_service_that_answers_its_ping_passes():
    pinged = []

    class Ping(BaseHTTPRequestHandler):
        def do_GET(self):
            pinged.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Ping)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = "http://127.0.0.1:%d/api" % server.server_address[1]
        preflight.check_service(_plan(url), url)
    finally:
        server.shutdown()
        server.server_close()
    assert pinged == ["/api/ping"]
