-- Alerts of the cross-venue detectors (docs/alerts.md): one row per episode, versioned by revision --
-- 0 while the episode goes on (is_open = 1, end = start), 1 once it ended -- so FINAL reads each
-- episode's latest version. alert_id (type:symbol:venues:start ns) is deterministic: a replay or a
-- restore writes the same rows again and replaces them. Prices in details are ITCH ticks (10^-4 $).

CREATE TABLE IF NOT EXISTS alerts
(
    trading_date  Date,
    symbol        LowCardinality(String),
    type          LowCardinality(String) COMMENT 'arbitrage, stale, halt, luld_pause',
    start         DateTime64(9, 'UTC'),
    alert_id      String,
    venues        Array(String) COMMENT 'arbitrage: [bid venue, ask venue]; others: [venue]',
    end           DateTime64(9, 'UTC') COMMENT 'when it ended (the start while open)',
    is_open       UInt8,
    severity      LowCardinality(String) COMMENT 'info, warning, critical',
    details       String COMMENT 'JSON object: the type''s fields (docs/alerts.md)',
    revision      UInt32 COMMENT '0 open, 1 closed'
)
ENGINE = ReplacingMergeTree(revision)
ORDER BY (trading_date, symbol, type, start, alert_id);
