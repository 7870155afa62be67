#!/usr/bin/env bash
# One line per part of the local stack: running or not, and whether it answers.
set -uo pipefail
. "$(dirname "$0")/env.sh"
PGBIN=$(pg_bin)
if [ -n "$PGBIN" ] && "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; then
  echo "postgres  up      127.0.0.1:$PGPORT  data $PGROOT/data"
else echo "postgres  down    127.0.0.1:$PGPORT"; fi
if pid_alive "$RUN/kafka/broker.pid"; then echo "kafka     up      127.0.0.1:$KAFKA_PORT  pid $(cat "$RUN/kafka/broker.pid")"
else echo "kafka     down    127.0.0.1:$KAFKA_PORT"; fi
code=$(curl -s -o /dev/null -w '%{http_code}' "$CONNECT_URL/health" 2>/dev/null || true)
if pid_alive "$RUN/connect/connect.pid"; then echo "connect   up      $CONNECT_URL  health HTTP $code  pid $(cat "$RUN/connect/connect.pid")"
else echo "connect   down    $CONNECT_URL"; fi
