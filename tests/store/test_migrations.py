"""The migrations build exactly the schema the table classes describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import dizuo.accounts.tables
import dizuo.billing.tables
import dizuo.evalbench.tables
import dizuo.guard.tables
import dizuo.kb.tables
import dizuo.routing.tables  # noqa: F401
from dizuo.store import Base, Database


def test_migrations_match_the_models(database_url: str, gateway: object) -> None:
    db = Database(database_url)
    db.upgrade()  # idempotent on an up-to-date schema
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    db.dispose()
    assert diff == []
