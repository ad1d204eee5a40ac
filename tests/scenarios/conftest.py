"""What the scenario lists' command-line tests share: a migrated database of their own with a
demand side and a supplier."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from dizuo.accounts import create_org
from dizuo.store import Database


@dataclass(frozen=True)
class Shell:
    env: dict[str, str]  # what `dizuo` needs to find the database
    demand: str  # the demand side's organization
    supplier: str  # another organization, to take scenarios
    database_url: str


@pytest.fixture
def shell(empty_database_url: str) -> Shell:
    db = Database(empty_database_url)
    db.upgrade()
    demand, supplier = f"大数据局-{uuid.uuid4().hex[:6]}", f"软件公司-{uuid.uuid4().hex[:6]}"
    create_org(db, demand)
    create_org(db, supplier)
    db.dispose()
    return Shell({"DIZUO_DATABASE_URL": empty_database_url}, demand, supplier, empty_database_url)
