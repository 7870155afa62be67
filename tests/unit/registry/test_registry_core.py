"""The Registry on SQLite: versions, ids, identity, deletes, config, metadata, ownership,
tokens and persistence."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from registry_samples import ADMIN_TOKEN, avro

from registry import Compatibility, Principal, Registry, SchemaType, SubjectMetadata
from sluicegate.errors import (
    Forbidden,
    IncompatibleSchema,
    SchemaNotFound,
    SubjectNotFound,
    SubjectNotSoftDeleted,
    SubjectSoftDeleted,
    Unprocessable,
    VersionNotFound,
    VersionNotSoftDeleted,
    VersionSoftDeleted,
)

V1 = avro(("id", "string"))
V2 = avro(("id", "string"), ("n", "int", 0))


def test_versions_ids_and_identity(reg: Registry, admin: Principal) -> None:
    r1 = reg.register("a", V1, SchemaType.AVRO, principal=admin)
    assert (r1.version, r1.created) == (1, True)
    again = reg.register(
        "a", json.dumps(json.loads(V1), indent=2), SchemaType.AVRO, principal=admin
    )
    assert (again.id, again.version, again.created) == (r1.id, 1, False)
    r2 = reg.register("a", V2, SchemaType.AVRO, principal=admin)
    assert (r2.version, r2.id) == (2, r1.id + 1)
    shared = reg.register("b", V1, SchemaType.AVRO, principal=admin)
    assert (shared.id, shared.version) == (r1.id, 1)
    assert reg.subjects() == ["a", "b"]
    assert reg.versions("a") == [1, 2]
    latest = reg.latest("a")
    assert (latest.subject, latest.version, latest.id) == ("a", 2, r2.id)
    assert reg.version("b", 1).subject == "b"
    assert reg.schema_by_id(r2.id).decode(reg.schema_by_id(r2.id).encode({"id": "x", "n": 3})) == {
        "id": "x",
        "n": 3,
    }
    assert reg.lookup("b", V1, SchemaType.AVRO).version == 1
    with pytest.raises(SchemaNotFound):
        reg.lookup("b", V2, SchemaType.AVRO)
    with pytest.raises(VersionNotFound):
        reg.version("a", 9)
    with pytest.raises(SubjectNotFound):
        reg.latest("zzz")


def test_json_encode_decode(reg: Registry, admin: Principal) -> None:
    res = reg.register("j", '{"type": "object"}', SchemaType.JSON, principal=admin)
    rs = reg.schema_by_id(res.id)
    assert rs.decode(rs.encode({"a": [1, "x"]})) == {"a": [1, "x"]}


def test_soft_and_permanent_delete(reg: Registry, admin: Principal) -> None:
    first = reg.register("d", V1, SchemaType.AVRO, principal=admin).id
    reg.register("d", V2, SchemaType.AVRO, principal=admin)
    with pytest.raises(VersionNotSoftDeleted):
        reg.delete_version("d", 2, permanent=True, principal=admin)
    assert reg.delete_version("d", -1, permanent=False, principal=admin) == 2
    with pytest.raises(VersionSoftDeleted):
        reg.delete_version("d", 2, permanent=False, principal=admin)
    assert reg.versions("d") == [1]
    assert reg.versions("d", deleted=True) == [1, 2]
    with pytest.raises(SubjectNotSoftDeleted):
        reg.delete_subject("d", permanent=True, principal=admin)
    assert reg.delete_subject("d", permanent=False, principal=admin) == [1]
    with pytest.raises(SubjectSoftDeleted):
        reg.delete_subject("d", permanent=False, principal=admin)
    assert reg.subjects() == []
    assert reg.subjects(deleted=True) == ["d"]
    # re-registering after a soft delete continues the numbering and keeps the id
    back = reg.register("d", V1, SchemaType.AVRO, principal=admin)
    assert (back.id, back.version) == (first, 3)
    reg.delete_subject("d", permanent=False, principal=admin)
    assert reg.delete_subject("d", permanent=True, principal=admin) == [1, 2, 3]
    assert reg.schema_by_id(first).schema  # ids still resolve
    with pytest.raises(SubjectNotFound):
        reg.versions("d", deleted=True)


def test_compatibility_levels_and_config(reg: Registry, admin: Principal) -> None:
    reg.register("c", V1, SchemaType.AVRO, principal=admin)
    breaking = avro(("id", "int"))
    with pytest.raises(IncompatibleSchema) as exc:
        reg.register("c", breaking, SchemaType.AVRO, principal=admin)
    assert exc.value.status == 409
    assert exc.value.details["messages"][0].startswith("/id: TYPE_MISMATCH")
    assert reg.test_compatibility("c", breaking, SchemaType.AVRO)
    assert reg.test_compatibility("c", V2, SchemaType.AVRO) == []
    assert reg.test_compatibility("new-subject", breaking, SchemaType.AVRO) == []
    assert reg.set_subject_compatibility("c", Compatibility.NONE, principal=admin) is None
    assert reg.compatibility("c") is Compatibility.NONE
    assert reg.register("c", breaking, SchemaType.AVRO, principal=admin).version == 2
    reg.set_global_compatibility(Compatibility.FULL, principal=admin)
    assert reg.compatibility("other") is Compatibility.FULL
    with pytest.raises(Forbidden):
        reg.set_global_compatibility(Compatibility.NONE, principal=Principal("t"))


@pytest.mark.parametrize(
    "other",
    [
        '"string"',
        '["null", "string"]',
        '{"type": "array", "items": "int"}',
        '{"type": "enum", "name": "E", "symbols": ["A"]}',
        "[]",
    ],
)
def test_versions_that_are_not_records_can_follow_and_precede_records(
    reg: Registry, admin: Principal, other: str
) -> None:
    """A subject at level NONE may change between a record and any other Avro schema;
    checking or registering either way is an answer, not a crash."""
    reg.set_subject_compatibility("s", Compatibility.NONE, principal=admin)
    assert reg.register("s", other, SchemaType.AVRO, principal=admin).version == 1
    assert reg.candidate("s", V1, SchemaType.AVRO).accepted
    assert reg.register("s", V1, SchemaType.AVRO, principal=admin).version == 2
    assert reg.candidate("s", other, SchemaType.AVRO).accepted
    assert reg.register("s", V2, SchemaType.AVRO, principal=admin).version == 3


def test_a_record_in_a_union_is_resolved_like_a_record(reg: Registry, admin: Principal) -> None:
    """A reader record's new field with a default is added to events written as the record
    branch of a union."""
    reg.set_subject_compatibility("u", Compatibility.NONE, principal=admin)
    reg.register("u", f'["null", {V1}]', SchemaType.AVRO, principal=admin)
    candidate = reg.candidate("u", V2, SchemaType.AVRO)
    assert candidate.upcast(1, {"id": "a"}) == {"id": "a", "n": 0}


def test_transitive_history(reg: Registry, admin: Principal) -> None:
    reg.register("t", avro(("a", "int"), ("b", "int")), SchemaType.AVRO, principal=admin)
    reg.register("t", avro(("a", "int")), SchemaType.AVRO, principal=admin)
    readd = avro(("a", "int"), ("b", "string", ""))
    reg.set_subject_compatibility("t", Compatibility.FORWARD_TRANSITIVE, principal=admin)
    messages = reg.test_compatibility("t", readd, SchemaType.AVRO)
    assert any("version 1" in m and "/b: TYPE_MISMATCH" in m for m in messages), messages
    reg.set_subject_compatibility("t", Compatibility.FORWARD, principal=admin)
    assert reg.test_compatibility("t", readd, SchemaType.AVRO) == []


def test_ownership(reg: Registry) -> None:
    alpha, beta = Principal("alpha"), Principal("beta")
    reg.register("o", V1, SchemaType.AVRO, principal=alpha)
    assert reg.metadata("o").owner == "alpha"
    with pytest.raises(Forbidden):
        reg.register("o", V2, SchemaType.AVRO, principal=beta)
    with pytest.raises(Forbidden):
        reg.register("o", V1, SchemaType.AVRO, principal=beta)  # not even identical
    granted = Principal("beta", subjects="o,x.*")
    assert reg.register("o", V1, SchemaType.AVRO, principal=granted).created is False
    with pytest.raises(Forbidden):
        reg.delete_subject("o", permanent=False, principal=beta)
    with pytest.raises(Forbidden):
        reg.set_subject_compatibility("o", Compatibility.NONE, principal=beta)
    with pytest.raises(Forbidden):
        reg.set_metadata(SubjectMetadata("o", owner="beta"), principal=beta)
    with pytest.raises(Forbidden, match="only admin"):  # an owner cannot hand it over
        reg.set_metadata(SubjectMetadata("o", owner="beta"), principal=alpha)
    handed = reg.set_metadata(
        SubjectMetadata("o", owner="beta"), principal=Principal("admin", admin=True)
    )
    assert handed.owner == "beta"
    assert reg.register("o", V2, SchemaType.AVRO, principal=beta).version == 2
    # metadata may name another owner at creation
    created = reg.register(
        "p",
        V1,
        SchemaType.AVRO,
        principal=Principal("admin", admin=True),
        metadata=SubjectMetadata("p", owner="gamma"),
    )
    assert created.created
    assert reg.metadata("p").owner == "gamma"
    # a team may not register a subject in another team's name
    with pytest.raises(Forbidden, match=r"metadata\.owner"):
        reg.register(
            "q", V1, SchemaType.AVRO, principal=beta, metadata=SubjectMetadata("q", owner="alpha")
        )
    assert "q" not in reg.subjects()
    # a level set on an unregistered name claims nothing
    reg.set_subject_compatibility("r", Compatibility.NONE, principal=beta)
    assert reg.register("r", V1, SchemaType.AVRO, principal=alpha).created
    assert reg.metadata("r").owner == "alpha"


def test_principal_rules() -> None:
    p = Principal("t", subjects="orders.*, clicks")
    assert p.can_produce("orders.new", None)
    assert p.can_produce("clicks", "other")
    assert not p.can_produce("payments", "other")
    assert p.can_produce("mine", "t")
    assert p.can_manage(None)
    assert not p.can_manage("other")
    assert Principal("x", admin=True).can_manage("other")


def test_metadata_fields_must_exist(reg: Registry, admin: Principal) -> None:
    schema = json.dumps(
        {
            "type": "object",
            "properties": {
                "user": {"type": "object", "properties": {"id": {"type": "string"}}},
                "ts": {"type": "string"},
            },
        }
    )
    meta = SubjectMetadata(
        "m", entity_key=["user.id"], event_time="ts", description="d", tags=["x"]
    )
    reg.register("m", schema, SchemaType.JSON, principal=admin, metadata=meta)
    assert reg.metadata("m").entity_key == ["user.id"]
    assert reg.metadata("m").owner == "admin"
    with pytest.raises(Unprocessable, match="entity_key"):
        reg.set_metadata(SubjectMetadata("m", entity_key=["user.nope"]), principal=admin)
    with pytest.raises(SubjectNotFound):
        reg.set_metadata(SubjectMetadata("nope"), principal=admin)


def test_invalid_subject_name(reg: Registry, admin: Principal) -> None:
    with pytest.raises(Unprocessable, match="subject"):
        reg.register("bad subject!", V1, SchemaType.AVRO, principal=admin)


def test_tokens_and_authentication(reg: Registry) -> None:
    assert reg.authenticate(f"Bearer {ADMIN_TOKEN}") == Principal("admin", admin=True)
    token = reg.create_token("shop", subjects="shop.*")
    assert token.startswith("sgt_")
    assert reg.authenticate(f"Bearer {token}") == Principal("shop", False, "shop.*")
    basic = base64.b64encode(f"shop:{token}".encode()).decode()
    assert reg.authenticate(f"Basic {basic}") == Principal("shop", False, "shop.*")
    wrong = base64.b64encode(f"other:{token}".encode()).decode()
    assert reg.authenticate(f"Basic {wrong}") is None
    assert reg.authenticate("Bearer nope") is None
    assert reg.authenticate("Basic !!!") is None
    assert reg.authenticate(None) is None
    with pytest.raises(Unprocessable):
        reg.create_token("a:b")


def test_state_survives_reopen(tmp_path: Path, admin: Principal) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = Registry.open(url)
    token = first.create_token("team")
    rid = first.register("s", V1, SchemaType.AVRO, principal=admin).id
    first.register("s", V2, SchemaType.AVRO, principal=admin)
    first.set_subject_compatibility("s", Compatibility.FULL, principal=admin)
    first.set_global_compatibility(Compatibility.NONE, principal=admin)
    first.close()
    again = Registry.open(url)
    try:
        assert again.versions("s") == [1, 2]
        assert again.schema_by_id(rid).version == 1
        assert again.compatibility("s") is Compatibility.FULL
        assert again.global_compatibility() is Compatibility.NONE
        assert again.authenticate(f"Bearer {token}") == Principal("team")
        v3_full = avro(("id", "string"), ("n", "int", 0), ("m", "string", ""))
        assert again.register("s", v3_full, SchemaType.AVRO, principal=admin).version == 3
    finally:
        again.close()


def test_second_process_sees_new_versions(tmp_path: Path, admin: Principal) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    a, b = Registry.open(url), Registry.open(url, refresh_seconds=0)
    try:
        rid = a.register("x", V1, SchemaType.AVRO, principal=admin).id
        assert b.schema_by_id(rid).id == rid
        assert b.latest("x").version == 1
        a.register("x", V2, SchemaType.AVRO, principal=admin)
        a.set_metadata(SubjectMetadata("x", owner="other"), principal=admin)
        assert b.latest("x").version == 2
        assert b.metadata("x").owner == "other"
        token = a.create_token("t")
        assert b.authenticate(f"Bearer {token}") == Principal("t")
    finally:
        a.close()
        b.close()


def test_latest_versions_in_one_query(reg: Registry) -> None:
    admin = Principal("admin", admin=True)
    reg.register("lv.a", V1, SchemaType.AVRO, principal=admin)
    reg.register("lv.a", V2, SchemaType.AVRO, principal=admin)
    reg.register("lv.b", V1, SchemaType.AVRO, principal=admin)
    reg.delete_version("lv.a", 2, permanent=False, principal=admin)
    latest = {s: v for s, v in reg.latest_versions().items() if s.startswith("lv.")}
    assert latest == {"lv.a": 1, "lv.b": 1}
