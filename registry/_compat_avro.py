"""Avro reader/writer compatibility, following the Avro specification's schema resolution
rules (the same verdicts as Avro's ``SchemaCompatibility``), but reporting *every*
failure with its field path and rule instead of a bare "incompatible".

Works on the normalized schema documents of :mod:`registry._schemas` (full names,
primitive types as strings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from registry._schemas import AVRO_PRIMITIVES

# writer type -> reader types that can read it (besides the same type)
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


@dataclass(frozen=True)
class Incompatibility:
    """One failing spot: where (field path), which rule, and what exactly."""

    path: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}: {self.detail}"


def _names(node: Any, out: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Collect the named types a normalized schema defines."""
    if isinstance(node, list):
        for branch in node:
            _names(branch, out)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            out[node["name"]] = node
        if kind in ("record", "error"):
            for f in node["fields"]:
                _names(f["type"], out)
        elif kind == "array":
            _names(node["items"], out)
        elif kind == "map":
            _names(node["values"], out)
    return out


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _namespace(name: str) -> str | None:
    return name.rsplit(".", 1)[0] if "." in name else None


class _Checker:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader_names = _names(reader, {})
        self.writer_names = _names(writer, {})
        self.in_progress: set[tuple[int, int]] = set()
        self.memo: dict[tuple[int, int], list[Incompatibility]] = {}

    def _resolve(self, node: Any, names: dict[str, dict[str, Any]]) -> Any:
        if isinstance(node, str) and node not in AVRO_PRIMITIVES:
            return names[node]
        return node

    @staticmethod
    def _kind(node: Any) -> str:
        if isinstance(node, str):
            return node
        if isinstance(node, list):
            return "union"
        kind = node["type"]
        return "record" if kind == "error" else kind

    def check(self, reader: Any, writer: Any, path: str) -> list[Incompatibility]:
        reader = self._resolve(reader, self.reader_names)
        writer = self._resolve(writer, self.writer_names)
        key = (id(reader), id(writer))
        if key in self.memo:
            return self.memo[key]
        if key in self.in_progress:  # recursive type: assume compatible while in progress
            return []
        self.in_progress.add(key)
        try:
            result = self._calculate(reader, writer, path)
        finally:
            self.in_progress.discard(key)
        self.memo[key] = result
        return result

    def _calculate(self, reader: Any, writer: Any, path: str) -> list[Incompatibility]:
        rk, wk = self._kind(reader), self._kind(writer)
        if rk == wk:
            return self._same_kind(rk, reader, writer, path)
        if wk == "union":
            out: list[Incompatibility] = []
            for i, branch in enumerate(writer):
                out.extend(
                    Incompatibility(inc.path, inc.rule, f"{inc.detail} (writer union branch {i})")
                    for inc in self.check(reader, branch, path)
                )
            return out
        if rk == "union":
            for branch in reader:
                if not self.check(branch, writer, path):
                    return []
            return [
                Incompatibility(
                    path or "/",
                    "MISSING_UNION_BRANCH",
                    f"reader union {self._describe(reader)} has no branch that reads writer type "
                    f"{self._describe(writer)}",
                )
            ]
        if rk in _PROMOTIONS.get(wk, frozenset()):
            return []
        return [
            Incompatibility(
                path or "/",
                "TYPE_MISMATCH",
                f"reader type {self._describe(reader)} cannot read writer type "
                f"{self._describe(writer)}",
            )
        ]

    def _describe(self, node: Any) -> str:
        if isinstance(node, list):
            return "[" + ", ".join(self._describe(b) for b in node) + "]"
        kind = self._kind(node)
        if isinstance(node, dict) and "name" in node:
            return f"{kind} {node['name']}"
        return kind

    def _names_match(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        if _short(reader["name"]) == _short(writer["name"]):
            return []
        ns = _namespace(reader["name"])
        aliases = {a if "." in a or not ns else f"{ns}.{a}" for a in reader.get("aliases") or []}
        if writer["name"] in aliases:
            return []
        return [
            Incompatibility(
                f"{path}/name" if path else "/name",
                "NAME_MISMATCH",
                f"reader {self._kind(reader)} {reader['name']} does not match writer name "
                f"{writer['name']} (add it to the reader's aliases)",
            )
        ]

    def _same_kind(self, kind: str, reader: Any, writer: Any, path: str) -> list[Incompatibility]:
        if kind in AVRO_PRIMITIVES:
            return []
        if kind == "array":
            return self.check(reader["items"], writer["items"], f"{path}/items")
        if kind == "map":
            return self.check(reader["values"], writer["values"], f"{path}/values")
        if kind == "fixed":
            out = self._names_match(reader, writer, path)
            if reader["size"] != writer["size"]:
                out.append(
                    Incompatibility(
                        f"{path}/size" if path else "/size",
                        "FIXED_SIZE_MISMATCH",
                        f"reader fixed size {reader['size']}, writer fixed size {writer['size']}",
                    )
                )
            return out
        if kind == "enum":
            out = self._names_match(reader, writer, path)
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            default = reader.get("default")
            if missing and not (default and default in reader["symbols"]):
                out.append(
                    Incompatibility(
                        f"{path}/symbols" if path else "/symbols",
                        "MISSING_ENUM_SYMBOLS",
                        f"reader enum {reader['name']} lacks writer symbols {missing} and has no "
                        "default symbol",
                    )
                )
            return out
        if kind == "record":
            return self._names_match(reader, writer, path) + self._fields(reader, writer, path)
        # both unions: every writer branch must be readable by the reader union
        out = []
        for i, branch in enumerate(writer):
            if self.check(reader, branch, path):
                out.append(
                    Incompatibility(
                        path or "/",
                        "MISSING_UNION_BRANCH",
                        f"reader union {self._describe(reader)} cannot read writer union "
                        f"branch {i} "
                        f"({self._describe(self._resolve(branch, self.writer_names))})",
                    )
                )
        return out

    def _fields(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str
    ) -> list[Incompatibility]:
        out: list[Incompatibility] = []
        by_name = {f["name"]: f for f in writer["fields"]}
        for rf in reader["fields"]:
            fpath = f"{path}/{rf['name']}"
            wf = by_name.get(rf["name"])
            if wf is None:
                for alias in rf.get("aliases") or []:
                    if alias in by_name:
                        wf = by_name[alias]
                        break
            if wf is None:
                if "default" not in rf:
                    out.append(
                        Incompatibility(
                            fpath,
                            "READER_FIELD_MISSING_DEFAULT_VALUE",
                            f"reader field '{rf['name']}' is missing from the writer and has no "
                            "default",
                        )
                    )
                continue
            out.extend(self.check(rf["type"], wf["type"], fpath))
        return out


def reader_writer_incompatibilities(reader: Any, writer: Any) -> list[Incompatibility]:
    """Every reason ``reader`` cannot read data written with ``writer`` (empty: it can)."""
    return _Checker(reader, writer).check(reader, writer, "")
