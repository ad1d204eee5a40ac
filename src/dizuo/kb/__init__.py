"""Knowledge bases: documents of every common format, Chinese-aware chunks, hybrid
retrieval and cited answers (docs/knowledge-bases.md). The service is :mod:`dizuo.kb.service`; the
HTTP API lives in :mod:`dizuo.gateway.knowledge`."""

from dizuo.kb.chunking import Chunk, chunk_blocks
from dizuo.kb.parsing import Block, parse_markdown

__all__ = ["Block", "Chunk", "chunk_blocks", "parse_markdown"]
