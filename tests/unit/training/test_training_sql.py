"""SQL generation for training sets, without a database: expression rewriting, grouping,
quoting, and the checks that refuse a bad request before anything runs."""

from __future__ import annotations

import pytest

from materializer import training
from materializer.features._expr import over_window
from materializer.training import FeatureSpec
from materializer.training import sql as tsql
from materializer.training._job import TrainingJob
from materializer.training._model import LabelColumn, ResolvedSpine
from materializer.training._spine import label_type
from sluicegate.errors import BadRequest
from sluicegate.sqlgate import FunctionAllowlist

# (name, is_aggregate, case_insensitive, alias_to, categories), as system.functions has them
NAMES = FunctionAllowlist.from_rows(
    [
        *(
            (name, 1, ci, "", "Aggregate Functions")
            for name, ci in [
                ("count", 1),
                ("sum", 1),
                ("uniqExact", 0),
                ("quantile", 0),
                ("argMax", 0),
                ("max", 1),
            ]
        ),
        ("tupleElement", 0, 0, "", "Tuples"),
        ("JSONExtract", 0, 0, "", "JSON"),
    ],
    ["If", "OrNull", "Distinct", "State", "Merge"],
)


def _spec(
    name: str,
    agg: str = "count()",
    window: int | None = None,
    etype: str = "user",
    default: str = "0",
    flt: str = "1",
) -> FeatureSpec:
    return FeatureSpec(
        name=name,
        version=1,
        entity_type=etype,
        subject="s.x",
        entity_expr="JSONExtractString(payload, 'user_id')",
        value_agg=agg,
        filter_expr=flt,
        window_ms=window,
        default_sql=default,
    )


def test_public_api_is_pinned() -> None:
    assert training.__all__ == [
        "FeatureSpec",
        "Observation",
        "ObservationsSpine",
        "SubjectSpine",
        "TrainingJob",
        "TrainingReport",
        "append_observations",
        "load_spine_file",
        "read_spine_table",
        "record_run",
        "report_from_arrow",
        "report_path",
        "spine_summary",
        "spines_using",
        "training_set",
    ]


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("count()", "count() OVER w"),
        ("sum(x) / count()", "sum(x) OVER w / count() OVER w"),
        ("quantile(0.9)(x)", "quantile(0.9)(x) OVER w"),
        ("uniqExactIf(a, b = 'sum(')", "uniqExactIf(a, b = 'sum(') OVER w"),
        (
            "tupleElement(argMax(tuple(x), tuple(occurred_at, event_id)), 1)",
            "tupleElement(argMax(tuple(x), tuple(occurred_at, event_id)) OVER w, 1)",
        ),
        (
            "sum(JSONExtract(payload, 'max(', 'Float64'))",
            "sum(JSONExtract(payload, 'max(', 'Float64')) OVER w",
        ),
        ("`max`(1) + max (x)", "max(1) OVER w + max(x) OVER w"),  # a quoted name calls too
    ],
)
def test_over_window_appends_to_every_aggregate_call(expr: str, want: str) -> None:
    assert over_window(expr, "w", NAMES) == want


def test_windowed_distinct_counts_take_the_seen_times_path() -> None:
    """Only a windowed uniqExact of one argument (what count(DISTINCT x) compiles to), in
    event-time mode, is evaluated from the times values are seen."""
    week = 7 * 86_400_000
    feats = [
        _spec("a", "uniqExact(x)", week),
        _spec("b", "uniqExact(x)"),  # lifetime: the running form
        _spec("c", "uniqExact(x, y)", week),  # two arguments: a tuple, NULLs differ
        _spec("d", "uniqExactIf(x, y = 1)", week),
        _spec("e", "uniqExact(x) + 1", week),
        _spec("f", "uniq(x)", week),  # approximate: never rewritten
    ]
    assert tsql.distinct_arguments(feats, NAMES, arrival_time=False) == {"a": "x"}
    assert tsql.distinct_arguments(feats, NAMES, arrival_time=True) == {}
    groups = tsql.plan_groups(feats, {}, False, {"a": "x"})
    assert [g.distinct for g in groups if "a" in {f.name for f in g.features}] == ["x"]


def test_over_window_needs_an_aggregate() -> None:
    with pytest.raises(ValueError, match="no aggregate"):
        over_window("JSONExtractString(payload, 'x')", "w", NAMES)
    with pytest.raises(ValueError, match="cannot parse"):
        over_window("count(", "w", NAMES)


@pytest.mark.parametrize(
    ("agg", "type_", "want"),
    [
        ("count()", "UInt64", True),
        ("countIf(x = 1)", "UInt64", True),
        ("sum(JSONExtract(payload, 'n', 'Int64'))", "Int64", True),
        ("sum(JSONExtract(payload, 'p', 'Float64'))", "Float64", False),
        ("uniqExact(x)", "UInt64", False),
        ("count() + 1", "UInt64", False),
        ("count(DISTINCT x)", "UInt64", False),
    ],
)
def test_running_differences_only_for_exact_totals(agg: str, type_: str, want: bool) -> None:
    assert tsql.is_invertible(_spec("f", agg, 3_600_000), type_, NAMES) is want


def test_features_sharing_events_share_one_pass() -> None:
    feats = [
        _spec("a"),
        _spec("b", "uniqExact(x)"),
        _spec("c", window=86_400_000),
        _spec("d", "max(x)", 86_400_000, default="NULL"),
        _spec("e", etype="post"),
        _spec("f", flt="x = 1"),
    ]
    groups = tsql.plan_groups(feats, {"c": "UInt64"}, arrival_time=False)
    assert [[f.name for f in g.features] for g in groups] == [["a", "b", "c"], ["d"], ["e"], ["f"]]
    # arrival-time mode evaluates windowed totals directly (the cut is not a prefix)
    groups = tsql.plan_groups(feats, {"c": "UInt64"}, arrival_time=True)
    assert [[f.name for f in g.features] for g in groups][:2] == [["a", "b"], ["c", "d"]]


def test_user_strings_are_quoted() -> None:
    spine = ResolvedSpine(
        kind="observations",
        source="it's",
        entities={"user": "user"},
        labels=(LabelColumn("clicked", "cl'icked", "Nullable(Int64)"),),
    )
    text = tsql.training_set_sql(
        spine, [_spec("a")], database="sluicegate", arrival_time=False, functions=NAMES
    )
    assert "spine = 'it\\'s'" in text
    assert "JSONExtract(labels, 'cl\\'icked', 'Nullable(Int64)') AS `clicked`" in text
    assert "s.observed_at > h.at" in text  # strictly before


def test_bad_names_and_clashes_are_refused() -> None:
    with pytest.raises(BadRequest, match="feature name"):
        _spec("bad name")
    spine = ResolvedSpine(kind="observations", source="s", entities={"user": "user"})
    with pytest.raises(BadRequest, match="entity 'post'"):
        TrainingJob(None, spine, [_spec("a", etype="post")], database="d")  # type: ignore[arg-type]
    with pytest.raises(BadRequest, match="clashes"):
        TrainingJob(None, spine, [_spec("user")], database="d")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("types", "want"),
    [
        (["Int64"], "Nullable(Int64)"),
        (["Int64", "Double"], "Nullable(Float64)"),
        (["Bool", "Null"], "Nullable(Bool)"),
        (["String", "Int64"], "Nullable(String)"),
        ([], "Nullable(String)"),
    ],
)
def test_label_types(types: list[str], want: str) -> None:
    assert label_type(types) == want


def test_if_forms_of_aggregate_calls() -> None:
    """A running group sorts the spine rows in with the events and aggregates only the
    events: each call's -If form, or its own condition joined with the event's."""
    from materializer.features._expr import AggregateCall

    ev = "_ev = 1"
    assert AggregateCall("count", None, "").if_sql(ev) == "countIf(_ev = 1)"
    assert AggregateCall("sumIf", None, "x, x > 1").if_sql(ev) == "sumIf(x, (x > 1) AND _ev = 1)"
    assert AggregateCall("quantile", "0.5", "x").if_sql(ev) == "quantileIf(0.5)(x, _ev = 1)"
    assert AggregateCall("sumOrNull", None, "x").if_sql(ev) == "sumOrNullIf(x, _ev = 1)"
    assert AggregateCall("sum", None, "DISTINCT x").if_sql(ev) is None
    assert AggregateCall("sumIfArray", None, "xs, cs").if_sql(ev) is None  # conditions: an array


def test_running_groups_sort_spine_rows_in_unless_a_call_has_no_if_form() -> None:
    spine = ResolvedSpine(kind="observations", source="s", entities={"user": "user"})
    types = {"event_id": "String", "occurred_at": "DateTime64(3, 'UTC')", "payload": "String"}
    types |= {"ingested_at": "DateTime64(3, 'UTC')", "source_lsn": "Nullable(UInt64)"}

    def text(agg: str) -> str:
        return tsql.training_set_sql(
            spine,
            [_spec("a", agg)],
            database="sluicegate",
            arrival_time=False,
            functions=NAMES,
            event_types=types,
        )

    merged = text("sum(JSONExtract(payload, 'x', 'Int64')) / count()")
    assert "countIf(_ev = 1) OVER running AS r_1" in merged and "ASOF" not in merged
    assert "e_r_0 / e_r_1 AS a" in merged  # each call once; the expression per spine row
    assert "defaultValueOfTypeName('Nullable(UInt64)')" in merged  # the spine rows' columns
    assert "ORDER BY at, _ev, occurred_at" in merged  # a spine row before events at its time
    fallback = text("sumIfOrNull(JSONExtract(payload, 'x', 'Int64'), 1)")
    assert "ASOF LEFT JOIN" in fallback and "s.observed_at > h.at" in fallback
