"""(placeholder, filled in by the Slack feature work)"""
from __future__ import annotations

from typing import Any


def register(app: Any, services: Any, identity: Any) -> None:
    pass
