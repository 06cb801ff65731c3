"""Who may do what: nobody may do anything until granted a role; each role may exactly
what the permission table says; user groups count; refusals are explained and audited."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from closeloop.bootstrap import apply_role_grants, build
from closeloop.config import parse_role_grants
from flows.access import (ACTIONS, PERMISSIONS, NotAllowed, Role, RoleGrant, check, grant_role, may,
                          record_denial, revoke_role, roles_of)
from flows.timeline import Event
from tests.factories import row_counts

REP, MANAGER, FINANCE_LEAD, ADMIN = "U0REP", "U0MANAGER", "U0FINANCE", "U0ADMIN"
SALES_LEADS = "S0SALESLEADS"  # a Slack user group


def _grant(ledger, principal, role, by=ADMIN):
    return ledger.run(grant_role, principal=principal, role=role, granted_by=by)


def _revoke(ledger, principal, role, by=ADMIN):
    return ledger.run(revoke_role, principal=principal, role=role, revoked_by=by)


def _may(ledger, principals, action):
    return ledger.read(may, principals, action)


def _grants(ledger):
    return ledger.read(lambda s: sorted((g.principal, g.role.value) for g in s.scalars(select(RoleGrant))))


def _events(ledger, kind):
    return ledger.read(lambda s: list(s.scalars(select(Event).where(Event.kind == kind).order_by(Event.id))))


def test_every_action_is_named_for_refusals():
    assert set(ACTIONS) == set(PERMISSIONS)


def test_nobody_may_do_anything_without_a_grant(services):
    ledger = services.ledger
    _grant(ledger, MANAGER, Role.MANAGER)  # someone else's grant does not count for the rep
    for action in PERMISSIONS:
        assert _may(ledger, [REP], action) is False, action
        assert _may(ledger, [], action) is False, action
        assert _may(ledger, [""], action) is False, action


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_each_role_may_exactly_what_the_permission_table_says(services, role):
    ledger = services.ledger
    _grant(ledger, REP, role)
    allowed = {action for action in PERMISSIONS if _may(ledger, [REP], action)}
    assert allowed == {action for action, roles in PERMISSIONS.items() if role in roles}


def test_the_table_reads_like_the_business():
    """Spot checks, written out, so a slip in the table itself is caught."""
    assert PERMISSIONS["discount.decide"] == {Role.MANAGER, Role.ADMIN}
    assert Role.REP not in PERMISSIONS["discount.decide"]
    assert PERMISSIONS["invoice.mark_paid"] == {Role.FINANCE, Role.ADMIN}
    assert Role.MANAGER not in PERMISSIONS["license.suspend"]
    assert Role.FINANCE not in PERMISSIONS["quote.send"]
    assert all(Role.ADMIN in roles for roles in PERMISSIONS.values())
    assert all(PERMISSIONS[a] == frozenset(Role) for a in ("deal.view", "invoice.view", "license.view"))


def test_a_role_granted_to_a_user_group_counts_when_the_group_is_among_the_principals(services):
    ledger = services.ledger
    _grant(ledger, SALES_LEADS, Role.MANAGER)

    assert _may(ledger, [MANAGER, SALES_LEADS], "discount.decide") is True
    assert _may(ledger, [MANAGER], "discount.decide") is False
    assert ledger.read(roles_of, [MANAGER, SALES_LEADS]) == {Role.MANAGER}
    ledger.read(check, MANAGER, [SALES_LEADS], "discount.decide")  # does not raise
    with pytest.raises(NotAllowed):
        ledger.read(check, MANAGER, [], "discount.decide")


def test_roles_of_a_user_and_their_groups_add_up(services):
    ledger = services.ledger
    _grant(ledger, REP, Role.REP)
    _grant(ledger, SALES_LEADS, Role.MANAGER)
    assert ledger.read(roles_of, [REP, SALES_LEADS]) == {Role.REP, Role.MANAGER}
    assert _may(ledger, [REP, SALES_LEADS], "discount.decide") is True
    assert _may(ledger, [REP, SALES_LEADS], "invoice.mark_paid") is False


def test_granting_a_role_twice_keeps_one_grant_and_changes_nothing_the_second_time(services, clock):
    ledger = services.ledger
    assert _grant(ledger, FINANCE_LEAD, Role.FINANCE) is True
    after_first = row_counts(ledger)

    assert _grant(ledger, FINANCE_LEAD, Role.FINANCE, by="U0SOMEONE_ELSE") is False

    assert row_counts(ledger) == after_first
    assert ledger.read(lambda s: s.scalar(select(func.count()).select_from(RoleGrant))) == 1
    grant = ledger.read(lambda s: s.scalars(select(RoleGrant)).one())
    assert (grant.principal, grant.role, grant.granted_by, grant.granted_at) == (
        FINANCE_LEAD, Role.FINANCE, ADMIN, clock.now())
    [granted] = _events(ledger, "role.granted")
    assert granted.actor == ADMIN and granted.data == {"principal": FINANCE_LEAD, "role": "finance"}


def test_one_principal_may_hold_several_roles(services):
    ledger = services.ledger
    assert _grant(ledger, FINANCE_LEAD, Role.FINANCE) is True
    assert _grant(ledger, FINANCE_LEAD, Role.MANAGER) is True
    assert _grants(ledger) == [(FINANCE_LEAD, "finance"), (FINANCE_LEAD, "manager")]


def test_a_revoked_role_no_longer_allows_anything(services):
    ledger = services.ledger
    _grant(ledger, FINANCE_LEAD, Role.FINANCE)
    _grant(ledger, FINANCE_LEAD, Role.MANAGER)
    assert _may(ledger, [FINANCE_LEAD], "invoice.mark_paid") is True

    assert _revoke(ledger, FINANCE_LEAD, Role.FINANCE) is True

    assert _may(ledger, [FINANCE_LEAD], "invoice.mark_paid") is False
    assert _may(ledger, [FINANCE_LEAD], "discount.decide") is True  # the other role stays
    assert _grants(ledger) == [(FINANCE_LEAD, "manager")]
    [revoked] = _events(ledger, "role.revoked")
    assert revoked.actor == ADMIN and revoked.data == {"principal": FINANCE_LEAD, "role": "finance"}


def test_revoking_a_role_that_is_not_held_changes_nothing(services):
    ledger = services.ledger
    _grant(ledger, FINANCE_LEAD, Role.FINANCE)
    _revoke(ledger, FINANCE_LEAD, Role.FINANCE)
    before = row_counts(ledger)

    assert _revoke(ledger, FINANCE_LEAD, Role.FINANCE) is False
    assert _revoke(ledger, REP, Role.ADMIN) is False

    assert row_counts(ledger) == before


def test_a_refusal_names_the_action_and_the_roles_that_may_take_it(services):
    ledger = services.ledger
    _grant(ledger, REP, Role.REP)

    with pytest.raises(NotAllowed) as refusal:
        ledger.read(check, REP, [], "discount.decide")

    assert str(refusal.value) == "not allowed: approving or rejecting a discount needs the admin, manager role"
    assert (refusal.value.user, refusal.value.action) == (REP, "discount.decide")


@pytest.mark.parametrize("action", sorted(PERMISSIONS))
def test_every_refusal_names_its_action_and_every_allowed_role(services, action):
    with pytest.raises(NotAllowed) as refusal:
        services.ledger.read(check, "U0NOBODY", ["S0NOBODY"], action)
    message = str(refusal.value)
    assert ACTIONS[action] in message
    for role in PERMISSIONS[action]:
        assert role.value in message


def test_a_denial_is_written_to_the_audit_trail_with_who_and_what(services, clock):
    ledger = services.ledger

    ledger.run(record_denial, user=REP, action="invoice.mark_paid", detail="tried /finance paid INV-2026-000001")

    [denied] = _events(ledger, "access.denied")
    assert denied.actor == REP
    assert denied.data == {"action": "invoice.mark_paid", "detail": "tried /finance paid INV-2026-000001"}
    assert denied.deal_id is None and denied.occurred_at == clock.now()


def test_role_grants_from_the_configuration_are_parsed():
    assert parse_role_grants("U1=rep;U2=finance,manager") == [("U1", "rep"), ("U2", "finance"), ("U2", "manager")]
    assert parse_role_grants(" U1 = rep ; S3=admin ;") == [("U1", "rep"), ("S3", "admin")]
    assert parse_role_grants("") == []


@pytest.mark.parametrize("text, bad", [
    ("U1=rep;U2=boss", "'boss'"),
    ("U1=Rep", "'Rep'"),
    ("U2=finance,,manager", "''"),
])
def test_an_unknown_role_in_the_configuration_is_refused_by_name(text, bad):
    with pytest.raises(ValueError) as refusal:
        parse_role_grants(text)
    message = str(refusal.value)
    assert f"unknown role {bad}" in message
    assert "roles: rep, manager, finance, admin" in message


@pytest.mark.parametrize("part", ["U1", "=rep", "U1=", "U1=  "])
def test_a_malformed_grant_in_the_configuration_is_refused_with_an_example(part):
    with pytest.raises(ValueError) as refusal:
        parse_role_grants(f"U0=rep;{part}")
    assert str(refusal.value) == f"role grant {part.strip()!r} must look like U0123=rep or S0456=finance,manager"


@pytest.fixture
def configured(settings, clock):
    built = build(settings.model_copy(update={"slack_roles": "U1=rep;U2=finance,manager;S3=manager"}), clock)
    yield built
    built.close()


def test_applying_the_configured_grants_again_changes_nothing(configured):
    ledger = configured.ledger
    assert apply_role_grants(configured) == 4
    after_first = row_counts(ledger)

    assert apply_role_grants(configured) == 0

    assert row_counts(ledger) == after_first
    assert _grants(ledger) == [("S3", "manager"), ("U1", "rep"), ("U2", "finance"), ("U2", "manager")]
    assert {e.actor for e in _events(ledger, "role.granted")} == {"configuration"}


def test_configured_grants_add_to_grants_already_made(configured):
    ledger = configured.ledger
    _grant(ledger, "U2", Role.FINANCE)
    assert apply_role_grants(configured) == 3
    assert len(_grants(ledger)) == 4
