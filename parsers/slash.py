"""The grammar of the slash commands: text a person typed -> a typed command, or a
UsageError with the usage and the closest valid form. Pure: no database, no network —
so it runs before Slack's 3-second ack. Names and SKUs are checked against the ledger
afterwards, by the listener.

    /quote new Acme GmbH 25 seats PRO-SEAT @ 40/mo, 1 ONBOARDING discount 10%
    /quote new "3M Europe" in USD 10 x PRO-SEAT valid 45 days terms 14 days
    /quote add Q-2026-0042 5 PRO-SEAT          /quote discount Q-2026-0042 12.5%
    /quote show Q-2026-0042   /quote send Q-2026-0042 [via email|docusign]
    /quote void Q-2026-0042 customer went with a competitor     /quote list
    /quote signed Q-2026-0042 signed on paper, scan in the CRM  (managers)
    /deal Acme | Q-2026-0042 | D-12
    /invoice INV-2026-000042 | resend INV-… | paid INV-… [amount] [ref BANK-REF]
    /license Acme | suspend 7 reason… | reinstate 7 reason…
    /collect Acme | statement Acme
    /gaps [mine|all] [rule NAME] [customer NAME]

The grammar forgives what people type fast: subcommands in any case, extra spaces, help /
? / -h / nothing for the usage, a misspelt subcommand answered with the corrected form.
  money       €40  40€  40 EUR  EUR 40  $45.50  £10  ¥4000  40 zł  PLN 40  ₪40  1,500.00
              1.500,00 EUR, with /mo /m /month per month monthly  or  /yr /y /year per year
              (a comma before exactly three digits groups thousands; before one or two it
              is a decimal comma). Decimal only, never float.
  quantity    25 x SKU | 25x SKU | SKU x 25 | 25 SKU | 25 seats SKU | 2.5 GB SKU (the unit
              word is ignored); SKUs upper-cased; a line's price follows @ or at.
  percent     10%  10 %  12.5%  10 percent -> basis points; 0..100 %.
  lines       separated by , ; + or "and"; clauses: in CUR, discount N%, N% off,
              valid [for] N days|weeks, terms N days, terms net N, net N.
  customer    the words before the first line or clause; "quoted" when it holds digits
              ("3M Europe"), or ended by a colon: /quote new Acme: 5 x PRO-SEAT.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from rapidfuzz import fuzz
from rapidfuzz.distance import OSA


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
class QuoteSigned:
    """A signature received outside closeloop (on paper, in another tool), recorded by
    a manager with a note saying where it is."""
    quote: str
    note: str


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


QuoteCommand = (QuoteNew | QuoteAddLine | QuoteDiscount | QuoteShow | QuoteSend | QuoteVoid | QuoteSigned
                | QuoteList | Help)


@dataclass(frozen=True)
class NameMatch:
    exact: str | None                # the one name meant, when it is clear
    candidates: tuple[str, ...]      # best first; more than one and no exact: ask with a pick-list


# --- public entry points --------------------------------------------------------------
# Each parse_* takes the text Slack sends after the command ("/quote new Acme …" arrives
# as "new Acme …"); a pasted leading "/quote" is dropped too.


def parse_quote(text: str) -> QuoteCommand:
    """/quote new|add|discount|show|send|void|list … (a bare quote number shows it)."""
    body = _prepare(text, "/quote")
    if body is None:
        return Help("/quote")
    first, rest = _split_first(body)
    sub = _QUOTE_ALIASES.get(first.lower(), first.lower())
    if sub in _QUOTE_SUBS and _is_help(rest):
        return Help("/quote")
    if sub == "new":
        return _quote_new(rest)
    if sub == "add":
        return _quote_add(rest)
    if sub == "discount":
        return _quote_discount(rest)
    if sub == "show":
        return QuoteShow(_only_quote(rest, "show"))
    if sub == "send":
        return _quote_send(rest)
    if sub == "void":
        return _quote_void(rest)
    if sub == "signed":
        return _quote_signed(rest)
    if sub == "list":
        if rest:
            raise _err("/quote", f"/quote list takes nothing after it (got '{rest}')", "/quote list")
        return QuoteList()
    if not rest and _REF_LIKE.fullmatch(first):
        return QuoteShow(_quote_ref(first, "/quote"))
    close = _closest(sub, _QUOTE_SUBS)
    if close is not None:
        raise _err("/quote", f"'{first}' is not a /quote subcommand; did you mean '{close}'?",
                   _join("/quote", close, rest))
    suggestion = None
    try:
        guess = _quote_new(body)
    except UsageError:
        guess = None
    if isinstance(guess, QuoteNew) and guess.lines:
        suggestion = _join("/quote", "new", body)
    raise _err("/quote", f"'{first}' is not a /quote subcommand "
                         f"(new, add, discount, show, send, void, list)", suggestion)


def parse_deal(text: str) -> Lookup | Help:
    """/deal <customer | quote | deal number>."""
    body = _prepare(text, "/deal")
    if body is None:
        return Help("/deal")
    return Lookup("/deal", _query(body))


def parse_invoice(text: str) -> Lookup | InvoiceResend | InvoiceMarkPaid | Help:
    """/invoice <number> | resend <number> | paid <number> [amount] [ref <reference>]."""
    body = _prepare(text, "/invoice")
    if body is None:
        return Help("/invoice")
    first, rest = _split_first(body)
    sub = first.lower()
    if sub == "mark" and rest.lower().split(" ", 1)[0] == "paid":
        sub, rest = "paid", _split_first(rest)[1]
    sub = _INVOICE_ALIASES.get(sub, sub)
    if sub in ("resend", "paid", "show") and _is_help(rest):
        return Help("/invoice")
    if sub == "resend":
        return InvoiceResend(_only_ref(rest, "/invoice", "resend", "invoice", "INV-2026-000042"))
    if sub == "paid":
        return _invoice_paid(rest)
    if sub == "show" and rest:
        return Lookup("/invoice", _query(rest))
    _refuse_subcommand_typo("/invoice", first, rest, ("resend", "paid"))
    return Lookup("/invoice", _query(body))


def parse_license(text: str) -> Lookup | LicenseSuspend | LicenseReinstate | Help:
    """/license <customer> | suspend <id> <reason…> | reinstate <id> <reason…>."""
    body = _prepare(text, "/license")
    if body is None:
        return Help("/license")
    first, rest = _split_first(body)
    sub = _LICENSE_ALIASES.get(first.lower(), first.lower())
    if sub in ("suspend", "reinstate"):
        if _is_help(rest):
            return Help("/license")
        license_id, reason = _license_id_and_reason(rest, sub)
        if sub == "suspend":
            return LicenseSuspend(license_id, reason)
        return LicenseReinstate(license_id, reason)
    _refuse_subcommand_typo("/license", first, rest, ("suspend", "reinstate"))
    return Lookup("/license", _query(body))


def parse_collect(text: str) -> Lookup | CollectStatement | Help:
    """/collect <customer> | statement <customer>."""
    body = _prepare(text, "/collect")
    if body is None:
        return Help("/collect")
    first, rest = _split_first(body)
    if first.lower() in ("statement", "stmt", "soa"):
        if _is_help(rest):
            return Help("/collect")
        customer = _unquote(rest)
        if not customer:
            raise _err("/collect", "whose statement? e.g. /collect statement Acme")
        return CollectStatement(customer)
    _refuse_subcommand_typo("/collect", first, rest, ("statement",))
    return Lookup("/collect", _query(body))


def parse_gaps(text: str) -> GapsList | Help:
    """/gaps [mine|all] [rule NAME] [customer NAME], in any order; mine by default."""
    body = _prepare(text, "/gaps")
    if body is None:
        return Help("/gaps")
    tokens = _quoted_tokens(body)
    scope: str | None = None
    rule: str | None = None
    customer: str | None = None
    i = 0
    while i < len(tokens):
        word, quoted = tokens[i]
        key = None if quoted else _GAPS_KEYS.get(word.lower().rstrip(":"))
        if key in ("mine", "all"):
            if scope is not None and scope != key:
                raise _err("/gaps", "choose one of mine or all", _join("/gaps", *_raw(tokens[:i])))
            scope, i = key, i + 1
        elif key == "rule":
            j = i + 1
            while j < len(tokens) and (tokens[j][1] or _GAPS_KEYS.get(tokens[j][0].lower().rstrip(":")) is None):
                j += 1
            if j == i + 1:
                raise _err("/gaps", "which rule? e.g. /gaps rule missing-po")
            if rule is not None:
                raise _err("/gaps", "give one rule")
            rule, i = " ".join(t for t, _ in tokens[i + 1:j]), j
        elif key == "customer":
            # a quoted name is one token; an unquoted one runs to "rule" or the end
            j = i + 1
            if j < len(tokens) and tokens[j][1]:
                j += 1
            else:
                while j < len(tokens) and (tokens[j][1] or _GAPS_KEYS.get(tokens[j][0].lower().rstrip(":")) != "rule"):
                    j += 1
            if j == i + 1:
                raise _err("/gaps", "which customer? e.g. /gaps customer Acme")
            if customer is not None:
                raise _err("/gaps", "give one customer")
            customer, i = " ".join(t for t, _ in tokens[i + 1:j]), j
        else:
            before, after = _raw(tokens[:i]), _raw(tokens[i + 1:])
            close = None if quoted else _closest(word.lower(), tuple(_GAPS_KEYS))
            if close is not None:
                fixed = _GAPS_KEYS[close]
                suggestion = _join("/gaps", *before, fixed, *after)
                raise _err("/gaps", f"'{word}' is not a /gaps option; did you mean '{fixed}'?", suggestion)
            raise _err("/gaps", f"could not read '{word}' (options: mine, all, rule NAME, customer NAME)",
                       _join("/gaps", *before, "customer", word, *after))
    return GapsList(scope=scope or "mine", rule=rule, customer=customer)


def match_names(query: str, names: Sequence[str], limit: int = 5) -> NameMatch:
    """The name(s) in `names` that `query` means, ignoring case, accents, punctuation and
    company suffixes (GmbH, Ltd, Inc, Sp. z o.o., SA, BV, …).

    One name is meant (exact=that name) when the query equals it, when exactly one name
    starts with the query (two letters or more), or when exactly one name is a close
    fuzzy match (rapidfuzz WRatio >= 75) or one is clearly ahead of the rest (>= 85 and
    10 points ahead). Otherwise the close names are returned best first, at most `limit`.
    """
    unique = list(dict.fromkeys(n for n in names if isinstance(n, str) and n.strip()))
    q_full = _fold(query or "")
    q_core = _core(q_full)
    if not q_full or not unique or limit <= 0:
        return NameMatch(None, ())
    fulls = [_fold(n) for n in unique]
    cores = [_core(f) for f in fulls]

    equal = [i for i, f in enumerate(fulls) if f == q_full]
    if len(equal) == 1:
        return _one(unique[equal[0]])
    if len(equal) > 1:
        return NameMatch(None, tuple(unique[i] for i in equal[:limit]))

    scores = [max(fuzz.WRatio(q_core, c), fuzz.WRatio(q_full, f)) for c, f in zip(cores, fulls)]

    def best_first(indices: list[int]) -> list[int]:
        return sorted(indices, key=lambda i: (cores[i] != q_core, -scores[i], i))

    prefixed = [i for i, (c, f) in enumerate(zip(cores, fulls)) if c.startswith(q_core) or f.startswith(q_full)]
    if len(prefixed) == 1 and len(q_core) >= 2:
        return _one(unique[prefixed[0]])
    if prefixed:
        fuzzy = [i for i in best_first(list(range(len(unique)))) if scores[i] >= _CUTOFF and i not in prefixed]
        ordered = best_first(prefixed) + fuzzy
        return NameMatch(None, tuple(unique[i] for i in ordered[:limit]))

    hits = sorted((i for i in range(len(unique)) if scores[i] >= _CUTOFF), key=lambda i: (-scores[i], i))
    if not hits:
        return NameMatch(None, ())
    if len(hits) == 1 or (scores[hits[0]] >= _CLEAR and scores[hits[0]] - scores[hits[1]] >= _MARGIN):
        return _one(unique[hits[0]])
    return NameMatch(None, tuple(unique[i] for i in hits[:limit]))


USAGE: dict[str, str] = {  # command -> its help text, shown on /x help and with every UsageError
    "/quote": "\n".join([
        "*/quote* — build and send quotes",
        "`/quote new <customer> [in CUR] <lines> [discount N%] [valid N days] [terms N days]`"
        "  e.g. `/quote new Acme GmbH 25 seats PRO-SEAT @ 40/mo, 1 ONBOARDING discount 10%`",
        "    a line: `25 x SKU`, `SKU x 25` or `25 seats SKU`, optionally `@ €40/mo`; "
        "lines are separated by `,` `;` `+` or `and`; a customer with digits goes in quotes: `\"3M Europe\"`",
        "`/quote new [customer]` (opens the quote form)  e.g. `/quote new Acme`",
        "`/quote add <quote> <line>`  e.g. `/quote add Q-2026-0042 5 x PRO-SEAT @ 38/mo`",
        "`/quote discount <quote> <N>%`  e.g. `/quote discount Q-2026-0042 12.5%`",
        "`/quote show <quote>`  e.g. `/quote show Q-2026-0042`",
        "`/quote send <quote> [via email|docusign]`  e.g. `/quote send Q-2026-0042 via docusign`",
        "`/quote void <quote> <reason>`  e.g. `/quote void Q-2026-0042 customer went with a competitor`",
        "`/quote signed <quote> <where the signed copy is>` (managers; a signature received outside closeloop)"
        "  e.g. `/quote signed Q-2026-0042 signed on paper, scan filed in the CRM`",
        "`/quote list`  e.g. `/quote list`",
    ]),
    "/deal": "\n".join([
        "*/deal* — find a deal and its thread",
        "`/deal <customer | quote | deal number>`  e.g. `/deal Acme`, `/deal Q-2026-0042`, `/deal D-12`",
    ]),
    "/invoice": "\n".join([
        "*/invoice* — invoices",
        "`/invoice <number>`  e.g. `/invoice INV-2026-000042`",
        "`/invoice resend <number>`  e.g. `/invoice resend INV-2026-000042`",
        "`/invoice paid <number> [amount] [ref <reference>]`  e.g. `/invoice paid INV-2026-000042 1,500.00 ref BANK-7781`",
    ]),
    "/license": "\n".join([
        "*/license* — licenses",
        "`/license <customer>`  e.g. `/license Acme`",
        "`/license suspend <id> <reason>`  e.g. `/license suspend 7 invoice 60 days overdue`",
        "`/license reinstate <id> <reason>`  e.g. `/license reinstate 7 paid in full`",
    ]),
    "/collect": "\n".join([
        "*/collect* — collections",
        "`/collect <customer>`  e.g. `/collect Acme`",
        "`/collect statement <customer>`  e.g. `/collect statement Acme`",
    ]),
    "/gaps": "\n".join([
        "*/gaps* — open gaps in the order-to-cash loop",
        "`/gaps [mine|all] [rule NAME] [customer NAME]` (mine by default)",
        "  e.g. `/gaps`, `/gaps all`, `/gaps all rule missing-po`, `/gaps customer Acme`",
    ]),
}


# --- /quote subcommands ---------------------------------------------------------------

_QUOTE_SUBS = ("new", "add", "discount", "show", "send", "void", "signed", "list")
_QUOTE_ALIASES = {"create": "new", "view": "show", "cancel": "void", "ls": "list"}
_INVOICE_ALIASES = {"pay": "paid", "mark-paid": "paid", "markpaid": "paid", "re-send": "resend",
                    "find": "show", "open": "show"}
_LICENSE_ALIASES = {"unsuspend": "reinstate", "restore": "reinstate"}
_GAPS_KEYS = {"mine": "mine", "me": "mine", "my": "mine", "all": "all", "everyone": "all",
              "rule": "rule", "customer": "customer", "client": "customer", "for": "customer"}
_PROVIDERS = {"email": "email", "e-mail": "email", "mail": "email", "docusign": "docusign"}


class _BarePercent(UsageError):
    """A discount written without % ("discount 10"): refused, with the % form suggested."""

    def __init__(self, message: str, number: str) -> None:
        super().__init__(message, USAGE["/quote"])
        self.number = number


def _quote_new(rest: str) -> QuoteNew:
    original = rest
    if not rest:
        return QuoteNew(customer=None)
    match = re.match(r"for\s+(?=\S)", rest, re.I)
    if match:
        rest = rest[match.end():]
    customer, body = _take_customer(_spaced(rest) if rest[:1] not in _OPEN_QUOTES else rest)
    body = _spaced(body)
    if not customer:
        raise _err("/quote", "which customer? Put the customer first: /quote new Acme 25 x PRO-SEAT "
                             "(a name that starts with a number goes in quotes: \"3M Europe\")")
    spec = _NewSpec()
    try:
        for segment in _segments(body):
            _read_segment(segment, spec)
    except _BarePercent as bare:
        fixed = re.sub(rf"(discount\s+(?:of\s+|by\s+)?){re.escape(bare.number)}(?![\d.,%])", rf"\g<1>{bare.number}%",
                       original, count=1, flags=re.I)
        raise _err("/quote", bare.message, _join("/quote new", fixed) if fixed != original else None) from None
    line_currencies = sorted({ln.price_currency for ln in spec.lines if ln.price_currency})
    if len(line_currencies) > 1:
        raise _err("/quote", f"prices in {' and '.join(line_currencies)}: a quote has one currency")
    if spec.currency and line_currencies and line_currencies[0] != spec.currency:
        raise _err("/quote", f"the quote is in {spec.currency} but a price is in {line_currencies[0]}")
    return QuoteNew(customer=customer, currency=spec.currency, lines=tuple(spec.lines),
                    discount_bp=spec.discount_bp, valid_days=spec.valid_days, terms_days=spec.terms_days)


def _quote_add(rest: str) -> QuoteAddLine:
    tokens = _spaced(rest).split()
    if len(tokens) >= 3 and tokens[-2].lower() == "to" and _REF_LIKE.fullmatch(tokens[-1]):
        tokens = [tokens[-1], *tokens[:-2]]          # "/quote add 5 x PRO-SEAT to Q-2026-0042"
    if not tokens:
        raise _err("/quote", "which quote, and what line? e.g. /quote add Q-2026-0042 5 x PRO-SEAT")
    quote = _quote_ref(tokens[0].rstrip(":"), "/quote")
    line_text = " ".join(tokens[1:])
    if not line_text:
        raise _err("/quote", f"what should be added to {quote}? e.g. /quote add {quote} 5 x PRO-SEAT")
    segments = _segments(line_text)
    if len(segments) > 1:
        raise _err("/quote", "add one line at a time", _join("/quote add", quote, segments[0]))
    return QuoteAddLine(quote=quote, line=_parse_line(segments[0].split()))


def _quote_discount(rest: str) -> QuoteDiscount:
    tokens = rest.split()
    if not tokens:
        raise _err("/quote", "which quote, and how much? e.g. /quote discount Q-2026-0042 10%")
    if len(tokens) >= 2 and _PERCENT_TEXT.fullmatch(tokens[0]) and _REF_LIKE.fullmatch(tokens[-1]):
        tokens = [tokens[-1], *tokens[:-1]]          # "/quote discount 10% Q-2026-0042"
    quote = _quote_ref(tokens[0], "/quote")
    amount = tokens[1:]
    if amount and amount[0].lower() in ("by", "of", "to", "="):
        amount = amount[1:]
    if not amount:
        raise _err("/quote", f"how much discount? e.g. /quote discount {quote} 10%")
    text = " ".join(amount)
    if _NUMBER_TEXT.fullmatch(text):
        raise _err("/quote", f"write the discount as a percentage: {text}%",
                   _join("/quote discount", quote, text + "%"))
    return QuoteDiscount(quote=quote, discount_bp=_parse_percent(text, "/quote"))


def _quote_send(rest: str) -> QuoteSend:
    tokens = rest.split()
    if not tokens:
        raise _err("/quote", "which quote? e.g. /quote send Q-2026-0042")
    quote = _quote_ref(tokens[0], "/quote")
    more = tokens[1:]
    if more and more[0].lower() in ("via", "by", "with", "using", "over", "through"):
        more = more[1:]
    if not more:
        return QuoteSend(quote=quote)
    if len(more) == 1 and more[0].lower() in _PROVIDERS:
        return QuoteSend(quote=quote, provider=_PROVIDERS[more[0].lower()])
    close = _closest(more[0].lower(), ("email", "docusign")) if len(more) == 1 else None
    raise _err("/quote", f"send via email or docusign (got '{' '.join(more)}')",
               _join("/quote send", quote, "via", close) if close else None)


def _quote_void(rest: str) -> QuoteVoid:
    tokens = rest.split()
    if not tokens:
        raise _err("/quote", "which quote, and why? e.g. /quote void Q-2026-0042 customer went with a competitor")
    quote = _quote_ref(tokens[0].rstrip(":"), "/quote")
    reason = " ".join(tokens[1:]).lstrip(":-–— ").strip()
    if reason.lower().startswith(("reason:", "because:")):
        reason = reason.split(":", 1)[1].strip()
    if not reason:
        raise _err("/quote", f"voiding needs a reason: /quote void {quote} <why>")
    return QuoteVoid(quote=quote, reason=reason)


def _quote_signed(rest: str) -> QuoteSigned:
    tokens = rest.split()
    if not tokens:
        raise _err("/quote", "which quote, and where is the signed copy? e.g. "
                             "/quote signed Q-2026-0042 signed on paper, scan in the CRM")
    quote = _quote_ref(tokens[0].rstrip(":"), "/quote")
    note = " ".join(tokens[1:]).lstrip(":-–— ").strip()
    if not note:
        raise _err("/quote", f"say where the signed copy is: /quote signed {quote} <note>")
    return QuoteSigned(quote=quote, note=note)


def _only_quote(rest: str, sub: str) -> str:
    return _only_ref(rest, "/quote", sub, "quote", "Q-2026-0042")


def _only_ref(rest: str, command: str, sub: str, what: str, example: str) -> str:
    tokens = rest.split()
    if not tokens:
        raise _err(command, f"which {what}? e.g. {command} {sub} {example}")
    ref = _quote_ref(tokens[0], command, what)
    if len(tokens) > 1:
        raise _err(command, f"could not read '{' '.join(tokens[1:])}' after {ref}", _join(command, sub, ref))
    return ref


# --- /invoice paid, /license suspend|reinstate ---------------------------------------

_REF_WORD = re.compile(r"(?:ref|reference|bank-ref)[:#.]?", re.I)
_REF_GLUED = re.compile(r"(?:ref|reference)[:#](\S+)", re.I)


def _invoice_paid(rest: str) -> InvoiceMarkPaid:
    tokens = rest.split()
    if not tokens:
        raise _err("/invoice", "which invoice? e.g. /invoice paid INV-2026-000042")
    number = _quote_ref(tokens[0], "/invoice", "invoice")
    more = tokens[1:]
    reference = None
    for k, token in enumerate(more):
        glued = _REF_GLUED.fullmatch(token)
        if glued or _REF_WORD.fullmatch(token):
            ref_tokens = ([glued.group(1)] if glued else []) + more[k + 1:]
            reference = " ".join(ref_tokens).strip()
            if not reference:
                raise _err("/invoice", f"which reference? e.g. /invoice paid {number} ref BANK-7781")
            more = more[:k]
            break
    amount = None
    if more:
        text = " ".join(more)
        if text.lower() in ("in full", "full"):
            amount = None
        else:
            amount, _currency, per = _parse_money(text, "/invoice")
            if per is not None:
                raise _err("/invoice", f"a payment has no period: '{text}'")
            if amount <= 0:
                raise _err("/invoice", f"the amount paid must be more than zero (got '{text}')")
    return InvoiceMarkPaid(number=number, amount=amount, reference=reference)


def _license_id_and_reason(rest: str, sub: str) -> tuple[int, str]:
    tokens = rest.split()
    if not tokens:
        raise _err("/license", f"which license, and why? e.g. /license {sub} 7 <reason>")
    raw = tokens[0].lstrip("#").rstrip(":,")
    if not raw.isdigit() or not raw.isascii() or int(raw) <= 0:
        raise _err("/license", f"a license id is a number, like 7 (got '{tokens[0]}')")
    reason = " ".join(tokens[1:]).lstrip(":-–— ").strip()
    if not reason:
        raise _err("/license", f"{sub} needs a reason: /license {sub} {int(raw)} <why>")
    return int(raw), reason


def _refuse_subcommand_typo(command: str, first: str, rest: str, subs: tuple[str, ...]) -> None:
    """A misspelt subcommand followed by what that subcommand takes ("/license suspnd 7 …")
    is refused with the corrected form rather than looked up as a customer name."""
    if not rest or any(ch.isdigit() for ch in first):
        return
    close = _closest(first.lower(), subs, strict=True)
    if close is None:
        return
    nxt = rest.split()[0].lstrip("#")
    fits = {"suspend": nxt.isdigit(), "reinstate": nxt.isdigit(),
            "resend": any(ch.isdigit() for ch in nxt), "paid": any(ch.isdigit() for ch in nxt),
            "statement": True}[close]
    if fits:
        raise _err(command, f"'{first}' is not a {command} subcommand; did you mean '{close}'?",
                   _join(command, close, rest))


# --- /quote new: customer, clauses, lines ----------------------------------------------

@dataclass
class _NewSpec:
    currency: str | None = None
    discount_bp: int | None = None
    valid_days: int | None = None
    terms_days: int | None = None
    lines: list[LineSpec] = field(default_factory=list)


_OPEN_QUOTES = {'"': '"', "“": "”", "„": "“”", "«": "»", "'": "'", "‘": "’", "”": "”"}


def _take_customer(rest: str) -> tuple[str, str]:
    """The customer name and what follows it."""
    opener = rest[:1]
    if opener in _OPEN_QUOTES:
        closers = _OPEN_QUOTES[opener]
        end = next((k for k in range(1, len(rest)) if rest[k] in closers
                    and (k + 1 == len(rest) or rest[k + 1] in " ,:;")), None)
        if end is not None:
            return rest[1:end].strip(), rest[end + 1:].lstrip(" ,:;")
    if ":" in rest:
        before, after = rest.split(":", 1)
        head = before.split()
        if head and _first_line_or_clause(head) is None:
            return _tidy_customer(before), after.strip()
    tokens = rest.split()
    k = _first_line_or_clause(tokens)
    if k is None:
        return _tidy_customer(rest), ""
    return _tidy_customer(" ".join(tokens[:k])), " ".join(tokens[k:])


def _tidy_customer(name: str) -> str:
    name = name.strip().rstrip(",;:-–— ").strip()
    for connector in (" with", " for"):
        if name.lower().endswith(connector):
            name = name[:-len(connector)].rstrip(",;:-–— ")
    return name


def _first_line_or_clause(tokens: list[str]) -> int | None:
    for k in range(len(tokens)):
        if _starts_line(tokens, k) or (k > 0 and _starts_clause(tokens, k)):
            return k
    return None


def _starts_line(tokens: list[str], k: int) -> bool:
    token = tokens[k]
    if _NUMBER_TEXT.fullmatch(token) or _NUMBER_X.fullmatch(token) or _glued_unit(token):
        return True
    if not _SKU.fullmatch(token) or k + 1 >= len(tokens):
        return False
    nxt = tokens[k + 1].lower()
    if _X_NUMBER.fullmatch(nxt):
        return True
    return nxt == "x" and k + 2 < len(tokens) and bool(_NUMBER_TEXT.fullmatch(tokens[k + 2]))


def _starts_clause(tokens: list[str], k: int) -> bool:
    word = tokens[k].lower().rstrip(":")
    nxt = tokens[k + 1].lower() if k + 1 < len(tokens) else ""
    if word == "in":
        return _currency_of(nxt) is not None
    if word == "discount":
        return nxt[:1].isdigit() or nxt[:1] in "+-"
    if word == "valid":
        return nxt[:1].isdigit() or nxt == "for"
    if word == "terms":
        return nxt[:1].isdigit() or nxt.startswith("net")
    if _NET_GLUED.fullmatch(word):
        return True
    if word == "net":
        return nxt[:1].isdigit()
    return bool(_PERCENT_TEXT.fullmatch(word)) and nxt in ("discount", "off")


_SEPARATOR = re.compile(r"\s*(?:;|\+|(?<!\d),|,(?!\d))\s*|\s+and\s+", re.I)


def _spaced(text: str) -> str:
    """'@40' -> ' @ 40', '25×PRO' / '25*PRO' -> '25 x PRO'."""
    text = re.sub(r"\s*@\s*(?=[\d€$£¥₪]|[A-Za-z]{3}\s*\d)", " @ ", text)
    text = re.sub(r"\s*×\s*", " x ", text)
    text = re.sub(r"(?<=[A-Za-z0-9])\s*\*\s*(?=[A-Za-z0-9])", " x ", text)
    return " ".join(text.split())


def _segments(text: str) -> list[str]:
    return [s.strip() for s in _SEPARATOR.split(text) if s and s.strip()]


def _read_segment(segment: str, spec: _NewSpec) -> None:
    tokens = segment.split()
    line_at: list[int] = []
    k = 0
    while k < len(tokens):
        used = _read_clause(tokens, k, spec)
        if used:
            k += used
        else:
            line_at.append(k)
            k += 1
    if not line_at:
        return
    if line_at != list(range(line_at[0], line_at[-1] + 1)):
        gap = next(i for i, j in zip(line_at, line_at[1:]) if j != i + 1)
        stray = " ".join(tokens[gap + 1:])
        raise _err("/quote", f"could not read '{stray}': separate lines with a comma, "
                             f"and put discount/valid/terms after the lines")
    spec.lines.append(_parse_line(tokens[line_at[0]:line_at[-1] + 1]))


def _read_clause(tokens: list[str], k: int, spec: _NewSpec) -> int:
    """Read the clause at tokens[k] into spec; returns how many tokens it used (0: none)."""
    if not _starts_clause(tokens, k):
        return 0
    word = tokens[k].lower().rstrip(":")
    rest = tokens[k + 1:]
    if word == "in":
        _set_once(spec, "currency", _currency_of(rest[0]), "the currency")
        return 2
    if word == "discount":
        skip = 1 if rest and rest[0].lower() in ("of", "by", "=") else 0
        bp, used = _percent_tokens(rest[skip:], "discount")
        _set_once(spec, "discount_bp", bp, "the discount")
        return 1 + skip + used
    if _PERCENT_TEXT.fullmatch(tokens[k]):                      # "10% off", "10% discount"
        _set_once(spec, "discount_bp", _parse_percent(tokens[k], "/quote"), "the discount")
        return 2
    if word == "valid":
        skip = 1 if rest and rest[0].lower() in ("for", "until") else 0
        days, used = _days_tokens(rest[skip:], "valid")
        if days < 1:
            raise _err("/quote", "a quote is valid for at least 1 day")
        _set_once(spec, "valid_days", days, "the validity")
        return 1 + skip + used
    # terms 30 days | terms net 30 | terms net30 | net 30 | net30
    start = k if _NET_GLUED.fullmatch(word) else k + 1
    if word == "terms" and start < len(tokens) and tokens[start].lower() == "net":
        start += 1
    days, used = _days_tokens(tokens[start:], "terms")
    _set_once(spec, "terms_days", days, "the payment terms")
    return start - k + used


def _set_once(spec: _NewSpec, field: str, value: object, what: str) -> None:
    if getattr(spec, field) is not None and getattr(spec, field) != value:
        raise _err("/quote", f"{what} is given twice")
    setattr(spec, field, value)


_NET_GLUED = re.compile(r"net-?(\d+)", re.I)
_DAY_WORDS = {"day": 1, "days": 1, "d": 1, "week": 7, "weeks": 7, "w": 7}


def _days_tokens(tokens: list[str], what: str) -> tuple[int, int]:
    """'30 days', '30', '30d', 'net30', '2 weeks' -> (days, tokens used)."""
    example = "valid 30 days" if what == "valid" else "terms 30 days (or terms net 30)"
    if not tokens:
        raise _err("/quote", f"how many days? e.g. {example}")
    glued = re.fullmatch(r"(?:net-?)?(\d+)(days?|d|weeks?|w)?", tokens[0], re.I)
    if not glued:
        raise _err("/quote", f"could not read '{what} {tokens[0]}': write e.g. {example}")
    days, used = int(glued.group(1)), 1
    unit = glued.group(2)
    if unit is None and len(tokens) > 1 and tokens[1].lower() in _DAY_WORDS:
        unit, used = tokens[1], 2
    return days * _DAY_WORDS.get((unit or "days").lower(), 1), used


def _percent_tokens(tokens: list[str], what: str) -> tuple[int, int]:
    """'10%', '10 %', '10 percent', '10 per cent' -> (basis points, tokens used)."""
    for n in (1, 2, 3):
        if len(tokens) >= n:
            text = " ".join(tokens[:n])
            if _PERCENT_TEXT.fullmatch(text):
                return _parse_percent(text, "/quote"), n
    if tokens and _NUMBER_TEXT.fullmatch(tokens[0]):
        raise _BarePercent(f"write the {what} as a percentage: {what} {tokens[0]}%", tokens[0])
    raise _err("/quote", f"could not read the {what} '{' '.join(tokens[:2])}': write e.g. {what} 10%")


# --- lines ----------------------------------------------------------------------------

_UNITS = frozenset("""seat seats user users license licenses licence licences gb tb mb hour hours hr hrs
    day days week weeks month months year years unit units pc pcs piece pieces agent agents device devices
    node nodes instance instances account accounts site sites location locations""".split())
_SKU = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NUMBER_X = re.compile(r"(\d[\d.,]*)[x×]", re.I)
_X_NUMBER = re.compile(r"[x×](\d[\d.,]*)", re.I)
_NUMBER_UNIT = re.compile(r"(\d[\d.,]*)([A-Za-z]+)")
_PRICE_WORDS = ("@", "at")


def _glued_unit(token: str) -> bool:
    m = _NUMBER_UNIT.fullmatch(token)
    return bool(m) and m.group(2).lower() in _UNITS


def _parse_line(tokens: list[str]) -> LineSpec:
    """'25 seats PRO-SEAT @ 40/mo', '25 x PRO-SEAT', 'PRO-SEAT x 25', '2.5 GB STORAGE'."""
    text = " ".join(tokens)
    price = None
    at = next((k for k, t in enumerate(tokens) if t.lower() in _PRICE_WORDS and k > 0), None)
    if at is not None:
        price_text = " ".join(tokens[at + 1:])
        if not price_text:
            raise _err("/quote", f"no price after '{tokens[at]}' in '{text}'")
        price = _parse_money(price_text, "/quote")
        if price[0] < 0:
            raise _err("/quote", f"a price cannot be negative: '{price_text}'")
        tokens = tokens[:at]
    sku, quantity = _sku_and_quantity(_unglue(tokens), text)
    if price is None:
        return LineSpec(sku=sku, quantity=quantity)
    amount, currency, per = price
    return LineSpec(sku=sku, quantity=quantity, unit_price=amount, price_currency=currency, per=per)


def _unglue(tokens: list[str]) -> list[str]:
    out: list[str] = []
    for token in tokens:
        if m := _NUMBER_X.fullmatch(token):
            out += [m.group(1), "x"]
        elif m := _X_NUMBER.fullmatch(token):
            out += ["x", m.group(1)]
        elif _glued_unit(token):
            m = _NUMBER_UNIT.fullmatch(token)
            out += [m.group(1), m.group(2)]
        else:
            out.append(token)
    return out


def _sku_and_quantity(tokens: list[str], text: str) -> tuple[str, Decimal]:
    hint = "; a customer name with digits goes in quotes: \"3M Europe\")"
    low = [t.lower() for t in tokens]
    n = len(tokens)
    if n == 0:
        raise _err("/quote", f"could not read '{text}': which product, and how many?")
    if _NUMBER_TEXT.fullmatch(tokens[0]):
        quantity = _quantity(tokens[0], text)
        k = 1
        if k < n and low[k] == "x":
            k += 1
        while k < n - 1 and low[k] in _UNITS:
            k += 1
        if k < n - 1 and low[k] == "of":
            k += 1
        if k >= n:
            raise _err("/quote", f"could not read '{text}': {tokens[0]} of which product?")
        sku = _sku(tokens[k], text)
        if k + 1 < n:
            raise _err("/quote", f"could not read '{' '.join(tokens[k + 1:])}' in '{text}' "
                                 f"(separate lines with a comma{hint}")
        return sku, quantity
    if n >= 3 and low[1] == "x" and _NUMBER_TEXT.fullmatch(tokens[2]):
        sku = _sku(tokens[0], text)
        quantity = _quantity(tokens[2], text)
        extra = [t for t in low[3:] if t not in _UNITS]
        if extra:
            raise _err("/quote", f"could not read '{' '.join(tokens[3:])}' in '{text}'")
        return sku, quantity
    if n == 1 and _SKU.fullmatch(tokens[0].rstrip(".,")):
        return _sku(tokens[0], text), Decimal(1)
    raise _err("/quote", f"could not read the line '{text}' (write e.g. 25 x PRO-SEAT or PRO-SEAT x 25" + hint)


def _sku(token: str, text: str) -> str:
    token = token.rstrip(".,")
    if not _SKU.fullmatch(token):
        raise _err("/quote", f"'{token}' in '{text}' is not a product code (letters, digits, . _ -)")
    return token.upper()


def _quantity(token: str, text: str) -> Decimal:
    value = _to_decimal(token)
    if value is None:
        raise _err("/quote", f"could not read the quantity '{token}' in '{text}'")
    if value <= 0:
        raise _err("/quote", f"the quantity must be more than zero in '{text}'")
    return value


# --- numbers, money, percentages --------------------------------------------------------

_NUMBER_TEXT = re.compile(r"\d[\d.,]*\d|\d")
_PERCENT_TEXT = re.compile(r"([+-]?)(\d[\d.,]*\d|\d)\s*(?:%|percent|pct|per\s+cent)", re.I)


def _to_decimal(text: str) -> Decimal | None:
    """'25', '2.5', '1,500.00', '1.500,00', '2,5', '1.000.000' -> Decimal; None if ambiguous
    or unreadable. A comma before exactly three digits groups thousands; before one or two
    digits it is a decimal comma."""
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return Decimal(text)
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
        return Decimal(text.replace(",", ""))
    if re.fullmatch(r"\d{1,3}(?:\.\d{3})+,\d+|\d{1,3}(?:\.\d{3}){2,}", text):
        return Decimal(text.replace(".", "").replace(",", "."))
    if re.fullmatch(r"\d+,\d{1,2}", text):
        return Decimal(text.replace(",", "."))
    return None


_SYMBOLS = {"€": "EUR", "$": "USD", "£": "GBP", "¥": "JPY", "₪": "ILS", "zł": "PLN", "zl": "PLN"}
_CUR_ALT = r"[€$£¥₪]|zł|zl|[a-z]{3}"
_MONEY = re.compile(
    rf"(?P<pre>{_CUR_ALT})?\s*(?P<num>\d[\d.,]*)\s*(?P<post>{_CUR_ALT})?"
    r"\s*(?:(?:/|\bper\s+|\ban?\s+)\s*(?P<per>[a-z]+)|(?P<adv>monthly|yearly|annually|annual))?",
    re.I)
_PERIODS = {**dict.fromkeys("m mo mos mon mth mths month months monthly".split(), "month"),
            **dict.fromkeys("y yr yrs year years annum yearly annually annual".split(), "year")}
_ISO_4217 = frozenset("""
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
    CAD CDF CHF CLF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
    GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD
    KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
    NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS
    SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UYW UZS VES VND VUV WST
    XAF XCD XOF XPF YER ZAR ZMW ZWL""".split())


def _currency_of(token: str) -> str | None:
    """'EUR', 'eur', '€', 'zł' -> 'EUR'/'PLN'/…; None when it is not a currency."""
    token = token.strip()
    if token.lower() in _SYMBOLS:
        return _SYMBOLS[token.lower()]
    return token.upper() if token.upper() in _ISO_4217 else None


def _parse_money(text: str, command: str) -> tuple[Decimal, str | None, str | None]:
    """'€40/mo', '40 EUR per month', '$45.50', '1.500,00 EUR', 'PLN 40', '40 zł' ->
    (amount, currency or None, 'month'/'year' or None)."""
    clean = text.strip().rstrip(".")
    m = _MONEY.fullmatch(clean)
    if not m:
        raise _err(command, f"could not read the price '{text}' (e.g. €40, 40 EUR, $45.50/mo)")
    amount = _to_decimal(m.group("num"))
    if amount is None:
        raise _err(command, f"could not read the amount '{m.group('num')}' in '{text}' (e.g. 1,500.00 or 1.500,00)")
    currencies = []
    for part in (m.group("pre"), m.group("post")):
        if part:
            code = _currency_of(part)
            if code is None:
                raise _err(command, f"'{part}' in '{text}' is not a currency (e.g. EUR, USD, €, $)")
            currencies.append(code)
    if len(set(currencies)) > 1:
        raise _err(command, f"'{text}' names two currencies")
    per = None
    word = m.group("per") or m.group("adv")
    if word:
        per = _PERIODS.get(word.lower())
        if per is None:
            raise _err(command, f"could not read the period '{word}' in '{text}' (per month or per year)")
    if amount.as_tuple().exponent > -2:
        amount = amount.quantize(Decimal("0.01"))
    return amount, (currencies[0] if currencies else None), per


def _parse_percent(text: str, command: str) -> int:
    """'10%', '12.5 %', '10 percent' -> basis points (1000, 1250); 0..100 % only."""
    m = _PERCENT_TEXT.fullmatch(text.strip())
    if not m:
        raise _err(command, f"could not read the percentage '{text}' (e.g. 10% or 12.5%)")
    if m.group(1) == "-":
        raise _err(command, f"a discount cannot be negative (got '{text}')")
    value = _to_decimal(m.group(2))
    if value is None:
        raise _err(command, f"could not read the percentage '{text}' (e.g. 10% or 12.5%)")
    if value > 100:
        raise _err(command, f"a discount is at most 100% (got '{text}')")
    bp = value * 100
    if bp != bp.to_integral_value():
        raise _err(command, f"a percentage has at most two decimals (got '{text}')")
    return int(bp)


# --- text, references, suggestions -----------------------------------------------------

_HELP_WORDS = frozenset({"help", "?", "-h", "--help", "-help"})
_REF_LIKE = re.compile(r"#?(?:[A-Za-z]{1,6}-)?\d+(?:-\d+)*")
_QUOTED = re.compile(r'"[^"]*"|“[^”]*”|„[^“”]*[“”]|«[^»]*»|\S+')


def _err(command: str, message: str, suggestion: str | None = None) -> UsageError:
    return UsageError(message, USAGE[command], suggestion)


def _clean(text: str) -> str:
    """Slack's HTML escapes undone, odd spaces and dashes made plain, spaces collapsed."""
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    text = re.sub(r"[\u200b-\u200d\u2060\ufeff]", "", text)
    text = re.sub(r"(?<=\w)[\u2010-\u2014\u2212](?=\w)", "-", text)
    return " ".join(text.split())


def _prepare(text: str | None, command: str) -> str | None:
    """The cleaned text, or None when it asks for help (empty, help, ?, -h)."""
    body = _clean(text or "")
    first, rest = _split_first(body)
    if first.lower() == command:
        body = rest
    if not body or body.lower() in _HELP_WORDS:
        return None
    return body


def _split_first(text: str) -> tuple[str, str]:
    first, _, rest = text.partition(" ")
    return first, rest.strip()


def _is_help(text: str) -> bool:
    return text.lower() in _HELP_WORDS


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] in _OPEN_QUOTES and text[-1] in _OPEN_QUOTES[text[0]]:
        text = text[1:-1].strip()
    return text


def _quoted_tokens(text: str) -> list[tuple[str, bool]]:
    out = []
    for token in _QUOTED.findall(text):
        inner = _unquote(token)
        out.append((inner, inner != token))
    return out


def _raw(tokens: list[tuple[str, bool]]) -> list[str]:
    return [f'"{t}"' if quoted else t for t, quoted in tokens]


def _query(text: str) -> str:
    """A lookup's query: quotes dropped; a quote, deal or invoice number upper-cased."""
    query = _unquote(text)
    if _REF_LIKE.fullmatch(query):
        return query.lstrip("#").upper()
    return query


def _quote_ref(token: str, command: str, what: str = "quote") -> str:
    """A quote/invoice reference as typed, upper-cased: 'q-2026-42' -> 'Q-2026-42'."""
    ref = token.strip().lstrip("#").rstrip(".,;:")
    if not _SKU.fullmatch(ref) or not any(ch.isdigit() for ch in ref):
        example = "Q-2026-0042" if what == "quote" else "INV-2026-000042"
        raise _err(command, f"'{token}' is not a {what} number (like {example})")
    return ref.upper()


def _closest(word: str, options: Sequence[str], strict: bool = False) -> str | None:
    """The option one typo away from word (two for long words; a unique prefix of three
    letters or more counts too unless strict)."""
    if not word or word in options:
        return None
    best = min(options, key=lambda o: (OSA.distance(word, o), -fuzz.ratio(word, o)))
    distance = OSA.distance(word, best)
    if distance <= 1 and len(word) >= 2 or distance == 2 and len(word) >= 5 and not strict:
        return best
    if not strict and len(word) >= 3:
        prefixed = [o for o in options if o.startswith(word)]
        if len(prefixed) == 1:
            return prefixed[0]
    return None


# --- name matching --------------------------------------------------------------------

_CUTOFF, _CLEAR, _MARGIN = 75, 85, 10
_SUFFIXES = tuple(sorted((tuple(s.split()) for s in """gmbh|mbh|ag|kg|ug|ohg|gbr|ltd|limited|inc|incorporated|
    llc|llp|lp|plc|corp|corporation|co|company|sp z o o|spzoo|sp k|sa|s a|bv|b v|nv|n v|sarl|sas|srl|spa|s p a|
    oy|oyj|ab|as|a s|asa|aps|se|pty|kk|ag co kg|gmbh co kg""".replace("\n", "").split("|")),
    key=len, reverse=True))


def _fold(name: str) -> str:
    """Case-, accent- and punctuation-insensitive form: 'Müller-Lüdenscheidt AG' -> 'muller ludenscheidt ag'."""
    decomposed = unicodedata.normalize("NFKD", name.replace("ł", "l").replace("Ł", "L").replace("ß", "ss"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[^\w]+|_", " ", bare).split())


def _core(folded: str) -> str:
    """The folded name without trailing company suffixes: 'acme sp z o o' -> 'acme'."""
    words = folded.split()
    stripped = True
    while stripped:
        stripped = False
        for suffix in _SUFFIXES:
            if len(words) > len(suffix) and tuple(words[-len(suffix):]) == suffix:
                words = words[:-len(suffix)]
                stripped = True
                break
    return " ".join(words)


def _one(name: str) -> NameMatch:
    return NameMatch(exact=name, candidates=(name,))
