"""What the billing tests share: a journal over the session's database, with an organization of ¥10."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from dizuo.accounts import create_org
from dizuo.billing import WalletBook, parse_cny
from dizuo.billing.journal import Journal
from dizuo.billing.service import topup
from dizuo.store import Database


@pytest.fixture
def journal(database_url: str) -> Iterator[tuple[Journal, Database, str]]:
    """A started journal, its database and the id of an organization holding ¥10."""
    db = Database(database_url)
    db.upgrade()
    name = f"journal-{uuid.uuid4().hex[:8]}"
    org = create_org(db, name)
    topup(db, name, parse_cny("10"))
    journal = Journal(db, WalletBook())
    journal.start()
    yield journal, db, org.id
    journal.stop()
    db.dispose()
