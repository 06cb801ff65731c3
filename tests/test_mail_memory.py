"""The ingest worker's memory stays bounded (RELIABILITY #31): a mailbox holding a
30 MB PDF attachment and hundreds of ordinary replies goes through the real watcher
(fetch, store, classify) in a child process, whose peak RSS — and its store
process's — must stay under the cap while the oversized message is refused with its
reason and nothing is lost. (Without
the size gate before MIME parsing this worker peaked at about 450 MB.)"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from sqlalchemy import func, select

from flows.mail import InboundMail, MailAttachment, MailStatus
from parsers.mail_token import reply_address
from tests import test_mail_inbound as inbound
from tests.mail_samples import SECRET, reply
from tests.test_mail_inbound import BASE

dovecot, imap, mail_services, deal = inbound.dovecot, inbound.imap, inbound.mail_services, inbound.deal

CAP_MB = 300
ORDINARY = 400

# The watcher process as `closeloop mail watch --once` runs it; prints its peak RSS.
# VmHWM is this process image's own peak: ru_maxrss is kept across execve(2), so a
# child spawned from the test process would start from the test process's peak.
INGEST = """
import json, resource, sys
from adapters.imap_watcher import ImapWatcher, Mailbox
from closeloop.bootstrap import build
from closeloop.config import Settings
from closeloop.demo.mail_servers import PASSWORD, USER
from flows.clock import SystemClock
from handlers.mail_watch import LedgerSink, read_config, store_process
settings, port, folder = Settings(**json.loads(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
services = build(settings, SystemClock())
mailbox = Mailbox(role="sales", host="127.0.0.1", port=port, username=USER, password=PASSWORD, ssl=False,
                  folder=folder)
def peak_kb(pid="self"):
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmHWM:", 1)[1].split()[0])
def children():
    import os
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                found.append(entry)
        except OSError:
            pass
    return found
started = peak_kb()
sink = LedgerSink(services, read_config(services), settle_batch=50, store_process=store_process(services))
fetched = ImapWatcher(mailbox, sink, timeout=30, batch=50).sync_once()
stores = [peak_kb(pid) for pid in children()]
sink.close()
services.close()
print(json.dumps({"fetched": fetched, "started_kb": started, "peak_kb": peak_kb(), "store_kb": stores,
                  "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def test_ingest_worker_rss_stays_under_the_cap_with_a_30_mb_attachment_and_many_messages(mail_services, imap, deal):
    to = reply_address(BASE, deal, SECRET)
    big = reply(to=to, body="Signed copy attached.", message_id="<big@acme.example>",
                attachments=[("signed.pdf", "application/pdf", b"%PDF-1.4\n" + os.urandom(30 << 20))])
    imap.deliver(big)
    imap.deliver(*(reply(to=to, body=f"Can we pay in {n + 2} parts?", message_id=f"<m{n}@acme.example>")
                   for n in range(ORDINARY)))
    keep = {"database_url", "outbox_dir", "documents_dir", "data_dir", "mail_secret", "mail_authserv_id"}
    done = subprocess.run([sys.executable, "-c", INGEST, json.dumps(mail_services.settings.model_dump(
        mode="json", include=keep)), str(imap.port), imap.folder], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"ingest worker: started at {report['started_kb'] >> 10} MB, peak {report['peak_kb'] >> 10} MB "
          f"(cap {CAP_MB} MB) for {report['fetched']} messages, one {len(big) >> 20} MB; "
          f"ru_maxrss {report['ru_maxrss_kb'] >> 10} MB; its store process peaked at "
          f"{[kb >> 10 for kb in report['store_kb']]} MB")
    assert report["fetched"] == ORDINARY + 1
    assert report["peak_kb"] < CAP_MB << 10
    assert report["store_kb"] and all(kb < CAP_MB << 10 for kb in report["store_kb"])  # the store process too

    def counts(s):
        return s.execute(select(InboundMail.status, func.count()).group_by(InboundMail.status)).all()
    assert dict(mail_services.ledger.read(counts)) == {MailStatus.ROUTED: ORDINARY, MailStatus.REVIEW: 1}
    big_mail = mail_services.ledger.read(lambda s: s.scalar(select(InboundMail).where(
        InboundMail.message_id == "<big@acme.example>")))
    # refused before its parts were parsed, with the reason; the deal's rep is shown it; its bytes kept as fetched
    assert big_mail.deal_id == deal and f"too_large: the message is {len(big_mail.raw)} bytes" in big_mail.reason
    assert len(big_mail.raw) >= len(big)  # (the server stores it with CRLF line ends)
    assert mail_services.ledger.read(lambda s: s.scalar(select(func.count()).select_from(MailAttachment))) == 0
