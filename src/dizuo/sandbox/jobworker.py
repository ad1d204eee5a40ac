"""What runs on the pool's node for a sandbox job (``python -m dizuo.sandbox.jobworker --job ID --run
"ENTRYPOINT"``): the platform's worker around the organization's own code.

1. It fetches the granted columns of the job's dataset as Parquet from the platform
   (``DIZUO_BASE_URL``, with the key made for this job alone, ``DIZUO_API_KEY``) into a folder of its
   own.
2. It runs the entrypoint in the job's working directory with ``DIZUO_SANDBOX_INPUT`` (the Parquet
   file), ``DIZUO_SANDBOX_DATASET`` (its name) and ``DIZUO_SANDBOX_OUTPUT`` (an empty folder for what
   the code writes out) and without the job's key: the code can read the data, not call the platform
   as the job.
3. It sends each file the code wrote in the output folder (its top level) back to the platform,
   where it waits for the data owner's review, and exits as the code did.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

__all__ = ["main"]

CHUNK = 1 << 20


def _request(url: str, key: str, data: bytes | None = None) -> urllib.request.Request:
    headers = {"Authorization": f"Bearer {key}"}
    if data is not None:
        headers["Content-Type"] = "application/octet-stream"
    return urllib.request.Request(
        url, data=data, headers=headers, method="POST" if data is not None else "GET"
    )


def fetch(base: str, key: str, job: str, folder: Path) -> tuple[Path, str]:
    """The job's data as a Parquet file in *folder*, and the dataset's name."""
    with urllib.request.urlopen(
        _request(f"{base}/compute/jobs/{job}/sandbox/data", key), timeout=600
    ) as answer:
        dataset = urllib.parse.unquote(answer.headers.get("x-dizuo-dataset", "data"))
        target = folder / f"{dataset}.parquet"
        with target.open("wb") as out:
            while chunk := answer.read(CHUNK):
                out.write(chunk)
    return target, dataset


def send(base: str, key: str, job: str, output: Path) -> list[str]:
    """Send each file at the top of *output*; the names sent."""
    sent = []
    for path in sorted(output.iterdir()):
        if not path.is_file():
            print(f"未发送（不是文件）/ not sent (not a file): {path.name}", flush=True)
            continue
        url = f"{base}/compute/jobs/{job}/sandbox/outputs?name={urllib.parse.quote(path.name)}"
        with urllib.request.urlopen(_request(url, key, path.read_bytes()), timeout=600) as answer:
            answer.read()
        sent.append(path.name)
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dizuo.sandbox.jobworker")
    parser.add_argument("--job", required=True, help="The compute job's id.")
    parser.add_argument("--run", required=True, help="The organization's entrypoint (a shell command).")
    args = parser.parse_args(argv)
    base = os.environ["DIZUO_BASE_URL"].rstrip("/")
    key = os.environ["DIZUO_API_KEY"]
    with tempfile.TemporaryDirectory(prefix="dizuo-sandbox-") as scratch:
        folder, output = Path(scratch) / "input", Path(scratch) / "output"
        folder.mkdir()
        output.mkdir()
        try:
            data, dataset = fetch(base, key, args.job, folder)
        except (urllib.error.URLError, OSError) as exc:
            detail = exc.read().decode(errors="replace") if isinstance(exc, urllib.error.HTTPError) else exc
            print(f"取数据失败 / could not fetch the data: {detail}", file=sys.stderr, flush=True)
            return 1
        env = {k: v for k, v in os.environ.items() if k not in ("DIZUO_API_KEY", "DIZUO_BASE_URL")}
        env.update(
            DIZUO_SANDBOX_INPUT=str(data), DIZUO_SANDBOX_DATASET=dataset, DIZUO_SANDBOX_OUTPUT=str(output)
        )
        code = subprocess.run(
            args.run, shell=True, env=env, check=False
        ).returncode  # the organization's own command
        try:
            sent = send(base, key, args.job, output)
        except (urllib.error.URLError, OSError) as exc:
            detail = exc.read().decode(errors="replace") if isinstance(exc, urllib.error.HTTPError) else exc
            print(f"结果未能送回 / the results could not be sent back: {detail}", file=sys.stderr, flush=True)
            return code or 1
        print(
            f"已送回 {len(sent)} 个文件待审核 / {len(sent)} files sent back for review: {', '.join(sent)}",
            flush=True,
        )
        return code


if __name__ == "__main__":
    sys.exit(main())
