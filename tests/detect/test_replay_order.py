"""Replay never runs out of order, whatever order the log is in."""

from __future__ import annotations

import random
from pathlib import Path

from distillwatch.detect import Engine, replay
from distillwatch.log import read_exchanges, write_records
from distillwatch.policy import load_policy
from distillwatch.records import Exchange
from distillwatch.signals import create_signals
from tests.factories import exchange


def _log() -> list[Exchange]:
    rng = random.Random(3)
    texts = ["Explain step by step how to solve 2x+3=9", "hello", "translate this"]
    return [
        exchange(
            i,
            account=f"acct-{rng.randrange(8)}",
            seconds=i * 3.0 + rng.random(),
            text=rng.choice(texts),
        )
        for i in range(3000)
    ]


def _scan(path: Path, lateness: float = 300.0) -> tuple[list[str], bool]:
    policy = load_policy()
    seen: list[float] = []

    class Recording(Engine):
        def observe(self, e: Exchange):  # type: ignore[no-untyped-def]
            seen.append(e.ts.timestamp())
            return super().observe(e)

    result = replay(
        lambda: read_exchanges(path, batch_size=256),
        lambda: Recording(create_signals(), policy),
        lateness=lateness,
    )
    assert seen[-len(_log()) :] == sorted(seen[-len(_log()) :])
    lines = sorted(
        f"{v.account_id} {v.score} {v.first_action_ts} {v.exchanges_before_action}"
        for v in result.verdicts
    )
    return lines, result.sorted_externally


def test_interleaved_replicas_are_reordered_in_memory(tmp_path: Path) -> None:
    log = _log()
    replica_a, replica_b = log[0::2], log[1::2]
    interleaved = []
    for i in range(0, len(replica_a), 50):  # chunks of each replica alternate in the file
        interleaved += replica_a[i : i + 50] + replica_b[i : i + 50]
    write_records(tmp_path / "sorted.jsonl", "exchanges", [log])
    write_records(tmp_path / "mixed.jsonl", "exchanges", [interleaved])
    expected, ext = _scan(tmp_path / "sorted.jsonl")
    assert not ext
    got, ext = _scan(tmp_path / "mixed.jsonl")
    assert got == expected and not ext


def test_shuffled_log_is_sorted_out_of_core(tmp_path: Path) -> None:
    log = _log()
    shuffled = log[:]
    random.Random(1).shuffle(shuffled)
    write_records(tmp_path / "sorted.jsonl", "exchanges", [log])
    write_records(tmp_path / "shuffled.jsonl.gz", "exchanges", [shuffled])
    expected, _ = _scan(tmp_path / "sorted.jsonl")
    got, ext = _scan(tmp_path / "shuffled.jsonl.gz")
    assert ext and got == expected
