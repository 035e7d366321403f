"""foreach20 (bench/flows/foreach.py) on Dagster's distributed deployment, next to the same job
on the embedded default, and what the deployment's servers cost to start and keep.

    python bench/distributed.py              # 1 run of each
    python bench/distributed.py --runs 3

Variants, each `python flow.py dagster trigger` to SUCCESS (wall time from the command):
- embedded: the default executor on a SQLite DAGSTER_HOME, the local datastore;
- embedded-s3: the same, with Metaflow's S3 datastore on the local S3 server (moto), which is
  what the distributed run pays for its datastore;
- celery: `--executor celery` on PostgreSQL, Redis, two Celery workers (concurrency 2, started
  in another directory), the S3 datastore, a webserver and a daemon
  (`trigger --dagster-url`).
The servers are those of the tests (tests/services.py, tests/deployment.py), on 127.0.0.1.
"""

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import deployment  # noqa: E402
import services  # noqa: E402

PYTHON = sys.executable
DAGSTER = str(Path(sys.executable).parent / "dagster")
FLOW = "foreach.py"


def run(argv, cwd, env, timeout=600):
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(argv), proc.stdout + proc.stderr))
    return proc.stdout + proc.stderr


def run_id_of(output):
    return next(line.split(":", 1)[1].strip() for line in output.splitlines()
                if line.strip().startswith("Dagster run id:"))


def wait_success(home, run_id, timeout=900):
    from dagster import DagsterInstance

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with DagsterInstance.from_config(str(home)) as instance:
            status = instance.get_run_by_id(run_id).status.value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            if status != "SUCCESS":
                raise RuntimeError("run %s: %s" % (run_id, status))
            return
        time.sleep(0.5)
    raise RuntimeError("run %s did not finish" % run_id)


def timed_trigger(flow_dir, env, home, *args):
    started = time.monotonic()
    run_id = run_id_of(run([PYTHON, FLOW, *args], flow_dir, env))
    wait_success(home, run_id)
    return time.monotonic() - started


def embedded(base, env, top_args=()):
    flow_dir = base / "flow"
    flow_dir.mkdir(parents=True)
    shutil.copy(HERE / "flows" / FLOW, flow_dir)
    home = base / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = dict(env, DAGSTER_HOME=str(home))
    run([PYTHON, FLOW, *top_args, "dagster", "create"], flow_dir, env)
    return lambda: timed_trigger(flow_dir, env, home, *top_args, "dagster", "trigger")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    env = dict(os.environ, METAFLOW_USER=os.environ.get("METAFLOW_USER", "bench"))
    base = Path(tempfile.mkdtemp(prefix="mfd-dist-bench-"))
    results = {}
    try:
        with contextlib.ExitStack() as stack:
            started = time.monotonic()
            pg = stack.enter_context(services.postgres(base / "pg"))
            redis = stack.enter_context(services.redis(base / "redis"))
            s3 = stack.enter_context(services.s3_server(base / "s3"))
            s3_env = dict(env, **s3.env("bench"))
            variants = {
                "embedded": embedded(base / "embedded", env),
                "embedded-s3": embedded(base / "embedded-s3", s3_env, ("--datastore", "s3")),
            }
            home = base / "pg-home"
            home.mkdir()
            (home / "dagster.yaml").write_text(services.dagster_yaml_for_postgres(pg))
            flow_dir = base / "celery" / "flow"
            flow_dir.mkdir(parents=True)
            shutil.copy(HERE / "flows" / FLOW, flow_dir)
            celery_env = dict(s3_env, CELERY_BROKER_URL=redis.url_for(0),
                              CELERY_RESULT_BACKEND=redis.url_for(1))
            run([PYTHON, FLOW, "--datastore", "s3", "dagster", "create", "job.py",
                 "--executor", "celery"], flow_dir, celery_env)
            workspace = deployment.workspace_yaml(base / "workspace.yaml", [flow_dir / "job.py"],
                                                  flow_dir)
            dagster = stack.enter_context(deployment.webserver_and_daemon(
                base / "dagster", home, workspace, celery_env, locations=None))
            (base / "workers").mkdir()
            workers = stack.enter_context(services.celery_workers(
                base / "celery-workers", redis.url_for(0), redis.url_for(1), n=2,
                cwd=base / "workers", env=celery_env, concurrency=2,
                extra_args=("--without-mingle", "--without-gossip", "--disable-prefetch")))
            dagster.wait_ready()
            print("deployment ready in %.1f s (postgres %.1f, redis %.1f, moto %.1f, workers "
                  "%.1f, webserver+daemon %.1f)" % (
                      time.monotonic() - started, pg.start_seconds, redis.start_seconds,
                      s3.start_seconds, workers.start_seconds, dagster.start_seconds))
            print("RSS MB: postgres %.0f, redis %.0f, moto %.0f, 2 workers %.0f, webserver+"
                  "daemon %.0f" % (pg.rss_mb(), redis.rss_mb(), s3.rss_mb(), workers.rss_mb(),
                                   dagster.rss_mb()))
            variants["celery"] = lambda: timed_trigger(
                flow_dir, dict(celery_env, DAGSTER_HOME=str(home)), home, "--datastore", "s3",
                "dagster", "trigger", "--dagster-url", dagster.url)
            for _ in range(args.runs):
                for name, variant in variants.items():
                    results.setdefault(name, []).append(variant())
                    print("%-12s %.1f s (load %.1f)" % (name, results[name][-1],
                                                        os.getloadavg()[0]))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("\nforeach20, trigger to SUCCESS (best of %d):" % args.runs)
    for name, walls in results.items():
        print("  %-12s %6.1f s" % (name, min(walls)))


if __name__ == "__main__":
    main()
