"""The executor of a compiled job (runtime/executors/selector.py), built from hand-made plans: run
config chooses among metaflow, multiprocess, celery and k8s; unknown keys are rejected; every
choice gets the per-foreach cap; a k8s step's pod gets the step's resources and deadline.

No Celery broker or Kubernetes cluster is contacted here: the executors are built, not run (the
distributed runs are in e2e/test_distributed.py). For Kubernetes, the pod spec is built by
dagster-k8s's own job-construction functions from the op's tags, as its step handler does, and
checked as what would be submitted; no cluster can run here.
"""

import json

import pytest
from dagster import DagsterInstance, validate_run_config
from dagster._core.errors import DagsterInvalidConfigError
from harness import executor_of
from test_layout_and_render import FOREACH, build, plan_of, step

FOREACH_LIMIT = {"key": "metaflow/foreach", "value": {"applyLimitPerUniqueValue": True},
                 "limit": 7}
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- {name: none, cluster: {server: "https://127.0.0.1:1"}}
contexts:
- {name: none, context: {cluster: none, user: none}}
current-context: none
users:
- {name: none, user: {token: none}}
"""


def executor_for(job, run_config, instance):
    """The executor that would run the steps of a run."""
    return executor_of(job, run_config, instance)


def choose(name, **config):
    return {"execution": {"config": {name: config}}}


@pytest.fixture(scope="module")
def foreach_job():
    return build(plan_of(FOREACH, max_workers=7))[1]


@pytest.fixture
def k8s_instance(tmp_path):
    from dagster._core.test_utils import instance_for_test

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    launcher = {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": {
        "service_account_name": "dagster", "instance_config_map": "dagster-instance",
        "job_image": "registry.example.com/flows/base:1", "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig), "dagster_home": "/opt/dagster/dagster_home"}}
    with instance_for_test(overrides={"run_launcher": launcher}) as instance:
        yield instance


def test_run_config_chooses_any_executor_with_the_create_time_one_as_default(foreach_job):
    from dagster._core.executor.multiprocess import MultiprocessExecutor
    from dagster._core.executor.step_delegating import StepDelegatingExecutor

    from metaflow_dagster.runtime.executors.celery import CeleryStepHandler
    from metaflow_dagster.runtime.executors.threads import MetaflowTaskExecutor

    with DagsterInstance.ephemeral() as instance:
        assert isinstance(executor_for(foreach_job, {}, instance), MetaflowTaskExecutor)
        multi = executor_for(foreach_job, choose("multiprocess", max_concurrent=3), instance)
        assert isinstance(multi, MultiprocessExecutor) and multi._max_concurrent == 3
        assert multi._start_method == "forkserver"  # the faster start, unless config says
        celery = executor_for(foreach_job, choose("celery", broker="redis://127.0.0.1:1/0",
                                                  backend="redis://127.0.0.1:1/1"), instance)
        assert isinstance(celery, StepDelegatingExecutor)
        assert isinstance(celery._step_handler, CeleryStepHandler)
        assert celery._step_handler._app.conf.broker_url == "redis://127.0.0.1:1/0"

    celery_job = build(plan_of(FOREACH, max_workers=7, executor="celery"))[1]
    with DagsterInstance.ephemeral() as instance:
        assert isinstance(executor_for(celery_job, {}, instance), StepDelegatingExecutor)
        assert isinstance(executor_for(celery_job, choose("metaflow"), instance),
                          MetaflowTaskExecutor)


def test_the_broker_comes_from_celerys_own_variables_when_run_config_names_none(
        foreach_job, monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:2/0")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://127.0.0.1:2/1")
    with DagsterInstance.ephemeral() as instance:
        app = executor_for(foreach_job, choose("celery"), instance)._step_handler._app
    assert (app.conf.broker_url, app.conf.result_backend) == (
        "redis://127.0.0.1:2/0", "redis://127.0.0.1:2/1")


def test_unknown_or_misspelt_execution_config_is_rejected(foreach_job):
    # What dagster-celery's docs show, on a job whose executor was pinned: it used to be
    # accepted and ignored (the run went to the default executor).
    with pytest.raises(DagsterInvalidConfigError, match='unexpected config entry "broker"'):
        validate_run_config(foreach_job, {"execution": {"config": {
            "broker": "redis://127.0.0.1:1/0"}}})
    with pytest.raises(DagsterInvalidConfigError, match='unexpected config entry "max_tasks"'):
        validate_run_config(foreach_job, choose("multiprocess", max_tasks=2))
    with pytest.raises(DagsterInvalidConfigError, match="Must specify a field"):
        validate_run_config(foreach_job, {"execution": {"config": {}}})
    # Optional executors' keys are checked when the run starts, before any step.
    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(DagsterInvalidConfigError, match='"brokr"'):
            executor_for(foreach_job, choose("celery", brokr="redis://127.0.0.1:1/0"),
                         instance)


def test_every_executor_gets_the_per_foreach_cap(foreach_job, k8s_instance):
    with DagsterInstance.ephemeral() as instance:
        for name in ("metaflow", "multiprocess", "celery"):
            executor = executor_for(foreach_job, choose(name), instance)
            assert executor._tag_concurrency_limits == [FOREACH_LIMIT], name
        # Run config may set the foreach limit itself, and other limits beside it.
        own = {"key": "metaflow/foreach", "limit": 2}
        gpu = {"key": "gpu", "limit": 1}
        executor = executor_for(foreach_job, choose("celery", tag_concurrency_limits=[own, gpu]),
                                instance)
        assert executor._tag_concurrency_limits == [own, gpu]
    k8s = executor_for(foreach_job, choose("k8s", job_namespace="flows"), k8s_instance)
    assert k8s._tag_concurrency_limits == [FOREACH_LIMIT]


def test_every_executor_fails_a_run_that_skipped_its_end_step(foreach_job, k8s_instance):
    from metaflow_dagster.runtime.executors.end_check import EndMustRun

    with DagsterInstance.ephemeral() as instance:
        for name in ("metaflow", "multiprocess", "celery"):
            assert isinstance(executor_of(foreach_job, choose(name), instance, wrapped=True),
                              EndMustRun), name
    assert isinstance(executor_of(foreach_job, choose("k8s", job_namespace="flows"),
                                  k8s_instance, wrapped=True), EndMustRun)


def test_every_executor_sends_the_run_heartbeat(foreach_job):
    from metaflow_dagster.runtime.executors.run_heartbeat import HeartbeatingExecutor

    with DagsterInstance.ephemeral() as instance:
        for name in ("metaflow", "multiprocess", "celery"):
            executor = executor_of(foreach_job, choose(name), instance, wrapped=True)
            wrappers = []
            while hasattr(executor, "inner"):
                wrappers.append(type(executor))
                executor = executor.inner
            assert HeartbeatingExecutor in wrappers, (name, wrappers)


def test_k8s_needs_the_k8s_run_launcher_and_says_so(foreach_job):
    with DagsterInstance.ephemeral() as instance:
        with pytest.raises(DagsterInvalidConfigError, match="K8sRunLauncher"):
            executor_for(foreach_job, choose("k8s"), instance)


def test_a_k8s_steps_pod_gets_its_resources_and_a_deadline_after_its_timeout():
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    steps = [
        step("start", "start", ["train"]),
        step("train", "linear", ["end"], ["start"], timeout_seconds=600,
             resources={"cpu": "2", "memory": "4096", "gpu": "1"}),
        step("end", "end", [], ["train"]),
    ]
    _, job = build(plan_of(steps, executor="k8s"))
    tags = job.graph.node_named("train").definition.tags
    # What dagster-k8s's step handler does with an op's tags (K8sStepHandler.launch_step).
    user_config = get_user_defined_k8s_config(tags)
    k8s_job = construct_dagster_k8s_job(
        job_config=DagsterK8sJobConfig(job_image="registry.example.com/flows/base:1",
                                       dagster_home="/opt/dagster/dagster_home"),
        args=["dagster", "api", "execute_step"], job_name="dagster-step-train",
        pod_name="dagster-step-train", component="step_worker",
        user_defined_k8s_config=user_config)
    container = k8s_job.spec.template.spec.containers[0]
    assert container.image == "registry.example.com/flows/base:1"  # the deployment's
    assert container.resources.requests == {"cpu": "2", "memory": "4096M"}
    assert container.resources.limits == {"nvidia.com/gpu": "1"}
    # The op's own kill comes 15 s after @timeout; the pod's deadline after that.
    assert 600 + 15 < k8s_job.spec.active_deadline_seconds <= 600 + 300
    # A step without them gets no pod settings.
    plain = get_user_defined_k8s_config(job.graph.node_named("end").definition.tags)
    assert plain.container_config == {} and plain.job_spec_config == {}
    json.dumps(tags["dagster-k8s/config"])  # a plain JSON tag value


def test_every_op_is_in_the_jobs_pool():
    _, job = build(plan_of(FOREACH, pool="HandFlow"))
    assert {node.definition.pool for node in job.graph.nodes} == {"HandFlow"}
    text, _ = build(plan_of(FOREACH, pool="shared", pool_limit=3))
    assert "pool_limit=3" in text
