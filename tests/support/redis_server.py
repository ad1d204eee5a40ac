"""A redis-server of a test's own (the binary scripts/services.sh installs), which the test can kill
and start again, on a loopback port or on a Unix socket."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import redis

from tests.support.servers import free_port


class PrivateRedis:
    def __init__(
        self, directory: Path, appendonly: str = "no", *, socket: bool = False, password: str = ""
    ) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.password = password
        self.port = 0 if socket else free_port()
        # A Unix socket's path may not pass 107 bytes: pytest's tmp_path can be longer.
        self.socket = Path(tempfile.mkdtemp(prefix="dizuo-redis-")) / "redis.sock" if socket else None
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        """Its URL, as DIZUO_REDIS_URL takes it (with the password, when it has one)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.socket is not None:
            return f"unix://{auth}{self.socket}?db={db}"
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", self.appendonly, "--dir", str(self.directory)]
        if self.socket is not None:
            command += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis.from_url(self.url()).ping():
                    return
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        """Kill it if it runs, and remove its socket's folder."""
        if self.process is not None and self.process.poll() is None:
            self.kill()
        if self.socket is not None:
            self.socket.unlink(missing_ok=True)
            self.socket.parent.rmdir()
