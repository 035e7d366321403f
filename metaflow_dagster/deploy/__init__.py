"""The user's shell and Python: the `python flow.py dagster ...` commands, Metaflow's
Deployer API and the registry of deployments here; what `create` packages with a
deployment in packaging/; the targets runs go to (the embedded instance of the Dagster
home, or a webserver's GraphQL API) in targets/."""
