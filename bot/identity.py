"""Who is asking, and may they: roles of Slack users, directly or through user groups."""
from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from closeloop.bootstrap import Services
from closeloop.logs import about_deal
from flows.access import ACTIONS, PERMISSIONS, may, record_denial

log = logging.getLogger("closeloop.bot")


class Identity:
    def __init__(self, services: Services, client: WebClient, groups_ttl: float = 300.0) -> None:
        self.services, self.client, self.groups_ttl = services, client, groups_ttl
        self._groups: dict[str, tuple[str, ...]] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def allowed(self, user: str, action: str, *, deal_id: int | None = None) -> bool:
        """True if the user may; otherwise the refusal is written to the audit log."""
        about_deal(deal_id)  # a deal's every action is checked here first: the request's log lines name it
        principals = [user, *self.groups_of(user)]
        if self.services.ledger.read(may, principals, action):
            return True
        self.services.ledger.run(record_denial, user=user, action=action, deal_id=deal_id,
                                 detail=f"{ACTIONS[action]} needs one of: "
                                        + ", ".join(sorted(r.value for r in PERMISSIONS[action])))
        return False

    def refusal(self, action: str) -> str:
        roles = " or ".join(sorted(r.value for r in PERMISSIONS[action]))
        return f":no_entry: Not allowed: {ACTIONS[action]} needs the {roles} role. Ask an admin if you need it."

    def groups_of(self, user: str) -> tuple[str, ...]:
        with self._lock:
            if time.monotonic() - self._loaded_at > self.groups_ttl:
                self._groups = self._load_groups()
                self._loaded_at = time.monotonic()
            return self._groups.get(user, ())

    def _load_groups(self) -> dict[str, tuple[str, ...]]:
        try:
            response = self.client.usergroups_list(include_users=True)
        except SlackApiError as error:  # no usergroups:read scope, or Slack is down: roles by user only
            log.warning("could not list user groups: %s", error.response.get("error"))
            return {}
        members: dict[str, list[str]] = {}
        for group in response.get("usergroups", []):
            for user in group.get("users", []):
                members.setdefault(user, []).append(group["id"])
        return {user: tuple(groups) for user, groups in members.items()}
