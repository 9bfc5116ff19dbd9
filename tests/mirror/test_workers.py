"""The worker pool: bounded slots, urgent passes before deferred ones, one task per key."""

from __future__ import annotations

import asyncio

from isthmus.mirror.controller import KeyedWorkers, Slots
from isthmus.mirror.plan import Apply, ApplyStatus, Conflict, Delete, is_urgent


def test_urgent_actions() -> None:
    main = {"kind": "Service", "metadata": {"labels": {"isthmus.io/mirror": "true"}}}
    pinned = {"kind": "Service", "metadata": {"labels": {"isthmus.io/pinned-cluster": "w"}}}
    assert is_urgent(Apply(main, check_first=True))
    assert not is_urgent(Apply(pinned, check_first=True))
    assert is_urgent(Delete(("Service", "ns", "a"), "uid"))
    assert not is_urgent(ApplyStatus(main))
    assert not is_urgent(Conflict(("Service", "ns", "a"), "taken"))


async def test_slots_bound_and_prefer_urgent() -> None:
    slots = Slots(1)
    order: list[str] = []
    gate = asyncio.Event()

    async def hold() -> None:
        async with slots.slot(urgent=True):
            await gate.wait()

    async def take(name: str, urgent: bool) -> None:
        async with slots.slot(urgent=urgent):
            order.append(name)

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(take("d1", False)), asyncio.create_task(take("u1", True)),
             asyncio.create_task(take("d2", False)), asyncio.create_task(take("u2", True))]
    await asyncio.sleep(0)
    assert order == []  # the one slot is held
    gate.set()
    await asyncio.gather(first, *tasks)
    assert order == ["u1", "u2", "d1", "d2"]


async def test_cancelled_waiter_passes_its_slot_on() -> None:
    slots = Slots(1)
    gate = asyncio.Event()
    done: list[str] = []

    async def hold() -> None:
        async with slots.slot(urgent=True):
            await gate.wait()

    async def take(name: str) -> None:
        async with slots.slot(urgent=True):
            done.append(name)

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    doomed, later = asyncio.create_task(take("doomed")), asyncio.create_task(take("later"))
    await asyncio.sleep(0)
    doomed.cancel()
    gate.set()
    await asyncio.gather(first, later)
    assert done == ["later"]


async def test_all_urgent_passes_run_before_deferred_ones() -> None:
    calls: list[tuple[str, bool]] = []

    async def handler(key: tuple[str, str], urgent: bool) -> bool:
        calls.append((key[1], urgent))
        await asyncio.sleep(0.001)
        return urgent  # every urgent pass leaves work for a full pass

    async with asyncio.TaskGroup() as tg:
        workers = KeyedWorkers(tg, handler, concurrency=2)
        for i in range(6):
            workers.submit(("ns", f"k{i}"))
        await workers.idle.wait()
    firsts = [i for i, (_, urgent) in enumerate(calls) if urgent]
    seconds = [i for i, (_, urgent) in enumerate(calls) if not urgent]
    assert len(firsts) == len(seconds) == 6
    assert max(firsts) < min(seconds) + 2  # at most the slots in flight overlap
