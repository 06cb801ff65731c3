"""The schema itself: an append-only timeline enforced by the database, duplicate
deliveries recognised without aborting the transaction, and migrations that match
the models exactly, on both backends."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import DBAPIError

from closeloop import migrate
from flows.inbox import InboundEvent, claim
from flows.models import Base
from flows.timeline import Event

AT = datetime(2026, 3, 10, 9, 0, tzinfo=timezone.utc)


def recorded_event(services) -> int:
    with services.ledger.sessions() as session, session.begin():
        event = Event(kind="deal.won", actor="U_REP", data={"note": "original"}, occurred_at=AT)
        session.add(event)
        session.flush()
        return event.id


def event_row(services, event_id: int) -> tuple:
    with services.engine.connect() as connection:
        return tuple(connection.execute(
            text("SELECT id, kind, actor, occurred_at FROM events WHERE id = :id"), {"id": event_id}).one())


# --- the timeline is append-only ---------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE events SET kind = 'deal.void', actor = 'someone' WHERE id = :id",
    "DELETE FROM events WHERE id = :id",
    "DELETE FROM events",
])
def test_the_database_refuses_to_rewrite_the_timeline(services, statement):
    event_id = recorded_event(services)
    before = event_row(services, event_id)

    with services.engine.connect() as connection:
        transaction = connection.begin()
        with pytest.raises(DBAPIError, match="append-only"):
            connection.execute(text(statement), {"id": event_id})
        transaction.rollback()

    assert event_row(services, event_id) == before
    assert before[1:3] == ("deal.won", "U_REP")


def test_the_timeline_still_takes_new_events(services):
    first = recorded_event(services)
    second = recorded_event(services)
    assert second > first
    with services.engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM events")) == 2


# --- inbound de-duplication --------------------------------------------------------------


def test_a_second_delivery_of_the_same_event_is_recognised_without_aborting_the_transaction(services):
    with services.ledger.sessions() as session, session.begin():
        assert claim(session, "email", "<msg-1@example.com>", AT, content_hash="a" * 64) is True
        assert claim(session, "email", "<msg-1@example.com>", AT, content_hash="a" * 64) is False
        # the transaction is still usable after the duplicate
        assert claim(session, "email", "<msg-2@example.com>", AT) is True
        assert claim(session, "docusign", "<msg-1@example.com>", AT) is True  # same id, other source
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 3

    def stored(session):
        return sorted(tuple(row) for row in session.execute(select(InboundEvent.source, InboundEvent.external_id)))
    assert services.ledger.read(stored) == [
        ("docusign", "<msg-1@example.com>"), ("email", "<msg-1@example.com>"), ("email", "<msg-2@example.com>")]


def test_a_delivery_claimed_in_an_earlier_transaction_is_a_duplicate_later(services):
    with services.ledger.sessions() as session, session.begin():
        assert claim(session, "payments", "evt_123", AT) is True
    with services.ledger.sessions() as session, session.begin():
        assert claim(session, "payments", "evt_123", AT) is False
        session.add(Event(kind="payment.duplicate", actor="payments", data={}, occurred_at=AT))
    with services.engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM inbound_events")) == 1
        assert connection.scalar(text("SELECT count(*) FROM events WHERE kind = 'payment.duplicate'")) == 1


# --- migrations match the models -----------------------------------------------------------


def test_the_database_is_migrated_to_the_latest_revision(services):
    head = migrate.head_revision(services.settings.database_url)
    assert head is not None
    assert migrate.current_revision(services.engine) == head


def test_the_migrations_create_exactly_the_tables_the_models_describe(services):
    with services.engine.connect() as connection:
        # compare_type=True, as closeloop/migrations/env.py configures it
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_every_model_table_exists_in_the_migrated_database(services):
    with services.engine.connect() as connection:
        tables = set(inspect(connection).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert tables - set(Base.metadata.tables) == {"alembic_version"}
