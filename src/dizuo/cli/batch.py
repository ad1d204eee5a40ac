"""``dizuo batch``: the Batch API from the command line, over the platform's HTTP API with the
organization's API key (``--base-url`` / ``DIZUO_BASE_URL``, ``--api-key`` / ``DIZUO_API_KEY``), as
``dizuo compute`` does. ``submit`` uploads a JSONL file (streamed, never read whole) and creates the
batch; ``download`` writes its output (or error) file."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from dizuo.cli.remote import Client, connected, print_json, print_rows

__all__ = ["batch"]

ENDPOINTS = ("/v1/chat/completions", "/v1/embeddings")


@click.group("batch")
def batch() -> None:
    """Batches: a JSONL file of requests run on a compute pool at batch prices."""


def _multipart(path: Path, purpose: str) -> tuple[str, int, Iterator[bytes]]:
    """The upload of *path* as ``multipart/form-data``: its content type, length and pieces."""
    boundary = f"dizuo-{secrets.token_hex(12)}"
    name = path.name.replace('"', "_")
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\n{purpose}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def pieces() -> Iterator[bytes]:
        yield head
        with path.open("rb") as source:
            while chunk := source.read(1 << 20):
                yield chunk
        yield tail

    return f"multipart/form-data; boundary={boundary}", len(head) + path.stat().st_size + len(tail), pieces()


def _line(found: dict[str, Any]) -> str:
    counts = found["request_counts"]
    progress = f"{counts['completed']}+{counts['failed']}/{counts['total']}"
    return f"{found['id']}\t{found['status']}\t{found['endpoint']}\t{found['model'] or '-'}\t{progress}"


@batch.command("submit")
@connected
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--endpoint", type=click.Choice(ENDPOINTS), required=True, help="What every line calls.")
@click.option("--metadata", "pairs", multiple=True, help="KEY=VALUE kept with the batch (repeat).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def submit_command(
    base_url: str, api_key: str | None, file: Path, endpoint: str, pairs: tuple[str, ...], as_json: bool
) -> None:
    """Upload FILE (one request per line, OpenAI's batch format) and create a batch of it. A file
    with mistakes gives a failed batch naming each bad line; a wallet that cannot cover its worst
    case exits 2 with what is missing."""
    metadata = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(f"{pair}: 须为 KEY=VALUE / must be KEY=VALUE", param_hint="--metadata")
        metadata[key] = value
    content_type, length, pieces = _multipart(file, "batch")
    uploaded = Client(base_url, api_key, "/files").upload(content_type, length, pieces)
    body: dict[str, Any] = {"input_file_id": uploaded["id"], "endpoint": endpoint, "completion_window": "24h"}
    if metadata:
        body["metadata"] = metadata
    created = Client(base_url, api_key, "/batches").call("POST", "", body)
    if as_json:
        print_json(created)
        return
    click.echo(_line(created))
    for error in (created.get("errors") or {}).get("data") or []:
        click.echo(f"  第 {error['line']} 行 / line {error['line']}: {error['code']}: {error['message']}")
    if created["status"] == "failed":
        sys.exit(2)


@batch.command("list")
@connected
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def list_command(base_url: str, api_key: str | None, limit: int, as_json: bool) -> None:
    """The organization's batches, newest first."""
    found = Client(base_url, api_key, "/batches").call("GET", f"?limit={limit}")["data"]
    print_rows(found, as_json, _line)


@batch.command("show")
@connected
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def show_command(base_url: str, api_key: str | None, batch_id: str, as_json: bool) -> None:
    """One batch: status, counts, files."""
    found = Client(base_url, api_key, "/batches").call("GET", f"/{batch_id}")
    if as_json:
        print_json(found)
        return
    click.echo(_line(found))
    click.echo(
        f"  输出 / output: {found['output_file_id'] or '-'}\t错误 / errors: {found['error_file_id'] or '-'}"
    )
    for error in (found.get("errors") or {}).get("data") or []:
        click.echo(f"  第 {error['line']} 行 / line {error['line']}: {error['code']}: {error['message']}")


@batch.command("cancel")
@connected
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def cancel_command(base_url: str, api_key: str | None, batch_id: str, as_json: bool) -> None:
    """Stop a batch: lines answered so far are kept (and charged), the rest are not sent."""
    found = Client(base_url, api_key, "/batches").call("POST", f"/{batch_id}/cancel")
    print_json(found) if as_json else click.echo(_line(found))


@batch.command("download")
@connected
@click.argument("batch_id")
@click.option("--errors", is_flag=True, help="The error file instead of the output file.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Default: standard output."
)
def download_command(
    base_url: str, api_key: str | None, batch_id: str, errors: bool, output: Path | None
) -> None:
    """Write a batch's output file (or with --errors its error file), one JSON line per request."""
    found = Client(base_url, api_key, "/batches").call("GET", f"/{batch_id}")
    file_id = found["error_file_id" if errors else "output_file_id"]
    if not file_id:
        raise click.ClickException(
            f"批处理 {batch_id} 还没有{'错误' if errors else '输出'}文件（状态 {found['status']}）/ "
            f"the batch has no {'error' if errors else 'output'} file (status {found['status']})"
        )
    files = Client(base_url, api_key, "/files")
    if output is None:
        files.stream(f"/{file_id}/content", sys.stdout.buffer.write)
        return
    with output.open("wb") as out:
        files.stream(f"/{file_id}/content", out.write)
