"""What every `python flow.py dagster ...` command shares: errors in plain text,
a suggestion for a mistyped option or command, and a quick exit."""

import atexit
import difflib
import gc
import re

from metaflow._vendor import click

from ..compiler.errors import CreateError
from .errors import CommandError

# What the user can fix, said in a message of its own: shown alone, exit code 1.
USER_ERRORS = (CommandError, CreateError)

# Metaflow's echo turns `*x*` into bold; a click error prints it as typed.
_BOLD = re.compile(r"\*([^*\s][^*\n]*?)\*")


def plain_text(message: str) -> str:
    """The message without Metaflow's bold markers."""
    return _BOLD.sub(r"\1", message)


class Errors:
    """A CommandError or a CreateError becomes a click error: one plain message,
    exit code 1."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if kind is not None and issubclass(kind, USER_ERRORS):
            raise click.ClickException(plain_text(str(error))) from None
        return False


def _close(word: str, known) -> list:
    return difflib.get_close_matches(word, sorted(known), n=3, cutoff=0.75)


class DagsterCommand(click.Command):
    """`--alpah` says "Did you mean --alpha?" (Metaflow's click only suggests
    options that start with what was typed). An option that a flow Parameter of
    the same name would shadow is refused: the value would go to one of them.
    The user's errors (USER_ERRORS) print as one plain message."""

    def invoke(self, ctx):
        # A command holds Dagster's and Metaflow's modules: the interpreter's last
        # garbage collections over them are a noticeable part of a short command
        # (bench/README.md). Frozen objects are skipped; what a command writes is
        # closed or flushed by then.
        atexit.register(gc.freeze)
        with Errors():
            return super().invoke(ctx)

    def parse_args(self, ctx, args):
        names = [p.name for p in self.params]
        clashes = sorted({n for n in names if names.count(n) > 1})
        if clashes:
            raise click.UsageError(
                "The flow's Parameter %s has the name of an option of `dagster %s`: that is "
                "not supported. Rename the Parameter." % (", ".join(clashes), self.name), ctx)
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as error:
            if not error.possibilities:
                known = [o for p in self.get_params(ctx) for o in p.opts + p.secondary_opts]
                error.possibilities = _close(error.option_name, known)
            raise


class DagsterGroup(click.Group):
    """`dagster triger` says "Did you mean trigger?"."""

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as error:
            if args and self.get_command(ctx, args[0]) is None:
                close = _close(args[0], self.list_commands(ctx))
                if close:
                    error.message += " Did you mean %s?" % " or ".join(close)
            raise
