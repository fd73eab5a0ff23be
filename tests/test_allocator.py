"""keep_freed_memory: after it, a large array freed and allocated again does not page-fault again."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest

from ebatch.runtime.allocator import keep_freed_memory

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc malloc only")


def _faults_touching(n_bytes: int) -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(n_bytes // 8)  # written: every page is touched
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_freed_block_is_reused_without_page_faults():
    assert keep_freed_memory() and keep_freed_memory()  # applies, once per process
    size = 96 << 20  # above glibc's largest mmap threshold (32 MiB): by default a fresh mmap every time
    _faults_touching(size)
    pages = size // resource.getpagesize()
    assert _faults_touching(size) < pages // 20  # the heap kept the block: (almost) no new pages


def test_the_environment_can_leave_malloc_alone():
    import subprocess
    import sys

    code = "from ebatch.runtime.allocator import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], env={"EBATCH_SYSTEM_MALLOC": "1", "PATH": ""},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
