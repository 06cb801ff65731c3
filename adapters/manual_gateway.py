"""The manual gateway: bank transfer. Nothing is charged; invoices wait for a payment
that finance records (the finance button, `record_payment`) or that a remittance email
announces. Its payment link is the bank details with one reference for all invoices."""
from __future__ import annotations

from flows.errors import InvalidInput
from flows.gateway import (ChargeRequest, ChargeResult, Checkout, CheckoutRequest, CheckoutState, GatewayCustomer,
                           Outcome, PaymentMethodOnFile)
from flows.money import Money


class ManualGateway:
    name = "manual"
    charges_cards = False

    def __init__(self, bank_details: str) -> None:
        self.bank_details = bank_details

    def ensure_customer(self, customer: GatewayCustomer) -> str:
        raise InvalidInput("the manual gateway (bank transfer) keeps no cards: set CLOSELOOP_GATEWAY=stripe")

    def attach_method(self, customer_ref: str, method_token: str) -> PaymentMethodOnFile:
        raise InvalidInput("the manual gateway (bank transfer) keeps no cards: set CLOSELOOP_GATEWAY=stripe")

    def charge(self, request: ChargeRequest) -> ChargeResult:
        raise InvalidInput("the manual gateway does not charge: the invoice waits for a bank transfer")

    def lookup(self, request: ChargeRequest) -> ChargeResult:
        return ChargeResult(Outcome.NOT_FOUND)

    def checkout(self, request: CheckoutRequest) -> Checkout:
        amount = Money(request.amount, request.currency)
        return Checkout(None, None, instructions=f"{self.bank_details}\nAmount: {amount}\n"
                                                 f"Reference (please quote it exactly): {request.reference}")

    def checkout_state(self, gateway_ref: str) -> CheckoutState:
        raise InvalidInput("bank transfers have no checkout to ask about; finance records the transfer")

    def charge_state(self, gateway_ref: str) -> tuple[ChargeResult, dict[str, str]]:
        raise InvalidInput("bank transfers have no gateway charges")
