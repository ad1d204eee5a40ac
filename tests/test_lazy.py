"""Modules loaded on first use (:mod:`dizuo.lazy`): named at import, imported by the first read, once
even when threads read it first at once, and importable as usual by other code meanwhile."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK = """
import sys
from dizuo.lazy import module
heavy = module("heavy")
print("named")
print(heavy.answer(), module("heavy").answer is heavy.answer, module("sys") is sys)
"""


def run(tmp_path: Path, heavy: str, script: str) -> list[str]:
    """The lines *script* prints in a fresh interpreter that finds the module ``heavy`` (*heavy*)."""
    (tmp_path / "heavy.py").write_text(heavy, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tmp_path)},
    )
    return done.stdout.split("\n")


def test_a_lazy_module_is_imported_by_its_first_use_once_and_shared(tmp_path: Path) -> None:
    lines = run(tmp_path, 'print("imported")\n\ndef answer():\n    return 42\n', CHECK)
    assert lines == ["named", "imported", "42 True True", ""]


def test_a_module_that_does_not_exist_is_an_import_error() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from dizuo.lazy import module\nmodule('no_such_module_here')"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "ModuleNotFoundError: No module named 'no_such_module_here'" in out.stderr


THREADS = """
import sys, threading
from dizuo.lazy import module
heavy = module("heavy")
seen = []
go = threading.Event()

def use():
    go.wait()
    seen.append(heavy.answer())

threads = [threading.Thread(target=use) for _ in range(16)]
for thread in threads:
    thread.start()
go.set()
for thread in threads:
    thread.join()
from heavy import answer  # other code imports it as usual
print(len(seen), set(seen), answer is heavy.answer)
"""


def test_threads_that_read_it_first_at_once_get_one_whole_module(tmp_path: Path) -> None:
    # A module that takes a while to initialise: a thread that saw it half-made would fail.
    slow = 'import time\nprint("imported")\ntime.sleep(0.2)\n\ndef answer():\n    return 42\n'
    assert run(tmp_path, slow, THREADS) == ["imported", "16 {42} True", ""]
