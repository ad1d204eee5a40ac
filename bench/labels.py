"""What AIGC labels cost a chat answer: sealing a whole answer and following a stream, in process
(microseconds per answer), and end to end through ``dizuo serve`` at one connection, labels on
(``DIZUO_AIGC_LABEL=implicit``) against labels off, alternated round by round in the same run.

The in-process baseline is the same answer passed on as the gateway passes an unlabeled one (its
bytes untouched; for a stream, each event as it is). End to end, both servers are production-like:
the ``default`` organization funded, its key with rate limits, the guard logging, metering on.

    .venv/bin/python bench/labels.py [--rounds 7] [--seconds 5] [--control] [--no-gateway]

Needs nginx and wrk (Debian packages), as ``gateway.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import timeit
import urllib.request
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dizuo.compliance.labels import Labeler
from dizuo.config import DeploymentConfig
from dizuo.gateway.labeling import StreamLabel, label_whole
from gateway import BODY, CHUNK, COMPLETION, USAGE, Stack, Target, check, wrk


class _Spec:
    name = "openai-compatible"


class _Provider:
    spec = _Spec()


class _Deployment:
    """What labeling reads of a deployment: its cloud, its provider's name."""

    def __init__(self, cloud: str) -> None:
        self.config = DeploymentConfig(name="bench", model="bench", provider="openai-compatible", cloud=cloud)
        self.provider = _Provider()


def best(function: object, calls: int) -> float:
    """Microseconds per call, the best of five runs."""
    return min(timeit.repeat(function, number=calls, repeat=5)) / calls * 1e6  # type: ignore[arg-type]


def in_process(calls: int) -> dict[str, float]:
    labeler = Labeler(b"k" * 32, "dizuo")
    whole = COMPLETION.encode()
    events = [CHUNK.encode()] * 8
    usage = USAGE.encode()
    out: dict[str, float] = {}
    for cloud in ("private", "public"):
        dep = _Deployment(cloud)
        labeled, header = label_whole(labeler, whole, "req_" + "0" * 32, dep, None)  # type: ignore[arg-type]
        if header is None or labeler.open(orjson.loads(labeled)["aigc"]) is None:
            sys.exit("a whole answer came out without a label that opens: nothing was timed")

        def whole_answer(dep: object = dep) -> None:
            label_whole(labeler, whole, "req_" + "0" * 32, dep, None)  # type: ignore[arg-type]

        def stream(dep: object = dep) -> None:
            label = StreamLabel(labeler, "req_" + "0" * 32, dep, None)  # type: ignore[arg-type]
            for event in events:
                label.chunk(event)
            label.final(usage)

        out[f"whole_{cloud}_us"] = best(whole_answer, calls)
        out[f"stream_{cloud}_us"] = best(stream, calls // 8)
    passed = best(lambda: bytes(whole), calls)
    print("in process, per answer (best of 5):")
    print(f"  an unlabeled answer passed on         {passed:7.2f} µs")
    for cloud in ("private", "public"):
        print(f"  whole answer labeled ({cloud:<7})      {out[f'whole_{cloud}_us']:7.2f} µs")
        print(f"  8-event stream labeled ({cloud:<7})    {out[f'stream_{cloud}_us']:7.2f} µs")
    out["passed_us"] = passed
    return out


def labeled(target: Target, expect: bool) -> None:
    """Stop unless *target* answers 200 with (or, labels off, without) the label."""
    check(target)
    request = urllib.request.Request(
        target.url,
        data=BODY.encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {target.key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    if ("aigc" in body) != expect:
        sys.exit(f"{target.name}: the answer {'lacks' if expect else 'carries'} a label; nothing was timed")


def end_to_end(rounds: int, seconds: int, control: bool) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="dizuo-bench-labels-"))
    stack = Stack(home)
    try:
        up = stack.nginx()
        targets = []
        # With --control, a second server with labels off: the difference between two identical
        # servers is the noise floor of the figure.
        for index, mode in enumerate(("off", "implicit", "off")[: 3 if control else 2]):
            name = f"labels-{mode}-{index}"
            port, pid, key = stack.dizuo(up, name, {"DIZUO_AIGC_LABEL": mode}, production=True)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            targets.append(Target(f"labels {mode}" + (" again" if index == 2 else ""), url, key=key, pid=pid))
            labeled(targets[-1], mode != "off")
        stream_body = BODY.replace("bench-json", "bench-sse").replace(
            '"max_tokens": 64', '"max_tokens": 64, "stream": true'
        )
        streams = [Target(f"{t.name} stream", t.url, key=t.key, pid=t.pid, body=stream_body) for t in targets]
        for target in targets + streams:
            wrk(target, 2, 4)  # warm up
        order = random.Random(7)
        for _ in range(rounds):
            # A fresh order each round: no target always runs right after another (the machine's
            # state after one run shows in the next).
            for target in order.sample(targets + streams, len(targets + streams)):
                result = wrk(target, seconds, 1, latency=True)
                if result["non2xx"] or result["socket_errors"]:
                    sys.exit(f"{target.name}: {result['non2xx']:.0f} non-2xx answers; the figures are void")
                target.add("p50_ms", result["p50_ms"])
        out: dict[str, float] = {}
        print(f"\nend to end, one connection, median p50 of {rounds} alternated rounds of {seconds} s:")
        for kind, group in (("whole", targets), ("stream", streams)):
            off, on = (t.median("p50_ms") for t in group[:2])
            spread = statistics.pstdev([*group[0].results["p50_ms"]]) if rounds > 1 else 0.0
            print(
                f"  {kind:<7} off {off:.3f} ms  on {on:.3f} ms  added {on - off:+.3f} ms"
                f"  ({on / off:.3f}x; rounds off spread ±{spread:.3f} ms)"
            )
            out[f"{kind}_off_p50_ms"], out[f"{kind}_on_p50_ms"] = off, on
            if control:
                again = group[2].median("p50_ms")
                print(
                    f"  {'':<7} off again {again:.3f} ms: two identical servers differ by {again - off:+.3f} ms"
                )
                out[f"{kind}_off_again_p50_ms"] = again
        return out
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--no-gateway", action="store_true", help="in process only")
    parser.add_argument("--control", action="store_true", help="a second labels-off server: the noise floor")
    args = parser.parse_args()
    figures = in_process(args.calls)
    if not args.no_gateway:
        figures |= end_to_end(args.rounds, args.seconds, args.control)
    out = Path(__file__).resolve().parent / "out" / "labels.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
