"""Taking credentials back: revoke an admin token, disable or enable a member, set a password, sign a
member out everywhere. Each change is written to the account events: who did what to whom, when.

Who may act on whom: a platform admin on anyone; an organization admin on the members of its own
organization; every member on itself (its own password, tokens and sessions). ``by=None`` is the
operator's shell (``dizuo admin …``), which holds the database and may do anything.

Every check reads the database (admin tokens and console sessions are looked up on each request),
so a revoked token or a disabled member is refused at once on every replica.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from dizuo.accounts.events import record
from dizuo.accounts.keys import hash_key
from dizuo.accounts.members import (
    ORG_ROLES,
    Actor,
    hash_password,
    may_manage,
    member_named,
    valid_password,
)
from dizuo.accounts.tables import AdminToken, ConsoleSession, Member
from dizuo.accounts.throttle import unlock
from dizuo.errors import InvalidRequest
from dizuo.store import Database, utc, utcnow

__all__ = [
    "expiry",
    "list_members",
    "list_tokens",
    "revoke_token",
    "set_disabled",
    "set_password",
    "sign_out_everywhere",
]


def _end_sessions(session: Session, member: Member) -> int:
    ended = session.execute(delete(ConsoleSession).where(ConsoleSession.member_id == member.id))
    return int(getattr(ended, "rowcount", 0) or 0)


def _token_view(token: AdminToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "prefix": token.prefix,
        "created_at": utc(token.created_at).isoformat(),
        "expires_at": utc(token.expires_at).isoformat() if token.expires_at else None,
        "revoked_at": utc(token.revoked_at).isoformat() if token.revoked_at else None,
    }


def list_members(db: Database, by: Actor) -> list[dict[str, Any]]:
    """The members *by* administers: everyone for a platform admin, its organization's for an
    organization admin, none for other roles."""
    query = select(Member).order_by(Member.username)
    if by.role == "org-admin":
        query = query.where(Member.org_id == by.org_id, Member.role.in_(ORG_ROLES))
    elif by.role != "platform-admin":
        return []
    with db.session() as session:
        return [
            {
                "username": m.username,
                "role": m.role,
                "disabled": m.disabled_at is not None,
                "self": m.id == by.member_id,
            }
            for m in session.scalars(query)
        ]


def list_tokens(db: Database, username: str, by: Actor | None = None) -> list[dict[str, Any]]:
    """The admin tokens of *username* (never the tokens themselves: id, prefix and dates)."""
    with db.session() as session:
        member = member_named(session, username)
        may_manage(by, member, "read-tokens")
        tokens = session.scalars(
            select(AdminToken).where(AdminToken.member_id == member.id).order_by(AdminToken.created_at)
        ).all()
        return [_token_view(token) for token in tokens]


def revoke_token(db: Database, token_id: str, by: Actor | None = None) -> dict[str, Any]:
    """Revoke an admin token by its id, its prefix (``dzt-xxxxxx``) or the whole token as it was
    printed; revoking twice is a no-op."""
    with db.session() as session:
        found = session.scalars(
            select(AdminToken).where(
                (AdminToken.id == token_id)
                | (AdminToken.prefix == token_id)
                | (AdminToken.token_hash == hash_key(token_id))
            )
        ).all()
        if len(found) != 1:
            reason = (
                ("没有这个令牌", "no such token")
                if not found
                else ("前缀不唯一，请用 id", "prefix not unique; use the id")
            )
            raise InvalidRequest("invalid_param", param="token", reason_zh=reason[0], reason_en=reason[1])
        (token,) = found
        member = session.get(Member, token.member_id)
        assert member is not None
        may_manage(by, member, "revoke-token")
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            record(session, by, "revoke-token", member, {"token": token.prefix})
        return _token_view(token)


def set_disabled(db: Database, username: str, disabled: bool, by: Actor | None = None) -> dict[str, Any]:
    """Disable a member (every token and session refused at once, sessions ended) or enable it again."""
    action = "disable" if disabled else "enable"
    with db.session() as session:
        member = member_named(session, username)
        may_manage(by, member, action)
        if by is not None and by.member_id == member.id and disabled:
            raise InvalidRequest(
                "invalid_param",
                param="username",
                reason_zh="不能停用自己的账号",
                reason_en="you cannot disable your own account",
            )
        if disabled and member.disabled_at is None:
            member.disabled_at = utcnow()
            ended = _end_sessions(session, member)
            record(session, by, action, member, {"sessions_ended": ended})
        elif not disabled and member.disabled_at is not None:
            member.disabled_at = None
            record(session, by, action, member)
        return {"username": member.username, "disabled": member.disabled_at is not None}


def set_password(db: Database, username: str, password: str, by: Actor | None = None) -> dict[str, Any]:
    """Set a member's password; every console session of that member ends (sign in again)."""
    valid_password(password)
    with db.session() as session:
        member = member_named(session, username)
        may_manage(by, member, "set-password")
        member.password_hash = hash_password(password)
        ended = _end_sessions(session, member)
        unlock(session, member.username)  # a member locked out by wrong guesses signs in with the new one
        record(session, by, "set-password", member, {"sessions_ended": ended})
        return {"username": member.username, "sessions_ended": ended}


def sign_out_everywhere(db: Database, username: str, by: Actor | None = None) -> dict[str, Any]:
    """End every console session of a member and revoke every admin token it holds."""
    now = utcnow()
    with db.session() as session:
        member = member_named(session, username)
        may_manage(by, member, "sign-out-everywhere")
        ended = _end_sessions(session, member)
        revoked = session.execute(
            update(AdminToken)
            .where(AdminToken.member_id == member.id, AdminToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        tokens = int(getattr(revoked, "rowcount", 0) or 0)
        record(
            session, by, "sign-out-everywhere", member, {"sessions_ended": ended, "tokens_revoked": tokens}
        )
        return {"username": member.username, "sessions_ended": ended, "tokens_revoked": tokens}


def expiry(days: float | None) -> dt.datetime | None:
    """The moment a token made now for *days* days stops working (None: it does not expire)."""
    if days is None:
        return None
    if not 0 < days <= 3650:
        raise InvalidRequest(
            "invalid_param",
            param="expires",
            reason_zh="有效期应在 0 到 3650 天之间",
            reason_en="the lifetime must be between 0 and 3650 days",
        )
    return utcnow() + dt.timedelta(days=days)
