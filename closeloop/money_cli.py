"""`closeloop collect …` and `closeloop pay …`: the money clock and the money commands."""
from __future__ import annotations

from datetime import date

import click

from closeloop.bootstrap import build
from closeloop.config import load_settings
from closeloop.money import money_tick
from flows.charges import register_card
from flows.collections import open_payment_link, settle_payment_link
from flows.money import Money


@click.group()
def collect() -> None:
    """Charges and collections, day by day (the beat runs `collect run` daily)."""


@collect.command("run")
@click.option("--as-of", "as_of", type=click.DateTime(["%Y-%m-%d"]), help="the collections day (default: today)")
@click.option("--drain/--no-drain", default=True, help="deliver the outbox afterwards (charges, emails)")
def collect_run(as_of, drain: bool) -> None:  # type: ignore[no-untyped-def]
    """Start due charges, reconcile unknown outcomes, send reminders and the overdue
    ladder, apply the suspension policy. Running it twice in a day does nothing new."""
    services = build(load_settings())
    day: date | None = as_of.date() if as_of else None
    counts = money_tick(services.money, day)
    delivered = services.relay.drain() if drain else 0
    click.echo(", ".join(f"{k} {v}" for k, v in counts.items()) + f"; {delivered} outbox messages delivered")


@click.group()
def pay() -> None:
    """Payment methods and payment links."""


@pay.command("card")
@click.argument("customer_id", type=int)
@click.argument("payment_method")
def pay_card(customer_id: int, payment_method: str) -> None:
    """Put a card (a Stripe PaymentMethod id, pm_…) on file for a customer."""
    services = build(load_settings())
    label = register_card(services.ledger, services.money.gateway, customer_id, payment_method)
    click.echo(f"customer {customer_id}: {label} on file; open invoices are charged on the next `collect run`")


@pay.command("link")
@click.argument("customer_id", type=int)
@click.argument("currency")
def pay_link(customer_id: int, currency: str) -> None:
    """One payment link for all of a customer's open invoices in CURRENCY, emailed to them."""
    services = build(load_settings())
    link = open_payment_link(services.ledger, services.money.gateway, customer_id, currency.upper())
    click.echo(f"{link.reference}: {Money(link.amount, link.currency)} for "
               f"{', '.join(i['number'] for i in link.invoices)} — {link.url or 'bank transfer, reference ' + link.reference}")


@pay.command("transfer")
@click.argument("link_reference")
@click.argument("amount")
@click.argument("bank_reference")
def pay_transfer(link_reference: str, amount: str, bank_reference: str) -> None:
    """Record a bank transfer that paid a payment link (PL-…) by its reference."""
    services = build(load_settings())
    from flows.collections import PaymentLink
    from sqlalchemy import select
    currency = services.ledger.read(lambda s: s.scalar(select(PaymentLink.currency).where(
        PaymentLink.reference == link_reference)))
    if currency is None:
        raise click.ClickException(f"there is no payment link {link_reference}")
    done = services.ledger.run(settle_payment_link, amount=Money.parse(amount, currency).amount,
                               payment_ref=bank_reference, link_reference=link_reference, actor="cli")
    click.echo(f"{link_reference}: {done.value}")
