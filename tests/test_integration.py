"""
Loopback tests with memcached clients nobody here wrote: pymemcache
(blocking, so it runs in a thread while the reactor serves) and Twisted's
own L{twisted.protocols.memcache.MemCacheProtocol}.

The server runs inside the trial process on the real reactor, listening on
127.0.0.1 on a port the system picks.  Every test closes its clients and
waits until the server has seen each connection go before the port stops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import connectionDone
from twisted.internet.threads import deferToThread
from twisted.protocols.memcache import MemCacheProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory, CacheServerProtocol
from myproto.store import MemoryStore

# pymemcache is in the test extra: without it these tests error, not skip.
from pymemcache.client.base import Client as PymemcacheClient
from pymemcache.exceptions import MemcacheServerError

T = TypeVar("T")

# A value no text protocol parser may split on.
BINARY = b"line one\r\nEND\r\nVALUE fake 0 1\r\n\x00\xff\r\n"


class TrackedProtocol(CacheServerProtocol):
    """
    A server connection that tells its factory when it is gone.
    """

    factory: TrackingFactory

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.factory.connectionGone(self)


class TrackingFactory(CacheServerFactory):
    """
    The real factory, keeping count of open connections so that a test can
    wait until the server has closed them all.
    """

    protocol = TrackedProtocol

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[CacheServerProtocol] = set()
        self._waiting: list[Deferred[None]] = []

    def buildProtocol(self, addr: Any) -> CacheServerProtocol:
        protocol = super().buildProtocol(addr)
        self.connections.add(protocol)
        return protocol

    def connectionGone(self, protocol: CacheServerProtocol) -> None:
        self.connections.discard(protocol)
        if not self.connections:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def allClosed(self) -> Deferred[None]:
        """
        @return: a L{Deferred} that fires once no connection is open.
        """
        if not self.connections:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        return d


class LoopbackTestCase(TestCase):
    """
    Starts a server on 127.0.0.1, port 0, for each test.
    """

    settings = ServerSettings()

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        store = MemoryStore(
            reactor,
            maxBytes=self.settings.memoryLimit,
            maxItemSize=self.settings.maxItemSize,
            useCas=self.settings.useCas,
        )
        self.factory = TrackingFactory(store, reactor, self.settings)
        self.port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        # Cleanups run last first: the clients' run before this one.
        self.addCleanup(self.factory.allClosed)
        self.portNumber = self.port.getHost().port


class PymemcacheTests(LoopbackTestCase):
    """
    pymemcache, a blocking client, run in a thread with L{deferToThread}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.client = PymemcacheClient(("127.0.0.1", self.portNumber), connect_timeout=5, timeout=5)
        self.addCleanup(self._closeClient)

    def _closeClient(self) -> Deferred[None]:
        return deferToThread(self.client.close)

    def call(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> Deferred[T]:
        """
        Run one blocking client call in the reactor's thread pool.
        """
        return deferToThread(method, *args, **kwargs)

    async def test_setGet(self) -> None:
        """
        C{set} then C{get} round-trips a value.
        """
        self.assertTrue(await self.call(self.client.set, "k", b"hello", noreply=False))
        self.assertEqual(await self.call(self.client.get, "k"), b"hello")
        self.assertIsNone(await self.call(self.client.get, "missing"))

    async def test_binaryValue(self) -> None:
        """
        Values with CRLF, reply-like lines, NUL and high bytes survive.
        """
        await self.call(self.client.set, "bin", BINARY, noreply=False)
        self.assertEqual(await self.call(self.client.get, "bin"), BINARY)

    async def test_largeValue(self) -> None:
        """
        A value near the 1 MB item limit makes it whole; one over it is
        refused.
        """
        big = bytes(range(256)) * 4000
        self.assertTrue(await self.call(self.client.set, "big", big, noreply=False))
        self.assertEqual(await self.call(self.client.get, "big"), big)
        tooBig = b"x" * (1024 * 1024)
        with self.assertRaises(MemcacheServerError) as caught:
            await self.call(self.client.set, "big", tooBig, noreply=False)
        self.assertIn("object too large for cache", str(caught.exception))
        self.assertIsNone(await self.call(self.client.get, "big"))

    async def test_noreplySet(self) -> None:
        """
        pymemcache's default C{noreply} sets are stored without a reply.
        """
        await self.call(self.client.set, "quiet", b"1")
        self.assertEqual(await self.call(self.client.get, "quiet"), b"1")

    async def test_getsCas(self) -> None:
        """
        C{gets} gives a unique that C{cas} accepts once.
        """
        await self.call(self.client.set, "k", b"a", noreply=False)
        value, unique = await self.call(self.client.gets, "k")
        self.assertEqual(value, b"a")
        self.assertTrue(await self.call(self.client.cas, "k", b"b", unique, noreply=False))
        self.assertFalse(await self.call(self.client.cas, "k", b"c", unique, noreply=False))
        self.assertIsNone(await self.call(self.client.cas, "nope", b"c", unique, noreply=False))
        self.assertEqual(await self.call(self.client.get, "k"), b"b")

    async def test_addReplace(self) -> None:
        """
        C{add} only adds, C{replace} only replaces.
        """
        self.assertFalse(await self.call(self.client.replace, "k", b"1", noreply=False))
        self.assertTrue(await self.call(self.client.add, "k", b"1", noreply=False))
        self.assertFalse(await self.call(self.client.add, "k", b"2", noreply=False))
        self.assertTrue(await self.call(self.client.replace, "k", b"3", noreply=False))
        self.assertEqual(await self.call(self.client.get, "k"), b"3")

    async def test_appendPrepend(self) -> None:
        """
        C{append} and C{prepend} extend existing values only.
        """
        self.assertFalse(await self.call(self.client.append, "k", b"x", noreply=False))
        await self.call(self.client.set, "k", b"mid", noreply=False)
        self.assertTrue(await self.call(self.client.append, "k", b">", noreply=False))
        self.assertTrue(await self.call(self.client.prepend, "k", b"<", noreply=False))
        self.assertEqual(await self.call(self.client.get, "k"), b"<mid>")

    async def test_delete(self) -> None:
        """
        C{delete} reports whether there was something to delete.
        """
        await self.call(self.client.set, "k", b"v", noreply=False)
        self.assertTrue(await self.call(self.client.delete, "k", noreply=False))
        self.assertFalse(await self.call(self.client.delete, "k", noreply=False))
        self.assertIsNone(await self.call(self.client.get, "k"))

    async def test_incrDecr(self) -> None:
        """
        C{incr} and C{decr} do 64-bit unsigned arithmetic.
        """
        self.assertIsNone(await self.call(self.client.incr, "n", 1, noreply=False))
        await self.call(self.client.set, "n", b"10", noreply=False)
        self.assertEqual(await self.call(self.client.incr, "n", 5, noreply=False), 15)
        self.assertEqual(await self.call(self.client.decr, "n", 100, noreply=False), 0)
        await self.call(self.client.set, "n", b"18446744073709551615", noreply=False)
        self.assertEqual(await self.call(self.client.incr, "n", 2, noreply=False), 1)

    async def test_touch(self) -> None:
        """
        C{touch} finds present keys only; a negative exptime expires the
        item.
        """
        self.assertFalse(await self.call(self.client.touch, "k", 100, noreply=False))
        await self.call(self.client.set, "k", b"v", noreply=False)
        self.assertTrue(await self.call(self.client.touch, "k", 100, noreply=False))
        self.assertEqual(await self.call(self.client.get, "k"), b"v")
        self.assertTrue(await self.call(self.client.touch, "k", -1, noreply=False))
        self.assertIsNone(await self.call(self.client.get, "k"))

    async def test_multiGet(self) -> None:
        """
        C{get_many} returns the keys that exist.
        """
        await self.call(self.client.set_many, {"a": b"1", "b": BINARY, "c": b"3"}, noreply=False)
        found = await self.call(self.client.get_many, ["a", "b", "x", "c"])
        self.assertEqual(found, {"a": b"1", "b": BINARY, "c": b"3"})

    async def test_flushAll(self) -> None:
        """
        C{flush_all} empties the cache.
        """
        await self.call(self.client.set, "k", b"v", noreply=False)
        self.assertTrue(await self.call(self.client.flush_all, noreply=False))
        self.assertIsNone(await self.call(self.client.get, "k"))

    async def test_statsVersion(self) -> None:
        """
        C{stats} parses, with counters that match what was done, and
        C{version} is memcached's.
        """
        await self.call(self.client.set, "k", b"v", noreply=False)
        await self.call(self.client.get, "k")
        await self.call(self.client.get, "missing")
        stats = await self.call(self.client.stats)
        self.assertEqual(stats[b"get_hits"], 1)
        self.assertEqual(stats[b"get_misses"], 1)
        self.assertEqual(stats[b"curr_items"], 1)
        self.assertEqual(stats[b"curr_connections"], 1)
        self.assertEqual(await self.call(self.client.version), b"1.6.18")

    async def test_quit(self) -> None:
        """
        C{quit} makes the server close the connection.
        """
        await self.call(self.client.set, "k", b"v", noreply=False)
        await self.call(self.client.quit)
        await self.factory.allClosed()
        self.assertEqual(self.factory.connections, set())


class EndOfReply(MemCacheProtocol):
    """
    Twisted's memcache client, telling when its connection is gone.
    """

    def __init__(self) -> None:
        super().__init__()
        self.lost: Deferred[None] = Deferred()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.lost.callback(None)


class TwistedClientTests(LoopbackTestCase):
    """
    L{MemCacheProtocol}, Twisted's asynchronous memcache client.
    """

    async def connect(self) -> EndOfReply:
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.portNumber)
        client = await connectProtocol(endpoint, EndOfReply())
        self.addCleanup(self._disconnect, client)
        return client

    async def _disconnect(self, client: EndOfReply) -> None:
        if not client.lost.called:
            client.transport.loseConnection()
            await client.lost

    async def test_setGet(self) -> None:
        """
        C{set} then C{get}, flags included.
        """
        client = await self.connect()
        self.assertTrue(await client.set(b"k", b"hello", flags=42))
        self.assertEqual(await client.get(b"k"), (42, b"hello"))
        self.assertEqual(await client.get(b"missing"), (0, None))

    async def test_binaryValue(self) -> None:
        """
        Values with CRLF and reply-like lines survive.
        """
        client = await self.connect()
        await client.set(b"bin", BINARY)
        self.assertEqual(await client.get(b"bin"), (0, BINARY))

    async def test_checkAndSet(self) -> None:
        """
        The identifier from C{gets} lets C{cas} store once.
        """
        client = await self.connect()
        await client.set(b"k", b"a")
        _, unique, value = await client.get(b"k", withIdentifier=True)
        self.assertEqual(value, b"a")
        self.assertTrue(await client.checkAndSet(b"k", b"b", unique))
        self.assertFalse(await client.checkAndSet(b"k", b"c", unique))
        self.assertEqual(await client.get(b"k"), (0, b"b"))

    async def test_addReplaceAppendPrepend(self) -> None:
        """
        The conditional stores and the concatenations.
        """
        client = await self.connect()
        self.assertFalse(await client.replace(b"k", b"x"))
        self.assertFalse(await client.append(b"k", b"x"))
        self.assertTrue(await client.add(b"k", b"mid"))
        self.assertFalse(await client.add(b"k", b"again"))
        self.assertTrue(await client.append(b"k", b">"))
        self.assertTrue(await client.prepend(b"k", b"<"))
        self.assertTrue(await client.replace(b"k", b"[" + (await client.get(b"k"))[1] + b"]"))
        self.assertEqual(await client.get(b"k"), (0, b"[<mid>]"))

    async def test_deleteIncrDecr(self) -> None:
        """
        C{delete}, C{incr}, C{decr}.
        """
        client = await self.connect()
        await client.set(b"n", b"7")
        self.assertEqual(await client.increment(b"n", 3), 10)
        self.assertEqual(await client.decrement(b"n", 20), 0)
        self.assertTrue(await client.delete(b"n"))
        self.assertFalse(await client.delete(b"n"))

    async def test_multiGet(self) -> None:
        """
        C{getMultiple} in one request.
        """
        client = await self.connect()
        await client.set(b"a", b"1", flags=1)
        await client.set(b"b", BINARY, flags=2)
        found = await client.getMultiple([b"a", b"b", b"x"])
        self.assertEqual(found, {b"a": (1, b"1"), b"b": (2, BINARY), b"x": (0, None)})

    async def test_pipelined(self) -> None:
        """
        Many requests sent before any reply is read come back in order.
        """
        client = await self.connect()
        sets = [client.set(b"k%d" % (i,), b"%d" % (i,)) for i in range(200)]
        gets = [client.get(b"k%d" % (i,)) for i in range(200)]
        for d in sets:
            self.assertTrue(await d)
        for i, d in enumerate(gets):
            self.assertEqual(await d, (0, b"%d" % (i,)))

    async def test_flushStatsVersion(self) -> None:
        """
        C{flush_all}, C{stats} and C{version}.
        """
        client = await self.connect()
        await client.set(b"k", b"v")
        self.assertTrue(await client.flushAll())
        self.assertEqual(await client.get(b"k"), (0, None))
        stats = await client.stats()
        self.assertEqual(stats[b"cmd_flush"], b"1")
        self.assertEqual(stats[b"version"], b"1.6.18")
        self.assertEqual(await client.version(), b"1.6.18")

    async def test_twoClients(self) -> None:
        """
        Two connections share one cache.
        """
        first = await self.connect()
        second = await self.connect()
        await first.set(b"shared", b"v")
        self.assertEqual(await second.get(b"shared"), (0, b"v"))
        stats = await second.stats()
        self.assertEqual(stats[b"curr_connections"], b"2")
