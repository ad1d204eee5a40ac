"""The ``dizuo`` command run in this process (click's runner): what a user types, without paying
for a new interpreter and its imports on every command. Tests of the command as a program (the
console script, ``serve``, ``kill -9``) still start it as one."""

from __future__ import annotations

import os
import subprocess

from click.testing import CliRunner

from dizuo.cli import main

__all__ = ["dizuo"]


def dizuo(
    *args: str, env: dict[str, str] | None = None, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``dizuo ARGS`` with the ``DIZUO_*`` settings *env* (no others); return what it printed and
    its exit status, as ``subprocess.run`` would."""
    settings: dict[str, str | None] = {k: None for k in os.environ if k.startswith("DIZUO_")}
    settings.update(env or {})
    result = CliRunner(env=settings).invoke(main, list(args), input=input, catch_exceptions=False)
    return subprocess.CompletedProcess(["dizuo", *args], result.exit_code, result.stdout, result.stderr)
