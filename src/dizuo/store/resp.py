"""One multiplexed Redis connection per event loop, for the hot path's Lua scripts.

Every call on the loop writes its command to the same connection at once; Redis answers in order,
so the replies resolve the waiting calls first in, first out. Calls that overlap are pipelined
without waiting for each other, and no call waits for a pool. hiredis (the C parser redis-py uses)
packs the commands and parses the replies.

Why not redis-py's asyncio client: a script call through it took 110–150 µs here against 35 µs for
the same EVALSHA on this connection (docs/benchmarks.md), and the gateway makes two to four per call.

A lost connection fails the calls waiting on it with :class:`redis.exceptions.ConnectionError`; the
next call connects again. So does a connection on which Redis answers nothing for ``socket_timeout``
seconds (the URL's, as redis-py takes it; 10 by default) while calls wait: a Redis host gone
silent (a network cut, a stopped process) would otherwise hold every call until TCP gives up, about
15 minutes later. TCP keepalive probes idle connections, so a NAT gateway or cloud load balancer
does not drop them silently meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import importlib.resources
import socket
import ssl
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlparse

import hiredis
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

__all__ = ["Multiplexed", "Script", "blocking_client", "lua"]


def lua(package: str, *names: str) -> str:
    """The Lua files *names* (``lua/NAME.lua`` beside *package*'s modules) as one script, in order:
    the shared functions first, the script's body last."""
    folder = importlib.resources.files(package) / "lua"
    return "".join((folder / f"{name}.lua").read_text(encoding="utf-8") for name in names)


CONNECT_SECONDS = 10.0
REPLY_SECONDS = 10.0  # how long calls may wait with no reply at all before the connection is given up
# TCP keepalive: first probe after 30 s idle, then every 10 s, given up after 3 unanswered (the
# options this system has, by their numbers, as setsockopt and redis-py take them).
KEEPALIVE = {
    getattr(socket, name): value
    for name, value in (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3))
    if hasattr(socket, name)
}


class _Protocol(asyncio.Protocol):
    def __init__(self, patience: float = REPLY_SECONDS) -> None:
        self.reader = hiredis.Reader()
        self.patience = patience
        self.progress = 0.0  # the loop's time of the last reply, or of a call sent while none waited
        self._watch: asyncio.TimerHandle | None = None
        # Per command sent, first in first out: its future, and what to send instead if Redis answers
        # NOSCRIPT (an EVALSHA's EVAL), else None.
        self.waiting: collections.deque[tuple[asyncio.Future[Any], tuple[Any, ...] | None]] = (
            collections.deque()
        )
        self.transport: asyncio.Transport | None = None
        self.lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is one without subclassing it
        self._loop = asyncio.get_running_loop()
        self._watch = self._loop.call_later(self.patience / 4, self._check)
        _keep_alive(transport.get_extra_info("socket"))

    def _check(self) -> None:
        """Every quarter of the patience: give the connection up if calls wait and nothing came."""
        if self.lost is not None or self.transport is None:
            return
        if self.waiting and self._loop.time() - self.progress > self.patience:
            self.lost = RedisConnectionError(f"Redis did not answer for {self.patience:g} s")
            self.transport.abort()  # connection_lost fails the waiting calls
            return
        self._watch = self._loop.call_later(self.patience / 4, self._check)

    def data_received(self, data: bytes) -> None:
        self.progress = self._loop.time()
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            future, instead = self.waiting.popleft()
            if future.done():  # its caller was cancelled; the reply is dropped
                continue
            if not isinstance(reply, hiredis.ReplyError):
                future.set_result(reply)
            elif instead is not None and str(reply).startswith("NOSCRIPT"):
                # Redis lost its scripts (a restart): send the source, later than the call's place.
                self._send(instead, future, None)
            else:
                future.set_exception(ResponseError(str(reply)))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self.lost = self.lost or RedisConnectionError(f"Redis connection lost: {exc or 'closed'}")
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(self.lost)

    def call(self, args: tuple[Any, ...], instead: tuple[Any, ...] | None = None) -> asyncio.Future[Any]:
        """Send *args*; the future gets Redis's reply. With *instead*, a NOSCRIPT reply sends that
        and the future gets its reply (no task, no second future: the caller wakes once)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._send(args, future, instead)
        return future

    def _send(
        self, args: tuple[Any, ...], future: asyncio.Future[Any], instead: tuple[Any, ...] | None
    ) -> None:
        if self.lost is not None or self.transport is None or self.transport.is_closing():
            future.set_exception(self.lost or RedisConnectionError("Redis connection closed"))
            return
        if not self.waiting:
            self.progress = self._loop.time()
        self.waiting.append((future, instead))
        self.transport.write(hiredis.pack_command(args))


# redis-py's URL parameters for TLS that this connection honours too, so that one DIZUO_REDIS_URL means
# the same to both (the drains and admin commands use redis-py). Others are refused, not ignored.
TLS_PARAMETERS = frozenset(
    {
        "ssl_cert_reqs",
        "ssl_ca_certs",
        "ssl_ca_path",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        "ssl_check_hostname",
    }
)
_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def _tls_context(url: str, query: dict[str, list[str]]) -> ssl.SSLContext:
    """The TLS context redis-py would make for *url*: the system's trusted CAs (or ``ssl_ca_certs``),
    the certificate required and its host name checked unless the URL says otherwise."""
    unknown = sorted(name for name in query if name.startswith("ssl_") and name not in TLS_PARAMETERS)
    if unknown:
        raise ValueError(
            f"DIZUO_REDIS_URL {url!r}: {', '.join(unknown)} not supported"
            f" (supported: {', '.join(sorted(TLS_PARAMETERS))})"
        )
    one = {name: values[-1] for name, values in query.items()}
    reqs = one.get("ssl_cert_reqs", "required")  # case as redis-py: exactly these words
    if reqs not in _CERT_REQS:
        raise ValueError(f"DIZUO_REDIS_URL {url!r}: ssl_cert_reqs must be none, optional or required")
    if "ssl_keyfile" in one and "ssl_certfile" not in one:
        raise ValueError(f"DIZUO_REDIS_URL {url!r}: ssl_keyfile needs ssl_certfile")
    context = ssl.create_default_context()
    # redis-py checks the host name unless told not to (its to_bool: 0, f, false, n, no are false).
    checks = one.get("ssl_check_hostname", "").upper() not in {"0", "F", "FALSE", "N", "NO"}
    context.check_hostname = checks and reqs != "none"
    context.verify_mode = _CERT_REQS[reqs]
    try:
        if "ssl_certfile" in one:
            context.load_cert_chain(one["ssl_certfile"], one.get("ssl_keyfile"), one.get("ssl_password"))
        if "ssl_ca_certs" in one or "ssl_ca_path" in one:
            context.load_verify_locations(one.get("ssl_ca_certs"), one.get("ssl_ca_path"))
    except OSError as exc:  # ssl.SSLError too
        raise ValueError(f"DIZUO_REDIS_URL {url!r}: cannot load its TLS files: {exc}") from exc
    return context


class Script:
    """A Lua script called by its SHA-1, loaded into Redis the first time Redis does not know it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # Redis names scripts by their SHA-1


class Multiplexed:
    """The connection to the Redis at *url* for the running event loop; a call from another loop gets a
    connection of its own. URLs as redis-py takes them: ``redis://[user:password@]host[:port][/db]``,
    ``rediss://…`` for TLS (with redis-py's ``ssl_*`` query parameters, :data:`TLS_PARAMETERS`), or
    on this host ``unix://[user:password@]/path/to/redis.sock[?db=N]``."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        query = parse_qs(parsed.query)
        self.host, self.port = "", 0  # for redis:// and rediss://
        self.path: str | None = None  # a Unix socket's, for unix://
        self.tls: ssl.SSLContext | None = None  # for rediss://
        if parsed.scheme in ("redis", "rediss"):
            self.host = parsed.hostname or "127.0.0.1"
            self.port = parsed.port or 6379
            self.where = f"{self.host}:{self.port}"
            db = parsed.path.strip("/") or query.get("db", ["0"])[0]
            if parsed.scheme == "rediss":
                self.tls = _tls_context(url, query)
        elif parsed.scheme == "unix" and parsed.path:
            self.path = self.where = parsed.path
            db = query.get("db", ["0"])[0]
        else:
            raise ValueError(
                f"DIZUO_REDIS_URL {url!r}: only redis://host:port/db, rediss://host:port/db (TLS) and"
                " unix:///path/to/redis.sock?db=N are supported"
            )
        self.username = unquote(parsed.username) if parsed.username else None
        password = parsed.password or query.get("password", [None])[0]
        self.password = unquote(password) if password else None
        if not db.isdigit():
            raise ValueError(f"DIZUO_REDIS_URL {url!r}: the database must be a number, not {db!r}")
        self.db = int(db)
        self.patience = REPLY_SECONDS
        if "socket_timeout" in query:
            try:
                self.patience = float(query["socket_timeout"][-1])
            except ValueError:
                self.patience = 0
            if not 0 < self.patience < 1e6:
                raise ValueError(
                    f"DIZUO_REDIS_URL {url!r}: socket_timeout must be a number of seconds above 0"
                )
        self.loop: asyncio.AbstractEventLoop | None = None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply (bytes, ints and lists of them, as Redis sends them)."""
        protocol = self._connected() or await self._connect()
        return await protocol.call(args)

    async def run(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run *script* with *keys* and *args*."""
        return await _evalsha(self._connected() or await self._connect(), script, keys, args)

    def submit(self, script: Script, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """Send *script*'s call at once and return the future of its reply, for a call nobody needs to
        wait for: what matters is its place on the connection (Redis runs it before any command this
        loop sends later). No task is made when this loop is connected already."""
        protocol = self._connected()
        if protocol is None:
            return asyncio.ensure_future(self.run(script, keys, args))
        return _evalsha(protocol, script, keys, args)

    def _connected(self) -> _Protocol | None:
        """This loop's connection, when it has one that is up."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None or self.loop is not asyncio.get_running_loop():
            return None
        return protocol

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            self.loop, self._protocol, self._connecting = loop, None, None
        if self._connecting is not None and not self._connecting.done():
            return await asyncio.shield(self._connecting)  # another call is connecting already
        self._connecting = loop.create_future()
        try:
            async with asyncio.timeout(CONNECT_SECONDS):
                if self.path is not None:
                    _, protocol = await loop.create_unix_connection(
                        lambda: _Protocol(self.patience), self.path
                    )
                else:
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(self.patience), self.host, self.port, ssl=self.tls
                    )
                if self.password is not None:
                    auth = (self.username, self.password) if self.username else (self.password,)
                    await protocol.call(("AUTH", *auth))
                if self.db:
                    await protocol.call(("SELECT", self.db))
        except (OSError, TimeoutError) as exc:  # ssl.SSLError too: a certificate not trusted, say
            error = RedisConnectionError(f"cannot reach Redis at {self.where}: {exc}")
            self._fail_connecting(error)
            raise error from exc
        except BaseException as exc:  # AUTH or SELECT refused, or this call cancelled
            self._fail_connecting(exc if isinstance(exc, Exception) else RedisConnectionError("connecting"))
            raise
        self._protocol = protocol
        self._connecting.set_result(protocol)
        return protocol

    def _fail_connecting(self, error: Exception) -> None:
        """Hand *error* to the calls waiting for this connection attempt (there may be none)."""
        assert self._connecting is not None
        self._connecting.set_exception(error)
        self._connecting.exception()  # marked retrieved: no warning when nobody else waited

    async def aclose(self) -> None:
        protocol, self._protocol = self._protocol, None
        if (
            protocol is not None
            and protocol.transport is not None
            and self.loop
            and not self.loop.is_closed()
        ):
            protocol.transport.close()


def _keep_alive(sock: Any) -> None:
    """TCP keepalive on *sock* (not for a Unix socket), with :data:`KEEPALIVE`'s timings."""
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in KEEPALIVE.items():
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError:  # a transport that does not let us: the connection works without
        pass


def blocking_client(url: str) -> redis.Redis:
    """A redis-py client for *url* (threads: the drains, the journal's writer) that, unless the URL
    says otherwise, gives up on a Redis silent for :data:`REPLY_SECONDS` and keeps idle TCP
    connections alive, as :class:`Multiplexed` does."""
    options: dict[str, Any] = {"socket_timeout": REPLY_SECONDS, "socket_connect_timeout": CONNECT_SECONDS}
    if not url.startswith("unix:"):
        options |= {"socket_keepalive": True, "socket_keepalive_options": KEEPALIVE}
    return redis.Redis.from_url(url, **options)


def _evalsha(protocol: _Protocol, script: Script, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
    """Call *script* by its SHA-1 on *protocol*, with its source sent instead if Redis forgot it."""
    rest = (len(keys), *keys, *args)
    return protocol.call(("EVALSHA", script.sha, *rest), ("EVAL", script.source, *rest))
