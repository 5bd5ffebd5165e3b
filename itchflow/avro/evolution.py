"""Schema evolution rules (see ``schemas/README.md``), checked by tests and by ``publish``.

``python -m itchflow.avro.evolution check``   report rule violations, exit 1 if any
``python -m itchflow.avro.evolution publish`` copy every changed, rule-abiding schema into
                                               ``schemas/history/<full name>/<N+1>.avsc``
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from typing import Any

from itchflow.avro.registry import HISTORY_DIRNAME, JsonSchema, SchemaEntry, SchemaRegistry, default_registry

NAMESPACE_PATTERN = re.compile(r"^itchflow(\.[a-z][a-z0-9_]*)*\.v[0-9]+$")
"""Every named type lives in a versioned namespace, e.g. ``itchflow.itch.v1``."""

_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}


def _named_types(node: Any, namespace: str | None = None) -> Iterator[tuple[str, JsonSchema]]:
    """Every named type defined in a standalone schema, as (full name, definition)."""
    if isinstance(node, list):
        for branch in node:
            yield from _named_types(branch, namespace)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            name = node["name"]
            full = name if "." in name else f"{node.get('namespace', namespace)}.{name}"
            yield full, node
            for field in node.get("fields", []):
                yield from _named_types(field["type"], full.rpartition(".")[0])
        elif kind == "array":
            yield from _named_types(node["items"], namespace)
        elif kind == "map":
            yield from _named_types(node["values"], namespace)
        elif isinstance(kind, dict | list):
            yield from _named_types(kind, namespace)


def _unions(node: Any, where: str) -> Iterator[tuple[str, list[Any]]]:
    if isinstance(node, list):
        yield where, node
        for branch in node:
            yield from _unions(branch, where)
    elif isinstance(node, dict):
        for field in node.get("fields", []):
            yield from _unions(field["type"], f"{where}.{field['name']}")
        for key in ("items", "values"):
            if key in node:
                yield from _unions(node[key], where)
        if isinstance(node.get("type"), dict | list):
            yield from _unions(node["type"], where)


def static_violations(schema: JsonSchema) -> list[str]:
    """Rules every current schema obeys on its own: versioned namespaces, docs, enum defaults,
    ``null`` first in nullable unions."""
    problems = []
    for full, node in _named_types(schema):
        namespace = full.rpartition(".")[0]
        if not NAMESPACE_PATTERN.match(namespace):
            problems.append(f"{full}: namespace {namespace!r} is not versioned like itchflow.<area>.v<N>")
        if not node.get("doc"):
            problems.append(f"{full}: no doc")
        if node["type"] == "enum" and node.get("default") not in node["symbols"]:
            problems.append(f"{full}: enum needs a default symbol (readers map unknown symbols to it)")
        for field in node.get("fields", []):
            if not field.get("doc"):
                problems.append(f"{full}.{field['name']}: no doc")
    for where, union in _unions(schema, schema["name"]):
        if "null" in union and union[0] != "null":
            problems.append(f"{where}: nullable union must put null first")
    return problems


def _type_name(node: Any, namespace: str | None) -> str:
    """A short label for a type: primitive name, full name of a named type, or array/map."""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "union"
    kind = node["type"]
    if kind in ("record", "error", "enum", "fixed"):
        name = node["name"]
        return name if "." in name else f"{node.get('namespace', namespace)}.{name}"
    if isinstance(kind, str):
        return kind
    return _type_name(kind, namespace)


def _aliases_of(node: Any) -> set[str]:
    return set(node.get("aliases", [])) if isinstance(node, dict) else set()


def _resolve_named(node: Any, definitions: dict[str, JsonSchema], namespace: str | None) -> Any:
    if isinstance(node, str) and node not in _PRIMITIVE_NAMES:
        full = node if "." in node else f"{namespace}.{node}"
        return definitions.get(full, node)
    return node


_PRIMITIVE_NAMES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def evolution_violations(old: JsonSchema, new: JsonSchema) -> list[str]:
    """Rules a new revision obeys relative to the previous one, so that data written with ``old``
    stays readable with ``new`` (backward compatibility): fields are only added, each with a default;
    nothing is removed or renamed without an alias; enums only gain symbols; types change only by
    Avro promotion."""
    old_defs = dict(_named_types(old))
    new_defs = dict(_named_types(new))
    problems: list[str] = []
    _compare(old, new, None, None, old_defs, new_defs, problems, new["name"], set())
    return problems


def _compare(
    old: Any,
    new: Any,
    old_ns: str | None,
    new_ns: str | None,
    old_defs: dict[str, JsonSchema],
    new_defs: dict[str, JsonSchema],
    problems: list[str],
    where: str,
    seen: set[tuple[str, str]],
) -> None:
    old = _resolve_named(old, old_defs, old_ns)
    new = _resolve_named(new, new_defs, new_ns)
    if isinstance(new, list):
        new_branches = new
        old_branches = old if isinstance(old, list) else [old]
        for branch in old_branches:
            label = _type_name(branch, old_ns)
            match = [b for b in new_branches if _type_name(b, new_ns) == label] or [
                b for b in new_branches if label in _aliases_of(_resolve_named(b, new_defs, new_ns))
            ]
            if not match:
                problems.append(f"{where}: union branch {label} was removed")
            else:
                _compare(branch, match[0], old_ns, new_ns, old_defs, new_defs, problems, where, seen)
        return
    if isinstance(old, list):
        problems.append(f"{where}: a union became a single type")
        return
    old_label, new_label = _type_name(old, old_ns), _type_name(new, new_ns)
    old_kind = old if isinstance(old, str) else old["type"]
    if old_label != new_label and old_label not in _aliases_of(new):
        if (old_label, new_label) not in _PROMOTIONS:
            problems.append(f"{where}: type changed from {old_label} to {new_label}")
        return
    if not isinstance(old, dict) or not isinstance(new, dict):
        return
    if isinstance(old.get("logicalType"), str) and old.get("logicalType") != new.get("logicalType"):
        problems.append(
            f"{where}: logicalType changed from {old.get('logicalType')} to {new.get('logicalType')}"
        )
    if old_kind in ("record", "error"):
        if (old_label, new_label) in seen:
            return
        seen.add((old_label, new_label))
        child_old_ns, child_new_ns = old_label.rpartition(".")[0], new_label.rpartition(".")[0]
        new_fields = {f["name"]: f for f in new["fields"]}
        matched: set[str] = set()
        for field in old["fields"]:
            target = new_fields.get(field["name"]) or next(
                (f for f in new["fields"] if field["name"] in f.get("aliases", [])), None
            )
            if target is None:
                problems.append(f"{where}.{field['name']}: field removed or renamed without an alias")
                continue
            matched.add(target["name"])
            _compare(
                field["type"],
                target["type"],
                child_old_ns,
                child_new_ns,
                old_defs,
                new_defs,
                problems,
                f"{where}.{target['name']}",
                seen,
            )
        for field in new["fields"]:
            if field["name"] not in matched and "default" not in field:
                problems.append(f"{where}.{field['name']}: new field has no default")
    elif old_kind == "enum":
        missing = [s for s in old["symbols"] if s not in new["symbols"]]
        if missing:
            problems.append(f"{where}: enum symbols removed: {missing}")
    elif old_kind == "fixed":
        if old["size"] != new["size"]:
            problems.append(f"{where}: fixed size changed")
    elif old_kind == "array":
        _compare(old["items"], new["items"], old_ns, new_ns, old_defs, new_defs, problems, f"{where}[]", seen)
    elif old_kind == "map":
        _compare(
            old["values"], new["values"], old_ns, new_ns, old_defs, new_defs, problems, f"{where}{{}}", seen
        )


def registry_violations(registry: SchemaRegistry) -> list[str]:
    """Every rule over a whole ``schemas`` directory, including that each current schema is published."""
    problems = []
    for name in registry.names():
        current = registry.current(name)
        problems += static_violations(current.schema)
        revisions = registry.history(name)
        for older, newer in zip(revisions, revisions[1:], strict=False):
            problems += [
                f"revision {newer.revision}: {p}" for p in evolution_violations(older.schema, newer.schema)
            ]
        if not revisions:
            problems.append(f"{name}: never published (run python -m itchflow.avro.evolution publish)")
        elif revisions[-1].fingerprint != current.fingerprint:
            problems.append(f"{name}: changed since revision {revisions[-1].revision} (publish it)")
            problems += evolution_violations(revisions[-1].schema, current.schema)
    return problems


def publish(registry: SchemaRegistry) -> list[SchemaEntry]:
    """Write every current schema that differs from its latest revision as the next revision.

    Raises:
        ValueError: if a changed schema breaks a rule (nothing is written then).
    """
    pending = []
    problems = []
    for name in registry.names():
        current = registry.current(name)
        revisions = registry.history(name)
        if revisions and revisions[-1].fingerprint == current.fingerprint:
            continue
        problems += static_violations(current.schema)
        if revisions:
            problems += evolution_violations(revisions[-1].schema, current.schema)
        pending.append((current, (revisions[-1].revision or 0) + 1 if revisions else 1))
    if problems:
        raise ValueError("not published:\n  " + "\n  ".join(problems))
    for entry, revision in pending:
        folder = registry.root / HISTORY_DIRNAME / entry.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{revision}.avsc").write_text(json.dumps(entry.schema, indent=2) + "\n", encoding="utf-8")
    return [entry for entry, _ in pending]


def main(argv: list[str] | None = None) -> int:
    """``check`` or ``publish`` the default schemas directory."""
    command = (argv if argv is not None else sys.argv[1:]) or ["check"]
    registry = default_registry()
    if command[0] == "publish":
        for entry in publish(registry):
            print(f"published {entry.name}")
        return 0
    problems = registry_violations(registry)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
