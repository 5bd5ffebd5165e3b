"""The embedded local stack: broker, Flink cluster, ClickHouse endpoint, Redis."""
