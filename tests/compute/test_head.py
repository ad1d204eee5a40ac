"""The embedded Ray head's ports: a head never starts on a port another program or head holds.

Ray binds its ports seconds after they are chosen, in several processes; a port taken meanwhile
makes one of its agents exit and the head die a few seconds after it first answered."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import random
import socket
from pathlib import Path

import pytest

from dizuo.compute import head
from dizuo.compute.head import BLOCK


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ports.json"
    monkeypatch.setattr(head, "RESERVED", path)
    return path


def test_a_block_lies_below_the_kernels_ephemeral_range(registry: Path) -> None:
    low, _high = head._ephemeral()
    start = head._reserve("a")
    assert start >= 10000 and start + BLOCK <= low
    assert json.loads(registry.read_text())["a"][0] == start


def test_heads_on_one_machine_get_blocks_apart_and_a_released_block_is_forgotten(registry: Path) -> None:
    starts = [head._reserve(f"head-{n}") for n in range(30)]
    ordered = sorted(starts)
    assert all(b - a >= BLOCK for a, b in itertools.pairwise(ordered))
    head._release("head-0")
    assert "head-0" not in json.loads(registry.read_text())
    assert len(json.loads(registry.read_text())) == 29


def test_a_block_held_by_a_process_that_is_gone_is_free_again(registry: Path) -> None:
    gone = multiprocessing.get_context("spawn").Process(target=int)
    gone.start()
    gone.join()
    registry.write_text(json.dumps({"crashed": [20000, gone.pid]}))
    head._reserve("next")
    assert set(json.loads(registry.read_text())) == {"next"}


def test_a_port_another_program_listens_on_is_never_in_a_block(
    registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        # Blocks that would hold the busy port are offered first: the reservation must skip them, and
        # take a later offer (chosen as usual: any fixed one may hold a port someone else took).
        scripted = [taken - 5, taken - BLOCK + 1, taken]
        real = random.randrange
        offers = itertools.chain(scripted, iter(lambda: None, 0))
        monkeypatch.setattr(head, "_ephemeral", lambda: (65000, 65535))
        monkeypatch.setattr(head.random, "randrange", lambda first, last: next(offers) or real(first, last))
        start = head._reserve("mine")
    assert start not in scripted and not start <= taken < start + BLOCK
