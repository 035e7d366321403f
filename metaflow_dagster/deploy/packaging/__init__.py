"""What `dagster create` packages with a deployment: the flow's code, the non-secret
settings its tasks need, and its production token."""
