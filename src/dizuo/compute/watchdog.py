"""Stops an embedded Ray head when the server that started it is gone, however it went.

``dizuo serve`` may end by a signal that its HTTP server re-raises after shutting down (uvicorn does,
for the exit status), or by ``kill -9``: no code of it runs then. This small process, started beside
the head, polls the server's pid and, once it is gone, stops the head's process group and removes
its folder. Run as ``python -m dizuo.compute.watchdog SERVER_PID HEAD_PGID FOLDER``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["alive", "main", "stop_group", "using", "watch"]

POLL = 0.5  # seconds between looks at the server


def alive(pid: int) -> bool:
    """Whether the process *pid* exists (another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _gone_within(group: int, seconds: float) -> bool:
    """Whether process group *group* has no process left within *seconds* (not our children: polled)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def stop_group(group: int, folder: str | Path, gone: Callable[[float], bool]) -> None:
    """Stop a Ray head's process group *group* and remove its *folder*: SIGTERM stops its processes
    within a second; the launcher, which outlives them under ``--block``, goes with the SIGKILL sent
    when *gone* (waiting up to its grace) says something is left. Ray's workers run in process groups
    of their own: those still alive after the group (found by the folder in their command line) are
    killed too, so that none writes to the folder once it is removed."""
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        if gone(grace):
            break
    deadline = time.monotonic() + 5
    while (left := using(folder)) and time.monotonic() < deadline:
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    shutil.rmtree(folder, ignore_errors=True)


def using(folder: str | Path) -> list[int]:
    """The processes whose command line names *folder* (a head's workers, agents and servers)."""
    needle = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def watch(server: int, group: int, folder: str) -> None:
    """Wait for *server* to end, then stop process group *group* and remove *folder*."""
    while alive(server):
        time.sleep(POLL)
    stop_group(group, folder, lambda grace: _gone_within(group, grace))


def main() -> None:
    server, group, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    watch(server, group, folder)


if __name__ == "__main__":
    main()
