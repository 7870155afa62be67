"""The console in a real headless Chromium (Debian's, driven with selenium) over the real
stack: sign in, find a subject, its version diff, one of its features with the values it
holds, the lineage from the HTTP producer to the spine a training set was built on, and a
rejection replayed from the page. Another team's token does not see the rejections."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from support.features_helpers import apply, own_topics, sql, wait_loaded
from support.gateway_helpers import create_token
from support.serving import start_server

from console.browser import headless_chromium

if TYPE_CHECKING:
    from tests.integration.conftest import Stack

V1 = {
    "type": "object",
    "properties": {"user_id": {"type": "string"}, "amount": {"type": "integer"}},
    "required": ["user_id", "amount"],
}
V2 = {
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "amount": {"type": "integer"},
        "channel": {"type": "string"},
    },
    "required": ["user_id", "amount"],
}


def _setup(http: httpx.Client, subject: str, feature: str, spine: str) -> None:
    for schema, migration in (
        (V1, None),
        (V2, [{"op": "add", "field": "channel", "default": "web"}]),
    ):
        body: dict[str, Any] = {
            "schema": orjson.dumps(schema).decode(),
            "schemaType": "JSON",
            "metadata": {"owner": "admin", "entity_key": ["user_id"]},
        }
        if migration:
            body["migration"] = migration
        r = http.post(f"/v1/subjects/{subject}/versions", json=body)
        assert r.status_code == 201, r.text
    events = [{"user_id": f"u{i % 5}", "amount": i} for i in range(40)]
    assert http.post(f"/v1/events/{subject}/batch", json=events).status_code == 202
    wait_loaded(http, subject, len(events))
    r = http.post(f"/v1/events/{subject}", json={"user_id": "u1", "amount": "lots"})
    assert r.status_code == 422
    rejection = r.json()["rejection_id"]
    deadline = time.monotonic() + 60
    while not sql(http, f"SELECT count() FROM rejections WHERE id = '{rejection}'")[0][0]:
        assert time.monotonic() < deadline, "the rejection never reached ClickHouse"
        time.sleep(0.2)
    apply(
        http,
        {
            "name": feature,
            "entity": {"type": "user"},
            "source": subject,
            "aggregation": "sum(amount)",
        },
    )
    obs = [{"entities": {"user": f"u{i}"}, "time": "2099-01-01T00:00:00Z"} for i in range(5)]
    r = http.post("/v1/observations", json={"spine": spine, "observations": obs})
    assert r.status_code == 201, r.text
    r = http.post(
        "/v1/training-sets",
        json={"spine": {"observations": spine}, "features": [feature], "format": "report"},
    )
    assert r.status_code == 200, r.text


@pytest.fixture
def browser() -> Any:
    driver = headless_chromium()
    yield driver
    driver.quit()


def test_subject_diff_feature_lineage_and_replay_in_the_browser(
    stack: Stack, tmp_path: Path, unique: str, browser: Any
) -> None:
    subject, feature, spine = f"ui.pay{unique}", f"spent{unique}", f"churn{unique}"
    server = start_server(tmp_path / "sg", extra_env=own_topics(unique))
    wait = WebDriverWait(browser, 30)
    try:
        with server.client() as http:
            _setup(http, subject, feature, spine)
            growth = create_token(http, "growth")

        # sign in: an unsigned browser is sent to the sign-in page and back
        browser.get(f"{server.url}/ui/subjects?q={subject}")
        wait.until(ec.presence_of_element_located((By.ID, "token")))
        browser.find_element(By.ID, "token").send_keys("not-a-token")
        browser.find_element(By.ID, "sign-in").click()
        assert "not known" in wait.until(ec.presence_of_element_located((By.ID, "error"))).text
        browser.find_element(By.ID, "token").send_keys(server.admin_token)
        browser.find_element(By.ID, "sign-in").click()

        # subjects: searched, with its sparkline and the rejection
        table = wait.until(ec.presence_of_element_located((By.ID, "subjects")))
        rows = table.find_elements(By.TAG_NAME, "tr")[1:]
        assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == [subject]
        cells = [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")]
        assert cells[1:5] == ["admin", "JSON", "2", "BACKWARD (global)"]
        assert "40" in cells[5] and cells[7] == "1"
        assert rows[0].find_elements(By.CSS_SELECTOR, "svg.spark polyline")

        # one subject: the diff of version 1 -> 2 shows the added field, and the migration
        rows[0].find_element(By.LINK_TEXT, subject).click()
        diff = wait.until(ec.presence_of_element_located((By.ID, "diff")))
        assert "Version 1 → version 2" in browser.find_element(By.ID, "diff-title").text
        added = " ".join(e.text for e in diff.find_elements(By.CSS_SELECTOR, ".diff_add"))
        assert "channel" in added
        assert '"op": "add"' in browser.page_source.replace("&quot;", '"')
        browser.save_screenshot(str(tmp_path / "subject.png"))

        # -> its feature: the definition and a histogram of the values it holds now
        browser.find_element(By.LINK_TEXT, f"{feature}@1").click()
        definition = wait.until(ec.presence_of_element_located((By.ID, "definition")))
        assert "sum(amount)" in definition.text
        bars = browser.find_elements(By.CSS_SELECTOR, "#histogram svg rect")
        assert bars, browser.page_source[-2000:]
        assert browser.find_element(By.ID, "null-rate").text == "0.0%"

        # -> lineage: HTTP producer -> subject -> feature -> the spine it was trained on
        browser.find_element(By.LINK_TEXT, "lineage").click()
        graph = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#graph svg")))
        keys = {g.get_attribute("data-key") for g in graph.find_elements(By.CSS_SELECTOR, "g.node")}
        assert keys == {
            "src:http: team admin",
            f"s:{subject}",
            f"f:{feature}@1",
            f"sp:{spine}",
        }
        assert len(graph.find_elements(By.CSS_SELECTOR, "path.edge")) == 3
        browser.save_screenshot(str(tmp_path / "lineage.png"))

        # rejections: the refused event, replayed corrected from the page
        browser.get(f"{server.url}/ui/rejections?subject={subject}")
        table = wait.until(ec.presence_of_element_located((By.ID, "rejections")))
        assert "lots" in table.text and "$.amount" in table.text
        box = table.find_element(By.NAME, "event")
        box.send_keys('{"user_id": "u1", "amount": 7}')
        table.find_element(By.TAG_NAME, "button").click()
        message = wait.until(ec.presence_of_element_located((By.ID, "message")))
        assert message.text.startswith("replayed as event"), message.text
        assert "replayed" in browser.find_element(By.ID, "rejections").text
        with server.client() as http:
            wait_loaded(http, subject, 41)

        # another team reads the catalog but not these rejections
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {growth}"}
        ) as foreign:
            page = foreign.get(f"/ui/rejections?subject={subject}")
            assert page.status_code == 200 and "only the owner team" in page.text
            assert "lots" not in page.text
            assert subject in foreign.get(f"/ui/subjects?q={subject}").text
    finally:
        server.stop()
