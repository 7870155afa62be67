"""Feature definitions: parsing, validation against a schema, and the SQL they compile to."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import pytest

from materializer import features
from materializer.features import (
    FeatureKind,
    FunctionAllowlist,
    parse_definitions,
    parse_window,
    sql,
)
from materializer.features._fields import schema_fields
from sluicegate.errors import InvalidDefinition

UPVOTE = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "post_id": {"type": "string"},
        "vote": {"type": "integer"},
        "title": {"type": "string"},
        "score": {"type": "number"},
        "author": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["user_id", "post_id", "vote"],
}
MEMBERSHIP_AVRO = {
    "type": "record",
    "name": "memberships",
    "fields": [
        {"name": "id", "type": "int"},
        {"name": "user_id", "type": "string"},
        {"name": "community_id", "type": ["null", "long"], "default": None},
        {"name": "karma", "type": "double"},
    ],
}
CATALOG = FunctionAllowlist(
    scalars=frozenset(
        {
            "toString",
            "lower",
            "length",
            "tupleElement",
            "tuple",
            "ifNull",
            "if",
            "JSONExtract",
            "arraySort",
            "toStartOfDay",
        }
    ),
    aggregates=frozenset(
        {
            "count",
            "uniqExact",
            "uniq",
            "sum",
            "avg",
            "argMax",
            "argMin",
            "quantiles",
            "groupArray",
            "max",
            "min",
        }
    ),
    combinators=("If", "Array", "Distinct", "OrNull", "OrDefault", "State", "Merge"),
)


@dataclass
class Schema:
    schema_type: str
    schema: str


JSON_SCHEMA = Schema("JSON", json.dumps(UPVOTE))
AVRO_SCHEMA = Schema("AVRO", json.dumps(MEMBERSHIP_AVRO))


def one(text: str) -> features.FeatureDefinition:
    (d,) = parse_definitions(text)
    return d


BASE = "name: f\nentity: {type: user, key: user_id}\nsource: reddit.upvote\n"


def test_public_api_is_pinned() -> None:
    assert sorted(features.__all__) == sorted(
        [
            "AggregateCall",
            "CompiledFeature",
            "Entity",
            "FeatureDefinition",
            "FeatureKind",
            "FeatureRecord",
            "FeatureStore",
            "FunctionAllowlist",
            "SubjectViews",
            "load_definitions",
            "parse_definitions",
            "parse_window",
            "router",
            "view_name",
        ]
    )


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1h", 3_600_000),
        ("7d", 604_800_000),
        ("30d", 2_592_000_000),
        ("90s", 90_000),
        ("2w", 1_209_600_000),
    ],
)
def test_windows(text: str, ms: int) -> None:
    assert parse_window(text) == ms


@pytest.mark.parametrize("text", ["7", "7days", "0d", "-1d", "500ms", "99999d", "d"])
def test_bad_windows_are_refused(text: str) -> None:
    with pytest.raises(InvalidDefinition, match="window"):
        one(BASE + f"aggregation: count()\nwindow: {text}\n")


def test_schema_fields_json_and_avro() -> None:
    f = schema_fields("JSON", json.dumps(UPVOTE))
    assert f["user_id"].clickhouse_type == "String"
    assert f["score"].clickhouse_type == "Nullable(Float64)"
    assert f["author.id"].clickhouse_type == "Nullable(Int64)"  # parent optional
    assert f["tags"].clickhouse_type == "Array(String)"
    a = schema_fields("AVRO", json.dumps(MEMBERSHIP_AVRO))
    assert a["id"].clickhouse_type == "Int64"
    assert a["community_id"].clickhouse_type == "Nullable(Int64)"
    assert a["karma"].numeric


def test_compiles_distinct_posts_7d() -> None:
    cf = one(BASE + "aggregation: uniqExact(post_id)\nfilter: vote = 1\nwindow: 7d\n").compiled(
        JSON_SCHEMA, CATALOG
    )
    assert cf.entity_expr == "JSONExtractString(payload, 'user_id')"
    assert cf.value_agg == "uniqExact(JSONExtract(payload, 'post_id', 'String'))"
    assert cf.filter_expr == "JSONExtract(payload, 'vote', 'Int64') = 1"
    assert cf.window_ms == 7 * 86_400_000
    assert cf.default_sql == "0"
    assert cf.fields == ("user_id", "post_id", "vote")
    assert cf.kind is FeatureKind.AGGREGATE


def test_value_like_defaults_to_null_and_splits_aggregates() -> None:
    cf = one(BASE + "aggregation: countIf(vote = 1) / count() + last(score)\n").compiled(
        JSON_SCHEMA, CATALOG
    )
    assert cf.default_sql == "NULL"
    assert [a.name for a in cf.aggregates] == ["countIf", "count", "argMax"]
    assert "tuple(occurred_at, ingested_at, ifNull(source_lsn, 0), event_id)" in cf.value_agg
    rebuilt = sql.final_value(cf)
    assert rebuilt == ("countIfMerge(s0) / countMerge(s1) + tupleElement(argMaxMerge(s2), 1)")
    assert sql.final_value(cf, "c").startswith("countIfMergeIf(s0, c) / countMergeIf(s1, c)")


def test_parametric_aggregate_and_nested_field() -> None:
    cf = one(BASE + "aggregation: quantiles(0.5, 0.9)(author.id)\n").compiled(JSON_SCHEMA, CATALOG)
    (call,) = cf.aggregates
    assert call.state_sql() == (
        "quantilesState(0.5, 0.9)(JSONExtract(payload, 'author', 'id', 'Nullable(Int64)'))"
    )
    assert call.merge_sql("s0") == "quantilesMerge(0.5, 0.9)(s0)"
    assert call.merge_sql("s0", "k = 1") == "quantilesMergeIf(0.5, 0.9)(s0, k = 1)"


def test_entity_key_omitted_uses_envelope_key() -> None:
    d = one("name: f\nentity: {type: post}\nsource: reddit.upvote\naggregation: count()\n")
    assert d.compiled(JSON_SCHEMA, CATALOG).entity_expr == "entity_key"


@pytest.mark.parametrize(
    ("aggregation", "message"),
    [
        ("uniqExact(post_idd)", "unknown field 'post_idd'"),
        ("uniqExactt(post_id)", "unknown function 'uniqExactt'"),
        ("sum(title)", "sum(title) needs a number but field 'title' is a string"),
        ("avg(user_id)", "avg(user_id) needs a number"),
        ("post_id", "no aggregate function"),
        ("count() + vote", "field 'vote' is used outside an aggregate"),
        ("sum(count())", "nested inside aggregate"),
        ("count(", "cannot parse"),
        ("SELECT 1", "expected an expression"),
    ],
)
def test_invalid_aggregations_name_the_problem(aggregation: str, message: str) -> None:
    d = one(BASE + f"aggregation: {json.dumps(aggregation)}\n")
    with pytest.raises(InvalidDefinition, match=message.replace("(", r"\(").replace(")", r"\)")):
        d.compiled(JSON_SCHEMA, CATALOG)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("aggregation: count()\nfilter: votes = 1\n", "filter: unknown field 'votes'"),
        ("aggregation: count()\nfilter: count() > 1\n", "not allowed in a filter"),
        ("aggregation: count()\nfilter: lowerr(title) = 'a'\n", "unknown function 'lowerr'"),
    ],
)
def test_invalid_filters(extra: str, message: str) -> None:
    with pytest.raises(InvalidDefinition, match=message):
        one(BASE + extra).compiled(JSON_SCHEMA, CATALOG)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE + "aggregation: count()\nattribute: {column: vote}\n", "exactly one of"),
        (BASE, "exactly one of"),
        (BASE + "aggregation: count()\ncolour: red\n", "colour"),
        ("name: Bad-Name\nentity: {type: user}\nsource: s\naggregation: count()\n", "snake_case"),
        (BASE + "aggregation: count()\nversion: 3\n", "assigned by Sluicegate"),
        (BASE + "attribute: {column: vote}\nwindow: 1d\n", "no window"),
    ],
)
def test_model_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidDefinition, match=message):
        parse_definitions(text)


def test_entity_key_must_exist_and_be_scalar() -> None:
    d = one("name: f\nentity: {type: user, key: uid}\nsource: s\naggregation: count()\n")
    with pytest.raises(InvalidDefinition, match=r"entity\.key: unknown field 'uid'"):
        d.compiled(JSON_SCHEMA, CATALOG)
    d = one("name: f\nentity: {type: user, key: score}\nsource: s\naggregation: count()\n")
    with pytest.raises(InvalidDefinition, match="string or an integer"):
        d.compiled(JSON_SCHEMA, CATALOG)


def test_value_attribute_is_last_row_image_with_deletes() -> None:
    d = one(
        "name: karma\nentity: {type: membership}\nsource: cdc.app.memberships\n"
        "attribute: {column: karma}\n"
    )
    cf = d.compiled(AVRO_SCHEMA, CATALOG)
    assert cf.kind is FeatureKind.ATTRIBUTE_VALUE
    assert cf.value_agg == (
        "tupleElement(argMax(tuple(CASE WHEN op = 'd' THEN NULL ELSE "
        "JSONExtract(payload, 'karma', 'Float64') END), "
        "tuple(occurred_at, ingested_at, ifNull(source_lsn, 0), event_id)), 1)"
    )
    assert cf.filter_expr == "op != 't'"
    assert cf.default_sql == "NULL"


def test_set_attribute_keeps_last_live_image_per_row() -> None:
    d = one(
        "name: communities\nentity: {type: user, key: user_id}\n"
        "source: cdc.app.memberships\nattribute: {column: community_id, mode: set}\n"
    )
    cf = d.compiled(AVRO_SCHEMA, CATALOG)
    assert cf.kind is FeatureKind.ATTRIBUTE_SET
    (call,) = cf.aggregates
    assert call.name == "groupArray"
    assert "op != 'd'" in call.args and "isNotNull(" in call.args
    assert cf.value_agg.count("groupArray(") == 2
    assert sql.final_value(cf).count("groupArrayMerge(s0)") == 2


def test_semantics_decide_versions() -> None:
    a = one(BASE + "aggregation: count()\ndescription: one\n")
    b = one(BASE + "aggregation: count()\ndescription: two\nowner: ml\n")
    c = one(BASE + "aggregation: count()\nwindow: 1d\n")
    assert a.semantics() == b.semantics()
    assert a.semantics() != c.semantics()


def test_sql_templates_window_edges_are_exact() -> None:
    cf = one(BASE + "aggregation: count()\nwindow: 7d\n").compiled(JSON_SCHEMA, CATALOG)
    objs = sql.Objects("f", 1, 0, "user")
    b = sql.bucket_ms(cf.window_ms)
    assert b == 21_600_000
    now = 1_700_000_000_123
    text = sql.online_query("fs_user", ["u'1", "v"], [(cf, objs)], now).sql
    lo = -(-(now - cf.window_ms) // b) * b
    hi = now // b * b
    low = now - cf.window_ms
    assert f"(slot >= {low} AND kind = (slot < {lo} OR slot >= {hi})) AS _w0" in text
    assert f"PREWHERE entity IN ['u\\'1', 'v'] AND slot < {now} GROUP BY entity" in text
    assert "['u\\'1', 'v']" in text  # keys quoted by clickhouse-connect's formatter
    assert "sumIf(" not in text  # a count merges to 0, its default, without events
    assert "entity = 'x\\'y'" in sql.online_query("fs_user", ["x'y"], [(cf, objs)], now).sql
    last = one(BASE + "aggregation: last(post_id)\n").compiled(JSON_SCHEMA, CATALOG)
    read = sql.online_query("fs_user", ["k"], [(cf, objs), (last, objs)], now)
    assert read.presence == (None, 0)  # a value-like feature counts its events in the window
    assert "sumIf(`f_f__v1g0_n`, _w1)" in read.sql
    view = sql.create_view(cf, objs, "b", 123)
    assert "loaded_at >= fromUnixTimestamp64Milli(toInt64(123), 'UTC')" in view
    fill = sql.backfill_insert([(cf, objs)], "e", 123, 202611)
    assert "loaded_at < fromUnixTimestamp64Milli(toInt64(123), 'UTC')" in fill
    assert "toYYYYMM(occurred_at) = 202611" in fill
    assert fill.startswith("INSERT INTO `fs_user` (`entity`, `kind`, `slot`, `f_f__v1g0_s0`, ")


def test_a_version_owns_exactly_its_columns() -> None:
    objs = sql.Objects("a", 1, 0, "user")
    assert objs.owns("f_a__v1g0_s0") and objs.owns("f_a__v1g0_s12") and objs.owns("f_a__v1g0_n")
    # feature `a__v1g0_s` (a legal name) must not be dropped with `a`
    assert not objs.owns("f_a__v1g0_s__v1g0_s0")
    assert not objs.owns("f_a__v1g1_s0") and not objs.owns("ttl_s")


def test_short_window_reads_only_event_precision_rows() -> None:
    cf = one(BASE + "aggregation: count()\nwindow: 10s\n").compiled(JSON_SCHEMA, CATALOG)
    text = sql.window_condition(cf, 1_000_000)
    assert text == "(slot >= 990000 AND kind = 1)"


def _in_window(text: str, now: int, kind: int, slot: int) -> bool:
    """Evaluate a window condition (ANDs, ORs, comparisons of kind and slot) in Python, on
    the rows before now a read keeps."""
    py = text.replace(" AND ", " and ").replace(" OR ", " or ").replace(" = ", " == ")
    return slot < now and bool(eval(py, {}, {"kind": kind, "slot": slot}))  # noqa: S307


@pytest.mark.parametrize("window", [None, "10s", "90s", "1h", "7d", "30d"])
def test_window_rows_cover_each_event_exactly_once(window: str | None) -> None:
    """Brute force: for events at random times, the rows a read merges (whole buckets of
    kind 0 inside the window, kind 1 events outside them) hold each event of
    [now - w, now) exactly once and nothing else."""
    spec = BASE + "aggregation: count()\n" + (f"window: {window}\n" if window else "")
    cf = one(spec).compiled(JSON_SCHEMA, CATALOG)
    b = sql.bucket_ms(cf.window_ms)
    rng = random.Random(window)
    for _ in range(200):
        now = rng.randrange(10**12, 2 * 10**12)
        text = sql.window_condition(cf, now)
        span = (cf.window_ms or 40 * b) * 2
        for _ in range(20):
            event = now - rng.randrange(-span // 4, span)
            bucket = event // b * b
            counted = _in_window(text, now, 1, event) + _in_window(text, now, 0, bucket)
            inside = event < now and (cf.window_ms is None or event >= now - cf.window_ms)
            assert counted == int(inside), (window, now, event)


def test_function_catalog_combinators() -> None:
    assert CATALOG.is_aggregate("uniqExactIf")
    assert CATALOG.is_aggregate("sumOrNullIf")
    assert not CATALOG.is_aggregate("lowerIf")
    assert CATALOG.allows("lower")
    assert not CATALOG.allows("nope")
