"""Connect notices arriving together are stored as one group (handlers.docusign_connect
GroupCommit; one statement on PostgreSQL, one BEGIN IMMEDIATE on SQLite): twenty
requests at once, some for a deal's envelope, some for envelopes we do not know, some
delivered twice, each claimed once with its work queued on the right stream."""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time

import pytest
from sqlalchemy import func, select, update

from flows.connect_notices import KIND, UNKNOWN_STREAM
from flows.deals import SignatureEnvelope, Stage
from flows.inbox import InboundEvent
from flows.outbox import OutboxMessage
from handlers.docusign_connect import connect_wsgi
from parsers.docusign_connect import parse_connect
from tests.factories import deal_at, seed

KEY = "group-key"


def notice(envelope: str, status: str, second: int) -> bytes:
    stamp = f"2026-03-10T09:00:{second:02d}.0000000Z"
    return json.dumps({"event": f"envelope-{status}", "apiVersion": "v2.1", "retryCount": 0, "configurationId": 1,
                       "uri": f"/restapi/v2.1/accounts/acct/envelopes/{envelope}", "generatedDateTime": stamp,
                       "data": {"accountId": "acct", "envelopeId": envelope, "envelopeSummary": {
                           "status": status, "envelopeId": envelope, "statusChangedDateTime": stamp}}}).encode()


def post(app, body: bytes) -> tuple[str, dict]:
    signature = base64.b64encode(hmac.new(KEY.encode(), body, hashlib.sha256).digest()).decode()
    environ = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
               "HTTP_X_DOCUSIGN_SIGNATURE_1": signature}
    status: list[str] = []
    answer = b"".join(app(environ, lambda s, headers: status.append(s)))
    return status[0], json.loads(answer)


def test_twenty_notices_at_once_are_each_claimed_once_and_queued_on_their_stream(services):
    deal_id = deal_at(services.ledger, seed(services.ledger), Stage.SENT)
    ours = "6c1d2a36-0000-4000-8000-000000000001"
    services.ledger.run(lambda tx: tx.session.execute(
        update(SignatureEnvelope).where(SignatureEnvelope.deal_id == deal_id).values(external_id=ours)))
    distinct = [notice(ours, status, n) for n, status in enumerate(["sent", "delivered", "completed"] * 2)]
    distinct += [notice(f"0badc0de-0000-4000-8000-{n:012d}", "completed", n) for n in range(10)]
    bodies = distinct + distinct[:2] + distinct[-2:]  # four delivered twice, in the same burst
    app = connect_wsgi(services.ledger, (KEY,))
    start, answers = threading.Barrier(len(bodies)), []

    def deliver(body: bytes) -> None:
        start.wait()
        answers.append(post(app, body))
    threads = [threading.Thread(target=deliver, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(status for status, _ in answers) == ["200 OK"] * 20
    assert sorted(answer["duplicate"] for _, answer in answers) == [False] * 16 + [True] * 4
    claimed = services.ledger.read(lambda s: s.scalars(
        select(InboundEvent.external_id).where(InboundEvent.source == "docusign")).all())
    assert len(claimed) == len(set(claimed)) == 16
    queued = services.ledger.read(lambda s: s.scalars(select(OutboxMessage).where(OutboxMessage.kind == KIND)).all())
    assert len(queued) == 16 and len({m.idempotency_key for m in queued}) == 16
    expected = {}
    for body in distinct:
        payload = parse_connect(body).as_payload()
        expected[(payload["envelope_id"], payload["status"], payload["generated_at"])] = payload
    for message in queued:
        payload = message.payload
        assert payload == expected[(payload["envelope_id"], payload["status"], payload["generated_at"])]
        if payload["envelope_id"] == ours:
            assert (message.stream, message.deal_id) == (f"deal:{deal_id}", deal_id)
        else:
            assert (message.stream, message.deal_id) == (UNKNOWN_STREAM, None)
    assert sum(m.deal_id == deal_id for m in queued) == 6


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # another connection holds SQLite's write lock
def test_a_notice_that_waits_too_long_answers_5xx_and_the_next_ones_are_stored(services):
    from handlers.docusign_connect import GroupCommit
    inbox = GroupCommit(services.ledger, wait_seconds=0.5)
    payload = parse_connect(notice("0badc0de-0000-4000-8000-00000000aaaa", "completed", 1)).as_payload()
    blocker = services.engine.connect()
    blocker.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE: the database's write lock, held
    results: dict[str, object] = {}

    def accept(name: str, second: int) -> None:
        try:
            results[name] = inbox.accept({**payload, "generated_at": f"2026-03-10T09:00:{second:02d}Z"})
        except Exception as error:  # noqa: BLE001 — the answer under test
            results[name] = error
    writers = [threading.Thread(target=accept, args=(name, n + 1)) for n, name in enumerate(["first", "second"])]
    for thread in writers:
        thread.start()  # both pens taken: each writes its group, and waits on the lock
    deadline = time.monotonic() + 10
    while inbox._writing < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # and in the database, waiting on its lock
    accept("third", 3)  # queued behind them, gives up after 0.5 s
    assert isinstance(results["third"], TimeoutError)
    blocker.rollback()
    blocker.close()
    for thread in writers:
        thread.join(timeout=30)
    assert results["first"] is True and results["second"] is True
    accept("fourth", 4)  # nobody left holding a pen: the next notice writes at once
    accept("third again", 3)  # DocuSign delivers the refused one again
    assert results["fourth"] is True and results["third again"] is True
    assert services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(InboundEvent).where(
        InboundEvent.source == "docusign"))) == 4
