"""Verified DocuSign Connect deliveries into the ledger: each claimed once in the
inbound events (a re-delivery is a duplicate) and its work queued on the outbox,
for a whole group of notices at a time (the webhook commits the notices that arrive
together as one group).

On PostgreSQL a group is one statement (a data-modifying CTE: claim, look up the
deal, queue) run on an autocommit psycopg connection, so it is its own transaction and costs
one round trip; `Ledger.run_statement` runs it. SQLite has no data-modifying CTEs:
there a group is two statements on the sqlite3 connection in one BEGIN IMMEDIATE
(claim, RETURNING what was new; queue those with their deal)."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from flows import bulk
from flows.inbox import InboundEvent
from flows.outbox import OutboxMessage, OutboxStatus

KIND = "esign.connect_event"
UNKNOWN_STREAM = "esign.connect"  # notices for envelopes we do not know: their own stream

# The group's rows come in as one JSON parameter (one fixed statement whatever the
# group size, so psycopg prepares it once; one json.dumps, where text arrays would be
# quoted element by element). Claimed in delivery order, so two writers claiming
# overlapping groups wait for each other instead of deadlocking.
_STORE_ON_POSTGRES = """
WITH v AS (
  SELECT * FROM json_to_recordset(CAST(%(rows)s AS json))
         AS v(delivery text, content_hash text, envelope_id text, payload json, key text)
), claimed AS (
  INSERT INTO inbound_events (source, external_id, content_hash, received_at)
  SELECT 'docusign', delivery, content_hash, %(now)s FROM v ORDER BY delivery
  ON CONFLICT DO NOTHING
  RETURNING external_id
)
INSERT INTO outbox (kind, stream, deal_id, payload, idempotency_key, status, attempts, available_at, created_at)
SELECT %(kind)s, coalesce('deal:' || e.deal_id, %(unknown_stream)s), e.deal_id, v.payload, v.key,
       'pending', 0, %(now)s, %(now)s
FROM v JOIN claimed ON claimed.external_id = v.delivery
       LEFT JOIN signature_envelopes e ON e.external_id = v.envelope_id
ORDER BY v.delivery
RETURNING idempotency_key
"""


# The same on SQLite, in two statements (the group as one JSON parameter each time).
_CLAIM_ON_SQLITE = """
INSERT INTO inbound_events (source, external_id, content_hash, received_at)
SELECT 'docusign', json_extract(value, '$.delivery'), json_extract(value, '$.content_hash'), ?
FROM json_each(?) WHERE true ORDER BY json_extract(value, '$.delivery')
ON CONFLICT DO NOTHING
RETURNING external_id
"""
_QUEUE_ON_SQLITE = """
INSERT INTO outbox (kind, stream, deal_id, payload, idempotency_key, status, attempts, available_at, created_at)
SELECT ?, coalesce('deal:' || e.deal_id, ?), e.deal_id, json_extract(v.value, '$.payload'),
       json_extract(v.value, '$.key'), ?, 0, ?, ?
FROM json_each(?) AS v LEFT JOIN signature_envelopes e ON e.external_id = json_extract(v.value, '$.envelope_id')
ORDER BY json_extract(v.value, '$.delivery')
"""


def delivery_id(notice: dict[str, Any]) -> str:
    """What makes a delivery the same one again: envelope, status and DocuSign's timestamp."""
    return f"{notice['envelope_id']}:{notice['status']}:{notice['generated_at']}"[:255]


def outbox_key(delivery: str) -> str:
    return "esign.connect:" + hashlib.sha256(delivery.encode()).hexdigest()[:40]


def _payload(notice: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in notice.items() if k != "body_hash"}


def _firsts(notices: list[dict[str, Any]]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """Each notice's delivery id, and the first notice of each delivery (the same
    delivery twice in one group: the second is a duplicate)."""
    deliveries = [delivery_id(n) for n in notices]
    firsts: dict[str, dict[str, Any]] = {}
    for delivery, notice in zip(deliveries, notices):
        firsts.setdefault(delivery, notice)
    return deliveries, firsts


def _answers(deliveries: list[str], stored: set[str]) -> list[bool]:
    answers = []
    for delivery in deliveries:
        answers.append(delivery in stored)
        stored.discard(delivery)  # a second copy in the same group is a duplicate
    return answers


def store_on_postgres(connection: Connection, now: datetime, notices: list[dict[str, Any]]) -> tuple[list[bool], int]:
    """Claim and queue a group in one statement; True for each new notice. Returns the
    answers and how many outbox rows were written. Run it with `Ledger.run_statement`."""
    deliveries, firsts = _firsts(notices)
    keys = {outbox_key(d): d for d in sorted(firsts)}
    rows = [{"delivery": d, "content_hash": firsts[d].get("body_hash"), "envelope_id": firsts[d]["envelope_id"],
             "payload": _payload(firsts[d]), "key": k} for k, d in keys.items()]
    # On psycopg's own connection, prepared: the statement is fixed, and SQLAlchemy's
    # execution context would cost more than the statement itself.
    driver = connection.connection.driver_connection
    queued = [row[0] for row in driver.execute(_STORE_ON_POSTGRES, {  # type: ignore[union-attr]
        "rows": json.dumps(rows), "now": now, "kind": KIND, "unknown_stream": UNKNOWN_STREAM}, prepare=True)]
    return _answers(deliveries, {keys[k] for k in queued}), len(queued)


def store_on_sqlite(connection: Connection, now: datetime, notices: list[dict[str, Any]]) -> tuple[list[bool], int]:
    """Claim and queue a group in one SQLite transaction of two statements on the
    sqlite3 connection; True for each new notice. Run it with `Ledger.run_statement`."""
    deliveries, firsts = _firsts(notices)
    rows = {d: {"delivery": d, "content_hash": firsts[d].get("body_hash"), "envelope_id": firsts[d]["envelope_id"],
                "payload": _payload(firsts[d]), "key": outbox_key(d)} for d in sorted(firsts)}
    outbox = OutboxMessage.__table__
    at = bulk.bind(connection, InboundEvent.__table__, "received_at", now)  # type: ignore[arg-type]
    pending = bulk.bind(connection, outbox, "status", OutboxStatus.PENDING)  # type: ignore[arg-type]
    when = bulk.bind(connection, outbox, "available_at", now)  # type: ignore[arg-type]
    driver = connection.connection.driver_connection
    driver.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
    try:
        claimed = {row[0] for row in driver.execute(_CLAIM_ON_SQLITE, (at, json.dumps(list(rows.values()))))}  # type: ignore[union-attr]
        if claimed:
            driver.execute(_QUEUE_ON_SQLITE, (KIND, UNKNOWN_STREAM, pending, when, when,  # type: ignore[union-attr]
                                              json.dumps([rows[d] for d in sorted(claimed)])))
        driver.execute("COMMIT")  # type: ignore[union-attr]
    except BaseException:
        driver.execute("ROLLBACK")  # type: ignore[union-attr]
        raise
    return _answers(deliveries, claimed), len(claimed)
