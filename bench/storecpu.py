"""
CPU time of MemoryStore's get and put on their own, in-process: 100-byte
values under 16-byte keys, best of five rounds of process time, µs a call.

    python bench/storecpu.py                 # this checkout
    python bench/storecpu.py OTHER_CHECKOUT  # another one's myproto

For instruction counts, which a shared machine does not disturb, run one
kind of call 20,000 times under callgrind, and again with C{none} (the
set-up alone); the difference over 20,000 is instructions a call:

    valgrind --tool=callgrind python bench/storecpu.py --count get [CHECKOUT]

Puts are timed three ways: new keys into a store with room, new keys into a
full store (one eviction each), and keys already held (one replacement
each).  Gets: hits on random held keys, and misses.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

_ARGS = sys.argv[3:] if sys.argv[1:2] == ["--count"] else sys.argv[1:]
sys.path.insert(0, _ARGS[0] if _ARGS else str(Path(__file__).resolve().parent.parent))

from twisted.internet.task import Clock  # noqa: E402

from myproto.store import MemoryStore  # noqa: E402

COUNT = 100_000
ROUNDS = 5


def timed(calls: int, run) -> float:
    start = time.process_time()
    run()
    return (time.process_time() - start) / calls * 1e6


def main() -> None:
    keys = [b"key:%012d" % (index,) for index in range(4 * COUNT)]
    value = bytes(100)
    best: dict[str, float] = {}

    def note(name: str, microseconds: float) -> None:
        best[name] = min(best.get(name, microseconds), microseconds)

    for _ in range(ROUNDS):
        clock = Clock()
        clock.advance(1e9)
        store = MemoryStore(clock, maxBytes=1 << 40)
        note("put, new key, no eviction", timed(4 * COUNT, lambda: [store.put(key, value, 0, 0.0) for key in keys]))
        note("put, replacing a key", timed(4 * COUNT, lambda: [store.put(key, value, 0, 0.0) for key in keys]))
        hits = [random.choice(keys) for _ in range(300_000)]
        note("get, hit", timed(len(hits), lambda: [store.get(key) for key in hits]))
        misses = [b"x" + key for key in hits[:100_000]]
        note("get, miss", timed(len(misses), lambda: [store.get(key) for key in misses]))
        full = MemoryStore(clock, maxBytes=1 << 40)
        for key in keys[:COUNT]:
            full.put(key, value, 0, 0.0)
        # Full at COUNT items, whichever way the store counts them.
        full.setMemoryLimit(getattr(full, "cost", full.bytes))
        note("put, evicting one item", timed(3 * COUNT, lambda: [full.put(key, value, 0, 0.0) for key in keys[COUNT:]]))
    for name in ("get, hit", "get, miss", "put, new key, no eviction", "put, replacing a key", "put, evicting one item"):
        print("| {} | {:.2f} |".format(name, best[name]))


def count(kind: str, calls: int = 20_000) -> None:
    """
    Make a store of 20,000 items, then make C{calls} calls of one C{kind}:
    C{get}, C{replace}, C{new}, C{evict} (a new key into the full store) or
    C{none}.
    """
    clock = Clock()
    clock.advance(1e9)
    store = MemoryStore(clock, maxBytes=1 << 40)
    keys = [b"key:%012d" % (index,) for index in range(20_000)]
    value = bytes(100)
    for key in keys:
        store.put(key, value, 0, 0.0)
    if kind == "evict":
        store.setMemoryLimit(getattr(store, "cost", store.bytes))
    new = [b"new:%012d" % (index,) for index in range(calls)]
    held = [keys[index * 7919 % len(keys)] for index in range(calls)]
    if kind == "get":
        for key in held:
            store.get(key)
    elif kind == "replace":
        for key in held:
            store.put(key, value, 0, 0.0)
    elif kind in ("new", "evict"):
        for key in new:
            store.put(key, value, 0, 0.0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--count"]:
        count(sys.argv[2])
    else:
        main()
