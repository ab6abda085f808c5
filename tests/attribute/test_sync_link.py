"""Linking by lockstep: one scheduler's workers share bursts, bystanders of a burst do not."""

from __future__ import annotations

import random

import msgspec

from distillwatch.attribute.keys import family
from tests.attribute.streams import World, backend, batch_pool, customers, groups_of, run


def _world(seed: int = 5, *, lockstep: bool = True, pools: int = 1) -> World:
    rng = random.Random(seed)
    world = World()
    customers(world, rng, 60)
    backend(world, rng)
    for p in range(pools):
        batch_pool(world, rng, name=f"pool{p}", lockstep=lockstep)
    return world


def test_workers_of_one_scheduler_are_one_campaign_by_their_bursts() -> None:
    world = _world()
    linker = run(world.sorted(), world.accounts)
    assert groups_of(linker) == [world.groups["pool0"]]
    (camp,) = linker.campaigns.values()
    assert camp.by_family.get("sync", 0.0) > 1.0
    assert all(family(k) in {"sync", "scaffold", "agent"} for k in camp.keys)
    assert "backend-000" not in camp.members  # it sent into the pool's bursts by chance


def test_the_same_workers_without_lockstep_share_nothing_strong() -> None:
    world = _world(lockstep=False)
    linker = run(world.sorted(), world.accounts)
    assert groups_of(linker) == []


def test_two_schedulers_stay_two_campaigns() -> None:
    world = _world(pools=2)
    linker = run(world.sorted(), world.accounts)
    assert groups_of(linker) == [world.groups["pool0"], world.groups["pool1"]]


def test_one_organisations_fleet_is_no_campaign() -> None:
    rng = random.Random(8)
    world = World()
    customers(world, rng, 30)
    batch_pool(world, rng, name="fleet")
    for aid in world.groups["fleet"]:  # the same workers, declared as one organisation's
        world.accounts[aid] = msgspec.structs.replace(world.accounts[aid], org_id="org_acme")
    linker = run(world.sorted(), world.accounts)
    assert groups_of(linker) == []
    assert not any(k.startswith("sync:") for k in linker.graph.nodes)
