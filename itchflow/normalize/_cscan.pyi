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
def route_run(
    run: list[bytes],
    index: int,
    routes: dict[int, tuple[list[bytes], Any, int]],
    clock: Any,
    batch_size: int,
    linger_s: float,
    oldest: float,
) -> tuple[int, int, int, int, float]: ...
def split_run(
    buffer: bytes, position: int, end: int, zero_prefix: bool, lengths: bytes
) -> tuple[list[bytes], int]: ...
