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

-- The sliding VWAP of [window_end - window_s, window_end), from the 1 s bars of one trading day,
-- emitted when its bars change (a bar enters or leaves the window); read the value at time t as the
-- latest window_end <= t. Revised (next revision) while its bars may still change.
CREATE TABLE IF NOT EXISTS vwap
(
    venue         LowCardinality(String),
    trading_date  Date,
    symbol        LowCardinality(String),
    window_s      UInt32 COMMENT 'window length in seconds (e.g. 300)',
    window_end    DateTime64(9, 'UTC') COMMENT 'the window covers [window_end - window_s, window_end)',
    vwap          Float64 COMMENT 'notional / volume, in ticks',
    volume        UInt64,
    notional      Int128 COMMENT 'sum of price x shares, exact',
    trades        UInt32,
    revision      UInt32,
    is_deleted    UInt8
)
ENGINE = ReplacingMergeTree(revision, is_deleted)
ORDER BY (venue, trading_date, symbol, window_s, window_end);

-- Simple and exponential moving averages (alpha = 2 / (n + 1)) of the closes of a trading day's
-- interval_s bars, at each bar from the n-th of the day on; bars without prints are skipped, not filled.
CREATE TABLE IF NOT EXISTS moving_averages
(
    venue         LowCardinality(String),
    trading_date  Date,
    symbol        LowCardinality(String),
    interval_s    UInt32 COMMENT 'bar size in seconds (e.g. 60)',
    n             UInt32 COMMENT 'bars averaged',
    window_start  DateTime64(9, 'UTC') COMMENT 'start of the bar the averages are at',
    sma           Nullable(Float64) COMMENT 'mean of the last n closes, in ticks; NULL before n bars',
    ema           Float64 COMMENT 'EMA of the closes from the first bar of the day, in ticks',
    revision      UInt32,
    is_deleted    UInt8
)
ENGINE = ReplacingMergeTree(revision, is_deleted)
ORDER BY (venue, trading_date, symbol, interval_s, n, window_start);

-- Order-flow imbalance (Cont, Kukanov & Stoikov 2014) of a symbol's best bid and ask over a tumbling
-- window [window_start, window_start + interval_s): ofi = sum of e_n over the window's top-of-book
-- changes (shares), split into its bid and ask terms. Each window is written once, when final.
CREATE TABLE IF NOT EXISTS ofi
(
    venue         LowCardinality(String),
    trading_date  Date,
    symbol        LowCardinality(String),
    interval_s    UInt32 COMMENT 'window size in seconds: 1, 60',
    window_start  DateTime64(9, 'UTC'),
    ofi           Int64 COMMENT 'bid_flow + ask_flow, shares',
    bid_flow      Int64,
    ask_flow      Int64,
    updates       UInt32 COMMENT 'top-of-book changes in the window'
)
ENGINE = ReplacingMergeTree
ORDER BY (venue, trading_date, symbol, interval_s, window_start);

-- Liquidity of a symbol's book over a tumbling window: the time-weighted quoted spread over the time
-- both sides were quoted, in ticks and in basis points of the mid; the time-weighted shares on the
-- best depth_levels levels per side (from the books' depth snapshots) and their imbalance
-- (bid - ask) / (bid + ask). NULL where the window had no two-sided quote / no known depth.
CREATE TABLE IF NOT EXISTS liquidity
(
    venue            LowCardinality(String),
    trading_date     Date,
    symbol           LowCardinality(String),
    interval_s       UInt32 COMMENT 'window size in seconds: 1',
    window_start     DateTime64(9, 'UTC'),
    spread           Nullable(Float64) COMMENT 'ticks of 10^-4 dollars',
    spread_bps       Nullable(Float64),
    two_sided_ns     UInt64,
    bid_depth        Nullable(Float64) COMMENT 'shares',
    ask_depth        Nullable(Float64),
    depth_imbalance  Nullable(Float64),
    depth_ns         UInt64,
    depth_levels     UInt16,
    updates          UInt32,
    depth_updates    UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY (venue, trading_date, symbol, interval_s, window_start);

-- Bursts: runs of a symbol's eligible prints less than the gap apart (event-time session windows,
-- --burst-gap-ms, at least --burst-min-prints prints), from the first print (start) to the last (end).
-- Revised by late prints within the allowed lateness and by broken trades while the burst is kept; a
-- burst whose start moved (a merge, a late or broken first print) is deleted under its old start.
CREATE TABLE IF NOT EXISTS bursts
(
    venue         LowCardinality(String),
    trading_date  Date,
    symbol        LowCardinality(String),
    start         DateTime64(9, 'UTC') COMMENT 'first print',
    end           DateTime64(9, 'UTC') COMMENT 'last print',
    prints        UInt32,
    shares        UInt64,
    notional      Int128 COMMENT 'sum of price x shares, exact',
    vwap          Float64 COMMENT 'notional / shares, in ticks',
    flagged       UInt8 COMMENT 'its rate reached --burst-alert-prints-per-s or --burst-alert-shares-per-s',
    revision      UInt32,
    is_deleted    UInt8
)
ENGINE = ReplacingMergeTree(revision, is_deleted)
ORDER BY (venue, trading_date, symbol, start);
