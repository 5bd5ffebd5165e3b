"""Avro schemas from ``schemas/*.avsc``: loading, fingerprints and the single-object wire format.

Every Kafka value we write is an Avro *single-object encoding* (Avro spec, "Single object
encoding"): the two marker bytes ``C3 01``, the 8-byte little-endian CRC-64-AVRO fingerprint of
the writer schema's parsing canonical form, then the schemaless Avro body. A reader looks the
fingerprint up among every schema version ever published (``schemas/history/``) and resolves the
writer schema against its current reader schema, so old records stay readable after a compatible
schema change. No schema registry service is needed; see ``schemas/README.md``.

Schemas are parsed once per process and cached; nothing here is pasted inline.
"""

from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from itchflow.avro.invalid import InvalidReason, InvalidRecord

SCHEMAS_DIR_ENV = "ITCHFLOW_SCHEMAS_DIR"
"""Environment variable that points the registry at another ``schemas`` directory."""

HISTORY_DIRNAME = "history"
"""Sub-directory of published revisions: ``history/<full name>/<N>.avsc`` (never edited)."""

SINGLE_OBJECT_MARKER = b"\xc3\x01"
HEADER_SIZE = len(SINGLE_OBJECT_MARKER) + 8

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})

JsonSchema = dict[str, Any]


class SchemaError(Exception):
    """A schema file is missing, unreadable or refers to an unknown type (a bug, not bad data)."""


def schemas_dir() -> Path:
    """The ``schemas`` directory: ``$ITCHFLOW_SCHEMAS_DIR`` or the repository's ``schemas/``."""
    override = os.environ.get(SCHEMAS_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "schemas"


@dataclass(frozen=True, slots=True, eq=False)
class SchemaEntry:
    """One parsed schema version.

    Attributes:
        name: full name of the top-level type, e.g. ``itchflow.itch.v1.ItchBatch``.
        schema: standalone JSON schema with every referenced named type inlined.
        parsed: the fastavro-parsed schema (what writers and readers take).
        canonical: Avro parsing canonical form.
        fingerprint: 8-byte little-endian CRC-64-AVRO of ``canonical``.
        header: ``C3 01`` + ``fingerprint``, the prefix of every encoded value.
        path: file the schema was loaded from.
        revision: published revision number (1, 2, ...), or ``None`` for a current file.
    """

    name: str
    schema: JsonSchema
    parsed: Any
    canonical: str
    fingerprint: bytes
    header: bytes
    path: Path
    revision: int | None


def _full_name(name: str, namespace: str | None) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _expand(node: Any, namespace: str | None, index: dict[str, JsonSchema], defined: set[str]) -> Any:
    """Inline the first use of every named type defined in another file; later uses stay names."""
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        full = _full_name(node, namespace)
        if full in defined:
            return full
        if full not in index:
            raise SchemaError(f"unknown Avro type {full!r}")
        return _expand(copy.deepcopy(index[full]), None, index, defined)
    if isinstance(node, list):
        return [_expand(branch, namespace, index, defined) for branch in node]
    if not isinstance(node, dict):
        raise SchemaError(f"not an Avro schema: {node!r}")
    kind = node.get("type")
    if kind in _NAMED:
        full = _full_name(node["name"], node.get("namespace", namespace))
        own_namespace = full.rpartition(".")[0] or None
        defined.add(full)
        out = dict(node)
        out["name"] = full.rpartition(".")[2]
        if own_namespace:
            out["namespace"] = own_namespace
        if kind in ("record", "error"):
            out["fields"] = [
                {**field, "type": _expand(field["type"], own_namespace, index, defined)}
                for field in node["fields"]
            ]
        return out
    if kind == "array":
        return {**node, "items": _expand(node["items"], namespace, index, defined)}
    if kind == "map":
        return {**node, "values": _expand(node["values"], namespace, index, defined)}
    if isinstance(kind, str) and kind in _PRIMITIVES:
        return node
    return {**node, "type": _expand(kind, namespace, index, defined)}


def _make_entry(name: str, schema: JsonSchema, path: Path, revision: int | None) -> SchemaEntry:
    try:
        parsed = fastavro.parse_schema(copy.deepcopy(schema), named_schemas={})
        canonical = to_parsing_canonical_form(schema)
    except Exception as exc:  # fastavro raises several unrelated types for bad schemas
        raise SchemaError(f"{path}: {exc}") from exc
    digest = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return SchemaEntry(name, schema, parsed, canonical, digest, SINGLE_OBJECT_MARKER + digest, path, revision)


def _load_json(path: Path) -> JsonSchema:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"cannot read schema {path}: {exc}") from exc
    if not isinstance(data, dict) or "name" not in data:
        raise SchemaError(f"{path}: top level must be one named type")
    return data


class SchemaRegistry:
    """All schemas under one ``schemas`` directory, parsed lazily and cached.

    Current schemas are the ``*.avsc`` files outside ``history/``; each file defines one named
    type and may refer to types of other files by name. Published versions live in
    ``history/<full name>/<N>.avsc`` as standalone schemas.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._paths: dict[str, Path] = {}
        self._raw: dict[str, JsonSchema] = {}
        history = root / HISTORY_DIRNAME
        for path in sorted(root.rglob("*.avsc")):
            if history in path.parents:
                continue
            data = _load_json(path)
            full = _full_name(data["name"], data.get("namespace"))
            if full in self._paths:
                raise SchemaError(f"{full} is defined twice: {self._paths[full]} and {path}")
            self._paths[full] = path
            self._raw[full] = data
        self._current: dict[str, SchemaEntry] = {}
        self._by_fingerprint: dict[bytes, SchemaEntry] | None = None

    def names(self) -> list[str]:
        """Full names of every current schema file."""
        return sorted(self._paths)

    def current(self, name: str) -> SchemaEntry:
        """The current (reader and writer) version of ``name``."""
        entry = self._current.get(name)
        if entry is None:
            if name not in self._raw:
                raise SchemaError(f"no schema named {name!r} under {self.root}")
            expanded = _expand(copy.deepcopy(self._raw[name]), None, self._raw, set())
            entry = _make_entry(name, expanded, self._paths[name], None)
            self._current[name] = entry
        return entry

    def history(self, name: str) -> list[SchemaEntry]:
        """Published revisions of ``name``, oldest first."""
        folder = self.root / HISTORY_DIRNAME / name
        entries = []
        for path in folder.glob("*.avsc"):
            if not path.stem.isdigit():
                raise SchemaError(f"history file {path} is not named <N>.avsc")
            entries.append(_make_entry(name, _load_json(path), path, int(path.stem)))
        return sorted(entries, key=lambda entry: entry.revision or 0)

    def _all_entries(self) -> Iterator[SchemaEntry]:
        for name in self.names():
            yield from self.history(name)
            yield self.current(name)

    def writer(self, fingerprint_bytes: bytes | memoryview) -> SchemaEntry | None:
        """The schema version whose fingerprint is ``fingerprint_bytes``, if we ever published it."""
        if self._by_fingerprint is None:
            table: dict[bytes, SchemaEntry] = {}
            for entry in self._all_entries():
                table[entry.fingerprint] = entry  # current last: it wins over an identical revision
            self._by_fingerprint = table
        return self._by_fingerprint.get(bytes(fingerprint_bytes))

    def encode(self, name: str, datum: dict[str, Any]) -> bytes:
        """Single-object encode ``datum`` with the current schema of ``name``."""
        entry = self.current(name)
        out = io.BytesIO()
        out.write(entry.header)
        fastavro.schemaless_writer(out, entry.parsed, datum)
        return out.getvalue()

    def decode(self, name: str, data: bytes, **reader_options: Any) -> dict[str, Any]:
        """Decode a single-object encoded value into a record of the current schema of ``name``.

        ``reader_options`` go to ``fastavro.schemaless_reader`` (e.g. ``return_record_name=True``).

        Raises:
            InvalidRecord: for anything that is not a complete, known-schema record of type ``name``.
        """
        return self.decode_any(data, (name,), **reader_options)[1]

    def decode_any(
        self, data: bytes, names: Collection[str], **reader_options: Any
    ) -> tuple[str, dict[str, Any]]:
        """Decode a single-object encoded value whose type is any of ``names``.

        Returns the full name of the record type and the record, resolved to the current schema.

        Raises:
            InvalidRecord: for anything that is not a complete, known-schema record of those types.
        """
        if len(data) < HEADER_SIZE:
            raise InvalidRecord(InvalidReason.EMPTY, f"{len(data)} bytes, need at least {HEADER_SIZE}")
        view = memoryview(data)
        if view[:2] != SINGLE_OBJECT_MARKER:
            raise InvalidRecord(
                InvalidReason.BAD_MAGIC, f"starts with {bytes(view[:2]).hex()}, expected c301"
            )
        writer = self.writer(view[2:HEADER_SIZE])
        if writer is None:
            raise InvalidRecord(
                InvalidReason.UNKNOWN_SCHEMA, f"writer fingerprint {bytes(view[2:HEADER_SIZE]).hex()}"
            )
        if writer.name not in names:
            raise InvalidRecord(
                InvalidReason.WRONG_SCHEMA, f"a {writer.name} record, expected {' or '.join(sorted(names))}"
            )
        reader = self.current(writer.name)
        stream = io.BytesIO(view[HEADER_SIZE:])
        try:
            record = fastavro.schemaless_reader(
                stream,
                writer.parsed,
                None if writer.fingerprint == reader.fingerprint else reader.parsed,
                **reader_options,
            )
        except Exception as exc:  # untrusted bytes: fastavro raises EOFError, ValueError, IndexError, ...
            raise InvalidRecord(
                InvalidReason.MALFORMED_AVRO, f"{type(exc).__name__}: {exc}", cause_class=type(exc).__name__
            ) from exc
        if not isinstance(record, dict):  # a top-level schema that is not a record
            raise InvalidRecord(InvalidReason.WRONG_SCHEMA, f"{writer.name} is not a record schema")
        left = len(view) - HEADER_SIZE - stream.tell()
        if left:
            raise InvalidRecord(InvalidReason.TRAILING_BYTES, f"{left} bytes after the {writer.name} record")
        return writer.name, record


@cache
def default_registry() -> SchemaRegistry:
    """The process-wide registry over :func:`schemas_dir` (built on first use)."""
    return SchemaRegistry(schemas_dir())
