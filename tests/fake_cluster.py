"""Stand-ins for what cannot run on this machine: a Kubernetes API server and the
AWS Batch API, as small HTTP servers on 127.0.0.1.

No cluster and no AWS account can be reached from here. Tests of Metaflow's compute
layer point Metaflow's own clients at these servers (a kubeconfig for the
`kubernetes` client, AWS_ENDPOINT_URL_BATCH for boto3), so that everything up to the
wire is real: the launch command, Metaflow's job builders, the clients' serialisation.
The servers record each request (method, path, JSON body) and answer the few calls
Metaflow's launchers make the way the real APIs answer them: a Job or a Batch job is
accepted and then stays pending forever (no container ever runs), or, with
refuse=True, the submission is refused as a cluster without permissions would.
"""

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional


@dataclass
class Request:
    method: str
    path: str
    body: Optional[dict]


@dataclass
class _Api:
    refuse: bool = False
    requests: List[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, method: str, path: str, body: Optional[dict]) -> None:
        with self.lock:
            self.requests.append(Request(method, path, body))

    def bodies(self, method: str, pattern: str) -> List[dict]:
        with self.lock:
            return [r.body for r in self.requests
                    if r.method == method and re.search(pattern, r.path)]


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def _body(self) -> Optional[dict]:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null") if length else None

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        body = self._body()
        self.server.api.record(method, self.path, body)
        status, payload = self.server.answer(method, self.path, body)
        self._reply(status, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: _Api, answer):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api
        self.answer = answer


class _Fake:
    def __init__(self, refuse: bool = False):
        self.api = _Api(refuse=refuse)
        self._server = _Server(self.api, self.answer)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self._server.server_address[1]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, path: str, body: Optional[dict]):
        raise NotImplementedError


class FakeKubernetes(_Fake):
    """The Kubernetes API as far as Metaflow's `kubernetes step` uses it."""

    JOBS = r"^/apis/batch/v1/namespaces/([^/]+)/jobs"

    def __init__(self, refuse: bool = False):
        super().__init__(refuse)
        self.jobs: Dict[str, dict] = {}

    def kubeconfig(self, directory: Path) -> Path:
        path = directory / "kubeconfig.yaml"
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        }))
        return path

    def submitted_jobs(self) -> List[dict]:
        return self.api.bodies("POST", self.JOBS + r"$")

    def job_patches(self) -> List[dict]:
        return self.api.bodies("PATCH", self.JOBS + r"/")

    def answer(self, method, path, body):
        path = path.split("?")[0]
        created = re.match(self.JOBS + r"$", path)
        if method == "POST" and created:
            if self.api.refuse:
                return 403, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                             "reason": "Forbidden", "code": 403,
                             "message": "jobs.batch is forbidden: a test double, no cluster"}
            name = body["metadata"]["generateName"] + uuid.uuid4().hex[:5]
            job = dict(body, metadata=dict(body["metadata"], name=name, uid=str(uuid.uuid4()),
                                           namespace=created.group(1)),
                       status={"active": 1})
            job["spec"] = dict(job["spec"], parallelism=1)
            self.jobs[name] = job
            return 201, job
        named = re.match(self.JOBS + r"/([^/]+)$", path)
        if named and named.group(2) in self.jobs:
            job = self.jobs[named.group(2)]
            if method == "PATCH":
                job["spec"].update((body or {}).get("spec", {}))
            return 200, job
        if method == "GET" and re.match(r"^/api/v1/namespaces/[^/]+/pods$", path):
            return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}
        return 404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                     "reason": "NotFound", "code": 404, "message": "not found: %s" % path}


class FakeBatch(_Fake):
    """The AWS Batch API as far as Metaflow's `batch step` uses it (REST-JSON, /v1/...)."""

    def submitted_jobs(self) -> List[dict]:
        return self.api.bodies("POST", r"^/v1/submitjob$")

    def job_definitions(self) -> List[dict]:
        return self.api.bodies("POST", r"^/v1/registerjobdefinition$")

    def terminations(self) -> List[dict]:
        return self.api.bodies("POST", r"^/v1/terminatejob$")

    def answer(self, method, path, body):
        body = body or {}
        action = path.split("?")[0].rsplit("/", 1)[-1]
        if action == "describejobqueues":
            return 200, {"jobQueues": [{
                "jobQueueName": q, "jobQueueArn": "arn:aws:batch:us-east-1:1:job-queue/" + q,
                "state": "ENABLED", "status": "VALID", "priority": 1,
                "computeEnvironmentOrder": [{"order": 1, "computeEnvironment": "fake-ce"}],
            } for q in body.get("jobQueues", [])]}
        if action == "describecomputeenvironments":
            return 200, {"computeEnvironments": [{
                "computeEnvironmentName": "fake-ce",
                "computeEnvironmentArn": "arn:aws:batch:us-east-1:1:compute-environment/fake-ce",
                "computeResources": {"type": "EC2"}}]}
        if action == "describejobdefinitions":
            return 200, {"jobDefinitions": []}
        if action == "registerjobdefinition":
            name = body["jobDefinitionName"]
            return 200, {"jobDefinitionName": name, "revision": 1,
                         "jobDefinitionArn": "arn:aws:batch:us-east-1:1:job-definition/%s:1"
                         % name}
        if action == "submitjob":
            if self.api.refuse:
                return 400, {"__type": "ClientException",
                             "message": "A test double: no AWS Batch here."}
            return 200, {"jobName": body["jobName"], "jobId": str(uuid.uuid4()),
                         "jobArn": "arn:aws:batch:us-east-1:1:job/x"}
        if action == "describejobs":
            return 200, {"jobs": [{"jobId": j, "jobName": "pending", "status": "RUNNABLE",
                                   "jobQueue": "q", "jobDefinition": "d", "startedAt": 0,
                                   "attempts": [], "container": {}, "parameters": {}}
                                  for j in body.get("jobs", [])]}
        if action == "terminatejob":
            return 200, {}
        return 400, {"__type": "ClientException", "message": "unknown action %s" % action}
