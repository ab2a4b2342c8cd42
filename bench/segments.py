"""
A prototype of the store issue 18 proposes, against myproto's MemoryStore:
items appended to 1 MiB C{bytearray} segments (header, key and value in
one record, Segcache's layout), found through an open-addressing index held
in two C{array}s (no Python object per item), evicted a whole segment at a
time, oldest first.  Only C{put} and C{get}, enough to measure what such a
store costs in memory per item and in CPU per operation, on whichever
interpreter runs this script:

    python bench/segments.py             # CPython
    pypy3 bench/segments.py              # PyPy (needs only the stdlib)

Memory is the growth of the process's RSS while 200,000 items of 100 bytes
under 16-byte keys are stored (as bench/run.py's workload (f)); CPU is the
process time of 200,000 puts and 1,000,000 gets (random keys, all hits),
best of three.  Nothing here is used by the server.
"""

from __future__ import annotations

import gc
import random
import struct
import subprocess
import sys
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SEGMENT = 1 << 20
# flags, expiry, CAS, key length, value length.
HEADER = struct.Struct("<IIQBI")
EMPTY = -1
DELETED = -2


class SegmentStore:
    """
    Records in segments, an index of (segment << 32 | offset) in an array.
    """

    def __init__(self, maxBytes: int) -> None:
        self.maxSegments = max(2, maxBytes // SEGMENT)
        self.segments: dict[int, bytearray] = {}
        self.first = 0
        self.current = 0
        # Each segment is allocated whole: grown by appending, a bytearray
        # over-allocates (by half again on PyPy).
        self.segments[0] = bytearray(SEGMENT)
        self.fill = 0
        self.count = 0
        self.cas = 0
        self._resize(1 << 10)

    def _resize(self, size: int) -> None:
        old = list(zip(getattr(self, "slots", []), getattr(self, "hashes", [])))
        self.slots = array("q", [EMPTY]) * size
        self.hashes = array("q", [0]) * size
        self.mask = size - 1
        self.used = 0
        for location, hashed in old:
            if location >= 0:
                self._place(hashed, location)

    def _place(self, hashed: int, location: int) -> None:
        slots = self.slots
        index = hashed & self.mask
        while slots[index] >= 0:
            index = (index + 1) & self.mask
        slots[index] = location
        self.hashes[index] = hashed
        self.used += 1

    def _find(self, key: bytes, hashed: int) -> int:
        slots = self.slots
        hashes = self.hashes
        mask = self.mask
        index = hashed & mask
        while True:
            location = slots[index]
            if location == EMPTY:
                return -1
            if location >= 0 and hashes[index] == hashed:
                segment = self.segments[location >> 32]
                offset = location & 0xFFFFFFFF
                if segment[offset + 16] == len(key) and segment.startswith(key, offset + HEADER.size):
                    return index
            index = (index + 1) & mask

    def get(self, key: bytes) -> tuple[int, bytes] | None:
        index = self._find(key, hash(key))
        if index < 0:
            return None
        location = self.slots[index]
        segment = self.segments[location >> 32]
        offset = location & 0xFFFFFFFF
        flags, expires, cas, keyLength, valueLength = HEADER.unpack_from(segment, offset)
        start = offset + HEADER.size + keyLength
        return flags, bytes(segment[start : start + valueLength])

    def put(self, key: bytes, value: bytes, flags: int) -> None:
        hashed = hash(key)
        index = self._find(key, hashed)
        if index >= 0:
            self.slots[index] = DELETED
            self.count -= 1
        segment = self.segments[self.current]
        offset = self.fill
        end = offset + HEADER.size + len(key) + len(value)
        if end > SEGMENT:
            self.current += 1
            segment = self.segments[self.current] = bytearray(SEGMENT)
            offset = 0
            end = HEADER.size + len(key) + len(value)
            if len(self.segments) > self.maxSegments:
                self._evictSegment()
        self.cas += 1
        location = self.current << 32 | offset
        HEADER.pack_into(segment, offset, flags, 0, self.cas, len(key), len(value))
        start = offset + HEADER.size
        segment[start : start + len(key)] = key
        segment[start + len(key) : end] = value
        self.fill = end
        if (self.used + 1) * 4 > (self.mask + 1) * 3:
            self._resize((self.mask + 1) * 2)
        self._place(hashed, location)
        self.count += 1

    def _evictSegment(self) -> None:
        segment = self.segments.pop(self.first)
        offset = 0
        while offset + HEADER.size <= len(segment):
            _, _, _, keyLength, valueLength = HEADER.unpack_from(segment, offset)
            if keyLength == 0:
                break
            start = offset + HEADER.size
            key = bytes(segment[start : start + keyLength])
            index = self._find(key, hash(key))
            if index >= 0 and self.slots[index] >> 32 == self.first:
                self.slots[index] = DELETED
                self.count -= 1
            offset = start + keyLength + valueLength
        self.first += 1


def rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def measure(name: str, make, put, get, count: int = 200_000, gets: int = 1_000_000) -> None:
    gc.collect()
    before = rss()
    store = make()
    start = time.process_time()
    # Keys and values made as they come off the wire: only the store keeps
    # them.  Each value differs: PyPy's JIT may share equal constant ones.
    for index in range(count):
        put(store, b"key:%012d" % (index,), (b"%d" % (index,)).ljust(100, b"v"))
    putTime = time.process_time() - start
    gc.collect()
    grown = rss() - before
    order = [b"key:%012d" % (random.randrange(count),) for _ in range(gets)]
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for key in order:
            get(store, key)
        best = min(best, time.process_time() - start)
    print(
        "| {} | {} | {:.0f} | {:.2f} | {:.2f} |".format(
            sys.implementation.name, name, grown / count, putTime / count * 1e6, best / gets * 1e6
        ),
        flush=True,
    )


def main() -> None:
    from twisted.internet.task import Clock

    from myproto.store import MemoryStore

    # One store per process: a garbage-collected heap (PyPy's) keeps what
    # the first one freed for the second.
    if sys.argv[1:] == ["segments"]:
        measure(
            "segments",
            lambda: SegmentStore(1 << 30),
            lambda store, key, value: store.put(key, value, 0),
            lambda store, key: store.get(key),
        )
    elif sys.argv[1:] == ["store"]:
        measure(
            "MemoryStore",
            lambda: MemoryStore(Clock(), maxBytes=1 << 30),
            lambda store, key, value: store.put(key, value, 0, 0.0),
            lambda store, key: store.get(key),
        )
    else:
        print("| interpreter | store | RSS B/item | put µs | get µs |")
        print("| --- | --- | --- | --- | --- |", flush=True)
        for which in ("segments", "store"):
            subprocess.run([sys.executable, __file__, which], check=True)


if __name__ == "__main__":
    main()
