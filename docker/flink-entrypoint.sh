#!/usr/bin/env bash
# Start a Flink process from the pip-installed distribution with the mounted flink-conf/ plus
# the container's own settings (FLINK_PROPERTIES: one "key: value" per line), never editing the mount.
set -euo pipefail
mkdir -p "$FLINK_CONF_DIR"
cp /opt/itchflow/flink-conf/* "$FLINK_CONF_DIR"/
if [ -n "${FLINK_PROPERTIES:-}" ]; then
  printf '\n# from FLINK_PROPERTIES\n%s\n' "$FLINK_PROPERTIES" >> "$FLINK_CONF_DIR/config.yaml"
fi
case "${1:-jobmanager}" in
  jobmanager)  exec bash "$FLINK_HOME/bin/jobmanager.sh" start-foreground ;;
  taskmanager) exec bash "$FLINK_HOME/bin/taskmanager.sh" start-foreground ;;
  *)           exec "$@" ;;
esac
