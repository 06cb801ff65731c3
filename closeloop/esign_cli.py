"""`closeloop esign …`: the DocuSign reconciler by hand (cron, or after an outage)."""
from __future__ import annotations

import click


@click.group()
def esign() -> None:
    """E-signature (DocuSign)."""


@esign.command("reconcile")
def esign_reconcile() -> None:
    """Ask DocuSign about envelopes still unsigned after CLOSELOOP_ESIGN_RECONCILE_MINUTES
    and apply what changed (a signature whose Connect notice never came closes its deal)."""
    from closeloop.cli import _start
    services = _start(migrate_embedded=True)
    if services.esign is None:
        raise click.ClickException("DocuSign is not configured (DOCUSIGN_INTEGRATION_KEY, DOCUSIGN_USER_ID, "
                                   "DOCUSIGN_PRIVATE_KEY or DOCUSIGN_PRIVATE_KEY_FILE)")
    counts = services.esign.reconcile()
    services.relay.drain()  # what the changes queued (Slack posts, the pipeline) goes out now
    click.echo(f"reconciled: {counts['polled']} envelope(s) polled, {counts['changed']} changed")
    if counts.get("deferred"):
        click.echo(f"DocuSign asked us to wait: the rest is polled in {counts['retry_in']} s or later")
