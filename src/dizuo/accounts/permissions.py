"""Who may do what: the one rule book the admin API and the console both check.

A platform admin may do everything. Every other role may do the actions listed for it here, and an
organization role only inside its own organization, a voucher issuer only under its own name.
"""

from __future__ import annotations

from dizuo.accounts.members import ORG_ROLES, Actor
from dizuo.errors import PermissionDenied

__all__ = ["RULES", "acting_issuer", "allowed", "authorize", "sees_all_orgs"]

# action -> the roles besides platform-admin that may take it.
RULES: dict[str, tuple[str, ...]] = {
    "read deployments": ("auditor",),
    "change deployments": (),
    "read pools": ("auditor",),
    "read compute jobs": ("auditor", "org-admin", "org-developer"),
    "read batches": ("auditor", "org-admin", "org-developer"),
    "change pools": (),
    "read organizations": ("auditor", "org-admin", "org-developer"),
    "create organizations": (),
    "read keys": ("auditor", "org-admin", "org-developer"),
    "create keys": ("org-admin", "org-developer"),
    "revoke keys": ("org-admin",),
    "top up wallets": (),
    "read wallets": ("auditor", "org-admin"),
    "issue vouchers": ("voucher-issuer",),
    "revoke vouchers": ("voucher-issuer",),
    "set guard policies": ("org-admin",),
    "read guard events": ("auditor", "org-admin"),
    "read account events": ("auditor", "org-admin"),
    "read the audit trail": ("auditor",),
    "read usage": ("auditor", "org-admin", "org-developer"),
    "read statements": ("auditor", "org-admin"),
    "read voucher reports": ("auditor", "voucher-issuer"),
    "read knowledge bases": ("auditor", "org-admin", "org-developer"),
    "use the playground": ("auditor", "org-admin", "org-developer"),
    "read evaluations": ("auditor",),
    "run evaluations": (),
    "read indicators": ("auditor", "program-office"),
    "keep indicator snapshots": ("program-office",),
    "read scenarios": ("auditor", "org-admin", "org-developer", "supplier", "program-office", "reviewer"),
    "submit scenarios": ("org-admin", "org-developer"),
    "run scenario lists": ("program-office",),
    "set the review rubric": ("program-office",),
    "review scenarios": ("reviewer",),
    "read scenario reviews": ("auditor", "program-office"),
    "apply for scenarios": ("org-admin", "org-developer", "supplier"),
    "read scenario applications": ("auditor", "org-admin", "org-developer", "supplier", "program-office"),
    "award scenarios": ("org-admin", "org-developer"),
    "manage the supply catalog": ("org-admin", "org-developer", "supplier"),
    "read agents": ("auditor", "org-admin", "org-developer"),
    "change agents": ("org-admin", "org-developer"),
    "enable mcp servers": ("org-admin",),
    "change tool access": (),
    "read the sandbox catalog": ("auditor", "org-admin", "org-developer", "voucher-issuer"),
    "register sandbox datasets": ("org-admin",),
    "request sandbox data": ("org-admin", "org-developer"),
    "grant sandbox data": ("org-admin",),
    "release sandbox results": ("org-admin",),
    "query sandbox data": ("org-admin", "org-developer"),
    "read sandbox records": ("auditor", "org-admin", "org-developer"),
}


def allowed(actor: Actor, action: str, *, org_id: str | None = None, issuer: str | None = None) -> bool:
    """Return whether *actor* may take *action* (on the organization *org_id*, for *issuer*)."""
    if actor.role == "platform-admin":
        return True
    if actor.role not in RULES[action]:
        return False
    if actor.role in ORG_ROLES and org_id is not None and actor.org_id != org_id:
        return False
    return not (actor.role == "voucher-issuer" and issuer is not None and actor.issuer != issuer)


def authorize(actor: Actor, action: str, *, org_id: str | None = None, issuer: str | None = None) -> None:
    """Raise 403 unless *actor* may take *action*."""
    if not allowed(actor, action, org_id=org_id, issuer=issuer):
        raise PermissionDenied(role=actor.role, action=action)


def acting_issuer(actor: Actor, asked: str | None) -> str | None:
    """Return the issuer *actor* acts for: a voucher issuer always its own, others the one *asked*."""
    return actor.issuer if actor.role == "voucher-issuer" else asked


def sees_all_orgs(actor: Actor) -> bool:
    """Return whether *actor* reads every organization (platform admins and auditors)."""
    return actor.role in ("platform-admin", "auditor")
