"""Persistence: the SQLAlchemy base, engines and sessions, and Alembic migrations."""

from dizuo.store.db import Base, Database, Durability, utc, utcnow

__all__ = ["Base", "Database", "Durability", "utc", "utcnow"]
