"""App Home: what each person sees when they open closeloop, by the roles they hold.
A rep: their open quotes and deals with stage and age. A manager: the pipeline by
stage and the discounts waiting for approval. Finance: overdue invoices by aging
bucket. An admin: all three. Everyone with a role: the gaps they own. No role: how to get one."""
from __future__ import annotations

from typing import Any

from slack_bolt import App

from bot.deal import moment
from adapters.gap_blocks import gap_list
from bot.finance_blocks import HOME_BLOCKS, Block, capped, divider, home_view
from bot.gaps import checked_recently, owners_of
from bot.identity import Identity
from closeloop.bootstrap import Services
from flows import finance_views as views
from flows.access import Role, roles_of
from flows.gap_states import list_gaps

LIST = 15  # items per list on the Home tab: three lists and their headers stay far below 100 blocks
GAPS = 5   # gaps on the Home tab (two blocks each)


def register(app: App, services: Services, identity: Identity) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: Any) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        client.views_publish(user_id=user, view=home_for(services, identity, user))


def home_for(services: Services, identity: Identity, user: str) -> Block:
    read = services.ledger.read
    roles = read(roles_of, [user, *identity.groups_of(user)])
    now, today, tz = moment(services)

    def holds(role: Role) -> bool:
        return role in roles or Role.ADMIN in roles

    view = home_view(
        roles=[r.value for r in Role if r in roles], now=now, tz=tz,
        rep=read(views.open_deals_of, user, now, limit=LIST) if holds(Role.REP) else None,
        pipeline=read(views.pipeline) if holds(Role.MANAGER) else None,
        approvals=read(views.pending_approvals, now, limit=LIST) if holds(Role.MANAGER) else None,
        collections=read(views.aging, today, overdue_only=True, limit=LIST) if holds(Role.FINANCE) else None)
    if roles:  # completeness: the gaps this person owns, with their buttons
        checked_recently(services)
        gaps = read(list_gaps, now, owners=owners_of(services, identity, user), limit=GAPS)
        view["blocks"] = capped([*view["blocks"], divider(), *gap_list("Your completeness gaps", gaps, tz,
                                 hint="`/gaps` lists them all.")["blocks"]], HOME_BLOCKS)
    return view
