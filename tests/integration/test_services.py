"""The real servers of tests/services.py start, work and stop (by their own pids)."""

import os
import subprocess
import sys
import textwrap

import pytest
import services

pytest_plugins = ["service_fixtures"]
pytestmark = pytest.mark.services


def test_postgres_accepts_connections_and_hosts_a_dagster_instance(postgres_service, tmp_path):
    psycopg2 = pytest.importorskip("psycopg2")
    pg = postgres_service
    with psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password,
                          dbname=pg.dbname) as conn, conn.cursor() as cur:
        cur.execute("select current_database(), current_user")
        assert cur.fetchone() == ("dagster", "dagster")
    conn.close()

    from dagster import DagsterInstance, DagsterRunStatus, job, op
    from dagster_postgres import PostgresRunStorage

    yaml_text = services.dagster_yaml_for_postgres(pg)
    assert "scheme: postgresql+psycopg2" in yaml_text
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml_text)

    @op
    def one():
        return 1

    @job
    def services_trivial_job():
        one()

    instance = DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert instance.run_monitoring_enabled
        result = services_trivial_job.execute_in_process(instance=instance)
        assert result.success
    finally:
        instance.dispose()
    # A second instance on the same database sees the run and its events.
    again = DagsterInstance.from_config(str(home))
    try:
        run = again.get_run_by_id(result.run_id)
        assert run.status == DagsterRunStatus.SUCCESS
        assert any(entry.step_key == "one" for entry in again.all_logs(result.run_id))
    finally:
        again.dispose()


def test_redis_answers_ping(redis_service):
    assert redis_service.ping()
    redis_lib = pytest.importorskip("redis")
    client = redis_lib.Redis.from_url(redis_service.url)
    assert client.ping()
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()


def test_redis_stops_by_its_pid(tmp_path):
    with services.redis(tmp_path) as server:
        pid = server.pid
        assert server.ping()
    assert services.group_members(pid) == []
    assert not services._redis_ping(server.port)


def test_s3_server_stores_objects_for_boto3_and_metaflow(s3_service, tmp_path):
    client = s3_service.client()
    client.put_object(Bucket=s3_service.bucket, Key="hello.txt", Body=b"hello")
    body = client.get_object(Bucket=s3_service.bucket, Key="hello.txt")["Body"].read()
    assert body == b"hello"

    env = s3_service.env("ci-prefix")
    assert env["METAFLOW_DATASTORE_SYSROOT_S3"] == f"s3://{s3_service.bucket}/ci-prefix"
    # Metaflow's own S3 client, in a fresh process configured only by that environment.
    script = textwrap.dedent("""
        from metaflow import S3
        from metaflow.metaflow_config import DATASTORE_SYSROOT_S3
        with S3(s3root=DATASTORE_SYSROOT_S3 + "/probe") as s3:
            s3.put("k", "from metaflow")
        with S3(s3root=DATASTORE_SYSROOT_S3 + "/probe") as s3:
            print(s3.get("k").text)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, **env}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "from metaflow"
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_service.bucket,
                                                     Prefix="ci-prefix/")["Contents"]]
    assert keys == ["ci-prefix/probe/k"]


def test_two_celery_workers_answer_ping_and_stop_with_their_children(redis_service, tmp_path):
    pytest.importorskip("dagster_celery", reason="dagster-celery is not installed")
    # Broker/result databases of their own: the session's celery_service uses 0 and 1.
    with services.celery_workers(tmp_path, redis_service.url_for(14),
                                 redis_service.url_for(15), n=2) as workers:
        assert workers.ping(timeout=10) == {name: {"ok": "pong"} for name in workers.names}
        groups = [proc.pid for proc in workers.procs]
        # Each wrapper runs a `celery` child (plus its pool): all in the wrapper's group.
        assert all(len(services.group_members(pgid)) >= 2 for pgid in groups)
    assert [services.group_members(pgid) for pgid in groups] == [[], []]
