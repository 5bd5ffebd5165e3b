"""The bundle envelopes' C codec (itchflow/avro/_cavro.c) against fastavro, its reference.

``ITCHFLOW_NATIVE=python`` runs fastavro alone; ``native`` the C code (and fails if it is not
built). Both must give the same bytes when encoding and the same objects -- or the same refusal --
when decoding, on bundles of a synthetic feed with every kind of detail, of a real ITCH sample, on
edge values, and on every truncation and many corruptions of real records.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import date
from pathlib import Path

import pytest

from itchflow.avro import InvalidRecord
from itchflow.avro import bundle as avro_bundle
from itchflow.avro.bundle import (
    _RAW_LAYOUT,
    ItchBundle,
    ItchSegment,
    decode_raw,
    encode_bundle,
    native_header,
    schema_layout,
)
from itchflow.avro.bundle import (
    BUNDLE_SCHEMA as RAW_SCHEMA,
)
from itchflow.avro.normalized import _LAYOUT as _NORMALIZED_LAYOUT
from itchflow.avro.normalized import BUNDLE_SCHEMA as NORMALIZED_SCHEMA
from itchflow.avro.normalized import decode_normalized, encode_normalized_bundle
from itchflow.avro.registry import default_registry
from itchflow.extensions import native_function
from itchflow.normalize.bundle import NormalizedBundle
from itchflow.normalize.normalizer import normalize_bundle
from itchflow.replay import BundleBatcher, file_payloads
from itchflow.synth import generate

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "itch"
DAY = date(2019, 12, 30)


class Clock:
    """A replay clock that advances 50 us per message (20 k msgs/s: bundles close on the linger)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def raw_bundles(payloads, partitions: int = 4, batch_size: int = 1000) -> list[ItchBundle]:
    clock = Clock()
    batcher = BundleBatcher(
        partitions, batch_size, 10.0, clock=clock, shards=partitions
    )  # a bundle per partition
    closed = []
    for payload in payloads:
        clock.now += 50e-6
        closed += batcher.add(payload)
    closed += batcher.flush()
    return [
        bundle.envelope(
            venue="XNAS", trading_date=DAY, session="s-1", produced_at_ns=1_700_000_000_000_000_000 + n
        )
        for n, bundle in enumerate(closed)
    ]


@pytest.fixture(scope="module")
def synthetic() -> list[ItchBundle]:
    return raw_bundles(generate(40, 30_000, seed=7))


@pytest.fixture(scope="module")
def sample() -> list[ItchBundle]:
    payloads = list(file_payloads(SAMPLES / "RITCH_ex20101224.TEST_ITCH_50.gz"))
    return raw_bundles(payloads[:40_000], partitions=2, batch_size=500)


def both(monkeypatch: pytest.MonkeyPatch, run):
    """``run()`` under fastavro, then under the C codec: (python, native)."""
    monkeypatch.setenv("ITCHFLOW_NATIVE", "python")
    python = run()
    monkeypatch.setenv("ITCHFLOW_NATIVE", "native")
    native = run()
    return python, native


def outcome(run):
    """What ``run()`` gives: its value, or the refusal as (reason, message)."""
    try:
        return run()
    except InvalidRecord as refused:
        return ("refused", refused.reason, str(refused))


def normalized(bundles: list[ItchBundle]) -> list[NormalizedBundle]:
    out = []
    for bundle in bundles:
        result = normalize_bundle(bundle, ts_recv=42)
        if result.bundle is not None:
            out.append(result.bundle)
    return out


def test_the_c_codec_is_what_runs_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ITCHFLOW_NATIVE", "native")
    assert native_function("itchflow.avro._cavro", "encode_items") is not None
    monkeypatch.setenv("ITCHFLOW_NATIVE", "python")
    assert native_function("itchflow.avro._cavro", "encode_items") is None


@pytest.mark.parametrize("feed", ["synthetic", "sample"])
def test_raw_bundles_encode_and_decode_alike(feed: str, request, monkeypatch: pytest.MonkeyPatch) -> None:
    bundles = request.getfixturevalue(feed)
    assert len(bundles) > 50 and sum(len(b.segments) for b in bundles) > 150
    python, native = both(monkeypatch, lambda: [encode_bundle(b) for b in bundles])
    assert native == python
    decoded_python, decoded_native = both(monkeypatch, lambda: [decode_raw(v) for v in python])
    assert decoded_native == decoded_python == bundles
    # the C-made segments are real ItchSegments: frozen, typed like the ones Python makes
    segment = decoded_native[0].segments[0]
    assert type(segment) is ItchSegment and type(decoded_native[0].trading_date) is date
    with pytest.raises(dataclasses.FrozenInstanceError):
        segment.symbol = "X"  # type: ignore[misc]


@pytest.mark.parametrize("feed", ["synthetic", "sample"])
def test_normalized_bundles_encode_alike_with_every_kind_of_detail(
    feed: str, request, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundles = normalized(request.getfixturevalue(feed))
    kinds = {name for bundle in bundles for name, _ in bundle.details}
    if feed == "synthetic":  # the generator's MPID adds, directory, trading actions, system events
        assert {"Attribution", "DirectoryDetail", "TradingStateDetail", "SystemEventDetail"} <= kinds
    python, native = both(monkeypatch, lambda: [encode_normalized_bundle(b) for b in bundles])
    assert native == python
    assert [decode_normalized(v) for v in native] == bundles


def test_edge_values_encode_alike_or_fall_back_to_fastavro(monkeypatch: pytest.MonkeyPatch) -> None:
    segment = ItchSegment("ÉTÉ€", 65535, 2**63 - 1, 0, 2**31 - 1, -(2**63), 86_399_999_999_999)
    bundle = ItchBundle("XNAS", DAY, "", 0, 1, 1, -1, (segment,), b"\x00\xff" * 3)
    python, native = both(monkeypatch, lambda: encode_bundle(bundle))
    assert native == python and decode_raw(native) == bundle
    # int fields beyond 32 bits: the C code declines, fastavro writes what it writes (the same)
    wide = dataclasses.replace(bundle, segments=(dataclasses.replace(segment, stock_locate=2**40),))
    python, native = both(monkeypatch, lambda: outcome(lambda: encode_bundle(wide)))
    assert native == python


def test_every_truncation_and_many_corruptions_decode_alike(
    sample: list[ItchBundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ITCHFLOW_NATIVE", "python")
    values = [encode_bundle(b) for b in sample[:3]]
    rng = random.Random(5)
    damaged = [value[:cut] for value in values for cut in range(len(value))]
    damaged += [value + b"\x00" for value in values]  # a trailing byte
    for value in values:
        for _ in range(300):
            at = rng.randrange(10, min(len(value), 400))  # the envelope and segments, past the header
            damaged.append(value[:at] + bytes([rng.randrange(256)]) + value[at + 1 :])
    refused = 0
    for value in damaged:
        python, native = both(monkeypatch, lambda value=value: outcome(lambda: decode_raw(value)))
        assert native == python
        refused += isinstance(python, tuple)
    assert refused > len(damaged) // 2  # the damage reached the refusals, not only lucky bytes


def test_the_codec_layouts_are_the_current_schemas() -> None:
    # a schema revision makes this fail: the C layout must follow (until then fastavro runs, below)
    assert native_header(RAW_SCHEMA, _RAW_LAYOUT) is not None
    assert native_header(NORMALIZED_SCHEMA, _NORMALIZED_LAYOUT) is not None


def test_a_schema_the_codec_was_not_written_for_is_left_to_fastavro(
    sample: list[ItchBundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = default_registry().current(RAW_SCHEMA).schema
    revised = {**schema, "fields": [*schema["fields"], {"name": "extra", "type": "long", "default": 0}]}
    assert schema_layout(revised) != schema_layout(schema) == _RAW_LAYOUT

    def refuse(*args, **kwargs):
        raise AssertionError("the C codec ran for a schema it was not written for")

    monkeypatch.setenv("ITCHFLOW_NATIVE", "native")
    monkeypatch.setattr(avro_bundle, "_RAW_LAYOUT", schema_layout(revised))
    monkeypatch.setattr(avro_bundle, "native_function", lambda module, name: refuse)
    native_header.cache_clear()
    try:
        value = encode_bundle(sample[0])  # fastavro: the C function would raise
        assert decode_raw(value) == sample[0]
    finally:
        native_header.cache_clear()
