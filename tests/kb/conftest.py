"""What the knowledge-base tests share: the session's database, migrated."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dizuo.store import Database


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()
