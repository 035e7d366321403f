"""Session-scoped pytest fixtures for the real servers of `services.py`.

A pytest plugin module: load it where it is needed, with `pytest_plugins = ["service_fixtures"]`
in a test module (or in tests/conftest.py). Each server starts on first use and stops at the end
of the session (per xdist worker: each worker has its own servers).

- `postgres_service`: `services.Postgres` (`.url`, `.postgres_db`); `postgres_dagster_home` a
  DAGSTER_HOME directory whose dagster.yaml keeps all storage in it (shared by the session: use
  distinct job names, or a fresh home per test written with `dagster_yaml_for_postgres`).
- `redis_service`: `services.Redis` (`.url` is db 0, `.url_for(n)`).
- `s3_service`: `services.S3Server` (`.endpoint_url`, `.bucket`, `.env(prefix)`, `.client()`).
- `celery_service`: two dagster-celery workers on `redis_service` (broker db 0, results db 1),
  with our environment, in a temporary cwd. Skipped when dagster-celery is not installed.
- `celery_workers_factory`: `factory(n=2, cwd=..., env=..., **kwargs)` starts more workers on
  `redis_service` (for an environment of their own, e.g. with `s3_service.env(...)`), on
  broker/result databases of their own (submit with `workers.executor_config`;
  `factory.next_urls()` tells them before the set starts); all are stopped at the end of the
  session.
"""

import contextlib
import itertools

import pytest
import services


@pytest.fixture(scope="session")
def postgres_service(tmp_path_factory):
    with services.postgres(tmp_path_factory.mktemp("postgres")) as pg:
        yield pg


@pytest.fixture(scope="session")
def postgres_dagster_home(postgres_service, tmp_path_factory):
    home = tmp_path_factory.mktemp("pg_dagster_home")
    (home / "dagster.yaml").write_text(services.dagster_yaml_for_postgres(postgres_service))
    return home


@pytest.fixture(scope="session")
def redis_service(tmp_path_factory):
    with services.redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def s3_service(tmp_path_factory):
    with services.s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


def _require_dagster_celery():
    pytest.importorskip("dagster_celery", reason="dagster-celery is not installed")


@pytest.fixture(scope="session")
def celery_service(redis_service, tmp_path_factory):
    _require_dagster_celery()
    with services.celery_workers(tmp_path_factory.mktemp("celery"), redis_service.url_for(0),
                                 redis_service.url_for(1), n=2) as workers:
        yield workers


@pytest.fixture(scope="session")
def celery_workers_factory(redis_service, tmp_path_factory):
    _require_dagster_celery()
    counter = itertools.count(1)
    upcoming = [next(counter)]
    with contextlib.ExitStack() as stack:

        def next_urls():
            """(broker, backend) of the next set, e.g. for a Dagster deployment started first."""
            k = upcoming[0]
            return redis_service.url_for(2 * k), redis_service.url_for(2 * k + 1)

        def start(n=2, **kwargs):
            # Each set gets its own broker and result databases (2k, 2k+1; Redis has 16), so
            # that runs submitted to it (`workers.executor_config`) reach only its workers.
            k, upcoming[0] = upcoming[0], next(counter)
            if k > 7:
                raise RuntimeError("celery_workers_factory: at most 7 sets of workers")
            kwargs.setdefault("names", [f"f{k}w{i}" for i in range(1, n + 1)])
            return stack.enter_context(services.celery_workers(
                tmp_path_factory.mktemp(f"celery_factory{k}"), redis_service.url_for(2 * k),
                redis_service.url_for(2 * k + 1), n=n, **kwargs))

        start.next_urls = next_urls
        yield start
