"""The README's recipes, run as written, so the README cannot drift: each ```bash block
in its own `bash -e`, each ```python block in its own `python`, in order, in one
temporary directory, as a newcomer would run them: only METAFLOW_USER set, the
virtualenv's bin first on PATH, no DAGSTER_HOME (and a home directory of its own,
where the default Dagster home and Metaflow's production tokens go).

A block right after `<!-- test: file NAME -->` is written to NAME; one after
`<!-- test: serve (why) -->` serves the Dagster UI until Ctrl-C: it is started as written,
in the background, and stopped once the block after it has run (against it); one after
`<!-- test: skip (why) -->` is not run (the repository's own make targets): there must be
few of those, each with its reason. One after `<!-- test: ci (scripts/X ...) -->` is run by
that script of CI's instead (installing into a fresh virtualenv), which must exist and be
called by .ci/run."""

import os
import re
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
from harness import REPO, DagsterDev

pytestmark = pytest.mark.e2e

BLOCK = re.compile(
    r"(?:<!-- test: (?P<mark>[^>]*?) -->\n)?^```(?P<lang>\w+)\n(?P<body>.*?)^```$",
    re.S | re.M)
BLOCK_TIMEOUT = 600
# Where `dg dev` serves the UI when not told otherwise, as the README's blocks use it.
DG_DEV_PORT = 3000


def readme_blocks():
    """(language, body, mark) of each fenced block of the README, in order."""
    text = (REPO / "README.md").read_text()
    return [(m["lang"], m["body"], m["mark"]) for m in BLOCK.finditer(text)]


def test_the_readme_marks_few_blocks_and_says_why():
    marks = [mark for _, _, mark in readme_blocks() if mark]
    skips = [m for m in marks if m.startswith("skip")]
    assert all(re.fullmatch(r"(skip|ci|serve) \(.+\)", m) or re.fullmatch(r"file \S+", m)
               for m in marks), marks
    ci_run = (REPO / ".ci" / "run").read_text()
    for mark in marks:
        if mark.startswith("ci"):
            script = re.match(r"ci \((\S+)", mark)[1]
            assert (REPO / script).is_file() and script in ci_run, mark
    assert 1 <= len(skips) <= 3, skips
    runnable = [lang for lang, _, mark in readme_blocks() if not mark]
    assert runnable.count("bash") >= 4 and runnable.count("python") >= 1, runnable


def _newcomer_env(tmp_path: Path) -> dict:
    home = tmp_path / "newcomer"
    home.mkdir()
    return {
        "METAFLOW_USER": os.environ.get("METAFLOW_USER", "newcomer"),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "HOME": str(home),
    }


def test_the_readme_recipes_run_as_written(tmp_path):
    env = _newcomer_env(tmp_path)
    default_home = Path(env["HOME"]) / ".metaflow_dagster" / "dagster_home"
    work = tmp_path / "work"
    work.mkdir()
    outputs = []
    with ExitStack() as server:
        for lang, body, mark in readme_blocks():
            if mark and mark.startswith(("skip", "ci")):
                continue
            if mark and mark.startswith("serve"):
                server.enter_context(DagsterDev(
                    default_home, [work / "myflow_dagster.py"], work, env=env,
                    port=DG_DEV_PORT, command=["bash", "-e", "-c", body]))
                continue
            if mark:
                (work / mark.split(None, 1)[1]).write_text(body)
                continue
            argv = {"bash": ["bash", "-e", "-c", body], "python": ["python", "-c", body]}[lang]
            proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                                  timeout=BLOCK_TIMEOUT)
            output = proc.stdout + proc.stderr
            assert proc.returncode == 0, "README block failed:\n%s\n--- output:\n%s" % (
                body, output[-5000:])
            outputs.append(output)
            server.close()  # a served UI lives for the one block after it
    everything = "\n".join(outputs)
    # The last block defines the downstream asset (it runs in tests/e2e/test_dagster_view_runs.py).
    create_and_wait, through_webserver, job_execute, shell, other_home, deployer, event, \
        operations, _downstream = outputs

    # The default Dagster home: created by the first command that needed it, said once.
    assert everything.count("Created the Dagster home %s " % default_home) == 1, everything
    assert "enabled: false" in (default_home / "dagster.yaml").read_text()
    # `export DAGSTER_HOME=$PWD/.dagster_home` made one more, on first use.
    assert (work / ".dagster_home" / "dagster.yaml").exists()
    # Quiet: no telemetry banner anywhere; no DEBUG event flood from our commands (Dagster's
    # own `dagster job execute` prints its event log).
    assert "Telemetry:" not in everything, everything
    ours = "\n".join(o for o in outputs if o is not job_execute)
    assert "STEP_START" not in ours and "DEBUG" not in ours, ours
    assert (work / "myflow_dagster.py").exists()
    assert "[6/6] end  SUCCESS" in create_and_wait
    assert re.search(r"Run MyFlow/dagster-\w+ ended SUCCEEDED \(Dagster SUCCESS\)",
                     create_and_wait)
    assert re.search(r"^Run \S+ of job MyFlow \(Metaflow run MyFlow/dagster-\w+\): "
                     r"SUCCEEDED \(Dagster SUCCESS\)$", create_and_wait, re.M)
    # Through the webserver `dg dev` served: its URL in the run's link, the run to its end.
    url = "http://127.0.0.1:%d" % DG_DEV_PORT
    assert re.search(r"^\s*Dagster UI:\s+%s/runs/[\w-]+$" % re.escape(url), through_webserver,
                     re.M), through_webserver
    assert re.search(r"Run MyFlow/dagster-\w+ ended SUCCEEDED \(Dagster SUCCESS\)",
                     through_webserver), through_webserver
    assert "RUN_SUCCESS" in job_execute
    assert re.search(r": (PENDING|RUNNING) \(Dagster \w+\), suspended$", shell, re.M), shell
    assert "Resuming MyFlow/dagster-" in shell and ": re-running join, end" in shell
    assert re.search(r"ended ABORTED \(Dagster CANCELED\)", shell), shell
    assert "ended SUCCEEDED" in other_home
    # What the block prints itself (the Deployer shows its commands' output too).
    printed = re.findall(r"^(?:SUCCEEDED.*|Run\(.*)$", deployer, re.M)
    assert len(printed) == 3, deployer
    assert re.fullmatch(r"SUCCEEDED Run\('MyFlow/dagster-\w+'\)", printed[0]), printed
    assert printed[1] == "SUCCEEDED", printed
    assert re.fullmatch(r"Run\('MyFlow/dagster-\w+'\)", printed[2]), printed
    assert re.search(r"^Event data_ready sent \(id [\w-]+\)\.$", event, re.M)
    assert "ended SUCCEEDED" in operations

    # What the recipes left in the instance, read back as the UI would show it.
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(default_home)) as instance:
        statuses = [r.status.value for r in instance.get_runs()]
        titled = [(r.tags.get("dagster/priority"), r.tags.get("metaflow/title"))
                  for r in instance.get_runs() if "metaflow/title" in r.tags]
    # trigger --wait, the one through the webserver, job execute, suspended run, its resume,
    # terminated run, two Deployer runs, the run with a priority and a title
    assert sorted(statuses) == sorted(["SUCCESS"] * 8 + ["CANCELED"]), statuses
    assert titled == [("10", "rerun for Q3")], titled
