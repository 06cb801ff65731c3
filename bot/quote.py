"""/quote: draft, edit, show, send, void and list quotes; the quote modal; the buttons
under a preview (send for signature, void, show, page, pick a customer).

Every listener reads what Slack sent first (the grammar is pure), acks, and only then
touches the ledger; answers are ephemeral. Each command calls one step, keyed by the
Slack request so a retry or a double click changes nothing the second time. A ledger
refusal after the ack is answered in the listener (see `answering`)."""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient

from bot import quote_blocks as kit
from bot.identity import Identity
from closeloop.bootstrap import Services
from flows.errors import InvalidInput, LedgerError, NotFound
from flows.money import Money, check_quantity
from flows.quote_edits import add_quote_line, change_discount, draft_quote_once, send_quote_version
from flows.quote_views import (CatalogItem, CustomerRef, catalog_items, customer_ref, customer_refs,
                               customers_containing, open_deals_of, quote_view, quote_view_by_ref)
from flows.steps import Done, LineRequest, record_signature, send_quote, void_quote
from parsers.slash import (USAGE, Help, LineSpec, QuoteAddLine, QuoteDiscount, QuoteList, QuoteNew, QuoteSend,
                           QuoteShow, QuoteSigned, QuoteVoid, UsageError, match_names, parse_quote)

log = logging.getLogger("closeloop.bot")

WORKING = ":hourglass_flowing_sand: Working on it…"
DEFAULT_PROVIDER = "email"  # DocuSign comes with the e-signature issue; "via docusign" asks for it


def register(app: App, services: Services, identity: Identity) -> None:
    quotes = Quotes(services, identity)
    app.command("/quote")(quotes.command)
    app.options(kit.CUSTOMER_SEARCH)(quotes.customer_options)
    app.view(kit.NEW_MODAL)(quotes.submit_new)
    app.action(kit.PICK_CUSTOMER)(quotes.pick_customer)
    app.action(kit.SEND)(quotes.send_button)
    app.action(kit.VOID)(quotes.void_button)
    app.view(kit.VOID_MODAL)(quotes.submit_void)
    app.action(kit.SHOW)(quotes.show_button)
    app.action(kit.LIST_PAGE)(quotes.list_page)


@dataclass(frozen=True)
class Asker:
    """Who asked, the idempotency key of their request, and how to answer them."""
    user: str
    key: str
    respond: Callable[..., Any]
    text: str = ""              # the command as typed (a pick-list button finishes it)
    replace: bool = False       # answer by replacing the message the button was on

    def say(self, text: str, blocks: list[dict[str, Any]] | None = None, *, replace: bool | None = None) -> None:
        self.respond(text=text[:3000], blocks=blocks, response_type="ephemeral",
                     replace_original=self.replace if replace is None else replace)


@contextmanager
def answering(asker: Asker) -> Iterator[None]:
    """A ledger refusal after the ack becomes a plain ephemeral answer, given here and not
    by the app's error handler: when a listener raises, Bolt resets the ack it already
    gave, and if that lands before Bolt has read the ack, Slack gets a 404 instead."""
    try:
        yield
    except LedgerError as error:
        asker.say(f":warning: {error}", replace=False)


class Quotes:
    def __init__(self, services: Services, identity: Identity) -> None:
        self.services, self.identity, self.ledger = services, identity, services.ledger

    # --- the command ---------------------------------------------------------------------

    def command(self, ack: Callable[..., Any], command: dict[str, Any], respond: Callable[..., Any],
                client: WebClient) -> None:
        try:
            parsed = parse_quote(command.get("text") or "")
        except UsageError as error:
            ack(response_type="ephemeral", text=f"{error.message} — try: {error.suggestion or '/quote help'}",
                blocks=kit.usage_blocks(error.message, error.usage, error.suggestion))
            return
        if isinstance(parsed, Help):
            usage = USAGE.get(parsed.command) or USAGE.get("/quote", "")
            ack(response_type="ephemeral", text=usage[:3000], blocks=kit.help_blocks(usage))
            return
        if isinstance(parsed, QuoteNew) and (parsed.customer is None or not parsed.lines):
            ack()  # the trigger id lives 3 s: open the modal before anything slow
            self.open_modal(client, command, parsed, respond)
            return
        ack(response_type="ephemeral", text=WORKING)
        asker = Asker(command["user_id"], f"slack:{command['trigger_id']}", respond, text=command.get("text") or "")
        action, run = COMMANDS[type(parsed)]
        with answering(asker):
            if self.may(asker, action):
                run(self, parsed, asker)

    def may(self, asker: Asker, action: str, *, deal_id: int | None = None) -> bool:
        """The role check; a refusal is audited (by Identity) and told to the asker."""
        if self.identity.allowed(asker.user, action, deal_id=deal_id):
            return True
        asker.say(self.identity.refusal(action), replace=False)
        return False

    def new_quote(self, cmd: QuoteNew, asker: Asker, *, customer_id: int | None = None) -> None:
        if customer_id is None:
            customer = self.resolve_customer(cmd.customer or "", asker)
            if customer is None:
                return
        else:
            customer = self.ledger.read(customer_ref, customer_id)
            if customer is None:
                raise NotFound("customer", customer_id)
        currency = cmd.currency or customer.currency
        catalog = self.catalog()
        lines = [line_request(spec, catalog, currency, position) for position, spec in enumerate(cmd.lines, 1)]
        deal_id, done = draft_quote_once(self.ledger, key=asker.key, customer_id=customer.id, owner=asker.user,
                                         currency=currency, lines=lines, discount_bp=cmd.discount_bp or 0,
                                         valid_days=cmd.valid_days, payment_terms_days=cmd.terms_days)
        view = self.ledger.read(quote_view, deal_id)
        if done is Done.ACTED:
            asker.say(kit.preview_text(view), kit.quote_preview(
                view, note=f":white_check_mark: Drafted {view.number} for *{kit.esc(view.customer)}*."))
        else:
            asker.say(f"Already done: this request already drafted {view.number}.", replace=False)

    def add_line(self, cmd: QuoteAddLine, asker: Asker) -> None:
        before = self.ledger.read(quote_view_by_ref, cmd.quote)
        line = line_request(cmd.line, self.catalog(), before.currency, len(before.lines) + 1)
        done = self.ledger.run(add_quote_line, before.deal_id, key=asker.key, line=line, actor=asker.user)
        self.revised(before.deal_id, done, asker, f"Added {line.quantity.normalize():f} × {line.sku}")

    def discount(self, cmd: QuoteDiscount, asker: Asker) -> None:
        before = self.ledger.read(quote_view_by_ref, cmd.quote)
        done = self.ledger.run(change_discount, before.deal_id, key=asker.key, discount_bp=cmd.discount_bp,
                               actor=asker.user)
        self.revised(before.deal_id, done, asker, f"Discount set to {kit.percent(cmd.discount_bp)}")

    def revised(self, deal_id: int, done: Done, asker: Asker, what: str) -> None:
        view = self.ledger.read(quote_view, deal_id)
        if done is Done.ALREADY:
            asker.say(f"Already done: {view.number} was already revised by this request.")
            return
        asker.say(kit.preview_text(view), kit.quote_preview(
            view, note=f":pencil2: {kit.esc(what)}: {view.number} is now version {view.version}."))

    def show(self, cmd: QuoteShow, asker: Asker) -> None:
        view = self.ledger.read(quote_view_by_ref, cmd.quote)
        asker.say(kit.preview_text(view), kit.quote_preview(view))

    def send(self, cmd: QuoteSend, asker: Asker) -> None:
        view = self.ledger.read(quote_view_by_ref, cmd.quote)
        provider = cmd.provider or DEFAULT_PROVIDER
        done = self.ledger.run(send_quote, view.deal_id, provider=provider, actor=asker.user)
        self.sent(view.deal_id, done, asker, provider)

    def sent(self, deal_id: int, done: Done, asker: Asker, provider: str) -> None:
        view = self.ledger.read(quote_view, deal_id)
        if done is Done.ALREADY:
            asker.say(f"Already done: {view.number} v{view.version} was already sent for signature.", replace=False)
            return
        asker.say(kit.preview_text(view), kit.quote_preview(
            view, note=f":envelope_with_arrow: Sent {view.number} v{view.version} for signature ({provider})."))

    def void(self, cmd: QuoteVoid, asker: Asker) -> None:
        view = self.ledger.read(quote_view_by_ref, cmd.quote)
        done = self.ledger.run(void_quote, view.deal_id, reason=cmd.reason, actor=asker.user)
        self.voided(view.deal_id, done, asker, cmd.reason)

    def voided(self, deal_id: int, done: Done, asker: Asker, reason: str) -> None:
        view = self.ledger.read(quote_view, deal_id)
        if done is Done.ALREADY:
            asker.say(f"Already done: {view.number} is already {view.stage.value}.", replace=False)
            return
        asker.say(f"Voided {view.number}", kit.quote_preview(
            view, note=f":wastebasket: Voided {view.number}: {kit.esc(reason)}"))

    def signed(self, cmd: QuoteSigned, asker: Asker) -> None:
        """A manager records a signature received outside closeloop; the pipeline then
        carries the deal to won, invoiced, licensed and billing as for any signature."""
        view = self.ledger.read(quote_view_by_ref, cmd.quote)
        done = self.ledger.run(record_signature, view.deal_id, version=view.version, signer=asker.user,
                               evidence={"method": "recorded in Slack", "by": asker.user, "note": cmd.note},
                               actor=asker.user)
        after = self.ledger.read(quote_view, view.deal_id)
        if done is Done.ALREADY:
            asker.say(f"Already done: {after.number} is already {after.stage.value}.", replace=False)
            return
        asker.say(f"Recorded the signature on {after.number} v{after.version}", kit.quote_preview(
            after, note=f":white_check_mark: Signature recorded by <@{asker.user}> ({kit.esc(cmd.note)}); "
                        f"the deal is now {after.stage.value.replace('_', ' ')}."))

    def list_mine(self, cmd: QuoteList | None, asker: Asker, *, offset: int = 0) -> None:
        rows, total = self.ledger.read(open_deals_of, asker.user, now=self.ledger.clock.now(), offset=offset,
                                       limit=kit.PAGE_SIZE)
        asker.say(f"Your open quotes ({total})", kit.deal_list(rows, total=total, offset=offset))

    # --- customers -------------------------------------------------------------------------

    def resolve_customer(self, query: str, asker: Asker) -> CustomerRef | None:
        """The one customer a typed name means; otherwise ask (a pick-list) or say none
        matches, and return None."""
        named: dict[str, list[CustomerRef]] = defaultdict(list)
        for customer in self.ledger.read(customer_refs):
            named[customer.name].append(customer)
        match = match_names(query, list(named))
        if match.exact is not None and len(named[match.exact]) == 1:
            return named[match.exact][0]
        names = [match.exact] if match.exact is not None else list(match.candidates)
        candidates = [customer for name in names for customer in named.get(name, [])]
        if not candidates:
            asker.say(f":mag: No customer in the ledger matches “{query}”. Check the spelling, or add the "
                      "customer first.", replace=False)
            return None
        choices = [(c, json.dumps({"c": c.id, "k": asker.key, "t": asker.text}, separators=(",", ":")))
                   for c in candidates]
        if any(len(value) > kit.MAX_VALUE for _, value in choices):  # a very long command: no room to carry it
            asker.say(f"“{query}” could be " + ", ".join(kit.customer_label(c) for c in candidates)
                      + ". Type the command again with the full name.", replace=False)
            return None
        asker.say(f"Which customer did you mean by “{query}”?", kit.customer_pick_list(query, choices),
                  replace=False)
        return None

    def pick_customer(self, ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
                      respond: Callable[..., Any]) -> None:
        ack()
        choice = json.loads(action["value"])
        asker = Asker(body["user"]["id"], choice["k"], respond, text=choice["t"], replace=True)
        cmd = parse_quote(choice["t"])
        with answering(asker):
            if not isinstance(cmd, QuoteNew):
                raise InvalidInput("this pick-list belongs to another command; type it again")
            if self.may(asker, "quote.create"):
                self.new_quote(cmd, asker, customer_id=int(choice["c"]))

    def customer_options(self, ack: Callable[..., Any], body: dict[str, Any]) -> None:
        """The modal's customer search: names containing the text, then close spellings."""
        query = (body.get("value") or "").strip()
        found = self.ledger.read(customers_containing, query, kit.MAX_OPTIONS) if query else []
        if query and len(found) < 10:
            everyone = self.ledger.read(customer_refs)
            close = set(match_names(query, sorted({c.name for c in everyone}), limit=10).candidates)
            seen = {c.id for c in found}
            found += [c for c in everyone if c.name in close and c.id not in seen]
        ack(options=[kit.customer_option(kit.customer_label(c), f"c:{c.id}") for c in found[: kit.MAX_OPTIONS]])

    def catalog(self) -> dict[str, CatalogItem]:
        return {item.code: item for item in self.ledger.read(catalog_items)}

    # --- the quote modal -------------------------------------------------------------------

    def open_modal(self, client: WebClient, command: dict[str, Any], cmd: QuoteNew,
                   respond: Callable[..., Any]) -> None:
        catalog = self.ledger.read(catalog_items)  # one small read: the SKU selects need it
        codes = {item.code for item in catalog}
        lines = [kit.ModalLine(sku=spec.sku if spec.sku in codes else None, quantity=f"{spec.quantity:f}",
                               price=f"{spec.unit_price:f}" if spec.unit_price is not None else None)
                 for spec in cmd.lines]
        typed = kit.customer_option(cmd.customer, f"q:{cmd.customer}") if cmd.customer else None
        metadata = {"k": f"slack:{command['trigger_id']}", "cur": cmd.currency, "valid": cmd.valid_days,
                    "terms": cmd.terms_days}
        opened = client.views_open(trigger_id=command["trigger_id"], view=kit.quote_modal(
            catalog, metadata=metadata, customer=typed, lines=lines,
            discount=_percent_text(cmd.discount_bp) if cmd.discount_bp else None))
        user = command["user_id"]
        if not self.identity.allowed(user, "quote.create"):
            refusal = self.identity.refusal("quote.create")
            client.views_update(view_id=opened["view"]["id"], view=kit.notice_modal("New quote", refusal))
            respond(text=refusal, response_type="ephemeral")

    def submit_new(self, ack: Callable[..., Any], body: dict[str, Any], view: dict[str, Any],
                   client: WebClient) -> None:
        """Validate the form (errors go back beside the fields), then clear the modal,
        draft the quote and post the preview to the rep's DM with the app."""
        user = body["user"]["id"]
        if not self.identity.allowed(user, "quote.create"):
            ack(response_action="errors", errors={kit.CUSTOMER: self.identity.refusal("quote.create")})
            return
        meta = json.loads(view.get("private_metadata") or "{}")
        form = QuoteForm.read(view["state"]["values"])
        errors: dict[str, str] = {}
        customer = self.form_customer(form.customer, errors)
        currency = meta.get("cur") or (customer.currency if customer else "")
        lines = form.lines(self.catalog(), currency, errors)
        discount_bp = _discount(form.discount, errors)
        if errors or customer is None:
            ack(response_action="errors", errors=errors)
            return
        ack(response_action="clear")
        try:
            deal_id, done = draft_quote_once(
                self.ledger, key=meta.get("k") or f"slack:view:{view['id']}", customer_id=customer.id, owner=user,
                currency=currency, lines=lines, discount_bp=discount_bp, valid_days=meta.get("valid"),
                payment_terms_days=meta.get("terms"))
        except LedgerError as error:  # after "clear" only a message can reach the rep
            client.chat_postMessage(channel=user, text=f":warning: {error} (nothing was drafted)")
            return
        quote = self.ledger.read(quote_view, deal_id)
        note = (f":white_check_mark: Drafted {quote.number} for *{kit.esc(quote.customer)}*."
                if done is Done.ACTED else f"Already done: this form already drafted {quote.number}.")
        client.chat_postMessage(channel=user, text=kit.preview_text(quote), blocks=kit.quote_preview(quote, note=note))

    def form_customer(self, value: str | None, errors: dict[str, str]) -> CustomerRef | None:
        if not value:
            errors[kit.CUSTOMER] = "Choose a customer."
            return None
        kind, _, ref = value.partition(":")
        if kind == "c" and ref.isdigit():
            customer = self.ledger.read(customer_ref, int(ref))
            if customer is None:
                errors[kit.CUSTOMER] = "That customer is no longer in the ledger; search again."
            return customer
        everyone = self.ledger.read(customer_refs)  # a name typed with the command ("q:Acme")
        match = match_names(ref, sorted({c.name for c in everyone}))
        named = [c for c in everyone if c.name == match.exact]
        if len(named) == 1:
            return named[0]
        if match.exact is None and not match.candidates:
            errors[kit.CUSTOMER] = f"No customer named “{ref}” in the ledger; search for another."
        else:
            names = [match.exact] if match.exact else list(match.candidates)
            errors[kit.CUSTOMER] = f"“{ref}” could be {', '.join(names)}: search and choose one."[:150]
        return None

    # --- buttons under a preview -----------------------------------------------------------

    def send_button(self, ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
                    respond: Callable[..., Any]) -> None:
        ack()
        asker = Asker(body["user"]["id"], "", respond, replace=True)
        with answering(asker):
            deal_id, version = button_ids(action["value"])
            if self.may(asker, "quote.send", deal_id=deal_id):
                done = self.ledger.run(send_quote_version, deal_id, version=version, provider=DEFAULT_PROVIDER,
                                       actor=asker.user)
                self.sent(deal_id, done, asker, DEFAULT_PROVIDER)

    def void_button(self, ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
                    respond: Callable[..., Any], client: WebClient) -> None:
        ack()
        deal, _, number = action["value"].partition(":")
        asker = Asker(body["user"]["id"], "", respond)
        if self.may(asker, "quote.void", deal_id=int(deal)):
            client.views_open(trigger_id=body["trigger_id"], view=kit.reason_modal(
                callback_id=kit.VOID_MODAL, title="Void quote", submit="Void quote",
                prompt=f"Void *{kit.esc(number)}*? A signature request already sent is withdrawn.",
                label="Why is it void?",
                metadata={"d": int(deal), "u": body.get("response_url") or ""}))

    def submit_void(self, ack: Callable[..., Any], body: dict[str, Any], view: dict[str, Any],
                    client: WebClient) -> None:
        user = body["user"]["id"]
        meta = json.loads(view.get("private_metadata") or "{}")
        reason = (reason_of(view) or "").strip()
        if not self.identity.allowed(user, "quote.void", deal_id=meta["d"]):
            ack(response_action="errors", errors={kit.REASON: self.identity.refusal("quote.void")})
            return
        if not reason:
            ack(response_action="errors", errors={kit.REASON: "Say why the quote is void; its timeline keeps it."})
            return
        ack(response_action="clear")
        asker = later(client, user, meta.get("u"), replace=True)
        try:
            done = self.ledger.run(void_quote, meta["d"], reason=reason, actor=user)
        except LedgerError as error:
            asker.say(f":warning: {error}", replace=False)
            return
        self.voided(meta["d"], done, asker, reason)

    def show_button(self, ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
                    respond: Callable[..., Any]) -> None:
        ack()
        asker = Asker(body["user"]["id"], "", respond)
        with answering(asker):
            if self.may(asker, "deal.view"):
                view = self.ledger.read(quote_view, int(action["value"]))
                asker.say(kit.preview_text(view), kit.quote_preview(view))

    def list_page(self, ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
                  respond: Callable[..., Any]) -> None:
        ack()
        asker = Asker(body["user"]["id"], "", respond, replace=True)
        with answering(asker):
            if self.may(asker, "deal.view"):
                self.list_mine(None, asker, offset=max(0, int(action["value"])))


# --- reading what was typed ------------------------------------------------------------------

def line_request(spec: LineSpec, catalog: dict[str, CatalogItem], currency: str, position: int) -> LineRequest:
    """A typed line checked against the catalog: the SKU exists, a written /mo or /yr
    agrees with how it is billed, a price is in the quote's currency."""
    item = catalog.get(spec.sku)
    if item is None:
        close = match_names(spec.sku, sorted(catalog), limit=3).candidates
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise InvalidInput(f"line {position}: there is no SKU '{spec.sku}' in the catalog{hint}")
    if spec.per is not None and item.interval != spec.per:
        if item.interval is None:
            raise InvalidInput(f"line {position}: {item.code} ({item.name}) is charged once, not per {spec.per}; "
                               "drop the /mo or /yr")
        raise InvalidInput(f"line {position}: {item.code} is billed per {item.interval}, not per {spec.per}; "
                           f"give its price per {item.interval}")
    unit_amount = None
    if spec.unit_price is not None:
        if spec.price_currency and spec.price_currency != currency:
            raise InvalidInput(f"line {position}: the price is in {spec.price_currency} but the quote is in "
                               f"{currency}; write the price in {currency} or add 'in {spec.price_currency}'")
        unit_amount = Money.parse(spec.unit_price, currency).amount
        if unit_amount < 0:
            raise InvalidInput(f"line {position}: a price cannot be negative")
    return LineRequest(sku=item.code, quantity=spec.quantity, unit_amount=unit_amount)


@dataclass(frozen=True)
class QuoteForm:
    """What the quote modal holds, as typed."""
    customer: str | None
    rows: tuple[tuple[int, str | None, str, str], ...]  # (row, sku, quantity, price)
    discount: str

    @classmethod
    def read(cls, values: dict[str, dict[str, Any]]) -> QuoteForm:
        def field(block: str, action: str) -> dict[str, Any]:
            return values.get(block, {}).get(action) or {}

        def text(block: str, action: str) -> str:
            return (field(block, action).get("value") or "").strip()

        customer = (field(kit.CUSTOMER, kit.CUSTOMER_SEARCH).get("selected_option") or {}).get("value")
        rows = []
        index = 1
        while kit.line_block(index, "sku") in values:
            sku = (field(kit.line_block(index, "sku"), "sku").get("selected_option") or {}).get("value")
            rows.append((index, sku, text(kit.line_block(index, "qty"), "qty"),
                         text(kit.line_block(index, "price"), "price")))
            index += 1
        return cls(customer, tuple(rows), text(kit.DISCOUNT, "discount"))

    def lines(self, catalog: dict[str, CatalogItem], currency: str, errors: dict[str, str]) -> list[LineRequest]:
        """The filled rows as line requests; each problem is put in `errors` by field."""
        lines = []
        for index, sku, quantity_text, price_text in self.rows:
            if sku is None:
                if quantity_text or price_text:
                    errors[kit.line_block(index, "sku")] = "Choose a SKU for this line, or clear the line."
                continue
            item = catalog.get(sku)
            if item is None:
                errors[kit.line_block(index, "sku")] = f"{sku} is no longer in the catalog."
                continue
            quantity = _quantity(quantity_text, item, errors, kit.line_block(index, "qty"))
            unit_amount = _price(price_text, item, currency, errors, kit.line_block(index, "price"))
            if quantity is not None and (unit_amount is not None or not price_text):
                lines.append(LineRequest(sku=item.code, quantity=quantity, unit_amount=unit_amount))
        if not self.rows or all(sku is None for _, sku, _, _ in self.rows):
            errors.setdefault(kit.line_block(1, "sku"), "A quote needs at least one line: choose a SKU.")
        return lines


def _quantity(text: str, item: CatalogItem, errors: dict[str, str], block: str) -> Decimal | None:
    try:
        quantity = check_quantity(text.replace(" ", "") or "1")
    except InvalidInput:
        errors[block] = f"“{text}” is not a quantity: write a positive number such as 25 or 2.5."
        return None
    if item.licensable and quantity != quantity.to_integral_value():
        errors[block] = f"{item.code} is licensed per {item.unit}: use a whole number."
        return None
    return quantity


def _price(text: str, item: CatalogItem, currency: str, errors: dict[str, str], block: str) -> int | None:
    if not currency:  # no customer chosen yet: its currency decides what a price means
        return None
    if not text:
        if item.price_in(currency) is None:
            errors[block] = f"{item.code} has no {currency} price in the catalog: give one here."
        return None
    try:
        amount = Money.parse(text.removesuffix(currency).strip().replace(",", ""), currency).amount
    except InvalidInput as error:
        errors[block] = f"Not a price: {error}."[:150]
        return None
    if amount < 0:
        errors[block] = "A price cannot be negative."
        return None
    return amount


def _discount(text: str, errors: dict[str, str]) -> int:
    """'12.5', '12.5 %' -> 1250 basis points; problems go to `errors`."""
    written = text.removesuffix("%").strip().replace(",", ".")
    if not written:
        return 0
    try:
        value = Decimal(written)
        if not value.is_finite():
            raise ValueError
    except (ArithmeticError, ValueError):
        errors[kit.DISCOUNT] = f"“{text}” is not a percentage: write it like 10 or 12.5."
        return 0
    bp = value * 100
    if not 0 <= value <= 100 or bp != bp.to_integral_value():
        errors[kit.DISCOUNT] = "The discount must be between 0 and 100 %, with at most two decimals."
        return 0
    return int(bp)


def _percent_text(bp: int) -> str:
    return f"{Decimal(bp).scaleb(-2).normalize():f}"


def reason_of(view: dict[str, Any]) -> str | None:
    return ((view.get("state") or {}).get("values", {}).get(kit.REASON, {}).get(kit.REASON) or {}).get("value")


def button_ids(value: str) -> tuple[int, int]:
    """A button value "deal_id:version"."""
    deal, _, version = value.partition(":")
    if not (deal.isdigit() and version.isdigit()):
        raise InvalidInput("this button is out of date; look the quote up again with /quote show")
    return int(deal), int(version)


def later(client: WebClient, user: str, response_url: str | None, *, replace: bool = False) -> Asker:
    """How to answer after a modal closed: through the response URL of the message
    whose button opened it (ephemeral), or else in the user's DM with the app."""
    if response_url:
        hook = WebhookClient(response_url)

        def respond(**kwargs: Any) -> Any:
            return hook.send(**{k: v for k, v in kwargs.items() if v is not None})
    else:
        def respond(**kwargs: Any) -> Any:
            return client.chat_postMessage(channel=user, text=kwargs.get("text") or "", blocks=kwargs.get("blocks"))
    return Asker(user, "", respond, replace=replace)


# The subcommands: what each needs permission for, and what runs it.
COMMANDS: dict[type, tuple[str, Callable[[Quotes, Any, Asker], None]]] = {
    QuoteNew: ("quote.create", Quotes.new_quote),
    QuoteAddLine: ("quote.create", Quotes.add_line),
    QuoteDiscount: ("quote.create", Quotes.discount),
    QuoteShow: ("deal.view", Quotes.show),
    QuoteSend: ("quote.send", Quotes.send),
    QuoteVoid: ("quote.void", Quotes.void),
    QuoteSigned: ("quote.mark_signed", Quotes.signed),
    QuoteList: ("deal.view", Quotes.list_mine),
}
