#!/bin/sh
# The stand-in postgres:15's entry point: makes the cluster on first start, then runs postgres
# as the postgres user (setpriv execs: postgres is PID 1 and gets compose's stop signal).
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
  echo "postgres stand-in: set POSTGRES_PASSWORD" >&2
  exit 1
fi
install -d -o postgres -g postgres -m 0700 "$PGDATA"
install -d -o postgres -g postgres -m 2775 /var/run/postgresql
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  chown postgres "$pwfile"
  as_pg initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    # A private socket while setting up, so pg_isready says ready only for the real server.
    init_sock=$(mktemp -d)
    chown postgres "$init_sock"
    as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$init_sock" \
      -w start >/dev/null
    as_pg psql -h "$init_sock" -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -q \
      -c "CREATE DATABASE \"$POSTGRES_DB\""
    as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    rm -rf "$init_sock"
  fi
  echo "postgres stand-in: cluster made for $POSTGRES_USER, database $POSTGRES_DB"
fi
if [ "$1" = postgres ]; then
  shift
  exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" \
    -c listen_addresses='*' "$@"
fi
exec "$@"
