#!/usr/bin/env bash
# Stop the PostgreSQL cluster started by pg-up.sh; SLUICEGATE_PG_WIPE=1 also deletes it.
set -euo pipefail
. "$(dirname "$0")/env.sh"
PGBIN=$(pg_bin)
RUN_AS=(); [ "$(id -u)" = 0 ] && RUN_AS=(runuser -u postgres --)
if [ -n "$PGBIN" ] && [ -f "$PGROOT/data/postmaster.pid" ]; then
  "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGROOT/data" -m fast -w -t 60 stop >/dev/null && echo "postgres: stopped"
fi
if [ "${SLUICEGATE_PG_WIPE:-0}" = 1 ]; then rm -rf "$PGROOT"; fi
