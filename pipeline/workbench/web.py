"""The analysts' workbench: server-rendered pages over the centre's queue (Starlette + Jinja2).

    GET  /login, POST /login, POST /logout     sign-in per analyst; the session names the centre
    GET  /                                     the queue: filters (mode, decision, area, age, claimed), sort
    GET  /referrals/{id}                       the referral: filing, rules with evidence, container timeline,
                                               decision and pack, the filer's answers, actions
    POST /referrals/{id}/claim|release|resolve
    GET  /rules, /rules/plot.png               rule effectiveness in the centre
    GET  /risk-information, POST ...           publish (and revoke) risk information forms
    GET  /audit, /audit/export?format=csv|jsonl  the centre's audit trail
    GET  /analytics/query, /analytics/query.csv, /analytics/indicators   SQL over the centre's archive
                                               (with --archive; analytics_pages.py)
    GET  /healthz

Every page and action reads the analyst and centre from the server-side session (sessions.py)
that the signed cookie names, never from the request: a centre cannot name another centre's
referral, and a session that was ended (sign-out, removal, new password, idleness) lets nobody
in. Forms carry a per-session token (CSRF), the sign-in form one of its own (login CSRF), and
cookies are SameSite=strict and HttpOnly. Sign-in is throttled per account and client address
(throttle.py), and its scrypt runs off the event loop, at most HASHING_SLOTS at a time.
"""
from __future__ import annotations

import io
import logging
import math
import secrets
import threading
import time
from itertools import islice
from pathlib import Path

import anyio
import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from .. import audit, metrics
from ..container_store import ContainerEventStore
from ..domain.filings import MODES
from ..domain.reference import EXTRA_COUNTRY_CODES, bundled_reference
from ..domain.rulepack import DECISIONS, RISK_AREAS, COMPLETE, RFI
from ..risk_information import ACTIONS, KINDS, FormError, RiskInformationStore, checked_form, ordinary_traffic
from ..rule_store import RulePackSource, RulePackStore
from .accounts import Analyst, Analysts, AnalystsUnreadable
from .analytics_pages import analytics_routes
from . import palette
from .effectiveness import daily_totals, plot, read_counts, rule_rows, table_context
from .queue import FINDING_CATEGORIES, OUTCOMES, QueueError, ReferralQueue
from .sessions import Sessions
from .throttle import LOCK_SECONDS, SignInThrottle

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.filters["utc"] = lambda epoch: time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch))

log = logging.getLogger(__name__)


def _age(iso: str) -> str:
    """How long ago, in the unit an analyst reads at a glance."""
    seconds = metrics.since(iso)
    if seconds is None:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _party_country(party: dict) -> str:
    """Where a party is from and how that is known: its address, else its EORI's country prefix."""
    if party.get("country"):
        return f"{party['country']}, address"
    prefix = (party.get("id") or "")[:2]
    if prefix in bundled_reference().countries or prefix in EXTRA_COUNTRY_CODES:
        return f"{prefix}, from the EORI"
    return "country not given"


def _rfi(body: dict) -> dict | None:
    """The request for information as the filers got it: sent or not (only a decision to request
    information sends it, one IE3Q02 per filing of the consignment, to its filer), and the filing
    each question points into (a merged consignment's pointers start with that filing's MRN)."""
    if not body.get("information_requested"):
        return None
    filings = body.get("filings") or [{k: body.get(k) for k in ("mrn", "lrn", "filer", "filing_code")}]
    of = {f["mrn"]: f" ({f['filing_code']}, filer {f['filer']})" for f in filings}
    items = []
    for item in body["information_requested"]:
        mrn, _, path = (item.get("pointer") or "").rpartition("#")
        where = "" if not path else "in this filing" if mrn in ("", body.get("mrn")) else \
            f"in another filing of this consignment, MRN {mrn}{of.get(mrn, '')}"
        items.append({"text": item["text"], "where": where, "path": path})
    return {"sent": body.get("decision") == RFI, "filings": filings, "items": items}


TEMPLATES.env.filters["age"] = _age
TEMPLATES.env.filters["party_country"] = _party_country
TEMPLATES.env.filters["outcome_key"] = lambda code: palette.outcome_key(*OUTCOMES.get(code, ("", False, False))[1:])
TEMPLATES.env.globals["palette_css"] = palette.css()


HASHING_SLOTS = 2  # concurrent scrypt checks: a flood of sign-ins leaves threads for the pages
UNAVAILABLE = "Sign-in is unavailable: the analysts file cannot be read (the server's log says why)."


def _analyst(request: Request) -> tuple[str, str]:
    """Who is signed in and their centre, as `signed_in` found them in the live session."""
    return request.state.analyst, request.state.centre


def _address(request: Request) -> str:
    """The client's address (uvicorn takes it from X-Forwarded-For when the proxy is trusted:
    FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else ""


def _query(q) -> tuple[dict, int]:
    """The queue's filters from the URL; ValueError for what is not a number (ranges: queue.py)."""
    def hours(name):
        try:
            return float(q[name]) if q.get(name) else None
        except ValueError:
            raise ValueError(f"{name}: a number of hours") from None
    offset = q.get("offset", "") or "0"
    if not (offset.isascii() and offset.isdigit()):  # int() takes "1_0" and " 1"
        raise ValueError("offset: a whole number")
    return {"mode": q.get("mode", ""), "decision": q.get("decision", ""), "area": q.get("area", ""),
            "claimed": q.get("claimed", ""), "older_than_hours": hours("older"), "newer_than_hours": hours("newer"),
            "sort": q.get("sort", "score")}, int(offset)


def workbench_app(client: redis.Redis, analysts: Analysts, session_secret: str, key_prefix: str = "cs",
                  claim_seconds: int = 30 * 60, pack_dir: Path | None = None, secure_cookies: bool = False,
                  idle_seconds: int = 30 * 60, session_seconds: int = 12 * 3600, archive: Path | None = None,
                  query_seconds: float = 30.0) -> Starlette:
    sessions = Sessions(client, key_prefix, idle_seconds, session_seconds)
    throttle = SignInThrottle(client, key_prefix)
    hashing = anyio.CapacityLimiter(HASHING_SLOTS)
    events = ContainerEventStore(client, key_prefix=key_prefix)
    risk = RiskInformationStore(client, key_prefix)
    packs = RulePackSource(pack_dir, RulePackStore(client, key_prefix), poll_seconds=1.0) if pack_dir else None
    if packs:  # what a form is tried on before publication, made now rather than at the first one (~2 s)
        threading.Thread(target=ordinary_traffic, name="ordinary-traffic", daemon=True).start()

    def queue_of(centre: str) -> ReferralQueue:
        return ReferralQueue(client, centre, key_prefix, claim_seconds)

    def page(request: Request, template: str, status: int = 200, **context) -> Response:
        who, centre = _analyst(request)
        return TEMPLATES.TemplateResponse(request, template, {"analyst": who, "centre": centre,
                                                              "csrf": request.state.csrf,
                                                              "analytics": archive is not None, **context},
                                          status_code=status)

    def live_session(request: Request) -> Response | None:
        """Finds the request's session in Redis and checks it against the analysts file as it is
        now; None when it is live (request.state says who), else the answer to give."""
        sid = request.session.get("sid")
        found = sessions.get(sid) if sid else None
        if found and not found.ended:
            try:
                stamp = analysts.stamp(found.analyst)
            except AnalystsUnreadable:
                return PlainTextResponse(UNAVAILABLE, status_code=503)
            if stamp != found.stamp:  # removed, or a new password or centre since this sign-in
                why = "analyst removed" if stamp is None else "password or centre changed"
                if sessions.end(sid, why, reported=True):
                    audit.note(client, key_prefix, found.analyst, found.centre, "session-refused", "",
                                 f"{why}; from {_address(request)}")
                found = None
        elif found:  # ended before: a copy of the cookie, kept or stolen
            if found.first_use_after_end:
                audit.note(client, key_prefix, found.analyst, found.centre, "session-refused", "",
                             f"used after: {found.ended}; from {_address(request)}")
            found = None
        if found is None:
            request.session.clear()
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        request.state.analyst, request.state.centre, request.state.csrf = found.analyst, found.centre, found.csrf
        request.state.sid = sid
        return None

    def signed_in(handler):
        async def wrapped(request: Request):
            refused = await run_in_threadpool(live_session, request)  # Redis calls block: off the event loop
            if refused is not None:
                return refused
            if request.method == "POST":
                form = await request.form()
                if not secrets.compare_digest(str(form.get("csrf", "")), request.state.csrf):
                    return PlainTextResponse("the form is stale: reload the page", status_code=403)
                request.state.form = form
            return await run_in_threadpool(handler, request)
        return wrapped

    def login_page(request: Request, error: str = "", status: int = 200, target: str = "/",
                   headers: dict | None = None) -> Response:
        # The sign-in form's own token, kept in the signed cookie: a form posted from another site
        # (which cannot read it) does not sign the victim in as the attacker (login CSRF).
        request.session.setdefault("login_csrf", secrets.token_urlsafe(24))
        return TEMPLATES.TemplateResponse(request, "login.html", {"error": error, "next": target,
                                                                  "csrf": request.session["login_csrf"]},
                                          status_code=status, headers=headers)

    def record_locks(name: str, address: str, locked: tuple[str, ...]) -> None:
        for what in locked:
            audit.note(client, key_prefix, name[:32], analysts.centre_of(name), "sign-in-locked",
                         f"account {name[:32]}" if what == "account" else f"address {address}",
                         f"too many sign-in attempts; locked for {LOCK_SECONDS // 60} min; last from {address}")

    def signed_in_now(analyst: Analyst, address: str, previous: str | None) -> str:
        throttle.succeeded(analyst.name, address)
        if previous:  # this browser's earlier session: one browser, one session
            sessions.end(previous, "signed in again")
        sid = sessions.open(analyst)
        audit.note(client, key_prefix, analyst.name, analyst.centre, "sign-in", "", f"from {address}")
        return sid

    async def login(request: Request):
        if request.method == "GET":
            return login_page(request, target=request.query_params.get("next", "/"))
        form = await request.form()
        name, password, target = str(form.get("name", "")), str(form.get("password", "")), str(form.get("next", "/"))
        expected = request.session.get("login_csrf", "")  # none without the form's cookie: never ""
        if not expected or not secrets.compare_digest(str(form.get("csrf", "")), expected):
            return login_page(request, "The sign-in form had expired: sign in again.", 403, target)
        address = _address(request)
        verdict = await run_in_threadpool(throttle.attempt, name, address)
        if verdict.refused:  # no password check: a refusal costs no scrypt
            if verdict.locked_now:
                await run_in_threadpool(record_locks, name, address, verdict.locked_now)
            wait = math.ceil(verdict.wait)
            error = (f"Too many sign-in attempts: locked, try again in {math.ceil(wait / 60)} min."
                     if verdict.refused == "locked" else f"Too many sign-in attempts: wait {wait} s.")
            return login_page(request, error, 429, target, {"Retry-After": str(wait)})
        try:
            analyst = await anyio.to_thread.run_sync(analysts.sign_in, name, password, limiter=hashing)
        except AnalystsUnreadable:
            return PlainTextResponse(UNAVAILABLE, status_code=503)
        if analyst is None:  # recorded: the throttle bounds how many per account and address
            await run_in_threadpool(audit.note, client, key_prefix, name[:32], analysts.centre_of(name),
                                    "sign-in-refused", "", f"from {address}")
            return login_page(request, "Unknown name or wrong password.", 401, target)
        sid = await run_in_threadpool(signed_in_now, analyst, address, request.session.get("sid"))
        request.session.clear()
        request.session["sid"] = sid
        return RedirectResponse(target if target.startswith("/") and not target.startswith("//") else "/",
                                status_code=303)

    def logout(request: Request):
        who, centre = _analyst(request)
        sessions.end(request.state.sid, "signed out")
        audit.note(client, key_prefix, who, centre, "sign-out", "", "")
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    def queue_page(request: Request):
        _, centre = _analyst(request)
        q = request.query_params
        try:
            filters, offset = _query(q)
            result = queue_of(centre).page(**filters, offset=offset, count=50)
        except (ValueError, QueueError) as exc:
            return page(request, "error.html", message=f"Not a queue view: {exc}.", status=400)
        return page(request, "queue.html", rows=result.rows, total=result.total, offset=offset, q=dict(q),
                    modes=MODES, decisions=[d for d in DECISIONS if d != COMPLETE], areas=RISK_AREAS)

    def referral_page(request: Request, message: str = "", status: int = 200):
        who, centre = _analyst(request)
        rid = request.path_params["rid"]
        try:
            ref = queue_of(centre).show(rid)
        except QueueError:
            return page(request, "error.html", message=f"No referral {rid} in {centre}.", status=404)
        body = ref["body"]
        containers = (body.get("filing") or {}).get("containers") or []
        flagged = {e for f in body.get("container_facts", ()) for e in f.get("events", ())}
        timelines = []
        for container, history in (events.histories(containers) if containers else {}).items():
            route = [e.location for e in history if e.location]
            timelines.append({"container": container, "events": history, "route": [
                loc for i, loc in enumerate(route) if i == 0 or loc != route[i - 1]]})
        return page(request, "referral.html", ref=ref, body=body, timelines=timelines, flagged=flagged,
                    outcomes=OUTCOMES, categories=FINDING_CATEGORIES, message=message, status=status,
                    mine=ref.get("claimed_by") == who, rfi=_rfi(body))

    def action(request: Request):
        who, centre = _analyst(request)
        rid, verb, form = request.path_params["rid"], request.path_params["verb"], request.state.form
        q = queue_of(centre)
        try:
            if verb == "claim":
                q.claim(rid, who)
            elif verb == "release":
                q.release(rid, who)
            elif verb == "resolve":
                q.resolve(rid, who, str(form.get("outcome", "")), str(form.get("category", "")),
                          str(form.get("note", "")))
            else:
                return PlainTextResponse("unknown action", status_code=404)
        except QueueError as exc:
            return referral_page(request, message=str(exc), status=409)
        return RedirectResponse(f"/referrals/{rid}", status_code=303)

    def rules_page(request: Request):
        _, centre = _analyst(request)
        rows = rule_rows(read_counts(client, key_prefix, centre), request.query_params.get("since", ""))
        return page(request, "rules.html", **table_context(rows))

    def rules_plot(request: Request):
        _, centre = _analyst(request)
        out = io.BytesIO()
        counts, since = read_counts(client, key_prefix, centre), request.query_params.get("since", "")
        plot(rule_rows(counts, since), daily_totals(counts, since), out)
        return Response(out.getvalue(), media_type="image/png")

    def risk_page(request: Request, error: str = "", status: int = 200):
        return page(request, "riskinfo.html", forms=risk.forms(), kinds=KINDS, actions=ACTIONS, areas=RISK_AREAS,
                    modes=MODES, error=error, status=status, values=getattr(request.state, "form", {}))

    def risk_publish(request: Request):
        who, centre = _analyst(request)
        form = request.state.form
        if packs is None:
            return risk_page(request, "this workbench was started without a rule pack", 500)
        watch = {k.removeprefix("watch_"): str(v) for k, v in form.items() if k.startswith("watch_") and str(v).strip()}
        try:
            checked = checked_form(packs.current().pack, centre=centre, kind=str(form.get("kind", "")), watch=watch,
                                   title=str(form.get("title", "")), area=str(form.get("area", "")),
                                   action=str(form.get("action", "")), valid_until=str(form.get("valid_until", "")),
                                   valid_from=str(form.get("valid_from", "")) or None,
                                   weight=str(form.get("weight", "")) or None, ask=str(form.get("ask", "")),
                                   modes=form.getlist("modes"), published_by=who)
        except FormError as exc:
            return risk_page(request, str(exc), 400)
        risk.publish(checked)
        return RedirectResponse("/risk-information", status_code=303)

    def risk_revoke(request: Request):
        who, centre = _analyst(request)
        try:
            risk.revoke(request.path_params["fid"], who, centre)
        except FormError as exc:
            return risk_page(request, str(exc), 403)
        return RedirectResponse("/risk-information", status_code=303)

    def audit_page(request: Request):
        _, centre = _analyst(request)
        trail = audit.entries(client, audit.trails(key_prefix, centre), centre=centre, newest_first=True)
        rows = list(islice(trail, 200))
        return page(request, "audit.html", rows=rows)

    def audit_export(request: Request):
        _, centre = _analyst(request)
        fmt = "jsonl" if request.query_params.get("format") == "jsonl" else "csv"
        text = audit.export(audit.entries(client, audit.trails(key_prefix, centre), centre=centre), fmt)
        return PlainTextResponse(text, media_type="application/x-ndjson" if fmt == "jsonl" else "text/csv",
                                 headers={"Content-Disposition": f"attachment; filename=audit-{centre}.{fmt}"})

    def healthz(request: Request):
        try:
            client.ping()
            return JSONResponse({"status": "ok"})
        except redis.RedisError as exc:
            return JSONResponse({"status": "unavailable", "reason": str(exc)}, status_code=503)

    routes = [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", signed_in(logout), methods=["POST"]),
        Route("/", signed_in(queue_page)),
        Route("/referrals/{rid}", signed_in(referral_page)),
        Route("/referrals/{rid}/{verb}", signed_in(action), methods=["POST"]),
        Route("/rules", signed_in(rules_page)),
        Route("/rules/plot.png", signed_in(rules_plot)),
        Route("/risk-information", signed_in(risk_page)),
        Route("/risk-information", signed_in(risk_publish), methods=["POST"]),
        Route("/risk-information/{fid}/revoke", signed_in(risk_revoke), methods=["POST"]),
        Route("/audit", signed_in(audit_page)),
        Route("/audit/export", signed_in(audit_export)),
        Route("/healthz", healthz),
    ]
    if archive is not None:  # the centre's archive: ad hoc SQL and the indicators
        routes += analytics_routes(
            archive, page, signed_in, lambda who, centre, action, target, detail: audit.note(
                client, key_prefix, who, centre, action, target, detail), _analyst, query_seconds)
    middleware = [Middleware(SessionMiddleware, secret_key=session_secret, session_cookie="cs_workbench",
                             max_age=session_seconds, same_site="strict", https_only=secure_cookies)]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={redis.RedisError: store_away})


STORE_AWAY = "The queue's store cannot be reached just now (a restart or a failover): try again in a few seconds."


async def store_away(request: Request, exc: Exception) -> Response:
    """Redis away (restarting, or a cluster master's replica taking over): 503 and when to try
    again, not a server error."""
    log.warning("%s %s: Redis unavailable: %s", request.method, request.url.path, exc)
    return PlainTextResponse(STORE_AWAY, status_code=503, headers={"Retry-After": "5"})
