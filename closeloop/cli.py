"""The `closeloop` command."""
from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

import click
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from closeloop import migrate
from closeloop.bootstrap import Embedded, Services, apply_role_grants, build
from closeloop.config import Settings, load_settings
from flows.access import Role, RoleGrant, grant_role, revoke_role
from flows.catalog_file import read_catalog
from flows.errors import LedgerError
from flows.outbox import OutboxStatus
from flows.queries import find_deal, outbox_messages, timeline
from flows.steps import load_catalog


class LedgerAwareGroup(click.Group):
    """Refusals from the ledger and an unusable database are answers, not crashes:
    print them plainly, exit 1."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LedgerError as error:
            raise click.ClickException(str(error)) from None
        except DBAPIError as error:
            raise click.ClickException(_database_problem(error)) from None


def _database_problem(error: DBAPIError) -> str:
    url = make_url(_settings().database_url).render_as_string(hide_password=True)
    text = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    if "no such table" in text or ("relation" in text and "does not exist" in text):
        return f"the database at {url} has no closeloop schema yet: run `closeloop db upgrade`"
    if error.connection_invalidated or isinstance(error, OperationalError):
        return f"cannot use the database at {url}: {text}"
    return f"database error at {url}: {text}"


@click.group(cls=LedgerAwareGroup)
@click.option("-v", "--verbose", is_flag=True, help="log what the relay does")
def main(verbose: bool) -> None:
    """closeloop: quote -> e-signature -> deal won -> invoice -> license -> recurring charge."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _settings() -> Settings:
    try:
        return load_settings()
    except ValueError as error:
        raise click.ClickException(f"configuration: {error}") from None


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--hold", is_flag=True, help="then keep running until stopped (for honcho and foreman, which stop "
                                          "every process when one exits)")
def db_upgrade(hold: bool) -> None:
    """Create or migrate the schema to the latest version (also: `db init`, `db migrate`)."""
    settings = _settings()
    migrate.upgrade(settings.database_url)
    click.echo(f"database at head ({migrate.head_revision(settings.database_url)})", nl=True)
    if hold:
        sys.stdout.flush()
        _stop_on_signals().wait()


db.add_command(db_upgrade, "init")
db.add_command(db_upgrade, "migrate")


@db.command("current")
def db_current() -> None:
    """Print the schema version of the database."""
    services = build(_settings())
    click.echo(migrate.current_revision(services.engine) or "empty (run `closeloop db upgrade`)")


@main.group()
def catalog() -> None:
    """The SKU catalog."""


@catalog.command("load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def catalog_load(path: Path) -> None:
    """Load a catalog file (TOML); nothing changes unless the whole file is valid."""
    spec = read_catalog(path.read_text(encoding="utf-8"), source=str(path))
    services = build(_settings())
    counts = services.ledger.run(load_catalog, spec, source=str(path))
    click.echo(f"catalog {path}: {counts['added']} added, {counts['updated']} updated, "
               f"{counts['unchanged']} unchanged, {counts['deactivated']} deactivated")


@main.command("timeline")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per event")
def timeline_command(ref: str, as_json: bool) -> None:
    """The timeline of a deal: D-12, 12, a quote number or an invoice number."""
    services = build(_settings())

    def show(session):  # type: ignore[no-untyped-def]
        deal = find_deal(session, ref)
        click.echo(f"{deal.reference} · {deal.customer.name} · quote {deal.quote.number} · "
                   f"stage {deal.stage.value} · owner {deal.owner}", err=as_json)
        for event in timeline(session, deal.id):
            if as_json:
                click.echo(json.dumps({"at": event.occurred_at.isoformat(), "kind": event.kind,
                                       "actor": event.actor, "data": event.data}, ensure_ascii=False))
            else:
                detail = ", ".join(f"{k}={v}" for k, v in event.data.items() if k != "evidence")
                click.echo(f"  {event.occurred_at:%Y-%m-%d %H:%M:%S}Z  {event.kind:<22} {event.actor:<14} {detail}")

    services.ledger.read(show)


@main.command("outbox")
@click.option("--status", type=click.Choice([s.value for s in OutboxStatus]), help="only this status")
def outbox_command(status: str | None) -> None:
    """Side effects waiting, delivered or dead-lettered."""
    services = build(_settings())

    def show(session):  # type: ignore[no-untyped-def]
        for m in outbox_messages(session, OutboxStatus(status) if status else None):
            click.echo(f"{m.id:>6} {m.status.value:<8} {m.kind:<20} {m.stream:<12} attempts={m.attempts} "
                       f"{m.last_error or ''}")

    services.ledger.read(show)


@main.command("run")
def run_command() -> None:
    """The embedded all-in-one process: migrate, drain the outbox, and when Slack is
    configured serve it too (Socket Mode with SLACK_APP_TOKEN, else HTTP on $PORT)."""
    services = _start(migrate_embedded=True, always=True, embedded=True)
    stop = _stop_on_signals()
    with Embedded(services):
        if services.settings.slack_enabled and services.settings.slack_app_token:
            handler = _socket_mode(services)
            handler.connect()
            click.echo("closeloop running: outbox relay + Slack Socket Mode (Ctrl-C to stop)")
            stop.wait()
            handler.close()
        elif services.settings.slack_enabled:
            _serve_http(services, stop, "outbox relay + ")
        else:
            click.echo(f"closeloop running on {_shown(services)}: outbox relay (Ctrl-C to stop)")
            stop.wait()
    click.echo("stopped")


@main.command("relay")
def relay_command() -> None:
    """The outbox relay and the beat schedule in threads, without a broker (the Procfile's
    workers are Celery: `closeloop worker`)."""
    services = _start(migrate_embedded=True, embedded=True)
    stop = _stop_on_signals()
    with Embedded(services):
        click.echo(f"closeloop relay draining the outbox of {_shown(services)} (Ctrl-C to stop)")
        stop.wait()
    click.echo("stopped")


@main.command("web")
def web_command() -> None:
    """Serve HTTP on $PORT: POST /slack/events, GET /healthz and /readyz."""
    services = _start(migrate_embedded=True)
    _serve_http(services, _stop_on_signals(), "")
    click.echo("stopped")


@main.command("bot")
def bot_command() -> None:
    """Serve Slack over Socket Mode (needs SLACK_APP_TOKEN)."""
    services = _start(migrate_embedded=True)
    stop = _stop_on_signals()
    if not (services.settings.slack_enabled and services.settings.slack_app_token):
        # Idle rather than exit: process managers such as honcho stop every process when one exits.
        click.echo("closeloop bot: Socket Mode is off (it needs SLACK_APP_TOKEN, SLACK_BOT_TOKEN and "
                   "SLACK_SIGNING_SECRET); the web process serves Slack over HTTP. Idle until stopped.")
        stop.wait()
        return
    handler = _socket_mode(services)
    handler.connect()
    click.echo("closeloop bot connected over Socket Mode (Ctrl-C to stop)")
    stop.wait()
    handler.close()
    click.echo("stopped")


@main.group()
def roles() -> None:
    """Who may do what in Slack (rep, manager, finance, admin)."""


@roles.command("grant")
@click.argument("principal")
@click.argument("role", type=click.Choice([r.value for r in Role]))
def roles_grant(principal: str, role: str) -> None:
    """Give a Slack user (U…) or user group (S…) a role."""
    services = build(_settings())
    new = services.ledger.run(grant_role, principal=principal, role=Role(role), granted_by="cli")
    click.echo(f"{principal} {'now has' if new else 'already had'} the {role} role")


@roles.command("revoke")
@click.argument("principal")
@click.argument("role", type=click.Choice([r.value for r in Role]))
def roles_revoke(principal: str, role: str) -> None:
    services = build(_settings())
    gone = services.ledger.run(revoke_role, principal=principal, role=Role(role), revoked_by="cli")
    click.echo(f"{principal} {'no longer has' if gone else 'did not have'} the {role} role")


@roles.command("list")
def roles_list() -> None:
    services = build(_settings())
    for grant in services.ledger.read(lambda s: list(s.scalars(select(RoleGrant).order_by(RoleGrant.principal)))):
        click.echo(f"{grant.principal:<14} {grant.role.value:<8} granted by {grant.granted_by} "
                   f"on {grant.granted_at:%Y-%m-%d}")


def _start(*, migrate_embedded: bool, always: bool = False, embedded: bool = False) -> Services:
    """Build the services for a long-running process, which logs JSON lines. SQLite
    (embedded) is migrated on start; PostgreSQL is migrated by the release process, and
    a process started beside it waits for the schema to reach head (up to a minute).
    With BROKER_URL, a commit that writes to the outbox wakes the Celery dispatch, except
    in the processes that drain the outbox themselves (`run`, `relay`)."""
    from closeloop import logs
    logs.setup(verbose=True, json_lines=True)
    settings = _settings()
    if settings.database_url.startswith("sqlite") and (migrate_embedded or always):
        migrate.upgrade(settings.database_url)
    services = build(settings)
    head = migrate.head_revision(settings.database_url)
    current = _wait_for_schema(services, head)
    if current != head:
        raise click.ClickException(f"the database is at schema {current or 'none'}, not {head}: "
                                   "run `closeloop db upgrade` (the Procfile's release process does)")
    apply_role_grants(services)
    if settings.broker_url and not embedded:
        from closeloop.tasks import wake_dispatch_on_commit
        wake_dispatch_on_commit(services)
    return services


def _wait_for_schema(services: Services, head: str | None, seconds: float = 60) -> str | None:
    import time
    deadline = time.monotonic() + seconds
    while True:
        try:
            current = migrate.current_revision(services.engine)
        except DBAPIError:
            current = None
        if current == head or services.settings.database_url.startswith("sqlite") or time.monotonic() > deadline:
            return current
        time.sleep(1)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _shown(services: Services) -> str:
    return make_url(services.settings.database_url).render_as_string(hide_password=True)


def _serve_http(services: Services, stop: threading.Event, also: str) -> None:
    from waitress.server import create_server

    from closeloop.web import WEB_THREADS, web_app
    settings = services.settings
    server = create_server(web_app(services), host=settings.host, port=settings.port, threads=WEB_THREADS,
                           ident="closeloop", clear_untrusted_proxy_headers=True)
    thread = threading.Thread(target=server.run, name="closeloop-web", daemon=True)
    thread.start()
    slack = "Slack on /slack/events, " if settings.slack_enabled else "Slack off (no token), "
    click.echo(f"closeloop running: {also}HTTP on {settings.host}:{settings.port} ({slack}/healthz) "
               f"with {_shown(services)}")
    stop.wait()
    server.close()


def _socket_mode(services: Services):  # type: ignore[no-untyped-def]
    from bot.app import build_app
    from bot.server import socket_mode
    return socket_mode(build_app(services), services)


from closeloop.parse_cli import parse as _parse_group  # noqa: E402  (closeloop parse reply|invoice|quote)

main.add_command(_parse_group)
from closeloop.gaps_cli import register as _register_gaps  # noqa: E402 — `closeloop gaps`, `closeloop usage`
_register_gaps(main)
from closeloop.billing_commands import billing, license_group  # noqa: E402 — registered here, kept apart

main.add_command(billing)
main.add_command(license_group)


@main.command("demo")
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo-out"),
              show_default=True, help="where the database, transcript and artifacts go")
def demo_command(out: Path) -> None:
    """Drive a realistic deal through the whole loop on embedded defaults."""
    from closeloop.demo.scenario import run_demo
    sys.exit(run_demo(out))


# `closeloop render …` (documents) and `closeloop parse reply|invoice|quote` (readers).
from closeloop.parse_cli import parse as _parse_group  # noqa: E402
from closeloop.render_cli import render_group  # noqa: E402

main.add_command(render_group)
main.add_command(_parse_group)
from closeloop.mail_cli import mail as _mail  # noqa: E402 — the email agent's commands
main.add_command(_mail)
from closeloop.money_cli import collect, pay  # noqa: E402 — the money commands live in their own module

main.add_command(collect)
main.add_command(pay)
from closeloop.esign_cli import esign as _esign  # noqa: E402 — registered last, kept in its own module

main.add_command(_esign)
from closeloop.celery_cli import beat_command, worker_command  # noqa: E402 — production on Celery

main.add_command(worker_command)
main.add_command(beat_command)
