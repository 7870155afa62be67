"""A candidate schema checked against the stored events and the features that read them,
with the real stack: counts and first ids equal a brute-force pass over what was posted,
the impact names the features reading a removed, renamed or retyped field, a change that
breaks a feature is refused (409) unless the subject's owner forces it (the feature is then
stale), and another team's token cannot read the subject's events through the check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
from support.features_helpers import apply, own_topics, wait_loaded
from support.gateway_helpers import create_token
from support.serving import start_server

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

V1 = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "amount": {"type": "integer"},
        "currency": {"type": "string"},
        "note": {"type": "string"},
    },
    "required": ["user_id"],
}
# amount becomes required; currency an upper-case code
STRICT = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "amount": {"type": "integer"},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
        "note": {"type": "string"},
    },
    "required": ["user_id", "amount"],
}
# currency removed, amount retyped
NO_CURRENCY = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "amount": {"type": "string"},
        "note": {"type": "string"},
    },
    "required": ["user_id"],
}
# amount renamed value (with a migration)
RENAMED = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "value": {"type": "integer"},
        "currency": {"type": "string"},
        "note": {"type": "string"},
    },
    "required": ["user_id", "value"],
}


def _body(schema: dict[str, Any], migration: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": orjson.dumps(schema).decode(), "schemaType": "JSON"}
    if migration is not None:
        body["migration"] = migration
    return body


def _post(http: httpx.Client, subject: str, events: list[dict[str, Any]]) -> list[str]:
    r = http.post(f"/v1/events/{subject}/batch", json=events)
    assert r.status_code == 202, r.text
    return [str(x["event_id"]) for x in r.json()["results"]]


def test_check_against_the_log_and_the_features(stack: Stack, tmp_path: Path, unique: str) -> None:
    subject = f"chk.pay{unique}"
    server = start_server(tmp_path / "sg", extra_env=own_topics(unique))
    try:
        with server.client() as http:
            r = http.post(
                f"/v1/subjects/{subject}/versions",
                json={**_body(V1), "metadata": {"owner": "payments", "entity_key": ["user_id"]}},
            )
            assert r.status_code == 201, r.text
            r = http.put(f"/config/{subject}", json={"compatibility": "NONE"})
            assert r.status_code == 200, r.text
            events = (
                [{"user_id": f"u{i % 4}", "amount": i, "currency": "EUR"} for i in range(20)]
                + [{"user_id": f"u{i}", "note": "no amount"} for i in range(5)]
                + [{"user_id": "u9", "amount": 7, "currency": "eur"} for _ in range(3)]
            )
            ids = _post(http, subject, events)
            wait_loaded(http, subject, len(events))
            missing = {ids[i] for i, e in enumerate(events) if "amount" not in e}
            lower = {ids[i] for i, e in enumerate(events) if e.get("currency") == "eur"}

            # 1. the candidate against every stored event, and a sample validated in full
            r = http.post(f"/v1/subjects/{subject}/check?sample=1000", json=_body(STRICT))
            assert r.status_code == 200, r.text
            found = r.json()
            assert found["version"] == 2 and found["is_compatible"] is True
            log = found["log"]
            assert log["events"] == len(events)
            assert log["failing"] == len(missing)
            [required] = log["violations"]
            assert (required["path"], required["rule"], required["events"]) == (
                "$.amount",
                "required",
                len(missing),
            )
            assert set(required["first_ids"]) == missing
            assert log["summary"].startswith(
                f"{len(missing)} of {len(events)} stored events would not read as version 2"
            )
            sample = log["sample"]
            assert sample["events"] == len(events)  # smaller than the sample size: all of them
            assert sample["failing"] == len(missing) + len(lower)
            by_rule = {(v["path"], v["rule"]): v for v in sample["violations"]}
            assert by_rule[("$.currency", "enum")]["events"] == len(lower)
            assert set(by_rule[("$.currency", "enum")]["first_ids"]) == lower
            assert by_rule[("$", "required")]["events"] == len(missing)

            r = http.post(f"/v1/subjects/{subject}/check?sample=10", json=_body(STRICT))
            assert r.json()["log"]["sample"]["events"] == 10
            assert r.json()["log"]["events"] == len(events)  # the pass in ClickHouse: all

            # the Confluent route with verbose=true says the same in its messages
            r = http.post(
                f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
                json=_body(STRICT),
            )
            assert r.status_code == 200, r.text
            assert r.json()["is_compatible"] is True
            assert any("stored events:" in m for m in r.json()["messages"]), r.json()
            assert r.json()["log"]["failing"] == len(missing)

            # the CLI prints the same and exits 1
            candidate = tmp_path / "strict.json"
            candidate.write_bytes(orjson.dumps(STRICT))
            done = server.cli("schemas", "check", str(candidate), "--subject", subject, check=False)
            assert done.returncode == 1, done.stderr
            assert f"{len(missing)} of {len(events)} stored events would not read" in done.stdout
            assert "$.amount required" in done.stdout
            loose = tmp_path / "loose.json"
            loose.write_bytes(orjson.dumps(V1 | {"properties": {**V1["properties"], "x": {}}}))
            done = server.cli("schemas", "check", str(loose), "--subject", subject, check=False)
            assert done.returncode == 0, done.stdout + done.stderr

            # 2. impact: the features reading a changed field
            spent, eur, notes = f"spent{unique}", f"eur{unique}", f"notes{unique}"
            apply(
                http,
                {
                    "name": spent,
                    "entity": {"type": "user"},
                    "source": subject,
                    "aggregation": "sum(amount)",
                },
                {
                    "name": eur,
                    "entity": {"type": "user"},
                    "source": subject,
                    "aggregation": "countIf(currency = 'EUR')",
                },
                {
                    "name": notes,
                    "entity": {"type": "user"},
                    "source": subject,
                    "aggregation": "count()",
                },
            )
            # a training set built on a spine with two of them: the spine is in the impact
            spine = f"churn{unique}"
            obs = [{"entities": {"user": "u1"}, "time": "2099-01-01T00:00:00Z"}]
            r = http.post("/v1/observations", json={"spine": spine, "observations": obs})
            assert r.status_code == 201, r.text
            r = http.post(
                "/v1/training-sets",
                json={
                    "spine": {"observations": spine},
                    "features": [eur, notes],
                    "format": "report",
                },
            )
            assert r.status_code == 200, r.text

            r = http.post(f"/v1/subjects/{subject}/check?log=false", json=_body(NO_CURRENCY))
            assert r.status_code == 200, r.text
            impact = r.json()["impact"]
            [used] = impact["spines"]
            assert (used["spine"], used["kind"], used["features"]) == (
                spine,
                "observations",
                [f"{eur}@1"],  # notes reads no changed field
            )
            assert impact["fields"]["removed"] == ["currency"]
            assert impact["fields"]["retyped"] == {"amount": "integer -> string"}
            features = {f["name"]: f for f in impact["features"]}
            assert set(features) == {spent, eur}  # count() reads no field
            assert features[eur]["reads"] == ["currency"] and features[eur]["breaks"]
            assert "currency" in features[eur]["reason"]
            assert features[spent]["reads"] == ["amount"]
            assert sorted(impact["breaks"]) == sorted(
                f"{f['name']}@{f['version']}" for f in impact["features"] if f["breaks"]
            )
            assert f"{eur}@1" in impact["breaks"]

            rename = [{"op": "rename", "from": "amount", "to": "value"}]
            r = http.post(f"/v1/subjects/{subject}/check?log=false", json=_body(RENAMED, rename))
            impact = r.json()["impact"]
            assert impact["fields"]["renamed"] == {"amount": "value"}
            assert {f["name"] for f in impact["features"]} == {spent}
            assert impact["breaks"] == [f"{spent}@1"]

            # another team may not read this subject's events through the check
            other = create_token(http, "growth")
            with server.client(other) as foreign:
                r = foreign.post(f"/v1/subjects/{subject}/check", json=_body(STRICT))
                assert r.status_code == 403, r.text
                r = foreign.post(
                    f"/compatibility/subjects/{subject}/versions/latest?verbose=true",
                    json=_body(STRICT),
                )
                assert r.status_code == 200 and "log" not in r.json(), r.text

            # 3. a breaking registration is refused, naming the features ...
            r = http.post(f"/v1/subjects/{subject}/versions", json=_body(NO_CURRENCY))
            assert r.status_code == 409, r.text
            assert r.json()["error_code"] == 40903
            assert f"{eur}@1" in r.json()["message"]
            assert http.get(f"/subjects/{subject}/versions").json() == [1]
            # ... through the Confluent route too
            r = http.post(f"/subjects/{subject}/versions", json=_body(NO_CURRENCY))
            assert r.status_code == 409 and r.json()["error_code"] == 40903, r.text

            # ... unless the owner forces it: the broken features are then stale
            r = http.post(f"/v1/subjects/{subject}/versions?force=true", json=_body(NO_CURRENCY))
            assert r.status_code == 201, r.text
            catalog = {f["name"]: f for f in http.get("/v1/features").json()["features"]}
            assert "version 2" in catalog[eur]["stale"] and "currency" in catalog[eur]["stale"]
            assert "stale" not in catalog[notes]
    finally:
        server.stop()


def test_events_of_older_versions_are_checked_as_readers_read_them(
    stack: Stack, tmp_path: Path, unique: str
) -> None:
    """Events stored under version 1 are checked through the migration to version 2 (amount
    renamed value): a required `value` is missing exactly where v1 events lacked `amount`,
    and a retyped `value` is the wrong type wherever either version stored a number."""
    subject = f"chk.old{unique}"
    server = start_server(tmp_path / "sg", extra_env=own_topics(unique))
    try:
        with server.client() as http:
            r = http.post(
                f"/v1/subjects/{subject}/versions",
                json={**_body(V1), "metadata": {"entity_key": ["user_id"]}},
            )
            assert r.status_code == 201, r.text
            old = [{"user_id": "a", "amount": 3}, {"user_id": "b"}, {"user_id": "c", "amount": 2.0}]
            old_ids = _post(http, subject, old)
            wait_loaded(http, subject, len(old))
            optional_value = {**RENAMED, "required": ["user_id"]}
            rename = [{"op": "rename", "from": "amount", "to": "value"}]
            r = http.post(f"/v1/subjects/{subject}/versions", json=_body(optional_value, rename))
            assert r.status_code == 201, r.text
            new = [{"user_id": "d", "value": 5}, {"user_id": "e"}, {"user_id": "f", "value": 1}]
            new_ids = _post(http, subject, new)
            wait_loaded(http, subject, len(old) + len(new))

            r = http.post(f"/v1/subjects/{subject}/check?sample=0", json=_body(RENAMED))
            assert r.status_code == 200, r.text
            log = r.json()["log"]
            assert log["sample"]["events"] == 0
            [required] = log["violations"]
            assert required["path"] == "$.value" and required["rule"] == "required"
            assert set(required["first_ids"]) == {old_ids[1], new_ids[1]}

            as_text = {
                **RENAMED,
                "properties": {**RENAMED["properties"], "value": {"type": "string"}},
                "required": ["user_id"],
            }
            r = http.post(f"/v1/subjects/{subject}/check", json=_body(as_text))
            log = r.json()["log"]
            [wrong] = log["violations"]
            assert (wrong["path"], wrong["rule"], wrong["events"]) == ("$.value", "type", 4)
            assert set(wrong["first_ids"]) == {old_ids[0], old_ids[2], new_ids[0], new_ids[2]}
            assert log["sample"]["failing"] == 4  # the full validation agrees
    finally:
        server.stop()
