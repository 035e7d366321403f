"""`python flow.py dagster ...`: the commands users type."""

import os
import shlex
import sys
from dataclasses import replace

from metaflow import decorators
from metaflow._vendor import click
from metaflow.flowspec import FlowStateItems
from metaflow.user_configs.config_options import ConfigInput

from ..compiler import notifications
from ..compiler.compile import CompileOptions, compile_flow
from ..compiler.errors import CreateError
from ..compiler.job_options import SCHEDULE_STATUSES, executor_problem, module_found
from ..compiler.render import render
from ..compiler.schedules import schedule_spec
from ..compiler.triggers import trigger_specs
from ..files import write_atomically
from ..naming import EXECUTORS
from .command import DagsterCommand, DagsterGroup
from .env_file import save_secrets
from .job_name import definitions_file, project_info
from .packaging.code_package import package_flow
from .packaging.datastore_access import datastore_writes
from .packaging.production_token import resolve_token, token_prefix
from .packaging.task_settings import read_task_settings
from .registry import record_deployment
from .run_commands import COMMANDS


@click.group()
def cli():
    pass


@cli.group(cls=DagsterGroup, help="Compile this flow into a Dagster job and run it on Dagster.")
@click.pass_obj
def dagster(obj):
    pass


@dagster.command(cls=DagsterCommand, help="Compile this flow into a Dagster definitions file.")
@click.argument("file", required=False)
@click.option("--name", default=None, help="Job name (default: the flow name, "
              "prefixed by the @project name when there is one).")
@click.option("--tag", "tags", multiple=True, help="Metaflow tag for every task of every run.")
@click.option("--namespace", default=None, help="Metaflow namespace of the tasks.")
@click.option("--with", "decospecs", multiple=True,
              help="Add a step decorator to every step, as Metaflow's --with does.")
@click.option("--max-workers", default=100, show_default=True, type=int,
              help="Most tasks of one foreach running at once.")
@click.option("--executor", type=click.Choice(list(EXECUTORS)), default="metaflow",
              show_default=True, help="The job's default executor (run config can choose "
              "another): metaflow: each op a thread of the run process, each task its own "
              "process (fast, one machine); multiprocess: Dagster's, each op its own process; "
              "celery: dagster-celery's workers; k8s: a Kubernetes pod per op (dagster-k8s). "
              "See docs/deploy.md.")
@click.option("--pool", default=None, help="Dagster pool of every op of the job (default: "
              "the job name); jobs sharing a pool share its limit.")
@click.option("--pool-limit", default=None, type=int, help="Most ops of the pool running at "
              "once over all runs, set on the instance at the first run unless it has a "
              "limit already (`dagster instance concurrency set` changes it later).")
@click.option("--workflow-timeout", default=None, type=int,
              help="Fail a run once it has run this many seconds.")
@click.option("--workflow-priority", default=None, type=int, help="Priority of every run of "
              "the job (Dagster's dagster/priority tag): the instance's run queue starts "
              "queued runs of a higher priority first. `trigger --workflow-priority` sets a "
              "run's own.")
@click.option("--workflow-title", default=None, help="Title of every run of the job (the "
              "metaflow/title tag the Runs list shows; `trigger --run-title` sets a run's own).")
@click.option("--workflow-description", default=None, help="The job's description in the "
              "Dagster UI, before the flow's docstring.")
@click.option("--run-retries", default=0, show_default=True, type=int, help="Re-execute a "
              "failed run from its failure up to this many times (Dagster's run retries: "
              "needs the daemon and `run_retries: {enabled: true}` in dagster.yaml). The "
              "retry continues the same Metaflow run with new attempts of the failed tasks.")
@click.option("--notify-on-error/--no-notify-on-error", default=False, show_default=True,
              help="Notify the channels below when a run fails (for good: not while Dagster "
              "will retry it).")
@click.option("--notify-on-success/--no-notify-on-success", default=False, show_default=True,
              help="Notify the channels below when a run succeeds.")
@click.option("--notify-slack-webhook-url", default=None, metavar="env:NAME",
              help="Slack incoming webhook: the environment variable of the Dagster daemon "
              "holding its URL.")
@click.option("--notify-pager-duty-integration-key", "--notify-pagerduty-integration-key",
              "notify_pager_duty_integration_key", default=None, metavar="env:NAME",
              help="PagerDuty Events API v2: the environment variable of the Dagster daemon "
              "holding the integration (routing) key.")
@click.option("--notify-msteams-webhook-url", default=None, metavar="env:NAME",
              help="Microsoft Teams incoming webhook (Workflows or legacy connector): the "
              "environment variable of the Dagster daemon holding its URL.")
@click.option("--notify-secrets-to-env-file", is_flag=True, default=False,
              help="Accept a literal secret in the --notify-* options: keep it in the .env "
              "file beside the definitions file (which Dagster's CLI loads from the directory "
              "it starts in), never in the definitions file.")
@click.option("--schedule-status", type=click.Choice(SCHEDULE_STATUSES), default="running",
              show_default=True, help="Whether the @schedule starts running or stopped.")
@click.option("--authorize", default=None, help="Production token of the current deployment, "
              "to replace a deployment someone else made.")
@click.option("--generate-new-token", is_flag=True, default=False,
              help="Start a new production namespace for this deployment.")
@click.option("--given-token", "--new-token", "given_token", default=None,
              help="Use this production token (--new-token is Argo's name).")
@click.option("--deployer-attribute-file", default=None, hidden=True,
              help="Write the deployment's identifier to this file (Metaflow's Deployer API).")
@click.option("--plan-file", default=None, hidden=True,
              help="Write the plan (JSON) to this file instead of a definitions file: the "
              "state of the dg component (metaflow_dagster.MetaflowFlowComponent).")
@click.pass_obj
def create(obj, file, name, tags, namespace, decospecs, max_workers, executor, pool,
           pool_limit, workflow_timeout, workflow_priority, workflow_title,
           workflow_description, run_retries, notify_on_error, notify_on_success,
           notify_slack_webhook_url, notify_pager_duty_integration_key,
           notify_msteams_webhook_url, notify_secrets_to_env_file,
           schedule_status, authorize, generate_new_token, given_token,
           deployer_attribute_file, plan_file):
    # Metaflow's own checks of the graph (and pylint, unless --no-pylint), as
    # `python flow.py check` and `argo-workflows create` make them: a flow they refuse
    # fails here, with their message, before anything is written.
    obj.check(obj.graph, obj.flow, obj.environment, pylint=obj.pylint)
    if name and "project" in obj.flow._flow_decorators:
        raise CreateError(
            "--name is not supported for @project flows: the job is named after the project "
            "and branch. Use --branch instead.")
    notify_channels = {"slack": notify_slack_webhook_url,
                       "pagerduty": notify_pager_duty_integration_key,
                       "msteams": notify_msteams_webhook_url}
    missing = executor_problem(executor) or \
        notifications.package_missing(notify_channels, module_found)
    if missing:
        raise CreateError(missing)
    if decospecs:
        _attach_decorators(obj, decospecs)
    file = plan_file or definitions_file(obj, file, name)
    _check_output_path(file)
    options = CompileOptions(
        flow_file=os.path.basename(sys.argv[0]),
        job_name=name,
        tags=list(tags),
        namespace=namespace,
        max_workers=max_workers,
        executor=executor,
        pool=pool,
        pool_limit=pool_limit,
        workflow_timeout_seconds=workflow_timeout,
        top_level_args=top_level_args(obj),
        project=project_info(obj),
        settings=read_task_settings(obj),
        exit_hooks=_exit_hooks(obj.flow),
        workflow_title=workflow_title,
        workflow_description=workflow_description,
        workflow_priority=workflow_priority,
        run_retries=run_retries,
        notify_on_error=notify_on_error,
        notify_on_success=notify_on_success,
        notify_channels=notify_channels,
        notify_secrets_to_env_file=notify_secrets_to_env_file,
    )
    options = replace(options, schedule=schedule_spec(obj.flow),
                      schedule_status=schedule_status,
                      triggers=_triggers(obj.flow, options.project))
    plan = compile_flow(obj.flow, obj.graph, options)
    with datastore_writes(obj.flow_datastore):
        # The token stays in the flow's datastore; the ops read it at run time.
        resolve_token(
            obj.echo, obj.flow_datastore, plan.job_name,
            token_prefix(plan.job_name, plan.project), bool(plan.project), authorize,
            given_token, generate_new_token,
        )
        plan = replace(plan, package=package_flow(obj, file))
    if plan_file:
        write_atomically(plan_file, plan.to_json())
        obj.echo("Wrote the plan of Dagster job *%s* for flow *%s* to %s"
                 % (plan.job_name, plan.flow_name, plan_file))
        return
    _write_definitions(obj, plan, file, deployer_attribute_file, notify_channels)


def _write_definitions(obj, plan, file, deployer_attribute_file, notify_channels):
    secrets = notifications.literal_secrets(plan.job_name, notify_channels)
    text = render(plan, _regenerate_command(file, secrets))
    if secrets:
        _save_secrets(obj, file, secrets)
    write_atomically(file, text)
    record = record_deployment(plan, file, os.path.abspath(sys.argv[0]), os.getcwd(),
                               obj.metadata.metadata_str(), deployer_attribute_file)
    obj.echo("Wrote Dagster job *%s* for flow *%s* to %s" % (plan.job_name, plan.flow_name, file))
    obj.echo("Open it in the Dagster UI:  DAGSTER_HOME=%s dg dev -f %s"
             % (shlex.quote(record.dagster_home), shlex.quote(file)))


def _check_output_path(file):
    """Before anything is written (a production token included): a typo in the
    directory must not create a tree elsewhere, nor fail half-way."""
    directory = os.path.dirname(os.path.abspath(file))
    if not os.path.isdir(directory):
        raise CreateError(
            "Cannot write the definitions file %s: the directory %s does not exist. Create "
            "it first, or give another path." % (file, directory))
    if os.path.isdir(file):
        raise CreateError(
            "Cannot write the definitions file %s: it is a directory. Give a file name, "
            "e.g. %s." % (file, os.path.join(file, "flow_dagster.py")))


def top_level_args(obj):
    """Metaflow options given before `dagster`, to repeat before every `step`. The
    datastore, metadata and environment reach the tasks as settings
    (packaging/task_settings.py), which the worker's environment may override."""
    root = click.get_current_context().find_root().params
    args = ["--quiet", "--no-pylint"]
    for deco in obj.flow._flow_decorators.values():
        for deco_instance in deco if isinstance(deco, list) else [deco]:
            args += _cli_options(deco_instance.get_top_level_options())
    if root.get("package_suffixes"):
        args.append("--package-suffixes=%s" % root["package_suffixes"])
    return args + _config_args(obj.flow)


def _config_args(flow):
    """Each Config by name only (`--config-value cfg kv.cfg`), as Metaflow's runtime and
    its Argo integration pass them: the task reads the value `create` computed from the
    code package, which holds every Config's value (MetaflowPackage's CONFIG file). So
    a Config's parser runs once, here, and never again in a task."""
    configs = flow.__class__._flow_state.get(FlowStateItems.CONFIGS, {})
    args = []
    for config_name in sorted(configs):
        args += ["--config-value", config_name, ConfigInput.make_key_name(config_name)]
    return args


def _cli_options(options):
    """Flow decorators' top-level options as Metaflow's own runtime passes them:
    unset flags and empty values dropped, multiple values repeated."""
    args = []
    for key, value in options:
        if value is None or value is False:
            continue
        for item in value if isinstance(value, (list, tuple, set)) else [value]:
            args.append("--%s" % key if item is True else "--%s=%s" % (key, item))
    return args


def _triggers(flow, project):
    specs = trigger_specs(flow, project.get("project_name"), project.get("branch_name"))
    return {key: value for key, value in specs.items() if value}


def _exit_hooks(flow):
    hooks = {"on_success": [], "on_error": []}
    for deco in flow._flow_decorators.get("exit_hook", []):
        hooks["on_success"] += deco.success_hooks
        hooks["on_error"] += deco.error_hooks
    return {kind: names for kind, names in hooks.items() if names}


def _attach_decorators(obj, decospecs):
    decorators._attach_decorators(obj.flow, list(decospecs))
    obj.flow.__class__._init_graph()
    obj.graph = obj.flow._graph
    decorators._init_step_decorators(
        obj.flow, obj.graph, obj.environment, obj.flow_datastore, obj.logger
    )


def _save_secrets(obj, file, secrets):
    path = save_secrets(os.path.dirname(os.path.abspath(file)), secrets)
    obj.echo("Warning: kept the secrets given on the command line in %s (%s), readable by "
             "you only: keep it out of version control, and start `dagster dev` or the "
             "daemon in that directory so that Dagster loads it (or set the variables in "
             "their environment). Your shell's history holds them too."
             % (path, ", ".join(sorted(secrets))), fg="yellow")


def _hide(arg, hidden):
    """`arg` (a value, or `--option=value`) with a secret value replaced."""
    option, equals, value = arg.rpartition("=") if arg.startswith("--") else ("", "", arg)
    return option + equals + hidden.get(value, value)


def _regenerate_command(file, secrets=None):
    """The command that made this file, as typed (minus the directories of the flow
    and of the file, and the Deployer API's one-off attribute file); a secret given
    on the command line reads as the variable that keeps it (`env:NAME`)."""
    hidden = {value: "env:%s" % name for name, value in (secrets or {}).items()}
    args = [os.path.basename(a) if a == file else _hide(a, hidden) for a in sys.argv[1:]]
    if "--deployer-attribute-file" in args:
        at = args.index("--deployer-attribute-file")
        del args[at:at + 2]
    args = [a for a in args if not a.startswith("--deployer-attribute-file=")]
    return " ".join(["python", os.path.basename(sys.argv[0])] + [shlex.quote(a) for a in args])


# trigger / status / terminate / resume / delete live in their own module (run_commands.py).
for _command in COMMANDS:
    dagster.add_command(_command)
