"""Keep freed memory for reuse: glibc ``malloc`` tuned so a step's large scratch arrays do not page-fault.

A step allocates arrays of tens to hundreds of MB (its input projection: cells x gate rows floats; its
outputs). With glibc's defaults every allocation above 32 MB is a fresh ``mmap`` and every free a
``munmap``, so each step touches new pages: on AMD EPYC (lstm-2x512, padding's 1000-1600-column steps)
100-200 thousand page faults a second and 10-30 % of the step's CPU time in the kernel, more in a worker
thread (its own arena, whose heaps are given back) than on the main thread. PyTorch's CPU tuning guide
advises a caching allocator (jemalloc or tcmalloc) for the same reason.

:func:`keep_freed_memory` sets ``M_MMAP_MAX=0`` (no ``mmap`` for allocations: all come from the heap),
``M_TRIM_THRESHOLD`` to 2 GiB (freed memory up to that is not handed back to the system) and ``M_ARENA_MAX=1`` (threads
share the main heap, whose freed chunks every later step reuses). The price: the process holds its peak
memory until it exits, as a caching allocator does. Call it before the process starts threads (an arena
given to a thread before stays). It does nothing where the C library is not glibc, or where the
environment sets ``EBATCH_SYSTEM_MALLOC=1`` (a process that must hand memory back, at the cost above).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import platform

__all__ = ["SYSTEM_MALLOC_ENV", "keep_freed_memory"]

#: set to 1 to leave glibc's malloc as it is
SYSTEM_MALLOC_ENV = "EBATCH_SYSTEM_MALLOC"

_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8  # glibc's malloc.h
_TRIM_THRESHOLD_BYTES = 2**31 - 1  # the largest value mallopt takes (an int)


@functools.cache
def keep_freed_memory() -> bool:
    """Tune glibc ``malloc`` as the module docstring says (once per process); returns whether it applied."""
    if os.environ.get(SYSTEM_MALLOC_ENV) == "1":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES), (_M_ARENA_MAX, 1))
    return all(mallopt(option, value) == 1 for option, value in settings)
