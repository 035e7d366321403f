#!/usr/bin/env bash
# Run Metaflow's own UX test suite (test/ux of a Metaflow checkout) in deployer mode
# against this project's `dagster` deployer, on the embedded default: a local SQLite
# Dagster instance and a local Metaflow datastore and metadata. Fetches nothing.
#
#   scripts/metaflow-ux-suite.sh /path/to/metaflow [pytest arguments...]
#
# e.g. scripts/metaflow-ux-suite.sh ~/src/metaflow -k test_resume
#
# The suite needs omegaconf and pytest-timeout (`pip install omegaconf pytest-timeout`
# into the project's virtualenv). Everything the runs write (definitions files, the
# Dagster home, the datastore) goes to a fresh directory, printed at the start and kept
# for inspection ($UX_WORK_DIR to choose it).
set -euo pipefail

if [ $# -lt 1 ] || [ ! -d "$1/test/ux" ]; then
    echo "usage: $0 /path/to/metaflow-checkout [pytest arguments...]" >&2
    echo "  (the directory must contain test/ux, Metaflow's UX test suite)" >&2
    exit 2
fi
SUITE="$(cd "$1/test/ux" && pwd)"
shift

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
if ! "$PYTHON" -c "import omegaconf, pytest_timeout" 2>/dev/null; then
    echo "$PYTHON lacks the suite's own requirements: $PYTHON -m pip install omegaconf" \
         "pytest-timeout" >&2
    exit 2
fi

WORK="${UX_WORK_DIR:-$(mktemp -d -t metaflow-ux-dagster.XXXXXX)}"
mkdir -p "$WORK/metaflow_home" "$WORK/dagster_home" "$WORK/cwd"
echo "==> Metaflow UX suite at $SUITE, deployer mode, scheduler 'dagster'; work dir $WORK"

# The suite's core/conftest.py points Metaflow at its devstack (METAFLOW_HOME,
# METAFLOW_PROFILE=local, MinIO and AWS emulators) unless these are set already: give it
# a profile of its own that keeps everything local.
cat > "$WORK/metaflow_home/config_local.json" <<EOF
{
    "METAFLOW_DEFAULT_DATASTORE": "local",
    "METAFLOW_DEFAULT_METADATA": "local",
    "METAFLOW_DATASTORE_SYSROOT_LOCAL": "$WORK/datastore"
}
EOF
printf 'telemetry:\n  enabled: false\n' > "$WORK/dagster_home/dagster.yaml"
export METAFLOW_HOME="$WORK/metaflow_home"
export METAFLOW_PROFILE=local
# verify_run_provenance() reads this variable to expect a local datastore.
export METAFLOW_DEFAULT_DATASTORE=local
export METAFLOW_DEFAULT_METADATA=local
export METAFLOW_USER="${METAFLOW_USER:-ci}"
export METAFLOW_TOKEN_HOME="$WORK/tokens"
export DAGSTER_HOME="$WORK/dagster_home"

# Definitions files are written to the deployer's working directory.
cd "$WORK/cwd"
# --exec-mode deployer: only the deployer-mode variant of each test (the runner-mode
# ones exercise `flow.py run`, not us); the Airflow and Step Functions compilation
# tests, which compile with those integrations of Metaflow whatever the scheduler, are
# left out.
exec "$PYTHON" -m pytest "$SUITE" -p no:cacheprovider -p no:xdist \
    --rootdir "$SUITE" -c "$SUITE/pytest.ini" \
    --scheduler-type dagster --exec-mode deployer -m "not airflow_compilation and not sfn_compilation" \
    -rA "$@"
