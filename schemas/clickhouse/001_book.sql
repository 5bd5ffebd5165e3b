-- Order-book outputs. Every table is a ReplacingMergeTree ordered by a deterministic key
-- (venue, trading_date, symbol, seq[, ...]), so rows written again -- by a replay after a Flink
-- restore, or by the same feed day replayed again under any session name -- collapse into one:
-- read with FINAL (or GROUP BY the key) for exact results while merges are pending. seq is the
-- book sequence: the symbol's message sequence in its feed day (see itchflow/pipeline/book_stage.py);
-- another trading date is separate data with its own books. Prices are integer ticks of 10^-4
-- dollars (ITCH Price(4)); ts_event is the event time (UTC, nanoseconds). Tables of an earlier
-- layout are renamed aside when the DDL runs (itchflow/sinks/ddl.py).

CREATE TABLE IF NOT EXISTS top_of_book
(
    venue      LowCardinality(String),
    trading_date Date,
    symbol     LowCardinality(String),
    seq        UInt64 COMMENT 'per-symbol sequence of the event that changed the best bid/offer',
    ts_event   DateTime64(9, 'UTC'),
    bid_price  Int64  COMMENT '0 when the bid side is empty',
    bid_shares UInt64,
    bid_orders UInt32,
    ask_price  Int64  COMMENT '0 when the ask side is empty',
    ask_shares UInt64,
    ask_orders UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY (venue, trading_date, symbol, seq);

CREATE TABLE IF NOT EXISTS depth_snapshots
(
    venue       LowCardinality(String),
    trading_date Date,
    symbol      LowCardinality(String),
    seq         UInt64 COMMENT 'sequence of the last event applied before the snapshot',
    reason      LowCardinality(String) COMMENT 'change (end of a batch that changed the top N levels), else cadence (first batch of a new event-time interval); at most one row per batch',
    ts_event    DateTime64(9, 'UTC'),
    bid_prices  Array(Int64),
    bid_shares  Array(UInt64),
    bid_orders  Array(UInt32),
    ask_prices  Array(Int64),
    ask_shares  Array(UInt64),
    ask_orders  Array(UInt32)
)
ENGINE = ReplacingMergeTree
ORDER BY (venue, trading_date, symbol, seq, reason);

CREATE TABLE IF NOT EXISTS trades
(
    venue        LowCardinality(String),
    trading_date Date,
    symbol       LowCardinality(String),
    seq          UInt64,
    ts_event     DateTime64(9, 'UTC'),
    source       LowCardinality(String) COMMENT 'E executed, C executed with price, P non-cross trade, Q cross trade',
    match_number UInt64,
    price        Int64,
    shares       UInt64,
    side         LowCardinality(String) COMMENT 'side of the resting order (B/S); empty for Q',
    printable    UInt8
)
ENGINE = ReplacingMergeTree
ORDER BY (venue, trading_date, symbol, seq);

-- Every Broken Trade (B) applied: the match number of the print it cancels. A print stands unless
-- its (venue, trading_date, symbol, match_number) is here:
--   SELECT t.* FROM trades AS t FINAL LEFT ANTI JOIN broken_trades AS b
--   USING (venue, trading_date, symbol, match_number)
CREATE TABLE IF NOT EXISTS broken_trades
(
    venue        LowCardinality(String),
    trading_date Date,
    symbol       LowCardinality(String),
    match_number UInt64,
    seq          UInt64 COMMENT 'book sequence of the Broken Trade message',
    ts_event     DateTime64(9, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (venue, trading_date, symbol, match_number);

CREATE TABLE IF NOT EXISTS book_status
(
    venue          LowCardinality(String),
    trading_date   Date,
    symbol         LowCardinality(String),
    seq            UInt64 COMMENT 'sequence of the last event applied; the row with the highest seq is current',
    ts_event       DateTime64(9, 'UTC'),
    messages       UInt64 COMMENT 'events applied to this book so far',
    orders         UInt64 COMMENT 'orders resting now',
    unknown_refs   UInt64 COMMENT 'events that referred to an order the book never saw (captures start mid-day)',
    overfills      UInt64 COMMENT 'executions/cancels larger than the order: clamped and counted',
    integrity      String COMMENT 'empty when the book is sound, else the problems found'
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY (venue, trading_date, symbol);
