#!/usr/bin/env bash
# Single-node Kafka 4.x in KRaft combined mode (broker+controller) on loopback.
# Idempotent: a running broker is left alone; storage is formatted once and kept.
set -euo pipefail
. "$(dirname "$0")/env.sh"
D=$RUN/kafka; mkdir -p "$D"
if pid_alive "$D/broker.pid"; then echo "kafka: already running (pid $(cat "$D/broker.pid"))"; exit 0; fi
cat > "$D/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$D/data
num.partitions=${SLUICEGATE_KAFKA_PARTITIONS:-4}
num.recovery.threads.per.data.dir=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
offsets.topic.num.partitions=4
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
PROPS
if [ ! -s "$D/data/meta.properties" ]; then
  "$JAVA" -Xmx256m "${JAVA_COMMON[@]}" -cp "$K/lib/*" kafka.tools.StorageTool \
     format --standalone -t "${SLUICEGATE_KAFKA_CLUSTER_ID:-U2x1aWNlZ2F0ZUthZmthMQ}" -c "$D/server.properties" >"$D/format.log" 2>&1 \
     || { cat "$D/format.log"; exit 1; }
fi
: >"$D/broker.log"
# 2 GiB holds a few thousand partitions (a thousand subjects with their CDC topics); a
# broker out of memory exits (and says so in `make status`) instead of limping on
nohup "$JAVA" ${SLUICEGATE_KAFKA_HEAP:--Xms1g -Xmx2g} -XX:+ExitOnOutOfMemoryError "${JAVA_COMMON[@]}" -Dkafka.logs.dir="$D" \
   -cp "$K/lib/*" kafka.Kafka "$D/server.properties" >"$D/broker.log" 2>&1 </dev/null &
echo $! >"$D/broker.pid"
deadline=$((SECONDS + ${SLUICEGATE_KAFKA_START_TIMEOUT:-90}))
until grep -q 'Kafka Server started' "$D/broker.log"; do
  pid_alive "$D/broker.pid" || { echo "kafka: broker exited:"; tail -40 "$D/broker.log"; rm -f "$D/broker.pid"; exit 1; }
  [ $SECONDS -lt $deadline ] || { echo "kafka: broker not started in time:"; tail -40 "$D/broker.log"; exit 1; }
  sleep 0.3
done
# the log line comes before the listeners serve metadata: wait for a real metadata answer
PY=$ROOT/.venv/bin/python
if [ -x "$PY" ]; then
  "$PY" - "127.0.0.1:$KAFKA_PORT" <<'PYEOF' || { echo "kafka: no metadata answer:"; tail -40 "$D/broker.log"; exit 1; }
import sys, time
from confluent_kafka.admin import AdminClient
admin = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0})
deadline = time.monotonic() + 60
while True:
    try:
        if admin.list_topics(timeout=5).brokers:
            break
    except Exception:
        if time.monotonic() > deadline:
            raise
    time.sleep(0.3)
PYEOF
fi
echo "kafka: started on 127.0.0.1:$KAFKA_PORT (pid $(cat "$D/broker.pid"))"
