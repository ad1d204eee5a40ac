"""Every credential can be taken back, at once, by the people who should be able to, and each change
is recorded: admin tokens (revoked, expiring), members (disabled, enabled), passwords, sessions."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import httpx
import pytest

from dizuo.accounts.members import create_member, create_token, verify_password
from dizuo.accounts.sessions import open_session
from dizuo.console.web import SESSION_COOKIE
from dizuo.store import Database
from tests.billing.test_cli_money import run
from tests.console.test_forms import csrf_of
from tests.console.test_forms import signed_in as console_sign_in
from tests.security.conftest import PASSWORD, Platform, bearer
from tests.support.platform import RunningGateway


def member(gateway: RunningGateway, role: str = "org-developer", org: str | None = None) -> str:
    """A new member of *org* with one console session and one admin token; return its username."""
    username = f"{role}-{uuid.uuid4().hex[:8]}"
    db = Database(gateway.settings.resolved_database_url)
    try:
        create_member(db, username, PASSWORD, role, org=org)
    finally:
        db.dispose()
    return username


def token_of(gateway: RunningGateway, username: str, expires_at: dt.datetime | None = None) -> str:
    db = Database(gateway.settings.resolved_database_url)
    try:
        return create_token(db, username, expires_at)
    finally:
        db.dispose()


def session_of(gateway: RunningGateway, username: str, password: str = PASSWORD) -> str:
    db = Database(gateway.settings.resolved_database_url)
    try:
        actor = verify_password(db, username, password)
        assert actor is not None
        return open_session(db, actor)[0]
    finally:
        db.dispose()


def signed_in(gateway: RunningGateway, cookie: str) -> bool:
    answer = httpx.get(f"{gateway.url}/console/", cookies={SESSION_COOKIE: cookie}, follow_redirects=False)
    return answer.status_code == 200


def works(admin_api: httpx.Client, token: str) -> bool:
    status = admin_api.get("/me", headers=bearer(token)).status_code
    assert status in (200, 401)
    return status == 200


def test_a_revoked_token_is_refused_at_once(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform
) -> None:
    username = member(gateway, org=platform.a.org)
    token, other = token_of(gateway, username), token_of(gateway, username)
    (listed, _) = admin_api.get(f"/members/{username}/tokens", headers=bearer(platform.a.admin)).json()
    assert listed["prefix"] == token[:10] and listed["revoked_at"] is None and "token" not in listed
    revoked = admin_api.post(f"/tokens/{listed['id']}/revoke", headers=bearer(platform.a.admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert not works(admin_api, token) and works(admin_api, other)


def test_a_member_s_own_token_can_be_revoked_by_prefix_through_the_cli(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform
) -> None:
    username = member(gateway, org=platform.a.org)
    token = token_of(gateway, username)
    run(gateway, "revoke-token", token[:10])
    assert not works(admin_api, token)
    listed = json.loads(run(gateway, "tokens", "--username", username).stdout)
    assert listed[0]["revoked_at"] is not None


def test_tokens_expire(gateway: RunningGateway, admin_api: httpx.Client, platform: Platform) -> None:
    username = member(gateway, org=platform.a.org)
    soon = token_of(gateway, username, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    assert works(admin_api, soon)
    time.sleep(1.2)
    assert not works(admin_api, soon)
    made = admin_api.post(
        f"/members/{username}/tokens", json={"expires_days": 30}, headers=bearer(platform.a.admin)
    )
    assert made.status_code == 201 and works(admin_api, made.json()["token"])
    expires = dt.datetime.fromisoformat(made.json()["expires_at"])
    assert dt.timedelta(days=29.9) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    cli_token = run(gateway, "create-token", "--username", username, "--expires", "12h").stdout.strip()
    assert works(admin_api, cli_token)
    bad = run(gateway, "create-token", "--username", username, "--expires", "2001-01-01", check=False)
    assert bad.returncode == 2 and "past" in bad.stderr


def test_a_disabled_member_is_refused_everywhere_until_enabled(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform
) -> None:
    username = member(gateway, org=platform.a.org)
    token, cookie = token_of(gateway, username), session_of(gateway, username)
    assert works(admin_api, token) and signed_in(gateway, cookie)
    disabled = admin_api.post(f"/members/{username}/disable", headers=bearer(platform.a.admin))
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    assert not works(admin_api, token) and not signed_in(gateway, cookie)
    db = Database(gateway.settings.resolved_database_url)
    assert verify_password(db, username, PASSWORD) is None  # cannot sign in again either
    db.dispose()
    run(gateway, "enable-user", "--username", username)
    assert works(admin_api, token) and not signed_in(gateway, cookie)  # the ended session stays ended


def test_organization_admins_manage_only_their_own_members(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform
) -> None:
    theirs = member(gateway, org=platform.b.org)
    for path in ("disable", "sign-out-everywhere"):
        answer = admin_api.post(f"/members/{theirs}/{path}", headers=bearer(platform.a.admin))
        assert answer.status_code == 403
    assert admin_api.get(f"/members/{theirs}/tokens", headers=bearer(platform.a.admin)).status_code == 403
    operator = admin_api.get(f"/members/{platform.operator_user}/tokens", headers=bearer(platform.a.admin))
    assert operator.status_code == 403
    # A developer may not disable its colleague, nor enable itself.
    colleague = member(gateway, org=platform.a.org)
    assert (
        admin_api.post(f"/members/{colleague}/disable", headers=bearer(platform.a.developer)).status_code
        == 403
    )


def test_a_new_password_ends_the_member_s_sessions(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform
) -> None:
    username = member(gateway, org=platform.a.org)
    token, cookie = token_of(gateway, username), session_of(gateway, username)
    changed = admin_api.put(
        f"/members/{username}/password", json={"password": "a new long passphrase"}, headers=bearer(token)
    )
    assert changed.status_code == 200 and changed.json()["sessions_ended"] == 1
    assert not signed_in(gateway, cookie)
    assert signed_in(gateway, session_of(gateway, username, "a new long passphrase"))
    db = Database(gateway.settings.resolved_database_url)
    assert verify_password(db, username, PASSWORD) is None
    db.dispose()
    short = admin_api.put(f"/members/{username}/password", json={"password": "short"}, headers=bearer(token))
    assert short.status_code == 400


def test_sign_out_everywhere_ends_sessions_and_revokes_tokens(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform
) -> None:
    username = member(gateway, org=platform.a.org)
    tokens = [token_of(gateway, username) for _ in range(2)]
    cookies = [session_of(gateway, username) for _ in range(2)]
    out = json.loads(run(gateway, "sign-out-everywhere", "--username", username).stdout)
    assert out == {"username": username, "sessions_ended": 2, "tokens_revoked": 2}
    assert not any(works(admin_api, t) for t in tokens) and not any(signed_in(gateway, c) for c in cookies)


def test_every_change_is_an_account_event_naming_who_did_it(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform
) -> None:
    username = member(gateway, org=platform.a.org)
    token_of(gateway, username)
    admin_api.post(f"/members/{username}/disable", headers=bearer(platform.a.admin))
    run(gateway, "enable-user", "--username", username)
    admin_api.post(f"/members/{username}/sign-out-everywhere", headers=bearer(platform.operator))
    events = admin_api.get("/account-events", params={"member": username}, headers=bearer(platform.a.admin))
    assert [(e["action"], e["actor"]) for e in events.json()] == [
        ("sign-out-everywhere", platform.operator_user),
        ("enable", "cli"),
        ("disable", platform.a.admin_user),
        ("create-token", "cli"),
    ]
    # Another organization's admin sees none of them; a developer may not read them.
    theirs = admin_api.get("/account-events", params={"member": username}, headers=bearer(platform.b.admin))
    assert theirs.status_code == 200 and theirs.json() == []
    assert admin_api.get("/account-events", headers=bearer(platform.a.developer)).status_code == 403
    assert (
        admin_api.get(
            "/account-events", params={"org": platform.a.org}, headers=bearer(platform.b.admin)
        ).status_code
        == 403
    )


@pytest.mark.parametrize("field", ["rpm", "tpm", "concurrency"])
def test_limits_beyond_what_can_be_stored_are_a_clear_400(
    admin_api: httpx.Client, platform: Platform, field: str
) -> None:
    answer = admin_api.post(
        f"/orgs/{platform.a.org}/keys", json={field: 10**20}, headers=bearer(platform.operator)
    )
    assert answer.status_code == 400 and answer.json()["error"]["param"] == field


def test_the_console_account_page_changes_passwords_revokes_tokens_and_disables_members(
    gateway: RunningGateway, admin_api: httpx.Client, platform: Platform
) -> None:
    username = member(gateway, org=platform.a.org)
    token = token_of(gateway, username)
    client = console_sign_in(gateway, username)
    page = client.get("/account")
    assert page.status_code == 200 and token[:10] in page.text and "members" not in page.text
    csrf = csrf_of(page.text)
    (listed,) = admin_api.get(f"/members/{username}/tokens", headers=bearer(token)).json()
    assert client.post(f"/account/tokens/{listed['id']}/revoke", data={"csrf": csrf}).status_code == 303
    assert not works(admin_api, token)
    wrong = client.post("/account/password", data={"csrf": csrf, "current": "not it at all", "new": "x" * 12})
    assert wrong.status_code == 400 and 'id="f-current-error"' in wrong.text
    changed = client.post("/account/password", data={"csrf": csrf, "current": PASSWORD, "new": "x" * 12})
    assert changed.status_code == 303 and client.get("/account").status_code == 303  # signed out
    client.close()
    # The organization's admin disables the member from the console; a developer sees no members.
    admin = console_sign_in(gateway, platform.a.admin_user)
    listing = admin.get("/account")
    assert f'data-testid="member-{username}"' in listing.text
    assert f'data-testid="member-{platform.b.admin_user}"' not in listing.text
    done = admin.post(f"/members/{username}/disable", data={"csrf": csrf_of(listing.text)})
    assert done.status_code == 303
    db = Database(gateway.settings.resolved_database_url)
    assert verify_password(db, username, "x" * 12) is None
    db.dispose()
    theirs = admin.post(f"/members/{platform.b.developer_user}/disable", data={"csrf": csrf_of(listing.text)})
    assert theirs.status_code == 403
    admin.close()
