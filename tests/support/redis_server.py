"""A redis-server of a test's own (the binary scripts/services.sh installs), which the test can kill
and start again: on a loopback port, over TLS (certificates made with the openssl command), or on a
Unix socket."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import redis

from tests.support.servers import free_port


def make_certificates(directory: Path) -> dict[str, Path]:
    """A certificate authority, and a server (localhost, 127.0.0.1) and a client certificate it
    signed: ``ca``, ``server``, ``server_key``, ``client``, ``client_key``."""
    directory.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(
        "req",
        "-x509",
        *key,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=dizuo test CA",
    )
    for name, usage, names in (
        ("server", "serverAuth", "IP:127.0.0.1,DNS:localhost"),
        ("client", "clientAuth", ""),
    ):
        extensions = directory / f"{name}.ext"
        extensions.write_text(f"extendedKeyUsage={usage}\n" + (f"subjectAltName={names}\n" if names else ""))
        openssl(
            "req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=dizuo test {name}"
        )
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext",
        )  # fmt: skip
    return {
        "ca": directory / "ca.crt",
        "server": directory / "server.crt",
        "server_key": directory / "server.key",
        "client": directory / "client.crt",
        "client_key": directory / "client.key",
    }


class PrivateRedis:
    def __init__(
        self,
        directory: Path,
        appendonly: str = "no",
        *,
        socket: bool = False,
        tls: bool = False,
        password: str = "",
    ) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.password = password
        self.port = 0 if socket else free_port()
        # A Unix socket's path may not pass 107 bytes: pytest's tmp_path can be longer.
        self.socket = Path(tempfile.mkdtemp(prefix="dizuo-redis-")) / "redis.sock" if socket else None
        # With TLS, clients must present a certificate (mutual TLS), as some managed Redis services ask.
        self.certificates = make_certificates(directory / "tls") if tls else None
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        """Its URL as DIZUO_REDIS_URL takes it, with the password and the TLS files when it has them."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.socket is not None:
            return f"unix://{auth}{self.socket}?db={db}"
        if self.certificates is not None:
            files = self.certificates
            query = (
                f"ssl_ca_certs={files['ca']}&ssl_certfile={files['client']}&ssl_keyfile={files['client_key']}"
            )
            return f"rediss://{auth}127.0.0.1:{self.port}/{db}?{query}"
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        port = "--tls-port" if self.certificates is not None else "--port"
        command = ["redis-server", "--port", "0", port, str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", self.appendonly, "--dir", str(self.directory)]
        if self.socket is not None:
            command += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        if self.certificates is not None:
            files = self.certificates
            command += ["--tls-cert-file", str(files["server"]), "--tls-key-file", str(files["server_key"])]
            command += ["--tls-ca-cert-file", str(files["ca"]), "--tls-auth-clients", "yes"]
        if self.password:
            command += ["--requirepass", self.password]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis.from_url(self.url()).ping():
                    return
            except redis.ConnectionError:
                assert self.process.poll() is None, "redis-server stopped"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
