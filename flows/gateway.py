"""The payment gateway port: what flows need from Stripe (or a bank) in our own words.

Adapters implement it (adapters/stripe_gateway.py, adapters/manual_gateway.py); flows
only see these dataclasses, never an SDK object. Every charge carries our operation id
(`charge:<invoice id>:<attempt>`, also the idempotency key) so a charge whose answer was
lost can be found again by asking, never by charging again."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    SOFT_DECLINE = "soft_decline"  # may succeed later (insufficient funds, generic decline): retried on schedule
    HARD_DECLINE = "hard_decline"  # will not succeed without the customer (stolen card, needs authentication)
    UNKNOWN = "unknown"            # the request may have committed and the answer was lost
    NOT_FOUND = "not_found"        # lookup only: the gateway has no charge for this operation


@dataclass(frozen=True)
class GatewayCustomer:
    customer_id: int          # ours
    name: str
    email: str | None
    gateway_ref: str | None = None  # cus_… once created


@dataclass(frozen=True)
class PaymentMethodOnFile:
    customer_ref: str         # cus_…
    method_ref: str           # pm_…
    brand: str = ""
    last4: str = ""


@dataclass(frozen=True)
class ChargeRequest:
    charge_id: int
    invoice_id: int
    invoice_number: str
    attempt: int
    amount: int               # minor units
    currency: str
    customer_ref: str
    method_ref: str

    @property
    def operation_id(self) -> str:
        """Our id for the operation: the idempotency key and the metadata the lookup searches."""
        return charge_key(self.invoice_id, self.attempt)


@dataclass(frozen=True)
class ChargeResult:
    outcome: Outcome
    gateway_ref: str | None = None   # pi_… when the gateway knows the charge
    code: str | None = None          # decline or error code, for people and the retry policy
    message: str = ""
    amount: int | None = None


@dataclass(frozen=True)
class CheckoutRequest:
    link_id: int
    reference: str            # PL-…, also on the bank transfer for the manual gateway
    customer_ref: str | None
    amount: int
    currency: str
    description: str
    invoice_numbers: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Checkout:
    gateway_ref: str | None   # cs_… for Stripe Checkout; None for a bank transfer
    url: str | None
    instructions: str = ""    # bank details with the single reference (manual gateway)


@dataclass(frozen=True)
class CheckoutState:
    paid: bool
    amount: int
    gateway_ref: str
    payment_ref: str | None   # pi_… that paid it
    metadata: dict[str, str] = field(default_factory=dict)


class PaymentGateway(Protocol):
    name: str
    charges_cards: bool       # False: invoices wait for a transfer (manual gateway)

    def ensure_customer(self, customer: GatewayCustomer) -> str: ...

    def attach_method(self, customer_ref: str, method_token: str) -> PaymentMethodOnFile: ...

    def charge(self, request: ChargeRequest) -> ChargeResult:
        """Off-session charge. Returns UNKNOWN (never raises) when the answer was lost
        after the request may have reached the gateway; raises for plain failures
        that did not reach it (the relay retries those)."""
        ...

    def lookup(self, request: ChargeRequest) -> ChargeResult:
        """Find the charge of this operation (by our operation id); NOT_FOUND if none."""
        ...

    def checkout(self, request: CheckoutRequest) -> Checkout: ...

    def checkout_state(self, gateway_ref: str) -> CheckoutState: ...

    def charge_state(self, gateway_ref: str) -> tuple[ChargeResult, dict[str, str]]:
        """The charge's current state from the API, with its metadata (webhooks read this)."""
        ...


def charge_key(invoice_id: int, attempt: int) -> str:
    return f"charge:{invoice_id}:{attempt}"
