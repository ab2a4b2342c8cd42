"""
Server-wide counters, named after the memcached statistics they feed.
"""

from __future__ import annotations

import heapq


class ServerStats:
    """
    Counters of commands and connections.  Item counters live with the
    items, in L{myproto.store.StoreStats}.
    """

    __slots__ = (
        "currConnections",
        "totalConnections",
        "rejectedConnections",
        "cmdGet",
        "cmdSet",
        "cmdFlush",
        "cmdTouch",
        "cmdMeta",
        "getHits",
        "getMisses",
        "deleteHits",
        "deleteMisses",
        "incrHits",
        "incrMisses",
        "decrHits",
        "decrMisses",
        "casHits",
        "casMisses",
        "casBadval",
        "touchHits",
        "touchMisses",
        "storeTooLarge",
        "storeNoMemory",
        "authCmds",
        "authErrors",
        "idleKicks",
        "requestTimeouts",
        "bytesRead",
        "bytesWritten",
        "connYields",
    )

    currConnections: int
    totalConnections: int
    rejectedConnections: int
    cmdGet: int
    cmdSet: int
    cmdFlush: int
    cmdTouch: int
    cmdMeta: int
    getHits: int
    getMisses: int
    deleteHits: int
    deleteMisses: int
    incrHits: int
    incrMisses: int
    decrHits: int
    decrMisses: int
    casHits: int
    casMisses: int
    casBadval: int
    touchHits: int
    touchMisses: int
    storeTooLarge: int
    storeNoMemory: int
    authCmds: int
    authErrors: int
    idleKicks: int
    requestTimeouts: int
    bytesRead: int
    bytesWritten: int
    connYields: int

    # Gauges that "stats reset" leaves alone.
    _gauges = frozenset(["currConnections"])

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def reset(self) -> None:
        """
        Zero every counter, as C{stats reset} does, keeping gauges.
        """
        for name in self.__slots__:
            if name not in self._gauges:
                setattr(self, name, 0)


# memcached's prefix statistics ("stats detail"): keys are grouped by what
# comes before the first delimiter.  The dump lists prefixes in memcached's
# order: by murmur3 hash bucket, newest first within a bucket.
PREFIX_DELIMITER = 0x3A  # ":"
PREFIX_BUCKETS = 256

# Each distinct prefix costs memory; past this many, new ones are not counted.
MAX_PREFIXES = 100_000


def murmur3(data: bytes, seed: int = 0) -> int:
    """
    MurmurHash3, x86 32-bit variant: memcached's default key hash.

    @param data: the bytes to hash.
    @param seed: the initial state.
    @return: an unsigned 32-bit hash.
    """
    mask = 0xFFFFFFFF
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed
    whole = len(data) - len(data) % 4
    for start in range(0, whole, 4):
        k = int.from_bytes(data[start : start + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[whole:]
    if tail:
        k = int.from_bytes(tail, "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h


class PrefixStats:
    """
    Per-prefix counts of gets, hits, sets and deletes, kept only while
    C{stats detail on} is in force.

    @ivar enabled: whether commands record into it.
    @ivar delimiter: the byte that ends a prefix (memcached's C{-D}); a key
        without it is not counted.
    """

    def __init__(self, delimiter: int = PREFIX_DELIMITER) -> None:
        self.enabled = False
        self.delimiter = delimiter
        self._counts: dict[bytes, list[int]] = {}

    def _find(self, key: bytes) -> list[int] | None:
        end = key.find(self.delimiter)
        if end < 0:
            return None
        prefix = key[:end]
        counts = self._counts.get(prefix)
        if counts is None:
            if len(self._counts) >= MAX_PREFIXES:
                return None
            counts = self._counts[prefix] = [0, 0, 0, 0]
        return counts

    def recordGet(self, key: bytes, hit: bool) -> None:
        counts = self._find(key)
        if counts is not None:
            counts[0] += 1
            counts[1] += hit

    def recordSet(self, key: bytes) -> None:
        counts = self._find(key)
        if counts is not None:
            counts[2] += 1

    def recordDelete(self, key: bytes) -> None:
        counts = self._find(key)
        if counts is not None:
            counts[3] += 1

    def clear(self) -> None:
        self._counts.clear()

    def top(self, limit: int) -> list[tuple[bytes, list[int]]]:
        """
        @return: the C{limit} busiest prefixes (by gets and sets), each with
            its counts of gets, hits, sets and deletes.
        """
        busiest = heapq.nlargest(limit, self._counts.items(), key=lambda pair: pair[1][0] + pair[1][2])
        return [(prefix, list(counts)) for prefix, counts in busiest]

    def dump(self) -> list[bytes]:
        """
        @return: C{PREFIX} lines in memcached's order (no C{END}).
        """
        buckets: list[list[bytes]] = [[] for _ in range(PREFIX_BUCKETS)]
        for prefix, counts in self._counts.items():
            buckets[murmur3(prefix) % PREFIX_BUCKETS].insert(0, prefix)
        return [
            b"PREFIX %s get %d hit %d set %d del %d"
            % (prefix, counts[0], counts[1], counts[2], counts[3])
            for bucket in buckets
            for prefix in bucket
            for counts in [self._counts[prefix]]
        ]
