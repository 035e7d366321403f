"""Environment variables that carry state from a Dagster op into the Metaflow
task process it launches (one home for each name)."""

RESULT_FILE_ENV = "METAFLOW_DAGSTER_RESULT_FILE"
DAGSTER_RUN_ID_ENV = "METAFLOW_DAGSTER_RUN_ID"
DAGSTER_OP_ENV = "METAFLOW_DAGSTER_OP"
TRIGGERS_ENV = "METAFLOW_DAGSTER_TRIGGERS"
