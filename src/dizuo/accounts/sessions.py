"""Console sessions: a random token in an HttpOnly cookie, its hash and a CSRF token in the database.

Sessions live in the database, not in a signed cookie, so that signing out, disabling a member or
changing a role takes effect at once on every replica.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select

from dizuo.accounts.keys import hash_key
from dizuo.accounts.members import Actor
from dizuo.accounts.tables import ConsoleSession, Member, Organization
from dizuo.store import Database, utc, utcnow
from dizuo.store.audit import append

__all__ = ["SESSION_HOURS", "SignedIn", "close_session", "find_session", "open_session"]

# A working day and then some; a session is not renewed by use, so a stolen cookie ages out.
SESSION_HOURS = 12


@dataclass(frozen=True, slots=True)
class SignedIn:
    actor: Actor
    csrf: str
    org_name: str | None  # the organization of an organization role


def open_session(db: Database, actor: Actor, address: str | None = None) -> tuple[str, str]:
    """Start a session for *actor* (signed in from *address*); return the cookie's token and the
    session's CSRF token."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = utcnow()
    with db.session() as session:
        session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        session.add(
            ConsoleSession(
                id=hash_key(token),
                member_id=actor.member_id,
                csrf=csrf,
                created_at=now,
                expires_at=now + dt.timedelta(hours=SESSION_HOURS),
            )
        )
        detail = {"address": address} if address else None
        append(session, "sign-in", actor.username, actor=actor.username, org_id=actor.org_id, detail=detail)
    return token, csrf


def find_session(db: Database, token: str) -> SignedIn | None:
    """Return who holds the session *token*, or None (unknown, expired, member disabled)."""
    if not token:
        return None
    with db.session() as session:
        row = session.execute(
            select(ConsoleSession, Member, Organization.name)
            .join(Member, ConsoleSession.member_id == Member.id)
            .outerjoin(Organization, Organization.id == Member.org_id)
            .where(ConsoleSession.id == hash_key(token))
        ).first()
        if row is None:
            return None
        found, member, org_name = row
        if utc(found.expires_at) <= utcnow() or member.disabled_at is not None:
            return None
        actor = Actor(member.id, member.username, member.role, member.org_id, member.issuer)
        return SignedIn(actor, found.csrf, org_name)


def close_session(db: Database, token: str) -> None:
    """End the session *token* (signing out); unknown tokens are ignored."""
    with db.session() as session:
        session.execute(delete(ConsoleSession).where(ConsoleSession.id == hash_key(token)))
