"""Sample inbound messages, built the way real mail clients and servers write them."""
from __future__ import annotations

import itertools
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime, timezone

AUTHSERV = "mx.ourco.example"
SECRET = "test-mail-secret"
_ids = itertools.count(1)


def tiny_pdf(text: str = "Signed") -> bytes:
    """A small valid PDF, written by hand (no renderer needed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def reply(*, to: str, body: str, subject: str = "Re: your quote", sender: str = "Ada Signer <ada@acme.example>",
          in_reply_to: str | None = None, dkim_domain: str | None = "acme.example",
          auth_results: list[str] | None = None, attachments: list[tuple[str, str, bytes]] = (),
          headers: dict[str, str] | None = None, message_id: str | None = None) -> bytes:
    message = EmailMessage()
    if auth_results is None:
        auth_results = [f"{AUTHSERV}; dkim=pass header.d={dkim_domain} header.s=s1; spf=pass"] if dkim_domain else []
    for value in auth_results:
        message["Authentication-Results"] = value
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc))
    message["Message-ID"] = message_id or f"<reply-{next(_ids)}@acme.example>"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for filename, kind, data in attachments:
        main, _, sub = kind.partition("/")
        message.add_attachment(data, maintype=main, subtype=sub, filename=filename)
    return bytes(message)


def auto_reply(*, to: str, in_reply_to: str | None = None) -> bytes:
    return reply(to=to, subject="Out of office: Re: your quote", body="I am away until Monday.",
                 in_reply_to=in_reply_to, headers={"Auto-Submitted": "auto-replied"})


def dsn(*, original_message_id: str, recipient: str, status: str = "5.1.1",
        to: str = "sales@ourco.example") -> bytes:
    """An RFC 3464 delivery status notification, as Postfix writes it."""
    report = EmailMessage()
    report["From"] = "MAILER-DAEMON@mx.acme.example (Mail Delivery System)"
    report["To"] = to
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Message-ID"] = f"<dsn-{next(_ids)}@mx.acme.example>"
    report["Auto-Submitted"] = "auto-replied"
    report.set_content("I'm sorry to have to inform you that your message could not be delivered.")
    report.make_mixed()
    raw = bytes(report).replace(b"multipart/mixed", b"multipart/report; report-type=delivery-status", 1)
    boundary = raw.split(b'boundary="', 1)[1].split(b'"', 1)[0]
    status_part = (b"Content-Type: message/delivery-status\r\n\r\n"
                   b"Reporting-MTA: dns; mx.acme.example\r\n\r\n"
                   b"Final-Recipient: rfc822; " + recipient.encode() + b"\r\nAction: failed\r\nStatus: "
                   + status.encode() + b"\r\nDiagnostic-Code: smtp; 550 5.1.1 <" + recipient.encode()
                   + b">: Recipient address rejected: User unknown\r\n")
    headers_part = (b"Content-Type: message/rfc822-headers\r\n\r\n"
                    b"From: sales@ourco.example\r\nTo: " + recipient.encode() + b"\r\nSubject: Invoice\r\n"
                    b"Message-ID: " + original_message_id.encode() + b"\r\n")
    closing = b"--" + boundary + b"--"
    body = raw.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n").rsplit(closing, 1)[0]
    return (body + b"--" + boundary + b"\r\n" + status_part + b"\r\n--" + boundary + b"\r\n" + headers_part
            + b"\r\n" + closing + b"\r\n")


# A throwaway 1024-bit key for DKIM tests (made for this suite; it signs nothing real).
DKIM_PRIVATE_KEY = b"""-----BEGIN RSA PRIVATE KEY-----
MIICXAIBAAKBgQDgdijZIRsXyOJX6KBgrdOAmoEYaAw2QCYe0uTl34ydtIAaNBca
nYXOgh1g8ICnvrOeND9eUGtEPRsv5H9bsSU5/OCDmfqFBNpNeVTcpL+pV3G1JT+D
lVAuyaUaCNAd1mxqw/75eu5jDIZAgd+toc7rE9/LADy2H67pLr2nv2ht6QIDAQAB
AoGBAIkchI1F5MfdpS2v4y/LXvQi7RLclAEbpG2Vw88LhFjdZpcbFLXkXVUtNAcA
Qoa1PgE4xzC0jSGs9guGV6nKBwNFBvViQrlGl/5PJfiAJDeaQLUz8gfnvA8lBg2E
D2M+m1Hh3e1TeTD0byRzzsh/q4oO/Komkr4X+XFBVMRp8bkBAkEA+AIuZVKVAOOX
Nz7V+ubGwKQx1bS048tcta9yMiDhfH58O0XTymj+nFQ6Gjk4+A8s+yyfUZ9hgCIq
7AvidygcyQJBAOexvWMbSd9DPp/u58UT51ZcdSr03Wcdzwvc0+30ndbB2Y1CIJwM
WaphYPET5kMwrniGzz6s9Hr5lHdPYGuK+CECQDJkHxEvSl833w22kru8ED4sHoQR
h3+RXnD8CPPugmJNQOi6M2I5GyKgan3RiqW8T6NpWaW4AJOMXbRAZe9YEyECQB5r
4v8JTTjIXoenWb0xsNVRDH1Ya12nt1DKbPU4giT5jPQUM63pnThW0uC0iS5XTQE8
Sifjk7I15P2JaZKVS6ECQEtJUoZLqBzjzdySdR0Hsh2Af7sKabnItnMjMzjFvNVw
S0NwTWmQx2zy5fDPF1F9EeNfWbQwjucb9N1THZZg0JU=
-----END RSA PRIVATE KEY-----
"""
DKIM_TXT = b"v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDgdijZIRsXyOJX6KBgrdOAmoEYaAw2QCYe0uTl34ydtIAaNBcanYXOgh1g8ICnvrOeND9eUGtEPRsv5H9bsSU5/OCDmfqFBNpNeVTcpL+pV3G1JT+DlVAuyaUaCNAd1mxqw/75eu5jDIZAgd+toc7rE9/LADy2H67pLr2nv2ht6QIDAQAB"


def dkim_signed(raw: bytes, *, domain: str = "acme.example", selector: str = "s1") -> bytes:
    import dkim
    signature = dkim.sign(raw, selector.encode(), domain.encode(), DKIM_PRIVATE_KEY,
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return signature + raw


def dns_for(domain: str = "acme.example", selector: str = "s1"):
    """A DNS TXT lookup that knows one DKIM key (dkimpy's dnsfunc signature)."""
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return DKIM_TXT if name == f"{selector}._domainkey.{domain}.".encode() else None
    return lookup
