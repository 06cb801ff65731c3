"""The PDF sandbox's limits, from configuration (adapters cannot read config themselves)."""
from __future__ import annotations

from adapters.pdf_sandbox import Limits
from closeloop.config import Settings


def pdf_limits(settings: Settings) -> Limits:
    return Limits(seconds=settings.pdf_timeout_seconds, memory_bytes=settings.pdf_memory_mb << 20,
                  max_file_bytes=settings.pdf_max_bytes)
