"""
Tests for L{myproto.store}: the cache on its own, with time driven by a
L{Clock}.
"""

from __future__ import annotations

import gc
import random
import tracemalloc

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from myproto.secondflush import SecondFlushStore
from myproto.store import NEVER, Item, MemoryStore, itemCost, itemSize

# A plausible wall-clock start, so that absolute times look like unix times.
START = 1_700_000_000.0


def makeStore(
    maxBytes: int = 64 * 1024 * 1024, maxItemSize: int = 1024 * 1024, useCas: bool = True
) -> tuple[MemoryStore, Clock]:
    """
    @return: an empty store and the clock it reads, set to L{START}.
    """
    clock = Clock()
    clock.advance(START)
    return MemoryStore(clock, maxBytes=maxBytes, maxItemSize=maxItemSize, useCas=useCas), clock


def keysOf(store: MemoryStore) -> list[bytes]:
    """
    @return: the live keys, least recently used first.
    """
    return [item.key for item in store.items()]


def liveBytes(store: MemoryStore) -> int:
    """
    @return: the bytes the live items should be charged, item by item.
    """
    return sum(
        itemSize(len(item.key), len(item.value), item.flags, store.useCas) for item in store.items()
    )


class ItemSizeTests(SynchronousTestCase):
    """
    L{itemSize} charges what memcached 1.6 charges on a 64-bit build, so that
    C{bytes} and the largest storable value match it.
    """

    def test_smallest(self) -> None:
        """
        A one-byte key with a one-byte value: 48-byte header, key and its
        NUL, value and its CRLF, 8 bytes of CAS.  memcached reports
        C{bytes 61} after C{set k 0 0 1}.
        """
        self.assertEqual(itemSize(1, 1, 0, True), 61)

    def test_flags(self) -> None:
        """
        Nonzero flags take four more bytes (C{bytes 65} after
        C{set k 5 0 1}).
        """
        self.assertEqual(itemSize(1, 1, 5, True), 65)
        self.assertEqual(itemSize(5, 10, 5, True), 78)

    def test_withoutCas(self) -> None:
        """
        Without CAS (C{-C}), items are eight bytes smaller.
        """
        self.assertEqual(itemSize(1, 1, 0, False), 53)

    def test_largestDefaultItem(self) -> None:
        """
        With memcached's default 1 MiB item limit, a one-byte key takes at
        most 1048516 bytes of value (1048512 with flags), as in memcached.
        """
        self.assertEqual(itemSize(1, 1048516, 0, True), 1024 * 1024)
        self.assertEqual(itemSize(1, 1048512, 1, True), 1024 * 1024)


class PutGetTests(SynchronousTestCase):
    """
    Storing, finding and removing items.
    """

    def setUp(self) -> None:
        self.store, self.clock = makeStore()

    def test_putThenGet(self) -> None:
        """
        L{MemoryStore.get} finds what L{MemoryStore.put} stored, with its
        flags and expiry.
        """
        stored = self.store.put(b"k", b"value", 42, NEVER)
        self.assertIsNotNone(stored)
        item = self.store.get(b"k")
        self.assertIsNotNone(item)
        self.assertIs(item, stored)
        self.assertEqual(
            (item.key, item.value, item.flags, item.expires), (b"k", b"value", 42, NEVER)
        )

    def test_getMissing(self) -> None:
        """
        A key never stored is not found.
        """
        self.assertIsNone(self.store.get(b"nope"))
        self.assertIsNone(self.store.peek(b"nope"))

    def test_binaryValue(self) -> None:
        """
        Values are kept byte for byte, CRLF and NUL included.
        """
        value = bytes(range(256)) + b"\r\n\r\nEND\r\n"
        self.store.put(b"k", value, 0, NEVER)
        self.assertEqual(self.store.get(b"k").value, value)  # type: ignore[union-attr]

    def test_emptyValue(self) -> None:
        """
        An empty value is a value.
        """
        self.store.put(b"k", b"", 0, NEVER)
        self.assertEqual(self.store.get(b"k").value, b"")  # type: ignore[union-attr]

    def test_flags(self) -> None:
        """
        The whole 32-bit range of flags is kept.
        """
        self.store.put(b"k", b"v", 2**32 - 1, NEVER)
        self.assertEqual(self.store.get(b"k").flags, 2**32 - 1)  # type: ignore[union-attr]

    def test_putReplaces(self) -> None:
        """
        A second put replaces the value, the flags and the expiry, and the
        old item's bytes are no longer charged.
        """
        self.store.put(b"k", b"old value", 1, START + 10)
        self.store.put(b"k", b"new", 2, NEVER)
        item = self.store.get(b"k")
        self.assertIsNotNone(item)
        self.assertEqual((item.value, item.flags, item.expires), (b"new", 2, NEVER))
        self.assertEqual(len(self.store), 1)
        self.assertEqual(self.store.bytes, itemSize(1, 3, 2, True))

    def test_getMarksFetched(self) -> None:
        """
        A new item is unfetched; L{MemoryStore.get} marks it fetched and
        notes the time; L{MemoryStore.peek} does neither.
        """
        item = self.store.put(b"k", b"v", 0, NEVER)
        self.assertIsNotNone(item)
        self.clock.advance(5)
        self.store.peek(b"k")
        self.assertFalse(item.fetched)
        self.assertEqual(item.lastAccess, START)
        self.store.get(b"k")
        self.assertTrue(item.fetched)
        self.assertEqual(item.lastAccess, START + 5)

    def test_getWithoutTouch(self) -> None:
        """
        C{get(key, touch=False)} is a peek.
        """
        item = self.store.put(b"k", b"v", 0, NEVER)
        self.assertIsNotNone(item)
        self.assertIs(self.store.get(b"k", touch=False), item)
        self.assertFalse(item.fetched)

    def test_replacedItemIsUnfetched(self) -> None:
        """
        A new version starts unfetched even if the old one was read.
        """
        self.store.put(b"k", b"v", 0, NEVER)
        self.store.get(b"k")
        item = self.store.put(b"k", b"w", 0, NEVER)
        self.assertIsNotNone(item)
        self.assertFalse(item.fetched)

    def test_delete(self) -> None:
        """
        L{MemoryStore.delete} removes a live item and says so, uncharging
        its bytes; deleting again finds nothing.
        """
        self.store.put(b"k", b"v", 0, NEVER)
        self.store.put(b"j", b"w", 0, NEVER)
        self.assertTrue(self.store.delete(b"k"))
        self.assertIsNone(self.store.get(b"k"))
        self.assertFalse(self.store.delete(b"k"))
        self.assertEqual(len(self.store), 1)
        self.assertEqual(self.store.bytes, itemSize(1, 1, 0, True))

    def test_deleteMissing(self) -> None:
        """
        Deleting a key never stored is not an error.
        """
        self.assertFalse(self.store.delete(b"nope"))
        self.assertEqual(self.store.bytes, 0)

    def test_len(self) -> None:
        """
        C{len} counts the items held.
        """
        self.assertEqual(len(self.store), 0)
        for i in range(5):
            self.store.put(b"k%d" % (i,), b"v", 0, NEVER)
        self.assertEqual(len(self.store), 5)

    def test_totalItems(self) -> None:
        """
        C{totalItems} counts every version stored, replacements included.
        """
        self.store.put(b"k", b"v", 0, NEVER)
        self.store.put(b"k", b"w", 0, NEVER)
        self.store.put(b"j", b"w", 0, NEVER)
        self.assertEqual(self.store.stats.totalItems, 3)

    def test_now(self) -> None:
        """
        The store's time is its clock's.
        """
        self.assertEqual(self.store.now(), START)
        self.clock.advance(2.5)
        self.assertEqual(self.store.now(), START + 2.5)


class CasTests(SynchronousTestCase):
    """
    CAS uniques: one per stored version, never reused, or all zero with CAS
    disabled.
    """

    def test_uniqueAndIncreasing(self) -> None:
        """
        Every put gets a CAS unique larger than any before it, across keys
        and for new versions of the same key.
        """
        store, _ = makeStore()
        seen = []
        for i in range(50):
            item = store.put(b"k%d" % (i % 7,), b"v", 0, NEVER)
            self.assertIsNotNone(item)
            seen.append(item.cas)
        self.assertEqual(seen, sorted(set(seen)))
        self.assertGreater(seen[0], 0)

    def test_newVersionNewCas(self) -> None:
        """
        Replacing an item changes the CAS unique the store reports for it.
        """
        store, _ = makeStore()
        first = store.put(b"k", b"v", 0, NEVER).cas  # type: ignore[union-attr]
        store.put(b"k", b"v", 0, NEVER)
        self.assertNotEqual(store.get(b"k").cas, first)  # type: ignore[union-attr]

    def test_nextCasIsShared(self) -> None:
        """
        L{MemoryStore.nextCas} draws from the same sequence as stores do.
        """
        store, _ = makeStore()
        a = store.put(b"a", b"v", 0, NEVER).cas  # type: ignore[union-attr]
        middle = store.nextCas()
        b = store.put(b"b", b"v", 0, NEVER).cas  # type: ignore[union-attr]
        self.assertTrue(a < middle < b)

    def test_touchKeepsCas(self) -> None:
        """
        A new expiry time is not a new version.
        """
        store, _ = makeStore()
        item = store.put(b"k", b"v", 0, NEVER)
        self.assertIsNotNone(item)
        cas = item.cas
        store.touch(item, START + 100)
        self.assertEqual(store.get(b"k").cas, cas)  # type: ignore[union-attr]

    def test_disabled(self) -> None:
        """
        With C{useCas=False} every item's CAS unique is 0, and items are
        charged eight bytes less.
        """
        store, _ = makeStore(useCas=False)
        for i in range(3):
            item = store.put(b"k%d" % (i,), b"v", 0, NEVER)
            self.assertIsNotNone(item)
            self.assertEqual(item.cas, 0)
        self.assertEqual(store.nextCas(), 0)
        self.assertEqual(store.bytes, 3 * itemSize(2, 1, 0, False))
        item = store.get(b"k0")
        self.assertIsNotNone(item)
        store.updateInPlace(item, b"w")
        self.assertEqual(item.cas, 0)


class UpdateInPlaceTests(SynchronousTestCase):
    """
    L{MemoryStore.updateInPlace}: memcached's in-place C{incr}.
    """

    def test_update(self) -> None:
        """
        The value changes, the CAS unique is new, and flags, expiry, size,
        memory and LRU position stay.
        """
        store, _ = makeStore()
        item = store.put(b"k", b"1234", 7, START + 50)
        store.put(b"j", b"v", 0, NEVER)
        self.assertIsNotNone(item)
        size, cas, bytesBefore = item.size, item.cas, store.bytes
        store.updateInPlace(item, b"99  ")
        found = store.peek(b"k")
        self.assertIsNotNone(found)
        self.assertEqual(found.value, b"99  ")
        self.assertGreater(found.cas, cas)
        self.assertEqual((found.flags, found.expires, found.size), (7, START + 50, size))
        self.assertEqual(store.bytes, bytesBefore)
        self.assertEqual(keysOf(store), [b"k", b"j"])
        self.assertEqual(store.stats.totalItems, 2)


class ExpiryTests(SynchronousTestCase):
    """
    Items live until their absolute expiry time; expired items are reclaimed
    lazily when someone asks for them.
    """

    def setUp(self) -> None:
        self.store, self.clock = makeStore()

    def test_liveUntilExpiry(self) -> None:
        """
        An item is found up to just before its expiry time, and not from
        then on.
        """
        self.store.put(b"k", b"v", 0, START + 10)
        self.clock.advance(9.999)
        self.assertIsNotNone(self.store.get(b"k"))
        self.clock.advance(0.001)
        self.assertIsNone(self.store.get(b"k"))

    def test_never(self) -> None:
        """
        L{NEVER} never expires.
        """
        self.store.put(b"k", b"v", 0, NEVER)
        self.clock.advance(10 * 365 * 86400)
        self.assertIsNotNone(self.store.get(b"k"))

    def test_alreadyPast(self) -> None:
        """
        An expiry time in the past means the item is gone at once.
        """
        self.store.put(b"k", b"v", 0, START - 1)
        self.assertIsNone(self.store.get(b"k"))
        self.store.put(b"k", b"v", 0, 1.0)
        self.assertIsNone(self.store.peek(b"k"))

    def test_lazyReclaim(self) -> None:
        """
        Asking for an expired item removes it: its memory is freed and it
        counts in C{getExpired}, C{reclaimed} and, never having been
        fetched, C{expiredUnfetched}.
        """
        self.store.put(b"k", b"v", 0, START + 10)
        self.clock.advance(10)
        self.assertEqual(len(self.store), 1)
        self.assertIsNone(self.store.get(b"k"))
        self.assertEqual(len(self.store), 0)
        self.assertEqual(self.store.bytes, 0)
        stats = self.store.stats
        self.assertEqual((stats.getExpired, stats.reclaimed, stats.expiredUnfetched), (1, 1, 1))
        self.assertIsNone(self.store.get(b"k"))
        self.assertEqual((stats.getExpired, stats.reclaimed, stats.expiredUnfetched), (1, 1, 1))

    def test_fetchedThenExpired(self) -> None:
        """
        An item read before it expired is reclaimed but not counted as
        expired unfetched.
        """
        self.store.put(b"k", b"v", 0, START + 10)
        self.store.get(b"k")
        self.clock.advance(10)
        self.assertIsNone(self.store.get(b"k"))
        stats = self.store.stats
        self.assertEqual((stats.getExpired, stats.reclaimed, stats.expiredUnfetched), (1, 1, 0))

    def test_peekReclaims(self) -> None:
        """
        A peek at an expired item reclaims it too.
        """
        self.store.put(b"k", b"v", 0, START + 1)
        self.clock.advance(1)
        self.assertIsNone(self.store.peek(b"k"))
        self.assertEqual(self.store.stats.getExpired, 1)
        self.assertEqual(self.store.bytes, 0)

    def test_deleteExpired(self) -> None:
        """
        An expired item cannot be deleted: it is already gone.
        """
        self.store.put(b"k", b"v", 0, START + 1)
        self.clock.advance(1)
        self.assertFalse(self.store.delete(b"k"))
        self.assertEqual(self.store.bytes, 0)

    def test_itemsSkipsExpired(self) -> None:
        """
        L{MemoryStore.items} lists only live items.
        """
        self.store.put(b"a", b"v", 0, START + 1)
        self.store.put(b"b", b"v", 0, NEVER)
        self.store.put(b"c", b"v", 0, START + 5)
        self.clock.advance(1)
        self.assertEqual(keysOf(self.store), [b"b", b"c"])

    def test_touch(self) -> None:
        """
        L{MemoryStore.touch} moves an item's expiry later, earlier, or to
        never.
        """
        item = self.store.put(b"k", b"v", 0, START + 10)
        self.assertIsNotNone(item)
        self.store.touch(item, START + 100)
        self.clock.advance(50)
        self.assertIsNotNone(self.store.get(b"k"))
        self.store.touch(item, START + 60)
        self.clock.advance(10)
        self.assertIsNone(self.store.get(b"k"))

        item = self.store.put(b"j", b"v", 0, START + 70)
        self.assertIsNotNone(item)
        self.store.touch(item, NEVER)
        self.clock.advance(1000)
        self.assertIsNotNone(self.store.get(b"j"))

    def test_replaceResetsExpiry(self) -> None:
        """
        A new version has only its own expiry time.
        """
        self.store.put(b"k", b"v", 0, START + 5)
        self.store.put(b"k", b"w", 0, NEVER)
        self.clock.advance(10)
        self.assertEqual(self.store.get(b"k").value, b"w")  # type: ignore[union-attr]


class SweepTests(SynchronousTestCase):
    """
    L{MemoryStore.sweepExpired} frees expired items nobody asks for again,
    earliest first, within a budget.
    """

    def setUp(self) -> None:
        self.store, self.clock = makeStore()

    def test_sweepsUntouchedKeys(self) -> None:
        """
        Keys never read or written again are removed and their memory
        freed, counting as reclaimed (and unfetched) but not as expired
        gets.
        """
        for i in range(100):
            self.store.put(b"k%d" % (i,), b"value", 0, START + 10)
        self.store.put(b"forever", b"value", 0, NEVER)
        self.clock.advance(10)
        self.assertEqual(self.store.sweepExpired(), 100)
        self.assertEqual(len(self.store), 1)
        self.assertEqual(self.store.bytes, itemSize(7, 5, 0, True))
        stats = self.store.stats
        self.assertEqual((stats.reclaimed, stats.expiredUnfetched, stats.getExpired), (100, 100, 0))
        self.assertEqual(self.store.sweepExpired(), 0)

    def test_nothingDueYet(self) -> None:
        """
        Items whose time has not come are left alone.
        """
        self.store.put(b"k", b"v", 0, START + 10)
        self.clock.advance(9)
        self.assertEqual(self.store.sweepExpired(), 0)
        self.assertIsNotNone(self.store.peek(b"k"))

    def test_budget(self) -> None:
        """
        One sweep examines at most C{budget} entries; the next one carries
        on.
        """
        for i in range(10):
            self.store.put(b"k%d" % (i,), b"v", 0, START + 1)
        self.clock.advance(1)
        self.assertEqual(self.store.sweepExpired(budget=3), 3)
        self.assertEqual(len(self.store), 7)
        self.assertEqual(self.store.sweepExpired(budget=0), 0)
        self.assertEqual(len(self.store), 7)
        self.assertEqual(self.store.sweepExpired(), 7)
        self.assertEqual(len(self.store), 0)
        self.assertEqual(self.store.bytes, 0)

    def test_earliestFirst(self) -> None:
        """
        The sweep takes the items that expired first.  (Whether a key was
        still held is visible in C{getExpired}: looking up an expired key
        the sweep left behind counts there, a swept one does not.)
        """
        for i in range(1, 11):
            self.store.put(b"k%d" % (i,), b"v", 0, START + i)
        self.clock.advance(5)
        self.assertEqual(self.store.sweepExpired(budget=2), 2)
        self.assertIsNone(self.store.get(b"k1"))
        self.assertIsNone(self.store.get(b"k2"))
        self.assertEqual(self.store.stats.getExpired, 0)
        self.assertIsNone(self.store.get(b"k3"))
        self.assertEqual(self.store.stats.getExpired, 1)

    def test_sameExpiry(self) -> None:
        """
        Items due at the same moment are all swept, in any order, with CAS
        uniques or without.
        """
        for useCas in (True, False):
            store, clock = makeStore(useCas=useCas)
            for i in range(100):
                store.put(b"k%d" % (i,), b"v", 0, START + 5)
            store.put(b"later", b"v", 0, START + 6)
            clock.advance(5)
            self.assertEqual(store.sweepExpired(budget=60), 60)
            self.assertEqual(store.sweepExpired(), 40)
            self.assertEqual(len(store), 1)

    def test_ignoresReplacedItems(self) -> None:
        """
        An item replaced by a version without expiry is not swept when the
        old version's time comes.
        """
        self.store.put(b"k", b"old", 0, START + 10)
        self.store.put(b"k", b"new", 0, NEVER)
        self.clock.advance(20)
        self.assertEqual(self.store.sweepExpired(), 0)
        self.assertEqual(self.store.get(b"k").value, b"new")  # type: ignore[union-attr]
        self.assertEqual(self.store.stats.reclaimed, 0)

    def test_replacedWithLaterExpiry(self) -> None:
        """
        The old version's expiry does not remove the new version early; the
        new version's does.
        """
        self.store.put(b"k", b"old", 0, START + 10)
        self.store.put(b"k", b"new", 0, START + 30)
        self.clock.advance(20)
        self.assertEqual(self.store.sweepExpired(), 0)
        self.assertIsNotNone(self.store.peek(b"k"))
        self.clock.advance(10)
        self.assertEqual(self.store.sweepExpired(), 1)
        self.assertEqual(len(self.store), 0)

    def test_replacedWithSameExpiry(self) -> None:
        """
        Two versions expiring at the same moment are one item to sweep, not
        two.
        """
        self.store.put(b"k", b"old", 0, START + 10)
        self.store.put(b"k", b"new", 0, START + 10)
        self.clock.advance(10)
        self.assertEqual(self.store.sweepExpired(), 1)
        self.assertEqual(self.store.stats.reclaimed, 1)
        self.assertEqual(self.store.bytes, 0)

    def test_ignoresTouchedItems(self) -> None:
        """
        An item given a later expiry time is swept at the new time, not the
        old one; one touched to never stays.
        """
        later = self.store.put(b"later", b"v", 0, START + 10)
        never = self.store.put(b"never", b"v", 0, START + 10)
        self.assertIsNotNone(later)
        self.assertIsNotNone(never)
        self.store.touch(later, START + 100)
        self.store.touch(never, NEVER)
        self.clock.advance(20)
        self.assertEqual(self.store.sweepExpired(), 0)
        self.assertEqual(sorted(keysOf(self.store)), [b"later", b"never"])
        self.clock.advance(80)
        self.assertEqual(self.store.sweepExpired(), 1)
        self.assertEqual(keysOf(self.store), [b"never"])

    def test_touchedEarlier(self) -> None:
        """
        An item touched to expire sooner is swept at the sooner time.
        """
        item = self.store.put(b"k", b"v", 0, START + 100)
        self.assertIsNotNone(item)
        self.store.touch(item, START + 5)
        self.clock.advance(5)
        self.assertEqual(self.store.sweepExpired(), 1)
        self.assertEqual(len(self.store), 0)

    def test_ignoresDeletedItems(self) -> None:
        """
        A deleted item is not swept (nor counted) again, and a new version
        under the same key without expiry survives.
        """
        self.store.put(b"k", b"v", 0, START + 10)
        self.store.delete(b"k")
        self.store.put(b"k", b"again", 0, NEVER)
        self.clock.advance(10)
        self.assertEqual(self.store.sweepExpired(), 0)
        self.assertEqual(self.store.stats.reclaimed, 0)
        self.assertEqual(self.store.get(b"k").value, b"again")  # type: ignore[union-attr]

    def test_alreadyReclaimed(self) -> None:
        """
        An item reclaimed lazily is not swept a second time.
        """
        self.store.put(b"k", b"v", 0, START + 10)
        self.clock.advance(10)
        self.assertIsNone(self.store.get(b"k"))
        self.assertEqual(self.store.sweepExpired(), 0)
        self.assertEqual(self.store.stats.reclaimed, 1)

    def test_fetchedItems(self) -> None:
        """
        Swept items that had been read count as reclaimed only.
        """
        self.store.put(b"k", b"v", 0, START + 10)
        self.store.get(b"k")
        self.clock.advance(10)
        self.assertEqual(self.store.sweepExpired(), 1)
        self.assertEqual((self.store.stats.reclaimed, self.store.stats.expiredUnfetched), (1, 0))


class HeapCompactionTests(SynchronousTestCase):
    """
    Expiry bookkeeping does not grow without bound when the same keys are
    rewritten or touched over and over.  (The heap is private; its size is
    the only way to see this short of measuring the process.)
    """

    def test_repeatedSets(self) -> None:
        """
        Setting one key with a TTL 20000 times keeps the heap small, and
        the one live item is still swept on time.
        """
        store, clock = makeStore()
        for i in range(20000):
            store.put(b"k", b"v%d" % (i,), 0, START + 60)
            self.assertLessEqual(len(store._expiries), 2 * 1 + 1024 + 1)
        self.assertEqual(len(store), 1)
        clock.advance(60)
        self.assertEqual(store.sweepExpired(), 1)
        self.assertEqual(store.bytes, 0)

    def test_repeatedTouches(self) -> None:
        """
        Touching one item 20000 times keeps the heap small.
        """
        store, clock = makeStore()
        item = store.put(b"k", b"v", 0, START + 60)
        self.assertIsNotNone(item)
        for i in range(20000):
            store.touch(item, START + 60 + i)
        self.assertLessEqual(len(store._expiries), 2 * 1 + 1024 + 1)
        clock.advance(60 + 19998)
        self.assertEqual(store.sweepExpired(), 0)
        clock.advance(1)
        self.assertEqual(store.sweepExpired(), 1)

    def test_churn(self) -> None:
        """
        Many keys written with a TTL and deleted, round after round, leave
        a heap proportional to what is live.
        """
        store, _ = makeStore()
        for round in range(10):
            for i in range(1000):
                store.put(b"k%d" % (i,), b"v", 0, START + 60)
            for i in range(1000):
                store.delete(b"k%d" % (i,))
        self.assertEqual(len(store), 0)
        self.assertLessEqual(len(store._expiries), 2 * 1000 + 1024 + 1)


class LRUTests(SynchronousTestCase):
    """
    Over the memory limit, the least recently used items are evicted; an
    item fetched since the eviction hand last passed it gets a second
    chance, as in memcached's segmented LRU.
    """

    def setUp(self) -> None:
        # Room for exactly three items of one-byte keys and four-byte values.
        self.size = itemCost(1, 4, False)
        self.store, self.clock = makeStore(maxBytes=3 * self.size)

    def put(self, *keys: bytes, expires: float = NEVER) -> None:
        for key in keys:
            self.assertIsNotNone(self.store.put(key, b"vvvv", 0, expires))

    def test_oldestEvictedFirst(self) -> None:
        """
        The fourth item evicts the first.
        """
        self.put(b"a", b"b", b"c")
        self.assertEqual(self.store.stats.evictions, 0)
        self.put(b"d")
        self.assertEqual(keysOf(self.store), [b"b", b"c", b"d"])
        self.assertEqual(self.store.stats.evictions, 1)
        self.assertEqual(self.store.cost, 3 * self.size)
        self.assertEqual(self.store.bytes, 3 * itemSize(1, 4, 0, True))

    def test_getMovesToMostRecent(self) -> None:
        """
        Reading an item twice saves it from being the next victim: the hand
        moves it to the most recently used end instead.  The first read only
        marks it fetched, as in memcached.
        """
        self.put(b"a", b"b", b"c")
        self.store.get(b"a")
        self.store.get(b"b")
        self.store.get(b"a")
        self.put(b"d")
        self.assertEqual(keysOf(self.store), [b"c", b"a", b"d"])

    def test_peekDoesNotMove(self) -> None:
        """
        A peek is not a use.
        """
        self.put(b"a", b"b", b"c")
        self.store.peek(b"a")
        self.put(b"d")
        self.assertEqual(keysOf(self.store), [b"b", b"c", b"d"])

    def test_replaceMovesToMostRecent(self) -> None:
        """
        A new version of an old item is the newest item.
        """
        self.put(b"a", b"b", b"c")
        self.put(b"a")
        self.assertEqual(keysOf(self.store), [b"b", b"c", b"a"])
        self.put(b"d")
        self.assertEqual(keysOf(self.store), [b"c", b"a", b"d"])
        self.assertEqual(self.store.stats.evictions, 1)

    def test_replaceDoesNotEvictItself(self) -> None:
        """
        Replacing an item in a full store with one of the same size evicts
        nothing.
        """
        self.put(b"a", b"b", b"c")
        self.put(b"b")
        self.assertEqual(self.store.stats.evictions, 0)
        self.assertEqual(sorted(keysOf(self.store)), [b"a", b"b", b"c"])

    def test_largeItemEvictsSeveral(self) -> None:
        """
        An item needing the room of two evicts the two oldest.
        """
        self.put(b"a", b"b", b"c")
        # The shortest value that needs more than one item's room.
        big = b"v" * next(n for n in range(4, 10000) if itemCost(1, n, False) > self.size)
        self.assertIsNotNone(self.store.put(b"e", big, 0, NEVER))
        self.assertEqual(keysOf(self.store), [b"c", b"e"])
        self.assertEqual(self.store.stats.evictions, 2)
        self.assertEqual(self.store.bytes, liveBytes(self.store))

    def test_evictionCounters(self) -> None:
        """
        C{evictedUnfetched} counts victims never read; C{evictedNonzero}
        counts victims that had an expiry time.
        """
        # An expiry time costs more: room for it and two others.
        self.store, self.clock = makeStore(maxBytes=2 * self.size + itemCost(1, 4, True))
        self.put(b"a")
        self.put(b"b", expires=START + 1000)
        self.put(b"c")
        self.store.get(b"a")
        self.store.get(b"c")
        # Each read once: no second chances.
        self.put(b"d", b"e")
        stats = self.store.stats
        self.assertEqual(keysOf(self.store), [b"c", b"d", b"e"])
        self.assertEqual((stats.evictions, stats.evictedUnfetched, stats.evictedNonzero), (2, 1, 1))

    def test_expiredVictimsAreReclaimed(self) -> None:
        """
        An expired item pushed out to make room is reclaimed, not evicted.
        """
        self.store, self.clock = makeStore(maxBytes=2 * self.size + itemCost(1, 4, True))
        self.put(b"a", expires=START + 5)
        self.put(b"b", b"c")
        self.clock.advance(5)
        self.put(b"d")
        stats = self.store.stats
        self.assertEqual((stats.evictions, stats.reclaimed, stats.expiredUnfetched), (0, 1, 1))
        self.assertEqual(keysOf(self.store), [b"b", b"c", b"d"])

    def test_itemsOrder(self) -> None:
        """
        L{MemoryStore.items} lists least recently stored first; a fetch does
        not move an item until the eviction hand passes it.
        """
        self.put(b"c", b"a", b"b")
        self.store.get(b"c")
        self.store.get(b"c")
        self.assertEqual(keysOf(self.store), [b"c", b"a", b"b"])
        self.put(b"d")
        self.assertEqual(keysOf(self.store), [b"b", b"c", b"d"])

    def test_lowerLimit(self) -> None:
        """
        Lowering the memory limit evicts at once, oldest first.
        """
        self.put(b"a", b"b", b"c")
        self.store.setMemoryLimit(self.size)
        self.assertEqual(keysOf(self.store), [b"c"])
        self.assertEqual(self.store.stats.evictions, 2)
        self.assertEqual(self.store.maxBytes, self.size)


class SizeLimitTests(SynchronousTestCase):
    """
    Items over the item size limit, or over the whole memory limit, are
    refused.
    """

    def test_itemSizeLimit(self) -> None:
        """
        An item of exactly the limit is stored; one byte more is refused,
        counted in C{outOfMemory}, and leaves the old version in place.
        """
        store, _ = makeStore(maxItemSize=1000)
        fitting = b"v" * (1000 - itemSize(1, 0, 0, True))
        self.assertTrue(store.fits(b"k", len(fitting), 0))
        self.assertIsNotNone(store.put(b"k", fitting, 0, NEVER))
        self.assertFalse(store.fits(b"k", len(fitting) + 1, 0))
        self.assertFalse(store.fits(b"k", len(fitting), 1))
        self.assertIsNone(store.put(b"k", fitting + b"v", 0, NEVER))
        self.assertEqual(store.stats.outOfMemory, 1)
        self.assertEqual(store.get(b"k").value, fitting)  # type: ignore[union-attr]
        self.assertEqual(store.bytes, 1000)

    def test_keyCounts(self) -> None:
        """
        The key's length counts towards the limit.
        """
        store, _ = makeStore(maxItemSize=1000)
        self.assertTrue(store.fits(b"k", 1000 - itemSize(1, 0, 0, True), 0))
        self.assertFalse(store.fits(b"kk", 1000 - itemSize(1, 0, 0, True), 0))

    def test_memoryLimit(self) -> None:
        """
        An item larger than all the memory is refused without evicting
        anything.
        """
        store, _ = makeStore(maxBytes=500, maxItemSize=10000)
        store.put(b"a", b"v", 0, NEVER)
        self.assertIsNone(store.put(b"b", b"v" * 500, 0, NEVER))
        self.assertEqual(keysOf(store), [b"a"])
        self.assertEqual(store.stats.evictions, 0)
        self.assertEqual(store.stats.outOfMemory, 1)

    def test_fillsMemoryExactly(self) -> None:
        """
        An item exactly the size of the memory limit fits, evicting the
        rest.
        """
        store, _ = makeStore(maxBytes=itemCost(1, 400, False), maxItemSize=10000)
        store.put(b"a", b"v", 0, NEVER)
        self.assertIsNotNone(store.put(b"b", b"v" * 400, 0, NEVER))
        self.assertEqual(keysOf(store), [b"b"])
        self.assertEqual((store.bytes, store.cost), (itemSize(1, 400, 0, True), store.maxBytes))


class MemoryAccountingTests(SynchronousTestCase):
    """
    C{bytes} is always exactly the sum of the live items' sizes, and never
    above the limit.
    """

    def test_randomWorkload(self) -> None:
        """
        Through thousands of random puts, replacements, deletes, reads,
        in-place updates and evictions, C{bytes} equals the sum of
        L{itemSize} over what is held.
        """
        rng = random.Random(20240601)
        store, _ = makeStore(maxBytes=20000, maxItemSize=4000)
        for step in range(5000):
            key = b"key%d" % (rng.randrange(60),)
            action = rng.random()
            if action < 0.6:
                value = b"x" * rng.choice([0, 1, 10, 100, 1000, 3000])
                store.put(key, value, rng.choice([0, 0, 1, 2**32 - 1]), NEVER)
            elif action < 0.75:
                store.delete(key)
            elif action < 0.9:
                store.get(key)
            else:
                item = store.peek(key)
                if item is not None and item.value:
                    store.updateInPlace(item, b"1".ljust(len(item.value)))
            self.assertEqual(store.bytes, liveBytes(store), step)
            self.assertEqual(store.cost, sum(item.cost for item in store.items()), step)
            self.assertLessEqual(store.cost, store.maxBytes + store.maxBytes // 1024)
        self.assertGreater(store.stats.evictions, 0)

    def test_expiryAndSweep(self) -> None:
        """
        Expired items stay charged until reclaimed, lazily or by the sweep;
        then nothing is charged for them.
        """
        store, clock = makeStore()
        store.put(b"a", b"vv", 0, START + 1)
        store.put(b"b", b"vvv", 3, START + 2)
        store.put(b"c", b"v", 0, NEVER)
        total = itemSize(1, 2, 0, True) + itemSize(1, 3, 3, True) + itemSize(1, 1, 0, True)
        self.assertEqual(store.bytes, total)
        clock.advance(2)
        self.assertEqual(store.bytes, total)
        store.get(b"a")
        self.assertEqual(store.bytes, total - itemSize(1, 2, 0, True))
        store.sweepExpired()
        self.assertEqual(store.bytes, itemSize(1, 1, 0, True))


class FlushTests(SynchronousTestCase):
    """
    L{MemoryStore.flush}: invalidate everything, now or later.
    """

    def setUp(self) -> None:
        self.store, self.clock = makeStore()
        self.store.put(b"a", b"v", 0, NEVER)
        self.store.put(b"b", b"v", 0, START + 1000)

    def test_now(self) -> None:
        """
        An immediate flush removes everything and frees the memory.
        """
        self.store.flush()
        self.assertIsNone(self.store.get(b"a"))
        self.assertEqual(len(self.store), 0)
        self.assertEqual(self.store.bytes, 0)
        self.store.put(b"a", b"new", 0, NEVER)
        self.assertEqual(self.store.get(b"a").value, b"new")  # type: ignore[union-attr]

    def test_zeroOrNegativeDelayIsNow(self) -> None:
        """
        A delay of zero or less is immediate.
        """
        self.store.flush(0)
        self.assertEqual(len(self.store), 0)
        self.store.put(b"a", b"v", 0, NEVER)
        self.store.flush(-5)
        self.assertEqual(len(self.store), 0)

    def test_delayed(self) -> None:
        """
        A delayed flush leaves items readable until its time, then removes
        them all, including those stored after the flush was asked for;
        items stored after its time are not affected.
        """
        self.store.flush(10)
        self.clock.advance(5)
        self.assertIsNotNone(self.store.get(b"a"))
        self.store.put(b"c", b"v", 0, NEVER)
        self.clock.advance(4.9)
        self.assertEqual(sorted(keysOf(self.store)), [b"a", b"b", b"c"])
        self.clock.advance(0.1)
        self.assertIsNone(self.store.get(b"a"))
        self.assertIsNone(self.store.get(b"c"))
        self.assertEqual(len(self.store), 0)
        self.assertEqual(self.store.bytes, 0)
        self.store.put(b"d", b"v", 0, NEVER)
        self.clock.advance(100)
        self.assertIsNotNone(self.store.get(b"d"))

    def test_delayedAppliesOnPut(self) -> None:
        """
        The first put after a delayed flush's time sees an empty store.
        """
        self.store.flush(10)
        self.clock.advance(10)
        self.store.put(b"c", b"v", 0, NEVER)
        self.assertEqual(keysOf(self.store), [b"c"])
        self.assertEqual(self.store.bytes, itemSize(1, 1, 0, True))

    def test_laterFlushReplacesPending(self) -> None:
        """
        A second delayed flush replaces the first, as in memcached.
        """
        self.store.flush(10)
        self.clock.advance(5)
        self.store.flush(20)
        self.clock.advance(10)
        self.assertIsNotNone(self.store.get(b"a"))
        self.clock.advance(10)
        self.assertIsNone(self.store.get(b"a"))

    def test_sooneerFlushReplacesPending(self) -> None:
        """
        A second delayed flush may also bring the time forward.
        """
        self.store.flush(100)
        self.store.flush(5)
        self.clock.advance(5)
        self.assertIsNone(self.store.get(b"a"))

    def test_immediateCancelsPending(self) -> None:
        """
        An immediate flush clears now and cancels a pending delayed one.
        """
        self.store.flush(10)
        self.store.flush()
        self.store.put(b"c", b"v", 0, NEVER)
        self.clock.advance(20)
        self.assertIsNotNone(self.store.get(b"c"))

    def test_sweepAfterFlush(self) -> None:
        """
        Flushed items are not swept (nor counted) later.
        """
        self.store.flush()
        self.clock.advance(2000)
        self.assertEqual(self.store.sweepExpired(), 0)
        self.assertEqual(self.store.stats.reclaimed, 0)

    def test_sweepAppliesDelayedFlush(self) -> None:
        """
        A sweep after a delayed flush's time frees the memory.
        """
        self.store.flush(10)
        self.clock.advance(10)
        self.store.sweepExpired()
        self.assertEqual(self.store.bytes, 0)

    def test_statsReset(self) -> None:
        """
        Resetting the counters zeroes them all.
        """
        self.store.put(b"a", b"v", 0, NEVER)
        self.store.stats.reset()
        for name in self.store.stats.__slots__:
            self.assertEqual(getattr(self.store.stats, name), 0, name)


class ItemTests(SynchronousTestCase):
    """
    L{Item} is a plain record.
    """

    def test_fields(self) -> None:
        """
        An item starts unfetched, last used at its creation.
        """
        item = Item(b"k", b"v", 3, 10.0, 7, 5.0)
        self.assertEqual(
            (item.key, item.value, item.flags, item.expires, item.cas, item.size),
            (b"k", b"v", 3, 10.0, 7, itemSize(1, 1, 3, True)),
        )
        self.assertFalse(item.fetched)
        self.assertEqual(item.lastAccess, 5.0)
        self.assertEqual((item.stale, item.tokenSent, item.keyBinary), (False, False, False))

    def test_metaMarks(self) -> None:
        """
        C{stale}, C{tokenSent} and C{keyBinary} share one slot but are set
        and cleared independently.
        """
        item = Item(b"k", b"v", 0, 0.0, 1, 5.0)
        item.stale = True
        item.keyBinary = True
        self.assertEqual((item.stale, item.tokenSent, item.keyBinary), (True, False, True))
        item.tokenSent = True
        item.stale = False
        self.assertEqual((item.stale, item.tokenSent, item.keyBinary), (False, True, True))
        item.keyBinary = False
        item.tokenSent = False
        self.assertEqual((item.stale, item.tokenSent, item.keyBinary), (False, False, False))


class LastAccessTests(SynchronousTestCase):
    """
    Last-access times are whole seconds of the store's clock, counted from
    when the store was made, as memcached's are.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START + 0.25)
        self.store = MemoryStore(self.clock)

    def test_startOfSecond(self) -> None:
        """
        A put or a get records the start of the store's second it happened
        in.
        """
        self.assertEqual(self.store.startedAt, START + 0.25)
        self.clock.advance(0.5)
        item = self.store.put(b"k", b"v", 0, NEVER)
        self.assertIsNotNone(item)
        self.assertEqual(item.lastAccess, START + 0.25)
        self.clock.advance(1)
        self.store.get(b"k")
        self.assertEqual(item.lastAccess, START + 1.25)
        self.clock.advance(0.75)
        self.store.get(b"k")
        self.assertEqual(item.lastAccess, START + 2.25)

    def test_shared(self) -> None:
        """
        Items used within the same second share one float.
        """
        first = self.store.put(b"a", b"v", 0, NEVER)
        self.clock.advance(0.5)
        second = self.store.put(b"b", b"v", 0, NEVER)
        self.assertIsNotNone(first)
        self.assertIsNotNone(second)
        self.assertIs(first.lastAccess, second.lastAccess)

    def test_clockGoesBack(self) -> None:
        """
        If the clock goes back, items used afterwards are not recorded as
        used in the future.
        """
        self.clock.advance(10)
        self.store.put(b"a", b"v", 0, NEVER)
        self.clock.rightNow -= 5
        item = self.store.put(b"b", b"v", 0, NEVER)
        self.assertIsNotNone(item)
        self.assertEqual(item.lastAccess, START + 5.25)

    def test_restoreShares(self) -> None:
        """
        Restored items keep their saved times; consecutive equal ones share
        one float.
        """
        saved = [START - 100.0, float(int(START) - 100), START - 99.0]
        items = [
            self.store.restore(key, b"v", 0, NEVER, 1, lastAccess)
            for key, lastAccess in zip([b"a", b"b", b"c"], saved)
        ]
        self.assertEqual([item.lastAccess for item in items if item is not None], saved)
        self.assertIsNotNone(items[0])
        self.assertIsNotNone(items[1])
        self.assertIs(items[0].lastAccess, items[1].lastAccess)


class SecondFlushStoreTests(SynchronousTestCase):
    """
    L{SecondFlushStore}: memcached C{-C}'s whole-second flushes.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000.25)
        self.store = SecondFlushStore(self.clock, useCas=False)

    def test_sameSecondFlushed(self) -> None:
        """
        An item stored in the second a flush took effect is accepted, counted
        and not seen, and it replaces nothing visible; the next second's is
        kept.
        """
        self.store.flush()
        self.clock.advance(0.5)
        self.assertIsNotNone(self.store.put(b"k", b"v", 0, 0))
        self.assertIsNone(self.store.get(b"k"))
        self.assertEqual((len(self.store), self.store.bytes, self.store.stats.totalItems), (0, 0, 1))
        # The store's seconds count from its start, as memcached's do.
        self.clock.advance(0.5)
        self.store.put(b"k", b"v", 0, 0)
        self.assertEqual(self.store.get(b"k").value, b"v")  # type: ignore[union-attr]

    def test_delayedFlush(self) -> None:
        """
        A delayed flush reaches to the end of the second it takes effect in.
        """
        self.store.flush(2.5)
        self.clock.advance(2.6)
        self.store.put(b"k", b"v", 0, 0)
        self.assertIsNone(self.store.get(b"k"))
        self.clock.advance(0.3)
        self.store.put(b"k", b"v", 0, 0)
        self.assertIsNone(self.store.get(b"k"))
        self.clock.advance(0.1)
        self.store.put(b"k", b"v", 0, 0)
        self.assertIsNotNone(self.store.get(b"k"))

    def test_lateFlushReachesNoFurther(self) -> None:
        """
        A flush due long ago, noticed now, flushes only what came before.
        """
        self.store.flush(1)
        self.clock.advance(5)
        self.store.put(b"k", b"v", 0, 0)
        self.assertIsNotNone(self.store.get(b"k"))


class ItemCostTests(SynchronousTestCase):
    """
    L{itemCost}, which eviction counts, is what items really take from the
    process: measured here with C{tracemalloc}, which sees every allocation
    CPython makes for them (bench/memory.py checks RSS, and PyPy).
    """

    def measure(self, shapes: list[tuple[int, int, bool]]) -> tuple[int, int]:
        """
        Store items of these (key length, value length, expires) shapes,
        keys and values made inside the measurement so that only the store
        holds them, as when they come off the wire.

        @return: the bytes allocated and still held, and the store's count
            of them, the index's share included.
        """
        store, _ = makeStore(maxBytes=2**40, maxItemSize=2**30)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for index, (keyLength, valueLength, expires) in enumerate(shapes):
                key = (b"%d:" % (index,)).ljust(keyLength, b"k")
                value = bytes(valueLength)
                store.put(key, value, index % 3, START + 100 + index % 50 if expires else NEVER)
            del key, value
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        self.assertEqual(len(store), len(shapes))
        return held, store.cost

    def assertClose(self, held: int, counted: int) -> None:
        """
        The count is never below what was allocated, and at most 25% above:
        C{tracemalloc} sees the sizes asked for, not the allocator's 16-byte
        steps that the count (and RSS) include, up to 15 bytes an object;
        and the index's share is counted at what it is in a full cache
        that replaces items (C{INDEX_COST}), more than in one only filled.
        """
        message = "held {}, counted {}".format(held, counted)
        self.assertGreaterEqual(counted, held, message)
        self.assertLess(counted, held * 1.25, message)

    def test_smallItems(self) -> None:
        """
        Small values (100 bytes, 16-byte keys: bench (f)'s shape), none with
        an expiry time, cost what L{itemCost} says.
        """
        self.assertClose(*self.measure([(16, 100, False)] * 20000))

    def test_mixedItems(self) -> None:
        """
        Keys of 5 to 250 bytes, values of 0 bytes to 64 KiB, half with an
        expiry time.
        """
        rng = random.Random(18)
        shapes = [
            (rng.randrange(5, 251), rng.choice([0, 10, 100, 500, 600, 1024, 5000, 65536]), rng.random() < 0.5)
            for _ in range(5000)
        ]
        self.assertClose(*self.measure(shapes))

    def test_fullCacheReplacing(self) -> None:
        """
        In a full cache that keeps replacing its items, what is held stays
        within 10% of the limit's count, whatever the size: the index's
        table, which grows in powers of two, is the part that varies.
        """
        for count in (20000, 45000):
            store, _ = makeStore(maxBytes=count * itemCost(16, 100, False))
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for index in range(4 * count):
                    store.put(b"%016d" % (index,), bytes(100), 0, NEVER)
                held = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            self.assertLess(abs(store.cost - held), held * 0.1, (count, held, store.cost))

    def test_evictionHonoursCost(self) -> None:
        """
        A full store never holds more than its limit in L{itemCost}s, and
        C{bytes} stays memcached's count of the same items.
        """
        store, _ = makeStore(maxBytes=100 * itemCost(16, 100, False))
        for index in range(1000):
            store.put(b"%016d" % (index,), b"v" * 100, 0, NEVER)
        self.assertEqual(len(store), 100)
        self.assertEqual(store.cost, 100 * itemCost(16, 100, False))
        self.assertEqual(store.bytes, 100 * itemSize(16, 100, 0, True))
        self.assertEqual(store.stats.evictions, 900)


class DisableEvictionsTests(SynchronousTestCase):
    """
    With evictions off (C{-M}), a full store refuses new items instead of
    evicting live ones; expired items still make room.
    """

    def setUp(self) -> None:
        self.size = itemCost(1, 4, False)
        clock = Clock()
        clock.advance(START)
        self.clock = clock
        self.store = MemoryStore(clock, maxBytes=2 * self.size, evictions=False)

    def test_refusesWhenFull(self) -> None:
        """
        The item that does not fit is refused and counted in C{outOfMemory};
        the items held stay, and nothing is evicted.
        """
        self.assertIsNotNone(self.store.put(b"a", b"vvvv", 0, NEVER))
        self.assertIsNotNone(self.store.put(b"b", b"vvvv", 0, NEVER))
        self.assertIsNone(self.store.put(b"c", b"vvvv", 0, NEVER))
        self.assertEqual(keysOf(self.store), [b"a", b"b"])
        self.assertEqual((self.store.stats.evictions, self.store.stats.outOfMemory), (0, 1))

    def test_replacingFits(self) -> None:
        """
        A new version of a held item takes its old one's room.
        """
        self.store.put(b"a", b"vvvv", 0, NEVER)
        self.store.put(b"b", b"vvvv", 0, NEVER)
        self.assertIsNotNone(self.store.put(b"a", b"wwww", 0, NEVER))
        self.assertEqual(self.store.get(b"a").value, b"wwww")  # type: ignore[union-attr]

    def test_expiredMakeRoom(self) -> None:
        """
        An expired item is reclaimed to make room, as memcached's -M does.
        """
        self.store.setMemoryLimit(self.size + itemCost(1, 4, True))
        self.store.put(b"a", b"vvvv", 0, START + 5)
        self.store.put(b"b", b"vvvv", 0, NEVER)
        self.assertIsNone(self.store.put(b"c", b"vvvv", 0, NEVER))
        self.clock.advance(5)
        self.assertIsNotNone(self.store.put(b"c", b"vvvv", 0, NEVER))
        self.assertEqual(keysOf(self.store), [b"b", b"c"])
        self.assertEqual((self.store.stats.evictions, self.store.stats.reclaimed), (0, 1))
