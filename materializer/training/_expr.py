"""Small, exact text operations on ClickHouse expressions.

A feature's aggregation is any ClickHouse aggregate expression (``uniqExact(x)``,
``sum(x) / count()``, ``quantile(0.9)(x)``). The running (lifetime) form of a feature
evaluates that expression as window functions, which in ClickHouse means appending
``OVER <window>`` to every aggregate call in it. :func:`over_window` does exactly that,
with a tokenizer that respects string literals and quoted identifiers, so nothing inside
a literal is ever touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["AggregateNames", "aggregate_calls", "over_window"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class AggregateNames:
    """Recognizes aggregate function names, combinators included (``uniqExactIf``,
    ``sumOrNull``), from the names the ClickHouse server itself lists."""

    def __init__(self, functions: dict[str, bool], combinators: list[str]) -> None:
        # functions: name -> case_insensitive, from system.functions WHERE is_aggregate
        self._exact = {n for n, ci in functions.items() if not ci}
        self._folded = {n.lower() for n, ci in functions.items() if ci}
        self._combinators = sorted(combinators, key=len, reverse=True)

    def _base(self, name: str) -> bool:
        return name in self._exact or name.lower() in self._folded

    def __call__(self, name: str) -> bool:
        if self._base(name):
            return True
        for suffix in self._combinators:
            if name.endswith(suffix) and len(name) > len(suffix) and self(name[: -len(suffix)]):
                return True
        return False


def _skip_quoted(text: str, i: int) -> int:
    """Index just past the quoted token (``'...'``, ``"..."`` or a backquoted name) at ``i``."""
    quote = text[i]
    j = i + 1
    while j < len(text):
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if ch == quote:
            if j + 1 < len(text) and text[j + 1] == quote:  # doubled quote inside the token
                j += 2
                continue
            return j + 1
        j += 1
    raise ValueError(f"unterminated {quote} in expression: {text!r}")


def _close_paren(text: str, i: int) -> int:
    """Index just past the parenthesis group that opens at ``text[i] == '('``."""
    depth = 0
    j = i
    while j < len(text):
        ch = text[j]
        if ch in "'\"`":
            j = _skip_quoted(text, j)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise ValueError(f"unbalanced parentheses in expression: {text!r}")


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def aggregate_calls(expr: str, is_aggregate: Callable[[str], bool]) -> list[tuple[int, int]]:
    """The ``(start, end)`` spans of the top-level aggregate function calls in ``expr``.

    A parametric call such as ``quantile(0.9)(x)`` is one span. Aggregate calls cannot be
    nested in ClickHouse, so the inside of a call is not searched.
    """
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(expr):
        ch = expr[i]
        if ch in "'\"`":
            i = _skip_quoted(expr, i)
            continue
        match = _IDENT.match(expr, i)
        if match is None:
            i += 1
            continue
        name_end = match.end()
        qualified = i > 0 and expr[i - 1] == "."  # db.func(...) is never an aggregate here
        paren = _skip_space(expr, name_end)
        if (
            not qualified
            and paren < len(expr)
            and expr[paren] == "("
            and is_aggregate(match.group())
        ):
            end = _close_paren(expr, paren)
            second = _skip_space(expr, end)
            if second < len(expr) and expr[second] == "(":  # parameters, then arguments
                end = _close_paren(expr, second)
            spans.append((i, end))
            i = end
            continue
        i = name_end
    return spans


def over_window(expr: str, window: str, is_aggregate: Callable[[str], bool]) -> str:
    """``expr`` with ``OVER <window>`` after each aggregate call: ``sum(x) / count()``
    becomes ``sum(x) OVER w / count() OVER w``. Raises ValueError when ``expr`` holds
    no aggregate call."""
    spans = aggregate_calls(expr, is_aggregate)
    if not spans:
        raise ValueError(f"no aggregate function call in {expr!r}")
    out: list[str] = []
    last = 0
    for _, end in spans:
        out.append(expr[last:end])
        out.append(f" OVER {window}")
        last = end
    out.append(expr[last:])
    return "".join(out)
