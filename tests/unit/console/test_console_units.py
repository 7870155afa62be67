"""The console's pure parts: charts escape every label, histograms count what they show,
paging stays in range, and the diff of two schemas marks what changed."""

from __future__ import annotations

import orjson

from console import _charts, _data


def test_labels_are_escaped_everywhere() -> None:
    hostile = '<script>alert("x")</script>'
    for svg in (
        _charts.bars([(hostile, 3.0)]),
        _charts.line_chart({hostile: [(hostile, 1.0), ("b", 2.0)]}),
        _charts.lineage_graph([_charts.Node(hostile, 1, hostile, f"/ui/x?{hostile}")]),
    ):
        assert "<script>" not in str(svg)
        assert "&lt;script&gt;" in str(svg)


def test_lineage_edges_join_the_nodes_that_feed_each_other() -> None:
    nodes = [
        _charts.Node("a", 0, "a", feeds=("b",)),
        _charts.Node("b", 1, "b", feeds=("c", "missing")),
        _charts.Node("c", 2, "c"),
    ]
    svg = str(_charts.lineage_graph(nodes))
    assert svg.count('class="edge"') == 2
    assert svg.count('class="node') == 3


def test_histogram_counts_every_present_value_once() -> None:
    values = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9.5, None, None]
    bars = _data.histogram(values, bins=5)
    assert len(bars) == 5
    assert sum(n for _, n in bars) == 11  # the nulls are the null rate, not a bar
    assert bars[-1][1] == 3  # 8, 9 and the maximum 9.5 fall in the last bin
    assert _data.histogram([4, 4, 4]) == [("4", 3.0)]
    words = _data.histogram(["web", "app", "web", None])
    assert words == [('"web"', 2.0), ('"app"', 1.0)]


def test_pages_stay_in_range() -> None:
    items = list(range(120))
    page = _data.page_of(items, "", 9)
    assert (page.number, page.pages, page.total, page.items) == (3, 3, 120, items[100:])
    assert _data.page_of([], "q", 1).pages == 1


def test_the_diff_marks_an_added_field() -> None:
    old = orjson.dumps({"type": "object", "properties": {"a": {"type": "string"}}}).decode()
    new = orjson.dumps(
        {"type": "object", "properties": {"a": {"type": "string"}, "b<": {"type": "integer"}}}
    ).decode()
    html = _data.schema_diff(old, new, "version 1", "version 2")
    assert "diff_add" in html and "b&lt;" in html and "version 2" in html
