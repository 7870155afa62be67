"""The console's pages under ``/ui``: server-rendered HTML (Jinja2 templates, inline SVG,
no script), on the same port and tokens as the API. A browser signs in once with its team
token (kept in an HttpOnly, SameSite=Strict cookie); API clients may send the usual
``Authorization`` header. A page shows what that token may read: the catalog to everyone,
rejections, dead letters and replays for the subjects the team owns (every one for an
admin)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import yaml
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.exceptions import HTTPException

from console import _charts, _data
from gateway import merged_rejections, replay_dead_letter, replay_rejection
from materializer.training import spines_using
from registry import Principal
from sluicegate.errors import BadRequest, NotFound, SluicegateError
from sluicegate.naming import CLICKHOUSE_DATABASE
from sluicegate.state import AppState, app_state

__all__ = ["COOKIE", "router"]

COOKIE = "sluicegate_token"
router = APIRouter(prefix="/ui", include_in_schema=False)
_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
_env.globals["spark"] = _charts.sparkline


def _render(
    request: Request, template: str, principal: Principal | None, **context: Any
) -> HTMLResponse:
    html = _env.get_template(template).render(principal=principal, **context)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


async def _page(
    request: Request,
    principal: Principal | None,
    template: str,
    title: str,
    nav: str,
    build: Callable[[], dict[str, Any]],
) -> HTMLResponse:
    """Render ``template`` with what ``build`` reads (in a worker thread); a refusal or a
    missing resource is an HTML page with its status and message."""
    try:
        context = await run_in_threadpool(build)
    except SluicegateError as exc:
        page = _render(request, "error.html", principal, title=title, nav=nav, error=exc.message)
        page.status_code = exc.status
        return page
    return _render(request, template, principal, title=title, nav=nav, **context)


def _principal(request: Request) -> Principal | None:
    header = request.headers.get("authorization")
    token = request.cookies.get(COOKIE)
    if not header and token:
        header = f"Bearer {token}"
    return app_state(request).registry.authenticate(header) if header else None


def _viewer(request: Request) -> Principal | None:
    """The signed-in principal; a browser without a valid token is sent to sign in."""
    principal = _principal(request)
    if principal is None and not app_state(request).settings.anonymous_read:
        target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        raise HTTPException(303, "sign in first", headers={"Location": f"/ui/login?next={target}"})
    return principal


def _csrf(request: Request) -> str:
    """The form token of this browser's session (a hash of its cookie)."""
    token = request.cookies.get(COOKIE, "")
    return hashlib.sha256(f"sluicegate-console/{token}".encode()).hexdigest()[:32]


async def _form(request: Request) -> dict[str, str]:
    """A POSTed form of the console, checked against cross-site requests: the form token
    must be this session's and the Origin, when the browser sends one, this server."""
    body = (await request.body()).decode()
    form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    origin = request.headers.get("origin")
    if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
        raise BadRequest("a console form posted from another site")
    if not hmac.compare_digest(form.get("csrf", ""), _csrf(request)):
        raise BadRequest("the form is out of date: reload the page")
    return form


def _may_manage(principal: Principal | None, state: AppState, subject: str) -> bool:
    if principal is None:
        return False
    try:
        return principal.can_manage(state.registry.metadata(subject).owner)
    except NotFound:
        return principal.admin


# ---- sign in ---------------------------------------------------------------------------
@router.get("")
async def home() -> Response:
    return RedirectResponse("/ui/subjects", status_code=303)


@router.get("/login")
async def login_page(request: Request, next: str = "/ui/subjects") -> Response:
    return _render(request, "login.html", None, title="Sign in", nav="", next=next, error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    body = (await request.body()).decode()
    form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    token, target = form.get("token", "").strip(), form.get("next", "/ui/subjects")
    if not target.startswith("/ui/") or target.startswith("//"):
        target = "/ui/subjects"
    if not token or app_state(request).registry.authenticate(f"Bearer {token}") is None:
        return _render(
            request,
            "login.html",
            None,
            title="Sign in",
            nav="",
            next=target,
            error="that token is not known here",
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/ui")
    return response


@router.get("/logout")
async def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path="/ui")
    return response


# ---- subjects --------------------------------------------------------------------------
def _matches(query: str, *texts: str | None) -> bool:
    q = query.strip().lower()
    return not q or any(q in (t or "").lower() for t in texts)


@router.get("/subjects")
async def subjects(request: Request, q: str = "", page: int = Query(1, ge=1)) -> Response:
    principal = _viewer(request)
    state = app_state(request)

    def build() -> dict[str, Any]:
        registry = state.registry
        names = [
            n
            for n in registry.subjects()
            if _matches(q, n, registry.metadata(n).owner, registry.metadata(n).description)
        ]
        cut = _data.page_of(names, q, page)
        rows = _data.subject_rows(registry, state.clickhouse, cut.items)
        for row in rows:  # a team sees the rejection counts of its own subjects only
            if not _may_manage(principal, state, row["name"]):
                row["rejections"] = 0
        return {"page": cut, "rows": rows, "days": _data.DAYS}

    return await _page(request, principal, "subjects.html", "Subjects", "Subjects", build)


@router.get("/subjects/{name}")
async def subject(
    request: Request, name: str, a: int | None = None, b: int | None = None
) -> Response:
    principal = _viewer(request)
    state = app_state(request)
    registry = state.registry

    def build() -> dict[str, Any]:
        numbers = registry.versions(name, deleted=True)
        versions = [registry.version(name, n, deleted=True) for n in numbers]
        old, new = (a or (numbers[-2] if len(numbers) > 1 else numbers[-1])), (b or numbers[-1])
        by_number = {v.version: v for v in versions}
        if old not in by_number or new not in by_number:
            raise BadRequest(f"{name} has versions {numbers}; compare two of them")
        migrations = [
            (n, json.dumps(registry.migration(name, n)))
            for n in numbers
            if min(old, new) < n <= max(old, new) and registry.migration(name, n)
        ]
        level = registry.subject_compatibility(name)
        features = [
            r
            for r in (state.features.records() if state.features else [])
            if r.spec.get("source") == name and r.status == "active"
        ]
        return {
            "name": name,
            "meta": registry.metadata(name),
            "level": level.value if level else f"{registry.global_compatibility().value} (global)",
            "numbers": numbers,
            "a": old,
            "b": new,
            "versions": [
                {
                    "version": v.version,
                    "id": v.id,
                    "format": str(v.schema_type),
                    "migration": json.dumps(registry.migration(name, v.version))
                    if registry.migration(name, v.version)
                    else "",
                }
                for v in versions
            ],
            "diff": Markup(  # noqa: S704 - difflib escapes the lines it lays out
                _data.schema_diff(
                    by_number[old].schema, by_number[new].schema, f"version {old}", f"version {new}"
                )
            ),
            "migrations": migrations,
            "features": features,
            "latest": "\n".join(_data.pretty(versions[-1].schema)),
        }

    return await _page(request, principal, "subject.html", name, "Subjects", build)


# ---- features --------------------------------------------------------------------------
def _store(state: AppState) -> Any:
    if state.features is None:
        raise NotFound("this process does not serve the store (see --role)")
    return state.features


@router.get("/features")
async def features(request: Request, q: str = "", page: int = Query(1, ge=1)) -> Response:
    principal = _viewer(request)
    state = app_state(request)

    def build() -> dict[str, Any]:
        store = _store(state)
        newest: dict[str, Any] = {}
        for r in store.records():
            if r.status == "active" and r.version >= getattr(newest.get(r.name), "version", 0):
                newest[r.name] = r
        recs = [
            r
            for _, r in sorted(newest.items())
            if _matches(q, r.name, r.owner, str(r.spec.get("source")), r.spec.get("description"))
        ]
        cut = _data.page_of(recs, q, page)
        return {"page": cut, "rows": store.describe_all(cut.items)}

    return await _page(request, principal, "features.html", "Features", "Features", build)


@router.get("/features/{name}")
async def feature(request: Request, name: str, version: int | None = None) -> Response:
    principal = _viewer(request)
    state = app_state(request)

    def build() -> dict[str, Any]:
        store = _store(state)
        versions = sorted(
            (r for r in store.records() if r.name == name and r.status != "deleted"),
            key=lambda r: r.version,
        )
        if not versions:
            raise NotFound(f"no feature named {name!r}")
        active = [r for r in versions if r.status == "active"] or versions
        rec = next((r for r in versions if r.version == version), None) if version else active[-1]
        if rec is None:
            raise NotFound(f"feature {name!r} has no version {version}")
        entry = store.describe(rec)
        values, error = _data.feature_sample(store, state.clickhouse, rec)
        nulls = sum(1 for v in values if v is None)
        return {
            "f": entry,
            "definition": yaml.safe_dump(entry["definition"], sort_keys=False),
            "hist": _charts.bars(_data.histogram(values)),
            "null_rate": nulls / len(values) if values else None,
            "sample": len(values),
            "sample_error": error,
            "versions": versions,
        }

    return await _page(request, principal, "feature.html", name, "Features", build)


# ---- lineage ---------------------------------------------------------------------------
LINEAGE_PAGE = 12


def _sources(state: AppState, names: list[str]) -> dict[str, set[str]]:
    """Per subject: where its events come from (a CDC table or the HTTP producer teams)."""
    out: dict[str, set[str]] = {n: set() for n in names}
    if state.clickhouse is None or not names:
        return out
    rows = state.clickhouse.query(
        "SELECT subject, source, producer FROM events WHERE subject IN {s:Array(String)} "
        "GROUP BY subject, source, producer ORDER BY subject, source, producer LIMIT 2000",
        parameters={"s": names},
    ).result_rows
    for subject, source, producer in rows:
        if source == "cdc":
            parts = str(subject).split(".")
            table = ".".join(parts[1:]) if parts[0] == "cdc" else str(subject)
            out[subject].add(f"cdc: {table}")
        else:
            out[subject].add(f"http: team {producer}")
    return out


@router.get("/lineage")
async def lineage(
    request: Request,
    q: str = "",
    page: int = Query(1, ge=1),
    subject: str | None = None,
    feature: str | None = None,
) -> Response:
    principal = _viewer(request)
    state = app_state(request)

    def build() -> dict[str, Any]:
        registry = state.registry
        records = state.features.records() if state.features else []
        live = [r for r in records if r.status == "active"]
        focus = None
        if feature is not None:
            mine = [r for r in live if r.name == feature]
            if not mine:
                raise NotFound(f"no active feature named {feature!r}")
            names = [str(mine[-1].spec["source"])]
            live = [r for r in live if r.name == feature]
            focus = f"feature {feature}"
        elif subject is not None:
            names = [subject] if subject in registry.subjects() else []
            focus = f"subject {subject}"
        else:
            names = [n for n in registry.subjects() if _matches(q, n)]
        cut = _data.page_of(names, q, page)
        shown = cut.items[:LINEAGE_PAGE] if subject is None and feature is None else cut.items
        sources = _sources(state, shown)
        feats = [r for r in live if r.spec.get("source") in shown]
        refs = [r.ref for r in feats]
        spines = (
            spines_using(state.clickhouse, refs, database=CLICKHOUSE_DATABASE)
            if state.clickhouse is not None
            else []
        )
        nodes: list[_charts.Node] = []
        for src in sorted({s for found in sources.values() for s in found}):
            feeds = tuple(f"s:{n}" for n in shown if src in sources[n])
            nodes.append(_charts.Node(f"src:{src}", 0, src, None, feeds))
        for n in shown:
            feeds = tuple(f"f:{r.ref}" for r in feats if r.spec.get("source") == n)
            nodes.append(_charts.Node(f"s:{n}", 1, n, f"/ui/subjects/{quote(n)}", feeds))
        for r in feats:
            feeds = tuple(f"sp:{sp['spine']}" for sp in spines if r.ref in sp["features"])
            nodes.append(
                _charts.Node(f"f:{r.ref}", 2, r.ref, f"/ui/features/{quote(r.name)}", feeds)
            )
        nodes.extend(
            _charts.Node(f"sp:{sp['spine']}", 3, f"{sp['kind']}: {sp['spine']}") for sp in spines
        )
        return {"graph": _charts.lineage_graph(nodes), "page": cut, "focus": focus}

    return await _page(request, principal, "lineage.html", "Lineage", "Lineage", build)


# ---- rejections and dead letters -------------------------------------------------------
@router.get("/rejections")
async def rejections(
    request: Request, subject: str | None = None, message: str = "", ok: bool = True
) -> Response:
    principal = _viewer(request)
    state = app_state(request)

    def build() -> dict[str, Any]:
        context: dict[str, Any] = {
            "subject": subject,
            "message": message,
            "ok": ok,
            "csrf": _csrf(request),
            "error": None,
            "rejections": [],
            "dead_letters": [],
        }
        if not subject:
            context["owned"] = [
                n for n in state.registry.subjects() if _may_manage(principal, state, n)
            ]
            return context
        if not _may_manage(principal, state, subject):
            context["error"] = f"only the owner team of {subject} (or an admin) sees its rejections"
            return context
        ring = state.gateway.rejections.recent(subject, 100) if state.gateway else []
        stored = state.replays.rejections(subject, 100) if state.replays else []
        context["rejections"] = merged_rejections(ring, stored, 100)
        if state.replays is not None:
            context["dead_letters"] = state.replays.dead_letters(f"sg.{subject}", 100)
        return context

    return await _page(request, principal, "rejections.html", "Rejections", "Rejections", build)


def _back(subject: str, message: str, ok: bool) -> Response:
    query = f"subject={quote(subject)}&message={quote(message)}&ok={str(ok).lower()}"
    return RedirectResponse(f"/ui/rejections?{query}", status_code=303)


@router.post("/rejections/{subject}/{rejection_id}/replay")
async def replay_rejection_form(request: Request, subject: str, rejection_id: str) -> Response:
    principal = _viewer(request)
    form = await _form(request)
    state = app_state(request)
    if principal is None or state.gateway is None or state.replays is None:
        return _back(subject, "replays need a signed-in team and the store", False)
    try:
        done = await replay_rejection(
            state.gateway,
            state.replays,
            principal,
            subject,
            rejection_id,
            form.get("event", "").encode(),
        )
    except SluicegateError as exc:
        return _back(subject, f"not replayed: {exc.message}", False)
    return _back(subject, f"replayed as event {done['event_id']}", True)


@router.post("/dead-letters/{dead_letter_id}/replay")
async def replay_dead_letter_form(request: Request, dead_letter_id: str) -> Response:
    principal = _viewer(request)
    form = await _form(request)
    state = app_state(request)
    subject = form.get("subject", "")
    if principal is None or state.gateway is None or state.replays is None:
        return _back(subject, "replays need a signed-in team and the store", False)
    try:
        done = await replay_dead_letter(state.gateway, state.replays, principal, dead_letter_id)
    except SluicegateError as exc:
        return _back(subject, f"not replayed: {exc.message}", False)
    return _back(subject, f"replayed as event {done['event_id']}", True)


# ---- the running system ----------------------------------------------------------------
@router.get("/system")
async def system(request: Request) -> Response:
    principal = _viewer(request)
    state = app_state(request)

    def build() -> dict[str, Any]:
        throughput: list[tuple[str, float]] = []
        p50: list[tuple[str, float]] = []
        p99: list[tuple[str, float]] = []
        if state.clickhouse is not None:
            rows = state.clickhouse.query(
                "SELECT formatDateTime(toStartOfMinute(loaded_at), '%H:%i') AS m, count(), "
                "quantile(0.5)(toUnixTimestamp64Milli(loaded_at) - "
                "toUnixTimestamp64Milli(ingested_at)), "
                "quantile(0.99)(toUnixTimestamp64Milli(loaded_at) - "
                "toUnixTimestamp64Milli(ingested_at)) "
                "FROM events WHERE loaded_at >= now() - INTERVAL 1 HOUR "
                "GROUP BY toStartOfMinute(loaded_at) AS t, m ORDER BY t"
            ).result_rows
            for minute, n, lag50, lag99 in rows:
                throughput.append((str(minute), float(n)))
                p50.append((str(minute), max(float(lag50), 0.0)))
                p99.append((str(minute), max(float(lag99), 0.0)))
        loader = []
        if state.materializer is not None:
            loader = [
                ("rows loaded since start", f"{state.materializer.loaded_rows:,}"),
                ("waiting for ClickHouse", "yes" if state.materializer.blocked else "no"),
            ]
        return {
            "throughput": _charts.line_chart({"events/min": throughput}),
            "lag": _charts.line_chart({"p50": p50, "p99": p99}),
            "loader": loader,
        }

    return await _page(request, principal, "system.html", "System", "System", build)
