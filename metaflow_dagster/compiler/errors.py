"""The one base of what `dagster create` refuses: a flow or an option it cannot
deploy as given. Every front door (the CLI, the Deployer, the dg component) catches
CreateError alone and shows its message, which names the flow, the step or the
option, and what to do."""


class CreateError(Exception):
    """The flow or the options cannot be compiled as they are; nothing was written."""
