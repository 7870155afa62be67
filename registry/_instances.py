"""Hypothesis strategies that generate instances of a JSON Schema, used to check that a
migration turns valid events of the old version into valid events of the new one.

It covers the keywords events use (types, properties/required, enums, const, arrays,
string lengths, patterns and common formats, numeric bounds, anyOf/oneOf/allOf, local
$refs); every generated instance is filtered through the schema's own validator, so an
approximation never yields an invalid instance."""

from __future__ import annotations

import math
from datetime import UTC
from typing import Any

from hypothesis import strategies as st
from jsonschema import Draft7Validator, validators

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.text(max_size=8),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)
_ANY = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=5,
)
_FORMATS: dict[str, st.SearchStrategy[str]] = {
    "date-time": st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    "date": st.dates().map(lambda d: d.isoformat()),
    "time": st.times().map(lambda t: t.isoformat() + "Z"),
    "uuid": st.uuids().map(str),
    "email": st.from_regex(r"\A[a-z]{1,8}@[a-z]{1,8}\.[a-z]{2,3}\Z"),
    "ipv4": st.ip_addresses(v=4).map(str),
    "ipv6": st.ip_addresses(v=6).map(str),
    "uri": st.from_regex(r"\Ahttps://[a-z]{1,10}\.[a-z]{2,3}/[a-z]{0,8}\Z"),
}


class _Builder:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.depth = 0

    def _deref(self, schema: Any) -> Any:
        for _ in range(32):
            if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
                break
            target: Any = self.root
            for part in [p for p in schema["$ref"].lstrip("#").split("/") if p]:
                target = (
                    target.get(part.replace("~1", "/").replace("~0", "~"), {})
                    if isinstance(target, dict)
                    else {}
                )
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if isinstance(target, dict) else target
        return schema

    def build(self, schema: Any) -> st.SearchStrategy[Any]:
        schema = self._deref(schema)
        if schema is False:
            return st.nothing()
        if schema is True or not isinstance(schema, dict) or not schema:
            return _ANY
        if self.depth > 8:
            return st.nothing()
        self.depth += 1
        try:
            return self._build(schema)
        finally:
            self.depth -= 1

    def _build(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        if "const" in schema:
            return st.just(schema["const"])
        if "enum" in schema:
            return st.sampled_from(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                rest = {k: v for k, v in schema.items() if k != key}
                return st.one_of(
                    *[self.build({**rest, **b} if isinstance(b, dict) else b) for b in schema[key]]
                )
        if "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for declared in schema["allOf"]:
                part = self._deref(declared)
                if isinstance(part, dict):
                    merged = _merge(merged, part)
            return self.build(merged)
        kinds = schema.get("type")
        if kinds is None:
            kinds = _implied_type(schema)
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        return st.one_of(*[self._typed(k, schema) for k in kinds])

    def _typed(self, kind: str, s: dict[str, Any]) -> st.SearchStrategy[Any]:
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind == "integer":
            return _integers(s)
        if kind == "number":
            return _integers(s) | _floats(s)
        if kind == "string":
            return _strings(s)
        if kind == "array":
            return self._array(s)
        if kind == "object":
            return self._object(s)
        return _ANY

    def _array(self, s: dict[str, Any]) -> st.SearchStrategy[Any]:
        items = s.get("items", True)
        lo = int(s.get("minItems", 0))
        hi = int(s.get("maxItems", lo + 3))
        if isinstance(items, list):  # draft-7 tuple form
            return st.tuples(*[self.build(i) for i in items]).map(list)
        prefix = s.get("prefixItems")
        if prefix:
            return st.tuples(*[self.build(i) for i in prefix]).map(list)
        strategy = self.build(items)
        if s.get("uniqueItems"):
            return st.lists(strategy, min_size=lo, max_size=hi, unique_by=repr)
        return st.lists(strategy, min_size=lo, max_size=hi)

    def _object(self, s: dict[str, Any]) -> st.SearchStrategy[Any]:
        props: dict[str, Any] = s.get("properties") or {}
        required = list(s.get("required") or [])
        fixed = {name: self.build(props.get(name, True)) for name in required}
        optional = {name: self.build(sub) for name, sub in props.items() if name not in required}
        return st.fixed_dictionaries(fixed, optional=optional)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {**a, **b}
    if "properties" in a or "properties" in b:
        out["properties"] = {**(a.get("properties") or {}), **(b.get("properties") or {})}
    if "required" in a or "required" in b:
        out["required"] = sorted({*(a.get("required") or []), *(b.get("required") or [])})
    return out


def _implied_type(s: dict[str, Any]) -> list[str]:
    if "properties" in s or "required" in s or "additionalProperties" in s:
        return ["object"]
    if "items" in s or "prefixItems" in s:
        return ["array"]
    if any(k in s for k in ("pattern", "minLength", "maxLength", "format")):
        return ["string"]
    if any(k in s for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return ["number"]
    return ["null", "boolean", "integer", "number", "string", "array", "object"]


def _bounds(s: dict[str, Any]) -> tuple[float | None, float | None]:
    lo, hi = s.get("minimum"), s.get("maximum")
    if isinstance(s.get("exclusiveMinimum"), (int, float)):
        lo = s["exclusiveMinimum"] if lo is None else max(lo, s["exclusiveMinimum"])
    if isinstance(s.get("exclusiveMaximum"), (int, float)):
        hi = s["exclusiveMaximum"] if hi is None else min(hi, s["exclusiveMaximum"])
    return lo, hi


def _integers(s: dict[str, Any]) -> st.SearchStrategy[int]:
    lo, hi = _bounds(s)
    low = None if lo is None else math.ceil(lo)
    high = None if hi is None else math.floor(hi)
    step = s.get("multipleOf")
    if isinstance(step, int) and step > 0:
        return st.integers(
            None if low is None else math.ceil(low / step),
            None if high is None else math.floor(high / step),
        ).map(lambda n: n * step)
    return st.integers(low, high)


def _floats(s: dict[str, Any]) -> st.SearchStrategy[float]:
    lo, hi = _bounds(s)
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def _strings(s: dict[str, Any]) -> st.SearchStrategy[str]:
    lo = int(s.get("minLength", 0))
    hi = s.get("maxLength")
    if "pattern" in s:
        base: st.SearchStrategy[str] = st.from_regex(s["pattern"])
    elif s.get("format") in _FORMATS:
        base = _FORMATS[s["format"]]
    else:
        return st.text(min_size=lo, max_size=hi if hi is not None else lo + 12)
    return base.filter(lambda v: lo <= len(v) and (hi is None or len(v) <= hi))


def instances(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Instances valid under ``schema``."""
    validator = validators.validator_for(schema, default=Draft7Validator)(schema)
    return _Builder(schema).build(schema).filter(validator.is_valid)
