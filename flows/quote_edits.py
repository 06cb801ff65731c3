"""Small edits to a quote, each a new version made by `revise_quote`: add one line, or
change the discount, keeping everything else as the current version has it. Plus the
guards a button needs: send only the version the rep was looking at, decide a discount
once, and draft a quote once per request — even when two copies of a request race.
(`load_deal` takes the deal's lock before it reads the quote, so a second press that
waited for the first finds its version or decision and changes nothing.)"""
from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from flows.errors import InvalidInput
from flows.ledger import Ledger, Tx
from flows.quote_views import deal_for_key
from flows.quotes import QuoteVersion
from flows.steps import (Done, LineRequest, draft_quote, load_deal, revise_quote,
                         send_quote)


def add_quote_line(tx: Tx, deal_id: int, *, key: str, line: LineRequest, actor: str) -> Done:
    """A new version with one more line; the other lines keep their prices."""
    current = load_deal(tx, deal_id).quote.current
    return revise_quote(tx, deal_id, key=key, lines=[*_kept(current), line], actor=actor,
                        discount_bp=current.discount_bp, payment_terms_days=current.payment_terms_days)


def change_discount(tx: Tx, deal_id: int, *, key: str, discount_bp: int, actor: str) -> Done:
    """A new version with another discount; the lines stay as they are."""
    current = load_deal(tx, deal_id).quote.current
    return revise_quote(tx, deal_id, key=key, lines=_kept(current), actor=actor, discount_bp=discount_bp,
                        payment_terms_days=current.payment_terms_days)


def send_quote_version(tx: Tx, deal_id: int, *, version: int, provider: str, actor: str) -> Done:
    """Send the quote, but only if `version` is still its current one: a button under an
    old preview must not send a version its presser has not seen."""
    quote = load_deal(tx, deal_id).quote
    if version != quote.current_version:
        raise InvalidInput(f"this button is for {quote.number} v{version}, but the quote is now at "
                           f"v{quote.current_version}; look at it (/quote show {quote.number}) before sending")
    return send_quote(tx, deal_id, provider=provider, actor=actor)


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


def _kept(version: QuoteVersion) -> list[LineRequest]:
    return [LineRequest(sku=l.sku.code, quantity=l.quantity, unit_amount=l.unit_amount, description=l.description)
            for l in version.lines]
