"""Code that runs inside the Metaflow task process (`python flow.py step ...`), added
to every task as the `dagster_internal` step decorator. Never imports dagster."""
