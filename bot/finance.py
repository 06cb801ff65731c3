"""/invoice, /license and /collect: look up invoices, licenses and what a customer owes;
finance resends an invoice, marks it paid, suspends or reinstates a license, sends a
statement — by command or by the buttons on the cards.

Every change goes through one step of flows.finance with a request key taken from the
Slack request: the card's trigger id for buttons (a double click, or Slack delivering
a click twice, acts once and the second press hears "already done"), the command's
trigger id for commands. Mark paid on a card records the open balance the card showed
as a bank transfer, with a reference derived from the card; a partial payment or the
bank's own reference is typed: `/invoice paid INV-… 500 ref BANK-REF`. Suspending or reinstating
from a card asks for the reason in a modal."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk.webhook import WebhookClient

from bot.deal import (PAGE, Render, Respond, answer_lookup, card_key, may_see, moment, parsed_or_answered, refused,
                      register_followups, resolve)
from bot.finance_blocks import (COLLECT_STATEMENT, INVOICE_MARK_PAID, INVOICE_RESEND, LICENSE_MODAL,
                                LICENSE_REINSTATE, LICENSE_SUSPEND, Message, aging_card, escape, invoice_cards,
                                license_cards, license_modal, pack, pick_list, plain, unpack)
from bot.identity import Identity
from closeloop.bootstrap import Services
from flows import finance_views as views
from flows.errors import LedgerError
from flows.finance import record_payment, reinstate_license, resend_invoice, send_statement, suspend_license
from flows.money import Money
from flows.steps import Done
from parsers.slash import (CollectStatement, InvoiceMarkPaid, InvoiceResend, LicenseReinstate, LicenseSuspend,
                           Lookup, parse_collect, parse_invoice, parse_license)

PAYMENT_METHOD = "bank_transfer"  # what finance marks paid by hand: money that arrived outside a gateway


def register(app: App, services: Services, identity: Identity) -> None:
    invoices = invoice_renderer(services, identity)
    licenses = license_renderer(services, identity)
    collections = aging_renderer(services, identity)
    read, run = services.ledger.read, services.ledger.run

    def answer(respond: Respond, text: str) -> None:
        respond(**plain(text), response_type="ephemeral", replace_original=False)

    # --- /invoice -------------------------------------------------------------------------

    @app.command("/invoice")
    def invoice_command(ack: Callable[..., Any], command: dict[str, Any], respond: Respond) -> None:
        parsed = parsed_or_answered(ack, "/invoice", parse_invoice, command)
        if parsed is None:
            return
        user, key = command["user_id"], card_key(command)
        if isinstance(parsed, Lookup):
            if not refused(identity, user, "invoice.view", respond):
                answer_lookup(services, user=user, query=parsed.query, key=key, prefix="invoice",
                              command="/invoice", render=invoices, respond=respond)
        elif isinstance(parsed, InvoiceResend):
            number = _number(services, parsed.number)
            if not refused(identity, user, "invoice.resend", respond, deal_id=read(views.deal_of_invoice, number)):
                answer(respond, resend(number, user, f"slash:{key}"))
        elif isinstance(parsed, InvoiceMarkPaid):
            number = _number(services, parsed.number)
            if refused(identity, user, "invoice.mark_paid", respond, deal_id=read(views.deal_of_invoice, number)):
                return
            _, today, _ = moment(services)
            invoice = read(views.invoice, number, today)
            amount = (invoice.balance.amount if parsed.amount is None
                      else Money.parse(parsed.amount, invoice.gross.currency).amount)
            answer(respond, pay(number, amount, parsed.reference or payment_reference(number, f"slash:{key}"), user))

    register_followups(app, identity, prefix="invoice", permission="invoice.view", render=invoices)

    @app.action(INVOICE_RESEND)
    def resend_button(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
                      respond: Respond) -> None:
        ack()
        user, value = body["user"]["id"], unpack(action.get("value"))
        number = str(value.get("n", ""))
        if not refused(identity, user, "invoice.resend", respond, deal_id=read(views.deal_of_invoice, number)):
            answer(respond, resend(number, user, f"button:{_click_key(body, action, value)}"))

    @app.action(INVOICE_MARK_PAID)
    def mark_paid_button(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
                         respond: Respond) -> None:
        ack()
        user, value = body["user"]["id"], unpack(action.get("value"))
        number = str(value.get("n", ""))
        if refused(identity, user, "invoice.mark_paid", respond, deal_id=read(views.deal_of_invoice, number)):
            return
        amount = value.get("a")
        if type(amount) is not int:  # a button without the amount it showed: the balance now
            _, today, _ = moment(services)
            amount = read(views.invoice, number, today).balance.amount
        answer(respond, pay(number, amount, payment_reference(number, _click_key(body, action, value)), user))

    def resend(number: str, user: str, request_key: str) -> str:
        done = run(resend_invoice, invoice_number=number, actor=user, request_key=request_key)
        if done is Done.ALREADY:
            return (f":information_source: Already done: `{escape(number)}` was resent for this request before; "
                    "nothing changed.")
        return (f":outbox_tray: Invoice `{escape(number)}` will be sent again to the billing contact."
                f"{_not_yet(services, 'invoice.deliver')}")

    def pay(number: str, amount: int, reference: str, user: str) -> str:
        done = run(record_payment, invoice_number=number, amount=amount, method=PAYMENT_METHOD,
                   reference=reference, actor=user)
        if done is Done.ALREADY:
            return (f":information_source: Already done: the payment with reference `{escape(reference)}` is recorded; "
                    "nothing changed.")
        _, today, _ = moment(services)
        invoice = read(views.invoice, number, today)
        state = "paid in full" if invoice.balance.amount == 0 else f"{invoice.balance} still open"
        return (f":white_check_mark: Payment of {Money(amount, invoice.gross.currency)} on `{escape(number)}` "
                f"recorded (reference `{escape(reference)}`): {state}.")

    # --- /license -------------------------------------------------------------------------

    @app.command("/license")
    def license_command(ack: Callable[..., Any], command: dict[str, Any], respond: Respond) -> None:
        parsed = parsed_or_answered(ack, "/license", parse_license, command)
        if parsed is None:
            return
        user = command["user_id"]
        if isinstance(parsed, Lookup):
            if not refused(identity, user, "license.view", respond):
                answer_lookup(services, user=user, query=parsed.query, key=card_key(command), prefix="license",
                              command="/license", render=licenses, respond=respond)
            return
        assert isinstance(parsed, LicenseSuspend | LicenseReinstate)
        verb = "suspend" if isinstance(parsed, LicenseSuspend) else "reinstate"
        if not refused(identity, user, "license.suspend", respond,
                       deal_id=read(views.deal_of_license, parsed.license_id)):
            answer(respond, set_license(parsed.license_id, verb, parsed.reason, user))

    register_followups(app, identity, prefix="license", permission="license.view", render=licenses)

    @app.action(LICENSE_SUSPEND)
    @app.action(LICENSE_REINSTATE)
    def ask_reason(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any], respond: Respond,
                   client: Any) -> None:
        ack()
        user, value = body["user"]["id"], unpack(action.get("value"))
        license_id = int(value.get("l", 0))
        if refused(identity, user, "license.suspend", respond, deal_id=read(views.deal_of_license, license_id)):
            return
        verb = "suspend" if action["action_id"] == LICENSE_SUSPEND else "reinstate"
        metadata = pack(l=license_id, v=verb, u=body.get("response_url") or "")
        client.views_open(trigger_id=body["trigger_id"],
                          view=license_modal(read(views.license, license_id), verb, metadata))

    @app.view(LICENSE_MODAL)
    def reason_given(ack: Callable[..., Any], body: dict[str, Any], view: dict[str, Any], client: Any) -> None:
        reason = (((view.get("state") or {}).get("values") or {}).get("reason", {}).get("reason", {})
                  .get("value") or "").strip()
        if not reason:
            ack(response_action="errors", errors={"reason": "Say why: it goes on the customer's timeline."})
            return
        ack()
        user, meta = body["user"]["id"], unpack(view.get("private_metadata"))
        license_id, verb = int(meta.get("l", 0)), str(meta.get("v"))

        def tell(text: str) -> None:  # a view submission has no response_url: use the card's, or a DM
            if meta.get("u"):
                WebhookClient(str(meta["u"])).send(text=text, response_type="ephemeral", replace_original=False)
            else:
                client.chat_postMessage(channel=user, text=text)

        if not identity.allowed(user, "license.suspend", deal_id=read(views.deal_of_license, license_id)):
            tell(identity.refusal("license.suspend"))
            return
        try:
            tell(set_license(license_id, verb, reason, user))
        except LedgerError as error:  # the error handler cannot answer here: there is no response_url
            tell(f":warning: {error}")

    def set_license(license_id: int, verb: str, reason: str, user: str) -> str:
        step = suspend_license if verb == "suspend" else reinstate_license
        done = run(step, license_id, reason=reason, actor=user)
        item = read(views.license, license_id)
        what = f"License #{license_id} ({escape(item.product)} × {item.seats}, {escape(item.customer)})"
        if done is Done.ALREADY:
            return f":information_source: Already done: {what} is {item.status}; nothing changed."
        return f":white_check_mark: {what} is now {item.status}.{_not_yet(services, 'license.provision')}"

    # --- /collect -------------------------------------------------------------------------

    @app.command("/collect")
    def collect_command(ack: Callable[..., Any], command: dict[str, Any], respond: Respond) -> None:
        parsed = parsed_or_answered(ack, "/collect", parse_collect, command)
        if parsed is None:
            return
        user, key = command["user_id"], card_key(command)
        if isinstance(parsed, Lookup):
            if not refused(identity, user, "invoice.view", respond):
                answer_lookup(services, user=user, query=parsed.query, key=key, prefix="collect",
                              command="/collect", render=collections, respond=respond)
            return
        assert isinstance(parsed, CollectStatement)
        if refused(identity, user, "collect.statement", respond):
            return
        found = resolve(services, parsed.customer)
        if isinstance(found, dict):
            customer_id = _customer_id(services, found)
            answer(respond, statement(customer_id, user, f"slash:{key}"))
        elif found:  # which customer? the pick shows their debts, with the statement button
            respond(**pick_list("collect", parsed.customer, found, {"k": key}), response_type="ephemeral")
        else:
            answer(respond, f":mag: No customer matches `{escape(parsed.customer)}`; nothing was sent.")

    register_followups(app, identity, prefix="collect", permission="invoice.view", render=collections)

    @app.action(COLLECT_STATEMENT)
    def statement_button(ack: Callable[..., Any], body: dict[str, Any], action: dict[str, Any],
                         respond: Respond) -> None:
        ack()
        user, value = body["user"]["id"], unpack(action.get("value"))
        if not refused(identity, user, "collect.statement", respond):
            answer(respond, statement(int(value.get("c", 0)), user, f"button:{_click_key(body, action, value)}"))

    def statement(customer_id: int, user: str, request_key: str) -> str:
        name = escape(read(views.customer, customer_id).name)
        done = run(send_statement, customer_id, actor=user, request_key=request_key)
        if done is Done.ALREADY:
            return f":information_source: Already done: a statement for {name} was requested; nothing changed."
        return (f":email: A statement of account for {name} is on its way to their billing contact."
                f"{_not_yet(services, 'email.send')}")  # the statement goes by email


# --- what each lookup shows --------------------------------------------------------------

def invoice_renderer(services: Services, identity: Identity) -> Render:
    def render(user: str, target: dict[str, Any], key: str, offset: int) -> Message:
        _, today, _ = moment(services)
        kind, ref = target.get("t"), str(target.get("r", ""))
        read = services.ledger.read
        finance = may_see(services, identity, user, "invoice.mark_paid")
        common = {"today": today, "finance": finance, "key": key, "size": PAGE,
                  "target": {"t": kind, "r": ref, "k": key}}
        if kind == "invoice":
            page = views.Page((read(views.invoice, ref, today),), 0, 1)
            return invoice_cards(f"Invoice {ref}", page, **common)
        if kind == "deal":
            page = read(views.invoices_of, today, deal_id=int(ref), offset=offset, limit=PAGE)
            return invoice_cards(f"Invoices of D-{ref}", page, **common)
        page = read(views.invoices_of, today, customer_id=int(ref), offset=offset, limit=PAGE)
        return invoice_cards(f"Invoices of {read(views.customer, int(ref)).name}", page, **common)

    return render


def license_renderer(services: Services, identity: Identity) -> Render:
    def render(user: str, target: dict[str, Any], key: str, offset: int) -> Message:
        _, _, tz = moment(services)
        kind, ref = target.get("t"), str(target.get("r", ""))
        read = services.ledger.read
        common = {"tz": tz, "finance": may_see(services, identity, user, "license.suspend"), "key": key,
                  "size": PAGE, "target": {"t": kind, "r": ref, "k": key}}
        if kind == "invoice":
            deal_id = read(views.deal_of_invoice, ref)
            if deal_id is None:
                return plain(f"Invoice `{ref}` is not part of a deal, so it has no licenses.")
            kind, ref = "deal", str(deal_id)
        if kind == "deal":
            page = read(views.licenses_of, deal_id=int(ref), offset=offset, limit=PAGE)
            return license_cards(f"Licenses of D-{ref}", page, **common)
        page = read(views.licenses_of, customer_id=int(ref), offset=offset, limit=PAGE)
        return license_cards(f"Licenses of {read(views.customer, int(ref)).name}", page, **common)

    return render


def aging_renderer(services: Services, identity: Identity) -> Render:
    def render(user: str, target: dict[str, Any], key: str, offset: int) -> Message:
        _, today, _ = moment(services)
        customer_id = _customer_id(services, target)
        read = services.ledger.read
        return aging_card(read(views.customer, customer_id),
                          read(views.aging, today, customer_id=customer_id, offset=offset, limit=PAGE),
                          finance=may_see(services, identity, user, "collect.statement"), key=key, size=PAGE)

    return render


# --- helpers -----------------------------------------------------------------------------

def _customer_id(services: Services, target: dict[str, Any]) -> int:
    kind, ref = target.get("t"), str(target.get("r", ""))
    if kind == "customer":
        return int(ref)
    if kind == "deal":
        return services.ledger.read(views.customer_of, deal_id=int(ref))
    return services.ledger.read(views.customer_of, invoice=ref)


def _number(services: Services, typed: str) -> str:
    """The invoice number as stored (numbers are matched in any case)."""
    return services.ledger.read(views.invoice_number, typed) or typed


def _click_key(body: dict[str, Any], action: dict[str, Any], value: dict[str, Any]) -> str:
    """The same for every press of one button on one card: the card's key (its trigger id)
    and the button; without one, the message and the button."""
    card = value.get("k") or (body.get("container") or {}).get("message_ts") or action.get("action_ts", "")
    return f"{card}:{action.get('action_id')}"


def payment_reference(number: str, request: str) -> str:
    """A payment's reference for one request (unique in the ledger, at most 120 characters)."""
    reference = f"slack:{number}:{request}"
    if len(reference) > 120:
        reference = f"slack:{number}:{hashlib.sha256(request.encode()).hexdigest()[:32]}"
    return reference[:120]


def _not_yet(services: Services, kind: str) -> str:
    """Say so plainly when, as configured, the side effect is only written to the outbox file."""
    note = services.unsent.get(kind)
    return f"\n_Note: {note}; until then it is written to the outbox file._" if note else ""
