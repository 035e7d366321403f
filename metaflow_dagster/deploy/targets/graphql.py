"""A running Dagster deployment (`dagster dev`, or a webserver and a daemon) as a
target, through its GraphQL API. The webserver queues the run; its daemon
launches it."""

from typing import Dict, List, Optional, Tuple
from urllib.parse import urlparse

from ... import naming
from ..definitions import DefinitionsFile
from ..errors import CommandError
from ..runs import RunState, StepState, failure_details

RUN_FIELDS = "runId status jobName rootRunId parentRunId tags { key value }"
RUN_STATE_QUERY = """
query RunState($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { %s stepStats { stepKey status startTime attempts { startTime } } }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
""" % RUN_FIELDS
DAEMON_QUERY = """
{
  instance {
    runQueuingSupported
    daemonHealth { daemonStatus(daemonType: "QUEUED_RUN_COORDINATOR") { healthy } }
  }
}
"""
# The failure events of a run's steps: their error text and our metadata.
FAILURES_QUERY = """
query Failures($runId: ID!, $after: String) {
  logsForRun(runId: $runId, afterCursor: $after) {
    __typename
    ... on EventConnection {
      cursor hasMore
      events {
        __typename
        ... on ExecutionStepFailureEvent {
          stepKey
          error { message }
          failureMetadata {
            description
            metadataEntries {
              label
              ... on TextMetadataEntry { text }
              ... on IntMetadataEntry { intValue }
            }
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""
FLOW_RUNS_QUERY = """
query FlowRuns($filter: RunsFilter, $limit: Int) {
  runsOrError(filter: $filter, limit: $limit) {
    __typename
    ... on Runs { results { %s } }
    ... on InvalidPipelineRunsFilterError { message }
    ... on PythonError { message }
  }
}
""" % RUN_FIELDS

RUN_EVENTS_QUERY = """
query RunEvents($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor) {
    __typename
    ... on EventConnection {
      cursor
      events {
        __typename
        ... on MessageEvent { timestamp level stepKey eventType message }
        ... on ErrorEvent { error { message } }
      }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

# The files of a run's captured logs (deploy/task_output.py).
LOG_CAPTURES_QUERY = """
query LogCaptures($runId: ID!, $afterCursor: String) {
  logsForRun(runId: $runId, afterCursor: $afterCursor) {
    __typename
    ... on EventConnection {
      cursor
      events { __typename ... on LogsCapturedEvent { fileKey stepKeys } }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""
CAPTURED_LOGS_FIELD = ("c%d: capturedLogs(logKey: $key%d, cursor: $cursor%d) "
                       "{ stdout stderr cursor }")


# Seconds to wait for the webserver: an unreachable one fails the command quickly.
REQUEST_TIMEOUT_SECONDS = 30


class GraphQLTarget:
    """Starts and terminates runs with dagster_graphql's public client; reads run
    and step states (which that client does not offer) with its GraphQL library, gql."""

    def __init__(self, url: str):
        from dagster_graphql import DagsterGraphQLClient
        from gql import Client
        from gql.transport.requests import RequestsHTTPTransport

        parsed = urlparse(url if "://" in url else "http://" + url)
        if not parsed.hostname:
            raise CommandError("Not a URL of a Dagster webserver: %r" % url)
        self.url = url
        self.ui_base = "%s://%s%s" % (parsed.scheme, parsed.netloc, parsed.path.rstrip("/"))
        self.client = DagsterGraphQLClient(
            parsed.hostname,
            port_number=parsed.port,
            use_https=parsed.scheme == "https",
            path_prefix=parsed.path.rstrip("/"),
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        self.graphql_url = "%s/graphql" % self.ui_base
        self._queries = Client(transport=RequestsHTTPTransport(
            url=self.graphql_url, use_json=True, timeout=REQUEST_TIMEOUT_SECONDS))

    def describe(self) -> str:
        return "the Dagster webserver at %s" % self.ui_base

    def query(self, query: str, variables: dict) -> dict:
        from gql import gql

        try:
            return self._queries.execute(gql(query), variable_values=variables)
        except Exception as error:  # gql raises transport, connection and query errors alike
            if _not_answered(error):
                raise self.unanswered(error) from None
            raise CommandError("%s answered %s with an error: %s" % (
                self.describe(), self.graphql_url, error)) from None

    def unanswered(self, error: Exception) -> CommandError:
        """The one message for a request the webserver did not answer (nothing listens
        at the URL, the connection broke, a timeout), whichever client sent it."""
        return CommandError("%s did not answer %s: %s. Check --dagster-url (or $%s) and "
                            "that the webserver is running." % (
                                self.describe(), self.graphql_url, str(error).rstrip("."),
                                naming.DAGSTER_URL_ENV))

    def _client_error(self, error: Exception, doing: str) -> CommandError:
        """What dagster_graphql's client raised, said once: the webserver did not
        answer, or it answered `doing` with an error."""
        cause = error.__cause__
        if _not_answered(cause):
            return self.unanswered(cause)
        detail = error.body if getattr(error, "body", None) else ""
        return CommandError(("%s could not %s: %s %s" % (
            self.describe(), doing, error, detail)).strip())

    def prepare_launch(self, directory: str) -> None:
        pass  # the webserver's run launcher starts the run's process

    def launch(self, job: DefinitionsFile, config: dict, tags: Dict[str, str]) -> str:
        from dagster_graphql import DagsterGraphQLClientError

        try:
            return self.client.submit_job_execution(job.job_name, run_config=config, tags=tags)
        except DagsterGraphQLClientError as error:
            raise self._client_error(error, "start job %s" % job.job_name) from None

    def terminate(self, run_id: str) -> None:
        """Ask the webserver to terminate the run (as the UI's Terminate button)."""
        from dagster_graphql import DagsterGraphQLClientError

        try:
            self.client.terminate_run(run_id)
        except DagsterGraphQLClientError as error:
            raise self._client_error(error, "terminate run %s" % run_id) from None

    def queue_warning(self) -> Optional[str]:
        """Why a submitted run may stay QUEUED: the deployment queues runs and no
        daemon is there to dequeue them (a webserver alone)."""
        data = self.query(DAEMON_QUERY, {})["instance"]
        status = data["daemonHealth"]["daemonStatus"]
        if data["runQueuingSupported"] and not status["healthy"]:
            return ("%s queues runs, and its daemon is not running: the run stays QUEUED "
                    "until a daemon starts (`dagster-daemon run`, or use `dagster dev`)."
                    % self.describe())
        return None

    def run_state(self, run_id: str) -> Optional[RunState]:
        data = self.query(RUN_STATE_QUERY, {"runId": run_id})["runOrError"]
        if data["__typename"] == "RunNotFoundError":
            return None
        if data["__typename"] != "Run":
            raise CommandError(data.get("message", data["__typename"]))
        failures = {}
        if any(s["status"] == "FAILURE" for s in data["stepStats"]):
            failures = self._step_failures(run_id)
        steps = [StepState(s["stepKey"], s["status"] or "UNKNOWN", s["startTime"],
                           len(s["attempts"]) or 1, **failures.get(s["stepKey"], {}))
                 for s in data["stepStats"]]
        return _run_from_graphql(data, steps)

    def _step_failures(self, run_id: str) -> Dict[str, dict]:
        """Step key -> failure_details of its (last) failure event."""
        failures, cursor = {}, None
        while True:
            data = self.query(FAILURES_QUERY, {"runId": run_id, "after": cursor})["logsForRun"]
            if data["__typename"] != "EventConnection":
                raise CommandError(data.get("message", data["__typename"]))
            for event in data["events"]:
                if event["__typename"] != "ExecutionStepFailureEvent":
                    continue
                user = event.get("failureMetadata") or {}
                metadata = {e["label"]: e.get("text", e.get("intValue"))
                            for e in user.get("metadataEntries") or []}
                description = user.get("description") or (event.get("error") or {}).get(
                    "message")
                failures[event["stepKey"]] = failure_details(description, metadata)
            cursor = data["cursor"]
            if not data["hasMore"]:
                return failures

    def flow_runs(self, flow_name: str, limit: int,
                  job_name: Optional[str] = None) -> List[RunState]:
        variables = {"filter": {"tags": [{"key": naming.TAG_FLOW_NAME, "value": flow_name}]},
                     "limit": limit}
        if job_name:
            variables["filter"]["pipelineName"] = job_name
        data = self.query(FLOW_RUNS_QUERY, variables)["runsOrError"]
        if data["__typename"] != "Runs":
            raise CommandError(data.get("message", data["__typename"]))
        return [_run_from_graphql(r) for r in data["results"]]

    # --- suspend, failures and the event log (deploy/run_commands.py) ---

    def tag_run(self, run_id: str, tags: Dict[str, str]) -> None:
        raise CommandError(
            "Suspending or unsuspending a run is not supported through the Dagster "
            "webserver's GraphQL API (it has no mutation for run tags): run the command "
            "without --dagster-url (nor $%s), with DAGSTER_HOME set to the webserver's "
            "Dagster home." % naming.DAGSTER_URL_ENV)

    def _events(self, run_id: str, cursor: Optional[str]):
        data = self.query(RUN_EVENTS_QUERY, {"runId": run_id, "afterCursor": cursor})
        data = data["logsForRun"]
        if data["__typename"] != "EventConnection":
            raise CommandError(data.get("message", data["__typename"]))
        return data["events"], data["cursor"]

    def failure_messages(self, run_id: str) -> List[str]:
        """What the failed steps of the run said."""
        events, _ = self._events(run_id, None)
        return [e["error"]["message"] for e in events
                if e["__typename"] == "ExecutionStepFailureEvent" and e.get("error")]

    def run_events(self, run_id: str, cursor: Optional[str] = None):
        """The run's event log after `cursor`: ([(timestamp, level, step key, event
        type, message)], the next cursor)."""
        events, cursor = self._events(run_id, cursor)
        return [(float(e["timestamp"]) / 1000, e["level"], e["stepKey"], e["eventType"],
                 e["message"]) for e in events if "message" in e], cursor

    # --- the tasks' output (deploy/task_output.py) ---

    def log_captures(self, run_id: str, cursor: Optional[str] = None):
        """The run's captured-log files announced after `cursor`: ([(step keys, file
        key)], the next cursor)."""
        data = self.query(LOG_CAPTURES_QUERY, {"runId": run_id, "afterCursor": cursor})
        data = data["logsForRun"]
        if data["__typename"] != "EventConnection":
            raise CommandError(data.get("message", data["__typename"]))
        return [(e["stepKeys"] or [], e["fileKey"]) for e in data["events"]
                if e["__typename"] == "LogsCapturedEvent"], data["cursor"]

    def captured_logs(self, reads: List[Tuple[List[str], Optional[str]]]
                      ) -> List[Tuple[str, str, Optional[str]]]:
        """For each (log key, cursor): (stdout, stderr, next cursor) written since;
        one request for all."""
        declared = ", ".join("$key%d: [String!]!, $cursor%d: String" % (i, i)
                             for i in range(len(reads)))
        fields = "\n  ".join(CAPTURED_LOGS_FIELD % (i, i, i) for i in range(len(reads)))
        variables = {}
        for i, (key, cursor) in enumerate(reads):
            variables.update({"key%d" % i: key, "cursor%d" % i: cursor})
        data = self.query("query CapturedLogs(%s) {\n  %s\n}" % (declared, fields), variables)
        return [(data["c%d" % i]["stdout"] or "", data["c%d" % i]["stderr"] or "",
                 data["c%d" % i]["cursor"]) for i in range(len(reads))]


def _not_answered(error: Optional[BaseException]) -> bool:
    """Did the request fail before the webserver answered it (no GraphQL error)?"""
    import requests
    from gql.transport.exceptions import TransportError, TransportQueryError

    if isinstance(error, TransportQueryError):
        return False
    return isinstance(error, (TransportError, requests.RequestException, OSError))


def _run_from_graphql(data: dict, steps=()) -> RunState:
    return RunState(data["runId"], data["status"], data["jobName"], data["rootRunId"],
                    data["parentRunId"], {t["key"]: t["value"] for t in data["tags"]}, list(steps))
