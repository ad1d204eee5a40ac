"""The account events: every change to a member's credentials or access, and who made it (each also
in the platform's audit trail, as ``member.<action>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dizuo.accounts.tables import AccountEvent, Member
from dizuo.store import Database, ordered_id, utc, utcnow
from dizuo.store.audit import append

if TYPE_CHECKING:  # members imports this module to record the tokens it creates
    from dizuo.accounts.members import Actor

__all__ = ["ACTIONS", "account_events", "record"]

ACTIONS = (
    "create-token",
    "revoke-token",
    "disable",
    "enable",
    "set-password",
    "sign-out-everywhere",
    "sign-in-locked",
)


def record(
    session: Session,
    by: Actor | None,
    action: str,
    member: Member,
    detail: dict[str, Any] | None = None,
    actor: str | None = None,
) -> None:
    """Add an account event for *action* taken by *by* on *member* to *session*; *actor* names one
    that is not a member (``system``); with neither, the operator's shell (``cli``) acted."""
    name = actor or (by.username if by is not None else "cli")
    session.add(
        AccountEvent(
            id=ordered_id(),
            at=utcnow(),
            actor=name,
            action=action,
            member=member.username,
            org_id=member.org_id,
            detail=detail,
        )
    )
    append(session, f"member.{action}", member.username, actor=name, org_id=member.org_id, detail=detail)


def account_events(
    db: Database, *, org_id: str | None = None, member: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """Account events, newest first; of one organization's members or of one member when asked."""
    query = select(AccountEvent).order_by(AccountEvent.id.desc()).limit(limit)
    if org_id is not None:
        query = query.where(AccountEvent.org_id == org_id)
    if member is not None:
        query = query.where(AccountEvent.member == member)
    with db.session() as session:
        return [
            {
                "at": utc(event.at).isoformat(),
                "actor": event.actor,
                "action": event.action,
                "member": event.member,
                "detail": event.detail or {},
            }
            for event in session.scalars(query)
        ]
