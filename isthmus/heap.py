"""Hand freed heap memory back to the operating system (glibc; a no-op elsewhere).

CPython returns its own small-object arenas when they empty, but objects over 512 bytes,
and everything grpc's threads allocate, come from glibc malloc, which keeps freed pages
mapped. After a burst (a full LIST of 50 000 objects, a 1 000-service import) the
resident size then stays at the burst's high-water mark although the memory is free.
``malloc_trim(0)`` releases those pages; ``M_ARENA_MAX`` caps the per-thread arenas glibc
creates (by default up to 8 per core), each of which holds its own free pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

_M_ARENA_MAX = -8  # from glibc's malloc.h


def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    if not hasattr(lib, "malloc_trim") or not hasattr(lib, "mallopt"):
        return None  # not glibc (musl has neither)
    return lib


_LIBC = _libc()


def trim() -> bool:
    """Release free heap pages to the OS; True if any were released."""
    return bool(_LIBC is not None and _LIBC.malloc_trim(0))


def limit_arenas(count: int) -> bool:
    """At most ``count`` malloc arenas; call before threads start. True if applied."""
    return bool(_LIBC is not None and _LIBC.mallopt(_M_ARENA_MAX, count))
