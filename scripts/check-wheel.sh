#!/usr/bin/env bash
# Installs metaflow-dagster as a user would into an environment of their own, and runs the
# README's first flow from there:
#   1. the README's "Install into your own environment" block, run as written from this
#      clone: it builds the wheel and installs it, with extras, into a fresh virtualenv;
#   2. the other project that PyPI serves as `metaflow-dagster` installed beside it, to show
#      that the two share no file and that `python flow.py dagster ...` stays ours;
#   3. the README's `my_flow.py` and the create / trigger --wait / status block after it, run
#      in an empty directory with only that virtualenv's Python.
# Usage: scripts/check-wheel.sh   (CI runs it after the tests; it needs the package index)
set -euo pipefail

cd "$(dirname "$0")/.."
REPO="$(pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export METAFLOW_USER="${METAFLOW_USER:-ci}"
# The tested versions of every dependency (as `make venv` installs them).
export PIP_CONSTRAINT="$REPO/constraints.txt"
OTHER_PROJECT="metaflow-dagster==0.3.7"

# The body of the Nth (default: first) fenced block after the line holding MARKER.
readme_block() {
    awk -v marker="$1" -v nth="${2:-1}" '
        !found && index($0, marker) { found = 1; next }
        found && /^```/ {
            if (inside) { inside = 0; if (++seen == nth) exit } else { inside = 1 }
            next
        }
        inside && seen == nth - 1 { print }' "$REPO/README.md"
}

echo "check-wheel: a fresh virtualenv in $WORK/venv"
python3 -m venv "$WORK/venv"
export VIRTUAL_ENV="$WORK/venv" PATH="$WORK/venv/bin:$PATH"

echo "check-wheel: the README's install block, run in the clone"
install_block="$(readme_block '<!-- test: ci (scripts/check-wheel.sh')"
[ -n "$install_block" ] || { echo "check-wheel: no install block in README.md" >&2; exit 1; }
(cd "$REPO" && bash -e -c "$install_block")
# From here on, away from the clone: its *.egg-info folders would pass for installed packages.
cd "$WORK"
python -m pip show metaflow-on-dagster | grep -q "^Location: $WORK/venv/" \
    || { echo "check-wheel: metaflow-on-dagster is not in the fresh virtualenv" >&2; exit 1; }
# `dg dev -f FILE`, which create and the README give for the UI, works from this virtualenv.
[ "$(command -v dg)" = "$WORK/venv/bin/dg" ] && dg --version \
    || { echo "check-wheel: no dg (dagster-dg-cli) in the fresh virtualenv" >&2; exit 1; }

echo "check-wheel: $OTHER_PROJECT beside it"
PIP_CONSTRAINT="" python -m pip install -q --no-deps "$OTHER_PROJECT"
python - <<'PY'
from importlib.metadata import distribution

def files(name):
    return {str(f) for f in distribution(name).files if ".dist-info" not in str(f)}

shared = files("metaflow-on-dagster") & files("metaflow-dagster")
assert not shared, "files installed by both distributions: %s" % sorted(shared)
print("check-wheel: no file shared with metaflow-dagster", distribution("metaflow-dagster").version)
PY

echo "check-wheel: the README's first flow, in an empty directory"
mkdir "$WORK/quickstart" "$WORK/home"
cd "$WORK/quickstart"
export HOME="$WORK/home"
readme_block '<!-- test: file my_flow.py -->' > my_flow.py
python - <<'PY'
# With both installed, Metaflow's `dagster` command and Deployer are ours.
from metaflow.plugins import DEPLOYER_IMPL_PROVIDERS, get_plugin_cli_path

cli = get_plugin_cli_path()["dagster"]
deployer = {d.TYPE: d.__module__ for d in DEPLOYER_IMPL_PROVIDERS}["dagster"]
assert cli.startswith("metaflow_dagster.") and deployer.startswith("metaflow_dagster."), (
    cli, deployer)
print("check-wheel: the `dagster` command is %s, the Deployer %s" % (cli, deployer))
PY
# The block after my_flow.py: create, trigger --alpha 0.5 --wait, status.
bash -e -c "$(readme_block '<!-- test: file my_flow.py -->' 2)" | tee quickstart.out
grep -q "SUCCEEDED" quickstart.out
python - <<'PY'
from metaflow import Flow, namespace

namespace(None)
run = Flow("MyFlow").latest_run
assert run.successful and run.data.total == 0.5 * (1 + 4 + 9), (run, run.data.total)
print("check-wheel: %s succeeded, total = %s" % (run.pathspec, run.data.total))
PY
echo "check-wheel: passed"
