"""Registers metaflow-dagster with Metaflow: the `dagster` CLI group, the
Deployer backend and the internal step decorator used inside Dagster ops."""

CLIS_DESC = [("dagster", "metaflow_dagster.deploy.cli.cli")]
STEP_DECORATORS_DESC = [
    ("dagster_internal", "metaflow_dagster.task.decorator.DagsterInternalDecorator"),
]
DEPLOYER_IMPL_PROVIDERS_DESC = [("dagster", "metaflow_dagster.deploy.deployer.DagsterDeployer")]
