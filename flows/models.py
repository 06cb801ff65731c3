"""Every ledger table, imported in one place so the metadata is complete
(for Alembic and for anything that needs all mappers configured)."""
from flows.access import RoleGrant
from flows.base import Base
from flows.billing import Charge, Payment, Subscription, SubscriptionPeriod
from flows.catalog import Sku, SkuPrice
from flows.deals import Deal, SignatureEnvelope
from flows.esign import DocuSignEnvelope
from flows.inbox import InboundEvent
from flows.invoices import Invoice, InvoiceLine, NumberSeries
from flows.licenses import License
from flows.outbox import OutboxMessage
from flows.parties import Contact, Customer
from flows.quotes import Quote, QuoteLine, QuoteVersion
from flows.timeline import Event

__all__ = [
    "Base", "Charge", "DocuSignEnvelope", "Contact", "Customer", "Deal", "Event", "InboundEvent", "Invoice", "InvoiceLine",
    "License", "NumberSeries", "OutboxMessage", "Payment", "Quote", "QuoteLine", "QuoteVersion", "RoleGrant",
    "SignatureEnvelope", "Sku", "SkuPrice", "Subscription", "SubscriptionPeriod",
]
