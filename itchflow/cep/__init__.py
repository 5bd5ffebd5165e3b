"""Complex events across venues: a symbol's books of every venue meet in one state (the consolidated
best bid and offer), and detectors turn what happens there into alerts.

* :mod:`itchflow.cep.alerts` -- the :class:`~itchflow.cep.alerts.Alert` every detector emits;
* :mod:`itchflow.cep.consolidated` -- per-venue quotes of a symbol and the best locked/crossed pair;
* :mod:`itchflow.cep.detectors` -- the detectors (arbitrage, stale symbols, halts and LULD pauses)
  over one event stream in event-time order, with their parameters;
* :mod:`itchflow.cep.files` -- the same detectors over ITCH files (``itchflow detect``).

Pure code: no Flink, no I/O but the files module's reading of files.
"""
