"""The outbox: side effects leave after commit, at least once, in order per deal, and
an adapter sees each one once (it de-duplicates by idempotency key)."""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import select

from closeloop.relay import Relay, Route
from flows import outbox
from flows.deals import Stage
from flows.outbox import OutboxMessage, OutboxStatus, PermanentFailure, RetryPolicy
from flows.steps import send_quote
from tests.factories import deal_at, row_counts, seed


class Recorder:
    """An adapter that remembers what it was given, and can be told to fail."""

    def __init__(self, fail_times: int = 0, error: type[Exception] = ConnectionError) -> None:
        self.calls: list[tuple[str, int, int]] = []  # (key, message id, attempt)
        self.fail_times, self.error = fail_times, error
        self.lock = threading.Lock()

    def __call__(self, delivery: outbox.Delivery) -> None:
        with self.lock:
            self.calls.append((delivery.idempotency_key, delivery.id, delivery.attempt))
            if self.fail_times:
                self.fail_times -= 1
                raise self.error("gateway said no")


def _enqueue(ledger, specs):
    """Messages as steps write them: (stream, key) pairs, committed in one transaction."""
    def write(tx):
        for stream, key in specs:
            tx.enqueue("test.effect", {"key": key}, key=key, deal_id=None, stream=stream)
    ledger.run(write)


def _statuses(ledger):
    return ledger.read(lambda s: [m.status for m in s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))])


def _message(ledger, key):
    return ledger.read(lambda s: s.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key == key)).one())


def test_side_effects_committed_before_a_crash_are_published_once_after_restart(services, make_services):
    deal = deal_at(services.ledger, seed(services.ledger), Stage.QUOTED)
    services.ledger.run(send_quote, deal, provider="docusign", actor="U_REP")
    services.close()  # the process dies before its relay ran

    restarted = make_services()
    assert restarted.relay.drain() == 3  # the envelope request and two deal-thread posts
    assert restarted.relay.drain() == 0
    assert len(restarted.sink.read("esign.send")) == 1
    assert all(s is OutboxStatus.DONE for s in _statuses(restarted.ledger))


def test_a_relay_that_dies_holding_a_lease_is_taken_over_and_the_effect_happens_once(services, make_services, clock):
    _enqueue(services.ledger, [("deal:1", "effect-1")])
    crashed = Relay(services.ledger, {}, lease_for=timedelta(minutes=2), owner="crashed")
    leased = services.ledger.run(crashed._lease)
    services.sink.write(leased[0], "delivered, then the relay died before recording it")

    survivor = make_services()
    routes = {"test.effect": Route(survivor.sink.handler("test"))}
    takeover = Relay(survivor.ledger, routes, owner="survivor")
    assert takeover.drain() == 0  # the lease still holds
    clock.advance(timedelta(minutes=2, seconds=1))
    assert takeover.drain() == 1
    assert len(survivor.sink.read("test.effect")) == 1  # redelivered, de-duplicated by key
    assert _message(survivor.ledger, "effect-1").attempts == 2
    late = services.ledger.run(lambda tx: outbox.complete(tx.session, leased[0], "crashed", tx.now))
    assert late is False  # the dead relay's late word changes nothing


def test_a_delivery_slower_than_its_lease_keeps_it_and_is_not_handed_out_twice(services, make_services, clock):
    """Found by the crash-point sweep: an invoice email that took longer than the lease to
    render and send was leased again meanwhile and sent twice at once. The relay renews
    the lease while its handler runs; a relay that dies stops renewing (test above)."""
    _enqueue(services.ledger, [("deal:1", "slow-1")])
    other = Relay(make_services().ledger, {"test.effect": Route(Recorder())}, owner="other")
    seen_by_other = []

    def slow(delivery):
        clock.advance(timedelta(seconds=30))  # the delivery outlasts its 1 s lease many times over
        time.sleep(1.0)                       # long enough for the lease to be renewed at the new time
        seen_by_other.append(other.drain_once())

    relay = Relay(services.ledger, {"test.effect": Route(slow)}, lease_for=timedelta(seconds=1), owner="slow")
    assert relay.drain() == 1
    assert seen_by_other == [0], "the message was handed out again while it was being delivered"
    assert other.routes["test.effect"].handler.calls == []
    row = _message(services.ledger, "slow-1")
    assert row.status is OutboxStatus.DONE and row.attempts == 1


def test_a_handed_out_message_waits_for_its_queued_task_longer_than_a_lease(services, clock):
    """Found by the crash-point sweep: a task queued behind others past the lease found its
    message handed out again, and so did the task sent for it next (a queue of stale tasks)."""
    _enqueue(services.ledger, [("deal:1", "queued-1")])
    relay = Relay(services.ledger, {"test.effect": Route(Recorder())}, lease_for=timedelta(seconds=5))
    [(message_id, _, owner)] = relay.hand_out(10)
    clock.advance(timedelta(seconds=30))  # the task still waits in its queue
    assert relay.hand_out(10) == []
    assert relay.deliver_handed(message_id, owner) is not None
    assert _message(services.ledger, "queued-1").status is OutboxStatus.DONE


def test_a_handed_out_message_whose_task_was_lost_is_handed_out_again(services, clock):
    _enqueue(services.ledger, [("deal:1", "lost-1")])
    relay = Relay(services.ledger, {"test.effect": Route(Recorder())}, lease_for=timedelta(seconds=5),
                  handed_for=timedelta(seconds=60))
    [(message_id, _, lost)] = relay.hand_out(10)
    clock.advance(timedelta(seconds=61))  # the broker lost the task
    [(again, _, owner)] = relay.hand_out(10)
    assert again == message_id and owner != lost
    assert relay.deliver_handed(message_id, lost) is None  # the lost task, if it ever comes back
    assert relay.deliver_handed(message_id, owner) is not None


def test_a_hand_out_whose_task_could_not_be_sent_is_due_again_at_once(services, clock):
    _enqueue(services.ledger, [("deal:1", "unsent-1")])
    relay = Relay(services.ledger, {"test.effect": Route(Recorder())}, lease_for=timedelta(seconds=5))
    [(message_id, _, unsent)] = relay.hand_out(10)
    assert relay.give_back([(message_id, unsent)]) == 1  # the broker refused the task
    [(again, _, owner)] = relay.hand_out(10)  # no wait for the hand-out's lease
    assert again == message_id and owner != unsent
    assert relay.deliver_handed(message_id, unsent) is None  # had it reached the broker after all
    assert relay.deliver_handed(message_id, owner) is not None


def test_a_hand_out_whose_task_was_sent_after_all_and_claimed_is_not_given_back(services, clock):
    _enqueue(services.ledger, [("deal:1", "sent-1")])
    relay = Relay(services.ledger, {"test.effect": Route(Recorder())}, lease_for=timedelta(seconds=5))
    [(message_id, _, owner)] = relay.hand_out(10)
    services.ledger.run(lambda tx: outbox.claim(tx.session, message_id, owner, tx.now, relay.lease_for))
    assert relay.give_back([(message_id, owner)]) == 0  # the publish raised, yet a worker runs it
    assert relay.hand_out(10) == []
    assert _message(services.ledger, "sent-1").status is OutboxStatus.LEASED


def test_after_a_reconnect_every_unclaimed_hand_out_is_due_again_and_nothing_claimed(services, clock):
    """The broker may have lost every queued task: what no task claimed is handed out anew."""
    _enqueue(services.ledger, [("deal:1", "queued-1"), ("deal:2", "running-2")])
    relay = Relay(services.ledger, {"test.effect": Route(Recorder())}, lease_for=timedelta(seconds=5))
    [(queued, _, lost), (running, _, owner)] = relay.hand_out(10)
    services.ledger.run(lambda tx: outbox.claim(tx.session, running, owner, tx.now, relay.lease_for))
    clock.advance(timedelta(seconds=2))
    assert relay.give_back_unclaimed() == 1
    [(again, _, new_owner)] = relay.hand_out(10)
    assert again == queued and new_owner != lost
    assert relay.deliver_handed(queued, lost) is None  # its old task, had the broker kept it
    assert _message(services.ledger, "running-2").status is OutboxStatus.LEASED  # still its task's


def test_a_rolled_back_transaction_publishes_nothing(services):
    def step_that_fails(tx):
        tx.enqueue("test.effect", {"invoice": 1}, key="email:invoice:1", deal_id=None)
        raise RuntimeError("the invoice could not be saved")

    counts = row_counts(services.ledger)
    with pytest.raises(RuntimeError):
        services.ledger.run(step_that_fails)
    assert row_counts(services.ledger) == counts
    recorder = Recorder()
    assert Relay(services.ledger, {"test.effect": Route(recorder)}).drain() == 0
    assert recorder.calls == []


def test_messages_of_one_deal_leave_in_the_order_they_were_written(services):
    specs = [(f"deal:{n % 3}", f"m{n}") for n in range(12)]
    _enqueue(services.ledger, specs)
    recorder = Recorder()
    Relay(services.ledger, {"test.effect": Route(recorder)}, batch=5).drain()
    by_stream = defaultdict(list)
    stream_of = {key: stream for stream, key in specs}
    for key, message_id, _ in recorder.calls:
        by_stream[stream_of[key]].append(message_id)
    assert len(recorder.calls) == 12
    assert all(ids == sorted(ids) for ids in by_stream.values())


def test_a_failing_adapter_is_retried_with_growing_jittered_backoff_then_dead_lettered(services, clock):
    _enqueue(services.ledger, [("deal:1", "charge:7:1")])
    recorder = Recorder(fail_times=99)
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=10), max_attempts=4)
    relay = Relay(services.ledger, {"test.effect": Route(recorder, policy)}, rng=random.Random(7))
    waits = []
    for attempt in range(1, 4):
        assert relay.drain() == 1
        message = _message(services.ledger, "charge:7:1")
        assert message.status is OutboxStatus.PENDING and "gateway said no" in message.last_error
        wait = message.available_at - clock.now()
        ceiling = policy.base * 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling
        assert relay.drain() == 0  # nothing before the wait is over: no hot loop
        waits.append(wait)
        clock.advance(wait)
    assert relay.drain() == 1
    message = _message(services.ledger, "charge:7:1")
    assert message.status is OutboxStatus.DEAD and message.attempts == 4
    assert len(recorder.calls) == 4
    assert waits == sorted(waits)


def test_a_permanent_failure_is_dead_lettered_at_once(services):
    _enqueue(services.ledger, [("deal:1", "email:1")])
    recorder = Recorder(fail_times=1, error=PermanentFailure)
    Relay(services.ledger, {"test.effect": Route(recorder)}).drain()
    message = _message(services.ledger, "email:1")
    assert message.status is OutboxStatus.DEAD and message.attempts == 1
    assert message.last_error.startswith("permanent failure")


def test_a_message_nobody_handles_is_dead_lettered_not_dropped(services):
    _enqueue(services.ledger, [("deal:1", "mystery:1")])
    Relay(services.ledger, {}).drain()
    message = _message(services.ledger, "mystery:1")
    assert message.status is OutboxStatus.DEAD
    assert "no adapter handles 'test.effect'" in message.last_error


def test_a_message_that_kills_every_relay_is_dead_lettered_after_its_attempts(services, clock):
    _enqueue(services.ledger, [("deal:1", "poison:1")])
    recorder = Recorder()
    policy = RetryPolicy(max_attempts=3)
    for n in range(3):  # three relays lease it and die without a word
        dying = Relay(services.ledger, {}, lease_for=timedelta(minutes=1), owner=f"dying-{n}")
        assert len(services.ledger.run(dying._lease)) == 1
        clock.advance(timedelta(minutes=1, seconds=1))
    Relay(services.ledger, {"test.effect": Route(recorder, policy)}).drain()
    message = _message(services.ledger, "poison:1")
    assert message.status is OutboxStatus.DEAD and "gave up after 3 attempts" in message.last_error
    assert recorder.calls == []


def test_a_stuck_deal_does_not_hold_up_other_deals_and_a_dead_message_does_not_block_its_own(services, clock):
    _enqueue(services.ledger, [("deal:1", "a1"), ("deal:1", "a2"), ("deal:2", "b1"), ("deal:2", "b2")])
    failing_first = Recorder()
    original = failing_first.__call__

    def handler(delivery):
        original(delivery)
        if delivery.idempotency_key == "a1":
            raise PermanentFailure("mailbox does not exist")

    Relay(services.ledger, {"test.effect": Route(handler)}).drain()
    delivered = [key for key, _, _ in failing_first.calls]
    assert delivered.count("b1") == 1 and delivered.count("b2") == 1
    assert delivered.index("b1") < delivered.index("b2")
    assert _message(services.ledger, "a1").status is OutboxStatus.DEAD
    assert _message(services.ledger, "a2").status is OutboxStatus.DONE


def test_two_relays_draining_together_never_deliver_one_message_twice(services, make_services):
    specs = [(f"deal:{n % 25}", f"effect-{n}") for n in range(400)]
    _enqueue(services.ledger, specs)
    recorder = Recorder()

    def slow(delivery):
        recorder(delivery)
        time.sleep(0.0005)

    relays = [Relay(s.ledger, {"test.effect": Route(slow)}, batch=7, owner=f"relay-{n}")
              for n, s in enumerate([services, make_services()])]
    with_work = threading.Barrier(2)

    def run(relay):
        with_work.wait()
        idle = 0
        while idle < 3:
            idle = idle + 1 if relay.drain_once() == 0 else 0

    threads = [threading.Thread(target=run, args=(r,)) for r in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    keys = [key for key, _, _ in recorder.calls]
    assert len(keys) == len(set(keys)) == 400
    stream_of = {key: stream for stream, key in specs}
    by_stream = defaultdict(list)
    for key, message_id, _ in recorder.calls:
        by_stream[stream_of[key]].append(message_id)
    assert all(ids == sorted(ids) for ids in by_stream.values())
    assert set(_statuses(services.ledger)) == {OutboxStatus.DONE}

