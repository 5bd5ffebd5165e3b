"""Engine-free encoders for the sinks: ClickHouse RowBinary rows, Redis RESP commands, DDL.

The Flink-side writers (``connectors/java``) only batch and send these bytes.
"""
