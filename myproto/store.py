"""
The cache itself: items with flags, expiry and CAS uniques, held within a
memory limit by least-recently-used eviction.

This module knows nothing about the network or Twisted.  Time comes from an
injected clock (anything with a C{seconds()} method, such as the reactor or
L{twisted.internet.task.Clock}), so tests can drive expiry deterministically.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator, Protocol

from myproto.item import (
    ACTIVE,
    CAS_SIZE,
    FETCHED,
    FLAGS_SIZE,
    ITEM_HEADER_SIZE,
    SLAB_SIZES,
    Item,
    itemCost,
    itemSize,
    slabClass,
    slabSizes,
)
from myproto.lru import ClockHand, ExpiryBuckets, allowance

# What itemSize counts besides the key, the value and the optional fields:
# the header, the key's terminator and the value's CRLF.
_HEADER_AND_ENDS = ITEM_HEADER_SIZE + 1 + 2

__all__ = [
    "CAS_SIZE",
    "EXPIRED",
    "FLAGS_SIZE",
    "FOUND",
    "ITEM_HEADER_SIZE",
    "NEVER",
    "NOT_FOUND",
    "SLAB_SIZES",
    "IClock",
    "IItemObserver",
    "Item",
    "MemoryStore",
    "StoreStats",
    "itemCost",
    "itemSize",
    "slabClass",
    "slabSizes",
]

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


class MemoryLimit:
    """
    What a store's items cost against its limit, and eviction to keep them
    within it: the part of L{MemoryStore} that counts.

    Two totals are kept: L{bytes}, memcached's count (L{itemSize}), which
    C{stats} reports, and L{cost}, what the items take from this process's
    memory (L{itemCost}), which eviction keeps within L{maxBytes}.

    @ivar maxBytes: the memory limit, in the bytes L{itemCost} counts
        (with a slack of 1/1024: see L{myproto.lru.allowance}).
    @ivar evictions: whether live items are evicted to make room; without,
        a store that only expired items could make room for fails (C{-M}).
    @ivar bytes: the bytes currently held, as memcached counts them.
    @ivar cost: the memory the items currently held take.
    """

    # Set by MemoryStore.__init__.
    _items: dict[bytes, Item]
    _hand: ClockHand
    _expiries: ExpiryBuckets
    _seconds: Callable[[], float]
    _budget: int
    stats: StoreStats
    observer: IItemObserver | None
    maxBytes: int
    evictions: bool
    bytes: int
    cost: int

    def setMemoryLimit(self, maxBytes: int) -> None:
        """
        Change the memory limit, evicting at once if the store is over it.

        @param maxBytes: the new limit.
        """
        self.maxBytes = maxBytes
        self._budget = allowance(maxBytes)
        self._makeRoom(0, self._seconds())

    def remove(self, item: Item) -> None:
        """
        Remove an item just found, without looking it up again.

        @param item: a live item returned by L{get} or L{peek}.
        """
        del self._items[item.key]
        self._uncount(item)

    def _uncount(self, item: Item) -> None:
        # Item.size (itemSize inlined) and Item.cost without property calls:
        # a full store does this on every put.
        keyLength = len(item.key)
        valueLength = len(item.value)
        size = _HEADER_AND_ENDS + keyLength + valueLength
        if item.cas:
            size += CAS_SIZE
        if item.flags:
            size += FLAGS_SIZE
        self.bytes -= size
        self.cost -= itemCost(keyLength, valueLength, item.expires)

    def _makeRoom(self, cost: int, now: float) -> bool:
        """
        Evict until an item costing C{cost} fits.

        @return: whether it fits now.
        """
        # Items the hand has taken but not reached stay in memory even if
        # deleted meanwhile: take about 1/256 of the limit's worth, which
        # also bounds the emptied slots each stretch skips to about 256
        # an eviction, whatever the items' size.
        stretch = (self.maxBytes >> 8) * len(self._items) // (self.cost or 1) + 1
        while self.cost + cost > self._budget:
            if not self.evictions:
                # memcached -M: expired items still make room, live ones
                # never do.
                if not self._expiries.sweep(now, 1000, self._reclaim):
                    return False
                continue
            victim = self._hand.victim(stretch)
            if victim is None:
                return False
            if victim.expires and victim.expires <= now:
                self._reclaim(victim)
                continue
            self.remove(victim)
            stats = self.stats
            stats.evictions += 1
            stats.evictedTime = int(now - victim.lastAccess)
            if victim.expires:
                stats.evictedNonzero += 1
            if not victim.marks & FETCHED:
                stats.evictedUnfetched += 1
            if self.observer is not None:
                self.observer.itemEvicted(victim)
        return True

    def _reclaim(self, item: Item) -> None:
        self.remove(item)
        self.stats.countReclaimed(item)


class MemoryStore(MemoryLimit):
    """
    An in-memory cache with memcached's item semantics.

    Lookups and updates are O(1).  Items live in a plain L{dict}, in the
    order they were stored: that order is the LRU, approximated as
    memcached's is.  A fetch marks an item L{ACTIVE} instead of moving it
    (an L{collections.OrderedDict} link cost 48 bytes an item), and the
    L{ClockHand} gives such items a second chance.  Items with an expiry
    time are also noted in L{ExpiryBuckets}, for L{sweepExpired}.

    Last-access times are whole seconds counted from L{startedAt}, as
    memcached's are: items used within the same second share one float
    rather than holding one each.

    @ivar startedAt: clock seconds when the store was made.
    @ivar maxItemSize: the largest single item, in the bytes L{itemSize}
        counts.
    @ivar useCas: whether new items get CAS uniques.
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
        evictions: bool = True,
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
        self._budget = allowance(maxBytes)
        self.maxItemSize = maxItemSize
        self.useCas = useCas
        self.evictions = evictions
        self.bytes = 0
        self.cost = 0
        self.stats = StoreStats()
        self._items: dict[bytes, Item] = {}
        self._hand = ClockHand(self._items)
        self._expiries = ExpiryBuckets(self._items)
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
        @param touch: whether this counts as a use (marks the item fetched,
            or active if it was, and records the access time).
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
            # As memcached's do_item_bump: the first fetch marks the item
            # fetched, later ones active.
            marks = item.marks
            item.marks = marks | ACTIVE if marks & FETCHED else marks | FETCHED
            item.lastAccess = second
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
            limit allows even with everything else evicted, or if there is
            no room and evictions are off.
        """
        now = self._seconds()
        if self._flushAt is not None:
            self._applyPendingFlush(now)
        keyLength = len(key)
        valueLength = len(value)
        # itemSize, inlined: every set comes here.
        size = _HEADER_AND_ENDS + keyLength + valueLength
        if self.useCas:
            size += CAS_SIZE
        if flags:
            size += FLAGS_SIZE
        cost = itemCost(keyLength, valueLength, expires)
        if size > self.maxItemSize or cost > self._budget:
            self.stats.outOfMemory += 1
            return None
        items = self._items
        old = items.pop(key, None)
        if old is not None:
            if (
                len(old.value) == valueLength
                and (old.flags == 0) == (flags == 0)
                and (old.expires == 0) == (expires == 0)
                and (old.cas == 0) != self.useCas
            ):
                # The usual replacement, a value of the same length: the
                # same size and cost as the new item, without computing them.
                self.bytes -= size
                self.cost -= cost
            else:
                self._uncount(old)
        if self.cost + cost > self._budget and not self._makeRoom(cost, now):
            self.stats.outOfMemory += 1
            return None
        second = self._second
        if not second <= now < self._secondEnds:
            second = self._newSecond(now)
        if self.useCas:
            self._lastCas += 1
        item = Item(key, value, flags, expires, self._lastCas if self.useCas else 0, second)
        items[key] = item
        self.bytes += size
        self.cost += cost
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
            # A unique of 0 (saved with CAS off) would change the item's
            # size as counted: keep the fresh one.
            if self.useCas and cas:
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
        LRU order.
        """
        self._applyPendingFlush(self._seconds())
        return list(self._items.values())

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
        # Having an expiry time or not changes what the item costs.
        self.cost -= item.cost
        item.expires = expires
        self.cost += item.cost
        if expires:
            self._expiries.add(item)

    def updateInPlace(self, item: Item, value: bytes) -> None:
        """
        Overwrite a live item's value with one of the same length, giving
        it a new CAS unique (memcached's in-place incr).

        @param item: an item returned by L{get}.
        @param value: the new data, as long as the old.
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

    def flush(self, delay: float = 0) -> None:
        """
        Invalidate every item, now or after C{delay} seconds.

        A later flush replaces a pending one, as in memcached.

        @param delay: seconds from now; zero or less means immediately.
        """
        now = self._seconds()
        self._flushAt = now + max(delay, 0)
        self._applyPendingFlush(now)

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
            self._hand.clear()
            self.bytes = 0
            self.cost = 0
