#!/usr/bin/env bash
# The test command (README): installs what a fresh Debian machine lacks, starts a throw-away
# PostgreSQL for the store tests, runs the whole suite, and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_pkgs=()
command -v sipp >/dev/null 2>&1 || need_pkgs+=(sip-tester)
command -v baresip >/dev/null 2>&1 || need_pkgs+=(baresip)
command -v espeak-ng >/dev/null 2>&1 || need_pkgs+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need_pkgs+=(sox)
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || need_pkgs+=(postgresql)
# The deployment files (tests/deploy_files.rs): Kamailio runs the shipped config, and
# docker-compose checks docker-compose.yml (`config` only: no Docker engine needed).
# (kamailio lives in /usr/sbin, outside a user's PATH.)
command -v kamailio >/dev/null 2>&1 || [ -x /usr/sbin/kamailio ] || need_pkgs+=(kamailio)
command -v docker-compose >/dev/null 2>&1 || need_pkgs+=(docker-compose)
# The console's browser test: Debian's chromium driven by playwright-core (npm).
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v npm >/dev/null 2>&1 || need_pkgs+=(nodejs npm)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_pkgs[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  # Installed for the tests only: the package's own service is not wanted on 5060.
  if [[ " ${need_pkgs[*]} " == *" kamailio "* ]] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now kamailio >/dev/null 2>&1 || true
  fi
fi

# SIPVicious (svmap, svwar) scans the engine in tests/sip_scanners.rs.
if ! command -v sipvicious_svwar >/dev/null 2>&1; then
  echo "test.sh: installing sipvicious (pip)"
  python3 -m pip install -q --disable-pip-version-check sipvicious >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages sipvicious
fi

# aiosmtpd is the real SMTP server that receives e-mail pages in tests/paging_calls.rs and
# tests/page_channels.rs.
if ! python3 -c "import aiosmtpd" >/dev/null 2>&1; then
  echo "test.sh: installing aiosmtpd (pip)"
  python3 -m pip install -q --disable-pip-version-check aiosmtpd >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages aiosmtpd
fi

# schemathesis drives the console API from its OpenAPI document (tests/console_openapi.rs).
if ! command -v st >/dev/null 2>&1; then
  echo "test.sh: installing schemathesis (pip)"
  python3 -m pip install -q --disable-pip-version-check schemathesis >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check --break-system-packages schemathesis
fi

# playwright-core for tests/console_browser.rs (pinned in tests/browser/package-lock.json).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  echo "test.sh: installing playwright-core (npm)"
  (cd tests/browser && npm ci --no-audit --no-fund >/dev/null)
fi

pg_started=""
cleanup() {
  if [ -n "$pg_started" ]; then
    as_root runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
    as_root rm -rf "$PGDATA"
  fi
}
trap cleanup EXIT
# Interrupted or terminated: still stop PostgreSQL (the EXIT trap runs on exit).
trap 'exit 130' INT TERM

if [ -z "${ASTREINTE_TEST_PG_URL:-}" ]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  id postgres >/dev/null 2>&1 || as_root useradd --system --create-home postgres
  PGDATA=$(mktemp -d /tmp/astreinte-pg.XXXXXX)
  as_root chown postgres "$PGDATA"
  PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  as_root runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -A trust -U postgres >/dev/null
  as_root runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/log" -w \
    -o "-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1" start >/dev/null
  pg_started=1
  export ASTREINTE_TEST_PG_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
  echo "test.sh: PostgreSQL for the tests at $ASTREINTE_TEST_PG_URL"
fi

log=$(mktemp /tmp/astreinte-test.XXXXXX)
status=0
cargo test --no-fail-fast --lib --bins --tests -- "$@" 2>&1 | tee "$log" || status=$?
# One closing line over every test binary (cargo prints one per binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
