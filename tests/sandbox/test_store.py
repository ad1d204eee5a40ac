"""The sandbox's stores on their own: DuckDB files under the data directory (every database) and a
schema of the platform's PostgreSQL (when the tests run on PostgreSQL). Both keep one load per
dataset version, answer the same SQL alike, and refuse on their own what the query policy refuses
first: writes, reading the server's files, and anything past the time limit."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest

from dizuo.sandbox.store import QueryFailed, QueryLimits, SandboxStore, Store, StoreError, TooSlow
from dizuo.store import Database

ROWS = [{"区县": "渝中区" if i % 4 else "江北区", "企业数": i, "成立日期": f"2020-01-{1 + i % 28:02d}"} for i in range(40)]  # fmt: skip


@pytest.fixture(params=["duckdb", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path, empty_database_url: str) -> Iterator[Store]:
    limits = QueryLimits(seconds=0.5, memory_mb=256)
    if request.param == "duckdb":
        made: Store = SandboxStore(tmp_path / "sandbox", limits)
    else:
        if not empty_database_url.startswith("postgresql"):
            pytest.skip("needs DIZUO_TEST_DATABASE_URL (scripts/services.sh)")
        from dizuo.sandbox.pgstore import PostgresStore

        made = PostgresStore(Database(empty_database_url), limits)
    yield made
    made.close()


def csv_file(folder: Path, rows: list[dict[str, object]]) -> Path:
    path = folder / "企业.csv"
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_load_keeps_its_columns_and_rows_and_answers_queries(store: Store, tmp_path: Path) -> None:
    loaded = store.load("企业", csv_file(tmp_path, ROWS), "企业.csv", "sds_1-v1")
    assert loaded.columns == [("区县", "VARCHAR"), ("企业数", "BIGINT"), ("成立日期", "DATE")]
    assert loaded.rows == 40 and store.files() == [loaded.file]
    names, rows = store.run(
        loaded.file,
        "SELECT 区县, count(*) AS n, sum(企业数) AS s FROM 企业 WHERE 成立日期 >= '2020-01-05' GROUP BY 区县 ORDER BY 区县",
    )
    wanted = {}
    for row in ROWS:
        if str(row["成立日期"]) >= "2020-01-05":
            n, s = wanted.get(row["区县"], (0, 0))
            wanted[row["区县"]] = (n + 1, s + int(str(row["企业数"])))
    assert names == ["区县", "n", "s"]
    assert [(d, n, int(s)) for d, n, s in rows] == sorted((d, n, s) for d, (n, s) in wanted.items())
    sample = store.sample(loaded.file, "企业", "区县", 10)
    assert len(sample) == 10 and set(sample) <= {"渝中区", "江北区"}
    store.drop(loaded.file)
    assert store.files() == []


def test_a_file_that_is_not_a_table_is_refused_and_nothing_is_kept(store: Store, tmp_path: Path) -> None:
    broken = tmp_path / "坏.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(StoreError):
        store.load("坏", broken, broken.name, "sds_2-v1")
    with pytest.raises(StoreError):
        store.load("坏", broken, "坏.json", "sds_2-v1")
    assert store.files() == []


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM 企业",  # a write
        "SELECT pg_read_file('/etc/hostname')",  # PostgreSQL: a server file
        "SELECT * FROM read_csv('/etc/hostname')",  # DuckDB: a server file
        "SELECT count(*) FROM 企业 WHERE CAST(区县 AS INTEGER) > 1",  # a value that does not cast
    ],
)
def test_the_store_itself_refuses_what_the_policy_refuses_first(
    store: Store, tmp_path: Path, sql: str
) -> None:
    loaded = store.load("企业", csv_file(tmp_path, ROWS), "企业.csv", "sds_3-v1")
    with pytest.raises(QueryFailed):
        store.run(loaded.file, sql)
    assert store.run(loaded.file, "SELECT count(*) FROM 企业")[1] == [(40,)]  # nothing was changed


def test_a_query_past_the_time_limit_is_stopped(store: Store, tmp_path: Path) -> None:
    loaded = store.load("企业", csv_file(tmp_path, ROWS), "企业.csv", "sds_4-v1")
    endless = (
        "SELECT count(*) FROM 企业 AS a, 企业 AS b, 企业 AS c, 企业 AS d, 企业 AS e, 企业 AS f"  # 40⁶ rows
    )
    with pytest.raises(TooSlow):
        store.run(loaded.file, endless)
