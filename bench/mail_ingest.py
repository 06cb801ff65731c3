"""How fast does the IMAP watcher ingest mail, compared with just fetching it?

Starts a real Dovecot on loopback with an N-message mailbox (written straight into
its maildir; customer replies without PDFs: questions to a deal by its token, replies
threaded on our Message-ID, auto-replies, and mail that matches nothing), then in the
same run:

  * raw FETCH: a bare imapclient session fetching every message (BODY.PEEK[], the
    same batch size), the baseline;
  * ingestion: the watcher's sync into a fresh ledger (real services, SQLite file or
    PostgreSQL) as `closeloop mail watch` runs it: the raw bytes and identity stored
    durably by the store process, a transaction per FETCH batch, and the checkpoint
    moved; the next batch is fetched while one is stored;
  * classification: the pass that follows (in the watcher process, a thread of its
    own): parse, classify, match, route every stored message; and the two end to end;
  * resync after UIDVALIDITY changes (Dovecot rebuilds its UID list): the watcher
    fetches everything again and must store nothing new.

and prints messages/s for each and the ratio ingestion / raw FETCH (target >= 50 %),
beside the classification rate and the store + classify rate, so nothing is hidden.

    .venv/bin/python -m bench.mail_ingest [--messages 10000] [--batch 500] [--backend sqlite|postgresql]

Not a test: it asserts nothing about speed; it exits non-zero when something breaks
(a message lost or duplicated)."""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import create_engine, func, select, text

from adapters.imap_watcher import ImapWatcher, Mailbox
from closeloop import migrate
from closeloop.bootstrap import build
from closeloop.config import Settings
from closeloop.demo.mail_servers import PASSWORD, USER, start_dovecot
from flows.clock import SystemClock
from flows.mail import InboundMail, MailStatus, queue_email
from handlers.mail_watch import LedgerSink, parse_pool, read_config, store_process
from parsers.mail_token import reply_address

SECRET, BASE, AUTHSERV = "bench-secret", "sales@ourco.example", "mx.ourco.example"


def _seed(services, deals: int) -> tuple[list[int], list[str]]:
    from tests.factories import deal_at, seed  # the test suite's arrangements: real steps
    from flows.deals import Stage
    customer = seed(services.ledger)
    ids = [deal_at(services.ledger, customer, Stage.SENT) for _ in range(deals)]
    sent = [services.ledger.run(lambda tx, d=d: queue_email(
        tx, key=f"bench:{d}", deal_id=d, to=["ada@acme.example"], template="quote", locale="en", subject="Quote",
        context={}, domain="ourco.example")) for d in ids]
    return ids, sent


def _messages(n: int, deals: list[int], sent: list[str]) -> list[bytes]:
    out = []
    for i in range(n):
        m = EmailMessage()
        m["Authentication-Results"] = f"{AUTHSERV}; dkim=pass header.d=acme.example header.s=s1"
        m["From"] = "Ada Signer <ada@acme.example>"
        m["Subject"] = f"Re: Quote {i}"
        m["Date"] = "Tue, 10 Mar 2026 10:00:00 +0000"
        m["Message-ID"] = f"<bench-{i}-{uuid.uuid4().hex[:8]}@acme.example>"
        kind = i % 10
        d = deals[i % len(deals)]
        if kind < 6:
            m["To"] = reply_address(BASE, d, SECRET)
            body = f"Hello, a question about seats number {i}: can we add more later?"
        elif kind < 8:
            m["To"] = BASE
            m["In-Reply-To"] = sent[i % len(sent)]
            body = "Thanks, we will review it with our team this week."
        elif kind < 9:
            m["To"] = reply_address(BASE, d, SECRET)
            m["Auto-Submitted"] = "auto-replied"
            body = "I am out of the office until Monday."
        else:
            m["To"] = BASE
            body = "Hello, who can I talk to about pricing?"
        m.set_content(body + "\n\nOn Mon, 9 Mar 2026 sales wrote:\n> Please find attached our quote.\n" * 1)
        out.append(bytes(m))
    return out


def _fill_maildir(server, raws: list[bytes]) -> None:
    """Deliver as the MTA's local delivery agent would: one file per message in new/."""
    folder = server.maildir()
    (folder / "new").mkdir(parents=True, exist_ok=True)
    for sub in ("cur", "tmp"):
        (folder / sub).mkdir(exist_ok=True)
    stamp = int(time.time())
    for i, raw in enumerate(raws):
        (folder / "new" / f"{stamp}.M{i}P1.bench").write_bytes(raw)
    if os.geteuid() == 0:
        import pwd
        nobody = pwd.getpwnam("nobody")
        for root, dirs, files in os.walk(server.root / "mail"):
            for name in dirs + files:
                os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)
            os.chown(root, nobody.pw_uid, nobody.pw_gid)


def _raw_fetch(server, batch: int) -> tuple[int, float]:
    client = server.client()
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["ALL"])
    began = time.perf_counter()
    total = 0
    for start in range(0, len(uids), batch):
        chunk = uids[start:start + batch]
        total += len(client.fetch(chunk, [b"BODY.PEEK[]"]))
    elapsed = time.perf_counter() - began
    client.logout()
    return total, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--deals", type=int, default=20)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="parsing processes (CLOSELOOP_MAIL_PARSE_WORKERS)")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="closeloop-bench-mail-"))
    admin = pg_name = None
    if args.backend == "sqlite":
        url = f"sqlite:///{tmp}/bench.db"
    else:
        admin_url = os.environ.get("CLOSELOOP_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        pg_name = f"closeloop_bench_mail_{os.getpid()}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{pg_name}"'))
        url = admin_url.rsplit("/", 1)[0] + f"/{pg_name}"
    server = start_dovecot()
    try:
        migrate.upgrade(url)
        settings = Settings(database_url=url, outbox_dir=tmp / "outbox", mail_secret=SECRET,
                            mail_authserv_id=AUTHSERV, imap_batch=args.batch)
        services = build(settings, SystemClock())
        deals, sent = _seed(services, args.deals)
        raws = _messages(args.messages, deals, sent)
        _fill_maildir(server, raws)
        size = sum(len(r) for r in raws)
        print(f"mail ingestion benchmark: {args.messages} messages ({size / 1e6:.1f} MB, no PDFs), "
              f"Dovecot on 127.0.0.1:{server.port}, {args.backend}, batch {args.batch}, "
              f"{args.workers} parsing process(es), {os.cpu_count()} CPUs")

        _raw_fetch(server, args.batch)  # warm the server's index and page cache, as the watcher would find it
        fetched, raw_s = _raw_fetch(server, args.batch)
        mailbox = Mailbox("sales", "127.0.0.1", server.port, USER, PASSWORD, "INBOX", ssl=False)
        pool = parse_pool(args.workers)
        # The store process as `closeloop mail watch` starts it (started and connected
        # before the clock runs: it lives as long as the watcher).
        sink = LedgerSink(services, read_config(services), pool, settle_batch=args.batch,
                          store_process=store_process(services))
        # settle=False: what `closeloop mail watch` does (a classifier thread settles behind the fetch).
        watcher = ImapWatcher(mailbox, sink, batch=args.batch, settle=False)
        began = time.perf_counter()
        ingested = watcher.sync_once()
        ingest_s = time.perf_counter() - began
        stored = services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(InboundMail)))
        began = time.perf_counter()
        classified = sink.settle()
        classify_s = time.perf_counter() - began
        left = services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(InboundMail).where(
            InboundMail.status == MailStatus.PENDING)))

        server.reset_uidvalidity()
        _raw_fetch(server, args.batch)  # Dovecot rebuilds its UID list on first access: not ours to time
        began = time.perf_counter()
        refetched = watcher.sync_once()
        resync_s = time.perf_counter() - began
        reclassified = sink.settle()
        after = services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(InboundMail)))
        sink.close()
        services.close()

        raw_rate, ingest_rate, resync_rate = fetched / raw_s, ingested / ingest_s, refetched / resync_s
        classify_rate, whole_rate = classified / classify_s, classified / (ingest_s + classify_s)
        print(f"  raw IMAP FETCH      {fetched:>6} msgs in {raw_s:7.2f} s = {raw_rate:8.0f} msg/s   (baseline)")
        print(f"  ingestion           {ingested:>6} msgs in {ingest_s:7.2f} s = {ingest_rate:8.0f} msg/s   "
              f"ratio {ingest_rate / raw_rate:6.1%} of raw FETCH (target >= 50 %): stored durably, checkpointed")
        print(f"  classification      {classified:>6} msgs in {classify_s:7.2f} s = {classify_rate:8.0f} msg/s   "
              f"ratio {classify_rate / raw_rate:6.1%}: parse, classify, match, route (behind the fetch)")
        print(f"  store + classify    {classified:>6} msgs in {ingest_s + classify_s:7.2f} s = {whole_rate:8.0f} msg/s   "
              f"ratio {whole_rate / raw_rate:6.1%}: one after the other, end to end")
        print(f"  resync (UIDVALIDITY){refetched:>6} msgs in {resync_s:7.2f} s = {resync_rate:8.0f} msg/s   "
              f"ratio {resync_rate / raw_rate:6.1%}; new rows: {after - stored}")
        ok = (stored == args.messages and fetched == args.messages and after == stored
              and refetched == args.messages and classified == stored and left == 0 and reclassified == 0)
        if not ok:
            print(f"  ✗ something was lost or duplicated: stored {stored}, classified {classified} ({left} left), "
                  f"after resync {after} (classified again: {reclassified})", file=sys.stderr)
        return 0 if ok else 1
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if admin is not None:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
