"""Stripe through its official SDK: the customer, the card on file, the off-session
PaymentIntent (confirm=True) keyed `charge:<invoice id>:<attempt>` with our ids in its
metadata, Checkout Sessions for payment links, and lookups for the reconciler.

A lost answer (connection dropped, timeout, a 5xx) is reported as UNKNOWN, never
retried here: the SDK's own network retries are off, because the reconciler — not a
second request — decides what happened."""
from __future__ import annotations

from typing import Any

import stripe

from adapters.crashpoints import crashpoint
from flows.errors import InvalidInput
from flows.gateway import (ChargeRequest, ChargeResult, Checkout, CheckoutRequest, CheckoutState, GatewayCustomer,
                           Outcome, PaymentMethodOnFile)
from flows.outbox import PermanentFailure, RetryAfter

# Declines that will not succeed on a retry without the customer (Stripe's decline codes).
HARD_DECLINES = frozenset({
    "authentication_required", "card_not_supported", "currency_not_supported", "expired_card", "fraudulent",
    "incorrect_number", "invalid_number", "invalid_account", "lost_card", "merchant_blacklist",
    "new_account_information_available", "pickup_card", "restricted_card", "revocation_of_all_authorizations",
    "revocation_of_authorization", "security_violation", "stolen_card", "stop_payment_order",
    "transaction_not_allowed", "incorrect_cvc", "invalid_cvc", "invalid_expiry_month", "invalid_expiry_year",
})
OPERATION = "closeloop_operation"  # metadata key holding our operation id (= the idempotency key)


def classify_decline(code: str | None, decline_code: str | None) -> Outcome:
    for candidate in (decline_code, code):
        if candidate in HARD_DECLINES:
            return Outcome.HARD_DECLINE
    return Outcome.SOFT_DECLINE


class StripeGateway:
    name = "stripe"
    charges_cards = True

    def __init__(self, api_key: str, *, api_base: str | None = None, timeout: float = 30.0,
                 return_url: str = "https://closeloop.invalid/paid") -> None:
        if not api_key:
            raise InvalidInput("CLOSELOOP_GATEWAY=stripe needs STRIPE_API_KEY")
        bases: Any = {"api": api_base.rstrip("/")} if api_base else None
        self.client = stripe.StripeClient(api_key, base_addresses=bases, max_network_retries=0,
                                          http_client=stripe.new_default_http_client(timeout=timeout))
        self.return_url = return_url

    # --- customer and card ------------------------------------------------------------

    def ensure_customer(self, customer: GatewayCustomer) -> str:
        if customer.gateway_ref:
            return customer.gateway_ref
        params: dict[str, Any] = {"name": customer.name, "metadata": {"closeloop_customer": str(customer.customer_id)}}
        if customer.email:
            params["email"] = customer.email
        created = self._call(self.client.v1.customers.create, params,
                             {"idempotency_key": f"customer:{customer.customer_id}"})
        return str(created.id)

    def attach_method(self, customer_ref: str, method_token: str) -> PaymentMethodOnFile:
        try:
            method = self.client.v1.payment_methods.attach(method_token, {"customer": customer_ref})
        except stripe.CardError as error:
            raise InvalidInput(f"the card was refused: {error.user_message or error.code}") from None
        except stripe.InvalidRequestError as error:
            raise InvalidInput(f"Stripe refused the payment method: {error.user_message or error}") from None
        card = _plain(method).get("card") or {}
        self._call(self.client.v1.customers.update, customer_ref,
                   {"invoice_settings": {"default_payment_method": method.id}})
        return PaymentMethodOnFile(customer_ref, str(method.id), str(card.get("brand") or ""),
                                   str(card.get("last4") or ""))

    # --- charges ----------------------------------------------------------------------

    def charge(self, request: ChargeRequest) -> ChargeResult:
        params = {"amount": request.amount, "currency": request.currency.lower(), "customer": request.customer_ref,
                  "payment_method": request.method_ref, "off_session": True, "confirm": True,
                  "metadata": _metadata(request)}
        try:
            intent = self.client.v1.payment_intents.create(params, {"idempotency_key": request.operation_id})
        except stripe.CardError as error:
            body = error.error
            intent = getattr(body, "payment_intent", None) if body else None
            ref = (intent.get("id") if isinstance(intent, dict) else getattr(intent, "id", None)) if intent else None
            decline = getattr(body, "decline_code", None) if body else None
            return ChargeResult(classify_decline(error.code, decline), gateway_ref=ref, code=decline or error.code,
                                message=error.user_message or str(error))
        except (stripe.APIConnectionError, stripe.APIError) as error:
            # The request may have reached Stripe: its outcome is unknown until looked up.
            return ChargeResult(Outcome.UNKNOWN, message=f"{type(error).__name__}: {error}")
        except stripe.RateLimitError as error:
            raise RetryAfter(5, f"Stripe rate limit: {error}") from None
        except stripe.IdempotencyError as error:
            # Our key for this operation was first used with other parameters: a bug of ours,
            # which the same key can never get past, so no retry (and no second key either).
            raise PermanentFailure(f"Stripe refused operation {request.operation_id}: its key was used with "
                                   f"other parameters: {error}") from None
        except (stripe.AuthenticationError, stripe.PermissionError, stripe.InvalidRequestError) as error:
            raise PermanentFailure(f"Stripe refused the request: {error}") from None
        crashpoint("gateway.answered")  # charged, not yet recorded: the redelivery looks it up first
        return _intent_result(intent)

    def lookup(self, request: ChargeRequest) -> ChargeResult:
        """The PaymentIntent carrying our operation id, among the customer's."""
        found = []
        page = self._call(self.client.v1.payment_intents.list, {"customer": request.customer_ref, "limit": 100})
        for intent in map(_plain, page.auto_paging_iter()):
            if (intent.get("metadata") or {}).get(OPERATION) == request.operation_id:
                found.append(intent)
        if not found:
            return ChargeResult(Outcome.NOT_FOUND)
        succeeded = [i for i in found if i.get("status") == "succeeded"]
        return _intent_result(succeeded[0] if succeeded else found[0])

    def charge_state(self, gateway_ref: str) -> tuple[ChargeResult, dict[str, str]]:
        intent = _plain(self._call(self.client.v1.payment_intents.retrieve, gateway_ref))
        return _intent_result(intent), dict(intent.get("metadata") or {})

    # --- payment links ----------------------------------------------------------------

    def checkout(self, request: CheckoutRequest) -> Checkout:
        metadata = {"closeloop_link": request.reference, "closeloop_link_id": str(request.link_id)}
        params: dict[str, Any] = {
            "mode": "payment", "success_url": self.return_url, "cancel_url": self.return_url,
            "client_reference_id": request.reference, "metadata": metadata,
            "payment_intent_data": {"metadata": metadata},
            "line_items": [{"quantity": 1, "price_data": {"currency": request.currency.lower(),
                                                          "unit_amount": request.amount,
                                                          "product_data": {"name": request.description[:250]}}}],
        }
        if request.customer_ref:
            params["customer"] = request.customer_ref
        session = self._call(self.client.v1.checkout.sessions.create, params,
                             {"idempotency_key": f"checkout:{request.reference}"})
        return Checkout(str(session.id), str(session.url))

    def checkout_state(self, gateway_ref: str) -> CheckoutState:
        session = _plain(self._call(self.client.v1.checkout.sessions.retrieve, gateway_ref))
        intent = session.get("payment_intent")
        return CheckoutState(paid=session.get("payment_status") == "paid", amount=int(session.get("amount_total") or 0),
                             gateway_ref=str(session["id"]),
                             payment_ref=intent if isinstance(intent, str) or intent is None else intent.get("id"),
                             metadata=dict(session.get("metadata") or {}))

    # --- helpers ----------------------------------------------------------------------

    def _call(self, method: Any, *args: Any) -> Any:
        try:
            return method(*args)
        except stripe.RateLimitError as error:
            raise RetryAfter(5, f"Stripe rate limit: {error}") from None
        except (stripe.AuthenticationError, stripe.PermissionError) as error:
            raise PermanentFailure(f"Stripe refused our credentials: {error}") from None


def _metadata(request: ChargeRequest) -> dict[str, str]:
    return {OPERATION: request.operation_id, "closeloop_charge": str(request.charge_id),
            "closeloop_invoice": request.invoice_number, "closeloop_attempt": str(request.attempt)}


def _plain(obj: Any) -> dict[str, Any]:
    """SDK objects are not dicts (stripe ≥ 15): read them as plain data."""
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _intent_result(intent: Any) -> ChargeResult:
    intent = _plain(intent)
    status, ref = intent.get("status"), str(intent.get("id"))
    amount = intent.get("amount_received") or intent.get("amount")
    if status == "succeeded":
        return ChargeResult(Outcome.SUCCEEDED, gateway_ref=ref, amount=amount)
    if status == "requires_action":  # off-session: the customer must authenticate, we cannot
        return ChargeResult(Outcome.HARD_DECLINE, gateway_ref=ref, code="authentication_required",
                            message="the card needs the customer to authenticate")
    if status in ("requires_payment_method", "canceled"):
        error = intent.get("last_payment_error") or {}
        code, decline = error.get("code"), error.get("decline_code")
        return ChargeResult(classify_decline(code, decline), gateway_ref=ref, code=decline or code or status,
                            message=str(error.get("message") or ""))
    return ChargeResult(Outcome.UNKNOWN, gateway_ref=ref, message=f"payment intent {status}")  # processing

