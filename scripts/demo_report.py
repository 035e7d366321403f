"""Print the outcome of the latest Dagster run of a job and of the Metaflow run behind it.

Run from the directory that holds the flow (its local .metaflow datastore is there),
with DAGSTER_HOME pointing at the Dagster instance the job ran in.
"""

import argparse
import sys

from dagster import DagsterInstance, RunsFilter
from metaflow import Flow, namespace
from metaflow.exception import MetaflowNotFound


def dagster_status(job_name):
    instance = DagsterInstance.get()
    runs = instance.get_runs(filters=RunsFilter(job_name=job_name), limit=1)
    if not runs:
        return None, None
    return runs[0].run_id, runs[0].status.value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flow", required=True, help="Metaflow flow name, e.g. HelloFlow")
    parser.add_argument("--job", required=True, help="Dagster job name")
    parser.add_argument("--artifact", required=True, help="Artifact of the end step to show")
    args = parser.parse_args(argv)

    dagster_run_id, status = dagster_status(args.job)
    if dagster_run_id is None:
        print("Dagster run:        none found for job %s" % args.job)
    else:
        print("Dagster run:        %s (%s)" % (dagster_run_id, status))

    namespace(None)
    try:
        run = Flow(args.flow).latest_run
    except MetaflowNotFound:
        run = None
    if run is None:
        print("Metaflow run:       none found for %s" % args.flow)
        print("                    (run this script from the directory of the flow file)")
        return 1
    print("Metaflow pathspec:  %s" % run.pathspec)
    print("Metaflow status:    %s" % ("successful" if run.successful else "not successful"))
    label = "%s:" % args.artifact
    data = run.data if run.successful else None
    if data is not None and args.artifact in data:
        print("%-19s %r" % (label, getattr(data, args.artifact)))
    else:
        print("%-19s (not available)" % label)
    return 0 if run.successful and status in (None, "SUCCESS") else 1


if __name__ == "__main__":
    sys.exit(main())
