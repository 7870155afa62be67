"""Inline SVG for the console's pages: sparklines, bar charts, line charts and the lineage
graph, rendered on the server (no script, nothing to build). Every label is escaped."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Node", "bars", "line_chart", "lineage_graph", "sparkline"]


def sparkline(values: Sequence[float], width: int = 120, height: int = 24) -> Markup:
    """A polyline of ``values`` (oldest first), scaled to its maximum."""
    if not values:
        return Markup("")
    top = max(*values, 1)
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v / top) * (height - 4):.1f}" for i, v in enumerate(values)
    )
    total = int(sum(values))
    return Markup(  # noqa: S704 - numbers, and labels passed through escape()
        f'<svg class="spark" width="{width}" height="{height}" role="img" '
        f'aria-label="{total} events over {len(values)} days">'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="{points}"/></svg>'
    )


def bars(items: Sequence[tuple[str, float]], width: int = 480, bar: int = 18) -> Markup:
    """Horizontal bars: (label, value) each, scaled to the largest."""
    if not items:
        return Markup('<p class="muted">no values</p>')
    top = max(v for _, v in items) or 1
    rows = []
    for i, (label, value) in enumerate(items):
        y = i * (bar + 4)
        w = (width - 200) * value / top
        rows.append(
            f'<text x="0" y="{y + bar - 5}" class="label">{escape(label)}</text>'
            f'<rect x="150" y="{y}" width="{w:.1f}" height="{bar}" fill="#60a5fa"/>'
            f'<text x="{155 + w:.1f}" y="{y + bar - 5}" class="label">{value:g}</text>'
        )
    height = len(items) * (bar + 4)
    return Markup(  # noqa: S704 - numbers, and labels passed through escape()
        f'<svg class="bars" width="{width}" height="{height}" role="img">{"".join(rows)}</svg>'
    )


def line_chart(
    series: dict[str, Sequence[tuple[str, float]]], width: int = 640, height: int = 160
) -> Markup:
    """One line per named series of (x label, value); the x labels of the first series are
    the axis."""
    values = [v for points in series.values() for _, v in points]
    if not values:
        return Markup('<p class="muted">no data yet</p>')
    top = max(values) or 1
    colors = ["#2563eb", "#dc2626", "#16a34a"]
    parts = []
    for (name, points), color in zip(series.items(), colors, strict=False):
        step = (width - 60) / max(len(points) - 1, 1)
        coords = " ".join(
            f"{50 + i * step:.1f},{height - 20 - (v / top) * (height - 40):.1f}"
            for i, (_, v) in enumerate(points)
        )
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}">'
            f"<title>{escape(name)}</title></polyline>"
        )
    first = next(iter(series.values()))
    if first:
        parts.append(f'<text x="50" y="{height - 4}" class="label">{escape(first[0][0])}</text>')
        parts.append(
            f'<text x="{width - 10}" y="{height - 4}" text-anchor="end" class="label">'
            f"{escape(first[-1][0])}</text>"
        )
    parts.append(f'<text x="0" y="14" class="label">{top:g}</text>')
    legend = "".join(
        f'<text x="{60 + i * 160}" y="14" fill="{c}" class="label">{escape(n)}</text>'
        for i, (n, c) in enumerate(zip(series, colors, strict=False))
    )
    return Markup(  # noqa: S704 - numbers, and labels passed through escape()
        f'<svg class="chart" width="{width}" height="{height}" role="img">'
        f"{''.join(parts)}{legend}</svg>"
    )


@dataclass(frozen=True)
class Node:
    """A box of the lineage graph: its column (0 sources, 1 subjects, 2 features, 3
    spines), its label, where it links to, and the nodes it feeds."""

    key: str
    column: int
    label: str
    href: str | None = None
    feeds: tuple[str, ...] = ()


def lineage_graph(nodes: Sequence[Node], width: int = 960) -> Markup:
    """Four columns of boxes joined by curves, left to right."""
    if not nodes:
        return Markup('<p class="muted">nothing to draw</p>')
    col_w, box_w, box_h, gap = width // 4, width // 4 - 40, 26, 12
    place: dict[str, tuple[float, float]] = {}
    counts = [0, 0, 0, 0]
    boxes = []
    for node in nodes:
        x = node.column * col_w + 10
        y = 30 + counts[node.column] * (box_h + gap)
        counts[node.column] += 1
        place[node.key] = (x, y)
        text = escape(node.label if len(node.label) <= 30 else node.label[:29] + "…")
        box = (
            f'<g class="node col{node.column}" data-key="{escape(node.key)}">'
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="5"/>'
            f'<text x="{x + 8}" y="{y + 17}">{text}</text></g>'
        )
        boxes.append(f'<a href="{escape(node.href)}">{box}</a>' if node.href else box)
    edges = []
    for node in nodes:
        x1, y1 = place[node.key]
        for target in node.feeds:
            if target not in place:
                continue
            x2, y2 = place[target]
            sx, sy, ex, ey = x1 + box_w, y1 + box_h / 2, x2, y2 + box_h / 2
            mid = (sx + ex) / 2
            edges.append(f'<path class="edge" d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}"/>')
    heads = "".join(
        f'<text x="{i * col_w + 10}" y="16" class="head">{h}</text>'
        for i, h in enumerate(("sources", "subjects", "features", "spines"))
    )
    height = 40 + max(counts) * (box_h + gap)
    return Markup(  # noqa: S704 - numbers, and labels passed through escape()
        f'<svg class="lineage" width="{width}" height="{height}" role="img">'
        f"{heads}{''.join(edges)}{''.join(boxes)}</svg>"
    )
