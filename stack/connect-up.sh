#!/usr/bin/env bash
# Kafka Connect distributed worker with the Debezium PostgreSQL plug-in. Idempotent.
# A second, separate worker (e.g. one a test stops and restarts) needs its own
# SLUICEGATE_RUN_DIR, SLUICEGATE_CONNECT_PORT, SLUICEGATE_CONNECT_GROUP and
# SLUICEGATE_CONNECT_STORAGE_PREFIX (its config/offset/status topics).
set -euo pipefail
. "$(dirname "$0")/env.sh"
D=$RUN/connect; mkdir -p "$D"
if pid_alive "$D/connect.pid"; then echo "connect: already running (pid $(cat "$D/connect.pid"))"; exit 0; fi
cat > "$D/worker.properties" <<PROPS
bootstrap.servers=127.0.0.1:$KAFKA_PORT
group.id=${SLUICEGATE_CONNECT_GROUP:-sluicegate-connect}
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false
config.storage.topic=${SLUICEGATE_CONNECT_STORAGE_PREFIX:-_connect}-configs
offset.storage.topic=${SLUICEGATE_CONNECT_STORAGE_PREFIX:-_connect}-offsets
status.storage.topic=${SLUICEGATE_CONNECT_STORAGE_PREFIX:-_connect}-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
status.storage.replication.factor=1
offset.storage.partitions=1
status.storage.partitions=1
offset.flush.interval.ms=1000
scheduled.rebalance.max.delay.ms=0
listeners=http://127.0.0.1:$CONNECT_PORT
rest.advertised.host.name=127.0.0.1
rest.advertised.port=$CONNECT_PORT
plugin.path=$K/plugins
plugin.discovery=service_load
PROPS
: >"$D/connect.log"
nohup "$JAVA" ${SLUICEGATE_CONNECT_HEAP:--Xms256m -Xmx1g} "${JAVA_COMMON[@]}" -Dkafka.logs.dir="$D" \
   -cp "$K/lib/*" org.apache.kafka.connect.cli.ConnectDistributed "$D/worker.properties" \
   >"$D/connect.log" 2>&1 </dev/null &
echo $! >"$D/connect.pid"
deadline=$((SECONDS + ${SLUICEGATE_CONNECT_START_TIMEOUT:-120}))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$CONNECT_URL/health" || true)" = 200 ]; do
  pid_alive "$D/connect.pid" || { echo "connect: worker exited:"; tail -40 "$D/connect.log"; rm -f "$D/connect.pid"; exit 1; }
  [ $SECONDS -lt $deadline ] || { echo "connect: worker not healthy in time:"; tail -40 "$D/connect.log"; exit 1; }
  sleep 0.5
done
plugins=$(curl -s "$CONNECT_URL/connector-plugins" || true)
case $plugins in *io.debezium.connector.postgresql.PostgresConnector*) ;;
  *) echo "connect: Debezium PostgresConnector not found on plugin.path=$K/plugins: $plugins"; exit 1;; esac
echo "connect: healthy on $CONNECT_URL with the Debezium PostgreSQL plug-in (pid $(cat "$D/connect.pid"))"
