"""
Tests for L{myproto.local}: the typed, in-process access to a served cache.

Each operation is checked against what a network client sees on the same
cache, through the real factory on a L{StringTransport}, so that the two
cannot drift apart.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from myproto.config import ServerSettings
from myproto.errors import ClientError, ServerError
from myproto.local import LocalClient, encodeKey
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore

START = 1_700_000_000


class LocalClientTests(SynchronousTestCase):
    """
    L{LocalClient} reads and writes the cache a factory serves.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        settings = ServerSettings(maxItemSize=1024)
        store = MemoryStore(self.clock, maxItemSize=settings.maxItemSize)
        self.factory = CacheServerFactory(store, self.clock, settings)
        self.local = LocalClient(self.factory.cache)

    def network(self, request: bytes) -> bytes:
        """
        Send C{request} as a network client on a new connection.

        @return: the bytes the server answered.
        """
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(request)
        proto.connectionLost()
        return transport.value()

    def test_setThenNetworkGet(self) -> None:
        """
        What C{set} stores, with its flags, a network client reads.
        """
        self.assertTrue(self.local.set(b"k", b"abc", flags=7))
        self.assertEqual(self.network(b"get k\r\n"), b"VALUE k 7 3\r\nabc\r\nEND\r\n")

    def test_networkSetThenGet(self) -> None:
        """
        What a network client stores, C{get} and C{gets} read.
        """
        self.network(b"set k 5 0 2\r\nhi\r\n")
        self.assertEqual(self.local.get(b"k"), b"hi")
        found = self.local.gets(b"k")
        self.assertIsNotNone(found)
        self.assertEqual((found.value, found.flags), (b"hi", 5))
        self.assertEqual(
            self.network(b"gets k\r\n"),
            b"VALUE k 5 2 %d\r\nhi\r\nEND\r\n" % (found.cas,),
        )

    def test_textKeysAndValues(self) -> None:
        """
        L{str} keys and values are stored as UTF-8.
        """
        self.local.set("clé", "é")
        self.assertEqual(self.local.get("clé".encode("utf-8")), "é".encode("utf-8"))

    def test_missing(self) -> None:
        """
        A key with no live item reads as L{None}.
        """
        self.assertIsNone(self.local.get(b"nothing"))
        self.assertIsNone(self.local.gets(b"nothing"))
        self.assertEqual(self.local.getMany([]), {})

    def test_getMany(self) -> None:
        """
        C{getMany} returns the keys that have items, and only those.
        """
        self.local.set(b"a", b"1")
        self.local.set(b"c", b"3")
        self.assertEqual(self.local.getMany([b"a", b"b", "c"]), {b"a": b"1", b"c": b"3"})

    def test_expiry(self) -> None:
        """
        Expiry times mean what they mean on the wire: seconds from now.
        """
        self.local.set(b"k", b"v", expire=10)
        self.clock.advance(9)
        self.assertEqual(self.local.get(b"k"), b"v")
        self.assertTrue(self.local.touch(b"k", 20))
        self.clock.advance(19)
        self.assertEqual(self.local.get(b"k"), b"v")
        self.clock.advance(1)
        self.assertIsNone(self.local.get(b"k"))
        self.assertFalse(self.local.touch(b"k", 20))

    def test_addReplace(self) -> None:
        """
        C{add} stores only new keys, C{replace} only existing ones.
        """
        self.assertFalse(self.local.replace(b"k", b"1"))
        self.assertTrue(self.local.add(b"k", b"1"))
        self.assertFalse(self.local.add(b"k", b"2"))
        self.assertTrue(self.local.replace(b"k", b"3"))
        self.assertEqual(self.local.get(b"k"), b"3")

    def test_appendPrepend(self) -> None:
        """
        C{append} and C{prepend} need an item and keep its flags.
        """
        self.assertFalse(self.local.append(b"k", b"x"))
        self.local.set(b"k", b"mid", flags=3)
        self.assertTrue(self.local.append(b"k", b">"))
        self.assertTrue(self.local.prepend(b"k", b"<"))
        found = self.local.gets(b"k")
        self.assertIsNotNone(found)
        self.assertEqual((found.value, found.flags), (b"<mid>", 3))

    def test_cas(self) -> None:
        """
        C{cas} stores only over the version C{gets} saw: L{True} when
        stored, L{False} when changed since, L{None} when gone.
        """
        self.assertIsNone(self.local.cas(b"k", b"v", 1))
        self.local.set(b"k", b"v1")
        seen = self.local.gets(b"k")
        self.assertIsNotNone(seen)
        self.network(b"set k 0 0 2\r\nv2\r\n")
        self.assertFalse(self.local.cas(b"k", b"v3", seen.cas))
        fresh = self.local.gets(b"k")
        self.assertIsNotNone(fresh)
        self.assertTrue(self.local.cas(b"k", b"v3", fresh.cas))
        self.assertEqual(self.local.get(b"k"), b"v3")

    def test_delete(self) -> None:
        """
        C{delete} says whether there was an item.
        """
        self.local.set(b"k", b"v")
        self.assertTrue(self.local.delete(b"k"))
        self.assertFalse(self.local.delete(b"k"))
        self.assertEqual(self.network(b"get k\r\n"), b"END\r\n")

    def test_arithmetic(self) -> None:
        """
        C{incr} wraps at 2**64, C{decr} stops at 0, and both keep the
        protocol's in-place rule (a shorter result is padded with spaces).
        """
        self.assertIsNone(self.local.incr(b"n"))
        self.local.set(b"n", b"18446744073709551615")
        self.assertEqual(self.local.incr(b"n", 2), 1)
        self.local.set(b"n", b"10")
        self.assertEqual(self.local.decr(b"n", 1), 9)
        self.assertEqual(self.network(b"get n\r\n"), b"VALUE n 0 2\r\n9 \r\nEND\r\n")
        self.assertEqual(self.local.decr(b"n", 100), 0)

    def test_arithmeticOnText(self) -> None:
        """
        C{incr} on a value that is not a number raises the client's error.
        """
        self.local.set(b"k", b"abc")
        error = self.assertRaises(ClientError, self.local.incr, b"k")
        self.assertEqual(
            error.wire(), b"CLIENT_ERROR cannot increment or decrement non-numeric value"
        )

    def test_tooLarge(self) -> None:
        """
        An item over the size limit raises the client's error and, as with
        a refused C{set} on the wire, removes the old value.
        """
        self.local.set(b"k", b"small")
        error = self.assertRaises(ServerError, self.local.set, b"k", b"x" * 2000)
        self.assertEqual(error.wire(), b"SERVER_ERROR object too large for cache")
        self.assertIsNone(self.local.get(b"k"))

    def test_flushAll(self) -> None:
        """
        C{flushAll} empties the cache, now or after a delay.
        """
        self.local.set(b"a", b"1")
        self.local.flushAll()
        self.assertIsNone(self.local.get(b"a"))
        self.local.set(b"b", b"2")
        self.local.flushAll(5)
        self.assertEqual(self.local.get(b"b"), b"2")
        self.clock.advance(5)
        self.assertIsNone(self.local.get(b"b"))

    def test_statsCountLocalCommands(self) -> None:
        """
        Local commands count in the statistics as a client's would.
        """
        self.local.set(b"k", b"v")
        self.local.get(b"k")
        self.local.get(b"missing")
        stats = self.local.stats()
        self.assertEqual(
            (stats["cmd_set"], stats["get_hits"], stats["get_misses"], stats["curr_items"]),
            ("1", "1", "1", "1"),
        )

    def test_badArguments(self) -> None:
        """
        Arguments no client could send raise L{ValueError}, and store
        nothing.
        """
        for key in (b"", b"a b", b"tab\t", b"x" * 251, "new\nline"):
            self.assertRaises(ValueError, self.local.set, key, b"v")
        self.assertRaises(ValueError, self.local.set, b"k", b"v", flags=-1)
        self.assertRaises(ValueError, self.local.set, b"k", b"v", flags=2**32)
        self.assertRaises(ValueError, self.local.incr, b"k", -1)
        self.assertEqual(self.local.stats()["curr_items"], "0")

    def test_longestKey(self) -> None:
        """
        A 250-byte key is accepted, as on the wire.
        """
        self.assertEqual(encodeKey("k" * 250), b"k" * 250)
