"""The Files and Batch APIs: an organization's files, and batches of requests run as compute jobs
whose workers send each line through the gateway (see ``service``)."""

from dizuo.errors import catalogue

# The messages of the Files and Batch APIs' errors.
MESSAGES = catalogue(
    {
        "file_too_large": (
            "文件超过 {mb} MB 的上限（DIZUO_FILES_MAX_MB）。请拆成几个文件。",
            "The file is over the {mb} MB limit (DIZUO_FILES_MAX_MB). Split it into several files.",
        ),
        "file_not_found": (
            "文件 {id} 不存在（或不属于此密钥的组织）。可用 GET /v1/files 查看。",
            "There is no file {id} in this key's organization. See GET /v1/files.",
        ),
        "file_expired": (
            "文件 {id} 已过期（上传时设定了 expires_after）。请重新上传。",
            "The file {id} has expired (it was uploaded with expires_after). Upload it again.",
        ),
        "batch_not_found": (
            "批处理 {id} 不存在（或不属于此密钥的组织）。可用 GET /v1/batches 查看。",
            "There is no batch {id} in this key's organization. See GET /v1/batches.",
        ),
    }
)
