"""Production tokens, as `argo-workflows create` manages them.

A deployed job runs in its own production namespace, `production:<token>`. The
token of each deployment is kept in the flow's datastore (as Metaflow's Airflow
integration does), so a second deployer needs it (`--authorize`) to replace a
deployment someone else made. The ops read it from there at run time
(runtime/launch/production_token.py) and give it to the tasks as METAFLOW_PRODUCTION_TOKEN,
which Metaflow turns into the run's `production:<token>` system tag.
"""

import base64
from hashlib import sha1

from metaflow.exception import MetaflowException
from metaflow.plugins.aws.step_functions.production_token import load_token, new_token, store_token
from metaflow.util import get_username, to_bytes, to_unicode

from ...deployment_record import read_record, write_record


class IncorrectProductionToken(MetaflowException):
    headline = "Incorrect production token"


def token_prefix(job_name: str, project: dict) -> str:
    """@project deployments share a token per project and branch, as on Argo."""
    if not project.get("project_name"):
        return job_name
    branch = to_bytes("%s.%s" % (project["project_name"], project["branch_name"]))
    return "mfprj-%s" % to_unicode(base64.b32encode(sha1(branch).digest()))[:16]


def resolve_token(echo, flow_datastore, job_name, prefix, is_project,
                  authorize=None, given_token=None, generate_new_token=False) -> str:
    previous = check_authorized(flow_datastore, job_name, prefix, authorize,
                                "To deploy a new version", "dagster create --authorize TOKEN")
    if previous is not None:
        prev_token = previous[1]
    else:
        echo("It seems this is the first time you are deploying *%s* to Dagster." % job_name)
        prev_token = None
    if given_token:
        if is_project:
            raise MetaflowException(
                "--given-token is not supported for @project flows. Use "
                "--generate-new-token to create a new token."
            )
        token = _strip(given_token)
    elif prev_token is None or generate_new_token:
        token = new_token(prefix, prev_token)
    else:
        token = prev_token
    # The datastore first: when it cannot be written, nothing is kept on this machine.
    write_record(flow_datastore._storage_impl, job_name, get_username(), token)
    store_token(prefix, token)
    echo("The namespace of this production flow is")
    echo("    production:%s" % token, fg="green")
    echo("To analyze results of this production flow add this line in your notebooks:")
    echo('    namespace("production:%s")' % token, fg="green")
    return token


def check_authorized(flow_datastore, job_name, prefix, authorize, doing, command):
    """Whoever deployed the job may act on it; anyone else needs its production token
    (`authorize`, or the one this user keeps for `prefix`), as on Argo Workflows.
    Returns the deployment's (owner, token), None for a job never deployed."""
    previous = read_record(flow_datastore._storage_impl, job_name)
    if previous is None:
        return None
    owner, token = previous
    authorize = _strip(authorize) if authorize else load_token(prefix)
    if owner != get_username() and authorize != token:
        raise IncorrectProductionToken(
            "Job *%s* was deployed by *%s*. %s, use their production token: `%s`."
            % (job_name, owner, doing, command))
    return previous


def _strip(token: str) -> str:
    return token[len("production:"):] if token.startswith("production:") else token
