"""``dizuo kb``: knowledge bases of the API key's organization, over the platform's HTTP API.

Every command talks to a running ``dizuo serve`` (``--base-url`` or ``DIZUO_BASE_URL``, default the
local one) with an API
key (``--api-key`` or ``DIZUO_API_KEY``), so what it does is scoped, metered and guarded exactly
like the SDK's calls. Errors print the server's message and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from dizuo.cli.remote import Client, ServerError, connected, options, print_json, print_rows

__all__ = ["kb"]


def _name(name: str) -> str:
    return "/" + quote(name, safe="")


@click.group("kb")
def kb() -> None:
    """Knowledge bases with cited answers (知识库问答)."""


@kb.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the knowledge base holds.")
@click.option("--embedding-model", help="Embedding model alias (default: the platform's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@connected
def create(
    name: str,
    description: str,
    embedding_model: str | None,
    as_json: bool,
    base_url: str,
    api_key: str | None,
) -> None:
    """Create the knowledge base NAME."""
    body = {"name": name, "description": description, "embedding_model": embedding_model}
    created = Client(base_url, api_key).call("POST", body=body)
    if as_json:
        print_json(created)
    else:
        click.echo(f"已创建知识库 {created['name']}（向量模型 {created['embedding_model']}）")


@kb.command("add")
@click.argument("name")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (a list, one entry per file).")
@connected
def add(name: str, files: tuple[Path, ...], as_json: bool, base_url: str, api_key: str | None) -> None:
    """Add FILES to NAME (Markdown, text, HTML, DOCX, XLSX, CSV, PDF); a changed file replaces its old
    version. Each file succeeds or fails alone; the exit status is 1 when any failed."""
    client = Client(base_url, api_key)
    results: list[dict[str, Any]] = []
    for path in files:
        try:
            document = client.call(
                "POST", f"{_name(name)}/documents?filename={quote(path.name)}", data=path.read_bytes()
            )
            results.append(document)
            if not as_json:
                words = {"added": "已添加", "replaced": "已替换", "unchanged": "未变化"}
                click.echo(
                    f"{words.get(document['status'], document['status'])} {path.name}：{document['chunks']} 段"
                )
        except ServerError as exc:
            results.append({"source": path.name, "status": "failed", "error": exc.message})
            if not as_json:
                click.echo(f"失败 {path.name}：{exc.message}", err=True)
    if as_json:
        print_json(results)
    if any(r["status"] == "failed" for r in results):
        sys.exit(1)


@kb.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@connected
def list_(as_json: bool, base_url: str, api_key: str | None) -> None:
    """List the organization's knowledge bases."""
    rows = Client(base_url, api_key).call("GET")["data"]
    print_rows(
        rows,
        as_json,
        lambda r: f"{r['name']}\t{r['documents']} 个文件\t{r['chunks']} 段\t{r['embedding_model']}",
    )


@kb.command("documents")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@connected
def documents(name: str, as_json: bool, base_url: str, api_key: str | None) -> None:
    """List the documents of NAME."""
    rows = Client(base_url, api_key).call("GET", f"{_name(name)}/documents")["data"]
    print_rows(
        rows, as_json, lambda r: f"{r['source']}\t{r['chunks']} 段\t{r['characters']} 字\t{r['updated_at']}"
    )


@kb.command("remove")
@click.argument("name")
@click.argument("source")
@connected
def remove(name: str, source: str, base_url: str, api_key: str | None) -> None:
    """Remove the document SOURCE (its file name) and its chunks from NAME."""
    Client(base_url, api_key).call("DELETE", f"{_name(name)}/documents/{quote(source, safe='')}")
    click.echo(f"已移除 {source}")


@kb.command("delete")
@click.argument("name")
@connected
def delete(name: str, base_url: str, api_key: str | None) -> None:
    """Delete the knowledge base NAME with all its documents."""
    Client(base_url, api_key).call("DELETE", _name(name))
    click.echo(f"已删除知识库 {name}")


def _filters(sources: tuple[str, ...], clause: str | None, kind: str | None) -> dict[str, Any]:
    return {"sources": list(sources), "clause_prefix": clause, "kind": kind}


filtered = options(
    click.option("--source", "sources", multiple=True, help="Only this document (repeatable)."),
    click.option("--clause", help="Only clauses under this one (4 matches 4.1, 4.2.1 …)."),
    click.option("--kind", type=click.Choice(["text", "table"]), help="Only text or only table chunks."),
)


@kb.command("query")
@click.argument("name")
@click.argument("question")
@click.option("-k", "k", type=click.IntRange(1, 50), default=5, show_default=True, help="Passages to return.")
@click.option("--mode", type=click.Choice(["hybrid", "bm25", "vector"]), default="hybrid", show_default=True)
@filtered
@click.option("--json", "as_json", is_flag=True, help="Print [{text, source, locator, score}] best first.")
@connected
def query(
    name: str,
    question: str,
    k: int,
    mode: str,
    sources: tuple[str, ...],
    clause: str | None,
    kind: str | None,
    as_json: bool,
    base_url: str,
    api_key: str | None,
) -> None:
    """The passages of NAME that best answer QUESTION."""
    body = {"question": question, "k": k, "mode": mode, "filters": _filters(sources, clause, kind)}
    rows = Client(base_url, api_key).call("POST", f"{_name(name)}/query", body=body)["data"]
    if as_json:
        print_json(rows)
        return
    for number, row in enumerate(rows, start=1):
        click.echo(f"[{number}] {row['source']}，{row['locator']}（{row['score']:.4f}）\n{row['text']}\n")


@kb.command("ask")
@click.argument("name")
@click.argument("question")
@click.option("--model", help="Chat model alias (default: the platform's kb_chat_model).")
@click.option(
    "-k", "k", type=click.IntRange(1, 20), default=5, show_default=True, help="Passages given to the model."
)
@filtered
@click.option(
    "--json", "as_json", is_flag=True, help='Print {"answer", "citations": [{source, locator, text}]}.'
)
@connected
def ask(
    name: str,
    question: str,
    model: str | None,
    k: int,
    sources: tuple[str, ...],
    clause: str | None,
    kind: str | None,
    as_json: bool,
    base_url: str,
    api_key: str | None,
) -> None:
    """Answer QUESTION from NAME with a chat model, citing each claim's source."""
    body = {"question": question, "model": model, "k": k, "filters": _filters(sources, clause, kind)}
    answer = Client(base_url, api_key).call("POST", f"{_name(name)}/ask", body=body)
    if as_json:
        print_json(answer)
        return
    click.echo(answer["answer"])
    for citation in answer["citations"]:
        click.echo(f"  [{citation['n']}] {citation['source']}，{citation['locator']}")
