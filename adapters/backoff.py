"""How long to leave a service alone after it said "not now" (429, 5xx): what it
asked for in Retry-After when it said, else doubling from `first` up to `longest`.
Kept in memory by the long-running process that polls; a success starts over."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass
class Backoff:
    first: timedelta = timedelta(seconds=30)
    longest: timedelta = timedelta(minutes=30)
    # A Retry-After longer than this is taken as this: a bad header must not stop polling for days.
    most_told: timedelta = timedelta(hours=6)
    failures: int = 0
    until: datetime | None = None

    def remaining(self, now: datetime) -> timedelta | None:
        """How long is left to wait, or None when asking again is fine."""
        if self.until is None or now >= self.until:
            return None
        return self.until - now

    def failed(self, now: datetime, retry_after: float | None = None) -> timedelta:
        """Record a refusal; returns how long to wait before the next try."""
        self.failures += 1
        if retry_after is not None:
            delay = min(timedelta(seconds=retry_after), self.most_told)
        else:
            delay = min(self.first * 2 ** (self.failures - 1), self.longest)
        self.until = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.until = 0, None
