"""`python flow.py dagster trigger | status | terminate | resume | delete`: the run
lifecycle.

The commands work on the definitions file `dagster create` wrote and send runs
to the Dagster instance of DAGSTER_HOME, or with --dagster-url (or
METAFLOW_DAGSTER_URL) to a running Dagster webserver (see runs.py).

This module is imported with every Metaflow command: Dagster is imported inside
the commands only (none of the modules imported here imports it at the top).
"""

import json
import os

from metaflow import parameters
from metaflow._vendor import click

from .. import naming
from . import report, runs
from .errors import CommandError
from .parameters import command_line_values, origin_run_values, run_config
from .targets import target_for


def _definitions_option(func):
    return click.option(
        "--definitions-file",
        default=None,
        help="The definitions file `dagster create` wrote (default: "
        "%s in the current directory)." % naming.default_definitions_file("<flow name>"),
    )(func)


def _url_option(func):
    return click.option(
        "--dagster-url",
        default=None,
        help="URL of a running Dagster webserver to submit to (default: "
        "$METAFLOW_DAGSTER_URL; without either, runs execute against $DAGSTER_HOME).",
    )(func)


def _run_options(func):
    func = click.option(
        "--deployer-attribute-file", default=None, hidden=True,
        help="Write the run's pathspec to this file (Metaflow's Deployer API).",
    )(func)
    func = click.option(
        "--run-id-file", default=None, help="Write the Metaflow run id to this file.",
    )(func)
    return _url_option(_definitions_option(func))


class _Errors:
    """Lifecycle problems become click errors: one clear message, exit code 1."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, tb):
        if kind is not None and issubclass(kind, CommandError):
            raise click.ClickException(str(error)) from None
        return False


def _definitions_file(obj, definitions_file):
    from .definitions import DefinitionsFile

    path = definitions_file or naming.default_definitions_file(obj.flow.name)
    job = DefinitionsFile(path)
    if job.plan.flow_name != obj.flow.name:
        raise CommandError("%s is the job of flow %s, not of %s." % (
            path, job.plan.flow_name, obj.flow.name))
    return job


def _job_to_trigger(obj, definitions_file, target):
    """The local definitions file; without one, the job a running webserver holds."""
    from .deployed_job import deployed_job
    from .graphql import GraphQLTarget

    if definitions_file or not isinstance(target, GraphQLTarget) or os.path.exists(
            naming.default_definitions_file(obj.flow.name)):
        return _definitions_file(obj, definitions_file)

    return deployed_job(target, obj.flow, obj.graph)


def _start(obj, job, target, config, tags, run_id_file, deployer_attribute_file, what):
    run_id = target.launch(job, config, tags)
    metaflow_run = "%s/%s" % (obj.flow.name, naming.metaflow_run_id(run_id))
    obj.echo("%s *%s* on %s." % (what, job.job_name, target.describe()), bold=True)
    obj.echo("    Dagster run id:  %s" % run_id)
    obj.echo("    Metaflow run:    %s" % metaflow_run)
    obj.echo("    Dagster UI:      %s" % report.ui_url(target, run_id))
    if run_id_file:
        with open(run_id_file, "w") as f:
            f.write(metaflow_run.split("/")[1])
    if deployer_attribute_file:
        with open(deployer_attribute_file, "w") as f:
            json.dump({
                "name": run_id,
                "dagster_run_id": run_id,
                "metadata": obj.metadata.metadata_str(),
                "pathspec": metaflow_run,
            }, f)
    try:
        warning = target.queue_warning()
    except CommandError:
        warning = None  # the run is submitted; this was only advice
    if warning:
        obj.echo("Warning: " + warning, fg="yellow")
    return run_id


@parameters.add_custom_parameters(deploy_mode=False)
@click.command(help="Start a run of the compiled job on Dagster and return at once.")
@_run_options
@click.pass_obj
def trigger(obj, definitions_file=None, dagster_url=None, run_id_file=None,
            deployer_attribute_file=None, **kwargs):

    with _Errors():
        target = target_for(dagster_url)
        job = _job_to_trigger(obj, definitions_file, target)
        config = run_config(job.plan, command_line_values(obj.flow, kwargs))
        _start(obj, job, target, config, {}, run_id_file, deployer_attribute_file,
               "Triggered a run of")


@click.command(help="Show the state of a run on Dagster and of each of its steps.")
@click.option("--run-id", default=None,
              help="Dagster run id or Metaflow run id (default: the latest run of this flow).")
@_url_option
@click.pass_obj
def status(obj, run_id=None, dagster_url=None):

    with _Errors():
        target = target_for(dagster_url)
        if run_id:
            state = runs.find_run(target, obj.flow.name, run_id)
        else:
            state = runs.latest_run(target, obj.flow.name)
            if state is None:
                raise CommandError(
                    "No run of %s in %s." % (obj.flow.name, target.describe()))
        # Plain lines on stdout, for people and scripts alike.
        for line in report.describe_state(state, obj.flow.name):
            click.echo(line)


@click.command(help="Terminate a run on Dagster: its running tasks are stopped and the run "
               "ends CANCELED, as with the Dagster UI's Terminate button.")
@click.option("--run-id", required=True, help="Dagster run id or Metaflow run id.")
@_url_option
@click.pass_obj
def terminate(obj, run_id, dagster_url=None):

    with _Errors():
        target = target_for(dagster_url)
        state = runs.find_run(target, obj.flow.name, run_id)
        if state.finished:
            raise CommandError(
                "Run %s/%s has already finished (%s); nothing to terminate."
                % (obj.flow.name, state.metaflow_run_id, state.status))
        target.terminate(state.run_id)
        obj.echo("Terminating %s/%s (Dagster run %s)." % (
            obj.flow.name, state.metaflow_run_id, state.run_id), bold=True)


@click.command(help="Start a new run that clones the steps that succeeded in an earlier run "
               "and runs the others, as `python flow.py resume` does.")
@click.option("--origin-run-id", required=True,
              help="The run to resume: its Metaflow run id or a Dagster run id.")
@click.option("--step-to-rerun", default=None,
              help="Run this step and every step after it again, even if they succeeded.")
@_run_options
@click.pass_obj
def resume(obj, origin_run_id, step_to_rerun=None, definitions_file=None, dagster_url=None,
           run_id_file=None, deployer_attribute_file=None):
    from ..runtime import resume as resume_runtime

    with _Errors():
        job = _definitions_file(obj, definitions_file)
        target = target_for(dagster_url)
        origin = runs.metaflow_run_of(target, obj.flow.name, origin_run_id)
        _check_finished(target, obj.flow.name, origin)
        try:
            rerun = resume_runtime.rerun_steps(job.plan, step_to_rerun)
        except ValueError as error:
            raise CommandError(str(error)) from None
        config = run_config(job.plan, origin_run_values(obj.flow, job.plan, origin))
        tags = resume_runtime.resume_tags(origin, rerun)
        obj.echo("Resuming %s/%s%s." % (obj.flow.name, origin, (
            ": re-running %s" % ", ".join(rerun)) if rerun else ""))
        _start(obj, job, target, config, tags, run_id_file, deployer_attribute_file,
               "Started a resume run of")


def _check_finished(target, flow_name, origin):
    """Cloning from a run that still runs would copy a moving target."""
    try:
        state = runs.find_run(target, flow_name, origin)
    except CommandError:
        return  # not a run of this Dagster instance: the datastore decides
    if not state.finished:
        raise CommandError(
            "Run %s/%s is still %s (Dagster run %s); resume it once it has finished."
            % (flow_name, origin, state.status, state.run_id))


@click.command(help="Delete the deployment: its definitions file and its record.")
@_definitions_option
@click.pass_obj
def delete(obj, definitions_file=None):
    from .registry import forget_deployment

    with _Errors():
        # Never delete a file `dagster create` did not write (e.g. the flow): only one
        # that loads as the definitions file of this flow.
        job = _definitions_file(obj, definitions_file)
        forget_deployment(job.path)
        os.unlink(job.path)
        obj.echo("Deleted the Dagster deployment of *%s* (%s)." % (obj.flow.name, job.path),
                 bold=True)


COMMANDS = [trigger, status, terminate, resume, delete]
