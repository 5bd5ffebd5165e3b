"""The physical limit beside the pipeline: C++ ITCH parsers from PyPI over the same feed file.

* ``itch_book`` (package ``itch-book``): C++ decoder *and* order books in one call, keeping the
  top-of-book changes and trades as columns -- the closest C++ equivalent of what the pipeline
  computes (minus Kafka, Flink, state and sinks).
* ``itchcpp``: C++ parser only, one Python object per message.

Both run in this process, one core, after the pipeline has finished (so they do not compete with
it); times are CPU seconds of this process (single-threaded code: the wall time on an idle core,
and not inflated when the shared machine is busy). Missing packages are reported, not fatal
(``pip install itch-book itchcpp``, or the project's ``bench`` extra).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def run_cpp(feed: Path, messages: int) -> dict[str, dict[str, Any]]:
    """name -> {"msgs_per_s", "seconds"} (or {"error"}) for each C++ contender over ``feed``."""
    data = feed.read_bytes()
    return {
        "itch_book (decode + book)": _guarded(lambda: _itch_book(data, messages)),
        "itchcpp (decode)": _guarded(lambda: _itchcpp(data, messages)),
    }


def _guarded(run) -> dict[str, Any]:
    try:
        return run()
    except ImportError as exc:
        return {"error": f"not installed ({exc.name}); pip install itch-book itchcpp"}


def _itch_book(data: bytes, messages: int) -> dict[str, Any]:
    import itch_book
    import numpy as np

    array = np.frombuffer(data, dtype=np.uint8)
    session = itch_book.Session(tables=["bbo", "trades"], depth=0, symbols=[])
    started = time.process_time()
    session.feed(array)
    seconds = time.process_time() - started
    decoded = int(session.stats()["messages"])
    return _result(decoded, messages, seconds, tob_changes=len(session.take_bbo().get("seq", ())))


def _itchcpp(data: bytes, messages: int) -> dict[str, Any]:
    import itchcpp

    parser = itchcpp.MessageParser()
    started = time.process_time()
    decoded = sum(1 for _ in parser.parse_stream(data))
    return _result(decoded, messages, time.process_time() - started)


def _result(decoded: int, messages: int, seconds: float, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "messages": decoded,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(decoded / seconds) if seconds > 0 else None,
        **extra,
    }
    if decoded != messages:
        result["warning"] = f"decoded {decoded:,} of {messages:,} messages"
    return result
