-- Analytics outputs. Bars are ReplacingMergeTree versioned by revision: a bar revised by a late
-- print or a broken trade is written again with the next revision, and one that lost its last print
-- to a broken trade with is_deleted = 1; read with FINAL for the current bars. The trading date is
-- in the key, so a day replayed again replaces its own rows and another day is separate data.
-- Prices are integer ticks of 10^-4 dollars (ITCH Price(4)); window_start is exchange time (UTC, ns).

CREATE TABLE IF NOT EXISTS bars
(
    venue         LowCardinality(String),
    trading_date  Date,
    symbol        LowCardinality(String),
    interval_s    UInt32 COMMENT 'bar size in seconds: 1, 60, 300',
    window_start  DateTime64(9, 'UTC') COMMENT 'the bar covers [window_start, window_start + interval_s)',
    open          Int64,
    high          Int64,
    low           Int64,
    close         Int64,
    volume        UInt64 COMMENT 'shares of the eligible prints (E, C printable, P, Q with shares)',
    notional      Int128 COMMENT 'sum of price x shares, exact',
    vwap          Float64 COMMENT 'notional / volume, in ticks',
    trades        UInt32,
    revision      UInt32,
    is_deleted    UInt8
)
ENGINE = ReplacingMergeTree(revision, is_deleted)
ORDER BY (venue, trading_date, symbol, interval_s, window_start);
