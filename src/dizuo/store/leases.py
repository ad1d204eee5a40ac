"""Leases: one holder at a time for work that one replica among several must do (reconciling the
compute jobs with their clusters), taken and kept in the database that every replica shares.

A holder keeps its lease by taking it again before it lapses; a replica that stops (or dies) lets it
lapse, and another takes it on its next try. Taking is one conditional statement, so two replicas
trying at once cannot both win.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, String, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from dizuo.store.db import Base, Database, utcnow

__all__ = ["Lease", "release", "take"]


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


def take(db: Database, name: str, holder: str, seconds: float) -> bool:
    """Take or keep the lease *name* for *holder* for *seconds*; whether *holder* has it now."""
    now = utcnow()
    until = now + dt.timedelta(seconds=seconds)
    with db.session() as session:
        result = session.execute(
            update(Lease)
            .where(Lease.name == name, (Lease.holder == holder) | (Lease.expires_at < now))
            .values(holder=holder, expires_at=until)
        )
        if getattr(result, "rowcount", 0):
            return True
    try:
        with db.session() as session:
            session.execute(insert(Lease).values(name=name, holder=holder, expires_at=until))
        return True
    except IntegrityError:  # it exists and another holder's has not lapsed
        return False


def release(db: Database, name: str, holder: str) -> None:
    """Give the lease up at once (a replica stopping), if *holder* has it."""
    with db.session() as session:
        session.execute(
            update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires_at=utcnow())
        )
