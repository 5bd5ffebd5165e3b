"""Type stub of the C extension compiled from ``_cscan.c`` (see :mod:`itchflow.extensions`)."""

from typing import Any

def scan_rows(
    payloads: bytes,
    position: int,
    limit: int,
    index: int,
    locate: int,
    seq0: int,
    stock: bytes,
    base: int,
    day: int,
    rows: list[Any],
) -> tuple[int, int]: ...
def pack_rows(rows: list[Any]) -> tuple[Any, ...]: ...
def pack_payloads(payloads: Any) -> bytes: ...
