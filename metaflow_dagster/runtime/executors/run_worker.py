"""The process that executes a run of the embedded instance: what Dagster's own
`dagster api execute_run` does, but started before the run exists.

The command that launches the run (deploy/targets/embedded.py) starts this process
first thing, so that the time a run process spends importing Dagster and this package
overlaps the command's own work (loading the definitions file, creating the run
record). The process then reads the run's id from its stdin and executes the run. If
the command ends without launching one, the pipe closes and the process exits, having
done nothing.

    DAGSTER_HOME=... python -m metaflow_dagster.runtime.executors.run_worker  # run id on stdin
"""

import sys


def main() -> int:
    # What executing any run of a compiled job imports, while the command creates the run.
    from dagster._cli.api import _execute_run_command_body
    from dagster._core.instance import DagsterInstance
    from dagster._utils.interrupts import capture_interrupts

    import metaflow_dagster.runtime  # noqa: F401 (what the definitions file imports)

    run_id = sys.stdin.readline().strip()
    if not run_id:
        return 0  # the command launched no run
    with capture_interrupts(), DagsterInstance.get() as instance:
        return _execute_run_command_body(run_id, instance, lambda event: None,
                                         set_exit_code_on_failure=True)


if __name__ == "__main__":
    sys.exit(main())
