"""DocuSign Connect JSON (the "JSON SIM" event format) to our own small notice.

Only what closeloop acts on is kept: the envelope, its status, and when DocuSign
generated the notice (de-duplication and ordering). Anything else in the payload is
ignored, so a DocuSign addition never breaks us; a payload without those fields is
refused with a clear reason."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone


class NotAConnectNotice(ValueError):
    """The body is not a Connect envelope notice we can act on."""


@dataclass(frozen=True)
class ConnectNotice:
    envelope_id: str
    status: str              # DocuSign's envelope status: sent, delivered, completed, declined, voided…
    event: str               # e.g. "envelope-completed"
    generated_at: str        # DocuSign's generatedDateTime, verbatim (part of the delivery's identity)
    status_at: datetime      # when the status changed, UTC
    account_id: str | None

    def as_payload(self) -> dict[str, str | None]:
        return {"envelope_id": self.envelope_id, "status": self.status, "event": self.event,
                "generated_at": self.generated_at, "status_at": self.status_at.isoformat(),
                "account_id": self.account_id}


def parse_connect(body: bytes) -> ConnectNotice:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise NotAConnectNotice(f"not JSON: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
        raise NotAConnectNotice("no 'data' object: not a Connect JSON notice")
    inner = data["data"]
    summary = inner.get("envelopeSummary") if isinstance(inner.get("envelopeSummary"), dict) else {}
    envelope_id = inner.get("envelopeId") or summary.get("envelopeId")
    event = str(data.get("event") or "")
    status = summary.get("status") or (event.removeprefix("envelope-") if event.startswith("envelope-") else None)
    generated = data.get("generatedDateTime")
    if not isinstance(envelope_id, str) or not envelope_id or len(envelope_id) > 64:
        raise NotAConnectNotice("no envelopeId")
    if not isinstance(status, str) or not status:
        raise NotAConnectNotice("no envelope status")
    if not isinstance(generated, str) or not generated:
        raise NotAConnectNotice("no generatedDateTime")
    changed = summary.get("statusChangedDateTime") or generated
    return ConnectNotice(envelope_id, status.lower(), event, generated[:64], docusign_time(str(changed)),
                         inner.get("accountId") if isinstance(inner.get("accountId"), str) else None)


def docusign_time(text: str) -> datetime:
    """DocuSign's timestamps carry 7 fractional digits ("2025-01-15T10:04:05.1234567Z");
    Python takes at most 6."""
    text = text.strip().replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise NotAConnectNotice(f"unreadable time {text!r}") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
