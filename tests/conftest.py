"""Session fixtures: the databases, Redis, a real fake upstream; and, for a module that serves its
platform on a real socket (its own ``gateway`` fixture, made with ``serve``), its default
organization's key and SDK clients.

Set ``DIZUO_TEST_DATABASE_URL`` (postgresql+psycopg://…) and ``DIZUO_TEST_REDIS_URL`` to run the
tests that reach them on PostgreSQL and Redis; the default is a fresh SQLite file. ``scripts/test.sh``
runs the suite on two pytest-xdist workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import openai
import pytest
import redis
from sqlalchemy import create_engine, make_url, text

from tests.support.browser import browser  # noqa: F401  (a fixture for every test folder)
from tests.support.passwords import cheap_password_hashes  # noqa: F401  (members hashed cheaply)
from tests.support.platform import (  # noqa: F401  (fixtures: the platform a test describes; one served)
    RunningGateway,
    gateway_app,
    serve,
)
from tests.support.ray import ray_head  # noqa: F401  (one Ray head a worker, for every folder: 15 s and 600 MB apiece)
from tests.support.upstream import FakeUpstream


def reset_database(url: str) -> None:
    """Empty a PostgreSQL test database (SQLite files are fresh per session)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("DROP SCHEMA IF EXISTS dizuo_sandbox CASCADE"))  # the data sandbox's rows
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker gets PostgreSQL and Redis of its own (a database and a Redis
    database number per worker), so that one worker's reset never empties another's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    number = int(worker[2:])
    database = os.environ.get("DIZUO_TEST_DATABASE_URL")
    if database and database.startswith("postgresql"):
        os.environ["DIZUO_TEST_DATABASE_URL"] = _worker_database(database, number)
    cache = os.environ.get("DIZUO_TEST_REDIS_URL")
    if cache:
        parsed = urlsplit(cache)
        os.environ["DIZUO_TEST_REDIS_URL"] = urlunsplit(parsed._replace(path=f"/{10 + number}"))


def _worker_database(url: str, number: int) -> str:
    """The URL of the worker's own PostgreSQL database beside *url*'s, made when missing."""
    return _database_beside(url, f"gw{number}")


def _database_beside(url: str, suffix: str) -> str:
    """The URL of a PostgreSQL database named after *url*'s with *suffix*, made when missing."""
    base = make_url(url)
    name = f"{base.database}_{suffix}"
    engine = create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


# The second pass (PostgreSQL and Redis, scripts/test.sh) runs only what they can change: tests that
# reach the database or Redis through the session's fixtures, and test modules that read the
# services' variables themselves. The rest ran the same code in the first pass.
# DIZUO_TEST_EVERY_PASS=1 runs everything again.
SERVICES = frozenset({"database_url", "empty_database_url", "redis_url"})


def pytest_collection_finish(session: pytest.Session) -> None:
    """Tests marked to share a worker (the Ray tests: one head) must get one: pytest-xdist's loadgroup
    groups them through their node ids, which some pytest versions ignore (pytest-xdist issue 1386),
    and then they silently spread over every worker, each starting heads of its own."""
    if not getattr(session.config.option, "loadgroup", False):
        return
    for item in session.items:
        if any(item.iter_markers("xdist_group")) and "@" not in item.nodeid:
            raise pytest.UsageError(
                "pytest-xdist's --dist loadgroup does not group tests under this pytest (pytest-xdist "
                "issue 1386): install the pytest pyproject.toml pins (scripts/install.sh --dev)"
            )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("DIZUO_TEST_DATABASE_URL") or os.environ.get("DIZUO_TEST_EVERY_PASS"):
        return
    reads_services: dict[str, bool] = {}

    def needed(item: pytest.Item) -> bool:
        if SERVICES & set(getattr(item, "fixturenames", ())):
            return True
        path = str(item.path)
        if path not in reads_services:
            reads_services[path] = "DIZUO_TEST_" in item.path.read_text(encoding="utf-8")
        return reads_services[path]

    kept = [item for item in items if needed(item)]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if not needed(item)])
        items[:] = kept


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("DIZUO_TEST_DATABASE_URL")
    if url:
        reset_database(url)
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'dizuo.db'}"


@pytest.fixture
def empty_database_url(tmp_path: Path) -> str:
    """A database of the test's own, empty (not yet migrated): for tests that act on every row of
    the database (retention, migrations), which the session's shared one would mix with others'."""
    url = os.environ.get("DIZUO_TEST_DATABASE_URL")
    if url:
        own = _database_beside(url, "empty")
        reset_database(own)
        return own
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    """DIZUO_TEST_REDIS_URL (emptied first), or None: then holds and limits stay in process."""
    url = os.environ.get("DIZUO_TEST_REDIS_URL")
    if url:
        client = redis.Redis.from_url(url)
        client.flushdb()
        client.close()
    return url


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_key(gateway: RunningGateway) -> str:
    """The key of the default organization of the module's platform (funded)."""
    return gateway.first_key


@pytest.fixture(scope="module")
def client(gateway: RunningGateway, api_key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key=api_key, max_retries=0, timeout=20) as sdk:
        yield sdk


@pytest.fixture
async def aclient(gateway: RunningGateway, api_key: str) -> openai.AsyncOpenAI:
    sdk = openai.AsyncOpenAI(base_url=gateway.v1, api_key=api_key, max_retries=0, timeout=20)
    yield sdk
    await sdk.close()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
