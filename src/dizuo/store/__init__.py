"""Persistence: the SQLAlchemy base, engines and sessions, and Alembic migrations."""

from dizuo.store.db import Base, Database, Durability, iso, stamper, utc, utcnow
from dizuo.store.ids import ordered_id

__all__ = ["Base", "Database", "Durability", "iso", "ordered_id", "stamper", "utc", "utcnow"]
