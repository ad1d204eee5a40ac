"""Slowing down password guessing: failed sign-ins are counted per username and per client address;
past a few in a row the username (or address) is locked for a while, doubling with each further
failure. A locked sign-in is refused before its password is hashed, so guessing costs the server
nothing either (each argon2 hash costs ~50 ms of CPU: 30 wrong passwords took 8.7 s, all answered).

The counts live in the database, so every replica sees the same lock.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from dizuo.accounts.events import record
from dizuo.accounts.tables import Member, SignInThrottle
from dizuo.store import Database, utc, utcnow
from dizuo.store.audit import append

__all__ = ["ADDRESS_FAILURES", "FIRST_LOCK", "LONGEST_LOCK", "USER_FAILURES", "Throttle", "locked", "unlock"]

USER_FAILURES = 5  # wrong passwords in a row for one username before it is locked
ADDRESS_FAILURES = 20  # failed sign-ins in a row from one address (any usernames) before it is locked
FIRST_LOCK = dt.timedelta(minutes=1)
LONGEST_LOCK = dt.timedelta(hours=1)
FORGET = dt.timedelta(hours=24)  # a count untouched this long starts again from zero


def _user(username: str) -> str:
    return f"user:{username.strip().lower()[:190]}"


def _address(address: str) -> str:
    return f"addr:{address[:190]}"


@dataclass(frozen=True)
class Refused:
    """A sign-in refused without looking at the password: how long until it may be tried again."""

    retry_after: int  # seconds


class Throttle:
    """The sign-in throttle over *db*."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def check(self, username: str, address: str) -> Refused | None:
        """Return why a sign-in must be refused now, or None when it may be tried."""
        now = utcnow()
        with self.db.session() as session:
            rows = session.scalars(
                select(SignInThrottle).where(SignInThrottle.key.in_([_user(username), _address(address)]))
            ).all()
        waits = [
            utc(row.locked_until) - now for row in rows if row.locked_until and utc(row.locked_until) > now
        ]
        if not waits:
            return None
        return Refused(max(1, math.ceil(max(waits).total_seconds())))

    def failed(self, username: str, address: str) -> None:
        """Count a failed sign-in against the username and the address; lock what passed its limit."""
        now = utcnow()
        with self.db.session() as session:
            session.execute(delete(SignInThrottle).where(SignInThrottle.updated_at < now - FORGET))
            for key, limit in ((_user(username), USER_FAILURES), (_address(address), ADDRESS_FAILURES)):
                row = session.get(SignInThrottle, key, with_for_update=True)
                if row is None:
                    row = SignInThrottle(key=key, failures=0, updated_at=now)
                    session.add(row)
                row.failures += 1
                row.updated_at = now
                if row.failures >= limit:
                    lock = min(FIRST_LOCK * 2 ** (row.failures - limit), LONGEST_LOCK)
                    row.locked_until = now + lock
                    if key.startswith("user:"):
                        self._locked(session, username, row.failures, lock)
            # Whoever tried is nobody the platform knows: the name typed is the target.
            detail = {"address": address}
            append(session, "sign-in.failed", username.strip()[:256], actor="anonymous", detail=detail)

    @staticmethod
    def _locked(session: Session, username: str, failures: int, lock: dt.timedelta) -> None:
        member = session.scalars(select(Member).where(Member.username == username.strip())).first()
        if member is not None:
            detail = {"seconds": int(lock.total_seconds()), "failures": failures}
            record(session, None, "sign-in-locked", member, detail, actor="system")

    def succeeded(self, username: str, address: str) -> None:
        """Forget the failures of a username (and its address) that signed in."""
        with self.db.session() as session:
            session.execute(
                delete(SignInThrottle).where(SignInThrottle.key.in_([_user(username), _address(address)]))
            )


def unlock(session: Session, username: str) -> None:
    """Forget the failed sign-ins of *username* (its password was just set)."""
    session.execute(delete(SignInThrottle).where(SignInThrottle.key == _user(username)))


def locked(db: Database) -> list[dict[str, object]]:
    """Usernames and addresses locked now, with their failures and when the lock ends (operators)."""
    now = utcnow()
    with db.session() as session:
        rows = session.scalars(select(SignInThrottle).where(SignInThrottle.locked_until > now)).all()
        return [
            {
                "kind": "username" if row.key.startswith("user:") else "address",
                "name": row.key.split(":", 1)[1],
                "failures": row.failures,
                "locked_until": utc(row.locked_until).isoformat() if row.locked_until else None,
            }
            for row in sorted(rows, key=lambda r: r.key)
        ]
