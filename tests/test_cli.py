"""The `closeloop` command as a user runs it: a real process, real files."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

CLOSELOOP = str(Path(sys.executable).with_name("closeloop"))


def closeloop(*args: str, cwd: Path, database: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CLOSELOOP_"))}
    if database is not None:
        env["DATABASE_URL"] = f"sqlite:///{database}"
    return subprocess.run([CLOSELOOP, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("demo")
    return out, closeloop("demo", "--out", str(out), cwd=out)


def test_the_demo_drives_a_deal_through_the_loop_and_writes_its_artifacts(demo):
    out, result = demo
    assert result.returncode == 0, result.stderr
    transcript = result.stdout
    assert "is now 'billing_active'" in transcript
    assert "invoice.issued" in transcript and "days overdue" in transcript
    assert "not yet available" in transcript  # capabilities of later issues are named, not faked
    assert (out / "transcript.txt").read_text(encoding="utf-8") == transcript
    for artifact in ("closeloop.db", "catalog.toml", "timeline.json", "invoice.json", "licenses.json",
                     "subscriptions.json", "documents/INV-2026-000001.pdf"):  # esign.send: emailed or DocuSign
        assert (out / artifact).is_file(), artifact
    invoice = json.loads((out / "invoice.json").read_text(encoding="utf-8"))
    assert invoice["gross"] == "2,767.50 EUR" and invoice["status"] == "paid"  # charged on the card on file
    kinds = [e["kind"] for e in json.loads((out / "timeline.json").read_text(encoding="utf-8"))
             if not e["kind"].startswith("mail.")]  # the demo's emails sit between these steps
    assert kinds[:5] == ["quote.drafted", "quote.sent", "esign.quote_emailed", "quote.signed", "deal.won"]
    assert "the quote went out for signature by email" in transcript and "Q-2026-0001-v1.pdf attached" in transcript
    assert "is now 'billing_active' (verdict accepted)" in transcript  # the DocuSign deal, by the real verifier


def test_the_demo_database_can_be_inspected_with_closeloop_commands(demo, tmp_path):
    out, _ = demo
    result = closeloop("timeline", "D-1", cwd=tmp_path, database=out / "closeloop.db")
    assert result.returncode == 0, result.stderr
    assert "stage billing_active" in result.stdout and "deal.won" in result.stdout
    quote_number = json.loads((out / "timeline.json").read_text())[0]["data"]["quote"]
    by_quote = closeloop("timeline", quote_number, "--json", cwd=tmp_path, database=out / "closeloop.db")
    kinds = [json.loads(line)["kind"] for line in by_quote.stdout.splitlines()]
    with sqlite3.connect(out / "closeloop.db") as db:
        invoices = db.execute("SELECT count(*) FROM invoices WHERE deal_id = 1 AND number IS NOT NULL").fetchone()[0]
    # The deal's own invoice, then one per billed period (the demo bills several months).
    assert "subscription.started" in kinds and invoices >= 3 and kinds.count("invoice.issued") == invoices
    assert closeloop("outbox", "--status", "dead", cwd=tmp_path, database=out / "closeloop.db").stdout == ""


def test_the_demo_runs_again_in_the_same_directory_from_scratch(demo):
    out, _ = demo
    again = closeloop("demo", "--out", str(out), cwd=out)
    assert again.returncode == 0, again.stderr
    assert "Q-" in again.stdout and "-0001 v1" in again.stdout


def test_an_unknown_deal_is_a_plain_answer_not_a_traceback(tmp_path):
    closeloop("db", "upgrade", cwd=tmp_path, database=tmp_path / "c.db")
    result = closeloop("timeline", "D-99", cwd=tmp_path, database=tmp_path / "c.db")
    assert result.returncode == 1
    assert "deal, quote or invoice D-99 does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_catalog_file_is_refused_with_every_problem_and_loads_nothing(tmp_path):
    database = tmp_path / "c.db"
    assert closeloop("db", "init", cwd=tmp_path, database=database).returncode == 0
    bad = tmp_path / "catalog.toml"
    bad.write_text('currencies = ["EUR"]\n[tax_categories]\nstandard = "20"\n'
                   '[[sku]]\ncode = "A"\nname = "A"\nkind = "one_off"\nunit = "item"\ntax_category = "standard"\n'
                   'prices = { EUR = 10.5 }\n'
                   '[[sku]]\ncode = "A"\nname = "A again"\nkind = "recurring"\nunit = "seats"\n'
                   'tax_category = "standard"\n')
    result = closeloop("catalog", "load", str(bad), cwd=tmp_path, database=database)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    for problem in ('not as a float', "duplicate SKU code", "needs an interval", "write 'seat'", "prices missing"):
        assert problem in result.stderr, problem
    good = tmp_path / "good.toml"
    good.write_text('currencies = ["EUR"]\n[tax_categories]\nstandard = "20"\n'
                    '[[sku]]\ncode = "A"\nname = "A"\nkind = "one_off"\nunit = "item"\n'
                    'tax_category = "standard"\nprices = { EUR = "10.50" }\n')
    loaded = closeloop("catalog", "load", str(good), cwd=tmp_path, database=database)
    assert "1 added, 0 updated, 0 unchanged, 0 deactivated" in loaded.stdout


def test_the_schema_version_is_reported(tmp_path):
    database = tmp_path / "c.db"
    assert "empty" in closeloop("db", "current", cwd=tmp_path, database=database).stdout
    closeloop("db", "upgrade", cwd=tmp_path, database=database)
    from closeloop.migrate import head_revision
    assert closeloop("db", "current", cwd=tmp_path, database=database).stdout.strip() == head_revision("sqlite://")


def test_a_bad_configuration_is_named(tmp_path):
    env_run = subprocess.run([CLOSELOOP, "db", "upgrade"], cwd=tmp_path, capture_output=True, text=True,
                             env={**os.environ, "CLOSELOOP_INVOICE_SERIES": "INV-{month}"})
    assert env_run.returncode == 1 and "may only use {year}" in env_run.stderr


@pytest.mark.parametrize("process", ["run", "relay"])
def test_the_embedded_process_carries_a_signed_deal_through_and_stops_cleanly(tmp_path, process):
    import signal
    import time

    from closeloop.bootstrap import build
    from closeloop.config import Settings
    from flows.deals import Stage
    from tests.factories import deal_at, seed, stage_of

    database = tmp_path / "c.db"
    assert closeloop("db", "upgrade", cwd=tmp_path, database=database).returncode == 0
    services = build(Settings(database_url=f"sqlite:///{database}", outbox_dir=tmp_path / "unused"))
    deal = deal_at(services.ledger, seed(services.ledger), Stage.SIGNED)  # committed, not yet relayed

    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CLOSELOOP_"))}
    env.update(DATABASE_URL=f"sqlite:///{database}", CLOSELOOP_OUTBOX_DIR=str(tmp_path / "outbox"))
    process = subprocess.Popen([CLOSELOOP, process], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    delivered = tmp_path / "outbox" / "email.send.jsonl"  # the invoice's email: no SMTP here, kept in the sink
    try:
        deadline = time.monotonic() + 60
        while not delivered.is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stage_of(services.ledger, deal) is Stage.BILLING_ACTIVE
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        services.close()
    assert process.returncode == 0, err
    assert "stopped" in out
    invoices = [line for line in delivered.read_text().splitlines() if json.loads(line)["payload"]["template"] == "invoice"]
    assert len(invoices) == 1


def test_a_database_without_the_schema_or_out_of_reach_is_named_not_traced(tmp_path):
    empty = closeloop("timeline", "D-1", cwd=tmp_path, database=tmp_path / "empty.db")
    assert empty.returncode == 1 and "Traceback" not in empty.stderr
    assert "has no closeloop schema yet: run `closeloop db upgrade`" in empty.stderr
    env = {**os.environ, "DATABASE_URL": "postgresql://nobody:secret@127.0.0.1:1/none"}
    unreachable = subprocess.run([CLOSELOOP, "outbox"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert unreachable.returncode == 1 and "Traceback" not in unreachable.stderr
    assert "cannot use the database at postgresql+psycopg://nobody:***@127.0.0.1:1/none" in unreachable.stderr


def test_an_unknown_time_zone_is_refused_at_start(tmp_path):
    result = subprocess.run([CLOSELOOP, "db", "upgrade"], cwd=tmp_path, capture_output=True, text=True,
                            env={**os.environ, "CLOSELOOP_TIMEZONE": "Mars/Olympus"})
    assert result.returncode == 1 and "unknown time zone 'Mars/Olympus'" in result.stderr


def test_roles_are_granted_listed_and_revoked_from_the_terminal(tmp_path):
    database = tmp_path / "c.db"
    closeloop("db", "upgrade", cwd=tmp_path, database=database)
    assert "now has the finance role" in closeloop("roles", "grant", "U0FIN", "finance", cwd=tmp_path,
                                                   database=database).stdout
    assert "already had the finance role" in closeloop("roles", "grant", "U0FIN", "finance", cwd=tmp_path,
                                                       database=database).stdout
    assert closeloop("roles", "list", cwd=tmp_path, database=database).stdout.split()[:2] == ["U0FIN", "finance"]
    bad = closeloop("roles", "grant", "U0FIN", "cfo", cwd=tmp_path, database=database)
    assert bad.returncode == 2 and "'cfo' is not one of" in bad.stderr and "Traceback" not in bad.stderr
    assert "no longer has the finance role" in closeloop("roles", "revoke", "U0FIN", "finance", cwd=tmp_path,
                                                         database=database).stdout
    assert closeloop("roles", "list", cwd=tmp_path, database=database).stdout == ""


def test_the_demo_ends_with_the_gap_list_and_the_digest_it_posts(demo):
    out, result = demo
    assert "8. Completeness gaps and the morning digest" in result.stdout
    assert "Usage not billed: Blob Storage Inc · 150.00 EUR" in result.stdout
    assert "second tick: nothing to do, as it should be" in result.stdout
    chart = next((out / "gaps").glob("aging-chart-*.png"))
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    messages = json.loads(next((out / "gaps").glob("digest-*.json")).read_text(encoding="utf-8"))
    assert all(len(m["blocks"]) <= 50 for m in messages) and "Completeness digest" in messages[0]["text"]


def test_worker_and_beat_refuse_to_start_without_a_broker_or_for_an_unknown_queue(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "CLOSELOOP_", "BROKER_URL"))}

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLOSELOOP, *args], cwd=tmp_path, env={**env, **extra}, capture_output=True,
                              text=True, timeout=60)
    for command in (["worker"], ["beat"]):
        refused = run(*command)
        assert refused.returncode == 1 and "BROKER_URL is not set" in refused.stderr, refused.stderr
    unknown = run("worker", "--queues", "slack,invoices", BROKER_URL="redis://127.0.0.1:6379/15")
    assert unknown.returncode == 1, unknown.stderr
    assert "unknown queue(s) invoices; the queues are control, slack, mail, pdf, billing, default" in unknown.stderr


def test_mail_flags_lists_and_mail_clear_lifts_a_flag_with_the_reason(tmp_path):
    database = tmp_path / "closeloop.db"
    assert closeloop("db", "upgrade", cwd=tmp_path, database=database).returncode == 0
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO contact_flags (email, flag, reason, flagged_at) VALUES "
                   "('ada@acme.example', 'bouncing', '5.1.1 user unknown', '2026-03-01 10:00:00.000000')")
    listed = closeloop("mail", "flags", cwd=tmp_path, database=database)
    assert listed.returncode == 0 and "ada@acme.example bouncing since 2026-03-01 10:00: 5.1.1 user unknown" in listed.stdout
    refused = closeloop("mail", "clear", "ada@acme.example", "--flag", "unsubscribed", "--reason", "opted in",
                        cwd=tmp_path, database=database)
    assert refused.returncode == 1 and "ada@acme.example is not flagged unsubscribed" in refused.stderr
    lifted = closeloop("mail", "clear", "Ada@Acme.example", "--reason", "mailbox fixed", "--by", "finance.lead",
                       cwd=tmp_path, database=database)
    assert lifted.returncode == 0, lifted.stderr
    assert "ada@acme.example: bouncing lifted" in lifted.stdout
    assert "no address is flagged" in closeloop("mail", "flags", cwd=tmp_path, database=database).stdout
    with sqlite3.connect(database) as db:
        [(actor, data)] = db.execute("SELECT actor, data FROM events WHERE kind = 'contact.flag_cleared'").fetchall()
    assert actor == "finance.lead" and json.loads(data)["reason"] == "mailbox fixed"
