"""What the platform stores of a member's password: an argon2id hash at the platform's cost (the
suite hashes cheaply elsewhere, ``tests/support/passwords.py``), which signs in with the password
and with no other."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from dizuo.accounts import create_org, members
from dizuo.accounts.members import create_member, verify_password
from dizuo.accounts.tables import Member
from dizuo.store import Database
from tests.support.passwords import PLATFORM_HASHER


def test_a_password_is_stored_as_argon2id_at_64_mib_and_3_passes(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(members, "PASSWORD_HASHER", PLATFORM_HASHER)
    db = Database(empty_database_url)
    db.upgrade()
    try:
        create_org(db, "甲公司")
        create_member(db, "质检员", "correct horse battery", "org-developer", org="甲公司")
        with db.session() as session:
            stored = session.scalars(select(Member.password_hash).where(Member.username == "质检员")).one()
        assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        assert "correct horse battery" not in stored
        assert verify_password(db, "质检员", "correct horse battery") is not None
        assert verify_password(db, "质检员", "correct horse batteries") is None
    finally:
        db.dispose()
