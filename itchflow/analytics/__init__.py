"""Analytics over the tape and the books: OHLCV bars (and, built on them, VWAP and moving averages),
bursts, liquidity and order-flow imbalance. Pure core: no pyflink import; the Flink operators in
``jobs/`` load state, call these folds, save state and emit.

* :mod:`itchflow.analytics.bars` -- prints, which of them count, and the bar accumulator
  (``create / add / merge / result``) with broken-trade revisions.
* :mod:`itchflow.analytics.rolling` -- sliding VWAP and SMA / EMA of closes over bars, with revisions,
  in event time.
* :mod:`itchflow.analytics.tape` -- the prints and breaks of an ITCH file (the offline path).
* :mod:`itchflow.analytics.cli` -- ``itchflow bars FILE``, the offline reference of the bars.
"""
