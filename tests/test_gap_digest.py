"""The daily digest: due at its time in its zone, claimed once per day however many
scheduler ticks race for it (on both backends), posted to the finance channel through
the loopback Slack with the chart and CSV uploaded, and split within Block Kit limits."""
from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, select

from adapters.gap_blocks import digest_messages
from closeloop.bootstrap import build
from flows.deals import Stage
from flows.finance_views import Page
from flows.gap_digest import DIGEST_KIND, Digest, DigestSchedule, digest_data, post_digest_if_due
from flows.gap_models import GapDigest
from flows.gap_states import GapView, RuleTotal
from flows.gaps import RULES, GapPolicy
from flows.money import Money
from flows.outbox import OutboxMessage
from flows.steps import issue_invoice
from tests.factories import deal_at, seed
from tests.test_slack_lookup import valid_blocks

POLICY = GapPolicy()
EIGHT = DigestSchedule.parse("08:00", "UTC")


def digests(ledger) -> tuple[int, int]:
    return ledger.read(lambda s: (s.scalar(select(func.count()).select_from(GapDigest)),
                                  s.scalar(select(func.count()).select_from(OutboxMessage)
                                           .where(OutboxMessage.kind == DIGEST_KIND))))


def pdf_text(data: bytes) -> str:
    import io

    import pdfplumber
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        return "\n".join(page.extract_text() or "" for page in pdf.pages)


def test_two_ticks_at_once_queue_one_digest_which_is_posted_with_its_files(slack_settings, clock, slack_api):
    first, second = build(slack_settings, clock), build(slack_settings, clock)
    try:
        customer = seed(first.ledger)
        deal_at(first.ledger, customer, Stage.WON)
        clock.advance(timedelta(hours=2))  # 11:00 UTC: past 08:00, and the won deal is a gap
        barrier, results = threading.Barrier(2), []

        def tick(services) -> None:
            barrier.wait()
            results.append(services.ledger.run(post_digest_if_due, POLICY, EIGHT))

        threads = [threading.Thread(target=tick, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(results, key=str) == [date(2026, 3, 10), None]
        assert first.ledger.run(post_digest_if_due, POLICY, EIGHT) is None  # a later tick: still one
        assert digests(first.ledger) == (1, 1)

        first.relay.drain()
        posts = [p for p in slack_api.of("chat.postMessage") if p.args["channel"] == "#finance"]
        assert len(posts) == 1
        blocks = valid_blocks(posts[0].args["blocks"])
        text = str(blocks)
        assert "Completeness digest — 2026-03-10" in text and "Won, not invoiced" in text
        assert [c.args["filename"] for c in slack_api.of("files.getUploadURLExternal")] == [
            "gap-aging-2026-03-10.png", "gaps-2026-03-10.csv", "aging-2026-03-10.pdf"]
        uploads = slack_api.of("upload")
        assert uploads[0].args["data"][:8] == b"\x89PNG\r\n\x1a\n" and b"won-not-invoiced" in uploads[1].args["data"]
        report = pdf_text(uploads[2].args["data"])  # the all-customers aging report, rendered and read back
        assert "Aging report" in report and "All customers" in report
        done = slack_api.of("files.completeUploadExternal")[0].args
        assert done["thread_ts"].startswith("1700000000.") and "aging report (PDF)" in done["initial_comment"]
    finally:
        first.close()
        second.close()


def test_the_digest_waits_for_its_time_and_counts_what_changed_since_the_last(services, clock):
    ledger = services.ledger
    customer = seed(ledger)
    won = deal_at(ledger, customer, Stage.WON)
    warsaw = DigestSchedule.parse("08:00", "Europe/Warsaw")          # 07:00 UTC in winter
    clock.set(datetime(2026, 3, 11, 6, 59, tzinfo=timezone.utc))
    assert ledger.run(post_digest_if_due, POLICY, warsaw) is None
    clock.set(datetime(2026, 3, 11, 7, 0, tzinfo=timezone.utc))
    assert ledger.run(post_digest_if_due, POLICY, warsaw) == date(2026, 3, 11)
    first_at = clock.now()
    ledger.run_alone(issue_invoice, won)                              # the gap's step happens
    deal_at(ledger, customer, Stage.SIGNED)                           # and a new gap appears
    clock.set(datetime(2026, 3, 12, 6, 0, tzinfo=timezone.utc))
    assert ledger.run(post_digest_if_due, POLICY, warsaw) is None
    clock.set(datetime(2026, 3, 12, 7, 30, tzinfo=timezone.utc))
    assert ledger.run(post_digest_if_due, POLICY, warsaw) == date(2026, 3, 12)
    since = ledger.read(lambda s: s.get(GapDigest, date(2026, 3, 12)).since)
    assert since == first_at
    digest = ledger.read(digest_data, date(2026, 3, 12), since, clock.now(), POLICY)
    assert [g.rule for g in digest.resolved.items] == ["won-not-invoiced"]
    assert "signed-not-won" in [g.rule for g in digest.opened.items]
    assert digests(ledger) == (2, 2)


def test_a_long_digest_is_split_into_messages_within_block_kit_limits():
    now = datetime(2026, 3, 10, 9, tzinfo=timezone.utc)

    def view(n: int) -> GapView:
        rule = RULES[n % len(RULES)]
        return GapView(n, rule.name, rule.title, n, "finance", 1, "Ąćmé <GmbH> & Co " * 20, n, Money(1000 * n, "EUR"),
                       now - timedelta(days=n), n, f"INV-{n}", "x" * 250, now, None, None, None, None, rule.action)

    many = tuple(view(n) for n in range(1, 61))
    digest = Digest(date(2026, 3, 10), now - timedelta(days=1), now,
                    [RuleTotal(r.name, r.title, 3, (Money(100, "EUR"), Money(5, "JPY"))) for r in RULES],
                    Page(many[:10], 0, 40), Page(many[10:20], 0, 12), Page(many, 0, 90), {}, many)
    messages = digest_messages(digest, timezone.utc)
    assert len(messages) >= 3
    for message in messages:
        blocks = valid_blocks(message["blocks"])
        for i, block in enumerate(blocks):  # a gap's buttons stay in the message of their gap
            if block["type"] == "actions":
                assert i > 0 and blocks[i - 1]["type"] == "section"
    gap_sections = sum(1 for m in messages for b in m["blocks"] if b["type"] == "actions")
    assert gap_sections == 60


def test_the_embedded_beat_ticks_the_digest_step(services, clock):
    from closeloop.schedule import EmbeddedBeat
    from tests.test_slack_lookup import wait_for
    services.settings = services.settings.model_copy(update={"scheduler_seconds": 0.05})
    with EmbeddedBeat(services):
        wait_for("the scheduler's digest", lambda: digests(services.ledger) == (1, 1))
        time_now = clock.now()
    assert services.ledger.read(lambda s: s.get(GapDigest, time_now.date()).claimed_at) == time_now
