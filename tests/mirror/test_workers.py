"""The worker pool: bounded, urgent passes before deferred ones, one pass per key at a time."""

from __future__ import annotations

import asyncio

from isthmus.mirror.plan import Apply, ApplyStatus, Conflict, Delete, is_urgent
from isthmus.mirror.workers import KeyedWorkers


def test_urgent_actions() -> None:
    main = {"kind": "Service", "metadata": {"labels": {"isthmus.io/mirror": "true"}}}
    pinned = {"kind": "Service", "metadata": {"labels": {"isthmus.io/pinned-cluster": "w"}}}
    assert is_urgent(Apply(main, check_first=True))
    assert not is_urgent(Apply(pinned, check_first=True))
    assert is_urgent(Delete(("Service", "ns", "a"), "uid"))
    assert not is_urgent(ApplyStatus(main))
    assert not is_urgent(Conflict(("Service", "ns", "a"), "taken"))


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
        for task in workers._pool:
            task.cancel()
    firsts = [i for i, (_, urgent) in enumerate(calls) if urgent]
    seconds = [i for i, (_, urgent) in enumerate(calls) if not urgent]
    assert len(firsts) == len(seconds) == 6
    assert max(firsts) < min(seconds)
    assert workers.pending == 0


async def test_one_pass_per_key_at_a_time_and_dirty_keys_run_again() -> None:
    active: set[tuple[str, str]] = set()
    passes: list[str] = []
    release = asyncio.Event()

    async def handler(key: tuple[str, str], urgent: bool) -> bool:
        assert key not in active  # never two passes of one key at once
        active.add(key)
        passes.append(key[1])
        await release.wait()
        active.discard(key)
        return False

    async with asyncio.TaskGroup() as tg:
        workers = KeyedWorkers(tg, handler, concurrency=4)
        workers.submit(("ns", "a"))
        await asyncio.sleep(0)
        workers.submit(("ns", "a"))  # while its pass runs: dirty, not a second task
        workers.submit(("ns", "a"))
        workers.submit(("ns", "b"))
        await asyncio.sleep(0)
        assert workers.pending == 2 and not workers.idle.is_set()
        release.set()
        await workers.idle.wait()
        for task in workers._pool:
            task.cancel()
    assert sorted(passes) == ["a", "a", "b"]
