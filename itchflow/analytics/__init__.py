"""Analytics over the tape and the books: OHLCV bars (and, built on them, VWAP and moving averages),
bursts, liquidity and order-flow imbalance. Pure core: no pyflink import; the Flink operators in
``jobs/`` load state, call these folds, save state and emit.

* :mod:`itchflow.analytics.bars` -- prints, which of them count, and the bar accumulator
  (``create / add / merge / result``) with broken-trade revisions.
* :mod:`itchflow.analytics.rolling` -- sliding VWAP and SMA / EMA of closes over bars, with revisions,
  in event time.
* :mod:`itchflow.analytics.rolling_stage` -- those per venue and trading day for the market-data job,
  fed by the bar stage (broken trades rebuild them from its day archive).
* :mod:`itchflow.analytics.ofi`, :mod:`itchflow.analytics.liquidity` -- order-flow imbalance and
  liquidity (time-weighted spread, depth, imbalance) over tumbling windows of top-of-book changes;
  :mod:`itchflow.analytics.tumbling` is their shared event-time clock, :mod:`~itchflow.analytics.flow_stage`
  feeds them the books' rows in the job, :mod:`~itchflow.analytics.book_tape` runs them over a file.
* :mod:`itchflow.analytics.top_of_book` -- the books' top-of-book and depth rows read back.
* :mod:`itchflow.analytics.tape` -- the prints and breaks of an ITCH file (the offline path).
* :mod:`itchflow.analytics.cli` -- ``itchflow bars FILE``, the offline reference of the bars.
"""
