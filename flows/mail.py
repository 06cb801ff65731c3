"""The email side of the ledger: every inbound message stored once with what was
made of it, the per-mailbox IMAP checkpoint, our own outbound messages (their
Message-IDs are what customers' replies thread on), contact flags (bouncing,
unsubscribed) and payment claims for finance.

Database only: the watcher and the parsers (handlers/, parsers/) hand in plain facts
(`InboundFacts`); the mailer (adapters/) reports outcomes by Message-ID. The routes
from a message's kind and intent to what happens sit in the tables at the bottom."""
from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint, case, func, select
from sqlalchemy.orm import Mapped, Session, defer, mapped_column

from flows import bulk
from flows.base import Base, Id, enum_column
from flows.deals import Deal
from flows.errors import InvalidInput, NotFound
from flows.inbox import InboundEvent
from flows.invoices import Invoice
from flows.ledger import Tx
from flows.parties import Contact, Customer
from flows.quotes import Quote
from flows.steps import announce


class MailStatus(enum.Enum):
    PENDING = "pending"    # stored as fetched, not classified yet (classify_stored does that next)
    ROUTED = "routed"      # matched to a deal and handed to its route
    IGNORED = "ignored"    # auto-reply: recorded, nothing to do
    TRIAGE = "triage"      # matched to no deal: a person must look (listed in Slack and the CLI)
    REVIEW = "review"      # matched, but not trusted (spoofed sender, refused attachment)
    BOUNCE = "bounce"      # a delivery report tied to our message
    FAILED = "failed"      # its route raised; kept with the error for a person


class MailCheckpoint(Base):
    """How far each mailbox has been read: advanced in the transaction that stores the messages."""

    __tablename__ = "mail_checkpoints"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(120), unique=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class InboundMail(Base):
    __tablename__ = "inbound_mail"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(32))             # "sales", "finance"
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[str] = mapped_column(String(255), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    from_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16))             # reply, auto_reply, bounce
    intent: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)                   # the new text of a reply
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    outbound_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_mail.id"))
    matched_by: Mapped[str | None] = mapped_column(String(16))  # token, thread, number
    status: Mapped[MailStatus] = mapped_column(enum_column(MailStatus), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime]


class MailAttachment(Base):
    __tablename__ = "mail_attachments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_mail.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)   # None when refused: hostile bytes are not kept
    refused: Mapped[str | None] = mapped_column(String(64))  # the policy's reason code


class OutboundStatus(enum.Enum):
    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"      # 5xx or refused recipients: a person must act
    BOUNCED = "bounced"    # accepted, then a DSN came back
    SUPPRESSED = "suppressed"  # not sent: every recipient is flagged bouncing or unsubscribed


class OutboundMail(Base):
    __tablename__ = "outbound_mail"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)  # "<…>", fixed when queued: retries keep it
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"), index=True)
    template: Mapped[str] = mapped_column(String(32))
    recipients: Mapped[list[Any]]
    subject: Mapped[str] = mapped_column(String(500))
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[OutboundStatus] = mapped_column(enum_column(OutboundStatus), index=True)
    error: Mapped[str] = mapped_column(Text, default="")
    relay: Mapped[str | None] = mapped_column(String(16))     # "primary" or "fallback"
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class ContactFlag(Base):
    __tablename__ = "contact_flags"
    __table_args__ = (UniqueConstraint("email", "flag"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    flag: Mapped[str] = mapped_column(String(16))     # "bouncing", "unsubscribed"
    reason: Mapped[str] = mapped_column(Text)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_mail.id"))
    flagged_at: Mapped[datetime]


class PaymentClaim(Base):
    """A customer says they paid: finance confirms it against the bank."""

    __tablename__ = "payment_claims"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id"), index=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_mail.id"), unique=True)
    from_address: Mapped[str] = mapped_column(String(320))
    text: Mapped[str] = mapped_column(Text)
    claimed_at: Mapped[datetime]
    confirmed: Mapped[int] = mapped_column(Integer, default=0)


# --- what the watcher hands in ------------------------------------------------------

@dataclass(frozen=True)
class AttachmentFacts:
    filename: str
    content_type: str
    size: int
    sha256: str
    data: bytes | None
    refused: str | None = None    # reason code from the attachment policy
    detail: str = ""


@dataclass(frozen=True)
class InboundFacts:
    """One fetched message as the pure parsers read it."""

    uid: int
    raw: bytes
    message_id: str
    content_hash: str
    from_address: str | None
    subject: str
    kind: str                               # reply, auto_reply, bounce
    kind_reason: str = ""
    bounce_of: str | None = None            # Message-ID of our message a DSN answers
    bounce_recipient: str | None = None
    bounce_status: str | None = None
    bounce_permanent: bool = True
    bounce_diagnostic: str = ""
    token_deal_id: int | None = None        # from a verified token in our address (HMAC checked)
    thread_ids: tuple[str, ...] = ()        # In-Reply-To + References
    numbers: tuple[str, ...] = ()           # quote/invoice-like numbers in subject and body
    intent: str = "other"
    text: str = ""
    sender_ok: bool = False                 # From is well-formed and DKIM-aligned (per our A-R)
    sender_reason: str = ""
    message_refused: str | None = None      # whole-message policy refusal (parts, nesting)
    attachments: tuple[AttachmentFacts, ...] = ()


@dataclass(frozen=True)
class RawMail:
    """A fetched message before any parsing: its bytes and what identifies it."""

    uid: int
    raw: bytes
    message_id: str
    content_hash: str
    size: int | None = None   # the whole message's, when `raw` holds only its beginning


@dataclass
class Stored:
    new: list[int] = field(default_factory=list)
    duplicates: int = 0
    pending: int = 0      # stored as fetched, left for classify_stored


def read_checkpoint(session: Session, mailbox: str) -> tuple[int, int] | None:
    row = session.scalar(select(MailCheckpoint).where(MailCheckpoint.mailbox == mailbox))
    return None if row is None else (row.uidvalidity, row.last_uid)


def store_messages(tx: Tx, *, mailbox: str, role: str, uidvalidity: int, last_uid: int,
                   messages: list[InboundFacts], guarded: bool = False) -> Stored:
    """Store a batch fetched from one mailbox, route each new message, and move the
    checkpoint to `last_uid` — all in this transaction, so a crash before commit
    leaves the checkpoint behind and the batch is fetched again (and de-duplicated).

    Set-based: one statement claims the whole batch, the deals it may match are read
    in a few queries, the rows are written in batches. A route that raises aborts the
    batch (RouteFailed); the caller runs it again `guarded`, where each message routes
    inside its own savepoint and a failing one is kept as FAILED with its error.

    The watcher stores with store_raw and classifies with classify_stored instead, so
    that fetching never waits for parsing; this one-step form takes mail parsed already."""
    stored = Stored()
    new: list[tuple[InboundMail, InboundFacts]] = []
    for facts in _claim_new(tx, messages, stored):
        new.append((InboundMail(mailbox=mailbox, role=role, uidvalidity=uidvalidity, uid=facts.uid,
                                message_id=facts.message_id[:255], content_hash=facts.content_hash, raw=facts.raw,
                                status=MailStatus.PENDING, received_at=tx.now), facts))
        _fill(new[-1][0], facts)
    if new:
        tx.session.add_all([mail for mail, _ in new])
        tx.session.flush()
        _classify(tx, new, guarded, stored)
    _advance(tx, mailbox, uidvalidity, last_uid)
    return stored


def store_raw(tx: Tx, *, mailbox: str, role: str, uidvalidity: int, last_uid: int,
              messages: list[RawMail]) -> Stored:
    """Store a batch as fetched and move the checkpoint to `last_uid`, in this
    transaction, without parsing anything: the rows wait as PENDING for
    classify_stored. Ingestion runs at the speed of the FETCH, and a crash between
    the two leaves stored rows that the next pass classifies — never lost, never
    fetched again. One claim statement and one INSERT for the whole batch."""
    stored = Stored()
    rows = [{"uid": m.uid, "message_id": m.message_id[:255], "content_hash": m.content_hash, "raw": m.raw}
            for m in _claim_new(tx, messages, stored)]
    bulk.insert_rows(tx.session.connection(), InboundMail.__table__, rows,  # type: ignore[arg-type]
                     mailbox=mailbox, role=role, uidvalidity=uidvalidity, from_address=None, subject="", kind="",
                     intent=None, text="", deal_id=None, outbound_id=None, matched_by=None,
                     status=MailStatus.PENDING, reason="", received_at=tx.now)
    stored.pending = len(rows)
    _advance(tx, mailbox, uidvalidity, last_uid)
    return stored


def pending_mail(session: Session, limit: int, after_id: int = 0, *, max_bytes: int = 64 << 20,
                 head_over: int | None = None) -> list[tuple[int, RawMail]]:
    """Stored messages not classified yet, oldest first (what a crash or a store-only
    pass left): at most `limit` of them and `max_bytes` of raw mail, but at least one.
    A message over `head_over` bytes comes as its first 256 KiB only (headers are
    all a refusal by size reads), with `size` telling its whole length."""
    size = func.length(InboundMail.raw)
    sizes = session.execute(select(InboundMail.id, size)
                            .where(InboundMail.status == MailStatus.PENDING, InboundMail.id > after_id)
                            .order_by(InboundMail.id).limit(limit)).all()
    ids, total = [], 0
    for mail_id, length in sizes:
        part = min(length or 0, HEAD_BYTES) if head_over is not None and (length or 0) > head_over else length or 0
        if ids and total + part > max_bytes:
            break
        ids.append(mail_id)
        total += part
    if not ids:
        return []
    raw = InboundMail.raw if head_over is None else case((size > head_over, func.substr(InboundMail.raw, 1, HEAD_BYTES)),
                                                           else_=InboundMail.raw)
    rows = session.execute(select(InboundMail.id, InboundMail.uid, raw.label("raw"), size.label("size"),
                                  InboundMail.message_id, InboundMail.content_hash)
                           .where(InboundMail.id.in_(ids)).order_by(InboundMail.id)).all()
    return [(row.id, RawMail(row.uid, bytes(row.raw), row.message_id, row.content_hash, row.size)) for row in rows]


HEAD_BYTES = 256 << 10


def classify_stored(tx: Tx, *, messages: list[tuple[int, InboundFacts]], guarded: bool = False) -> Stored:
    """Classify, match and route stored PENDING messages (by id, with what the parsers
    read from their bytes). A message no longer pending was classified by an earlier
    pass (a replay after a crash, a second classifier): it is skipped, so each message
    is routed exactly once. Failures behave as in store_messages (RouteFailed, guarded)."""
    stored = Stored()
    facts_of = dict(messages)
    rows = tx.session.scalars(select(InboundMail).options(defer(InboundMail.raw))  # the parsers had the bytes
                              .where(InboundMail.id.in_(sorted(facts_of)), InboundMail.status == MailStatus.PENDING)
                              .order_by(InboundMail.id).with_for_update()).all()
    new = [(mail, facts_of[mail.id]) for mail in rows]
    stored.duplicates = len(facts_of) - len(new)
    for mail, facts in new:
        _fill(mail, facts)
    if new:
        _classify(tx, new, guarded, stored)
    return stored


def _claim_new(tx: Tx, messages: list[Any], stored: Stored) -> list[Any]:
    """The messages of a batch not stored before (InboundFacts or RawMail). Same
    Message-ID and same content: the same mail fetched twice, delivered twice, or seen
    in two mailboxes. A re-used Message-ID with other content is kept."""
    keyed = [(mail_key(m.message_id, m.content_hash), m) for m in messages]
    claimed = _claim_batch(tx.session, [(k, m.content_hash) for k, m in keyed], tx.now)
    new = []
    for key, message in keyed:
        if key not in claimed:
            stored.duplicates += 1
            continue
        claimed.discard(key)  # a second copy inside the same batch is a duplicate too
        new.append(message)
    return new


def _fill(mail: InboundMail, facts: InboundFacts) -> None:
    """What the parsers read, onto the stored row (still TRIAGE until its route says otherwise)."""
    mail.from_address, mail.subject, mail.kind = facts.from_address, facts.subject[:500], facts.kind
    mail.intent = facts.intent if facts.kind == "reply" else None
    mail.text, mail.status = facts.text, MailStatus.TRIAGE


def _classify(tx: Tx, new: list[tuple[InboundMail, InboundFacts]], guarded: bool, stored: Stored) -> None:
    """Attachments, then each message's route, with the batch's possible matches read once."""
    tx.session.add_all([MailAttachment(inbound_id=mail.id, filename=a.filename[:255],
                                       content_type=a.content_type[:120], size=a.size, sha256=a.sha256,
                                       data=None if a.refused else a.data, refused=a.refused)
                        for mail, facts in new for a in facts.attachments])
    tx.session.flush()
    lookup = Lookup.load(tx.session, [facts for _, facts in new])
    tx.session.info["mail.lookup"] = lookup
    try:
        for mail, facts in new:
            _route(tx, mail, facts, guarded)
            if mail.deal_id is not None:
                lookup.by_message_id.setdefault(mail.message_id, mail.deal_id)
            stored.new.append(mail.id)
    finally:
        tx.session.info.pop("mail.lookup", None)


def mail_key(message_id: str, content_hash: str) -> str:
    """The de-duplication key of a message (flows.inbox, source "email")."""
    return f"{message_id[:180]}#{content_hash[:16]}"


def seen_mail(session: Session, keys: list[str]) -> set[str]:
    """Which of these keys are stored already (read-only; the claim at store time decides)."""
    query = select(InboundEvent.external_id).where(InboundEvent.source == "email")
    return {row[0] for row in _in(session, query, InboundEvent.external_id, set(keys))}


class RouteFailed(Exception):
    """A message's route raised while the batch ran unguarded: run it again guarded."""


def _claim_batch(session: Session, items: list[tuple[str, str]], now: datetime) -> set[str]:
    """flows.inbox.claim for a whole batch, in one or two statements: which keys were new."""
    if not items:
        return set()
    connection = session.connection()
    table = InboundEvent.__table__
    at = bulk.bind(connection, table, "received_at", now)  # type: ignore[arg-type]
    if connection.dialect.name == "postgresql":
        # Concurrent watchers may claim the same mail: the database decides, in one statement.
        result = connection.exec_driver_sql(
            "INSERT INTO inbound_events (source, external_id, content_hash, received_at) "
            "SELECT 'email', k, h, %s FROM unnest(%s::text[], %s::text[]) AS t(k, h) "
            "ON CONFLICT DO NOTHING RETURNING external_id", (at, [k for k, _ in items], [h for _, h in items]))
        return {row[0] for row in result}
    # SQLite: this transaction holds the write lock from BEGIN IMMEDIATE, so what it does
    # not see stored is new, and stays so until it commits.
    fresh = dict(items)
    for key in seen_mail(session, list(fresh)):
        del fresh[key]
    bulk.insert_rows(connection, table, [{"external_id": key, "content_hash": digest}  # type: ignore[arg-type]
                                         for key, digest in fresh.items()], source="email", received_at=now)
    return set(fresh)


def _advance(tx: Tx, mailbox: str, uidvalidity: int, last_uid: int) -> None:
    row = tx.session.scalar(select(MailCheckpoint).where(MailCheckpoint.mailbox == mailbox).with_for_update())
    if row is None:
        tx.session.add(MailCheckpoint(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=last_uid,
                                      updated_at=tx.now))
    elif row.uidvalidity != uidvalidity or last_uid > row.last_uid:
        row.uidvalidity, row.last_uid, row.updated_at = uidvalidity, last_uid, tx.now


def _route(tx: Tx, mail: InboundMail, facts: InboundFacts, guarded: bool) -> None:
    route = KIND_ROUTES.get(facts.kind, _route_reply)
    if not guarded:
        try:
            route(tx, mail, facts)
        except Exception as error:
            raise RouteFailed(f"message {mail.message_id}: {type(error).__name__}: {error}") from error
        return
    # One message's route fails alone: it is kept as FAILED with the error; the others
    # of the batch and the checkpoint go on.
    events, outbox = len(tx._events), len(tx._outbox)
    savepoint = tx.session.begin_nested()
    try:
        route(tx, mail, facts)
        savepoint.commit()
    except Exception as error:  # noqa: BLE001 — recorded on the message for a person
        savepoint.rollback()
        del tx._events[events:], tx._outbox[outbox:]
        mail.status, mail.reason = MailStatus.FAILED, f"{type(error).__name__}: {error}"[:4000]
        mail.deal_id = mail.matched_by = None
        tx.record("mail.route_failed", deal_id=None, customer_id=None, inbound_id=mail.id, error=mail.reason)


# --- matching ------------------------------------------------------------------------

def _in(session: Session, query: Any, column: Any, values: set[Any]) -> list[Any]:
    """Rows of query where column IN values, in chunks (parameter limits)."""
    ordered, rows = sorted(values), []
    for start in range(0, len(ordered), 2000):
        rows += session.execute(query.where(column.in_(ordered[start:start + 2000]))).all()
    return rows


@dataclass
class Lookup:
    """What a batch of messages may match, read in a few queries: our Message-IDs and
    customers' earlier ones -> deal, quote and invoice numbers -> deal, the deals
    themselves (held here, so the session does not reload them per message), our
    outbound rows that bounces answer, and each customer's contact addresses."""

    deals: dict[int, Deal] = field(default_factory=dict)
    by_message_id: dict[str, int] = field(default_factory=dict)
    by_number: dict[str, int] = field(default_factory=dict)
    outbound: dict[str, OutboundMail] = field(default_factory=dict)
    contacts: dict[int, set[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, batch: list[InboundFacts]) -> Lookup:
        found = cls()
        threads = {t for f in batch for t in f.thread_ids}
        bounced = {f.bounce_of for f in batch if f.bounce_of}
        numbers = {n.upper() for f in batch for n in f.numbers}
        for row in _in(session, select(OutboundMail), OutboundMail.message_id, threads | bounced):
            found.outbound[row[0].message_id] = row[0]
            if row[0].deal_id is not None:
                found.by_message_id[row[0].message_id] = row[0].deal_id
        inbound = select(InboundMail.message_id, InboundMail.deal_id).where(InboundMail.deal_id.is_not(None))
        for message_id, deal_id in _in(session, inbound, InboundMail.message_id, threads):
            found.by_message_id.setdefault(message_id, deal_id)
        for number, deal_id in _in(session, select(Quote.number, Quote.deal_id), Quote.number, numbers):
            found.by_number[number] = deal_id
        invoices = select(Invoice.number, Invoice.deal_id)
        for number, deal_id in _in(session, invoices, Invoice.number, numbers):
            found.by_number.setdefault(number, deal_id)
        ids = ({f.token_deal_id for f in batch if f.token_deal_id is not None}
               | set(found.by_message_id.values()) | set(found.by_number.values()))
        for (deal,) in _in(session, select(Deal), Deal.id, ids):
            found.deals[deal.id] = deal
        customers = {d.customer_id for d in found.deals.values()}
        for customer_id, email in _in(session, select(Contact.customer_id, Contact.email), Contact.customer_id,
                                      customers):
            found.contacts.setdefault(customer_id, set()).add(email.lower())
        return found

    def deal(self, session: Session, deal_id: int | None) -> Deal | None:
        if deal_id is None:
            return None
        if deal_id not in self.deals:
            deal = session.get(Deal, deal_id)
            if deal is None:
                return None
            self.deals[deal_id] = deal
        return self.deals[deal_id]


def _lookup(session: Session, facts: InboundFacts) -> Lookup:
    return session.info.get("mail.lookup") or Lookup.load(session, [facts])


def match_deal(session: Session, facts: InboundFacts) -> tuple[Deal | None, str | None]:
    """Our token first (unforgeable), then threading on our Message-IDs, then numbers."""
    lookup = _lookup(session, facts)
    deal = lookup.deal(session, facts.token_deal_id)
    if deal is not None:
        return deal, "token"
    for message_id in reversed(facts.thread_ids):  # References end with the most recent
        deal = lookup.deal(session, lookup.by_message_id.get(message_id))
        if deal is not None:
            return deal, "thread"
    for number in facts.numbers:
        deal = lookup.deal(session, lookup.by_number.get(number.upper()))
        if deal is not None:
            return deal, "number"
    return None, None


def _contact_emails(session: Session, customer_id: int) -> set[str]:
    lookup = session.info.get("mail.lookup")
    if lookup is not None and customer_id in lookup.contacts:
        return lookup.contacts[customer_id]
    return {e.lower() for e in session.scalars(select(Contact.email).where(Contact.customer_id == customer_id))}


def sender_problem(session: Session, deal: Deal, facts: InboundFacts) -> str | None:
    """Why this sender may not accept a quote or claim a payment; None when trusted."""
    if not facts.sender_ok:
        return facts.sender_reason or "sender not authenticated"
    if (facts.from_address or "").lower() not in _contact_emails(session, deal.customer_id):
        return f"sender {facts.from_address} is not a contact of {deal.customer.name}"
    return None


# --- routes by kind -----------------------------------------------------------------

def _route_reply(tx: Tx, mail: InboundMail, facts: InboundFacts) -> None:
    if mail.role == "finance" and tx.policy.invoicing == "external" and _external_invoices(tx, mail):
        return
    deal, how = match_deal(tx.session, facts)
    if deal is None:
        _to_triage(tx, mail, "no deal token, thread or quote/invoice number matched")
        return
    mail.deal_id, mail.matched_by = deal.id, how
    if facts.message_refused:
        _to_review(tx, mail, deal, f"message refused: {facts.message_refused}")
        return
    INTENT_ROUTES.get(facts.intent, _to_rep)(tx, mail, deal, facts)


def _external_invoices(tx: Tx, mail: InboundMail) -> bool:
    """External accounting mode: the accounting system's invoice PDFs in the finance
    mailbox go to extraction and linking ("mail.external_invoice"; flows.external_invoices)."""
    pdfs = list(tx.session.scalars(select(MailAttachment.id).where(
        MailAttachment.inbound_id == mail.id, MailAttachment.refused.is_(None),
        MailAttachment.content_type == "application/pdf")))
    for attachment_id in pdfs:
        tx.enqueue("mail.external_invoice", {"inbound_id": mail.id, "attachment_id": attachment_id},
                   key=f"mail.external_invoice:{attachment_id}", deal_id=None, stream="mail.finance")
    if pdfs:
        mail.status, mail.reason = MailStatus.ROUTED, f"{len(pdfs)} invoice PDF(s) to link"
    return bool(pdfs)


def _record_auto_reply(tx: Tx, mail: InboundMail, facts: InboundFacts) -> None:
    deal, how = match_deal(tx.session, facts)
    mail.deal_id, mail.matched_by = (deal.id if deal else None), how
    mail.status, mail.reason = MailStatus.IGNORED, facts.kind_reason or "auto-reply"
    if deal is not None:
        tx.record("mail.auto_reply", deal_id=deal.id, customer_id=deal.customer_id, actor="customer",
                  inbound_id=mail.id, reason=mail.reason)


def _record_bounce(tx: Tx, mail: InboundMail, facts: InboundFacts) -> None:
    """A delivery report: tie it to our message, flag the recipient, tell the deal."""
    mail.status, mail.reason = MailStatus.BOUNCE, f"{facts.bounce_status or '?'} {facts.bounce_diagnostic}"[:4000]
    outbound = _lookup(tx.session, facts).outbound.get(facts.bounce_of or "")
    if outbound is None:  # a DSN about mail we never sent (or backscatter): a person looks
        _to_triage(tx, mail, f"delivery report for a message we did not send ({facts.bounce_of})")
        mail.status = MailStatus.TRIAGE
        return
    mail.outbound_id, mail.deal_id, mail.matched_by = outbound.id, outbound.deal_id, "thread"
    if not facts.bounce_permanent:
        tx.record("mail.delayed", deal_id=outbound.deal_id, customer_id=None, inbound_id=mail.id,
                  message_id=outbound.message_id, status=facts.bounce_status)
        return
    outbound.status, outbound.error = OutboundStatus.BOUNCED, mail.reason
    recipient = (facts.bounce_recipient or (outbound.recipients or [""])[0]).lower()
    flag_contact(tx, recipient, "bouncing", f"{facts.bounce_status} {facts.bounce_diagnostic}"[:500], mail.id)
    text = (f":warning: Mail to {recipient} bounced ({facts.bounce_status}): "
            f"{outbound.subject} — fix the contact's address")
    _tell(tx, outbound.deal_id, "mail.bounced", text, inbound_id=mail.id, message_id=outbound.message_id,
          recipient=recipient, status=facts.bounce_status, diagnostic=facts.bounce_diagnostic[:500])


# --- routes by intent ---------------------------------------------------------------

def _to_rep(tx: Tx, mail: InboundMail, deal: Deal, facts: InboundFacts) -> None:
    """A question, a change request or anything else: the rep answers in the deal thread."""
    mail.status = MailStatus.ROUTED
    label = {"question": "asks", "change_request": "asks for a change"}.get(facts.intent, "wrote")
    excerpt = facts.text.strip()[:1500] or "(no text)"
    announce(tx, deal, f"mail.{facts.intent}", f":email: {facts.from_address} {label}:\n>{_quote(excerpt)}",
             actor="customer", inbound_id=mail.id, message_id=mail.message_id, intent=facts.intent,
             subject=facts.subject[:200])


def _payment_claim(tx: Tx, mail: InboundMail, deal: Deal, facts: InboundFacts) -> None:
    problem = sender_problem(tx.session, deal, facts)
    if problem:
        _to_review(tx, mail, deal, f"payment claim not recorded: {problem}")
        return
    mail.status = MailStatus.ROUTED
    claim = PaymentClaim(deal_id=deal.id, inbound_id=mail.id, from_address=facts.from_address or "",
                         text=facts.text[:4000], claimed_at=tx.now)
    tx.session.add(claim)
    announce(tx, deal, "payment.claimed", f":moneybag: {facts.from_address} says they paid — finance to confirm:\n"
             f">{_quote(facts.text.strip()[:500])}", actor="customer", inbound_id=mail.id)
    from flows.remittance import apply_remittance  # billing-money's remittance step, when the mail is exact
    apply_remittance(tx, mail, claim, facts)


def _signed_return(tx: Tx, mail: InboundMail, deal: Deal, facts: InboundFacts) -> None:
    """A signed quote or a purchase order: stored, then handed to the verifier (the
    documents issue's parsers/signed_quote.py) through the "mail.signed_return" outbox
    kind. Nothing is accepted here: acceptance follows a verified PDF only."""
    problem = sender_problem(tx.session, deal, facts)
    refused = [a for a in facts.attachments if a.refused]
    pdfs = list(tx.session.scalars(select(MailAttachment).where(
        MailAttachment.inbound_id == mail.id, MailAttachment.refused.is_(None),
        MailAttachment.content_type == "application/pdf")))
    if problem:
        _to_review(tx, mail, deal, f"not accepted: {problem}")
        return
    if not pdfs:
        why = "; ".join(f"{a.filename}: {a.refused} {a.detail}".strip() for a in refused) or "no PDF attached"
        _to_review(tx, mail, deal, f"no usable PDF: {why}")
        return
    mail.status = MailStatus.ROUTED
    for pdf in pdfs:
        tx.enqueue("mail.signed_return", {"deal_id": deal.id, "inbound_id": mail.id, "attachment_id": pdf.id,
                                          "intent": facts.intent, "sender": facts.from_address},
                   key=f"mail.signed_return:{pdf.id}", deal_id=deal.id)
    what = "purchase order" if facts.intent == "purchase_order" else "signed copy"
    announce(tx, deal, "mail.signed_copy_received",
             f":page_facing_up: {what} received from {facts.from_address} "
             f"({', '.join(p.filename for p in pdfs)}), awaiting verification",
             actor="customer", inbound_id=mail.id, attachments=[p.id for p in pdfs], intent=facts.intent)


def _unsubscribe(tx: Tx, mail: InboundMail, deal: Deal, facts: InboundFacts) -> None:
    mail.status = MailStatus.ROUTED
    flag_contact(tx, (facts.from_address or "").lower(), "unsubscribed", facts.text[:500], mail.id)
    announce(tx, deal, "contact.unsubscribed", f":no_bell: {facts.from_address} asked to stop receiving mail",
             actor="customer", inbound_id=mail.id)


def _to_triage(tx: Tx, mail: InboundMail, reason: str) -> None:
    mail.status, mail.reason = MailStatus.TRIAGE, reason
    tx.record("mail.unmatched", deal_id=None, customer_id=None, inbound_id=mail.id, reason=reason)
    tx.enqueue("slack.triage", {"inbound_id": mail.id, "from": mail.from_address, "subject": mail.subject[:200],
                                "reason": reason, "text": mail.text[:500], "mailbox": mail.mailbox},
               key=f"slack.triage:{mail.id}", deal_id=None, stream="mail.triage")


def _to_review(tx: Tx, mail: InboundMail, deal: Deal, reason: str) -> None:
    mail.status, mail.reason = MailStatus.REVIEW, reason
    announce(tx, deal, "mail.review", f":mag: mail from {mail.from_address} needs review: {reason}",
             inbound_id=mail.id, reason=reason)


def _tell(tx: Tx, deal_id: int | None, kind: str, text: str, **data: Any) -> None:
    if deal_id is None:
        tx.record(kind, deal_id=None, customer_id=None, **data)
        return
    deal = tx.session.get(Deal, deal_id)
    announce(tx, deal, kind, text, **data)  # type: ignore[arg-type]


def _quote(text: str) -> str:
    return text.replace("\n", "\n>")


def flag_contact(tx: Tx, email: str, flag: str, reason: str, inbound_id: int | None) -> None:
    if not email:
        return
    exists = tx.session.scalar(select(ContactFlag).where(ContactFlag.email == email, ContactFlag.flag == flag))
    if exists is None:
        tx.session.add(ContactFlag(email=email, flag=flag, reason=reason, inbound_id=inbound_id, flagged_at=tx.now))
    if flag == "bouncing":
        for contact in tx.session.scalars(select(Contact).where(Contact.email == email)):
            contact.bounced_at = contact.bounced_at or tx.now


def clear_contact_flags(tx: Tx, email: str, *, flag: str | None = None, actor: str, reason: str) -> list[str]:
    """Lift the flags that keep mail from an address (a fixed mailbox, a customer who
    asked to be mailed again): it is sent to again from the next message on. Recorded
    on the timeline with who did it and why; returns the flags lifted."""
    address = email.strip().lower()
    if flag is not None and flag not in FLAG_REASONS:
        raise InvalidInput(f"unknown flag {flag!r}: the flags are {', '.join(sorted(FLAG_REASONS))}")
    if not reason.strip():
        raise InvalidInput("say why the flag is lifted (--reason): it is kept on the timeline")
    rows = list(tx.session.scalars(select(ContactFlag).where(ContactFlag.email == address).order_by(ContactFlag.flag)))
    lifted = [row for row in rows if flag is None or row.flag == flag]
    if not lifted:
        raise InvalidInput(f"{address} is not flagged" + (f" {flag}" if flag else "") + ": nothing to lift")
    for row in lifted:
        tx.session.delete(row)
    if any(row.flag == "bouncing" for row in lifted):
        for contact in tx.session.scalars(select(Contact).where(func.lower(Contact.email) == address)):
            contact.bounced_at = None
    flags = [row.flag for row in lifted]
    tx.record("contact.flag_cleared", deal_id=None, customer_id=None, actor=actor, email=address, flags=flags,
              reason=reason.strip()[:500])
    return flags


def flagged_contacts(session: Session) -> list[ContactFlag]:
    return list(session.scalars(select(ContactFlag).order_by(ContactFlag.email, ContactFlag.flag)))


def contact_flags(session: Session, email: str) -> set[str]:
    return set(session.scalars(select(ContactFlag.flag).where(ContactFlag.email == email.lower())))


# --- outbound -----------------------------------------------------------------------

def new_message_id(domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def queue_email(tx: Tx, *, key: str, deal_id: int | None, to: list[str], template: str, locale: str,
                subject: str, context: dict[str, Any], domain: str = "closeloop.invalid",
                in_reply_to: str | None = None, references: tuple[str, ...] = (),
                attachments: tuple[dict[str, Any], ...] = (), stream: str | None = None) -> str:
    """Record an outbound message and put it on the outbox ("email.send"); returns its
    Message-ID, generated here once so every retry sends the same one. Idempotent by key."""
    existing = tx.session.scalar(select(OutboundMail).where(OutboundMail.key == key))
    if existing is not None:
        return existing.message_id
    if not to:
        raise InvalidInput("an email needs at least one recipient")
    message_id = new_message_id(domain)
    tx.session.add(OutboundMail(key=key, message_id=message_id, deal_id=deal_id, template=template, recipients=to,
                                subject=subject[:500], in_reply_to=in_reply_to, status=OutboundStatus.QUEUED,
                                created_at=tx.now))
    tx.enqueue("email.send", {"message_id": message_id, "deal_id": deal_id, "to": to, "template": template,
                              "locale": locale, "subject": subject, "context": context,
                              "in_reply_to": in_reply_to, "references": list(references),
                              "attachments": list(attachments)},
               key=f"email.send:{key}", deal_id=deal_id, stream=stream)
    return message_id


# Mail about money owed: when it cannot go out, finance (who owns dunning) is alerted.
DUNNING_TEMPLATES = frozenset({"invoice", "payment_reminder", "payment_overdue", "payment_link", "receipt"})
FLAG_REASONS = {"bouncing": "a previous mail to it bounced permanently", "unsubscribed": "it asked to stop receiving mail"}


@dataclass(frozen=True)
class Screened:
    """Who an outbound message may still go to, and who it skips, with why."""

    allowed: list[str]
    skipped: dict[str, str]

    @property
    def reason(self) -> str:
        return "; ".join(f"{address} is {why}" for address, why in self.skipped.items())


def screen_recipients(tx: Tx, message_id: str, to: list[str]) -> Screened:
    """Drop recipients flagged bouncing (a hard bounce) or unsubscribed, just before
    sending. Every recipient flagged: the message is SUPPRESSED, the deal's timeline
    says why, and for invoices and reminders finance is alerted. Idempotent: a retry
    of the same message records nothing twice."""
    flags: dict[str, list[str]] = {}
    wanted = {address.lower() for address in to}
    for email, flag in tx.session.execute(select(ContactFlag.email, ContactFlag.flag).where(
            ContactFlag.email.in_(sorted(wanted))).order_by(ContactFlag.flag)):
        flags.setdefault(email, []).append(flag)
    skipped = {a: " and ".join(f"{f} ({FLAG_REASONS.get(f, f)})" for f in flags[a.lower()])
               for a in to if a.lower() in flags}
    screened = Screened([a for a in to if a.lower() not in flags], skipped)
    row = tx.session.scalar(select(OutboundMail).where(OutboundMail.message_id == message_id))
    if not skipped or row is None or row.status is not OutboundStatus.QUEUED:
        return screened
    note = f"not sent to {screened.reason}"[:4000]
    if screened.allowed:  # the others still get it; the skip is noted once
        if row.error != note:
            row.error = note
            tx.record("mail.recipients_skipped", deal_id=row.deal_id, customer_id=None, message_id=message_id,
                      skipped=skipped, template=row.template)
        return screened
    row.status, row.error = OutboundStatus.SUPPRESSED, note
    subject = f" \"{row.subject}\"" if row.subject else ""
    text = f":no_entry: The {row.template.replace('_', ' ')} email{subject} was not sent: {screened.reason}"
    _tell(tx, row.deal_id, "mail.suppressed", text, message_id=message_id, template=row.template,
          skipped=skipped, reason=note)
    if row.template in DUNNING_TEMPLATES:
        tx.enqueue("slack.alert", {"text": f"{text} — finance: fix the billing contact or collect another way",
                                   "owner": "finance", "deal_id": row.deal_id, "message_id": message_id},
                   key=f"slack.alert:mail.suppressed:{message_id}", deal_id=row.deal_id)
    return screened


def mark_sent(tx: Tx, message_id: str, *, relay: str) -> None:
    row = tx.session.scalar(select(OutboundMail).where(OutboundMail.message_id == message_id))
    if row is not None and row.status is OutboundStatus.QUEUED:
        row.status, row.sent_at, row.relay = OutboundStatus.SENT, tx.now, relay
        if row.deal_id is not None:
            tx.record("mail.sent", deal_id=row.deal_id, customer_id=None, message_id=message_id,
                      template=row.template, to=row.recipients)


def mark_failed(tx: Tx, message_id: str, *, error: str, refused: dict[str, str] | None = None) -> None:
    """5xx or refused recipients: recorded and told, never retried (a gap for a person)."""
    row = tx.session.scalar(select(OutboundMail).where(OutboundMail.message_id == message_id))
    if row is None or row.status in (OutboundStatus.FAILED, OutboundStatus.BOUNCED):
        return
    row.status, row.error = OutboundStatus.FAILED, error[:4000]
    text = f":x: Mail \"{row.subject}\" could not be delivered: {error[:300]}"
    _tell(tx, row.deal_id, "mail.delivery_failed", text, message_id=message_id, error=error[:1000],
          refused=refused or {})


def reply_to_customer(tx: Tx, deal_id: int, *, key: str, text: str, actor: str,
                      domain: str = "closeloop.invalid") -> str:
    """A rep's answer from the deal's Slack thread, sent in the customer's email thread
    (In-Reply-To their last message)."""
    deal = tx.session.get(Deal, deal_id)
    if deal is None:
        raise NotFound("deal", deal_id)
    done = tx.session.scalar(select(OutboundMail.message_id).where(OutboundMail.key == key))
    if done is not None:  # the same Slack message pressed twice: one email
        return done
    last = tx.session.scalar(select(InboundMail).where(
        InboundMail.deal_id == deal_id, InboundMail.kind == "reply", InboundMail.from_address.is_not(None))
        .order_by(InboundMail.id.desc()))
    if last is None:
        raise InvalidInput(f"deal {deal.reference} has no email from the customer to answer")
    references = tuple(_references_of(tx.session, last)) + (last.message_id,)
    subject = last.subject if last.subject.lower().startswith("re:") else f"Re: {last.subject}"
    customer = tx.session.get(Customer, deal.customer_id)
    message_id = queue_email(tx, key=key, deal_id=deal_id, to=[last.from_address or ""], template="reply",
                             locale=customer.language if customer else "en", subject=subject,
                             context={"text": text, "customer": customer.name if customer else ""},
                             domain=domain, in_reply_to=last.message_id, references=references)
    announce(tx, deal, "mail.reply_sent", f":outbox_tray: <@{actor}> answered {last.from_address} by email",
             actor=actor, message_id=message_id, in_reply_to=last.message_id)
    return message_id


def _references_of(session: Session, mail: InboundMail) -> list[str]:
    from email.parser import BytesHeaderParser  # stdlib header parsing only; no I/O
    headers = BytesHeaderParser().parsebytes(mail.raw)
    return [r for r in " ".join(headers.get_all("References", []) or []).split() if r.startswith("<")][-10:]


def triage_list(session: Session, limit: int = 100) -> list[InboundMail]:
    return list(session.scalars(select(InboundMail).where(InboundMail.status.in_([MailStatus.TRIAGE,
                                                                                  MailStatus.REVIEW,
                                                                                  MailStatus.FAILED]))
                                .order_by(InboundMail.id).limit(limit)))


# --- the process in two tables -------------------------------------------------------

Route = Callable[[Tx, InboundMail, InboundFacts], None]
IntentRoute = Callable[[Tx, InboundMail, Deal, InboundFacts], None]

# What each kind of message leads to (parsers.email_kind decides the kind).
KIND_ROUTES: dict[str, Route] = {
    "reply": _route_reply,
    "auto_reply": _record_auto_reply,
    "bounce": _record_bounce,
}

# What each intent of a matched reply leads to (parsers.email_reply decides the intent).
INTENT_ROUTES: dict[str, IntentRoute] = {
    "question": _to_rep,
    "change_request": _to_rep,
    "other": _to_rep,
    "payment_sent": _payment_claim,
    "signed_document": _signed_return,
    "purchase_order": _signed_return,
    "unsubscribe": _unsubscribe,
}
