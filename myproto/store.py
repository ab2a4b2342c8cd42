"""
The cache itself: items with flags, expiry and CAS uniques, held within a
memory limit by least-recently-used eviction.

This module knows nothing about the network or Twisted.  Time comes from an
injected clock (anything with a C{seconds()} method, such as the reactor or
L{twisted.internet.task.Clock}), so tests can drive expiry deterministically.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from typing import Callable, Iterator, Mapping, Protocol

# memcached's per-item header on a 64-bit build.  Counting items the way
# memcached does keeps "bytes", "limit_maxbytes" and the largest storable
# value identical to the reference server.
ITEM_HEADER_SIZE = 48
CAS_SIZE = 8
FLAGS_SIZE = 4

# Expiry times handed to the store are absolute clock seconds; this one means
# "never".
NEVER = 0.0

# What a lookup found, in the words of memcached's C{watch fetchers} lines.
FOUND = "found"
NOT_FOUND = "not_found"
EXPIRED = "expired"


class IClock(Protocol):
    """
    The one thing the store needs from a clock.
    """

    def seconds(self) -> float:
        """
        @return: the current time in seconds since the epoch.
        """


class IItemObserver(Protocol):
    """
    Told about lookups and evictions while someone watches them (memcached's
    C{watch fetchers} and C{watch evictions}); see L{MemoryStore.observer}.
    """

    def itemFetched(self, key: bytes, outcome: str, item: Item | None) -> None:
        """
        A lookup, by a command or inside one, as memcached's C{do_item_get}
        logs it.

        @param key: the key looked up.
        @param outcome: L{FOUND}, L{NOT_FOUND} or L{EXPIRED}.
        @param item: the live item found, or L{None}.
        """

    def itemEvicted(self, item: Item) -> None:
        """
        A live item was evicted to make room.

        @param item: the item, already unlinked.
        """


def itemSize(keyLength: int, valueLength: int, flags: int, useCas: bool) -> int:
    """
    The memory an item is charged for, computed as memcached computes it.

    @param keyLength: the key's length in bytes.
    @param valueLength: the value's length in bytes, without its CRLF.
    @param flags: the client flags (nonzero flags take four more bytes).
    @param useCas: whether items carry an eight-byte CAS unique.
    @return: the item's size in bytes.
    """
    size = ITEM_HEADER_SIZE + keyLength + 1 + valueLength + 2
    if useCas:
        size += CAS_SIZE
    if flags:
        size += FLAGS_SIZE
    return size


# Bits of L{Item._metaBits}, which only meta commands set.  One small int
# holds all three (CPython shares ints up to 256); a slot each made every
# item 16 bytes larger.
_STALE = 1
_TOKEN_SENT = 2
_KEY_BINARY = 4


# The chunk sizes of memcached's slab classes: from the smallest chunk (an
# item header of 48 bytes plus C{-n}), each the last times C{-f}, aligned to
# 8 bytes, up to the 512 KiB largest chunk; C{me} reports the class an item
# would live in.
_SLAB_CHUNK_MAX = 512 * 1024
_ITEM_HEADER = 48


def slabSizes(factor: float = 1.25, minimum: int = 48) -> tuple[int, ...]:
    """
    @param factor: memcached's C{-f}, the growth factor.
    @param minimum: memcached's C{-n}, the smallest chunk for key, value
        and flags.
    @return: the chunk size of each slab class, as memcached 1.6.18 makes
        them (C{slabs_init}).
    """
    sizes = []
    size = _ITEM_HEADER + minimum
    while size < _SLAB_CHUNK_MAX / factor and len(sizes) < 62:
        size += -size % 8
        sizes.append(size)
        # memcached multiplies an unsigned int by a double and truncates.
        size = int(size * factor)
    sizes.append(_SLAB_CHUNK_MAX)
    return tuple(sizes)


SLAB_SIZES = slabSizes()


def slabClass(size: int, sizes: tuple[int, ...] = SLAB_SIZES) -> int:
    """
    @param size: an item's size, as L{itemSize} counts it.
    @param sizes: the classes' chunk sizes (L{slabSizes}).
    @return: the memcached slab class an item of that size goes in.
    """
    for index, chunk in enumerate(sizes):
        if size <= chunk:
            return index + 1
    return len(sizes)


class Item:
    """
    One cached value and what the store knows about it.

    Every stored item pays for this object, so the booleans only meta
    commands use share one slot.  C{fetched}, which every get sets, keeps
    its own: a plain slot is the cheapest to write, and in CPython ten slots
    take no more memory than nine.

    @ivar key: the key it is stored under.
    @ivar value: the data, exactly as the client sent it.
    @ivar flags: the client's opaque 32-bit flags.
    @ivar expires: absolute expiry time in clock seconds, or L{NEVER}.
    @ivar cas: the CAS unique of this version (0 when CAS is disabled).
    @ivar size: the bytes this item is charged for.
    @ivar fetched: whether a client has read it since it was stored.
    @ivar lastAccess: clock seconds of the last store or fetch.  The store
        records the start of the whole second it happened in (see
        L{MemoryStore}), as memcached does, so that items used in the same
        second share one float.
    @ivar replyWindow: the reply window of the last reply that showed it
        (see L{myproto.cache.Cache.newReplyWindow}), or 0.
    """

    __slots__ = (
        "key",
        "value",
        "flags",
        "expires",
        "cas",
        "size",
        "fetched",
        "lastAccess",
        "replyWindow",
        "_metaBits",
    )

    def __init__(
        self, key: bytes, value: bytes, flags: int, expires: float, cas: int, size: int, now: float
    ) -> None:
        self.key = key
        self.value = value
        self.flags = flags
        self.expires = expires
        self.cas = cas
        self.size = size
        self.fetched = False
        self.lastAccess = now
        self.replyWindow = 0
        self._metaBits = 0

    def __lt__(self, other: Item) -> bool:
        # Expiry heap entries are (expires, cas, item), so this only breaks
        # ties of both (CAS disabled): such items may leave in any order.
        return False

    @property
    def stale(self) -> bool:
        """
        Whether a meta delete or meta set marked it stale (C{I}).
        """
        return bool(self._metaBits & _STALE)

    @stale.setter
    def stale(self, value: bool) -> None:
        self._setBit(_STALE, value)

    @property
    def tokenSent(self) -> bool:
        """
        Whether a meta get has handed out its recache token.
        """
        return bool(self._metaBits & _TOKEN_SENT)

    @tokenSent.setter
    def tokenSent(self, value: bool) -> None:
        self._setBit(_TOKEN_SENT, value)

    @property
    def keyBinary(self) -> bool:
        """
        Whether a meta set stored it under a base64 key (C{b}), so that meta
        replies return the key in base64.
        """
        return bool(self._metaBits & _KEY_BINARY)

    @keyBinary.setter
    def keyBinary(self, value: bool) -> None:
        self._setBit(_KEY_BINARY, value)

    def _setBit(self, bit: int, value: bool) -> None:
        if value:
            self._metaBits |= bit
        else:
            self._metaBits &= ~bit


class StoreStats:
    """
    Item-level counters, with memcached's meanings.
    """

    __slots__ = (
        "totalItems",
        "evictions",
        "evictedUnfetched",
        "evictedNonzero",
        "evictedTime",
        "reclaimed",
        "expiredUnfetched",
        "getExpired",
        "getFlushed",
        "outOfMemory",
    )

    totalItems: int
    evictions: int
    evictedUnfetched: int
    evictedNonzero: int
    # Seconds the last evicted item had gone unused.
    evictedTime: int
    reclaimed: int
    expiredUnfetched: int
    getExpired: int
    getFlushed: int
    outOfMemory: int

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """
        Set every counter back to zero.
        """
        for name in self.__slots__:
            setattr(self, name, 0)

    def countReclaimed(self, item: Item) -> None:
        """
        Count an expired item whose memory was taken back.
        """
        self.reclaimed += 1
        if not item.fetched:
            self.expiredUnfetched += 1


class ExpiryHeap:
    """
    When items expire, earliest first, so that L{MemoryStore.sweepExpired}
    frees items nobody asks for again without scanning the whole cache.

    An entry is not taken out when its item is replaced, deleted or given a
    new expiry time, which would cost a heap search; it is skipped when it
    comes up, and such entries are dropped in one pass once they outnumber
    the items held.
    """

    def __init__(self, items: Mapping[bytes, Item]) -> None:
        # The store's items: an entry is current if its item is still there.
        self._items = items
        self._heap: list[tuple[float, int, Item]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, item: Item) -> None:
        """
        Note the expiry time of a held item that has one.
        """
        heap = self._heap
        items = self._items
        if len(heap) > 2 * len(items) + 1024:
            heap[:] = [
                entry
                for entry in heap
                if entry[2].expires == entry[0] and items.get(entry[2].key) is entry[2]
            ]
            heapq.heapify(heap)
        # The CAS unique, which the item holds anyway, orders entries due at
        # the same moment; a serial number would cost an int per entry.
        heapq.heappush(heap, (item.expires, item.cas, item))

    def sweep(self, now: float, budget: int, reclaim: Callable[[Item], None]) -> int:
        """
        Take out up to C{budget} entries due by C{now}, earliest first, and
        C{reclaim} the items still held with that expiry time.

        @return: how many items were reclaimed.
        """
        removed = 0
        heap = self._heap
        items = self._items
        while heap and budget > 0 and heap[0][0] <= now:
            expires, _, item = heapq.heappop(heap)
            budget -= 1
            # Checked entry by entry: an item touched twice to the same time
            # has two entries, and the first reclaims it.
            if item.expires == expires and items.get(item.key) is item:
                reclaim(item)
                removed += 1
        return removed

    def clear(self) -> None:
        """
        Forget every entry, as when the store is flushed.
        """
        del self._heap[:]


class MemoryStore:
    """
    An in-memory cache with memcached's item semantics.

    Lookups and updates are O(1).  The LRU order is an L{OrderedDict} from key
    to L{Item}, least recently used first.  Items with an expiry time are also
    noted in an L{ExpiryHeap}, for L{sweepExpired}.

    Last-access times are whole seconds counted from L{startedAt}, as
    memcached's are: items used within the same second share one float
    rather than holding one each.

    @ivar startedAt: clock seconds when the store was made.
    @ivar maxBytes: the memory limit, in the bytes L{itemSize} counts.
    @ivar maxItemSize: the largest single item, in the same bytes.
    @ivar useCas: whether new items get CAS uniques.
    @ivar bytes: the bytes currently held.
    @ivar stats: the item-level counters.
    @ivar observer: told about every lookup and eviction while it is set;
        L{None} (the usual case) costs one attribute check per lookup.
    """

    def __init__(
        self,
        clock: IClock,
        maxBytes: int = 64 * 1024 * 1024,
        maxItemSize: int = 1024 * 1024,
        useCas: bool = True,
    ) -> None:
        # Bound once: get and put read the clock on every call.
        self._seconds = clock.seconds
        self.startedAt = clock.seconds()
        # The current whole second [_second, _secondEnds) of the store's
        # clock; _second is what items used in it record as their last
        # access.
        self._second = self.startedAt
        self._secondEnds = self.startedAt + 1
        self._restoredAccess = 0.0
        self.maxBytes = maxBytes
        self.maxItemSize = maxItemSize
        self.useCas = useCas
        self.bytes = 0
        self.stats = StoreStats()
        self._items: OrderedDict[bytes, Item] = OrderedDict()
        self._expiries = ExpiryHeap(self._items)
        self._lastCas = 0
        self._flushAt: float | None = None
        self.observer: IItemObserver | None = None

    # Reading

    def now(self) -> float:
        """
        @return: the store's current time, in clock seconds.
        """
        return self._seconds()

    def __len__(self) -> int:
        self._applyPendingFlush(self._seconds())
        return len(self._items)

    def get(self, key: bytes, touch: bool = True) -> Item | None:
        """
        Find a live item.

        An expired item found on the way is removed, as memcached does.

        @param key: the key to look up.
        @param touch: whether this counts as a use (moves the item to the
            most-recently-used end and marks it fetched).
        @return: the item, or L{None} when there is no live item.
        """
        now = self._seconds()
        if self._flushAt is not None:
            self._applyPendingFlush(now)
        item = self._items.get(key)
        if item is None:
            if self.observer is not None:
                self.observer.itemFetched(key, NOT_FOUND, None)
            return None
        if item.expires and item.expires <= now:
            self.stats.getExpired += 1
            self._reclaim(item)
            if self.observer is not None:
                self.observer.itemFetched(key, EXPIRED, None)
            return None
        if touch:
            second = self._second
            if not second <= now < self._secondEnds:
                second = self._newSecond(now)
            item.fetched = True
            item.lastAccess = second
            self._items.move_to_end(key)
        if self.observer is not None:
            self.observer.itemFetched(key, FOUND, item)
        return item

    def peek(self, key: bytes) -> Item | None:
        """
        Find a live item without counting it as used.

        @param key: the key to look up.
        @return: the item, or L{None}.
        """
        return self.get(key, touch=False)

    def items(self) -> Iterator[Item]:
        """
        @return: the live items, least recently used first.
        """
        now = self._seconds()
        self._applyPendingFlush(now)
        for item in list(self._items.values()):
            if not (item.expires and item.expires <= now):
                yield item

    # Writing

    def fits(self, key: bytes, valueLength: int, flags: int) -> bool:
        """
        Whether an item of this shape is within the item size limit.

        @param key: the key.
        @param valueLength: the value's length in bytes.
        @param flags: the client flags.
        @return: L{True} if it may be stored.
        """
        return itemSize(len(key), valueLength, flags, self.useCas) <= self.maxItemSize

    def nextCas(self) -> int:
        """
        Allocate a CAS unique, as memcached does for every new version of an
        item (and for an in-place increment).

        @return: a value never returned before by this store, or 0 when CAS
            is disabled.
        """
        if not self.useCas:
            return 0
        self._lastCas += 1
        return self._lastCas

    def put(self, key: bytes, value: bytes, flags: int, expires: float) -> Item | None:
        """
        Store a new version of an item, replacing any old one.

        @param key: the key.
        @param value: the data.
        @param flags: the client flags.
        @param expires: absolute expiry in clock seconds, or L{NEVER}.
        @return: the stored item, or L{None} if it is larger than the memory
            limit allows even with everything else evicted.
        """
        now = self._seconds()
        if self._flushAt is not None:
            self._applyPendingFlush(now)
        size = itemSize(len(key), len(value), flags, self.useCas)
        if size > self.maxItemSize or size > self.maxBytes:
            self.stats.outOfMemory += 1
            return None
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        second = self._second
        if not second <= now < self._secondEnds:
            second = self._newSecond(now)
        item = Item(key, value, flags, expires, self.nextCas(), size, second)
        self._makeRoom(size, now)
        self._items[key] = item
        self.bytes += size
        self.stats.totalItems += 1
        if expires:
            self._expiries.add(item)
        return item

    def restore(
        self, key: bytes, value: bytes, flags: int, expires: float, cas: int, lastAccess: float
    ) -> Item | None:
        """
        Put back an item saved earlier, keeping its CAS unique and the time
        it was last used; later CAS uniques are larger than every restored
        one.  Restoring items least recently used first rebuilds the LRU.

        @return: the item, or L{None} if it does not fit.
        """
        item = self.put(key, value, flags, expires)
        if item is not None:
            # Items saved least recently used first often share a time: let
            # them share the float too.
            if lastAccess == self._restoredAccess:
                lastAccess = self._restoredAccess
            self._restoredAccess = item.lastAccess = lastAccess
            if self.useCas:
                item.cas = cas
                self._lastCas = max(self._lastCas, cas)
        return item

    def find(self, key: bytes) -> Item | None:
        """
        Look at a live item with no side effects at all: no LRU move, no
        reclaiming, no counters.  For readers outside the request path, such
        as snapshots.

        @return: the item, or L{None} if absent or expired.
        """
        item = self._items.get(key)
        if item is None:
            return None
        if item.expires and item.expires <= self._seconds():
            return None
        if self._flushAt is not None and self._flushAt <= self._seconds():
            return None
        return item

    def allItems(self) -> list[Item]:
        """
        A copy of the item references held (live or not yet reclaimed), in
        no particular order.  Cheap even for a large store: it reads the
        mapping's own table, not the LRU links, which cost a lookup per item
        (measured: 17 against 470 milliseconds for 500,000 items).
        """
        self._applyPendingFlush(self._seconds())
        return list(dict.values(self._items))

    def keys(self) -> list[bytes]:
        """
        @return: a copy of the keys held (live or not yet reclaimed), least
            recently used first.
        """
        self._applyPendingFlush(self._seconds())
        return list(self._items)

    def touch(self, item: Item, expires: float) -> None:
        """
        Give a live item a new expiry time.

        @param item: an item returned by L{get}.
        @param expires: absolute expiry in clock seconds, or L{NEVER}.
        """
        item.expires = expires
        if expires:
            self._expiries.add(item)

    def updateInPlace(self, item: Item, value: bytes) -> None:
        """
        Overwrite a live item's value with one no longer than the old, keeping
        its size and giving it a new CAS unique (memcached's in-place incr).

        @param item: an item returned by L{get}.
        @param value: the new data, at most as long as the old.
        """
        item.value = value
        item.cas = self.nextCas()

    def delete(self, key: bytes) -> bool:
        """
        Remove a live item.

        @param key: the key.
        @return: L{True} if a live item was removed.
        """
        item = self.peek(key)
        if item is None:
            return False
        self.remove(item)
        return True

    def remove(self, item: Item) -> None:
        """
        Remove an item just found, without looking it up again.

        @param item: a live item returned by L{get} or L{peek}.
        """
        del self._items[item.key]
        self.bytes -= item.size

    def flush(self, delay: float = 0) -> None:
        """
        Invalidate every item, now or after C{delay} seconds.

        A later flush replaces a pending one, as in memcached.

        @param delay: seconds from now; zero or less means immediately.
        """
        now = self._seconds()
        self._flushAt = now + max(delay, 0)
        self._applyPendingFlush(now)

    def setMemoryLimit(self, maxBytes: int) -> None:
        """
        Change the memory limit, evicting at once if the store is over it.

        @param maxBytes: the new limit.
        """
        self.maxBytes = maxBytes
        self._makeRoom(0, self._seconds())

    # Housekeeping

    def sweepExpired(self, budget: int = 10000) -> int:
        """
        Remove items whose time has passed, earliest first; called
        periodically, with C{budget} bounding the work of one call.

        @param budget: the most expiry entries to examine.
        @return: how many items were removed.
        """
        now = self._seconds()
        self._applyPendingFlush(now)
        return self._expiries.sweep(now, budget, self._reclaim)

    def _newSecond(self, now: float) -> float:
        """
        Move the store's coarse clock to the whole second holding C{now}.

        @return: the start of that second, in clock seconds.
        """
        second = self.startedAt + math.floor(now - self.startedAt)
        self._second = second
        self._secondEnds = second + 1
        return second

    def _applyPendingFlush(self, now: float) -> None:
        if self._flushAt is not None and self._flushAt <= now:
            self._flushAt = None
            self._items.clear()
            self._expiries.clear()
            self.bytes = 0

    def _makeRoom(self, size: int, now: float) -> None:
        items = self._items
        while items and self.bytes + size > self.maxBytes:
            _, victim = items.popitem(last=False)
            self.bytes -= victim.size
            if victim.expires and victim.expires <= now:
                self.stats.countReclaimed(victim)
                continue
            # Counted here, not by a call: a full store evicts on every put.
            self.stats.evictions += 1
            self.stats.evictedTime = int(now - victim.lastAccess)
            if victim.expires:
                self.stats.evictedNonzero += 1
            if not victim.fetched:
                self.stats.evictedUnfetched += 1
            if self.observer is not None:
                self.observer.itemEvicted(victim)

    def _reclaim(self, item: Item) -> None:
        self.remove(item)
        self.stats.countReclaimed(item)
