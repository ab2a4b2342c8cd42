"""
Integration tests with meta-memcache, a Python client that speaks only the
meta protocol: its get/set/delete/arithmetic, CAS, lease, recache and stale
paths against myproto over loopback.

myproto serves in this process on the reactor; the client blocks, so each
test's client calls run in a thread.  The same tests also run against a
real memcached, to show the client sees no difference.
"""

from __future__ import annotations

import socket
from typing import Any, Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore
from tests import reference
from tests.helpers import waitFor

# meta-memcache is in the test extra: without it these tests error, not skip.
from meta_memcache import (
    CacheClient,
    LeasePolicy,
    RecachePolicy,
    ServerAddress,
    SetMode,
    StalePolicy,
)
from meta_memcache.connection.pool import ConnectionPool

HOST = "127.0.0.1"


def noWait(seconds: float) -> None:
    """
    A lease wait that does not sleep.
    """


class ClientTestsMixin:
    """
    meta-memcache operations, against whatever server L{startServer} starts.
    """

    timeout = 60

    def startServer(self) -> Deferred[int]:
        raise NotImplementedError()

    def setUp(self) -> Deferred[None]:
        async def start() -> None:
            self.port = await self.startServer()
            self.sockets: list[socket.socket] = []
            self.client = self.makeClient()

        return ensureDeferred(start())

    def makeClient(self) -> Any:
        """
        A client whose sockets this test closes when it ends.
        """

        def connect() -> socket.socket:
            connection = socket.create_connection((HOST, self.port), timeout=5)
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sockets.append(connection)
            return connection

        def pool(server: ServerAddress) -> ConnectionPool:
            return ConnectionPool(
                server=str(server),
                socket_factory_fn=connect,
                initial_pool_size=1,
                max_pool_size=2,
            )

        self.addCleanup(self.closeSockets)
        return CacheClient.cache_client_from_servers(
            servers=[ServerAddress(host=HOST, port=self.port)],
            connection_pool_factory_fn=pool,
        )

    def closeSockets(self) -> None:
        for connection in self.sockets:
            connection.close()

    def inThread(self, scenario: Callable[[Any], None]) -> Deferred[None]:
        """
        Run a blocking scenario with the client in a thread.
        """
        return deferToThread(scenario, self.client)

    # get / set / delete

    def test_setAndGet(self) -> Deferred[None]:
        """
        Values of several types round-trip, and a missing key is None.
        """

        def scenario(client: Any) -> None:
            for key, value in [("s", "text"), ("i", 42), ("b", b"\x00\xffbytes"), ("d", {"a": [1, 2]})]:
                self.assertIs(client.set(key, value, ttl=60), True)
                self.assertEqual(client.get(key), value, (key, client.get(key)))
            self.assertIsNone(client.get("missing"))
            self.assertEqual(
                client.multi_get(["s", "i", "missing"]),
                {
                _key("s"): "text",
                _key("i"): 42,
                _key("missing"): None,
            },
            )

        return self.inThread(scenario)

    def test_largeAndOddKeys(self) -> Deferred[None]:
        """
        Keys too long or not ASCII go over the wire in base64 (the b flag),
        and values big enough to be compressed come back whole.
        """

        def scenario(client: Any) -> None:
            value = "x" * 100000
            for key in ["k" * 300, "ключ", "with space"]:
                self.assertIs(client.set(key, value, ttl=60), True)
                self.assertEqual(client.get(key), value)
                self.assertIs(client.delete(key), True)
                self.assertIsNone(client.get(key))

        return self.inThread(scenario)

    def test_noReply(self) -> Deferred[None]:
        """
        Quiet writes are carried out.
        """

        def scenario(client: Any) -> None:
            client.set("q", "v", ttl=60, no_reply=True)
            self.assertEqual(client.get("q"), "v")
            client.delete("q", no_reply=True)
            self.assertIsNone(client.get("q"))

        return self.inThread(scenario)

    def test_deleteAndInvalidate(self) -> Deferred[None]:
        """
        delete reports whether the key existed; invalidate succeeds either
        way.
        """

        def scenario(client: Any) -> None:
            client.set("k", "v", ttl=60)
            self.assertIs(client.delete("k"), True)
            self.assertIs(client.delete("k"), False)
            self.assertIs(client.invalidate("k"), True)

        return self.inThread(scenario)

    def test_touch(self) -> Deferred[None]:
        """
        touch succeeds on an existing key only, and get can touch too.
        """

        def scenario(client: Any) -> None:
            client.set("k", "v", ttl=60)
            self.assertIs(client.touch("k", ttl=120), True)
            self.assertIs(client.touch("missing", ttl=120), False)
            self.assertEqual(client.get("k", touch_ttl=30), "v")

        return self.inThread(scenario)

    def test_setModes(self) -> Deferred[None]:
        """
        Add, replace, append and prepend, and refill (add without failure
        tracking).
        """

        def scenario(client: Any) -> None:
            self.assertIs(client.set("m", "b", ttl=60, set_mode=SetMode.REPLACE), False)
            self.assertIs(client.set("m", "b", ttl=60, set_mode=SetMode.ADD), True)
            self.assertIs(client.set("m", "x", ttl=60, set_mode=SetMode.ADD), False)
            self.assertIs(client.set("m", "c", ttl=60, set_mode=SetMode.APPEND), True)
            self.assertIs(client.set("m", "a", ttl=60, set_mode=SetMode.PREPEND), True)
            self.assertEqual(client.get("m"), "abc")
            self.assertIs(client.set("m", "z", ttl=60, set_mode=SetMode.REPLACE), True)
            self.assertIs(client.refill("m", "y", ttl=60), False)
            self.assertIs(client.refill("n", "y", ttl=60), True)
            self.assertEqual(client.get("m"), "z")

        return self.inThread(scenario)

    # CAS

    def test_cas(self) -> Deferred[None]:
        """
        A write with the CAS token just read succeeds once; a stale token
        is refused.
        """

        def scenario(client: Any) -> None:
            client.set("c", "one", ttl=60)
            value, token = client.get_cas("c")
            self.assertEqual(value, "one")
            self.assertTrue(token)
            newToken = client.set_cas("c", "two", ttl=60, cas_token=token)
            self.assertIsNotNone(newToken)
            self.assertNotEqual(newToken, token)
            self.assertIs(client.set("c", "three", ttl=60, cas_token=token), False)
            self.assertEqual(client.get_cas("c"), ("two", newToken))
            self.assertIs(client.delete("c", cas_token=token), False)
            self.assertIs(client.delete("c", cas_token=newToken), True)
            self.assertEqual(client.multi_get_cas(["c"]), {_key("c"): (None, None)})

        return self.inThread(scenario)

    # arithmetic

    def test_delta(self) -> Deferred[None]:
        """
        Counters: increments, decrements that stop at zero, creation with
        an initial value, and returning the new value.
        """

        def scenario(client: Any) -> None:
            self.assertIs(client.delta("n", 1), False)
            self.assertIs(client.delta_initialize("n", 1, initial_value=10, initial_ttl=60), True)
            self.assertEqual(client.delta_and_get("n", 5), 15)
            self.assertEqual(client.delta_and_get("n", -20), 0)
            self.assertEqual(
                client.delta_initialize_and_get("m", 3, initial_value=7, initial_ttl=60),
                7,
            )
            self.assertEqual(
                client.delta_initialize_and_get("m", 3, initial_value=7, initial_ttl=60),
                10,
            )
            self.assertIs(client.delta("m", 2, refresh_ttl=100), True)
            self.assertEqual(client.delta_and_get("m", 0), 12)
            self.assertIsNone(client.delta_and_get("missing", 1))

        return self.inThread(scenario)

    # herd control

    def test_lease(self) -> Deferred[None]:
        """
        On a miss one client wins the lease and sees a miss; others wait,
        then get the value the winner stored (or a miss when they run out of
        retries).
        """
        policy = LeasePolicy(ttl=30, miss_retries=2, miss_retry_wait=0.01)

        def scenario(client: Any) -> None:
            value, token = client.get_or_lease_cas("l", lease_policy=policy, lease_wait_fn=noWait)
            self.assertIsNone(value)
            self.assertTrue(token)
            self.assertIsNone(client.get_or_lease("l", lease_policy=policy, lease_wait_fn=noWait))
            self.assertIs(client.set("l", "filled", ttl=60, cas_token=token), True)
            self.assertEqual(
                client.get_or_lease("l", lease_policy=policy, lease_wait_fn=noWait),
                "filled",
            )

        return self.inThread(scenario)

    def test_recache(self) -> Deferred[None]:
        """
        When the TTL left is below the recache TTL, one client gets a miss
        to recache; the others keep getting the value.
        """
        policy = RecachePolicy(ttl=30)

        def scenario(client: Any) -> None:
            client.set("r", "old", ttl=10)
            self.assertIsNone(client.get("r", recache_policy=policy))
            self.assertEqual(client.get("r", recache_policy=policy), "old")
            client.set("r", "new", ttl=1000)
            self.assertEqual(client.get("r", recache_policy=policy), "new")

        return self.inThread(scenario)

    def test_staleOnDelete(self) -> Deferred[None]:
        """
        A delete that marks stale leaves the value for all but one client,
        which is told to recache.
        """
        policy = StalePolicy(mark_stale_on_deletion_ttl=30)

        def scenario(client: Any) -> None:
            client.set("s", "value", ttl=600)
            self.assertIs(client.delete("s", stale_policy=policy), True)
            self.assertIsNone(client.get("s"))
            self.assertEqual(client.get("s"), "value")
            client.set("s", "fresh", ttl=600)
            self.assertEqual(client.get("s"), "fresh")

        return self.inThread(scenario)

    def test_staleOnCasMismatch(self) -> Deferred[None]:
        """
        With mark_stale_on_cas_mismatch, a write with an older CAS token
        still stores, but as stale.
        """
        policy = StalePolicy(mark_stale_on_cas_mismatch=True)

        def scenario(client: Any) -> None:
            client.set("s", "one", ttl=600)
            _, token = client.get_cas("s")
            client.set("s", "two", ttl=600)
            self.assertIs(
                client.set("s", "late", ttl=600, cas_token=token, stale_policy=policy),
                True,
            )
            self.assertIsNone(client.get("s"))
            self.assertEqual(client.get("s"), "late")
            self.assertIs(client.set("s", "later", ttl=600, cas_token=token), False)

        return self.inThread(scenario)


def _key(name: str) -> Any:
    from meta_memcache import Key

    return Key(name)


class MyprotoClientTests(ClientTestsMixin, TestCase):
    """
    meta-memcache against myproto.
    """

    def startServer(self) -> Deferred[int]:
        self.factory = CacheServerFactory(MemoryStore(reactor), reactor)
        port = reactor.listenTCP(0, self.factory, interface=HOST)
        self.addCleanup(self.waitForDisconnects)
        self.addCleanup(port.stopListening)
        return succeed(int(port.getHost().port))

    async def waitForDisconnects(self) -> None:
        """
        Let the server see the client's connections close, so that none is
        left open on the reactor.
        """
        await waitFor(
            lambda: not self.factory.cache.stats.currConnections,
            10.0,
            "the server to see the client's connections close",
        )


class MemcachedClientTests(ClientTestsMixin, TestCase):
    """
    meta-memcache against memcached 1.6.18, for comparison.
    """

    def startServer(self) -> Deferred[int]:
        async def start() -> int:
            server = await reference.startMemcached(self, options=reference.NO_LRU_THREADS)
            return server.port

        return ensureDeferred(start())

