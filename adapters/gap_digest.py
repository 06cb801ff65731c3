"""Delivering the daily gap digest (outbox kind "slack.gap_digest"): read what it says
from the ledger, render the messages, the aging chart, the CSV and the aging report
PDF (adapters/pdf_render/aging.py, handed in by the wiring), then post them to the finance channel — the messages with
chat.postMessage (later parts in the first one's thread), the files with
files_upload_v2 in that thread. Without Slack, everything is written to the outbox
folder instead (digest-<day>.json, .png, .csv, .pdf), so nothing is lost.

The outbox row exists once per day (flows/gap_digest.py); a redelivery after a crash
between posting and recording could post again, which the relay's lease makes rare."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from slack_sdk import WebClient

from adapters.gap_blocks import Message, digest_messages
from adapters.gap_files import aging_chart_png, gaps_csv
from adapters.slack import call
from flows.gap_digest import Digest, digest_data
from flows.gaps import GapPolicy
from flows.ledger import Ledger
from flows.outbox import Delivery


@dataclass(frozen=True)
class RenderedDigest:
    day: date
    messages: list[Message]
    chart_png: bytes
    csv: str
    pdf: bytes | None

    def files(self) -> list[dict[str, Any]]:
        day = self.day.isoformat()
        files = [{"file": self.chart_png, "filename": f"gap-aging-{day}.png", "title": f"Aging chart {day}"},
                 {"file": self.csv.encode(), "filename": f"gaps-{day}.csv", "title": f"All open gaps {day}"}]
        if self.pdf is not None:
            files.append({"file": self.pdf, "filename": f"aging-{day}.pdf", "title": f"Aging report {day}"})
        return files

    def note(self) -> str:
        if self.pdf is not None:
            return "The aging chart, the full list of gaps (CSV) and the aging report (PDF)."
        return "The aging chart and the full list of gaps (CSV)."


def render_digest(digest: Digest, timezone: str, pdf: bytes | None = None) -> RenderedDigest:
    return RenderedDigest(digest.day, digest_messages(digest, ZoneInfo(timezone)),
                          aging_chart_png(digest.aging, digest.day), gaps_csv(digest.everything), pdf)


class GapDigestPoster:
    def __init__(self, ledger: Ledger, policy: GapPolicy, *, client: WebClient | None, channel: str,
                 folder: Path, aging_report: Callable[[date], bytes] | None = None) -> None:
        self.ledger, self.policy, self.client, self.channel, self.folder = ledger, policy, client, channel, folder
        self.aging_report = aging_report  # day -> the all-customers aging report PDF

    def render(self, payload: dict[str, Any]) -> RenderedDigest:
        day, since = date.fromisoformat(payload["date"]), datetime.fromisoformat(payload["since"])
        digest = self.ledger.read(digest_data, day, since, self.ledger.clock.now(), self.policy)
        return self.rendered(digest)

    def rendered(self, digest: Digest) -> RenderedDigest:
        pdf = self.aging_report(digest.day) if self.aging_report is not None else None
        return render_digest(digest, self.policy.timezone, pdf)

    def post(self, delivery: Delivery) -> None:
        """Relay handler for "slack.gap_digest"."""
        rendered = self.render(delivery.payload)
        if self.client is None:
            self.write(rendered)
            return
        thread_ts = None
        for message in rendered.messages:
            posted = call(self.client.chat_postMessage, channel=self.channel, text=message["text"],
                          blocks=message["blocks"], thread_ts=thread_ts, unfurl_links=False)
            thread_ts = thread_ts or posted["ts"]
            channel_id = posted.get("channel") or self.channel
        call(self.client.files_upload_v2, channel=channel_id, thread_ts=thread_ts, file_uploads=rendered.files(),
             initial_comment=rendered.note())

    def write(self, rendered: RenderedDigest) -> list[Path]:
        """The digest as files: what would have been posted, and its attachments."""
        self.folder.mkdir(parents=True, exist_ok=True)
        stem = self.folder / f"digest-{rendered.day.isoformat()}"
        written = [stem.with_suffix(".json"), stem.with_suffix(".png"), stem.with_suffix(".csv")]
        written[0].write_text(json.dumps({"channel": self.channel, "messages": rendered.messages,
                                          "note": rendered.note()}, indent=2, ensure_ascii=False), encoding="utf-8")
        written[1].write_bytes(rendered.chart_png)
        written[2].write_text(rendered.csv, encoding="utf-8")
        if rendered.pdf is not None:
            written.append(stem.with_suffix(".pdf"))
            written[-1].write_bytes(rendered.pdf)
        return written
