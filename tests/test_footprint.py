"""A worker's memory at start: the stacks only some requests need (the console's pinyin
dictionaries, about 55 MB; the XLSX writer, 12 MB; the sandbox's DuckDB, 27 MB, and SQL parser,
17 MB; numpy, 16 MB, for knowledge bases, matching and local embeddings; JSON Schema, 10 MB, for
agents' HTTP tools) are loaded when first used, not by every worker of the data plane; nor is
Alembic (11 MB), which only the process that migrates needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PREPARE = """
import sys
from dizuo.app import load_settings, prepare
from pathlib import Path
prepare(load_settings(Path(sys.argv[1]), data_dir=Path(sys.argv[2])))
"""

# What a worker does (``dizuo serve`` prepared the database before starting it).
BUILD = """
import sys
from dizuo.app import create_app, load_settings, prepare
from pathlib import Path
settings = load_settings(Path(sys.argv[1]), data_dir=Path(sys.argv[2]))
create_app(settings)
heavy = ("pypinyin", "openpyxl", "alembic", "duckdb", "sqlglot", "jsonschema", "numpy.linalg")
print(" ".join(sorted(name for name in heavy if name in sys.modules)))  # numpy.linalg: numpy loaded
"""


def test_a_new_worker_loads_none_of_the_stacks_only_some_requests_need(
    tmp_path: Path,
) -> None:
    config = tmp_path / "dizuo.yaml"
    config.write_text("local: false\n", encoding="utf-8")
    subprocess.run([sys.executable, "-c", PREPARE, str(config), str(tmp_path)], check=True, timeout=120)
    loaded = subprocess.run(
        [sys.executable, "-c", BUILD, str(config), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    assert loaded == ""
