#!/usr/bin/env bash
# Compile examples/hello_flow.py into a Dagster job, run it, and report the result.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$(pwd)"

export METAFLOW_USER="${METAFLOW_USER:-demo}"
export DAGSTER_HOME="$ROOT/.dagster_home"
mkdir -p "$DAGSTER_HOME" build
# A dagster.yaml silences the "no dagster.yaml" warning; telemetry off, no banner.
[ -f "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' \
    > "$DAGSTER_HOME/dagster.yaml"

DEFS=build/hello_flow_dagster.py

echo "==> Compiling examples/hello_flow.py into $DEFS"
.venv/bin/python examples/hello_flow.py dagster create "$DEFS"

echo "==> Running the HelloFlow job on Dagster"
# Dagster's console logger at INFO: the run's steps and results, without its DEBUG lines.
printf 'loggers:\n  console:\n    config:\n      log_level: INFO\n' > build/demo_run_config.yaml
rc=0
# `dagster job execute` is what the README's recipes run too; Dagster 1.13 calls it
# superseded by `dg launch`, which needs the separate dagster-dg-cli package.
PYTHONWARNINGS="ignore:Function \`job_execute_command\` is superseded" \
    .venv/bin/dagster job execute -f "$DEFS" -j HelloFlow -c build/demo_run_config.yaml || rc=$?

echo "==> Result"
# The local Metaflow datastore (.metaflow) lives next to the flow file, because
# steps run with the flow's directory as their working directory.
report_rc=0
(cd examples && ../.venv/bin/python ../scripts/demo_report.py \
    --flow HelloFlow --job HelloFlow --artifact message) || report_rc=$?

echo
echo "Open it in the Dagster UI:"
echo "  DAGSTER_HOME=$DAGSTER_HOME .venv/bin/dg dev -f $DEFS"
if [ "$rc" -eq 0 ]; then
    rc=$report_rc
fi
exit "$rc"
