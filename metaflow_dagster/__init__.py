"""metaflow-dagster: compile Metaflow flows into Dagster jobs."""

__version__ = "0.1.0"

# Metaflow's code package (made by `dagster create`) ships this package with the
# flow, so a task runs the metaflow-dagster code it was deployed with, and a task
# that Metaflow's compute layer (@kubernetes, @batch) runs in a container finds the
# `dagster_internal` step decorator without metaflow-dagster installed there.
METAFLOW_PACKAGE_POLICY = "include"
