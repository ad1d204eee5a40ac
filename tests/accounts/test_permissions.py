"""The rule book both the admin API and the console check."""

from __future__ import annotations

import pytest

from dizuo.accounts.members import Actor
from dizuo.accounts.permissions import RULES, allowed, authorize
from dizuo.errors import PermissionDenied

ADMIN = Actor("m0", "root", "platform-admin", None, None)
A_ADMIN = Actor("m1", "alice", "org-admin", "org-a", None)
A_DEV = Actor("m2", "dev", "org-developer", "org-a", None)
BUREAU = Actor("m3", "bureau", "voucher-issuer", None, "大数据局")
AUDITOR = Actor("m4", "audit", "auditor", None, None)


def test_a_platform_admin_may_do_everything() -> None:
    assert all(allowed(ADMIN, action, org_id="org-b", issuer="other") for action in RULES)


@pytest.mark.parametrize("action", ["create keys", "read usage", "read keys"])
def test_organization_roles_act_only_inside_their_organization(action: str) -> None:
    assert allowed(A_DEV, action, org_id="org-a")
    assert not allowed(A_DEV, action, org_id="org-b")


def test_a_developer_may_not_revoke_keys_or_read_the_wallet() -> None:
    assert allowed(A_ADMIN, "revoke keys", org_id="org-a")
    assert not allowed(A_DEV, "revoke keys", org_id="org-a")
    assert not allowed(A_DEV, "read wallets", org_id="org-a")


def test_an_issuer_grants_only_under_its_own_name() -> None:
    assert allowed(BUREAU, "issue vouchers", issuer="大数据局")
    assert not allowed(BUREAU, "issue vouchers", issuer="另一个局")
    assert not allowed(BUREAU, "read usage", org_id="org-a")


def test_an_auditor_reads_but_changes_nothing() -> None:
    assert allowed(AUDITOR, "read wallets", org_id="org-b")
    assert not allowed(AUDITOR, "top up wallets", org_id="org-b")
    with pytest.raises(PermissionDenied) as caught:
        authorize(AUDITOR, "create keys", org_id="org-b")
    assert caught.value.status == 403
