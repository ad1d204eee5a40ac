"""An evaluation run as a compute job: what runs on the pool's node (``python -m dizuo.compute.evaljob``).

The bench's own runner, unchanged: it asks the model through the platform's ``/v1`` (``DIZUO_BASE_URL``)
with a key made for this job alone (``DIZUO_API_KEY``: models only, expiring with the job, revoked when
it ends), so every call is metered, limited and guarded as any client's, apart from the job's
accelerator-hours. When the run ends, its files (the results, the items, the report) go back to the
platform in the job's own output: one line, :data:`MARK` then the files as gzipped JSON in base64,
which the platform reads when it charges the job and records as one of its evaluation runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

__all__ = ["FILES", "MARK", "pack", "unpack"]

MARK = "DIZUO-EVAL-RUN "
FILES = ("run.json", "items.jsonl", "results.json", "report.html")


def pack(folder: Path) -> str:
    """The run's files in *folder* as one line of text (after :data:`MARK`)."""
    files = {name: (folder / name).read_text(encoding="utf-8") for name in FILES if (folder / name).exists()}
    return base64.b64encode(gzip.compress(orjson.dumps(files))).decode()


def unpack(logs: str) -> dict[str, str] | None:
    """The files a job's output carries (its last :data:`MARK` line), or None when it has none."""
    for line in reversed(logs.splitlines()):
        if line.startswith(MARK):
            try:
                files: Any = orjson.loads(gzip.decompress(base64.b64decode(line[len(MARK) :].strip())))
            except (ValueError, OSError, orjson.JSONDecodeError):
                return None
            if isinstance(files, dict) and isinstance(files.get("results.json"), str):
                return {str(k): str(v) for k, v in files.items() if k in FILES}
            return None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dizuo.compute.evaljob")
    parser.add_argument("--suite", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default=None, help="Folder of the run (default: a fresh temporary one).")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    # A folder of its own: a job's working directory is not its own on every cluster (without a
    # working_dir it is the node's), and a run finds an earlier run's answers in its folder.
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="dizuo-eval-"))
    try:
        return _run(args, out)
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)


def _run(args: argparse.Namespace, out: Path) -> int:
    from dizuo.evalbench import BankError, RunConfig, RunConflict, RunFailed, load_suite, run_suite

    try:
        suite = load_suite(args.suite)
        config = RunConfig(
            model=args.model,
            base_url=os.environ["DIZUO_BASE_URL"],
            api_key=os.environ["DIZUO_API_KEY"],
            concurrency=args.concurrency,
        )

        def progress(done: int, total: int) -> None:
            if done == total or done % max(1, total // 10) == 0:
                print(f"{done}/{total}", flush=True)

        document = asyncio.run(run_suite(suite, config, out, progress))
    except (BankError, RunConflict, RunFailed, KeyError) as exc:
        print(f"评测失败 / the evaluation failed: {exc}", file=sys.stderr, flush=True)
        return 1
    overall = document["overall"]
    print(f"{overall['passed']}/{overall['n']} · grade {document['grade'] or '-'}", flush=True)
    print(MARK + pack(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
