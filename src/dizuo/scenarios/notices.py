"""Notices of the scenario lists (通知): both sides hear in the console of what concerns them.

Each act that another party waits on leaves a notice, in the act's own transaction, addressed to an
organization (all its members), to the program office (its members and platform admins; auditors
read them too) or to the reviewers:

- a scenario submitted → the office; under review → the reviewers;
- selected, rejected, published, taken, accepted, made a benchmark or closed → its demand side
  (taken: the taker too);
- an application to take it → its demand side; shortlisted, awarded, declined → the applicant;
- a milestone done → the demand side and the office.

A member's unread notices are those newer than the last time they opened the notices page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, or_, select

from dizuo.accounts.members import Actor
from dizuo.accounts.permissions import allowed
from dizuo.scenarios.tables import NoticeSeen, ScenarioNotice
from dizuo.store import Database, iso, utc, utcnow

__all__ = ["Notices", "notify"]

Audience = Literal["org", "office", "reviewers"]
SHOWN = 100  # the newest notices a page shows


def notify(
    session: Any, audience: Audience, scenario_id: str, kind: str, zh: str, en: str, org_id: str | None = None
) -> None:
    """Leave a notice for *audience* (an organization's members: *org_id*) in *session*."""
    session.add(
        ScenarioNotice(
            audience=audience, org_id=org_id if audience == "org" else None, scenario_id=scenario_id,
            kind=kind, text_zh=zh, text_en=en, created_at=utcnow(),
        )
    )  # fmt: skip


def _for(actor: Actor) -> Any:
    """The notices *actor* receives, as a condition."""
    parts: list[ColumnElement[bool]] = []
    if actor.org_id is not None:
        parts.append((ScenarioNotice.audience == "org") & (ScenarioNotice.org_id == actor.org_id))
    if allowed(actor, "run scenario lists") or actor.role == "auditor":
        parts.append(ScenarioNotice.audience == "office")
    if allowed(actor, "review scenarios"):
        parts.append(ScenarioNotice.audience == "reviewers")
    return or_(*parts) if parts else None


class Notices:
    """Each member's notices, and what they have not seen yet."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def listed(self, actor: Actor) -> list[dict[str, Any]]:
        """*actor*'s newest notices, newest first, each marked ``unread`` or not."""
        condition = _for(actor)
        if condition is None:
            return []
        with self.db.session() as session:
            seen = self._seen(session, actor)
            rows = session.scalars(
                select(ScenarioNotice).where(condition).order_by(ScenarioNotice.id.desc()).limit(SHOWN)
            ).all()
            return [
                {
                    "scenario": row.scenario_id,
                    "kind": row.kind,
                    "zh": row.text_zh,
                    "en": row.text_en,
                    "created_at": iso(row.created_at),
                    "unread": seen is None or utc(row.created_at) > seen,
                }
                for row in rows
            ]

    def read(self, actor: Actor) -> list[dict[str, Any]]:
        """:meth:`listed`, then every notice is seen: what the notices page shows."""
        found = self.listed(actor)
        self.seen(actor)
        return found

    def unread(self, actor: Actor) -> int:
        """How many of *actor*'s notices are newer than their last visit to the notices page."""
        condition = _for(actor)
        if condition is None:
            return 0
        with self.db.session() as session:
            seen = self._seen(session, actor)
            query = select(func.count()).where(condition)
            if seen is not None:
                query = query.where(ScenarioNotice.created_at > seen)
            return int(session.scalar(query) or 0)

    def seen(self, actor: Actor) -> None:
        """*actor* has seen every notice there is now."""
        with self.db.session() as session:
            row = session.get(NoticeSeen, actor.member_id)
            if row is None:
                session.add(NoticeSeen(member_id=actor.member_id, seen_at=utcnow()))
            else:
                row.seen_at = utcnow()

    @staticmethod
    def _seen(session: Any, actor: Actor) -> dt.datetime | None:
        row = session.get(NoticeSeen, actor.member_id)
        return utc(row.seen_at) if row is not None else None
