"""
The store's housekeeping structures: when items expire, and which item to
evict next.  Neither holds a Python object per item beyond a list slot, so
that what an item costs stays what L{myproto.item.itemCost} counts.
"""

from __future__ import annotations

import heapq
import math
from itertools import islice
from typing import Callable, Mapping

from myproto.item import ACTIVE, Item


class ExpiryBuckets:
    """
    When items expire, by the whole second, so that
    L{MemoryStore.sweepExpired} frees items nobody asks for again without
    scanning the whole cache.

    An item is appended to the list of the second its expiry time rounds up
    to: one list slot per item, where a heap of C{(time, item)} entries cost
    a tuple each (64 bytes in CPython).  An entry is not taken out when its
    item is replaced, deleted or given a new expiry time, which would cost a
    search; it is skipped when its second comes, and such entries are
    dropped in one pass once they outnumber the items held.
    """

    def __init__(self, items: Mapping[bytes, Item]) -> None:
        # The store's items: an entry is current if its item is still there.
        self._items = items
        self._buckets: dict[int, list[Item]] = {}
        # The seconds that have a bucket, as a heap: earliest first.
        self._due: list[int] = []
        self._entries = 0

    def __len__(self) -> int:
        return self._entries

    def add(self, item: Item) -> None:
        """
        Note the expiry time of a held item that has one.
        """
        if self._entries > 2 * len(self._items) + 1024:
            self._compact()
        second = math.ceil(item.expires)
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = []
            heapq.heappush(self._due, second)
        bucket.append(item)
        self._entries += 1

    def _compact(self) -> None:
        items = self._items
        kept = 0
        for second, bucket in self._buckets.items():
            bucket[:] = [
                item
                for item in bucket
                if item.expires and math.ceil(item.expires) == second and items.get(item.key) is item
            ]
            kept += len(bucket)
        self._entries = kept

    def sweep(self, now: float, budget: int, reclaim: Callable[[Item], None]) -> int:
        """
        Take out up to C{budget} entries whose second has come by C{now},
        earliest second first, and C{reclaim} the items still held that
        have expired.

        @return: how many items were reclaimed.
        """
        removed = 0
        due = self._due
        items = self._items
        while due and budget > 0 and due[0] <= now:
            bucket = self._buckets[due[0]]
            while bucket and budget > 0:
                item = bucket.pop()
                budget -= 1
                self._entries -= 1
                # An item touched twice has two entries, and the first
                # reclaims it; one touched to a later time is not due.
                expires = item.expires
                if expires and expires <= now and items.get(item.key) is item:
                    reclaim(item)
                    removed += 1
            if not bucket:
                del self._buckets[heapq.heappop(due)]
        return removed

    def clear(self) -> None:
        """
        Forget every entry, as when the store is flushed.
        """
        self._buckets.clear()
        del self._due[:]
        self._entries = 0


def allowance(maxBytes: int) -> int:
    """
    What the items may cost under a limit of C{maxBytes}: 1/1024 more.
    memcached counts whole 1 MiB slab pages, so C{-m 64} holds 64 items of
    just under 1 MiB (memcached's t/lru.t counts on it), which cost a few
    hundred bytes more each here.
    """
    return maxBytes + (maxBytes >> 10)


class ClockHand:
    """
    The eviction hand over the store's items, a L{dict} in LRU order: it
    gives the oldest item that has not been fetched since the hand last
    passed it, and moves the ones that have (L{ACTIVE}) to the most
    recently used end, clearing the mark (CLOCK, or memcached's cold LRU,
    where an active item at the tail is moved up, not evicted).
    """

    def __init__(self, items: dict[bytes, Item]) -> None:
        self._items = items
        # The next items to look at, oldest last.
        self._next: list[Item] = []

    def clear(self) -> None:
        """
        Forget the items about to be looked at, as when the store is flushed.
        """
        del self._next[:]

    def victim(self, stretch: int) -> Item | None:
        """
        @param stretch: how many of the oldest items to take at once when
            the hand needs more.
        @return: the next item to evict (still held), or L{None} if the
            store is empty.
        """
        items = self._items
        upcoming = self._next
        while True:
            if not upcoming:
                if not items:
                    return None
                # The next stretch of the oldest items, taken at once: each
                # dict iteration starts by skipping the slots the last
                # evictions emptied, so one per eviction would be quadratic.
                upcoming.extend(islice(items.values(), stretch))
                upcoming.reverse()
            item = upcoming.pop()
            if items.get(item.key) is not item:
                continue
            if not item.marks & ACTIVE:
                return item
            item.marks &= ~ACTIVE
            del items[item.key]
            items[item.key] = item
