#!/usr/bin/env bash
# The "microservice database": a PostgreSQL cluster with logical decoding, loopback only,
# a REPLICATION role and a database it owns. Idempotent; installs PostgreSQL from Debian's
# packages when missing and running as root.
set -euo pipefail
. "$(dirname "$0")/env.sh"
if [ -z "$(pg_bin)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "postgres: installing PostgreSQL from Debian's packages ..."
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "PostgreSQL server binaries not found. Install them (Debian/Ubuntu: sudo apt-get install postgresql)," >&2
    echo "or point the tests at an existing server with logical decoding via SLUICEGATE_PG_* settings." >&2
    exit 1
  fi
fi
PGBIN=$(pg_bin)
RUN_AS=()
if [ "$(id -u)" = 0 ]; then              # initdb/postgres refuse to run as root
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  RUN_AS=(runuser -u postgres --)
fi
mkdir -p "$PGROOT"
[ "$(id -u)" = 0 ] && chown postgres: "$PGROOT"
if [ ! -s "$PGROOT/data/PG_VERSION" ]; then
  "${RUN_AS[@]}" "$PGBIN/initdb" -D "$PGROOT/data" -U postgres --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 >"$PGROOT/initdb.log" 2>&1 \
   || { cat "$PGROOT/initdb.log"; exit 1; }
  cat >>"$PGROOT/data/postgresql.conf" <<CONF
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_slot_wal_keep_size = 1GB
fsync = off
full_page_writes = off
shared_buffers = 128MB
CONF
  cat >"$PGROOT/data/pg_hba.conf" <<HBA
local   all          all                    trust
host    all          all   127.0.0.1/32     trust
local   replication  all                    trust
host    replication  all   127.0.0.1/32     trust
HBA
fi
if ! "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" status >/dev/null 2>&1; then
  # address, port and socket are given at each start, so they follow the current settings
  "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -l "$PGROOT/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGROOT" start >/dev/null
  started=1
fi
PSQL=("${RUN_AS[@]}" "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qAt)
"${PSQL[@]}" -d postgres -c "SELECT 1 FROM pg_roles WHERE rolname='$PGUSER_CDC'" | grep -q 1 \
  || "${PSQL[@]}" -d postgres -c "CREATE ROLE $PGUSER_CDC WITH LOGIN REPLICATION PASSWORD '$PGPASS_CDC'"
"${PSQL[@]}" -d postgres -c "SELECT 1 FROM pg_database WHERE datname='$PGDB'" | grep -q 1 \
  || "${PSQL[@]}" -d postgres -c "CREATE DATABASE $PGDB OWNER $PGUSER_CDC"
echo "postgres: ${started:+started, }accepting connections on 127.0.0.1:$PGPORT (database $PGDB, role $PGUSER_CDC)"
