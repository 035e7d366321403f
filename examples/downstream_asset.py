"""A plain Dagster asset downstream of a Metaflow flow deployed with metaflow-dagster.

HelloFlow's deployment puts the asset `metaflow/HelloFlow` in the Catalog, and each
successful run of the flow materializes it with the run's pathspec (`metaflow_run`).
This asset depends on it (Lineage shows the edge) and reads the latest run's artifact
with Metaflow's Client. Materialize it after a run of the flow, next to its datastore:
    dagster asset materialize -f downstream_asset.py --select hello_report
or load both files in one `dagster dev -f hello_flow_dagster.py -f downstream_asset.py`.
"""

from dagster import AssetExecutionContext, AssetKey, Definitions, MaterializeResult, asset

# metaflow_dagster.naming.flow_asset_key("HelloFlow"); under @project:
# ["metaflow", <project>, <branch>, <flow>].
HELLO_FLOW = AssetKey(["metaflow", "HelloFlow"])


@asset(deps=[HELLO_FLOW])
def hello_report(context: AssetExecutionContext) -> MaterializeResult:
    from metaflow import Run, namespace

    latest = context.instance.get_latest_materialization_event(HELLO_FLOW)
    run_pathspec = latest.asset_materialization.metadata["metaflow_run"].value
    namespace(None)  # the run's tasks may belong to another user or a production token
    message = Run(run_pathspec).data.message
    context.log.info("%s says: %s" % (run_pathspec, message))
    return MaterializeResult(metadata={"metaflow_run": run_pathspec, "message": message})


defs = Definitions(assets=[hello_report])
