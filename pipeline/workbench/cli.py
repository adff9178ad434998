"""`cargoscreen workbench ...`, `cargoscreen riskinfo ...` and `cargoscreen rules report`: the workbench
for scripts, the same queue operations the web pages use (queue.py), with the same audit trail."""
from __future__ import annotations

import json
import logging
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import click

from ..config import Settings
from .accounts import ANALYSTS_ENV, Analysts, add_analyst, remove_analyst, session_secret, set_password

PREFIX = Settings().redis.key_prefix
_redis = click.option("--redis-url", required=True, envvar="CARGOSCREEN_REDIS_URL",
                      help="The pipelines' Redis (or CARGOSCREEN_REDIS_URL).")
_centre = click.option("--centre", required=True, help="The risk centre, e.g. RC-NL.")
_analyst = click.option("--analyst", required=True, help="Who acts (recorded in the audit trail).")


def _client(url: str):
    """A client whose Redis has answered a ping: a wrong address or password stops a command (and a
    server or keeper before it starts) with one line, exit 4 (cargoscreen.exits)."""
    from ..connectors.redis_store import connect

    client = connect(url)
    client.ping()
    return client


@contextmanager
def _refusals():
    from ..risk_information import FormError
    from .queue import QueueError

    try:
        yield
    except (QueueError, FormError) as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)


def _echo(data) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=1))


@click.group("workbench")
def workbench() -> None:
    """Risk-centre queues: serve the web workbench, keep the queues, act on referrals from scripts."""


@workbench.command("serve")
@_redis
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8090, show_default=True)
@click.option("--analysts", "analysts_path", type=click.Path(exists=True, dir_okay=False), envvar=ANALYSTS_ENV,
              required=True, help=f"The analysts file (or {ANALYSTS_ENV}); see `workbench user add`.")
@click.option("--session-secret-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="File holding the cookie-signing secret (else CARGOSCREEN_SESSION_SECRET).")
@click.option("--claim-minutes", default=30, show_default=True, help="A claim returns to the queue after this.")
@click.option("--keeper/--no-keeper", default=True, show_default=True,
              help="Also take referrals into the queues in this process (else run `workbench keep`).")
@click.option("--rules", "rules_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Fallback rule pack for checking risk information forms (default: the bundled one).")
@click.option("--secure-cookies", is_flag=True, help="Cookies only over HTTPS (behind a TLS proxy).")
@click.option("--idle-minutes", type=click.FloatRange(min=0, min_open=True), default=30, show_default=True,
              help="A session ends after this long without a request.")
@click.option("--session-hours", type=click.FloatRange(min=0, min_open=True), default=12, show_default=True,
              help="A session ends this long after sign-in, however active.")
@click.option("--archive", "archive_path", default=None, type=click.Path(exists=True, file_okay=False),
              help="The Parquet archive: a query page and the indicators, each analyst's centre's rows only.")
@click.option("--query-seconds", type=click.FloatRange(min=0, min_open=True), default=30, show_default=True,
              help="A query on the query page is stopped after this long.")
def serve(redis_url, host, port, analysts_path, session_secret_file, claim_minutes, keeper, rules_dir,
          secure_cookies, idle_minutes, session_hours, archive_path, query_seconds) -> None:
    """Serve the analysts' web workbench."""
    import uvicorn

    from .keeper import Keeper
    from .web import workbench_app

    client = _client(redis_url)
    try:
        secret = session_secret(Path(session_secret_file) if session_secret_file else None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        analysts = Analysts.load(Path(analysts_path))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    app = workbench_app(client, analysts, secret, PREFIX, claim_minutes * 60,
                        Path(rules_dir) if rules_dir else Settings().rules.pack_dir, secure_cookies,
                        max(1, round(idle_minutes * 60)), max(1, round(session_hours * 3600)),
                        Path(archive_path) if archive_path else None, query_seconds)
    stop = threading.Event()
    if keeper:
        keeper_loop = Keeper(client, Settings().with_redis_url(redis_url), claim_minutes * 60).run
        threading.Thread(target=keeper_loop, args=(stop,), daemon=True, name="keeper").start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        stop.set()


@workbench.command("keep")
@_redis
@click.option("--claim-minutes", default=30, show_default=True)
def keep(redis_url, claim_minutes) -> None:
    """Take referrals into the queues, return abandoned claims, count rule hits (until interrupted)."""
    from .keeper import Keeper

    logging.basicConfig(level=logging.INFO)
    stop = threading.Event()
    try:
        Keeper(_client(redis_url), Settings().with_redis_url(redis_url), claim_minutes * 60).run(stop)
    except KeyboardInterrupt:
        stop.set()


@workbench.command("list")
@_redis
@_centre
@click.option("--mode", default="")
@click.option("--decision", default="")
@click.option("--area", default="")
@click.option("--claimed", type=click.Choice(["", "yes", "no"]), default="")
@click.option("--older-than-hours", type=float, default=None)
@click.option("--newer-than-hours", type=float, default=None)
@click.option("--sort", type=click.Choice(["score", "age"]), default="score", show_default=True)
@click.option("--count", default=50, show_default=True)
@click.option("--offset", default=0, show_default=True)
def list_(redis_url, centre, mode, decision, area, claimed, older_than_hours, newer_than_hours, sort, count, offset):
    """Open referrals of a centre, filtered, as JSON (takes new referrals in first)."""
    from .queue import ReferralQueue

    q = ReferralQueue(_client(redis_url), centre, PREFIX)
    q.take_in()
    with _refusals():
        page = q.page(mode, decision, area, claimed, older_than_hours, newer_than_hours, sort, offset, count)
    _echo({"total": page.total, "referrals": page.rows})


@workbench.command("show")
@_redis
@_centre
@click.argument("referral")
def show(redis_url, centre, referral) -> None:
    """A referral with its explanation, state, answers and outcome, as JSON."""
    from .queue import ReferralQueue

    with _refusals():
        _echo(ReferralQueue(_client(redis_url), centre, PREFIX).show(referral))


@workbench.command("claim")
@_redis
@_centre
@_analyst
@click.option("--claim-minutes", default=30, show_default=True)
@click.argument("referral")
def claim(redis_url, centre, analyst, claim_minutes, referral) -> None:
    """Claim a referral (or renew your claim)."""
    from .queue import ReferralQueue

    with _refusals():
        ReferralQueue(_client(redis_url), centre, PREFIX, claim_minutes * 60).claim(referral, analyst)
    click.echo(f"{referral} claimed by {analyst}")


@workbench.command("release")
@_redis
@_centre
@_analyst
@click.argument("referral")
def release(redis_url, centre, analyst, referral) -> None:
    """Give a claimed referral back to the queue."""
    from .queue import ReferralQueue

    with _refusals():
        ReferralQueue(_client(redis_url), centre, PREFIX).release(referral, analyst)
    click.echo(f"{referral} back in the queue")


@workbench.command("resolve")
@_redis
@_centre
@_analyst
@click.argument("referral")
@click.option("--outcome", required=True, help="finding, no-finding, documentary-check, rfi-answered, not-controlled")
@click.option("--category", default="", help="For a finding: drugs, weapons, counterfeit, ...")
@click.option("--note", default="")
def resolve(redis_url, centre, analyst, referral, outcome, category, note) -> None:
    """Record the outcome of a referral you hold."""
    from .queue import ReferralQueue

    with _refusals():
        ReferralQueue(_client(redis_url), centre, PREFIX).resolve(referral, analyst, outcome, category, note)
    click.echo(f"{referral} resolved: {outcome}{' / ' + category if category else ''}")


@workbench.command("audit")
@_redis
@click.option("--centre", default=None, help="Only this centre's records (default: all).")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True)
@click.option("--since", default="-", help="Stream id or epoch milliseconds.")
def audit_export(redis_url, centre, fmt, since) -> None:
    """Export the audit trail (claims, releases, resolutions, publications, sign-ins)."""
    from .. import audit

    client = _client(redis_url)
    trails = audit.trails(PREFIX, centre) if centre else audit.every_trail(client, PREFIX)
    click.echo(audit.export(audit.entries(client, trails, since, centre=centre), fmt), nl=False)


@workbench.command("migrate-keys")
@_redis
def migrate_keys(redis_url) -> None:
    """Move the keys an older version wrote on one Redis to the layout a Redis Cluster needs (the
    workbench, rule statistics, the rule store, risk information, the container store), in place.
    Run it with the pipelines, the workbench and the feed stopped, before moving to a cluster."""
    from ..connectors.redis_store import is_cluster
    from .migrate import migrate

    client = _client(redis_url)
    if is_cluster(client):
        raise click.UsageError("run it on the single Redis the old version used, before moving to a cluster")
    moved = migrate(client, PREFIX)
    click.echo("; ".join(f"{family}: {n}" for family, n in sorted(moved.items())) or "nothing to move")


@workbench.group("user")
def user() -> None:
    """Analysts who may sign in."""


_analysts_file = click.option("--analysts", "analysts_path", type=click.Path(dir_okay=False), envvar=ANALYSTS_ENV,
                              required=True, help=f"The analysts file (or {ANALYSTS_ENV}).")
_new_password = click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
                             envvar="CARGOSCREEN_NEW_PASSWORD",
                             help="Prompted for when not given (or CARGOSCREEN_NEW_PASSWORD).")


@contextmanager
def _usage():
    try:
        yield
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@user.command("add")
@click.argument("name")
@_centre
@_analysts_file
@_new_password
def user_add(name, centre, analysts_path, password) -> None:
    """Add an analyst (or set a new password and centre); the file keeps only a scrypt hash."""
    with _usage():
        add_analyst(Path(analysts_path), name, centre, password)
    click.echo(f"{name} may sign in to {centre}")


@user.command("password")
@click.argument("name")
@_analysts_file
@_new_password
def user_password(name, analysts_path, password) -> None:
    """Set a new password for an analyst; their open sessions end at their next request."""
    with _usage():
        set_password(Path(analysts_path), name, password)
    click.echo(f"new password for {name}; their open sessions end at their next request")


@user.command("remove")
@click.argument("name")
@_analysts_file
def user_remove(name, analysts_path) -> None:
    """Remove an analyst: no more sign-ins, and their open sessions end at their next request."""
    with _usage():
        remove_analyst(Path(analysts_path), name)
    click.echo(f"{name} removed: no more sign-ins; their open sessions end at their next request")


@click.group("riskinfo")
def riskinfo() -> None:
    """Risk information forms shared with every centre and every running pipeline."""


@riskinfo.command("publish")
@_redis
@_centre
@_analyst
@click.option("--kind", required=True, type=click.Choice(["party", "address", "route", "container", "commodity",
                                                           "pattern"]))
@click.option("--watch", "watch", multiple=True, required=True,
              help="What to watch, KEY=VALUE (id, name, street, city, country, from, to, via, container, hs, "
                   "description, condition); repeatable.")
@click.option("--title", required=True)
@click.option("--area", required=True)
@click.option("--action", default="control", show_default=True)
@click.option("--until", "valid_until", required=True, help="ISO 8601, e.g. 2026-12-31T00:00:00Z")
@click.option("--from", "valid_from", default=None)
@click.option("--weight", type=float, default=None)
@click.option("--ask", default="")
@click.option("--mode", "modes", multiple=True)
def riskinfo_publish(redis_url, centre, analyst, kind, watch, title, area, action, valid_until, valid_from, weight,
                     ask, modes) -> None:
    """Check and publish a form; running pipelines screen for it within seconds."""
    from ..risk_information import RiskInformationStore, checked_form
    from ..rule_store import RulePackSource, RulePackStore

    client = _client(redis_url)
    pack = RulePackSource(Settings().rules.pack_dir, RulePackStore(client, PREFIX), 0).current().pack
    with _refusals():
        form = checked_form(pack, centre=centre, kind=kind, watch=dict(w.split("=", 1) for w in watch), title=title,
                            area=area, action=action, valid_until=valid_until, valid_from=valid_from, weight=weight,
                            ask=ask, modes=modes, published_by=analyst)
        form = RiskInformationStore(client, PREFIX).publish(form)
    click.echo(f"{form.id} published: {form.condition} [{form.valid_from} to {form.valid_until}]")


@riskinfo.command("list")
@_redis
@click.option("--all", "show_all", is_flag=True, help="Also revoked and expired forms.")
def riskinfo_list(redis_url, show_all) -> None:
    import time

    from ..risk_information import RiskInformationStore

    store = RiskInformationStore(_client(redis_url), PREFIX)
    forms = store.forms() if show_all else store.active(time.time())
    _echo([json.loads(f.to_json()) for f in forms])


@riskinfo.command("revoke")
@_redis
@_centre
@_analyst
@click.argument("form_id")
def riskinfo_revoke(redis_url, centre, analyst, form_id) -> None:
    from ..risk_information import RiskInformationStore

    with _refusals():
        RiskInformationStore(_client(redis_url), PREFIX).revoke(form_id, analyst, centre)
    click.echo(f"{form_id} revoked")


@click.command("report")
@_redis
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the report.")
@click.option("--since", default="", help="First day (YYYY-MM-DD) to count.")
@click.option("--centre", default=None, help="Count one risk centre's decisions and resolutions (default: every centre).")
def rules_report(redis_url, out_dir, since, centre) -> None:
    """Rule effectiveness per rule and pack version: report.html, rules.png, rules.csv (totals),
    rules-by-day.csv (over time); flags rules that mostly make false hits (exit 0 either way)."""
    from ..csvcells import Writer
    from .effectiveness import DecisionCounter, daily_totals, plot, read_counts, report_html, rule_rows

    client = _client(redis_url)
    DecisionCounter(client, PREFIX).count_new()  # decisions not yet counted by a keeper
    counts = read_counts(client, PREFIX, centre)
    rows = rule_rows(counts, since)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot(rows, daily_totals(counts, since), out / "rules.png")
    (out / "report.html").write_text(report_html(rows, "rules.png"))
    with open(out / "rules.csv", "w", newline="") as f:
        w = Writer(f)
        w.writerow(["pack", "rule", "hits", "referrals", "resolved", "confirmed", "false_hits", "false_hit_rate",
                    "flagged"])
        for r in rows:
            w.writerow([r.pack, r.rule, r.hits, r.referrals, r.resolved, r.confirmed, r.false,
                        "" if r.false_hit_rate is None else f"{r.false_hit_rate:.3f}", r.flagged])
    with open(out / "rules-by-day.csv", "w", newline="") as f:
        w = Writer(f)
        w.writerow(["pack", "rule", "day", "hits", "referrals", "resolved", "confirmed", "false_hits"])
        for r in rows:
            for day, m in sorted(r.by_day.items()):
                w.writerow([r.pack, r.rule, day, m["hits"], m["referrals"], m["resolved"], m["confirmed"], m["false"]])
    flagged = [r for r in rows if r.flagged]
    click.echo(f"{len(rows)} rules with hits; {len(flagged)} flagged"
               + "".join(f"\n  flagged: {r.pack} {r.rule}: {r.false}/{r.outcomes} false hits" for r in flagged))
    click.echo(f"report: {out / 'report.html'}")
