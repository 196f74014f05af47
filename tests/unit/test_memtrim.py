"""memtrim gives freed C heap back to the kernel (glibc), and is harmless elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

from pulse import memtrim


def rss_kib() -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())
    assert match is not None
    return int(match.group(1))


def test_trim_returns_freed_heap_memory_to_the_kernel() -> None:
    # 20,000 blocks of 1 KiB come from the C heap (larger ones would be mmap'd);
    # freeing them leaves the pages resident until the heap is trimmed.
    blocks = [bytearray(1024) for _ in range(20_000)]
    for b in blocks:
        b[::512] = b"xx"  # touch the pages
    del blocks
    freed = rss_kib()
    assert memtrim.trim()
    assert rss_kib() < freed - 10_000  # about 20 MiB went back
