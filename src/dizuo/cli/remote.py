"""A command that is a client of a running ``dizuo serve``: its /v1 URL and API key, one HTTP call,
the server's refusals printed as every dizuo command prints errors (exit status 2)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

import click
import orjson

from dizuo.cli.common import fail
from dizuo.cli.evals import DEFAULT_BASE_URL

__all__ = ["Client", "ServerError", "connected", "options", "print_json", "print_rows"]


class ServerError(click.ClickException):
    """The server refused: its message, exit status 2 and the same error line as every other dizuo
    command (click's own would print "Error: …")."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"错误 / error: {self.format_message()}", err=True)


class Client:
    """The platform's API under *collection* (``/knowledge-bases``, ``/compute``) with an API key."""

    def __init__(self, base_url: str, api_key: str | None, collection: str = "/knowledge-bases") -> None:
        if not api_key:
            fail(
                "需要 API 密钥：--api-key 或环境变量 DIZUO_API_KEY / an API key is needed: --api-key or DIZUO_API_KEY"
            )
        self.base = base_url.rstrip("/") + collection
        self.headers = {"authorization": f"Bearer {api_key}", "accept-language": "zh-CN"}

    def call(self, method: str, path: str = "", body: Any = None, data: bytes | None = None) -> Any:
        with self._open(method, path, body, data) as response:
            return orjson.loads(response.read())

    def upload(self, content_type: str, length: int, pieces: Iterable[bytes]) -> Any:
        """POST a body of *length* bytes made of *pieces* (a file streamed, never read whole)."""
        headers = {**self.headers, "content-type": content_type, "content-length": str(length)}
        request = urllib.request.Request(self.base, data=pieces, method="POST", headers=headers)
        with self._send(request) as response:
            return orjson.loads(response.read())

    def stream(self, path: str, write: Callable[[bytes], Any]) -> None:
        """GET *path* and hand each piece of its body to *write* as it arrives (logs that follow)."""
        with self._open("GET", path, None, None) as response:
            while piece := response.read1(65536):
                write(piece)

    def _open(self, method: str, path: str, body: Any, data: bytes | None) -> Any:
        headers = dict(self.headers)
        if body is not None:
            data = orjson.dumps(body)
            headers["content-type"] = "application/json"
        elif data is not None:
            headers["content-type"] = "application/octet-stream"
        return self._send(urllib.request.Request(self.base + path, data=data, method=method, headers=headers))

    def _send(self, request: urllib.request.Request) -> Any:
        try:
            return urllib.request.urlopen(request, timeout=600)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = orjson.loads(raw)["error"]["message"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                message = raw.decode("utf-8", "replace")[:500]
            raise ServerError(f"{exc.code}: {message}") from None
        except urllib.error.URLError as exc:
            fail(f"无法连接 {self.base}（dizuo serve 是否在运行？）/ cannot reach {self.base}: {exc.reason}")


def print_json(document: Any) -> None:
    click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())


def print_rows(found: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str]) -> None:
    """Print *found* as one JSON document, or one *line* each."""
    if as_json:
        print_json(found)
    else:
        for row in found:
            click.echo(line(row))


def options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One decorator that applies *decorators* in the order they are listed."""

    def apply(command: Any) -> Any:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


connected = options(
    click.option(
        "--base-url",
        envvar="DIZUO_BASE_URL",
        default=DEFAULT_BASE_URL,
        show_default=True,
        help="The platform's /v1 URL (or DIZUO_BASE_URL; dizuo serve prints it).",
    ),
    click.option("--api-key", envvar=["DIZUO_API_KEY", "OPENAI_API_KEY"], help="API key (or DIZUO_API_KEY)."),
)
