"""`python -m metaflow_dagster ...`: commands that need no flow file.

`send-event` records a Metaflow event in the Dagster instance of the Dagster home (DAGSTER_HOME,
or the default one), where the event sensors of compiled flows pick it up (the Dagster
counterpart of `ArgoEvent(name).publish()`). `home` prints that Dagster home.
"""

import click


@click.group()
def cli():
    """metaflow-dagster utilities."""


@cli.command("send-event")
@click.argument("name")
@click.option(
    "--payload",
    "-p",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A payload field; repeat for several. Values are strings.",
)
def send_event_command(name, pairs):
    """Record event NAME, with its payload, in the Dagster instance of the Dagster home."""
    from .deploy.command import plain_text
    from .deploy.errors import CommandError
    from .deploy.events import listening_deployments, send_event
    from .deploy.targets.home import dagster_home, open_instance

    try:
        home = dagster_home()
    except CommandError as error:
        raise click.UsageError(plain_text(str(error))) from None
    payload = _parse_pairs(pairs)
    try:
        with open_instance(home) as instance:
            event_id = send_event(name, payload, instance=instance)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from e
    except CommandError as error:
        raise click.ClickException(plain_text(str(error))) from None
    click.echo("Event %s sent (id %s)." % (name, event_id))
    listening = listening_deployments(name, home)
    if listening:
        click.echo("It starts a run of %s once its sensor sees it (a Dagster daemon, e.g. "
                   "`dg dev`, on %s)." % (", ".join(listening), home))
    else:
        click.echo(
            "No flow deployed in the Dagster home %s listens for event %s: it starts no run. "
            "A flow with @trigger(event=%r) deployed later will not see it, as on Argo "
            "Workflows." % (home, name, name), err=True)


@cli.command("home")
def home_command():
    """Print the Dagster home the commands use (DAGSTER_HOME, or the default one),
    creating it if need be: `DAGSTER_HOME=$(python -m metaflow_dagster home) dg dev ...`."""
    from .deploy.command import plain_text
    from .deploy.errors import CommandError
    from .deploy.targets.home import dagster_home

    try:
        click.echo(dagster_home())
    except CommandError as error:
        raise click.UsageError(plain_text(str(error))) from None


def _parse_pairs(pairs) -> dict:
    payload = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter("expected KEY=VALUE, got %r" % pair, param_hint="--payload")
        payload[key] = value
    return payload


if __name__ == "__main__":
    cli()
