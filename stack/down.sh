#!/usr/bin/env bash
# Stop exactly what stack/up.sh started: Connect, then the broker, then PostgreSQL.
# SLUICEGATE_WIPE=1 also deletes their data (Kafka topics, the PostgreSQL cluster).
set -uo pipefail
. "$(dirname "$0")/env.sh"
stop_pidfile "$RUN/connect/connect.pid" && echo "connect: stopped"
stop_pidfile "$RUN/kafka/broker.pid" && echo "kafka: stopped"
SLUICEGATE_PG_WIPE=${SLUICEGATE_WIPE:-0} "$ROOT/stack/pg-down.sh"
if [ "${SLUICEGATE_WIPE:-0}" = 1 ]; then rm -rf "$RUN/kafka" "$RUN/connect"; fi
