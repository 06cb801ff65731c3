"""A step that loses a race inside the database (deadlock, serialization failure,
a locked SQLite file) is retried whole, and its work happens once."""
from __future__ import annotations

import sqlite3
import threading

from sqlalchemy.exc import OperationalError

from closeloop.bootstrap import build
from closeloop.config import Settings
from flows.deals import Deal, Stage
from flows.ledger import is_transient
from tests.conftest import _truncate_postgres
from tests.factories import deal_at, row_counts, seed


def test_a_real_deadlock_on_postgresql_is_retried_and_both_steps_land_once(postgres_database, tmp_path, clock):
    _truncate_postgres(postgres_database)
    settings = Settings(database_url=postgres_database, outbox_dir=tmp_path, data_dir=tmp_path / "data")
    first, second = build(settings, clock), build(settings, clock)
    customer = seed(first.ledger)
    a, b = (deal_at(first.ledger, customer, Stage.QUOTED) for _ in range(2))
    events_before = row_counts(first.ledger)["events"]
    both_hold_one = threading.Barrier(2, timeout=30)
    attempts = {"forward": 0, "backward": 0}

    def reassign(order, name):
        def step(tx):
            attempts[name] += 1
            for n, deal_id in enumerate(order):
                deal = tx.get(Deal, deal_id)  # SELECT … FOR UPDATE
                if n == 0 and attempts[name] == 1:
                    both_hold_one.wait()  # each holds one row and reaches for the other's
                deal.owner = f"{deal.owner}+{name}"
                tx.record("deal.reassigned", deal_id=deal_id, customer_id=deal.customer_id, to=name)
        return step

    threads = [threading.Thread(target=first.ledger.run, args=(reassign((a, b), "forward"),)),
               threading.Thread(target=second.ledger.run, args=(reassign((b, a), "backward"),))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(attempts.values()) == [1, 2]  # PostgreSQL broke the deadlock; the loser ran again
    owners = first.ledger.read(lambda s: [s.get(Deal, d).owner for d in (a, b)])
    assert all(owner.count("+forward") == 1 and owner.count("+backward") == 1 for owner in owners)
    assert row_counts(first.ledger)["events"] == events_before + 4  # one per deal per reassignment
    first.close(), second.close()


def test_only_races_count_as_transient():
    locked = OperationalError("INSERT …", {}, sqlite3.OperationalError("database is locked"))
    assert is_transient(locked)
    assert not is_transient(OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: deals")))
    assert not is_transient(ValueError("database is locked"))
