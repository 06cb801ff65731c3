"""/gaps: completeness gaps — mine, all, by rule or customer — and the snooze button.

The gap rules themselves arrive with the gaps issue. Until then the command parses and
checks the role like the others, and says plainly that there is nothing to list yet;
the snooze button refuses plainly. Nothing is faked and nothing changes."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.deal import Respond, parsed_or_answered, refused
from bot.finance_blocks import GAP_SNOOZE, escape, plain
from bot.identity import Identity
from closeloop.bootstrap import Services
from parsers.slash import GapsList, parse_gaps


def register(app: App, services: Services, identity: Identity) -> None:
    @app.command("/gaps")
    def gaps_command(ack: Callable[..., Any], command: dict[str, Any], respond: Respond) -> None:
        parsed = parsed_or_answered(ack, "/gaps", parse_gaps, command)
        if parsed is None:
            return
        assert isinstance(parsed, GapsList)
        if refused(identity, command["user_id"], "gaps.view", respond):
            return
        respond(**plain(f":hourglass: Completeness gaps are not checked yet: the gap rules arrive with the gaps "
                        f"issue, so there is nothing to list for {_asked(parsed)}. Nothing was changed."),
                response_type="ephemeral")

    @app.action(GAP_SNOOZE)
    def snooze_gap(ack: Callable[..., Any], body: dict[str, Any], respond: Respond) -> None:
        ack()
        if refused(identity, body["user"]["id"], "gaps.snooze", respond):
            return
        respond(**plain(":hourglass: Snoozing a gap arrives with the gaps issue, together with the gaps "
                        "themselves. Nothing was snoozed or changed."),
                response_type="ephemeral", replace_original=False)


def _asked(gaps: GapsList) -> str:
    parts = ["your gaps" if gaps.scope == "mine" else "all gaps"]
    if gaps.rule:
        parts.append(f"rule `{escape(gaps.rule)}`")
    if gaps.customer:
        parts.append(f"customer `{escape(gaps.customer)}`")
    return ", ".join(parts)
