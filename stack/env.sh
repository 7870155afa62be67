# Shared settings of the local stack scripts (sourced, never run).
# Downloads are cached outside the clone (every clone reuses them); run-time state
# (data dirs, logs, pid files) stays inside the clone under .run/.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${SLUICEGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluicegate}
K=$CACHE/kafka
RUN=${SLUICEGATE_RUN_DIR:-$ROOT/.run}
KAFKA_PORT=${SLUICEGATE_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${SLUICEGATE_KAFKA_CONTROLLER_PORT:-19093}
CONNECT_PORT=${SLUICEGATE_CONNECT_PORT:-18083}
CONNECT_URL=http://127.0.0.1:$CONNECT_PORT
PGPORT=${SLUICEGATE_PG_PORT:-55432}
PGDB=${SLUICEGATE_PG_DB:-app}
PGUSER_CDC=${SLUICEGATE_PG_USER:-cdc}
PGPASS_CDC=${SLUICEGATE_PG_PASSWORD:-cdc}
# PostgreSQL refuses to run as root and user postgres must reach its data dir, so the
# cluster lives under /tmp, one per clone (the checksum of the clone's path).
PGROOT=${SLUICEGATE_PG_ROOT:-${TMPDIR:-/tmp}/sluicegate-pg-$(printf '%s' "$ROOT" | cksum | cut -d' ' -f1)}
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
JAVA_COMMON=(-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
             -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
             -Dlog4j2.configurationFile="$ROOT/stack/kafka/log4j2.properties")

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_pid_gone() { local pid=$1 n=${2:-60}; while kill -0 "$pid" 2>/dev/null && [ "$n" -gt 0 ]; do sleep 0.5; n=$((n-1)); done; ! kill -0 "$pid" 2>/dev/null; }
stop_pidfile() {   # graceful TERM, then KILL; only the process we started
  local f=$1; [ -f "$f" ] || return 0; local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait_pid_gone "$pid" 60 || kill -KILL "$pid"; fi
  rm -f "$f"
}
