from __future__ import annotations

import pytest

from sluicegate.envelope import (
    CdcOp,
    Envelope,
    SharedHeaders,
    Source,
    entity_key_of,
    frame,
    iso_to_ms,
    ms_to_iso,
    new_event_id,
    unframe,
)


def test_frame_is_the_confluent_wire_format() -> None:
    framed = frame(258, b"body")
    assert framed == b"\x00\x00\x00\x01\x02body"
    assert unframe(framed) == (258, b"body")


@pytest.mark.parametrize("value", [b"", b"\x00\x00", b"\x01\x00\x00\x00\x01x"])
def test_unframe_refuses_values_not_in_wire_format(value: bytes) -> None:
    with pytest.raises(ValueError, match="wire format"):
        unframe(value)


def test_times_round_trip_at_millisecond_precision() -> None:
    assert ms_to_iso(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert iso_to_ms("2023-11-14T22:13:20.123Z") == 1_700_000_000_123
    assert iso_to_ms("2023-11-14T23:13:20.123+01:00") == 1_700_000_000_123
    assert iso_to_ms("2023-11-14T22:13:20.123") == 1_700_000_000_123  # naive means UTC


def test_event_ids_are_time_ordered_uuid7() -> None:
    a, b = new_event_id(), new_event_id()
    assert a[14] == "7" and len(a) == 36
    assert a < b


def test_entity_key_of_single_nested_and_composite_fields() -> None:
    payload = {"user_id": 42, "post": {"id": "p1"}, "flag": True}
    assert entity_key_of(payload, ["user_id"]) == "42"
    assert entity_key_of(payload, ["post.id"]) == "p1"
    assert entity_key_of(payload, ["user_id", "post.id", "flag"]) == "42|p1|true"
    with pytest.raises(KeyError, match=r"post\.missing"):
        entity_key_of(payload, ["post.missing"])


def test_envelope_headers_round_trip() -> None:
    env = Envelope(
        event_id=new_event_id(),
        subject="cdc.app.users",
        schema_id=7,
        schema_version=2,
        entity_key="42",
        occurred_at=1_700_000_000_123,
        ingested_at=1_700_000_000_456,
        source=Source.CDC,
        producer="accounts",
        payload={"id": 42},
        op=CdcOp.UPDATE,
        position={"lsn": "123", "txid": "9"},
    )
    headers = env.headers()
    names = [k for k, _ in headers]
    assert names[:5] == ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time"]
    assert dict(headers)["ce_time"] == b"2023-11-14T22:13:20.123Z"
    back = Envelope.from_record(b"42", headers, 7, {"id": 42})
    assert back == env


def test_shared_headers_give_each_event_the_headers_of_its_envelope() -> None:
    shared = SharedHeaders("orders.placed", 3, Source.HTTP, "checkout", 1_700_000_000_456)
    for event_id, occurred_at in [("a-1", 1_700_000_000_123), ("b-2", 1_600_000_000_000)]:
        env = Envelope(
            event_id=event_id,
            subject="orders.placed",
            schema_id=11,
            schema_version=3,
            entity_key="k",
            occurred_at=occurred_at,
            ingested_at=1_700_000_000_456,
            source=Source.HTTP,
            producer="checkout",
            payload={},
        )
        headers = shared.headers(event_id, occurred_at)
        assert headers == env.headers()
        back = Envelope.from_record(b"k", headers, 11, {})
        assert (back.event_id, back.occurred_at, back.producer) == (
            event_id,
            occurred_at,
            "checkout",
        )
