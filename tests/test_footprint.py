"""A worker's memory at start: the stacks only some requests need (the console's pinyin
dictionaries, about 55 MB; the XLSX writer, 12 MB) are loaded when first used, not by every worker
of the data plane; nor is Alembic (11 MB), which only the process that migrates needs."""

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
print(" ".join(sorted(name for name in ("pypinyin", "openpyxl", "alembic") if name in sys.modules)))
"""


def test_a_new_worker_does_not_load_the_console_s_dictionaries_the_xlsx_writer_or_alembic(
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
