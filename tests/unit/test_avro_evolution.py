"""Schema evolution: the rules are enforced, and records of every published revision stay readable."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import pytest

from itchflow.avro import SchemaEntry, SchemaRegistry, default_registry
from itchflow.avro.evolution import evolution_violations, publish, registry_violations, static_violations

NS = "itchflow.test.v1"


def record(
    fields: list[dict[str, Any]], name: str = "Thing", namespace: str = NS, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "record",
        "name": name,
        "namespace": namespace,
        "doc": "A thing.",
        "fields": fields,
        **extra,
    }


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "doc": f"The {name}.", **extra}


COLOR = {
    "type": "enum",
    "name": "Color",
    "doc": "A color.",
    "symbols": ["RED", "UNKNOWN"],
    "default": "UNKNOWN",
}
V1 = record([field("id", "long"), field("color", COLOR), field("note", ["null", "string"], default=None)])


def encode_with(entry: SchemaEntry, datum: dict[str, Any]) -> bytes:
    """Single-object encode with a given (possibly old) revision, as an old producer would."""
    out = io.BytesIO()
    out.write(entry.header)
    fastavro.schemaless_writer(out, entry.parsed, datum)
    return out.getvalue()


def schemas_folder(tmp_path: Path, current: dict[str, Any], *revisions: dict[str, Any]) -> SchemaRegistry:
    (tmp_path / "thing.avsc").write_text(json.dumps(current))
    history = tmp_path / "history" / f"{NS}.Thing"
    history.mkdir(parents=True)
    for number, revision in enumerate(revisions, start=1):
        (history / f"{number}.avsc").write_text(json.dumps(revision))
    return SchemaRegistry(tmp_path)


def test_a_v1_record_decodes_with_the_current_reader_and_gets_the_defaults(tmp_path: Path) -> None:
    color = {**COLOR, "symbols": ["RED", "UNKNOWN", "BLUE"]}
    v2 = record(
        [
            field("id", "long"),
            field("colour", color, aliases=["color"]),
            field("note", ["null", "string"], default=None),
            field("venue", "string", default="XNAS"),
            field("size", ["null", "long"], default=None),
        ]
    )
    registry = schemas_folder(tmp_path, v2, V1, v2)
    assert registry_violations(registry) == []
    v1_entry = registry.history(f"{NS}.Thing")[0]
    data = encode_with(v1_entry, {"id": 7, "color": "RED", "note": "hi"})
    decoded = registry.decode(f"{NS}.Thing", data)
    assert decoded == {"id": 7, "colour": "RED", "note": "hi", "venue": "XNAS", "size": None}


def test_an_unknown_enum_symbol_from_a_newer_writer_falls_back_to_the_default(tmp_path: Path) -> None:
    newer = record([field("id", "long"), field("color", {**COLOR, "symbols": ["RED", "UNKNOWN", "BLUE"]})])
    older_reader = record([field("id", "long"), field("color", COLOR)])
    registry = schemas_folder(tmp_path, older_reader, older_reader, newer)
    data = encode_with(registry.history(f"{NS}.Thing")[1], {"id": 1, "color": "BLUE"})
    assert registry.decode(f"{NS}.Thing", data)["color"] == "UNKNOWN"


@pytest.mark.parametrize(
    ("new", "complaint"),
    [
        (record(V1["fields"] + [field("venue", "string")]), "new field has no default"),
        (record(V1["fields"][:2]), "field removed or renamed without an alias"),
        (record([field("ident", "long"), *V1["fields"][1:]]), "field removed or renamed without an alias"),
        (record([field("id", "int"), *V1["fields"][1:]]), "type changed from long to int"),
        (
            record([field("id", "long"), field("color", {**COLOR, "symbols": ["UNKNOWN"]}), V1["fields"][2]]),
            "enum symbols removed",
        ),
        (record([*V1["fields"][:2], field("note", "string")]), "a union became a single type"),
    ],
    ids=[
        "added-without-default",
        "removed",
        "renamed-without-alias",
        "narrowed",
        "enum-shrunk",
        "union-dropped",
    ],
)
def test_evolution_rules_reject_incompatible_changes(new: dict[str, Any], complaint: str) -> None:
    problems = evolution_violations(V1, new)
    assert any(complaint in problem for problem in problems), problems


def test_evolution_rules_allow_promotion_and_aliases() -> None:
    widened = record([field("id", "double"), *V1["fields"][1:]])
    renamed = record([field("identifier", "long", aliases=["id"]), *V1["fields"][1:]])
    assert evolution_violations(V1, widened) == []
    assert evolution_violations(V1, renamed) == []


@pytest.mark.parametrize(
    ("schema", "complaint"),
    [
        (record([field("note", ["string", "null"], default="")]), "null first"),
        (record([field("c", {k: v for k, v in COLOR.items() if k != "default"})]), "enum needs a default"),
        (record([field("id", "long")], namespace="itchflow.test"), "not versioned"),
        (record([{"name": "id", "type": "long"}]), "no doc"),
    ],
    ids=["null-not-first", "enum-without-default", "unversioned-namespace", "undocumented-field"],
)
def test_static_rules_catch_bad_schemas(schema: dict[str, Any], complaint: str) -> None:
    assert any(complaint in problem for problem in static_violations(schema))


def test_an_unpublished_change_is_reported_and_publish_writes_the_next_revision(tmp_path: Path) -> None:
    v2 = record(V1["fields"] + [field("venue", "string", default="XNAS")])
    registry = schemas_folder(tmp_path, v2, V1)
    assert any("changed since revision 1" in p for p in registry_violations(registry))
    assert [entry.name for entry in publish(registry)] == [f"{NS}.Thing"]
    assert (tmp_path / "history" / f"{NS}.Thing" / "2.avsc").exists()
    assert registry_violations(SchemaRegistry(tmp_path)) == []


def test_publish_refuses_a_breaking_change(tmp_path: Path) -> None:
    registry = schemas_folder(tmp_path, record(V1["fields"][:1]), V1)
    with pytest.raises(ValueError, match="not published"):
        publish(registry)
    assert not (tmp_path / "history" / f"{NS}.Thing" / "2.avsc").exists()


def sample_datum(node: Any, named: dict[str, Any], namespace: str | None = None) -> Any:
    """A valid datum for any schema, taking the last branch of unions to exercise the non-null side."""
    if isinstance(node, str):
        primitives = {"null": None, "boolean": True, "int": 1, "long": 2, "float": 1.5, "double": 2.5}
        primitives |= {"bytes": b"\x01", "string": "s"}
        if node in primitives:
            return primitives[node]
        full = node if "." in node else f"{namespace}.{node}"
        return sample_datum(named[full], named, namespace)
    if isinstance(node, list):
        branch = node[-1]
        value = sample_datum(branch, named, namespace)
        if isinstance(branch, dict) and branch.get("type") == "record":
            return (f"{branch.get('namespace', namespace)}.{branch['name']}", value)
        return value
    kind = node["type"]
    if kind == "record":
        own = node.get("namespace", namespace)
        named[f"{own}.{node['name']}"] = node
        return {f["name"]: sample_datum(f["type"], named, own) for f in node["fields"]}
    if kind == "enum":
        return node["symbols"][0]
    if kind == "array":
        return [sample_datum(node["items"], named, namespace)]
    if kind == "map":
        return {"k": sample_datum(node["values"], named, namespace)}
    if node.get("logicalType") == "date":
        return date(2020, 7, 1)
    return sample_datum(kind, named, namespace)


RECORD_NAMES = [
    name for name in default_registry().names() if default_registry().current(name).schema["type"] == "record"
]


def test_only_records_and_the_shared_enum_have_files() -> None:
    others = set(default_registry().names()) - set(RECORD_NAMES)
    assert others == {"itchflow.normalized.v1.SequenceStatus"}
    assert default_registry().history("itchflow.normalized.v1.SequenceStatus")


@pytest.mark.parametrize("name", RECORD_NAMES)
def test_a_record_of_every_published_revision_decodes_with_the_current_reader(name: str) -> None:
    registry = default_registry()
    revisions = registry.history(name)
    assert revisions, f"{name} was never published"
    for revision in revisions:
        data = encode_with(revision, sample_datum(revision.schema, {}))
        assert registry.decode(name, data, return_record_name=True) is not None
