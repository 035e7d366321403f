"""The one error type of the user's commands."""


class CommandError(Exception):
    """A problem the user can fix; the CLI shows the message alone (exit code 1)."""
