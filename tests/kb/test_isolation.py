"""Reading documents in child processes: each child starts from the parsers alone, never from the
program that runs the server (the `dizuo` command's whole CLI took 0.5 s a document to import)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
from pathlib import Path

with Path(sys.argv[1]).open("a") as log:  # runs wherever this file is imported
    log.write("imported\\n")

if __name__ == "__main__":
    from dizuo.kb.isolation import IsolatedParser

    parser = IsolatedParser()
    for n in range(3):
        assert parser(f"{n}.md", "# 标题\\n\\n正文".encode())[0].text == "标题"
"""


def test_children_do_not_import_the_main_program(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SCRIPT, encoding="utf-8")
    log = tmp_path / "imports.log"
    subprocess.run([sys.executable, str(script), str(log)], check=True, timeout=120, cwd=tmp_path)
    assert log.read_text().splitlines() == ["imported"]  # the program itself, not each of 3 children
