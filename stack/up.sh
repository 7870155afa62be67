#!/usr/bin/env bash
# Start the local stack (PostgreSQL, Kafka, Kafka Connect + Debezium) and wait until each
# part answers. A second run is a no-op. ClickHouse is chDB, embedded in `sluicegate serve`.
set -euo pipefail
. "$(dirname "$0")/env.sh"
start=$SECONDS
"$ROOT/stack/fetch-jars.sh"
"$ROOT/stack/pg-up.sh"
"$ROOT/stack/kafka-up.sh"
"$ROOT/stack/connect-up.sh"
echo "stack: up in $((SECONDS - start))s  (kafka 127.0.0.1:$KAFKA_PORT, connect $CONNECT_URL, postgres 127.0.0.1:$PGPORT)"
