"""The grammar of the slash commands: text a person typed -> a typed command, or a
UsageError with the usage and the closest valid form. Pure: no database, no network —
so it runs before Slack's 3-second ack. Names and SKUs are checked against the ledger
afterwards, by the listener.

    /quote new Acme GmbH 25 seats PRO-SEAT @ 40/mo, 1 ONBOARDING discount 10%
    /quote new "3M Europe" in USD 10 x PRO-SEAT valid 45 days terms 14 days
    /quote add Q-2026-0042 5 PRO-SEAT          /quote discount Q-2026-0042 12.5%
    /quote show Q-2026-0042   /quote send Q-2026-0042 [via email|docusign]
    /quote void Q-2026-0042 customer went with a competitor     /quote list
    /deal Acme | Q-2026-0042 | D-12
    /invoice INV-2026-000042 | resend INV-… | paid INV-… [amount] [ref BANK-REF]
    /license Acme | suspend 7 reason… | reinstate 7 reason…
    /collect Acme | statement Acme
    /gaps [mine|all] [rule NAME] [customer NAME]
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal


class UsageError(Exception):
    """The text is not a valid command. `usage` is the command's help; `suggestion` the
    closest valid form of what was typed, when there is one."""

    def __init__(self, message: str, usage: str, suggestion: str | None = None) -> None:
        super().__init__(message)
        self.message, self.usage, self.suggestion = message, usage, suggestion


@dataclass(frozen=True)
class LineSpec:
    sku: str                         # upper-cased as typed; checked against the catalog later
    quantity: Decimal
    unit_price: Decimal | None = None   # a price override, in major units ("40" -> 40.00)
    price_currency: str | None = None   # when written with the price ("€40", "40 EUR")
    per: str | None = None              # "month" / "year" when written ("/mo", "/yr")


@dataclass(frozen=True)
class Help:
    command: str  # "/quote", "/deal", …


# /quote
@dataclass(frozen=True)
class QuoteNew:
    customer: str | None             # None: open the quote modal
    currency: str | None = None
    lines: tuple[LineSpec, ...] = ()
    discount_bp: int | None = None
    valid_days: int | None = None
    terms_days: int | None = None


@dataclass(frozen=True)
class QuoteAddLine:
    quote: str
    line: LineSpec


@dataclass(frozen=True)
class QuoteDiscount:
    quote: str
    discount_bp: int


@dataclass(frozen=True)
class QuoteShow:
    quote: str


@dataclass(frozen=True)
class QuoteSend:
    quote: str
    provider: str | None = None      # "email" or "docusign"; None: the configured default


@dataclass(frozen=True)
class QuoteVoid:
    quote: str
    reason: str


@dataclass(frozen=True)
class QuoteList:
    pass


# /deal, /invoice, /license, /collect, /gaps
@dataclass(frozen=True)
class Lookup:
    command: str  # "/deal", "/invoice", "/license", "/collect"
    query: str    # a customer name, a quote, deal or invoice number


@dataclass(frozen=True)
class InvoiceResend:
    number: str


@dataclass(frozen=True)
class InvoiceMarkPaid:
    number: str
    amount: Decimal | None = None    # None: the whole open balance
    reference: str | None = None


@dataclass(frozen=True)
class LicenseSuspend:
    license_id: int
    reason: str


@dataclass(frozen=True)
class LicenseReinstate:
    license_id: int
    reason: str


@dataclass(frozen=True)
class CollectStatement:
    customer: str


@dataclass(frozen=True)
class GapsList:
    scope: str = "mine"              # "mine" or "all"
    rule: str | None = None
    customer: str | None = None


QuoteCommand = QuoteNew | QuoteAddLine | QuoteDiscount | QuoteShow | QuoteSend | QuoteVoid | QuoteList | Help


@dataclass(frozen=True)
class NameMatch:
    exact: str | None                # the one name meant, when it is clear
    candidates: tuple[str, ...]      # best first; more than one and no exact: ask with a pick-list


def parse_quote(text: str) -> QuoteCommand:
    raise NotImplementedError


def parse_deal(text: str) -> Lookup | Help:
    raise NotImplementedError


def parse_invoice(text: str) -> Lookup | InvoiceResend | InvoiceMarkPaid | Help:
    raise NotImplementedError


def parse_license(text: str) -> Lookup | LicenseSuspend | LicenseReinstate | Help:
    raise NotImplementedError


def parse_collect(text: str) -> Lookup | CollectStatement | Help:
    raise NotImplementedError


def parse_gaps(text: str) -> GapsList | Help:
    raise NotImplementedError


def match_names(query: str, names: Sequence[str], limit: int = 5) -> NameMatch:
    raise NotImplementedError


USAGE: dict[str, str] = {}  # command -> its help text, shown on /x help and with every UsageError
