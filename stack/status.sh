#!/usr/bin/env bash
# One line per part of the local stack: running or not, and whether it answers.
set -uo pipefail
. "$(dirname "$0")/env.sh"
PGBIN=$(pg_bin)
if [ -n "$PGBIN" ] && "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; then
  echo "postgres  up      127.0.0.1:$PGPORT  data $PGROOT/data"
else echo "postgres  down    127.0.0.1:$PGPORT"; fi
oom=""
if grep -q OutOfMemoryError "$RUN/kafka/broker.log" 2>/dev/null; then
  oom="  (broker.log: OutOfMemoryError; raise SLUICEGATE_KAFKA_HEAP)"
fi
if pid_alive "$RUN/kafka/broker.pid"; then
  if [ -x "$ROOT/.venv/bin/python" ] && ! "$ROOT/.venv/bin/python" -c '
import sys
from confluent_kafka.admin import AdminClient
md = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0}).list_topics(timeout=5)
sys.exit(0 if md.brokers else 1)' "127.0.0.1:$KAFKA_PORT" 2>/dev/null; then
    echo "kafka     failing 127.0.0.1:$KAFKA_PORT  pid $(cat "$RUN/kafka/broker.pid"): no metadata answer$oom"
  else echo "kafka     up      127.0.0.1:$KAFKA_PORT  pid $(cat "$RUN/kafka/broker.pid")$oom"; fi
else echo "kafka     down    127.0.0.1:$KAFKA_PORT$oom"; fi
code=$(curl -s -o /dev/null -w '%{http_code}' "$CONNECT_URL/health" 2>/dev/null || true)
if pid_alive "$RUN/connect/connect.pid"; then echo "connect   up      $CONNECT_URL  health HTTP $code  pid $(cat "$RUN/connect/connect.pid")"
else echo "connect   down    $CONNECT_URL"; fi
