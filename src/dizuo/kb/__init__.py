"""Knowledge bases (issue 6, in progress): parsing, Chinese-aware chunking; retrieval and cited
answers are not built yet (docs/knowledge-bases.md says what is)."""

from dizuo.kb.chunking import Chunk, chunk_blocks
from dizuo.kb.parsing import Block, parse_markdown

__all__ = ["Block", "Chunk", "chunk_blocks", "parse_markdown"]
