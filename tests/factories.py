"""Arranging a ledger the way the business would: a catalog, a customer, a deal at a
given stage. Every arrangement goes through the real steps."""
from __future__ import annotations

import itertools
from decimal import Decimal

from sqlalchemy import func, select

from flows.catalog_file import read_catalog
from flows.deals import Deal, Stage
from flows.ledger import Ledger
from flows.models import Base
from flows.parties import ContactRole
from flows.steps import (ContactRequest, LineRequest, add_customer, draft_quote, issue_invoice, issue_license,
                         load_catalog, record_signature, send_quote, start_billing, win_deal)

CATALOG = """
currencies = ["EUR", "USD", "JPY"]
[tax_categories]
standard = "20"
zero = "0"

[[sku]]
code = "SEAT"
name = "Pro seat"
kind = "recurring"
unit = "seat"
interval = "month"
licensable = true
features = ["sso"]
tax_category = "standard"
prices = { EUR = "40.00", USD = "45.00", JPY = "6000" }

[[sku]]
code = "SETUP"
name = "Onboarding"
kind = "one_off"
unit = "project"
tax_category = "standard"
prices = { EUR = "1500.00", USD = "1650.00", JPY = "230000" }

[[sku]]
code = "ANNUAL"
name = "Annual platform fee"
kind = "recurring"
unit = "workspace"
interval = "year"
licensable = true
tax_category = "zero"
prices = { EUR = "1200.00", USD = "1300.00", JPY = "180000" }
"""

_keys = itertools.count(1)


def seed(ledger: Ledger) -> int:
    """Catalog and one customer with signer and billing contacts; returns the customer id."""
    ledger.run(load_catalog, read_catalog(CATALOG, "test catalog"), source="test catalog")
    return ledger.run(add_customer, name="Acme GmbH", country="DE", currency="EUR", language="de", contacts=(
        ContactRequest("Ada Signer", "ada@acme.example", ContactRole.SIGNER),
        ContactRequest("Bob Billing", "billing@acme.example", ContactRole.BILLING)))


def quoted_deal(ledger: Ledger, customer_id: int, *, lines: list[LineRequest] | None = None,
                currency: str = "EUR", discount_bp: int = 0) -> int:
    return ledger.run(draft_quote, key=f"test:{next(_keys)}", customer_id=customer_id, owner="U_REP",
                      currency=currency, discount_bp=discount_bp,
                      lines=lines or [LineRequest("SEAT", Decimal(10)), LineRequest("SETUP", Decimal(1))])


def deal_at(ledger: Ledger, customer_id: int, stage: Stage, *, provider: str = "docusign", **kwargs) -> int:
    """A deal walked one step at a time (each alone, followers queued, not run) up to `stage`.
    Sent through DocuSign by default: without DocuSign configured its envelope waits in
    the file sink, so the tests' own mail is the only mail (provider="email" emails it)."""
    deal_id = quoted_deal(ledger, customer_id, **kwargs)
    walk = [
        (Stage.SENT, lambda: ledger.run_alone(send_quote, deal_id, provider=provider, actor="U_REP")),
        (Stage.SIGNED, lambda: ledger.run_alone(record_signature, deal_id, version=1, signer="ada@acme.example",
                                          evidence={"method": "test"})),
        (Stage.WON, lambda: ledger.run_alone(win_deal, deal_id)),
        (Stage.INVOICED, lambda: ledger.run_alone(issue_invoice, deal_id)),
        (Stage.LICENSED, lambda: ledger.run_alone(issue_license, deal_id)),
        (Stage.BILLING_ACTIVE, lambda: ledger.run_alone(start_billing, deal_id)),
    ]
    if stage is Stage.QUOTED:
        return deal_id
    for reached, action in walk:
        action()
        if reached is stage:
            return deal_id
    raise ValueError(f"cannot walk a deal to {stage}")


def stage_of(ledger: Ledger, deal_id: int) -> Stage:
    return ledger.read(lambda s: s.get(Deal, deal_id).stage)


def row_counts(ledger: Ledger) -> dict[str, int]:
    """Rows in every ledger table: the fingerprint of 'nothing changed'."""
    def count(session):
        return {t.name: session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}
    return ledger.read(count)
