"""Stops an embedded Ray head when the server that started it is gone, however it went.

``dizuo serve`` may end by a signal that its HTTP server re-raises after shutting down (uvicorn does,
for the exit status), or by ``kill -9``: no code of it runs then. This small process, started beside
the head, polls the server's pid and, once it is gone, stops the head's process group and removes
its folder. Run as ``python -m dizuo.compute.watchdog SERVER_PID HEAD_PGID FOLDER``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time

__all__ = ["main", "watch"]

POLL = 0.5  # seconds between looks at the server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watch(server: int, group: int, folder: str) -> None:
    """Wait for *server* to end, then stop process group *group* (TERM, then KILL) and remove *folder*."""
    while _alive(server):
        time.sleep(POLL)
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 0.0)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        time.sleep(grace)
    shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    server, group, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    watch(server, group, folder)


if __name__ == "__main__":
    main()
