"""The normalizer's C fast path (itchflow/normalize/_cscan.c) against its Python code.

The C scanner takes only the frequent, valid messages and hands every other one back to Python, so
the two must give identical results on any input: real feeds, and the same feeds with bytes flipped,
messages cut short, foreign locates and stocks, and timestamps past midnight. (test_normalize.py and
test_normalize_stage.py also run every test on both.)
"""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict
from datetime import date
from pathlib import Path

import pytest

from itchflow.avro.bundle import SegmentInput, make_bundle
from itchflow.normalize.normalizer import normalize_bundle
from itchflow.replay import file_payloads

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "itch"
DAY = date(2019, 12, 30)


def by_locate() -> dict[int, list[bytes]]:
    groups: dict[int, list[bytes]] = defaultdict(list)
    for payload in file_payloads(SAMPLES / "RITCH_ex20101224.TEST_ITCH_50.gz"):
        groups[int.from_bytes(payload[1:3], "big")].append(payload)
    return {locate: payloads for locate, payloads in groups.items() if locate and len(payloads) > 50}


def symbol_of(payloads: list[bytes]) -> str:
    for payload in payloads:
        if payload[:1] in (b"R", b"A"):
            start = 11 if payload[:1] == b"R" else 24
            return payload[start : start + 8].decode("latin-1").rstrip()
    raise AssertionError("no symbol")


def damaged(payloads: list[bytes], rng: random.Random) -> list[bytes]:
    out = []
    for payload in payloads:
        roll = rng.random()
        if roll < 0.02:
            payload = payload[: rng.randrange(1, len(payload))]  # cut short: bad framing
        elif roll < 0.04:
            at = rng.randrange(len(payload))
            payload = payload[:at] + bytes([rng.randrange(256)]) + payload[at + 1 :]  # any field, type too
        elif roll < 0.05:
            payload = payload[:1] + (999).to_bytes(2, "big") + payload[3:]  # foreign locate
        elif roll < 0.06 and len(payload) >= 11:
            payload = payload[:5] + (0xFFFF_FFFF_FFFF).to_bytes(6, "big") + payload[11:]  # past midnight
        out.append(payload)
    return out


def comparable(result) -> tuple:
    """A result with its rejections as plain values (exceptions compare by identity)."""
    rejected = [(r.reason, r.detail, r.message_index, r.payload) for r in result.rejected]
    return (*result._replace(rejected=()), rejected)


def results(monkeypatch: pytest.MonkeyPatch, run) -> tuple:
    monkeypatch.setenv("ITCHFLOW_NATIVE", "python")
    python = run()
    monkeypatch.setenv("ITCHFLOW_NATIVE", "native")
    native = run()
    assert comparable(native) == comparable(python)
    return python, native


@pytest.mark.parametrize("seed", [None, 1, 2, 3])
def test_one_symbol_bundles_normalize_identically(seed: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    rejected = rows = 0
    for locate, payloads in by_locate().items():
        symbol = symbol_of(payloads)
        if seed is not None:
            payloads = damaged(payloads, rng)
        bundle = make_bundle(
            [SegmentInput(symbol, locate, 1, 10, payloads)],
            venue="XNAS",
            trading_date=DAY,
            session="s",
            partition=0,
            partitions=1,
            bundle_sequence=1,
            produced_at_ns=1,
        )
        python, native = results(monkeypatch, lambda bundle=bundle: normalize_bundle(bundle))
        rejected += len(python.rejected)
        rows += python.bundle.event_count
    assert rows > 1000
    assert (rejected > 20) == (seed is not None)  # the damage reached the rejection paths


def test_bundles_normalize_identically_even_when_the_payloads_end_early(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    groups = list(by_locate().items())[:6]
    segments = [
        SegmentInput(symbol_of(payloads), locate, 1, 0, tuple(payloads[:300])) for locate, payloads in groups
    ]
    bundle = make_bundle(
        segments,
        venue="XNAS",
        trading_date=DAY,
        session="s",
        partition=0,
        partitions=1,
        bundle_sequence=1,
        produced_at_ns=1,
    )
    python, native = results(monkeypatch, lambda: normalize_bundle(bundle))
    assert python.bundle.event_count > 500
    cut = dataclasses.replace(bundle, payloads=bundle.payloads[: len(bundle.payloads) // 2 + 3])
    python, native = results(monkeypatch, lambda: normalize_bundle(cut))
    assert python.rejected


def test_payloads_pack_identically_and_bad_sizes_are_refused_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    from itchflow.avro.raw import pack_payloads, pack_payloads_python

    payloads = [bytes([n % 256]) * (1 + n * 37 % 300) for n in range(500)] + [b"x" * 65535]
    monkeypatch.setenv("ITCHFLOW_NATIVE", "native")
    assert pack_payloads(payloads) == pack_payloads_python(payloads)
    assert pack_payloads(tuple(payloads)) == pack_payloads_python(iter(payloads))
    for bad in ([b""], [b"x" * 65536]):
        with pytest.raises(ValueError, match="1..65535 bytes"):
            pack_payloads(bad)
        with pytest.raises(ValueError, match="1..65535 bytes"):
            pack_payloads_python(bad)


def framed(payloads: list[bytes], zero_prefix: bool) -> bytes:
    return b"".join((0 if zero_prefix else len(p)).to_bytes(2, "big") + p for p in payloads)


@pytest.mark.parametrize("zero_prefix", [False, True])
@pytest.mark.parametrize("seed", [None, 1, 2, 3, 4, 5])
def test_records_split_identically(zero_prefix: bool, seed: int | None) -> None:
    """The C record splitter stops where the Python one stops, on clean and damaged framing (cut
    records, flipped bytes in prefixes and types, an end inside a record), from any position."""
    from itchflow.itch.framing import _LENGTH_TABLE, _split_run
    from itchflow.normalize._cscan import split_run

    payloads = [p for group in by_locate().values() for p in group][:4000]
    rng = random.Random(seed)
    buffer = bytearray(framed(payloads if seed is None else damaged(payloads, rng), zero_prefix))
    if seed is not None:
        for _ in range(20):  # bytes flipped anywhere: prefixes, type bytes, payloads
            buffer[rng.randrange(len(buffer))] = rng.randrange(256)
    data = bytes(buffer)
    stops = 0
    for attempt in range(25):
        position = 0 if seed is None or attempt == 0 else rng.randrange(len(data))
        end = len(data) if seed is None or attempt == 0 else rng.randrange(position, len(data) + 1)
        while True:
            expected = _split_run(data, position, end, zero_prefix)
            assert split_run(data, position, end, zero_prefix, _LENGTH_TABLE) == expected
            if expected[1] == position or expected[1] >= end:
                break
            stops += 1
            position = expected[1] + 1  # skip past the bad record, as a resync would
    if seed is None:
        assert split_run(data, 0, len(data), zero_prefix, _LENGTH_TABLE) == (payloads, len(data))
    else:
        assert stops  # the damage stopped the splitter mid-buffer
