"""`closeloop mail …`: the IMAP watcher process, the triage list, and the contact flags
(bouncing, unsubscribed) that keep mail from an address."""
from __future__ import annotations

import getpass
import signal
import threading

import click

from closeloop.bootstrap import build
from closeloop.config import load_settings
from flows.errors import LedgerError
from flows.mail import clear_contact_flags, flagged_contacts, triage_list


@click.group()
def mail() -> None:
    """The email agent: watch the inboxes, list what needs a person."""


@mail.command("watch")
@click.option("--once", is_flag=True, help="fetch what is new in every mailbox, then exit")
def watch_command(once: bool) -> None:
    """Watch every configured mailbox (CLOSELOOP_MAILBOXES or IMAP_*) with IDLE."""
    from closeloop import migrate
    from handlers.mail_watch import close, watch, watchers
    settings = load_settings()
    if settings.database_url.startswith("sqlite"):
        migrate.upgrade(settings.database_url)
    services = build(settings)
    if settings.broker_url:
        from closeloop.tasks import wake_dispatch_on_commit
        wake_dispatch_on_commit(services)
    found = watchers(services)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    if not found:
        click.echo("no mailbox configured (set CLOSELOOP_MAILBOXES or IMAP_HOST): nothing to watch")
        if not once:  # idle rather than exit: honcho and foreman stop every process when one exits
            stop.wait()
        return
    try:
        if once:
            for watcher in found:
                click.echo(f"{watcher.mailbox.name}: {watcher.sync_once()} fetched")
            return
        threads = watch(services, stop, found)
        click.echo(f"watching {', '.join(w.mailbox.name for w in found)} (Ctrl-C to stop)")
        stop.wait()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        close(found)
    click.echo("stopped")


@mail.command("triage")
def triage_command() -> None:
    """Mail that matched no deal, or needs review, with the reason."""
    services = build(load_settings())
    rows = services.ledger.read(triage_list)
    if not rows:
        click.echo("nothing to triage")
    for row in rows:
        excerpt = " ".join(row.text.split())[:100]
        click.echo(f"#{row.id} {row.status.value:7} {row.received_at:%Y-%m-%d %H:%M} {row.from_address or '?'} "
                   f"\"{row.subject[:60]}\" — {row.reason}\n    {excerpt}")
    services.close()


@mail.command("flags")
def flags_command() -> None:
    """Addresses mail is not sent to (bouncing, unsubscribed), with the reason."""
    services = build(load_settings())
    rows = services.ledger.read(flagged_contacts)
    services.close()
    if not rows:
        click.echo("no address is flagged")
    for row in rows:
        click.echo(f"{row.email} {row.flag} since {row.flagged_at:%Y-%m-%d %H:%M}: {' '.join(row.reason.split())[:120]}")


@mail.command("clear")
@click.argument("address")
@click.option("--flag", type=click.Choice(["bouncing", "unsubscribed"]), default=None,
              help="lift only this flag (default: every flag of the address)")
@click.option("--reason", required=True, help="why (kept on the timeline): the mailbox was fixed, the customer opted in")
@click.option("--by", "actor", default=None, help="who lifts it (default: the login name)")
def clear_command(address: str, flag: str | None, reason: str, actor: str | None) -> None:
    """Send to ADDRESS again: lift its bouncing and/or unsubscribed flag."""
    services = build(load_settings())
    try:
        lifted = services.ledger.run(clear_contact_flags, address, flag=flag, actor=actor or getpass.getuser(),
                                     reason=reason)
    except LedgerError as error:
        raise click.ClickException(str(error)) from None
    finally:
        services.close()
    click.echo(f"{address.strip().lower()}: {' and '.join(lifted)} lifted; mail goes to it again from the next message")
