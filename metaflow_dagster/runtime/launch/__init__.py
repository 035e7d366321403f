"""Starting a Metaflow task process: the launcher (which task runs next, its command
and environment), the process itself (processes.py), the task template tasks are
forked from, the code package the task runs from, the settings and the production
token it gets, the preflight checks, and where its output shows (step_logs.py)."""


class DeploymentUnavailable(Exception):
    """What a task needs from its deployment (the code package, the deployment's
    record) cannot be had from this host; the message says which setting to check.
    Retrying the op would not help, unless `network`: the datastore or service did not
    answer this host, and a retry may run on a host it answers."""

    def __init__(self, message: str, network: bool = False):
        super().__init__(message)
        self.network = network
