"""isthmus.heap against the real allocator: freed heap pages go back to the OS."""

from __future__ import annotations

import ctypes.util

import pytest

from isthmus import heap


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(heap._LIBC is None, reason="not glibc")
def test_trim_returns_freed_heap_pages() -> None:
    # 64 KiB blocks come from glibc's heap (below its mmap threshold), not from mmap or
    # CPython's small-object arenas: exactly what stays resident after a burst.
    blocks = [bytearray(64 * 1024) for _ in range(800)]  # ~50 MB, touched
    keep = blocks[-1]  # pin the top of the heap so only trim (not free) can release pages
    del blocks
    before = _rss_kib()
    assert heap.trim() is True
    after = _rss_kib()
    assert before - after > 20_000, (before, after)  # most of the 50 MB left RSS
    assert len(keep) == 64 * 1024


def test_without_glibc_both_are_no_ops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_LIBC", None)
    assert heap.trim() is False
    assert heap.limit_arenas(2) is False


def test_libc_is_found_here() -> None:
    """The rig and CI run on glibc: a silent no-op there would hide the feature."""
    assert ctypes.util.find_library("c") and heap._LIBC is not None
