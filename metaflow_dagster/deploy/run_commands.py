"""`python flow.py dagster trigger | status | terminate | suspend | unsuspend |
resume | delete`: what becomes of runs.

The commands work on the definitions file `dagster create` wrote (by default the
one named after the job the same options give, job_name.py) and send runs to the
Dagster instance of the Dagster home (deploy/targets/home.py), or with --dagster-url (or
METAFLOW_DAGSTER_URL) to a running Dagster webserver (see deploy/targets/__init__.py).

This module is imported with every Metaflow command: Dagster is imported inside
the commands only (none of the modules imported here imports it at the top).
"""

import json
import os
import sys
import time

from metaflow import parameters
from metaflow._vendor import click

from .. import naming
from ..compiler.parameters import flow_parameters
from . import report, runs
from .command import DagsterCommand, Errors
from .errors import CommandError
from .job_name import definitions_file as default_file
from .job_name import job_name, project_info
from .parameters import command_line_values, origin_run_values, run_config
from .targets import target_for
from .targets.graphql import GraphQLTarget
from .task_output import TaskOutput

# Seconds between two looks at a run `trigger --wait` follows; more often in its first
# seconds, so that a short run's end is seen soon after it happens.
FOLLOW_INTERVAL_SECONDS = 1
FIRST_FOLLOW_INTERVAL_SECONDS = 0.2
FIRST_FOLLOW_SECONDS = 10
# At most this long `terminate` waits for the process of an embedded run to start it.
STARTUP_WAIT_SECONDS = 60


def _definitions_option(func):
    return click.option(
        "--definitions-file",
        default=None,
        help="The definitions file `dagster create` wrote (default: "
        "%s in the current directory, named after the job)."
        % naming.default_definitions_file("<job name>"),
    )(func)


def _url_option(func):
    return click.option(
        "--dagster-url",
        default=None,
        help="URL of a running Dagster webserver to submit to (default: "
        "$METAFLOW_DAGSTER_URL; without either, runs execute in the Dagster instance of "
        "$DAGSTER_HOME, or of %s when it is unset)." % naming.DEFAULT_DAGSTER_HOME,
    )(func)


def _run_id_option(help_text):
    return click.option("--run-id", required=True, help=help_text)


def _authorize_option(what):
    return click.option(
        "--authorize", default=None,
        help="Authorize the %s with the deployment's production token (needed unless you "
        "deployed the job)." % what)


def _wait_options(func):
    func = click.option(
        "--verbose", is_flag=True, default=False,
        help="With --wait: print the run's whole Dagster event log as well.")(func)
    func = click.option(
        "--logs/--no-logs", default=True, show_default=True,
        help="With --wait: print the tasks' output as it comes, each line headed by its "
        "time and task as `python flow.py run` prints it.")(func)
    return click.option(
        "--wait", is_flag=True, default=False,
        help="Wait for the run to finish, printing each step as it finishes; exit non-zero "
        "unless the run succeeded.")(func)


def _run_options(func):
    func = click.option(
        "--deployer-attribute-file", default=None, hidden=True,
        help="Write the run's pathspec to this file (Metaflow's Deployer API).",
    )(func)
    func = click.option(
        "--run-id-file", default=None, help="Write the Metaflow run id to this file.",
    )(func)
    return _url_option(_definitions_option(func))


def _definitions_file(obj, definitions_file):
    from .definitions import DefinitionsFile

    job = DefinitionsFile(default_file(obj, definitions_file))
    if job.plan.flow_name != obj.flow.name:
        raise CommandError("%s is the job of flow %s, not of %s." % (
            job.path, job.plan.flow_name, obj.flow.name))
    return job


class ServerJob:
    """A job that a running webserver loaded, known from the flow itself (its name
    and Parameters, by the rules `create` follows): `trigger --dagster-url` needs no
    local definitions file."""

    def __init__(self, obj):
        from ..compiler.compile import CompileOptions, compile_flow
        from ..compiler.errors import CreateError

        options = CompileOptions(flow_file=os.path.basename(sys.argv[0]),
                                 project=project_info(obj))
        try:
            self.plan = compile_flow(obj.flow, obj.graph, options)
        except CreateError as error:
            raise CommandError(str(error)) from None
        self.job_name = self.plan.job_name


def _job_to_launch(obj, definitions_file, target):
    """The definitions file; with a webserver as the target and no file given or at
    the default place, the job as the webserver knows it."""
    if definitions_file is None and isinstance(target, GraphQLTarget) and \
            not os.path.isfile(default_file(obj)):
        return ServerJob(obj)
    return _definitions_file(obj, definitions_file)


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


def _follow(obj, target, plan, run_id, verbose, logs=True, shown=None):
    """Wait for the run to end: a line each time steps finish (but those in `shown`),
    with `logs` the tasks' output lines as they come (on stdout, as `flow.py run`
    prints them) and, verbose, the run's whole Dagster event log as it grows. Raises
    unless the run succeeded."""
    shown, cursor = set(shown or ()), None
    output = TaskOutput(target, run_id) if logs else None
    started = time.monotonic()
    while True:
        state = target.run_state(run_id)
        if verbose:
            events, cursor = target.run_events(run_id, cursor)
            for event in events:
                click.echo(report.event_line(*event), err=True)
        for line in output.new_lines(state) if output else ():
            click.echo(line)
        for line in report.progress_lines(state, plan, shown):
            obj.echo(line)
        if state.finished:
            break
        time.sleep(FIRST_FOLLOW_INTERVAL_SECONDS if time.monotonic() - started
                   < FIRST_FOLLOW_SECONDS else FOLLOW_INTERVAL_SECONDS)
    status = runs.metaflow_status(target, state, obj.graph.end_step)
    line = "Run %s/%s ended %s (Dagster %s)." % (
        obj.flow.name, state.metaflow_run_id, status, state.status)
    if status != runs.SUCCEEDED:
        raise CommandError(line + " Its failures: `python %s dagster status --run-id %s`, "
                           "or the Dagster UI." % (os.path.basename(sys.argv[0]), run_id))
    obj.echo(line, bold=True)


@parameters.add_custom_parameters(deploy_mode=False)
@click.command(cls=DagsterCommand, help="Start a run of the compiled job on Dagster and return "
               "at once (or, with --wait, once it has finished).")
@click.option("--workflow-priority", default=None, type=int,
              help="This run's priority in the instance's run queue (dagster/priority), "
              "instead of the job's (`create --workflow-priority`).")
@click.option("--run-title", default=None,
              help="This run's title (the metaflow/title tag the Runs list shows).")
@_wait_options
@_run_options
@click.pass_obj
def trigger(obj, definitions_file=None, dagster_url=None, run_id_file=None,
            deployer_attribute_file=None, wait=False, verbose=False, logs=True,
            workflow_priority=None, run_title=None, **kwargs):

    with Errors():
        target = target_for(dagster_url)
        # The embedded target's run process starts now, and waits for the run.
        target.prepare_launch(os.path.dirname(os.path.abspath(default_file(obj,
                                                                           definitions_file))))
        job = _job_to_launch(obj, definitions_file, target)
        config = run_config(job.plan, command_line_values(obj.flow, kwargs))
        run_id = _start(obj, job, target, config, _run_tags(workflow_priority, run_title),
                        run_id_file, deployer_attribute_file, "Triggered a run of")
        if wait:
            _follow(obj, target, job.plan, run_id, verbose, logs)


def _run_tags(priority, title) -> dict:
    """A run's own tags, over the job's (create --workflow-priority, --workflow-title)."""
    tags = {}
    if priority is not None:
        tags[naming.TAG_PRIORITY] = str(priority)
    if title and title.strip():
        tags[naming.TAG_TITLE] = title.strip()
    return tags


@click.command(cls=DagsterCommand, help="Show the state of a run on Dagster and of each of "
               "its steps.")
@click.option("--run-id", default=None,
              help="Dagster run id or Metaflow run id (default: the latest run of the job).")
@_wait_options
@_definitions_option
@_url_option
@click.pass_obj
def status(obj, run_id=None, definitions_file=None, dagster_url=None, wait=False,
           verbose=False, logs=True):

    with Errors():
        target = target_for(dagster_url)
        if run_id:
            state = runs.find_run(target, obj.flow.name, run_id)
        else:
            job = _status_job_name(obj, definitions_file)
            state = runs.latest_job_run(target, obj.flow.name, job)
            if state is None:
                raise CommandError("No run of job %s (flow %s) in %s." % (
                    job, obj.flow.name, target.describe()))
        # Plain lines on stdout, for people and scripts alike.
        end_step = obj.graph.end_step
        for line in report.describe_state(state, obj.flow.name,
                                          runs.metaflow_status(target, state, end_step),
                                          os.path.basename(sys.argv[0]), target.ui_base,
                                          end_step):
            click.echo(line)
        if wait:
            _follow(obj, target, _plan_if_any(obj, definitions_file), state.run_id, verbose,
                    logs, shown=[s.key for s in state.steps if s.status in runs.STEP_FINISHED])


def _plan_if_any(obj, definitions_file):
    """The plan of the definitions file, if there is one (it tells how many steps a
    run has to go)."""
    if definitions_file is None and not os.path.isfile(default_file(obj)):
        return None
    return _definitions_file(obj, definitions_file).plan


def _status_job_name(obj, definitions_file):
    """The job whose latest run `status` shows: the definitions file's, when one
    is given; else the one the flow and options name."""
    if definitions_file:
        return _definitions_file(obj, definitions_file).job_name
    return job_name(obj)


def _unfinished_run(obj, target, run_id, doing):
    state = runs.find_run(target, obj.flow.name, run_id)
    if state.finished:
        raise CommandError("Run %s/%s has already finished (%s); nothing to %s." % (
            obj.flow.name, state.metaflow_run_id, state.status, doing))
    return state


@click.command(cls=DagsterCommand, help="Terminate a run on Dagster: its running tasks are "
               "stopped and the run ends ABORTED (Dagster: CANCELED), as with the Dagster UI's "
               "Terminate button.")
@_run_id_option("Dagster run id or Metaflow run id.")
@click.option("--wait", is_flag=True, default=False,
              help="Return once the run has ended (its tasks stopped).")
@_authorize_option("termination")
@_url_option
@click.pass_obj
def terminate(obj, run_id, wait=False, authorize=None, dagster_url=None):

    with Errors():
        target = target_for(dagster_url)
        state = runs.find_run(target, obj.flow.name, run_id)
        _check_authorized(obj, state, authorize, "terminate")
        lost = state.tags.get(naming.TAG_RUN_WORKER_LOST)
        if state.finished and lost:
            # Nothing of it is left running (see runtime/executors/workers.py): done.
            obj.echo("Run %s/%s has already ended (%s): %s" % (
                obj.flow.name, state.metaflow_run_id, state.status, lost), bold=True)
            return
        state = _unfinished_run(obj, target, run_id, "terminate")
        if not isinstance(target, GraphQLTarget):
            # The process executing an embedded run takes the request once it runs
            # the run (its first second goes to importing Dagster).
            state = _wait_for(target, state, lambda s: s.status != "NOT_STARTED",
                              STARTUP_WAIT_SECONDS)
        if not state.finished:
            target.terminate(state.run_id)
        obj.echo("Terminating %s/%s (Dagster run %s)." % (
            obj.flow.name, state.metaflow_run_id, state.run_id), bold=True)
        if wait:
            state = _wait_for(target, state, lambda s: s.finished)
            obj.echo("Run %s/%s ended %s (Dagster %s)." % (
                obj.flow.name, state.metaflow_run_id,
                runs.metaflow_status(target, state, obj.graph.end_step), state.status))


def _check_authorized(obj, state, authorize, command):
    """Only whoever deployed the run's job, or who has its production token, may act on
    its runs (as `argo-workflows terminate | suspend` check)."""
    from .packaging.production_token import check_authorized, token_prefix

    check_authorized(obj.flow_datastore, state.job_name,
                     token_prefix(state.job_name, project_info(obj)), authorize,
                     "To %s its run %s" % (command, state.metaflow_run_id),
                     "dagster %s --authorize TOKEN --run-id %s" % (command, state.run_id))


def _wait_for(target, state, done, timeout=None):
    """The run's state once `done(state)` holds (or `timeout` seconds passed)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done(state) and (deadline is None or time.monotonic() < deadline):
        time.sleep(FOLLOW_INTERVAL_SECONDS / 2)
        state = target.run_state(state.run_id)
    return state


@click.command(cls=DagsterCommand, help="Suspend a run: the tasks that run finish, and no new "
               "task starts until `dagster unsuspend` (the run carries the tag %s)."
               % naming.TAG_SUSPENDED)
@_run_id_option("Dagster run id or Metaflow run id.")
@_authorize_option("suspension")
@_url_option
@click.pass_obj
def suspend(obj, run_id, authorize=None, dagster_url=None):
    state = _tag_suspended(obj, run_id, dagster_url, naming.SUSPENDED, "suspend", authorize)
    obj.echo("Suspended %s/%s (Dagster run %s): running tasks finish, no new task starts "
             "until `dagster unsuspend`." % (
                 obj.flow.name, state.metaflow_run_id, state.run_id), bold=True)


@click.command(cls=DagsterCommand, help="Let a suspended run start new tasks again.")
@_run_id_option("Dagster run id or Metaflow run id.")
@_authorize_option("unsuspension")
@_url_option
@click.pass_obj
def unsuspend(obj, run_id, authorize=None, dagster_url=None):
    state = _tag_suspended(obj, run_id, dagster_url, naming.NOT_SUSPENDED, "unsuspend",
                           authorize)
    obj.echo("Unsuspended %s/%s (Dagster run %s)." % (
        obj.flow.name, state.metaflow_run_id, state.run_id), bold=True)


def _tag_suspended(obj, run_id, dagster_url, value: str, command: str, authorize=None):
    """Set the run's suspended tag (runtime/suspension.py reads it); the run's state."""
    with Errors():
        target = target_for(dagster_url)
        state = _unfinished_run(obj, target, run_id, command)
        _check_authorized(obj, state, authorize, command)
        target.tag_run(state.run_id, {naming.TAG_SUSPENDED: value})
    return state


def _parameter_overrides(cmd):
    """The flow's Parameters as options of `resume`, none required and none with a
    default: a value given replaces the origin run's, the others keep it. (Metaflow's
    own add_custom_parameters would fill in the defaults, and a default would then
    replace the origin run's value.)"""
    # The click API restores these before it lists a command's options, so a process
    # that loads several flows does not keep the options of the first.
    cmd.original_params = list(cmd.params)
    flow_cls = getattr(parameters.current_flow, "flow_cls", None)
    if flow_cls is None:
        return cmd
    for _, param in list(flow_parameters(flow_cls))[::-1]:
        kwargs = dict(param.option_kwargs(False), default=None, required=False,
                      show_default=False)
        kwargs["help"] = " ".join(
            filter(None, [kwargs.get("help"), "[default: the origin run's value]"]))
        cmd.params.insert(0, click.Option(("--" + param.name,), **kwargs))
    return cmd


@_parameter_overrides
@click.command(cls=DagsterCommand, help="Start a new run that clones the steps that succeeded "
               "in an earlier run and runs the others, as `python flow.py resume` does. The "
               "run keeps the origin run's Parameters, but those given here; the steps it "
               "runs read the new values, the tasks it clones keep what they had.")
@click.option("--origin-run-id", required=True,
              help="The run to resume: its Metaflow run id or a Dagster run id.")
@click.option("--step-to-rerun", default=None,
              help="Run this step and every step after it again, even if they succeeded.")
@_wait_options
@_run_options
@click.pass_obj
def resume(obj, origin_run_id, step_to_rerun=None, definitions_file=None, dagster_url=None,
           run_id_file=None, deployer_attribute_file=None, wait=False, verbose=False,
           logs=True, **kwargs):
    from ..runtime import resume as resume_runtime

    with Errors():
        job = _definitions_file(obj, definitions_file)
        target = target_for(dagster_url)
        target.prepare_launch(job.directory)
        origin = runs.metaflow_run_of(target, obj.flow.name, origin_run_id)
        _check_finished(target, obj.flow.name, origin)
        try:
            rerun = resume_runtime.rerun_steps(job.plan, step_to_rerun)
        except ValueError as error:
            raise CommandError(str(error)) from None
        values = origin_run_values(obj.flow, job.plan, origin)
        given = command_line_values(obj.flow, kwargs)
        config = run_config(job.plan, dict(values, **given))
        tags = resume_runtime.resume_tags(origin, rerun)
        obj.echo("Resuming %s/%s%s." % (obj.flow.name, origin, (
            ": re-running %s" % ", ".join(rerun)) if rerun else ""))
        for name, value in sorted(given.items()):
            obj.echo("    Parameter %s: %r (the origin run had %r)" % (
                name, value, values.get(name)))
        run_id = _start(obj, job, target, config, tags, run_id_file, deployer_attribute_file,
                        "Started a resume run of")
        if wait:
            _follow(obj, target, job.plan, run_id, verbose, logs)


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


@click.command(cls=DagsterCommand, help="Delete the deployment: its definitions file and its "
               "record.")
@_definitions_option
@click.pass_obj
def delete(obj, definitions_file=None):
    from .registry import forget_deployment

    with Errors():
        # Never delete a file `dagster create` did not write (e.g. the flow): only one
        # that loads as the definitions file of this flow.
        job = _definitions_file(obj, definitions_file)
        forget_deployment(job.path)
        os.unlink(job.path)
        obj.echo("Deleted the Dagster deployment of *%s* (%s)." % (obj.flow.name, job.path),
                 bold=True)


COMMANDS = [trigger, status, terminate, suspend, unsuspend, resume, delete]
