"""
Tests for L{myproto.commands}' shared meanings on a L{Cache} with a
L{Clock}: the outcome of each storage mode, counter and deletion, whichever
protocol asks.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from myproto.cache import Cache
from myproto.commands.arithmetic import addDelta
from myproto.commands.items import deleteItem
from myproto.commands.storage import ADD, APPEND, CAS, PREPEND, REPLACE, SET, admitItem, storeItem
from myproto.config import ServerSettings
from myproto.errors import ClientError, ServerError
from myproto.store import MemoryStore
from myproto.wire.replies import DELETED, EXISTS, NOT_FOUND, NOT_STORED, STORED


def newCache() -> Cache:
    clock = Clock()
    clock.advance(1_700_000_000)
    return Cache(MemoryStore(clock), ServerSettings())


class StorageTests(SynchronousTestCase):
    """
    L{storeItem} is memcached's C{do_store_item}: one outcome per mode.
    """

    def setUp(self) -> None:
        self.cache = newCache()

    def store(self, mode: bytes, value: bytes = b"new", compareCas: int = 0) -> object:
        outcome, _ = storeItem(self.cache, mode, b"k", value, 0, 0.0, compareCas)
        return outcome

    def value(self) -> bytes | None:
        item = self.cache.store.peek(b"k")
        return None if item is None else item.value

    def test_missing(self) -> None:
        """
        With no item: set and add store; replace, append and prepend do not;
        cas finds nothing.
        """
        outcomes = {}
        for mode in (REPLACE, APPEND, PREPEND, CAS, ADD):
            outcomes[mode] = self.store(mode, compareCas=1)
            self.cache.store.delete(b"k")
        outcomes[SET] = self.store(SET)
        self.assertEqual(
            outcomes,
            {
                REPLACE: NOT_STORED,
                APPEND: NOT_STORED,
                PREPEND: NOT_STORED,
                CAS: NOT_FOUND,
                ADD: STORED,
                SET: STORED,
            },
        )
        self.assertEqual((self.cache.stats.cmdSet, self.cache.stats.casMisses), (6, 1))

    def test_present(self) -> None:
        """
        With an item: add does not store; append and prepend join; cas
        stores only with the item's own CAS unique.
        """
        self.store(SET, b"b")
        self.assertEqual(self.store(ADD), NOT_STORED)
        self.assertEqual((self.store(APPEND, b"c"), self.store(PREPEND, b"a")), (STORED, STORED))
        self.assertEqual(self.value(), b"abc")
        item = self.cache.store.peek(b"k")
        self.assertIsNotNone(item)
        self.assertEqual(self.store(CAS, b"x", item.cas + 1), EXISTS)
        self.assertEqual(self.store(CAS, b"x", 0), EXISTS)
        self.assertEqual(self.store(CAS, b"x", item.cas), STORED)
        self.assertEqual(self.value(), b"x")
        stats = self.cache.stats
        self.assertEqual((stats.casHits, stats.casBadval), (1, 2))

    def test_appendComparesCas(self) -> None:
        """
        An append given a CAS unique (C{ms MA C...}) stores only on a match.
        """
        self.store(SET, b"a")
        self.assertEqual(self.store(APPEND, b"b", compareCas=999), EXISTS)
        self.assertEqual(self.value(), b"a")

    def test_tooLarge(self) -> None:
        """
        L{admitItem} refuses an item over the size limit, counting it, and
        drops the old item when asked.
        """
        self.store(SET, b"old")
        for dropOld in (False, True):
            self.assertRaises(ServerError, admitItem, self.cache, b"k", 2**21, 0, SET, dropOld)
            self.assertEqual(self.value(), None if dropOld else b"old")
        self.assertEqual(self.cache.stats.storeTooLarge, 2)


class CounterTests(SynchronousTestCase):
    """
    L{addDelta} is memcached's C{do_add_delta}.
    """

    def setUp(self) -> None:
        self.cache = newCache()

    def test_wrapsAndStops(self) -> None:
        """
        An increment wraps at 2**64; a decrement stops at zero.
        """
        self.cache.store.put(b"n", b"18446744073709551615", 0, 0.0)
        outcome, _, digits = addDelta(self.cache, b"n", True, 2)
        self.assertEqual((outcome, digits), (STORED, b"1"))
        self.assertEqual(addDelta(self.cache, b"n", False, 5)[2], b"0")

    def test_missingAndMismatch(self) -> None:
        """
        A missing counter is L{NOT_FOUND}; a CAS mismatch L{EXISTS}; a
        value that is not a number an error.
        """
        self.assertEqual(addDelta(self.cache, b"n", True, 1), (NOT_FOUND, None, b""))
        item = self.cache.store.put(b"n", b"5", 0, 0.0)
        self.assertIsNotNone(item)
        self.assertEqual(addDelta(self.cache, b"n", True, 1, item.cas + 1), (EXISTS, None, b""))
        self.cache.store.put(b"t", b"five", 0, 0.0)
        self.assertRaises(ClientError, addDelta, self.cache, b"t", True, 1)

    def test_inPlaceUnlessShown(self) -> None:
        """
        A result no longer than the value is written in place, padded with
        spaces, unless a reply not yet written shows the item.
        """
        item = self.cache.store.put(b"n", b"10", 0, 0.0)
        self.assertIsNotNone(item)
        addDelta(self.cache, b"n", False, 1)
        self.assertEqual(self.cache.store.peek(b"n").value, b"9 ")  # type: ignore[union-attr]
        shown = self.cache.store.peek(b"n")
        self.assertIsNotNone(shown)
        shown.replyWindow = self.cache.replyWindow
        addDelta(self.cache, b"n", False, 1)
        self.assertEqual(self.cache.store.peek(b"n").value, b"8")  # type: ignore[union-attr]


class DeletionTests(SynchronousTestCase):
    """
    L{deleteItem}, for C{delete} and C{md}.
    """

    def test_outcomes(self) -> None:
        """
        Deleting removes; a CAS mismatch refuses; invalidating keeps the
        item, stale, with a new CAS unique.
        """
        cache = newCache()
        self.assertEqual(deleteItem(cache, b"k"), NOT_FOUND)
        item = cache.store.put(b"k", b"v", 0, 0.0)
        self.assertIsNotNone(item)
        self.assertEqual(deleteItem(cache, b"k", compareCas=item.cas + 1), EXISTS)
        oldCas = item.cas
        self.assertEqual(deleteItem(cache, b"k", invalidate=True), DELETED)
        self.assertTrue(item.stale)
        self.assertNotEqual(item.cas, oldCas)
        self.assertEqual(deleteItem(cache, b"k"), DELETED)
        self.assertIsNone(cache.store.peek(b"k"))
        stats = cache.stats
        self.assertEqual((stats.deleteHits, stats.deleteMisses), (1, 2))
