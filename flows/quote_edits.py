"""Small edits to a quote, each a new version made by `revise_quote`: add one line, or
change the discount, keeping everything else as the current version has it. Plus the
guards a button needs: send only the version the rep was looking at, decide a discount
once, and draft a quote once per request — even when two copies of a request race.

Each edit locks the deal in a statement of its own before the step reads the quote.
`load_deal` locks and loads the graph in one joined SELECT … FOR UPDATE OF deals; on
PostgreSQL a transaction that waited for that lock gets the quote's versions as they
were when its statement began, before the other transaction committed, unless the deal
row itself changed. Locking first makes the step read them after the wait: a second
press finds the first one's version or decision and changes nothing."""
from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from flows.deals import Deal
from flows.errors import InvalidInput
from flows.ledger import Ledger, Tx
from flows.quote_views import deal_for_key
from flows.quotes import QuoteVersion
from flows.steps import (Done, LineRequest, approve_discount, draft_quote, load_deal, reject_discount, revise_quote,
                         send_quote)


def add_quote_line(tx: Tx, deal_id: int, *, key: str, line: LineRequest, actor: str) -> Done:
    """A new version with one more line; the other lines keep their prices."""
    _lock(tx, deal_id)
    current = load_deal(tx, deal_id).quote.current
    return revise_quote(tx, deal_id, key=key, lines=[*_kept(current), line], actor=actor,
                        discount_bp=current.discount_bp, payment_terms_days=current.payment_terms_days)


def change_discount(tx: Tx, deal_id: int, *, key: str, discount_bp: int, actor: str) -> Done:
    """A new version with another discount; the lines stay as they are."""
    _lock(tx, deal_id)
    current = load_deal(tx, deal_id).quote.current
    return revise_quote(tx, deal_id, key=key, lines=_kept(current), actor=actor, discount_bp=discount_bp,
                        payment_terms_days=current.payment_terms_days)


def send_quote_version(tx: Tx, deal_id: int, *, version: int, provider: str, actor: str) -> Done:
    """Send the quote, but only if `version` is still its current one: a button under an
    old preview must not send a version its presser has not seen."""
    _lock(tx, deal_id)
    quote = load_deal(tx, deal_id).quote
    if version != quote.current_version:
        raise InvalidInput(f"this button is for {quote.number} v{version}, but the quote is now at "
                           f"v{quote.current_version}; look at it (/quote show {quote.number}) before sending")
    return send_quote(tx, deal_id, provider=provider, actor=actor)


def approve_discount_once(tx: Tx, deal_id: int, *, version: int, approver: str) -> Done:
    """`approve_discount`; two presses at once approve once."""
    _lock(tx, deal_id)
    return approve_discount(tx, deal_id, version=version, approver=approver)


def reject_discount_once(tx: Tx, deal_id: int, *, version: int, approver: str, reason: str) -> Done:
    """`reject_discount`; two submissions at once reject once."""
    _lock(tx, deal_id)
    return reject_discount(tx, deal_id, version=version, approver=approver, reason=reason)


def draft_quote_once(ledger: Ledger, *, key: str, **draft: Any) -> tuple[int, Done]:
    """Draft a quote for a request; the same request again returns the same deal with
    Done.ALREADY. Two copies racing (a double click) both land on the deal's unique
    origin key: the loser's insert fails and it answers with the winner's deal."""
    try:
        return ledger.run(_draft, key=key, **draft)
    except IntegrityError:
        existing = ledger.read(deal_for_key, key)
        if existing is None:
            raise
        return existing, Done.ALREADY


def _draft(tx: Tx, *, key: str, **draft: Any) -> tuple[int, Done]:
    written = tx.outbox_written
    deal_id = draft_quote(tx, key=key, **draft)
    # A fresh draft announces itself (an outbox row); a replay returns the deal and writes nothing.
    return deal_id, Done.ACTED if tx.outbox_written > written else Done.ALREADY


def _lock(tx: Tx, deal_id: int) -> None:
    tx.get(Deal, deal_id)  # the deal row alone, locked; load_deal then reads the graph after the wait


def _kept(version: QuoteVersion) -> list[LineRequest]:
    return [LineRequest(sku=l.sku.code, quantity=l.quantity, unit_amount=l.unit_amount, description=l.description)
            for l in version.lines]
