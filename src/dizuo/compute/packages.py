"""Working directories of script jobs, kept (as the zip archives their submitters sent) until their
jobs end: a job placed again on another pool sends its directory there too."""

from __future__ import annotations

from sqlalchemy import LargeBinary, String, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from dizuo.compute.tables import ComputeJob
from dizuo.store import Base, Database

__all__ = ["ComputePackage", "forget", "keep", "load"]


class ComputePackage(Base):
    __tablename__ = "compute_packages"

    uri: Mapped[str] = mapped_column(String(128), primary_key=True)  # gcs://_ray_pkg_<digest>.zip
    data: Mapped[bytes] = mapped_column(LargeBinary)


def keep(session: Session, uri: str, data: bytes) -> None:
    """Keep *data* under *uri* in *session*'s transaction (the one that records its job)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    # Two jobs may send the same directory at once: it is kept once (its name is its digest).
    session.execute(insert(ComputePackage).values(uri=uri, data=data).on_conflict_do_nothing())


def load(db: Database, uri: str) -> bytes:
    with db.session() as session:
        found = session.get(ComputePackage, uri)
        if found is None:
            raise LookupError(f"the working directory {uri} is no longer kept")
        return found.data


def forget(db: Database, uri: str) -> None:
    """Drop *uri* unless a job not yet charged still uses it."""
    with db.session() as session:
        live = session.scalars(select(ComputeJob.spec).where(ComputeJob.settled_at.is_(None)))
        if any((spec or {}).get("package") == uri for spec in live):
            return
        session.execute(delete(ComputePackage).where(ComputePackage.uri == uri))
