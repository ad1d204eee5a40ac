"""An MCP server for the agents' tests, with the official ``mcp`` SDK: a parts database's quality
history, and a tool that always fails. Over stdio; ``--http PORT``: streamable HTTP on
``http://127.0.0.1:PORT/mcp``; ``--starts FILE``: appends its process id to FILE when it starts
(the tests count the processes a platform started)."""

from __future__ import annotations

import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("零件质量库")


@server.tool()
def part_history(part: str) -> str:
    """查询零件的历史质量问题 / a part's history of quality problems"""
    return f"{part}：2025 年 3 月批次柱塞副卡滞 2 起，已整改"


@server.tool()
def broken(part: str) -> str:
    """总是出错的工具 / a tool that always fails"""
    raise ValueError("质量库连接失败")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--starts"]:
        with open(sys.argv[2], "a", encoding="utf-8") as starts:
            starts.write(f"{os.getpid()}\n")
        del sys.argv[1:3]
    if sys.argv[1:2] == ["--http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
