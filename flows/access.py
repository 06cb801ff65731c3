"""Who may do what. Slack users (or user groups) hold roles; each action names the
roles allowed to take it; everything else is denied, and denials are audited."""
from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from flows.base import Base, Id, enum_column
from flows.errors import LedgerError
from flows.ledger import Tx


class Role(enum.Enum):
    REP = "rep"
    MANAGER = "manager"
    FINANCE = "finance"
    ADMIN = "admin"


class RoleGrant(Base):
    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("principal", "role"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    principal: Mapped[str] = mapped_column(String(64), index=True)  # a Slack user (U…) or user group (S…)
    role: Mapped[Role] = mapped_column(enum_column(Role))
    granted_by: Mapped[str] = mapped_column(String(120))
    granted_at: Mapped[datetime]


class NotAllowed(LedgerError):
    def __init__(self, user: str, action: str, allowed: frozenset[Role]) -> None:
        names = ", ".join(sorted(r.value for r in allowed)) or "no"
        super().__init__(f"not allowed: {ACTIONS.get(action, action)} needs the {names} role")
        self.user, self.action = user, action


def roles_of(session: Session, principals: Iterable[str]) -> set[Role]:
    """The roles of a user, counting those granted to any of their user groups."""
    names = [p for p in principals if p]
    if not names:
        return set()
    return set(session.scalars(select(RoleGrant.role).where(RoleGrant.principal.in_(names))))


def may(session: Session, principals: Iterable[str], action: str) -> bool:
    """Deny by default: an action missing from PERMISSIONS is allowed to nobody."""
    return bool(roles_of(session, principals) & PERMISSIONS.get(action, frozenset()))


def check(session: Session, user: str, groups: Iterable[str], action: str) -> None:
    """Raise NotAllowed unless the user (or one of their groups) holds a role for it."""
    if not may(session, [user, *groups], action):
        raise NotAllowed(user, action, PERMISSIONS.get(action, frozenset()))


def record_denial(tx: Tx, *, user: str, action: str, detail: str, deal_id: int | None = None) -> None:
    """The audit trail of refusals: who tried what, and why it was refused."""
    tx.record("access.denied", deal_id=deal_id, customer_id=None, actor=user, action=action, detail=detail)


def grant_role(tx: Tx, *, principal: str, role: Role, granted_by: str) -> bool:
    """Give a role; granting one that is already held changes nothing."""
    exists = tx.session.scalar(select(RoleGrant.id).where(RoleGrant.principal == principal,
                                                          RoleGrant.role == role))
    if exists is not None:
        return False
    tx.session.add(RoleGrant(principal=principal, role=role, granted_by=granted_by, granted_at=tx.now))
    tx.record("role.granted", deal_id=None, customer_id=None, actor=granted_by, principal=principal,
              role=role.value)
    return True


def revoke_role(tx: Tx, *, principal: str, role: Role, revoked_by: str) -> bool:
    grant = tx.session.scalar(select(RoleGrant).where(RoleGrant.principal == principal, RoleGrant.role == role))
    if grant is None:
        return False
    tx.session.delete(grant)
    tx.record("role.revoked", deal_id=None, customer_id=None, actor=revoked_by, principal=principal,
              role=role.value)
    return True


_ANY = frozenset(Role)
_SALES = frozenset({Role.REP, Role.MANAGER, Role.ADMIN})
_FINANCE = frozenset({Role.FINANCE, Role.ADMIN})

# action -> what a person would call it (for refusals)
ACTIONS = {
    "quote.create": "drafting a quote", "quote.send": "sending a quote for signature",
    "quote.void": "voiding a quote", "discount.decide": "approving or rejecting a discount",
    "quote.mark_signed": "recording a signature received outside closeloop",
    "deal.view": "looking up deals", "gaps.view": "seeing completeness gaps", "gaps.snooze": "snoozing a gap",
    "gaps.remind": "sending a reminder about a gap", "gaps.invoice": "invoicing a gap",
    "invoice.view": "looking up invoices", "invoice.resend": "resending an invoice",
    "invoice.mark_paid": "marking an invoice paid", "license.view": "looking up licenses",
    "license.suspend": "suspending or reinstating a license", "collect.statement": "sending a statement",
    "mail.reply": "emailing a reply to the customer",
}

# action -> the roles that may take it; anything not listed here is denied
PERMISSIONS: dict[str, frozenset[Role]] = {
    "quote.create": _SALES, "quote.send": _SALES, "quote.void": _SALES,
    "discount.decide": frozenset({Role.MANAGER, Role.ADMIN}),
    "quote.mark_signed": frozenset({Role.MANAGER, Role.ADMIN}),
    "deal.view": _ANY, "gaps.view": _ANY, "gaps.snooze": _ANY,
    "invoice.view": _ANY, "license.view": _ANY,
    "invoice.resend": _FINANCE, "invoice.mark_paid": _FINANCE, "license.suspend": _FINANCE,
    "collect.statement": _FINANCE,
    "mail.reply": _SALES,
    "gaps.remind": _ANY, "gaps.invoice": _FINANCE,
}
