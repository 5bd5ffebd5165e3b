"""OFI and liquidity of an ITCH file offline (:mod:`itchflow.analytics.book_tape`): on real samples, the
rows equal the brute-force references run over the top-of-book changes and depth of the simple book
replayed message by message, and the book tape's changes equal the order-book stage's rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from itchflow.analytics.book_tape import book_updates, liquidity_of_file, ofi_of_file
from itchflow.analytics.liquidity import LiquidityRow
from itchflow.analytics.ofi import OfiRow
from itchflow.analytics.top_of_book import decode_changes
from itchflow.avro.bundle import days_since_epoch
from itchflow.errors import UserError
from itchflow.itch.codec import decode as decode_message
from itchflow.pipeline.book_stage import BookStage
from tests.unit.book_stage_support import CONFIG, MIDNIGHT_NS, TRADING_DATE, sample_payloads, symbol_feeds
from tests.unit.book_stage_support import VENUE as STAGE_VENUE
from tests.unit.flow_reference import liquidity_reference, ofi_reference
from tests.unit.simple_book import SimpleMarket
from tests.unit.tob_support import Op

VENUE = "NASDAQ"
DAY = days_since_epoch(TRADING_DATE)
LEVELS = 3
PREFIX = 4_000
"""messages of the large real sample (the simple book recomputes its levels after every message)"""
SAMPLES = {
    "ritch": ("RITCH_ex20101224.TEST_ITCH_50.gz", PREFIX),
    "omi": ("omi_Nasdaq_itch50_sample.bin", None),
    "meatpy": ("meatpy_sample.itch50", None),
}


def sample_file(tmp_path: Path, name: str) -> tuple[Path, list[bytes]]:
    """The sample's first messages as a standard length-prefixed file, and their payloads."""
    file_name, count = SAMPLES[name]
    payloads = sample_payloads(file_name)[:count]
    path = tmp_path / f"{name}.itch"
    path.write_bytes(b"".join(len(payload).to_bytes(2, "big") + payload for payload in payloads))
    return path, payloads


def simple_log(payloads: list[bytes], levels: int) -> list[Op]:
    """The log a core would get: after each message, the top-of-book change and the depth update
    (top ``levels`` levels) of its symbol when they changed, per the simple book; then the end."""
    market = SimpleMarket()
    tops: dict[str, tuple[int, ...]] = {}
    depths: dict[str, tuple[int, int]] = {}
    log: list[Op] = []
    for seq, payload in enumerate(payloads):
        message = decode_message(payload)
        market.apply(message)
        symbol = market.symbol_by_locate.get(message.stock_locate)
        if symbol is None or symbol not in market.symbols:
            continue
        book = market.symbols[symbol]
        bids, asks = book.levels("B"), book.levels("S")
        ts = MIDNIGHT_NS + message.timestamp
        top = (*(bids[0] if bids else (0, 0, 0)), *(asks[0] if asks else (0, 0, 0)))
        if top != tops.get(symbol, (0,) * 6):
            tops[symbol] = top
            log.append(("tops", VENUE, symbol, DAY, [(ts, seq, *top)]))
        shares = (sum(level[1] for level in bids[:levels]), sum(level[1] for level in asks[:levels]))
        if shares != depths.get(symbol, (0, 0)):
            depths[symbol] = shares
            log.append(("depth", VENUE, symbol, DAY, [(ts, seq, *shares)]))
    return [*log, ("close",)]


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_ofi_of_a_real_sample_equals_the_reference_over_the_simple_books_changes(
    tmp_path: Path, name: str
) -> None:
    path, payloads = sample_file(tmp_path, name)
    log = [op for op in simple_log(payloads, LEVELS) if op[0] != "depth"]
    rows = ofi_of_file(path, TRADING_DATE, VENUE, (1, 60))
    assert rows == ofi_reference(log, (1, 60))[-1]
    assert all(isinstance(row, OfiRow) for row in rows)
    assert len(rows) > {"ritch": 150, "omi": 10, "meatpy": 2}[name]
    assert any(row.ofi for row in rows)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_liquidity_of_a_real_sample_equals_the_reference_over_the_simple_books_changes(
    tmp_path: Path, name: str
) -> None:
    path, payloads = sample_file(tmp_path, name)
    rows = liquidity_of_file(path, TRADING_DATE, VENUE, (1, 60), depth_levels=LEVELS)
    assert rows == liquidity_reference(simple_log(payloads, LEVELS), (1, 60), LEVELS)[-1]
    assert all(isinstance(row, LiquidityRow) for row in rows)
    assert any(row.depth_imbalance is not None for row in rows)
    assert any(row.spread is not None for row in rows)


@pytest.mark.usefixtures("implementation")
def test_the_book_tapes_changes_are_the_order_book_stages_rows(tmp_path: Path) -> None:
    path, payloads = sample_file(tmp_path, "ritch")
    expected: dict[str, list[tuple[int, ...]]] = {}
    for feed in symbol_feeds(payloads, batch_size=64).values():
        stage = BookStage.restore(None, venue=STAGE_VENUE, symbol=feed.symbol, config=CONFIG)
        for batch in feed.batches:
            chunk = dict(stage.apply(batch).clickhouse).get("top_of_book", b"")
            expected.setdefault(feed.symbol, []).extend(decode_changes(chunk, stage.wire.row_key))
    got: dict[str, list[tuple[int, ...]]] = {}
    for symbol, kind, update in book_updates(path, TRADING_DATE):
        assert kind == "top"
        got.setdefault(symbol, []).append(update)
    assert got == {symbol: changes for symbol, changes in expected.items() if changes}
    assert sum(len(changes) for changes in got.values()) > 150


def test_a_missing_or_unreadable_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        ofi_of_file(tmp_path / "missing.itch", TRADING_DATE)
    garbage = tmp_path / "garbage.itch"
    garbage.write_bytes(b"\x00\x05hello" * 10)
    with pytest.raises(UserError, match="not a readable"):
        liquidity_of_file(garbage, TRADING_DATE)
