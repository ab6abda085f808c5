"""The dev/test split of prompts and traces: stable, disjoint, held-out sources test-only."""

from __future__ import annotations

from pathlib import Path

import pytest

from distillwatch.bench.sources import (
    HELD_OUT,
    KINDS,
    TEST_SHARE,
    find_data_dir,
    load_pools,
    load_traces,
    split_of,
)
from distillwatch.bench.traffic import DEMO, generate
from distillwatch.errors import ConfigError
from distillwatch.log import read_exchanges

DATA: list[Path | None] = [None]
if (found := find_data_dir()) is not None:
    DATA.append(found)
WHERE = pytest.mark.parametrize("data", DATA, ids=lambda d: "shared-data" if d else "sample")


def _texts(data: Path | None, split: str) -> dict[str, set[str]]:
    pools = load_pools(data, split)
    return {s: {" ".join(c.turns[0].lower().split()) for c in cs} for s, cs in pools.items()}


def test_the_split_is_a_stable_function_of_the_text() -> None:
    assert split_of("Write a haiku about rain.") == split_of("write a  haiku about RAIN.")
    texts = [f"prompt number {i}" for i in range(4000)]
    share = sum(split_of(t) == "test" for t in texts) / len(texts)
    assert abs(share - TEST_SHARE) < 0.03


@WHERE
def test_dev_and_test_are_disjoint_and_cover_all(data: Path | None) -> None:
    dev, test, every = _texts(data, "dev"), _texts(data, "test"), _texts(data, "all")
    dev_all = set().union(*dev.values())
    test_all = set().union(*test.values())
    assert not dev_all & test_all  # not even through a prompt two sources share
    assert dev_all | test_all == set().union(*every.values())
    held = set().union(*(every[s] for s in HELD_OUT if s in every))
    for source in set(every) - HELD_OUT:
        own = every[source] - held  # a held-out source's prompts are test-only everywhere
        share = len(test.get(source, set()) & own) / max(1, len(own))
        if len(own) >= 300:  # about 40 % of every large source is held out
            assert 0.3 < share < 0.5, (source, share)


@WHERE
def test_held_out_sources_never_reach_dev(data: Path | None) -> None:
    dev, test = load_pools(data, "dev"), load_pools(data, "test")
    assert not HELD_OUT & set(dev)
    assert set(test) >= HELD_OUT
    held = {KINDS[s] for s in HELD_OUT}
    assert held == {"A", "B"}  # one source of people's prompts, one of a pipeline's
    assert {KINDS[s] for s in dev} == {"A", "B"}  # dev still has both kinds


@WHERE
def test_loading_twice_gives_the_same_split(data: Path | None) -> None:
    load_pools.cache_clear()
    first = _texts(data, "test")
    load_pools.cache_clear()
    assert _texts(data, "test") == first


@WHERE
def test_traces_split_by_time(data: Path | None) -> None:
    every, dev, test = load_traces(data, "all"), load_traces(data, "dev"), load_traces(data, "test")
    for name, rows in every.items():
        assert len(dev[name]) + len(test[name]) == len(rows)
        mid = (rows[0].t + rows[-1].t) / 2
        assert dev[name][-1].t < mid
        assert test[name][0].t == pytest.approx(0.0, abs=60)  # re-based to its own start
        assert [r.completion_tokens for r in test[name]] == [
            r.completion_tokens for r in rows if r.t >= mid
        ]


def test_a_bad_split_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="split"):
        load_pools(None, "train")
    with pytest.raises(ConfigError, match="split"):
        load_traces(None, "valid")


@pytest.mark.parametrize("split", ["dev", "test"])
def test_the_sample_generates_both_splits_without_held_out_prompts_in_dev(
    split: str, tmp_path: Path
) -> None:
    gen = generate(
        tmp_path, scenario=DEMO, seed=2, scale=0.1, days=0.5, split=split, use_shared_data=False
    )
    assert gen.exchanges > 1000 and gen.attack_accounts > 0
    held = [c.turns[0] for s in HELD_OUT for c in load_pools(None, "test")[s]]
    held = [h for h in held if len(h) >= 40]  # long enough not to occur by chance
    sent = [
        str(m["content"])
        for batch in read_exchanges(gen.exchanges_path)
        for e in batch
        if e.request
        for m in e.request["messages"][-1:]
    ]
    hits = sum(any(h in text for h in held) for text in sent[:3000])
    if split == "dev":
        assert hits == 0
    else:
        assert hits > 0  # the held-out sources are what test traffic is built from
