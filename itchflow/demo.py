"""``itchflow demo``: the whole pipeline on the local stack, on a bundled real ITCH sample.

Set-up if needed, stack up, submit the market-data job (normalization, books and bars in one
operator; unless running), replay the sample, wait until the job has applied every message (by
sequence number read back from ClickHouse, not by asking the broker for offsets) and closed the bars,
then print each symbol's book and latest bars from ClickHouse and Redis, and where to look next.
The stack stays up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from itchflow import bootstrap
from itchflow.config import PROJECT_ROOT, StackConfig
from itchflow.errors import UserError
from itchflow.flinkctl import list_jobs, submit, wait_until_tasks_running
from itchflow.normalize.clock import NEW_YORK
from itchflow.stack.cli import add_stack_options, stack_config_from_args
from itchflow.stack.manager import Stack

DEMO_FILE = PROJECT_ROOT / "data" / "RITCH_ex20101224.TEST_ITCH_50.gz"
DEMO_DATE = "2019-12-30"
PIPELINE_JOBS = (
    ("normalize", "itchflow-normalize"),
    ("order_book", "itchflow-order-book"),
    ("analytics", "itchflow-analytics"),
)
"""(job script, job name) of the split pipeline: the normalize, order-book and analytics jobs."""
MARKET_DATA_JOBS = (("market_data", "itchflow-market-data"),)
"""The same pipeline as one job (``jobs/market_data.py``): faster, one Kafka hop less."""
REDIS_PREFIX = "itchflow"


@dataclass(frozen=True, slots=True)
class SymbolView:
    symbol: str
    bid: str
    ask: str
    spread: str
    levels: str
    trades: int
    unknown_refs: int
    last_seq: int
    integrity: str
    bar_1m: str = "-"
    """the latest 1 m bar: window start (New York time), close, volume"""
    vwap_1m: str = "-"
    vwap_5m: str = "-"
    averages: str = "-"
    ofi_1m: str = "-"


def ensure_jobs(
    config: StackConfig,
    parallelism: int | None,
    log=print,
    jobs: tuple[tuple[str, str], ...] = PIPELINE_JOBS,
    job_args: tuple[str, ...] = (),
) -> dict[str, str]:
    """Submit the pipeline's ``jobs`` unless they already run; returns name -> job id.

    If the project's code changed since the TaskManager started, running pipeline jobs are
    upgraded the savepoint way: stopped with a savepoint, the TaskManager restarted (it keeps old
    modules loaded otherwise), and the jobs resubmitted from their savepoints with the new code.
    """
    from itchflow.flinkctl import stop_with_savepoint

    running = {job.name: job.job_id for job in list_jobs(config.flink_rest_url) if job.state == "RUNNING"}
    stack = Stack(config, log=log)
    savepoints: dict[str, str] = {}
    if stack.taskmanagers_stale():
        for _, name in jobs:
            if name in running:
                log(f"the code changed: stopping {name} with a savepoint to resume it on the new code ...")
                savepoints[name] = stop_with_savepoint(config.flink_rest_url, running.pop(name))
        stack.refresh_taskmanager()
    ids = {}
    for script, name in jobs:
        if name in running:
            ids[name] = running[name]
            log(f"{name} already running ({running[name]})")
            continue
        log(f"submitting {name} with `flink run` ...")
        args = [
            "--bootstrap-servers",
            config.bootstrap_servers,
            "--clickhouse-url",
            config.clickhouse_url,
            "--redis-url",
            config.redis_url,
            *job_args,
        ]
        ids[name] = submit(config, script, args, parallelism, from_savepoint=savepoints.get(name))
    for job_id in ids.values():
        wait_until_tasks_running(config.flink_rest_url, job_id, timeout_s=180)
    return ids


def clickhouse_client(config: StackConfig):
    import os

    import clickhouse_connect

    return clickhouse_connect.get_client(
        host=config.host,
        port=config.clickhouse_port,
        username=config.clickhouse_user or "default",
        password=os.environ.get("ITCHFLOW_CLICKHOUSE_PASSWORD", ""),
    )


def applied_sequences(client, venue: str) -> dict[str, int]:
    """symbol -> highest sequence number the order-book job has applied (from book_status)."""
    rows = client.query(
        "SELECT symbol, max(seq) FROM book_status FINAL WHERE venue = {venue:String} GROUP BY symbol",
        parameters={"venue": venue},
    ).result_rows
    return {symbol: int(seq) for symbol, seq in rows}


def redis_sequences(cache, venue: str, symbols: list[str]) -> dict[str, int]:
    """symbol -> sequence number of the top of book Redis holds (symbols without one are left out)."""
    values = cache.pipeline(transaction=False)
    for symbol in symbols:
        values.hget(f"{REDIS_PREFIX}:tob:{venue}:{symbol}", "seq")
    return {
        symbol: int(seq) for symbol, seq in zip(symbols, values.execute(), strict=True) if seq is not None
    }


def wait_until_applied(
    config: StackConfig, venue: str, last_seq: dict[str, int], timeout_s: float, show: bool
) -> None:
    """Poll until every symbol's book has applied its last produced sequence number in both sinks
    (ClickHouse ``book_status`` and the Redis top of book: they are written by separate tasks)."""
    import redis
    from tqdm import tqdm

    total = sum(seq + 1 for seq in last_seq.values())
    client = clickhouse_client(config)
    cache = redis.Redis(host=config.host, port=config.redis_port)
    symbols = sorted(last_seq)
    deadline = time.monotonic() + timeout_s
    with tqdm(total=total, desc="order books", unit=" msg", file=sys.stderr, disable=not show) as bar:
        while True:
            in_clickhouse = applied_sequences(client, venue)
            in_redis = redis_sequences(cache, venue, symbols)
            applied = {s: min(in_clickhouse.get(s, -1), in_redis.get(s, -1)) for s in symbols}
            done = sum(min(applied.get(symbol, -1), seq) + 1 for symbol, seq in last_seq.items())
            bar.update(done - bar.n)
            if all(applied.get(symbol, -1) >= seq for symbol, seq in last_seq.items()):
                return
            if time.monotonic() > deadline:
                missing = {
                    s: (applied.get(s, -1), seq) for s, seq in last_seq.items() if applied.get(s, -1) < seq
                }
                raise UserError(
                    f"the order books did not catch up within {timeout_s:.0f}s (applied vs produced: {missing}). "
                    f"Look at the jobs in the web UI {config.flink_rest_url} and the logs in {config.log_dir}."
                )
            time.sleep(0.5)


def wait_for_bars(config: StackConfig, venue: str, symbols: list[str], timeout_s: float = 15) -> None:
    """The replay's end closes the bars a moment after the books: wait for the symbols' 5 m bars."""
    import redis

    cache = redis.Redis(host=config.host, port=config.redis_port, decode_responses=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(cache.exists(f"{REDIS_PREFIX}:bar:5m:{venue}:{symbol}") for symbol in symbols):
            return
        time.sleep(0.5)


def read_views(config: StackConfig, venue: str, symbols: list[str]) -> list[SymbolView]:
    import redis

    client = clickhouse_client(config)
    trades = dict(
        client.query(
            "SELECT symbol, count() FROM trades FINAL WHERE venue = {venue:String} GROUP BY symbol",
            parameters={"venue": venue},
        ).result_rows
    )
    status = {
        row[0]: row[1:]
        for row in client.query(
            "SELECT symbol, argMax(unknown_refs, seq), max(seq), argMax(integrity, seq) FROM book_status FINAL "
            "WHERE venue = {venue:String} GROUP BY symbol",
            parameters={"venue": venue},
        ).result_rows
    }
    # the sliding 5 m VWAP up to the last trade: the window ending with the symbol's last 1 s bar (the
    # windows after it hold ever fewer of the day's last bars, as the sliding window moves past the close)
    sliding = dict(
        client.query(
            "SELECT symbol, vwap FROM vwap FINAL WHERE venue = {venue:String} AND window_s = 300 "
            "AND (symbol, window_end) IN (SELECT symbol, max(window_start) + toIntervalSecond(1) "
            "FROM bars FINAL WHERE venue = {venue:String} AND interval_s = 1 GROUP BY symbol)",
            parameters={"venue": venue},
        ).result_rows
    )
    cache = redis.Redis(host=config.host, port=config.redis_port, decode_responses=True)
    views = []
    for symbol in symbols:
        tob: dict = cache.hgetall(f"{REDIS_PREFIX}:tob:{venue}:{symbol}")  # type: ignore[assignment]
        depth: dict = cache.hgetall(f"{REDIS_PREFIX}:depth:{venue}:{symbol}")  # type: ignore[assignment]
        bids, asks = json.loads(depth.get("bids", "[]")), json.loads(depth.get("asks", "[]"))
        bid_px, ask_px = int(tob.get("bid_px", 0)), int(tob.get("ask_px", 0))
        bar: dict = cache.hgetall(f"{REDIS_PREFIX}:bar:1m:{venue}:{symbol}")  # type: ignore[assignment]
        averages: dict = cache.hgetall(f"{REDIS_PREFIX}:ma:1m:{venue}:{symbol}")  # type: ignore[assignment]
        ofi: dict = cache.hgetall(f"{REDIS_PREFIX}:ofi:1m:{venue}:{symbol}")  # type: ignore[assignment]
        views.append(
            SymbolView(
                symbol=symbol,
                bid=_quote(bid_px, tob.get("bid_sz", "0")),
                ask=_quote(ask_px, tob.get("ask_sz", "0")),
                spread=f"{(ask_px - bid_px) / 10_000:.4f}" if bid_px and ask_px else "-",
                levels=f"{len(bids)}x{len(asks)}",
                trades=int(trades.get(symbol, 0)),
                unknown_refs=int(status.get(symbol, (0, -1, ""))[0]),
                last_seq=int(status.get(symbol, (0, -1, ""))[1]),
                integrity=status.get(symbol, (0, -1, ""))[2] or "ok",
                bar_1m=_bar(bar),
                vwap_1m=_vwap(bar),
                vwap_5m=f"{sliding[symbol] / 10_000:.4f}" if symbol in sliding else "-",
                averages=_averages(averages),
                ofi_1m=f"{int(ofi['ofi']):+,}" if ofi else "-",
            )
        )
    return views


def _bar(fields: dict) -> str:
    """``HH:MM close x volume`` of a bar hash (New York time of its window's start)."""
    if not fields or not int(fields.get("volume", 0)):
        return "-"
    start = datetime.fromtimestamp(int(fields["window_start"]) / 1e9, tz=NEW_YORK)
    return f"{start:%H:%M} {int(fields['close']) / 10_000:.4f} x {int(fields['volume']):,}"


def _vwap(fields: dict) -> str:
    return f"{float(fields['vwap']) / 10_000:.4f}" if fields and int(fields.get("volume", 0)) else "-"


def _averages(fields: dict) -> str:
    """``SMA / EMA`` of a moving-averages hash, in dollars."""
    if not fields or not fields.get("ema"):
        return "-"
    sma = f"{float(fields['sma']) / 10_000:.4f}" if fields.get("sma") else "-"
    return f"{sma} / {float(fields['ema']) / 10_000:.4f}"


def _quote(price: int, shares: str) -> str:
    return f"{int(shares):,} @ {price / 10_000:.4f}" if price else "-"


def print_table(headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """Rows under their headers, each column as wide as its widest value."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def print_views(views: list[SymbolView], config: StackConfig, venue: str) -> None:
    headers = (
        "symbol",
        "best bid",
        "best ask",
        "spread",
        "levels b x a",
        "trades",
        "unknown refs",
        "integrity",
        "last 1m bar: close x volume",
        "its VWAP",
        "5m VWAP",
        "SMA / EMA of 20 1m closes",
        "last 1m OFI",
    )
    rows = [
        (v.symbol, v.bid, v.ask, v.spread, v.levels, f"{v.trades:,}", f"{v.unknown_refs:,}", v.integrity,
         v.bar_1m, v.vwap_1m, v.vwap_5m, v.averages, v.ofi_1m)
        for v in views
    ]  # fmt: skip
    print()
    print(
        f"order books and bars of {venue} (top of book, bars, averages, OFI from Redis; trades, status, sliding VWAP from ClickHouse):"
    )
    print_table(headers, rows)
    print()
    print(f"Flink web UI   {config.flink_rest_url}   (job itchflow-market-data)")
    print(
        f"ClickHouse     {config.clickhouse_url}   e.g. SELECT * FROM top_of_book FINAL ORDER BY seq DESC LIMIT 5"
    )
    print(
        "               e.g. SELECT * FROM bars FINAL WHERE interval_s = 60 ORDER BY window_start DESC LIMIT 5"
    )
    print(f"Redis          {config.redis_url}   e.g. HGETALL {REDIS_PREFIX}:tob:{venue}:<symbol>")
    if any(v.integrity != "ok" or v.unknown_refs for v in views):
        print(
            "Unknown refs and a crossed book are expected on a capture that starts mid-day: orders added before "
            "it began are missing (see data/README.md)."
        )
    print("Stop everything with: itchflow stack down   (./dev stack down)")


def run_demo(args: argparse.Namespace) -> int:
    from itchflow.replay import make_producer, parse_trading_date, run_replay_file

    path = Path(args.file) if args.file else DEMO_FILE
    if not path.exists():
        raise UserError(f"{path}: no such file")
    trading_date = parse_trading_date(args.date)
    bootstrap.run_setup(log=lambda message: None)
    config = stack_config_from_args(args)
    Stack(config).up()
    ensure_jobs(
        config,
        args.parallelism,
        log=lambda m: print(m, file=sys.stderr),
        jobs=MARKET_DATA_JOBS,
        job_args=DEMO_JOB_ARGS,
    )

    # A fixed session id makes the demo re-runnable: a second replay of the same file is
    # recognized as duplicate batches by the normalization job and changes nothing.
    session = f"demo:{path.name}:{trading_date.isoformat()}"
    producer = make_producer(config.bootstrap_servers)
    summary = run_replay_file(
        path,
        producer,
        topic="market-data-raw",
        venue=args.venue,
        trading_date=trading_date,
        session=session,
        batch_size=args.batch_size,
        linger_ms=10,
        speed=None,
        show_progress=True,
    )
    producer.close()
    print(
        f"replayed {summary.messages:,} messages in {summary.batches:,} batches "
        f"({summary.messages_per_second:,.0f} messages/s)",
        file=sys.stderr,
    )
    last_seq = summary.last_seq_by_symbol()
    wait_until_applied(config, args.venue, last_seq, args.timeout, show=True)
    wait_for_bars(config, args.venue, sorted(last_seq))
    print_views(read_views(config, args.venue, sorted(last_seq)), config, args.venue)
    if args.venues:
        demo_venues(config, args)
    return 0


DEMO_JOB_ARGS = ("--alerts",)
"""The demo's market-data job runs the cross-venue detectors too."""
DEMO_VENUES = ("NASDAQ", "BX")
DEMO_VENUE_PLANTS = {"crossings": 3, "stale": 2, "halts": 1, "pauses": 1}


def demo_venues(config: StackConfig, args: argparse.Namespace) -> None:
    """A synthetic day of two venues with planted events (``itchflow synth --venues``), replayed in one
    run; prints the alerts the job wrote to ClickHouse against what was planted."""
    from itchflow import synth_venues
    from itchflow.replay import make_producer, run_replay_feeds

    directory = config.home / "demo" / "venues"
    summary_of_day = synth_venues.write(
        directory, list(DEMO_VENUES), 12, 120_000, 1, plants=DEMO_VENUE_PLANTS, keepalive_ms=20_000
    )
    truth = json.loads((directory / synth_venues.TRUTH_FILE).read_text())
    feeds = [(venue, directory / name) for venue, name in truth["files"].items()]
    print(
        f"\nreplaying a synthetic day of {' and '.join(DEMO_VENUES)} with planted events "
        f"({summary_of_day.messages:,} messages, {directory}) ...",
        file=sys.stderr,
    )
    producer = make_producer(config.bootstrap_servers)
    try:
        summary = run_replay_feeds(
            feeds,
            producer,
            topic="market-data-raw",
            venue=DEMO_VENUES[0],
            trading_date=synth_venues.DEFAULT_DATE,
            session="demo-venues",
            batch_size=args.batch_size,
            linger_ms=10,
            show_progress=True,
        )
    finally:
        producer.close()
    for venue, _ in feeds:
        wait_until_applied(config, venue, summary.last_seq_by_symbol(venue), args.timeout, show=True)
    alerts = wait_for_alerts(config, truth, timeout_s=60)
    print_alerts(alerts, truth, summary_of_day.truth_path)


def wait_for_alerts(config: StackConfig, truth: dict, timeout_s: float) -> list[tuple]:
    """The closed alerts of the synthetic day's symbols in ClickHouse, once as many as were planted
    (or at the timeout: what there is)."""
    client = clickhouse_client(config)
    query = (
        "SELECT type, symbol, venues, start, end, severity, details FROM alerts FINAL "
        "WHERE trading_date = {day:Date} AND symbol IN {symbols:Array(String)} AND is_open = 0 "
        "ORDER BY start, type, symbol, venues"
    )
    parameters = {"day": truth["date"], "symbols": truth["symbols"]}
    deadline = time.monotonic() + timeout_s
    while True:
        rows = client.query(query, parameters=parameters).result_rows
        if len(rows) >= len(truth["alerts"]) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def print_alerts(rows: list[tuple], truth: dict, truth_path: Path) -> None:
    planted = {(a["type"], a["symbol"], tuple(a["venues"])) for a in truth["alerts"]}
    found = {(kind, symbol, tuple(venues)) for kind, symbol, venues, *_ in rows}
    print(
        f"\nalerts of the two-venue day (ClickHouse: SELECT * FROM alerts FINAL WHERE trading_date = '{truth['date']}'):"
    )
    headers = ("type", "symbol", "venues", "start (New York)", "duration", "details", "planted")
    table = []
    for kind, symbol, venues, start, end, _, details in rows:
        duration = (end - start).total_seconds()
        table.append(
            (kind, symbol, ">".join(venues), f"{start.astimezone(NEW_YORK):%H:%M:%S.%f}"[:-3],
             f"{duration:,.3f} s", _alert_details(kind, json.loads(details)),
             "yes" if (kind, symbol, tuple(venues)) in planted else "NO")
        )  # fmt: skip
    print_table(headers, table)
    print(
        f"{len(planted & found)} of {len(planted)} planted events found, {len(found - planted)} alerts where "
        f"nothing was planted (what was planted: {truth_path})"
    )


def _alert_details(kind: str, details: dict) -> str:
    if kind == "arbitrage":
        return (
            f"{details['kind']}: bid {details['bid'] / 10_000:.4f} x {details['bid_shares']:,} vs ask "
            f"{details['ask'] / 10_000:.4f} x {details['ask_shares']:,}"
        )
    return f"reason {details['reason']}" if details.get("reason") else ""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="the whole pipeline on the local stack with a bundled real sample"
    )
    parser.add_argument("--file", help=f"ITCH file to replay (default: the bundled {DEMO_FILE.name})")
    parser.add_argument("--date", default=DEMO_DATE, help=f"trading date of the file (default {DEMO_DATE})")
    parser.add_argument("--venue", default="NASDAQ", help="venue tag (default NASDAQ)")
    parser.add_argument("--parallelism", type=int, default=2, help="parallelism of the jobs (default 2)")
    parser.add_argument("--batch-size", type=int, default=1000, help="replay batch size (default 1000)")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for the books (default 300)"
    )
    parser.add_argument(
        "--venues",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="then replay a synthetic two-venue day with planted events and show the alerts found (default on)",
    )
    add_stack_options(parser)
    parser.set_defaults(func=run_demo)
