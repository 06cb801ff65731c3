"""Every ledger table, imported in one place so the metadata is complete
(for Alembic and for anything that needs all mappers configured)."""
from flows.access import RoleGrant
from flows.base import Base
from flows.billing import Charge, Payment, Subscription, SubscriptionChange, SubscriptionPeriod
from flows.catalog import Sku, SkuPrice
from flows.charges import ChargeCheck, ChargePlan, GatewayAccount
from flows.collections import DunningNotice, PaymentLink, PolicySuspension
from flows.deals import Deal, SignatureEnvelope
from flows.gap_models import GapDigest, GapRun, GapState, VendorUsage
from flows.external_invoices import ExternalInvoiceRecord
from flows.esign import DocuSignEnvelope
from flows.inbox import InboundEvent
from flows.invoices import Invoice, InvoiceLine, NumberSeries
from flows.licenses import License
from flows.mail import ContactFlag, InboundMail, MailAttachment, MailCheckpoint, OutboundMail, PaymentClaim
from flows.outbox import OutboxMessage
from flows.parties import Contact, Customer
from flows.quotes import Quote, QuoteLine, QuoteVersion
from flows.timeline import Event

__all__ = [
    "Base", "Charge", "DocuSignEnvelope", "GapDigest", "GapRun", "GapState", "VendorUsage", "Contact", "Customer", "Deal", "Event", "InboundEvent", "Invoice", "InvoiceLine",
    "License", "NumberSeries", "OutboxMessage", "Payment", "Quote", "QuoteLine", "QuoteVersion", "RoleGrant",
    "SignatureEnvelope", "Sku", "SkuPrice", "Subscription", "SubscriptionPeriod",
    "ContactFlag", "InboundMail", "MailAttachment", "MailCheckpoint", "OutboundMail", "PaymentClaim",
    "SubscriptionChange", "ExternalInvoiceRecord",
    "ChargeCheck", "ChargePlan", "DunningNotice", "GatewayAccount", "PaymentLink", "PolicySuspension",
]
