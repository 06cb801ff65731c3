"""The one clock. Everything reads time from here so tests can move it."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class ManualClock:
    """A clock that only moves when told to (tests, the demo's '45 days later')."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time does not run backwards")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, instant: datetime) -> None:
        instant = as_utc(instant)
        with self._lock:
            if instant < self._now:
                raise ValueError("time does not run backwards")
            self._now = instant


def as_utc(instant: datetime) -> datetime:
    """Reject naive datetimes: an instant without a zone is a bug waiting to bill twice."""
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant!r}: closeloop only handles timezone-aware instants")
    return instant.astimezone(timezone.utc)
