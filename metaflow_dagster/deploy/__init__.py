"""The user's shell and Python: the `python flow.py dagster ...` commands, Metaflow's
Deployer API, the targets runs go to (the embedded instance of DAGSTER_HOME, or a
webserver's GraphQL API) and the registry of deployments."""
