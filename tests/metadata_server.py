"""Metaflow's metadata service for the tests: metaflow-local-service's server (PyPI), on the
address and port given, keeping the run and task ids that clients name.

    python tests/metadata_server.py --host 10.77.0.1 --port 8080 --root /srv/metadata

metaflow-local-service (0.2.0) serves the HTTP API of Netflix's metaflow-service, the one
Metaflow's `ServiceMetadataProvider` calls (flows, runs, steps, tasks, artifacts, metadata,
run and task heartbeats, tag mutation, filtered tasks), keeping its records in the layout of
Metaflow's local metadata under `<root>/.metaflow`. Three gaps matter here. It assigns its
own run and task ids even when the client names them (`POST .../run` with a `run_number`,
`POST .../task` with a `task_id`), while metaflow-service keeps them (as `run_id` and
`task_name`). Tasks started by a scheduler name theirs (`dagster-...` runs, `t-...` tasks, as
Argo's `argo-...`), so here both creations keep a given id. It has no route for one artifact
(`GET .../tasks/<id>/artifacts/<name>[/attempt/<n>]`, what `task["name"]` and
`task.successful` ask for): added here. And Metaflow's heartbeat thread
decodes the answer to a heartbeat twice (`json.loads(response.json())`: a JSON string holding
the object); metaflow-local-service answers the object itself, which stops that thread after
its first beat: here the answer is what Metaflow expects. Its own launcher (`metaflow-local-
service start`) binds 127.0.0.1 and stops after a while without heartbeats; uvicorn serves the
same app here instead, with an access log (one line per request, heartbeats included).
"""

import argparse
import json
from typing import Optional

import uvicorn
from fastapi import HTTPException
from fastapi.responses import JSONResponse
from metaflow_local_service import server, store

_server_assigned_run = store.create_run
_server_assigned_task = store.create_task


def create_run(flow_name: str, body: dict) -> dict:
    run_id = body.get("run_number")
    if run_id is None:
        return _server_assigned_run(flow_name, body)
    store.get_or_create_flow(flow_name, body)
    return _save(store._build_run_record(flow_name, str(run_id), body), flow_name, str(run_id))


def create_task(flow_name: str, run_id: str, step_name: str, body: dict) -> dict:
    task_id = body.get("task_id")
    if task_id is None:
        return _server_assigned_task(flow_name, run_id, step_name, body)
    store.get_or_create_step(flow_name, run_id, step_name, body)
    record = store._build_task_record(flow_name, run_id, step_name, str(task_id), body)
    return _save(record, flow_name, run_id, step_name, str(task_id))


def _save(record: dict, *path: str) -> dict:
    provider = store._local()
    provider._save_meta(provider._create_and_get_metadir(*path), {"_self": record},
                        allow_overwrite=True)
    return record


def artifact_routes(app) -> None:
    """One artifact of a task, at an attempt or at its latest attempt."""
    task = "/flows/{flow_name}/runs/{run_id}/steps/{step_name}/tasks/{task_id}"

    @app.get(task + "/artifacts/{name}")
    @app.get(task + "/artifacts/{name}/attempt/{attempt}")
    async def get_artifact(flow_name: str, run_id: str, step_name: str, task_id: str,
                           name: str, attempt: Optional[int] = None) -> JSONResponse:
        found = [a for a in store.get_artifacts(flow_name, run_id, step_name, task_id, attempt)
                 if a.get("name") == name]
        if not found:
            raise HTTPException(status_code=404, detail="Artifact not found")
        return JSONResponse(max(found, key=lambda a: a.get("attempt_id", 0)))


def heartbeats_as_metaflow_service(app) -> None:
    """The two heartbeat routes, answering as Metaflow's heartbeat expects."""
    app.router.routes = [route for route in app.router.routes
                         if not getattr(route, "path", "").endswith("/heartbeat")]
    answer = json.dumps({"wait_time_in_seconds": server._HEARTBEAT_INTERVAL_SECONDS})

    @app.post("/flows/{flow_name}/runs/{run_id}/heartbeat")
    async def run_heartbeat(flow_name: str, run_id: str) -> JSONResponse:
        return JSONResponse(answer)

    @app.post("/flows/{flow_name}/runs/{run_id}/steps/{step_name}/tasks/{task_id}/heartbeat")
    async def task_heartbeat(flow_name: str, run_id: str, step_name: str,
                             task_id: str) -> JSONResponse:
        return JSONResponse(answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True, help="the folder that holds .metaflow")
    args = parser.parse_args()
    store.create_run, store.create_task = create_run, create_task
    app = server.create_app(args.root)
    artifact_routes(app)
    heartbeats_as_metaflow_service(app)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=True)


if __name__ == "__main__":
    main()
