"""Admin routes that give and take back members' credentials: ``/admin/v1/members/{username}/…``
(tokens, disable, enable, password, sign-out-everywhere), ``/admin/v1/tokens/{id}/revoke`` and
``/admin/v1/account-events``. Who may act on whom is decided in :mod:`dizuo.accounts.lifecycle`.

No ``from __future__ import annotations``: FastAPI reads the route annotations at run time.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from dizuo.accounts import get_org
from dizuo.accounts import lifecycle as accounts
from dizuo.accounts.events import account_events
from dizuo.accounts.members import ORG_ROLES, Actor, create_token
from dizuo.accounts.permissions import authorize
from dizuo.admin.schemas import PasswordIn, TokenIn
from dizuo.store import Database

__all__ = ["member_routes"]


def member_routes(prefix: str, db: Database, actor: Callable[..., Actor]) -> APIRouter:
    """Return the credential routes over *db*; *actor* authenticates the caller."""
    router = APIRouter()
    Caller = Annotated[Actor, Depends(actor)]
    members = f"{prefix}/members/{{username}}"

    @router.get(f"{members}/tokens")
    def tokens(username: str, who: Caller) -> list[dict[str, Any]]:
        """A member's admin tokens: id, prefix, created, expires, revoked (never the token)."""
        return accounts.list_tokens(db, username, who)

    @router.post(f"{members}/tokens", status_code=201)
    def new_token(username: str, body: TokenIn, who: Caller) -> dict[str, Any]:
        """Create an admin token for a member (yourself, or a member you administer); shown once."""
        expires_at = accounts.expiry(body.expires_days)
        token = create_token(db, username, expires_at, by=who)
        return {"token": token, "expires_at": expires_at.isoformat() if expires_at else None}

    @router.post(f"{prefix}/tokens/{{token_id}}/revoke")
    def revoke(token_id: str, who: Caller) -> dict[str, Any]:
        """Revoke an admin token by id or prefix: refused at once on every replica."""
        return accounts.revoke_token(db, token_id, who)

    @router.post(f"{members}/disable")
    def disable(username: str, who: Caller) -> dict[str, Any]:
        """Disable a member: its tokens and sessions are refused at once and its sessions end."""
        return accounts.set_disabled(db, username, True, who)

    @router.post(f"{members}/enable")
    def enable(username: str, who: Caller) -> dict[str, Any]:
        """Enable a disabled member again."""
        return accounts.set_disabled(db, username, False, who)

    @router.put(f"{members}/password")
    def password(username: str, body: PasswordIn, who: Caller) -> dict[str, Any]:
        """Set a member's password; every console session of that member ends."""
        return accounts.set_password(db, username, body.password, who)

    @router.post(f"{members}/sign-out-everywhere")
    def sign_out_everywhere(username: str, who: Caller) -> dict[str, Any]:
        """End every console session of a member and revoke every admin token it holds."""
        return accounts.sign_out_everywhere(db, username, who)

    @router.get(f"{prefix}/account-events")
    def events(
        who: Caller,
        org: str | None = None,
        member: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
    ) -> list[dict[str, Any]]:
        """Who changed which member's credentials or access, newest first. Organization admins see
        their own organization's members; platform admins and auditors everyone's."""
        org_id = get_org(db, org).id if org is not None else (who.org_id if who.role in ORG_ROLES else None)
        authorize(who, "read account events", org_id=org_id)
        return account_events(db, org_id=org_id, member=member, limit=limit)

    return router
