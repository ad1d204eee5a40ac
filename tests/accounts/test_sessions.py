"""Console sessions: found while valid, gone after sign-out, expiry or a disabled member."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import update

from dizuo.accounts.keys import hash_key
from dizuo.accounts.members import create_member, verify_password
from dizuo.accounts.sessions import close_session, find_session, open_session
from dizuo.accounts.tables import ConsoleSession, Member
from dizuo.store import Database, utcnow


def test_a_session_lives_until_sign_out_expiry_or_disable(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    name = f"s-{uuid.uuid4().hex[:6]}"
    create_member(db, name, "long enough secret", "auditor")
    actor = verify_password(db, name, "long enough secret")
    assert actor is not None

    token, csrf = open_session(db, actor)
    found = find_session(db, token)
    assert found is not None and found.actor.username == name and found.csrf == csrf
    assert find_session(db, token + "x") is None
    close_session(db, token)
    assert find_session(db, token) is None

    token, _ = open_session(db, actor)
    with db.session() as session:
        session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.id == hash_key(token))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )
    assert find_session(db, token) is None

    token, _ = open_session(db, actor)
    with db.session() as session:
        session.execute(update(Member).where(Member.username == name).values(disabled_at=utcnow()))
    assert find_session(db, token) is None
    db.dispose()
