"""JSON Schema compatibility: can every instance valid under the *writer* schema be
validated by the *reader* schema?

The rule set is a table of small pure functions (``RULES``), one per rule, each given the
reader and writer (sub)schemas at one path and yielding the incompatibilities it finds;
rules that descend into properties, items or branches call back into the comparison.
docs/registry.md lists the rules. Keywords the table does not reason about (allOf, not,
if/then/else, dependencies, ...) are compared literally: any change to them is reported,
so an unknown case is refused rather than silently accepted."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from registry._compat_avro import Incompatibility

_TYPES = ("null", "boolean", "object", "array", "number", "string", "integer")
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_HANDLED = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "prefixItems",
        "pattern",
        "format",
        "multipleOf",
        "anyOf",
        "oneOf",
        "uniqueItems",
        "$ref",
        "$schema",
        "$id",
        "$defs",
        "definitions",
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "readOnly",
        "writeOnly",
        "deprecated",
        "contentEncoding",
        "contentMediaType",
        *_LOWER_BOUNDS,
        *_UPPER_BOUNDS,
    }
)

Schema = dict[str, Any] | bool
Rule = Callable[["Comparison", dict[str, Any], dict[str, Any], str], Iterator[Incompatibility]]


def _types(schema: dict[str, Any]) -> set[str] | None:
    """The instance types a schema admits (None: any)."""
    t = schema.get("type")
    if t is None:
        if "enum" in schema or "const" in schema:
            values = schema.get("enum", [schema.get("const")])
            return {_type_of(v) for v in values}
        return None
    return {t} if isinstance(t, str) else set(t)


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _admits(schema: dict[str, Any], kind: str) -> bool:
    types = _types(schema)
    return types is None or kind in types or (kind == "integer" and "number" in types)


class Comparison:
    """One reader/writer comparison: resolves local ``$ref``s and guards recursion."""

    def __init__(self, reader_root: Schema, writer_root: Schema) -> None:
        self.roots = {"reader": reader_root, "writer": writer_root}
        self.in_progress: set[tuple[int, int]] = set()

    def _deref(self, schema: Schema, side: str) -> Schema:
        seen = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 32:
            ref = schema["$ref"]
            if not ref.startswith("#"):
                return schema
            target: Any = self.roots[side]
            for escaped in [p for p in ref[1:].split("/") if p]:
                part = escaped.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    return schema
                target = target[part]
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **siblings} if isinstance(target, dict) and siblings else target
            seen += 1
        return schema

    def compare(self, reader: Schema, writer: Schema, path: str) -> list[Incompatibility]:
        reader, writer = self._deref(reader, "reader"), self._deref(writer, "writer")
        if reader is True or reader == {} or writer is False:
            return []
        if reader is False:
            return [
                Incompatibility(
                    path or "/", "SCHEMA_CLOSED", "the reader schema is `false` and admits nothing"
                )
            ]
        if writer is True:
            writer = {}
        assert isinstance(reader, dict) and isinstance(writer, dict)
        key = (id(reader), id(writer))
        if key in self.in_progress:
            return []
        self.in_progress.add(key)
        try:
            if any(k in writer for k in ("anyOf", "oneOf")):
                return self._writer_branches(reader, writer, path)
            if any(k in reader for k in ("anyOf", "oneOf")):
                return self._reader_branches(reader, writer, path)
            out: list[Incompatibility] = []
            for rule in RULES:
                out.extend(rule(self, reader, writer, path))
            return out
        finally:
            self.in_progress.discard(key)

    def _writer_branches(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        """Every writer branch must be readable."""
        key = "anyOf" if "anyOf" in writer else "oneOf"
        rest = {k: v for k, v in writer.items() if k != key}
        out: list[Incompatibility] = []
        for i, branch in enumerate(writer[key]):
            merged = {**rest, **branch} if isinstance(branch, dict) else branch
            out.extend(
                Incompatibility(inc.path, inc.rule, f"{inc.detail} (writer {key}[{i}])")
                for inc in self.compare(reader, merged, path)
            )
        return out

    def _reader_branches(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        """Some reader branch must read the writer."""
        key = "anyOf" if "anyOf" in reader else "oneOf"
        rest = {k: v for k, v in reader.items() if k != key}
        best: list[Incompatibility] | None = None
        for branch in reader[key]:
            merged = {**rest, **branch} if isinstance(branch, dict) else branch
            found = self.compare(merged, writer, path)
            if not found:
                return []
            if best is None or len(found) < len(best):
                best = found
        detail = "; ".join(str(i) for i in best or [])
        return [
            Incompatibility(
                path or "/",
                "NO_MATCHING_BRANCH",
                f"no reader {key} branch reads the writer schema (closest: {detail})",
            )
        ]


def rule_type_narrowed(
    _: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """TYPE_NARROWED: the reader must admit every type the writer admits (integer fits number)."""
    rt, wt = _types(r), _types(w)
    if rt is None:
        return
    if wt is None:
        yield Incompatibility(
            path or "/", "TYPE_NARROWED", f"writer admits any type, reader only {sorted(rt)}"
        )
        return
    lost = sorted(t for t in wt if not _admits(r, t))
    if lost:
        yield Incompatibility(
            path or "/",
            "TYPE_NARROWED",
            f"reader no longer admits type(s) {lost} (reader {sorted(rt)}, writer {sorted(wt)})",
        )


def rule_enum_narrowed(
    _: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """ENUM_NARROWED: a reader enum must contain every value the writer allows."""
    if "enum" not in r:
        return
    if "enum" in w or "const" in w:
        values = w["enum"] if "enum" in w else [w["const"]]
        lost = [v for v in values if v not in r["enum"]]
        if lost:
            yield Incompatibility(
                path or "/", "ENUM_NARROWED", f"reader enum lacks writer value(s) {lost}"
            )
    else:
        yield Incompatibility(
            path or "/",
            "ENUM_NARROWED",
            f"reader restricts values to {r['enum']}, writer had no enum",
        )


def rule_const_changed(
    _: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """CONST_CHANGED: a reader const must be the only value the writer allows."""
    if "const" not in r:
        return
    values = [w["const"]] if "const" in w else w.get("enum")
    if values is None or any(v != r["const"] for v in values):
        yield Incompatibility(
            path or "/", "CONST_CHANGED", f"reader requires the constant {r['const']!r}"
        )


def rule_required_added(
    _: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """REQUIRED_ADDED: the reader may not require a property the writer did not require."""
    if not _admits(r, "object") or not _admits(w, "object"):
        return
    before = set(w.get("required") or [])
    for name in r.get("required") or []:
        if name not in before:
            yield Incompatibility(
                f"{path}/{name}",
                "REQUIRED_ADDED",
                f"property '{name}' is required by the reader but optional for the writer",
            )


def _additional(schema: dict[str, Any]) -> Schema:
    value = schema.get("additionalProperties", True)
    return value if isinstance(value, (bool, dict)) else True


def rule_property_removed(
    c: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """PROPERTY_REMOVED: a writer property the reader no longer declares must still be
    admitted by the reader's additionalProperties."""
    declared = r.get("properties") or {}
    for name, sub in (w.get("properties") or {}).items():
        if name in declared or _matches_pattern(r, name):
            continue
        extra = _additional(r)
        if extra is False:
            yield Incompatibility(
                f"{path}/{name}",
                "PROPERTY_REMOVED",
                f"property '{name}' was removed and the reader forbids additional properties",
            )
        elif isinstance(extra, dict):
            yield from c.compare(extra, sub, f"{path}/{name}")


def _matches_pattern(schema: dict[str, Any], name: str) -> bool:
    return any(re.search(p, name) for p in (schema.get("patternProperties") or {}))


def rule_property_added(
    c: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """PROPERTY_ADDED: a new reader property must read what the writer's
    additionalProperties allowed under that name. A closed writer (additionalProperties
    false) never wrote it; an open writer is assumed not to have sent undeclared fields
    (the gateway validates events against their exact version)."""
    known = w.get("properties") or {}
    extra = _additional(w)
    if not isinstance(extra, dict):
        return
    for name, sub in (r.get("properties") or {}).items():
        if name not in known:
            yield from c.compare(sub, extra, f"{path}/{name}")


def rule_property_changed(
    c: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """Descend into properties both sides declare."""
    rp, wp = r.get("properties") or {}, w.get("properties") or {}
    for name in rp:
        if name in wp:
            yield from c.compare(rp[name], wp[name], f"{path}/{name}")


def rule_additional_properties(
    c: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """ADDITIONAL_PROPERTIES_NARROWED: the reader may not restrict undeclared properties
    more than the writer did."""
    if not _admits(r, "object") or not _admits(w, "object"):
        return
    re_, we = _additional(r), _additional(w)
    if re_ is True or we is False:
        return
    if re_ is False:
        yield Incompatibility(
            path or "/",
            "ADDITIONAL_PROPERTIES_NARROWED",
            "reader forbids additional properties the writer allowed",
        )
    else:
        yield from c.compare(re_, we if isinstance(we, dict) else True, f"{path}/*")


def rule_items(
    c: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """Descend into array items (a single items schema or a tuple of them)."""
    ri, wi = r.get("items", True), w.get("items", True)
    if isinstance(ri, list) or isinstance(wi, list):
        rl = ri if isinstance(ri, list) else None
        wl = wi if isinstance(wi, list) else None
        if rl is not None and wl is not None:
            for i, (a, b) in enumerate(zip(rl, wl, strict=False)):
                yield from c.compare(a, b, f"{path}/{i}")
        elif ri != wi:
            yield Incompatibility(
                f"{path}/items",
                "ITEMS_CHANGED",
                "array items changed between a list and a single schema",
            )
        return
    yield from c.compare(ri, wi, f"{path}/items")
    rp, wp = r.get("prefixItems") or [], w.get("prefixItems") or []
    for i, (a, b) in enumerate(zip(rp, wp, strict=False)):
        yield from c.compare(a, b, f"{path}/{i}")


def rule_bounds(
    _: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """BOUND_TIGHTENED: minimums may only go down and maximums only up."""
    for key in _LOWER_BOUNDS:
        if (
            key in r
            and isinstance(r[key], (int, float))
            and not isinstance(r[key], bool)
            and (key not in w or r[key] > w[key])
        ):
            was = w.get(key, "none")
            yield Incompatibility(
                path or "/", "BOUND_TIGHTENED", f"{key} raised from {was} to {r[key]}"
            )
    for key in _UPPER_BOUNDS:
        if (
            key in r
            and isinstance(r[key], (int, float))
            and not isinstance(r[key], bool)
            and (key not in w or r[key] < w[key])
        ):
            was = w.get(key, "none")
            yield Incompatibility(
                path or "/", "BOUND_TIGHTENED", f"{key} lowered from {was} to {r[key]}"
            )
    if r.get("uniqueItems") is True and w.get("uniqueItems") is not True:
        yield Incompatibility(path or "/", "BOUND_TIGHTENED", "uniqueItems added")


def rule_pattern(
    _: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """PATTERN_CHANGED: a reader pattern must be the writer's pattern."""
    if "pattern" in r and r["pattern"] != w.get("pattern"):
        yield Incompatibility(
            path or "/",
            "PATTERN_CHANGED",
            f"pattern changed from {w.get('pattern')!r} to {r['pattern']!r}",
        )


def rule_format(
    _: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """FORMAT_CHANGED: a reader format must be the writer's format."""
    if "format" in r and r["format"] != w.get("format"):
        yield Incompatibility(
            path or "/",
            "FORMAT_CHANGED",
            f"format changed from {w.get('format')!r} to {r['format']!r}",
        )


def rule_multiple_of(
    _: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """MULTIPLE_OF_CHANGED: the writer's multipleOf must be a multiple of the reader's."""
    if "multipleOf" not in r:
        return
    wm = w.get("multipleOf")
    if wm is None or (wm / r["multipleOf"]) % 1 != 0:
        yield Incompatibility(
            path or "/", "MULTIPLE_OF_CHANGED", f"multipleOf changed from {wm} to {r['multipleOf']}"
        )


def rule_other_keywords(
    _: Comparison, r: dict[str, Any], w: dict[str, Any], path: str
) -> Iterator[Incompatibility]:
    """KEYWORD_CHANGED: keywords outside this table must be unchanged."""
    for key in sorted((set(r) | set(w)) - _HANDLED - {"patternProperties"}):
        if r.get(key) != w.get(key) and key in r:
            yield Incompatibility(
                path or "/",
                "KEYWORD_CHANGED",
                f"'{key}' changed; Sluicegate only accepts it unchanged",
            )
    if (r.get("patternProperties") or {}) != (
        w.get("patternProperties") or {}
    ) and "patternProperties" in r:
        yield Incompatibility(
            path or "/",
            "KEYWORD_CHANGED",
            "'patternProperties' changed; Sluicegate only accepts it unchanged",
        )


RULES: tuple[Rule, ...] = (
    rule_type_narrowed,
    rule_enum_narrowed,
    rule_const_changed,
    rule_required_added,
    rule_property_removed,
    rule_property_added,
    rule_property_changed,
    rule_additional_properties,
    rule_items,
    rule_bounds,
    rule_pattern,
    rule_format,
    rule_multiple_of,
    rule_other_keywords,
)


def reader_writer_incompatibilities(reader: Schema, writer: Schema) -> list[Incompatibility]:
    """Every reason ``reader`` may reject an instance valid under ``writer``."""
    return Comparison(reader, writer).compare(reader, writer, "")
