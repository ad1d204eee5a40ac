"""Every command in README.md runs as written, in order, against a fresh `dizuo serve`.

The README is the first thing a new operator follows; a command in it that fails is the first hour
lost. Each ```bash block is read line by line (continuations joined) and run with bash in an empty
folder that holds the project's ``.venv`` and ``examples`` as a clone does. Placeholders a reader
replaces (the key the server printed, the admin token a command printed) are replaced the same way,
and ``127.0.0.1:8000`` is the test server's port. Skipped, each with its reason: the install this
suite already runs under, the suite itself, and commands that need an outside model or a
``dizuo.yaml`` of the reader's own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.servers import free_port, serving_first_key

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```bash\n(.*?)```", re.S)
TOKEN = re.compile(r"dzt-[A-Za-z0-9_-]{20,}")
PASSWORD = "correct horse battery staple\n" * 2  # create-user asks twice

# Why a README command is not run here; the first rule that matches applies.
SKIPS = [
    ("scripts/install.sh", "the install this test suite runs under"),
    ("scripts/test.sh", "this test suite itself"),
    ("--config dizuo.yaml", "needs the reader's dizuo.yaml with outside upstreams"),
    ("--model deepseek-chat", "needs an outside model (deepseek-chat)"),
    ("eval compare runs/ds-old", "compares two runs of an outside model"),
]
# Exit statuses other than 0 that a command is documented to give.
EXPECTED = {"dizuo inspect": 1}  # the sample report has faults: "not valid" is exit 1


def commands() -> list[str]:
    """The README's shell commands, in order, each continuation joined into one line."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = []
    for block in BLOCK.findall(text):
        for command in block.replace("\\\n", " ").splitlines():
            if command.strip() and not command.lstrip().startswith("#"):
                found.append(command.strip())
    return found


@dataclass
class Reader:
    """What a reader of the README has at hand: a folder, a running server, what commands printed."""

    home: Path
    port: int
    env: dict[str, str]
    key: str
    printed: list[str] = field(default_factory=list)

    def fill(self, command: str) -> str:
        command = command.replace("127.0.0.1:8000", f"127.0.0.1:{self.port}").replace("dz-…", self.key)
        if "dzt-xxxxxx" in command:
            tokens = [t for out in self.printed for t in TOKEN.findall(out)]
            assert tokens, "a README command uses an admin token no earlier command printed"
            command = command.replace("dzt-xxxxxx", tokens[-1])
        return command

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        filled = self.fill(command)
        name, _, value = filled.removeprefix("export ").partition("=")
        if filled.startswith("export "):  # what the reader's shell keeps for later commands
            self.env[name] = value
            return subprocess.CompletedProcess(filled, 0, "", "")
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", filled],
            cwd=self.home,
            env=self.env,
            input=PASSWORD,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.printed.append(result.stdout)
        return result


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    home = tmp_path_factory.mktemp("readme")
    (home / ".venv").symlink_to(Path(sys.prefix))  # the install, where the README's commands look
    (home / "examples").symlink_to(REPO / "examples")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
    env["DIZUO_LOG_LEVEL"] = "warning"
    env["DIZUO_KB_PARSE_CPU_SECONDS"] = "30"
    command = [str(home / ".venv" / "bin" / "dizuo"), "serve", "--port", str(port)]
    with serving_first_key(command, port, env, cwd=home, seconds=120) as key:
        # The README's server listens on 8000; the commands that find it by default find this one.
        yield Reader(home, port, {**env, "DIZUO_BASE_URL": f"http://127.0.0.1:{port}/v1"}, key)


def test_the_readme_has_commands_for_every_part_it_describes() -> None:
    found = commands()
    for wanted in ("dizuo serve", "curl ", "admin topup", "create-user", "guard scan", "kb query", "inspect"):
        assert any(wanted in command for command in found), wanted


def test_every_readme_command_runs_as_written(reader: Reader) -> None:
    ran, skipped = [], []
    for command in commands():
        reason = next((why for pattern, why in SKIPS if pattern in command), None)
        if reason is None and re.fullmatch(r"\S*dizuo serve", command):
            reason = "the server this test started stands for it"
        if reason is not None:
            skipped.append((command, reason))
            continue
        result = reader.run(command)
        expected = next((code for name, code in EXPECTED.items() if name in command), 0)
        assert result.returncode == expected, (
            f"{command}\n→ exit {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
        ran.append(command)
        if command.startswith("curl "):  # curl exits 0 on an error answer: read what came back
            assert '"choices"' in result.stdout, result.stdout
        if "kb query" in command:
            assert "4.5" in result.stdout or "硬度" in result.stdout, result.stdout
    assert len(ran) >= 20 and len(skipped) <= 6, skipped
    assert (reader.home / "statement.xlsx").exists() and (reader.home / "校核.html").exists()
