#!/usr/bin/env bash
# Install the servers that the `services` tests start (tests/services.py): PostgreSQL, Redis,
# Chromium with its WebDriver for the UI tests, and iproute2 and util-linux (ip, nsenter,
# unshare) for the hosts of tests/hosts.py. For Debian 12, as root; idempotent: does nothing
# when every binary is already there. Starts nothing: the tests run their own servers on their own
# ports and directories (and do not use any system service the packages may have started).
#
# Usage: sudo scripts/install-services.sh     (apt's output goes to $INSTALL_SERVICES_LOG)
set -euo pipefail

LOG="${INSTALL_SERVICES_LOG:-/tmp/install-services.log}"
PACKAGES=(postgresql redis-server chromium chromium-driver iproute2 util-linux)

missing() {
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || echo "postgresql"
    command -v redis-server >/dev/null || echo "redis-server"
    [ -x /usr/bin/chromium ] || echo "chromium"
    [ -x /usr/bin/chromedriver ] || echo "chromium-driver"
    command -v ip >/dev/null || echo "iproute2"
    { command -v nsenter && command -v unshare; } >/dev/null || echo "util-linux"
}

fail() {
    echo "install-services: $1; last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2 || true
    exit 1
}

todo="$(missing | paste -sd ' ')"
if [ -z "$todo" ]; then
    echo "install-services: postgresql, redis-server, chromium, chromedriver, ip, nsenter" \
        "already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-services: missing ${todo}; run this script as root" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
: >"$LOG"
echo "install-services: missing ${todo}; apt-get update (log: $LOG)"
apt-get update >>"$LOG" 2>&1 || fail "apt-get update failed"
echo "install-services: apt-get install ${PACKAGES[*]}"
apt-get install -y --no-install-recommends "${PACKAGES[@]}" >>"$LOG" 2>&1 \
    || fail "apt-get install failed"

todo="$(missing | paste -sd ' ')"
[ -z "$todo" ] || fail "still missing after the install: ${todo}"
# PostgreSQL refuses to run as root: as root, the tests run it as this user.
getent passwd postgres >/dev/null || fail "no 'postgres' user after installing postgresql"
echo "install-services: done"
