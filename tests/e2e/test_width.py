"""A foreach of 2,000 splits on a Dagster instance on PostgreSQL: every split runs once, as its
own Dagster step and its own Metaflow task, and the join sees all 2,000 inputs (read back
through Metaflow's Client). Correctness at width only: timing is for bench/scale.py."""

import pytest
from harness import compile_flow, execute, metaflow_run

pytest_plugins = ["service_fixtures"]
pytestmark = [pytest.mark.services, pytest.mark.e2e]

WIDTH = 2000


def test_a_foreach_of_2000_splits_on_postgres(tmp_path, postgres_dagster_home):
    compiled = compile_flow(tmp_path, "wide_foreach_flow")
    result = execute(compiled, postgres_dagster_home, timeout=3600)
    assert result.success, result.output[-3000:]
    bodies = [key for key in result.steps if key.startswith("body[")]
    assert len(bodies) == WIDTH
    assert {result.steps[key].status.value for key in bodies} == {"SUCCESS"}
    run = metaflow_run(compiled, result)
    assert run.successful
    assert len(list(run["body"])) == WIDTH
    assert run["join"].task.data.seen == list(range(WIDTH))
