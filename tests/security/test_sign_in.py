"""Guessing passwords is slowed to a stop, every replica sees the lock, and cookies stay on TLS."""

from __future__ import annotations

import json
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from starlette.testclient import TestClient

from dizuo.accounts.throttle import ADDRESS_FAILURES, USER_FAILURES
from dizuo.console import create_console_app
from dizuo.settings import Settings
from dizuo.store import Database
from tests.billing.test_cli_money import run
from tests.console.test_forms import csrf_of
from tests.security.conftest import PASSWORD, Platform
from tests.security.test_credentials import member
from tests.support.platform import RunningGateway


def attempt(gateway: RunningGateway, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=f"{gateway.url}/console", timeout=30) as client:
        token = csrf_of(client.get("/login").text)
        return client.post("/login", data={"username": username, "password": password, "csrf": token})


def test_wrong_passwords_lock_the_username_for_a_while(gateway: RunningGateway, platform: Platform) -> None:
    username = member(gateway, org=platform.a.org)
    for _ in range(USER_FAILURES):
        assert attempt(gateway, username, "guess guess guess").status_code == 401
    locked = attempt(gateway, username, PASSWORD)  # even the right password: not tried while locked
    assert locked.status_code == 429 and 0 < int(locked.headers["retry-after"]) <= 60
    assert "dizuo admin set-password" in locked.text
    listed = json.loads(run(gateway, "sign-in-locks").stdout)
    assert {"kind": "username", "name": username.lower(), "failures": USER_FAILURES} == {
        k: v
        for k, v in listed[[e["name"] for e in listed].index(username.lower())].items()
        if k != "locked_until"
    }
    events = json.loads(run(gateway, "account-events", "--username", username).stdout)
    assert [(e["action"], e["actor"]) for e in events][:1] == [("sign-in-locked", "system")]
    # The operator resets the password: the lock goes with it, the new password signs in.
    run(gateway, "set-password", "--username", username, "--password", "a brand new passphrase")
    assert attempt(gateway, username, "a brand new passphrase").status_code == 303
    assert json.loads(run(gateway, "sign-in-locks").stdout) == [
        e for e in listed if e["name"] != username.lower()
    ]


def test_a_successful_sign_in_clears_the_count(gateway: RunningGateway, platform: Platform) -> None:
    username = member(gateway, org=platform.a.org)
    for _ in range(2):
        for _ in range(USER_FAILURES - 1):
            assert attempt(gateway, username, "nope nope nope").status_code == 401
        assert attempt(gateway, username, PASSWORD).status_code == 303


def test_session_cookies_are_secure_outside_loopback_and_when_told(tmp_path: Path) -> None:
    assert not Settings(host="127.0.0.1").cookies_secure
    assert Settings(host="0.0.0.0").cookies_secure
    assert not Settings(host="0.0.0.0", secure_cookies=False).cookies_secure
    assert Settings(host="127.0.0.1", secure_cookies=True).cookies_secure
    db = Database(f"sqlite:///{tmp_path / 'console.db'}")
    db.upgrade()
    from dizuo.accounts.members import create_member

    create_member(db, "operator", PASSWORD, "platform-admin")
    # Behind a proxy that ends TLS the app sees plain http: the cookie must be Secure all the same.
    app = create_console_app(db, zone=ZoneInfo("Asia/Shanghai"), secure_cookies=True)
    with TestClient(app, base_url="http://dizuo.internal") as client:
        token = csrf_of(client.get("/console/login").text)
        answer = client.post(
            "/console/login",
            data={"username": "operator", "password": PASSWORD, "csrf": token},
            follow_redirects=False,
        )
    assert answer.status_code == 303
    (session_cookie,) = [c for c in answer.headers.get_list("set-cookie") if c.startswith("dizuo_session=")]
    assert "secure" in session_cookie.lower()
    db.dispose()


def test_behind_a_local_proxy_each_client_is_throttled_by_its_own_address(
    gateway: RunningGateway, platform: Platform
) -> None:
    # A reverse proxy on this host forwards each client's address (X-Forwarded-For): one client
    # guessing passwords locks its own address, not the proxy's, which every other client shares.
    def sign_in(client_address: str, username: str, password: str) -> httpx.Response:
        with httpx.Client(base_url=f"{gateway.url}/console", timeout=30) as client:
            token = csrf_of(client.get("/login").text)
            return client.post(
                "/login",
                data={"username": username, "password": password, "csrf": token},
                headers={"x-forwarded-for": client_address},
            )

    for number in range(ADDRESS_FAILURES):
        assert sign_in("203.0.113.7", f"nobody-{number}", "a wrong guess").status_code == 401
    assert sign_in("203.0.113.7", member(gateway, org=platform.a.org), PASSWORD).status_code == 429
    locked = {(e["kind"], e["name"]) for e in json.loads(run(gateway, "sign-in-locks").stdout)}
    assert ("address", "203.0.113.7") in locked and ("address", "127.0.0.1") not in locked
    assert sign_in("198.51.100.2", member(gateway, org=platform.a.org), PASSWORD).status_code == 303
