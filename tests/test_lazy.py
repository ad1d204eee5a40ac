"""Modules loaded on first use (:mod:`dizuo.lazy`): named at import, imported by the first read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHECK = """
import sys
from dizuo.lazy import module
heavy = module("heavy")
print("named")
print(heavy.answer(), module("heavy") is heavy, module("sys") is sys)
"""


def test_a_lazy_module_is_imported_by_its_first_use_once_and_shared(tmp_path: Path) -> None:
    (tmp_path / "heavy.py").write_text(
        'print("imported")\n\ndef answer():\n    return 42\n', encoding="utf-8"
    )
    out = subprocess.run(
        [sys.executable, "-c", CHECK],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(tmp_path)},
    ).stdout
    assert out.split("\n") == ["named", "imported", "42 True True", ""]


def test_a_module_that_does_not_exist_is_an_import_error() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from dizuo.lazy import module\nmodule('no_such_module_here')"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "ModuleNotFoundError: No module named 'no_such_module_here'" in out.stderr
