#!/usr/bin/env bash
# Fetch the Kafka broker + Connect jars and the Debezium PostgreSQL plug-in from Maven
# Central into the cache. A no-op while stack/kafka/pom.xml is unchanged.
set -euo pipefail
. "$(dirname "$0")/env.sh"
POM=$ROOT/stack/kafka/pom.xml
stamp=$(sha256sum "$POM" | cut -c1-16)
if [ "$(cat "$K/.stamp" 2>/dev/null)" = "$stamp" ] \
   && compgen -G "$K/lib/kafka_2.13-*.jar" >/dev/null \
   && compgen -G "$K/plugins/debezium-connector-postgres/debezium-connector-postgres-*.jar" >/dev/null; then
  echo "jars: up to date in $K"; exit 0
fi
command -v mvn >/dev/null || { echo "mvn not found: install Maven (Debian: apt-get install maven)" >&2; exit 1; }
rm -rf "$K"                      # never mix jars of two versions on one classpath
mkdir -p "$K"
echo "jars: fetching Kafka, Connect and Debezium from Maven Central into $K ..."
mvn -q -B -Dstyle.color=never ${MAVEN_OFFLINE:+-o} \
    -Dmaven.repo.local="$CACHE/m2" -Dmaven.wagon.http.retryHandler.count=3 \
    -f "$POM" -Dkafka.out="$K" package
echo "$stamp" > "$K/.stamp"
echo "jars: $(ls "$K/lib" | wc -l) in lib/, Debezium plug-in: $(ls "$K/plugins/debezium-connector-postgres" | grep -c '\.jar$') jars"
