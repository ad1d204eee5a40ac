"""Exit 0 when llama.cpp runs the embedded chat model (a few tokens, in a child process so that a
crash of the library is an exit status, not the end of the caller); 1 with what happened otherwise."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
from llama_cpp import Llama
from dizuo.providers.local_chat import gguf_path
model = Llama(model_path=str(gguf_path()), n_ctx=256, n_threads=2, verbose=False)
print(model.create_completion("你好", max_tokens=4)["choices"][0]["text"] is not None)
"""


def main() -> int:
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        print("llama.cpp did not answer within 300 s", file=sys.stderr)
        return 1
    if done.returncode == 0 and done.stdout.strip() == "True":
        return 0
    print(f"llama.cpp failed on the embedded model (exit {done.returncode}): {done.stderr[-2000:]}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
