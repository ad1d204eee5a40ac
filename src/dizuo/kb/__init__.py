"""Knowledge bases: documents of every common format, Chinese-aware chunks, hybrid
retrieval and cited answers (docs/knowledge-bases.md). The service is :mod:`dizuo.kb.service`; the
HTTP API lives in :mod:`dizuo.gateway.knowledge`."""

from dizuo.errors import catalogue
from dizuo.kb.chunking import Chunk, chunk_blocks
from dizuo.kb.parsing import Block, parse_markdown

__all__ = ["Block", "Chunk", "chunk_blocks", "parse_markdown"]

# The messages of the knowledge bases' and the document readers' errors (the auditor reads documents too).
MESSAGES = catalogue(
    {
        "document_empty": (
            "文件 {name} 没有可读的文字。扫描版 PDF 或图片需先做文字识别（OCR）再添加。",
            "The file {name} has no readable text. Run OCR on a scanned PDF or an image before adding it.",
        ),
        "document_encrypted": (
            "文件 {name} 已加密（或是旧版 .doc/.xls 格式），无法读取。请去掉密码，另存为 .docx/.xlsx/.pdf 后再添加。",
            "The file {name} is encrypted (or a legacy .doc/.xls file) and cannot be read. Remove the "
            "password and save it as .docx/.xlsx/.pdf, then add it again.",
        ),
        "document_too_large": (
            "文件 {name} 超出上限：{limit_zh}。请拆分后再添加。",
            "The file {name} is over a limit: {limit_en}. Split it and add the parts.",
        ),
        "document_type_unsupported": (
            "无法识别文件 {name} 的格式。可添加的格式：{formats}。",
            "The format of {name} is not one we read. Formats accepted: {formats}.",
        ),
        "document_unreadable": (
            "文件 {name} 无法读取：{reason}。知识库未作任何改动。",
            "The file {name} cannot be read: {reason}. The knowledge base was left unchanged.",
        ),
        "kb_not_found": (
            "知识库 {name!r} 不存在（或不属于此密钥的组织）。可用 `dizuo kb list` 查看。",
            "There is no knowledge base {name!r} in this key's organization. See `dizuo kb list`.",
        ),
        "kb_exists": (
            "知识库 {name!r} 已存在。请换一个名称，或直接向它添加文件。",
            "A knowledge base named {name!r} already exists. Pick another name or add files to it.",
        ),
        "kb_model_changed": (
            "添加文件期间，知识库 {name!r} 已改用嵌入模型 {model}（重新嵌入作业已提交）。请重新添加该文件。",
            "The knowledge base {name!r} moved to the embedding model {model} while the file was being "
            "added (a re-embedding job committed). Add the file again.",
        ),
        "kb_reindex_incomplete": (
            "知识库 {name!r} 还有 {missing} 段尚未由此作业重新嵌入（可能是期间新增的文件），暂不能切换。请先嵌入这些段。",
            "{missing} chunks of the knowledge base {name!r} have no vector from this job yet (files added "
            "meanwhile, perhaps); it cannot switch until they do. Embed them first.",
        ),
        "kb_document_not_found": (
            "知识库 {name!r} 中没有文件 {source!r}。",
            "The knowledge base {name!r} has no document {source!r}.",
        ),
    }
)
