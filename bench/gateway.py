"""Gateway benchmark: dizuo against the bare upstream, a bare Python pass-through, and LiteLLM.

Everything runs on this machine, all in one run, alternating the targets round by round because
the machine's speed drifts about 2x between runs (DESIGN §6); figures are reported as ratios.

    .venv/bin/python bench/gateway.py [--seconds 8] [--rounds 3] [--litellm [VENV ...]] [--rss]

Needs nginx and wrk (Debian packages). `--litellm` needs a virtual environment with
`litellm[proxy]` installed, `bench/.venv-litellm` unless others are named (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "bench",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "你好，这是一个固定的回答。"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    },
    ensure_ascii=False,
)
CHUNK = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"b","choices":[{"index":0,"delta":{"content":"你好"},"finish_reason":null}]}'
USAGE = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"b","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21}}'
SSE = "".join(f"data: {CHUNK}\\n\\n" for _ in range(8)) + f"data: {USAGE}\\n\\ndata: [DONE]\\n\\n"
PROMPT = "你好，请简单介绍一下你自己。"


def body_of(prompt: str) -> str:
    return json.dumps(
        {"model": "bench-json", "messages": [{"role": "user", "content": prompt}], "max_tokens": 64},
        ensure_ascii=False,
    )


BODY = body_of(PROMPT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


@dataclass
class Target:
    name: str
    url: str  # full URL of the chat endpoint
    model: str = "bench-json"
    stream_url: str | None = None
    key: str = ""
    pid: int | None = None
    results: dict[str, list[float]] = field(default_factory=dict)
    body: str | None = None  # the request body; default: BODY for this target's model

    def add(self, metric: str, value: float) -> None:
        self.results.setdefault(metric, []).append(value)

    def median(self, metric: str) -> float:
        values = self.results.get(metric) or [float("nan")]
        return statistics.median(values)


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its children (uvicorn workers), from /proc."""
    total = 0.0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wrk(target: Target, seconds: int, connections: int, latency: bool = False) -> dict[str, float]:
    body = target.body or BODY.replace("bench-json", target.model)
    env = {**os.environ, "BENCH_BODY": body, "BENCH_KEY": target.key}
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(BENCH / "post.lua"), target.url]
    if latency:
        command.insert(1, "--latency")
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    result["requests"] = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = float(bad.group(1)) if bad else 0.0
    errors = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = (
        0.0 if not errors else float(sum(int(n) for n in re.findall(r"\d+", errors.group(1))))
    )
    if latency:
        for pct in ("50", "99"):
            match = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out, re.M)
            if match:
                value, unit = float(match.group(1)), match.group(2)
                result[f"p{pct}_ms"] = (
                    value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
                )
    return result


def check(target: Target, stream: bool = False) -> None:
    """One call as the benchmark makes them; stop the run, naming the status, unless it is a 200
    with an answer (a refusal timed as an answer is worse than no figure)."""
    body = target.body or BODY.replace("bench-json", target.model)
    if stream:
        body = BODY.replace("bench-json", "bench-sse").replace(
            '"max_tokens": 64', '"max_tokens": 64, "stream": true'
        )
    request = urllib.request.Request(
        target.stream_url if stream and target.stream_url else target.url,
        data=body.encode(),
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {target.key}"} if target.key else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        status, text = error.code, error.read().decode("utf-8", "replace")
    if status != 200 or ("data:" not in text if stream else '"choices"' not in text):
        sys.exit(f"{target.name} answered {status} instead of an answer; nothing was timed: {text[:300]}")


async def ttfb(target: Target, count: int) -> tuple[float, float]:
    """Sequential streaming calls; return p50 and p99 of time to the first body byte, in ms."""
    assert target.stream_url
    body = BODY.replace("bench-json", "bench-sse").replace(
        '"max_tokens": 64', '"max_tokens": 64, "stream": true'
    )
    headers = {"Content-Type": "application/json"}
    if target.key:
        headers["Authorization"] = f"Bearer {target.key}"
    samples = []
    async with aiohttp.ClientSession() as session:
        for index in range(count + 20):
            started = time.perf_counter()
            async with session.post(target.stream_url, data=body.encode(), headers=headers) as response:
                assert response.status == 200, await response.text()
                await response.content.readany()
                first = time.perf_counter() - started
                await response.read()
            if index >= 20:  # warm-up
                samples.append(first * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


class Stack:
    """Starts and stops the processes of one benchmark run."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.processes: list[subprocess.Popen[str]] = []

    def spawn(self, command: list[str], **kwargs: object) -> subprocess.Popen[str]:
        process = subprocess.Popen(command, text=True, start_new_session=True, **kwargs)  # type: ignore[call-overload]
        self.processes.append(process)
        return process

    def nginx(self) -> int:
        port = free_port()
        (self.home / "logs").mkdir(exist_ok=True)
        conf = self.home / "nginx.conf"
        conf.write_text(
            f"""
worker_processes 1;
error_log {self.home}/logs/error.log crit;
pid {self.home}/nginx.pid;
daemon off;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {self.home}/body;
  server {{
    listen 127.0.0.1:{port};
    location /json/ {{ default_type application/json; return 200 '{COMPLETION}'; }}
    location /sse/ {{ default_type text/event-stream; return 200 '{SSE}'; }}
  }}
}}
""",
            encoding="utf-8",
        )
        self.spawn(["nginx", "-p", str(self.home), "-c", str(conf)])
        wait_port(port)
        return port

    def passthrough(self, upstream: int) -> tuple[int, int]:
        port = free_port()
        process = self.spawn(
            [
                PYTHON,
                str(BENCH / "passthrough.py"),
                "--port",
                str(port),
                "--upstream",
                f"http://127.0.0.1:{upstream}/json/v1",
            ],
            stderr=subprocess.DEVNULL,  # it has no error handling by design: wrk's closes make noise
        )
        wait_port(port)
        return port, process.pid

    def dizuo(
        self,
        upstream: int | str,
        name: str = "dizuo",
        env_extra: dict[str, str] | None = None,
        config_text: str | None = None,
        first: bool = True,
        guard: str = "log",
        production: bool = False,
        limits: bool = True,
    ) -> tuple[int, int, str]:
        """Start `dizuo serve` in front of the upstream at *upstream* (a port on this machine, or
        ``http://host:port``, serving ``/json/v1`` and ``/sse/v1``), with the guard's *guard* policy.
        Return its port, pid and a key: the first key it printed, or with *production* the key of an
        organization as production has it: the ``default`` organization funded, RPM, TPM and
        concurrency limits on its key (none with *limits* False). *first* is False for a further
        replica on a database another one prepared (no key)."""
        if isinstance(upstream, int):
            upstream = f"http://127.0.0.1:{upstream}"
        port = free_port()
        config = self.home / f"{name}.yaml"
        config.write_text(
            config_text
            or f"""
local: false
guard: {{default: {{action: {guard}}}}}
deployments:
  - {{name: bench-json, model: bench-json, provider: openai-compatible,
      base_url: "{upstream}/json/v1", price: {{input: 2, output: 8}}}}
  - {{name: bench-sse, model: bench-sse, provider: openai-compatible,
      base_url: "{upstream}/sse/v1", price: {{input: 2, output: 8}}}}
""",
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIZUO_")}
        env["DIZUO_DATA_DIR"] = str(self.home / name)
        env["DIZUO_LOG_LEVEL"] = "warning"
        env.update(env_extra or {})
        dizuo = str(Path(PYTHON).parent / "dizuo")
        process = self.spawn(
            [dizuo, "serve", "--config", str(config), "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE if first else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        key = ""
        if first:
            assert process.stdout is not None
            key = process.stdout.readline().strip()
        if first and production:

            def admin(*args: str) -> str:
                return subprocess.run(
                    [dizuo, "admin", *args], env=env, capture_output=True, text=True, check=True
                ).stdout.strip()

            # Money for every call the run makes (a call costs about ¥0.0001), and a key with limits
            # far above what the run asks: taken and given back on every call, never refusing.
            admin("topup", "--org", "default", "--amount", "1000000")
            limited = ["--rpm", "100000000", "--tpm", "2000000000", "--concurrency", "10000"]
            key = admin("create-key", "--org", "default", *(limited if limits else []))
        wait_port(port)
        return port, process.pid, key

    def litellm(self, upstream: int, venv: Path) -> tuple[int, int]:
        port = free_port()
        config = self.home / f"litellm-{port}.yaml"
        config.write_text(
            f"""
model_list:
  - model_name: bench-json
    litellm_params: {{model: openai/bench, api_base: "http://127.0.0.1:{upstream}/json/v1", api_key: x}}
  - model_name: bench-sse
    litellm_params: {{model: openai/bench, api_base: "http://127.0.0.1:{upstream}/sse/v1", api_key: x}}
general_settings: {{master_key: sk-bench}}
litellm_settings: {{drop_params: true}}
""",
            encoding="utf-8",
        )
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
        process = self.spawn(
            [
                str(venv / "bin" / "litellm"),
                "--config",
                str(config),
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
                "--num_workers",
                "1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(port, timeout=180)
        return port, process.pid

    def stop(self) -> None:
        for process in self.processes:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--litellm",
        nargs="*",
        type=Path,
        metavar="VENV",
        help="also run the LiteLLM proxy of each virtual environment named (none named: "
        "bench/.venv-litellm), each its own target named by its version",
    )
    parser.add_argument(
        "--controls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run dizuo with each control off in turn (metering, guard, key limits)",
    )
    parser.add_argument("--rss", action="store_true", help="also drive dizuo to 100k requests and report RSS")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="SRC",
        help="also run dizuo from another source tree (its src/, e.g. a `git worktree` of an earlier "
        "commit) with every control on, as the target 'dizuo, compared'",
    )
    parser.add_argument(
        "--prompt",
        default=PROMPT,
        help="the user message of every call (default: a short one in Chinese, with no ASCII letter "
        "or digit, which the guard's scan passes over without its regular expression: give one "
        "with letters and digits to time that too)",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "gateway.json")
    args = parser.parse_args()
    global BODY
    BODY = body_of(args.prompt)
    for tool in ("nginx", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install nginx-light wrk")

    home = Path(tempfile.mkdtemp(prefix="dizuo-bench-"))
    stack = Stack(home)
    try:
        up = stack.nginx()
        pt_port, pt_pid = stack.passthrough(up)
        dz_port, dz_pid, key = stack.dizuo(up, production=True)
        targets = [
            Target(
                "upstream (nginx)",
                f"http://127.0.0.1:{up}/json/v1/chat/completions",
                stream_url=f"http://127.0.0.1:{up}/sse/v1/chat/completions",
            ),
            Target("bare pass-through", f"http://127.0.0.1:{pt_port}/v1/chat/completions", pid=pt_pid),
            Target(
                "dizuo",
                f"http://127.0.0.1:{dz_port}/v1/chat/completions",
                key=key,
                pid=dz_pid,
                stream_url=f"http://127.0.0.1:{dz_port}/v1/chat/completions",
            ),
        ]
        if args.controls:
            for label, options in (
                ("metering off", {"env_extra": {"DIZUO_METERING": "false"}}),
                ("guard off", {"guard": "off"}),
                ("no key limits", {"limits": False}),
            ):
                name = f"dizuo, {label}"
                port, pid, control_key = stack.dizuo(
                    up, name.replace(", ", "-").replace(" ", "-"), production=True, **options
                )  # type: ignore[arg-type]
                targets.append(
                    Target(name, f"http://127.0.0.1:{port}/v1/chat/completions", key=control_key, pid=pid)
                )
        if args.compare:
            source = str(args.compare.resolve())
            port, pid, compared_key = stack.dizuo(
                up, "dizuo-compared", production=True, env_extra={"PYTHONPATH": source}
            )
            targets.append(
                Target(
                    "dizuo, compared",
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    key=compared_key,
                    pid=pid,
                )
            )
        venvs = [] if args.litellm is None else args.litellm or [BENCH / ".venv-litellm"]
        for venv in venvs:
            ll_port, ll_pid = stack.litellm(up, venv)
            url = f"http://127.0.0.1:{ll_port}/v1/chat/completions"
            targets.append(Target(f"litellm {litellm_version(venv)}", url, key="sk-bench", pid=ll_pid))
        for target in targets:  # every target answers before anything is timed, then warms up
            check(target)
            if target.stream_url:
                check(target, stream=True)
            wrk(target, 2, 8)
        for round_ in range(args.rounds):
            for target in targets:
                cpu_before = cpu_seconds(target.pid) if target.pid else 0.0
                result = wrk(target, args.seconds, args.connections)
                if target.pid:
                    target.add(
                        "cpu_ms_per_request",
                        (cpu_seconds(target.pid) - cpu_before) * 1000 / result["requests"],
                    )
                target.add("rps", result["rps"])
                target.add("errors", result["non2xx"] + result["socket_errors"])
                if result["non2xx"] and target.name.startswith("dizuo"):
                    check(target)  # names the status and stops
                    sys.exit(f"{target.name}: {result['non2xx']:.0f} calls were not answered with 2xx")
                one = wrk(target, max(3, args.seconds // 2), 1, latency=True)
                target.add("p50_ms", one.get("p50_ms", float("nan")))
                target.add("p99_ms", one.get("p99_ms", float("nan")))
            print(
                f"round {round_ + 1}/{args.rounds}: "
                + ", ".join(f"{t.name} {t.results['rps'][-1]:.0f} req/s" for t in targets),
                flush=True,
            )
        for target in targets:
            if target.stream_url:
                p50, p99 = asyncio.run(ttfb(target, 300))
                target.add("ttfb_p50_ms", p50)
                target.add("ttfb_p99_ms", p99)
        rss = drive_rss(targets[2], args.connections) if args.rss else None
        report(targets, rss, args)
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


def litellm_version(venv: Path) -> str:
    """The version of LiteLLM installed in *venv*."""
    command = [
        str(venv / "bin" / "python"),
        "-c",
        "import importlib.metadata as m; print(m.version('litellm'))",
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()


def drive_rss(target: Target, connections: int) -> dict[str, float]:
    """Drive *target* past 100k requests; RSS after 50k and after 100k (MB)."""
    assert target.pid
    done, at_50k = 0.0, None
    start_rss = rss_mb(target.pid)
    while done < 100_000:
        done += wrk(target, 10, connections)["requests"]
        if at_50k is None and done >= 50_000:
            at_50k = rss_mb(target.pid)
    end = rss_mb(target.pid)
    assert at_50k is not None
    return {
        "requests": done,
        "rss_start_mb": start_rss,
        "rss_50k_mb": at_50k,
        "rss_100k_mb": end,
        "growth_second_half_pct": (end - at_50k) / at_50k * 100,
    }


def report(targets: list[Target], rss: dict[str, float] | None, args: argparse.Namespace) -> None:
    by = {t.name: t for t in targets}
    up, pt, dz = by["upstream (nginx)"], by["bare pass-through"], by["dizuo"]
    print()
    print(f"{'target':<24}{'req/s':>10}{'CPU ms/req':>12}{'p50 ms@1':>10}{'p99 ms@1':>10}{'errors':>8}")
    for t in targets:
        cpu = t.median("cpu_ms_per_request") if t.pid else float("nan")
        print(
            f"{t.name:<24}{t.median('rps'):>10.0f}{cpu:>12.3f}{t.median('p50_ms'):>10.3f}"
            f"{t.median('p99_ms'):>10.3f}{sum(t.results['errors']):>8.0f}"
        )
    summary = {
        "dizuo_vs_passthrough_throughput": dz.median("rps") / pt.median("rps"),
        "dizuo_added_p50_ms": dz.median("p50_ms") - up.median("p50_ms"),
        "dizuo_added_p99_ms": dz.median("p99_ms") - up.median("p99_ms"),
        "passthrough_added_p50_ms": pt.median("p50_ms") - up.median("p50_ms"),
        "dizuo_added_ttfb_p50_ms": dz.median("ttfb_p50_ms") - up.median("ttfb_p50_ms"),
    }
    for t in targets:  # what each control costs: dizuo with it on, against dizuo with it off
        if t.name == "dizuo, compared":
            summary["this_tree_÷_compared: throughput"] = dz.median("rps") / t.median("rps")
            summary["this_tree_−_compared: p50_ms"] = dz.median("p50_ms") - t.median("p50_ms")
            summary["compared_vs_passthrough_throughput"] = t.median("rps") / pt.median("rps")
        elif t.name.startswith("dizuo, "):
            label = t.name.removeprefix("dizuo, ").replace(" ", "_")
            summary[f"{label}: added_p50_ms_by_the_control"] = dz.median("p50_ms") - t.median("p50_ms")
            summary[f"{label}: throughput_with_it_÷_without"] = dz.median("rps") / t.median("rps")
    for ll in (t for t in targets if t.name.startswith("litellm ")):
        version = ll.name.removeprefix("litellm ")
        summary[f"dizuo_vs_litellm_{version}_throughput"] = dz.median("rps") / ll.median("rps")
        summary[f"litellm_{version}_added_p50_ms"] = ll.median("p50_ms") - up.median("p50_ms")
    if rss:
        summary.update(rss)
    print()
    for name, value in summary.items():
        print(f"{name:<44}{value:>12.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"targets": {t.name: t.results for t in targets}, "summary": summary}, indent=2)
    )


if __name__ == "__main__":
    main()
