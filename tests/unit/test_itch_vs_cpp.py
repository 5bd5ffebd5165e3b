"""`itchflow itch stats` and the codec agree with an independent C++ decoder (itchcpp, PyPI) on
every real sample: the same messages, types and field values."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import itchcpp  # the project's bench extra, installed by ./dev: never skipped
import pytest

from itchflow.itch.codec import decode
from itchflow.itch.framing import iter_payloads
from itchflow.itch.stats import compute_stats

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "itch"
SHARED_INT_FIELDS = (
    "stock_locate",
    "tracking_number",
    "timestamp",
    "order_reference_number",
    "new_order_reference_number",
    "shares",
    "price",
    "executed_shares",
    "execution_price",
    "cancelled_shares",
    "match_number",
    "cross_price",
)


def cpp_messages(path: Path) -> list:
    # itchcpp reads the standard 2-byte length framing: re-frame (zero-prefix/gzip files) first
    payloads = [payload for _, payload in iter_payloads(path)]
    buffer = b"".join(len(p).to_bytes(2, "big") + p for p in payloads)
    return list(itchcpp.MessageParser().parse_stream(buffer))


@pytest.mark.parametrize(
    "sample", ["RITCH_ex20101224.TEST_ITCH_50.gz", "omi_Nasdaq_itch50_sample.bin", "meatpy_sample.itch50"]
)
def test_stats_and_decoded_fields_match_itchcpp(sample: str) -> None:
    path = SAMPLES / sample
    theirs = cpp_messages(path)
    ours = [decode(payload) for _, payload in iter_payloads(path)]
    stats = compute_stats(path)

    cpp_counts = Counter(message.message_type.decode() for message in theirs)
    assert stats.to_json_dict()["by_type"] == dict(cpp_counts)
    assert stats.to_json_dict()["messages"] == len(theirs) == len(ours)

    compared = 0
    for mine, cpp in zip(ours, theirs, strict=True):
        assert mine.message_type == cpp.message_type.decode()
        for field in SHARED_INT_FIELDS:
            if hasattr(mine, field) and hasattr(cpp, field):
                assert getattr(mine, field) == getattr(cpp, field), (mine, field)
                compared += 1
    assert compared > 3 * len(ours)  # header fields at least, on every message
