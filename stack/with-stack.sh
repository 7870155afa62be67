#!/usr/bin/env bash
# Run a command with the local stack up. A stack that is already running (or an external one
# named by SLUICEGATE_KAFKA_BOOTSTRAP) is reused and left running; a stack this script
# started is stopped afterwards, whatever the command's outcome.
set -uo pipefail
. "$(dirname "$0")/env.sh"
if [ -n "${SLUICEGATE_KAFKA_BOOTSTRAP:-}" ]; then
  echo "stack: using the external stack at $SLUICEGATE_KAFKA_BOOTSTRAP"
elif pid_alive "$RUN/kafka/broker.pid" && pid_alive "$RUN/connect/connect.pid"; then
  echo "stack: reusing the running stack"
else
  trap 'bash "$ROOT/stack/down.sh"' EXIT
  bash "$ROOT/stack/up.sh" || exit 1
fi
# the tests and the product read the same settings the stack was started with
export SLUICEGATE_KAFKA_BOOTSTRAP=${SLUICEGATE_KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}
export SLUICEGATE_CONNECT_URL=${SLUICEGATE_CONNECT_URL:-$CONNECT_URL}
export SLUICEGATE_PG_PORT=$PGPORT SLUICEGATE_PG_DB=$PGDB SLUICEGATE_PG_USER=$PGUSER_CDC SLUICEGATE_PG_PASSWORD=$PGPASS_CDC
"$@"
