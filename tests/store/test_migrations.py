"""The migrations build exactly the schema the table classes describe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

import dizuo.accounts.tables
import dizuo.agents.tables
import dizuo.batches.tables
import dizuo.billing.tables
import dizuo.compliance.tables
import dizuo.compute.tables
import dizuo.evalbench.tables
import dizuo.guard.tables
import dizuo.indicators.tables
import dizuo.kb.tables
import dizuo.routing.tables
import dizuo.sandbox.tables
import dizuo.scenarios.tables
import dizuo.store.audit
import dizuo.store.pruning  # noqa: F401
from dizuo.store import Base, Database, partitions
from dizuo.store.db import HEAD, MIGRATIONS
from dizuo.store.partitions import is_partition


def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()  # every migration, or none on a schema another test brought up to date
    with db.engine.connect() as connection:
        # The models describe a partitioned table, not its months (PostgreSQL).
        context = MigrationContext.configure(
            connection,
            opts={
                "include_name": lambda name, kind, _: kind != "table" or not is_partition(name, Base.metadata)
            },
        )
        diff = compare_metadata(context, Base.metadata)
    db.dispose()
    assert diff == []


def test_the_upgrade_to_monthly_partitions_keeps_every_row_and_can_be_undone(empty_database_url: str) -> None:
    """PostgreSQL's ledger, usage records, failed calls and guard events are rebuilt in months: every
    row is kept, ids go on from where they were, and the downgrade gives back plain tables."""
    db = Database(empty_database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))

    def migrate(step: Callable[[Config, str], None], revision: str) -> None:
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            step(config, revision)

    def counts() -> list[int]:
        with db.engine.connect() as connection:
            return [connection.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES]

    def partitioned() -> bool:
        with db.engine.connect() as connection:
            return not db.is_sqlite and partitions.is_partitioned(connection, "usage_records")

    def add_leg(moment: str) -> int:
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO ledger_entries (tx_id, kind, account, amount, created_at)"
                    " VALUES ('tx', 'topup', 'org:o1:cash', 5, :at)"
                ),
                {"at": moment},
            )
            return int(connection.execute(text("SELECT max(id) FROM ledger_entries")).scalar_one())

    migrate(command.upgrade, "0016")
    with db.engine.begin() as connection:
        for index, moment in enumerate(("2024-02-10 08:00:00+00:00", "2026-12-01 00:00:00+00:00")):
            connection.execute(
                text(
                    "INSERT INTO usage_records (request_id, org_id, key_id, model, deployment, provider,"
                    " region, endpoint, prompt_tokens, completion_tokens, cost, voucher_part, own_part,"
                    " uncollected, latency_ms, data_class, stream, status, created_at) VALUES (:r, 'o1',"
                    " 'k1', 'm', 'd', 'p', 'r', 'chat', 7, 3, 17, 5, 12, 0, 30, 'general', false, 'ok', :at)"
                ),
                {"r": f"req-{index}", "at": moment},
            )
            connection.execute(
                text(
                    "INSERT INTO failed_calls (request_id, org_id, key_id, endpoint, status, latency_ms,"
                    " created_at) VALUES (:r, 'o1', 'k1', 'chat', 429, 2, :at)"
                ),
                {"r": f"failed-{index}", "at": moment},
            )
            connection.execute(
                text(
                    "INSERT INTO guard_events (created_at, org_id, direction, action, counts)"
                    " VALUES (:at, 'o1', 'prompt', 'log', '{}')"
                ),
                {"at": moment},
            )
    first = add_leg("2024-02-10 08:00:00+00:00")
    before = counts()
    assert before == [2, 1, 2, 2]

    migrate(command.upgrade, "head")
    assert counts() == before
    assert partitioned() is not db.is_sqlite
    if not db.is_sqlite:
        with db.engine.connect() as connection:
            names = {p.name for p in partitions.partitions(connection, "usage_records")}
            assert {"usage_records_2024_02", "usage_records_2026_12", "usage_records_default"} <= names
            assert connection.execute(text("SELECT count(*) FROM usage_records_default")).scalar() == 0
    assert add_leg("2026-12-02 00:00:00+00:00") == first + 1  # the sequence went with its column

    migrate(command.downgrade, "0016")
    assert counts() == [2, 2, 2, 2]
    assert not partitioned()
    assert add_leg("2026-12-03 00:00:00+00:00") == first + 2
    migrate(command.upgrade, "head")
    assert counts() == [2, 3, 2, 2]
    db.dispose()


TABLES = ("usage_records", "ledger_entries", "failed_calls", "guard_events")


def test_the_newest_migration_is_the_one_alembic_would_run_last(tmp_path: Path) -> None:
    """A schema at HEAD is taken as up to date without loading Alembic: HEAD must be Alembic's head."""
    script = ScriptDirectory.from_config(_config())
    assert script.get_current_head() == HEAD
    db = Database(f"sqlite:///{tmp_path / 'new.db'}")
    assert db.revision() is None
    db.upgrade()
    assert db.revision() == HEAD
    db.dispose()


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config
