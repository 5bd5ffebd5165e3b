"""itchflow: real-time market-microstructure pipelines on Apache Flink.

The package is the engine-free core (ITCH codec, Avro encoding, order book, analytics,
local stack, CLI). Nothing under ``itchflow`` imports pyflink; the Flink adapters live
in the top-level ``jobs`` and ``connectors`` packages.
"""

__version__ = "0.1.0"
