"""
Scaling out the memcached way: several independent myproto servers, and a
client that spreads keys over them by hashing (pymemcache's L{HashClient}).

The servers run in this process on the real reactor, each on a free port on
127.0.0.1 (L{myproto.testing.startServer}).  pymemcache blocks, so each step
of a client runs in a thread (L{deferToThread}) while the reactor serves;
the test inspects each server's cache directly through its C{client}
(L{myproto.local.LocalClient}), in the reactor thread, between steps.

What pymemcache 4.0's HashClient does when a server stops, as these tests
show.  A call for a key on that server fails; with C{ignore_exc=True} it
returns what a miss returns (L{None} for C{get}, L{False} for C{set}),
otherwise it raises.  The first call meets the connection the server closed:
that error is not counted, but the client drops the connection.  The next
call cannot connect, and the server is marked failed.  Later calls retry it
(no sooner than C{retry_timeout} after the last failure; in between they
return the miss without trying) and each failure counts; once
C{retry_attempts} retries have failed, the next call removes the server from
the hash ring (with C{retry_attempts=0}, the first failed connect does), and
from then on its keys hash to the remaining servers.  Keys of the other
servers never move.  After C{dead_timeout} seconds the client puts the
server back in the ring.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from myproto.embedded import EmbeddedServer, serve
from myproto.testing import startServer
from tests.helpers import waitForInThread

# pymemcache is in the test extra: without it these tests error, not skip.
from pymemcache.client.hash import HashClient

KEYS = ["user:%d" % (number,) for number in range(300)]

# Calls, for keys of a stopped server, that are enough for HashClient (with
# retry_attempts=1) to give the server up: one may meet the connection the
# server closed, one fails to connect and marks the server failed, one retry
# fails, and the next removes it.
CALLS_TO_GIVE_UP = 6


def nodeName(server: EmbeddedServer) -> str:
    """
    @return: the name HashClient gives the server in its hash ring.
    """
    return "%s:%d" % server.address


def valueFor(key: str) -> bytes:
    return ("value of " + key).encode("ascii")


class ScaleOutTests(TestCase):
    """
    Three myproto servers behind one L{HashClient}.
    """

    async def startServers(self) -> list[EmbeddedServer]:
        """
        @return: three servers, stopped when the test ends.
        """
        return [await startServer(self) for _ in range(3)]

    def hashClient(self, servers: list[EmbeddedServer], **options: Any) -> Any:
        """
        @return: a HashClient over C{servers}, waiting for every reply
            (C{default_noreply=False}), closed when the test ends.
        """
        client = HashClient(
            [server.address for server in servers],
            default_noreply=False,
            connect_timeout=5,
            timeout=5,
            **options,
        )
        self.addCleanup(deferToThread, client.close)
        return client

    def inThread(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        return deferToThread(function, *args)

    def owners(self, client: Any, servers: list[EmbeddedServer]) -> dict[str, EmbeddedServer]:
        """
        @return: the server the client's ring picks for each key.
        """
        byName = {nodeName(server): server for server in servers}
        return {key: byName[client.hasher.get_node(key)] for key in KEYS}

    def assertHeldBy(self, owners: dict[str, EmbeddedServer], servers: list[EmbeddedServer]) -> None:
        """
        Each key's item is on the server C{owners} names, and on no other.
        """
        for key, owner in owners.items():
            for server in servers:
                expected = valueFor(key) if server is owner else None
                self.assertEqual((key, server.client.get(key)), (key, expected))

    async def test_keysSpreadOverEveryServer(self) -> None:
        """
        Stored through the HashClient, the keys spread over all three
        servers, each key on the server the client's hash picks and only
        there, and every key reads back.
        """
        servers = await self.startServers()
        client = self.hashClient(servers)
        stored = await self.inThread(lambda: [client.set(key, valueFor(key)) for key in KEYS])
        self.assertEqual(stored, [True] * len(KEYS))
        counts = [int(server.client.stats()["curr_items"]) for server in servers]
        self.assertEqual(sum(counts), len(KEYS))
        # Rendezvous hashing gives each of three servers about a third.
        for count in counts:
            self.assertGreater(count, len(KEYS) // 6)
        self.assertHeldBy(self.owners(client, servers), servers)
        values = await self.inThread(client.get_many, KEYS)
        self.assertEqual(values, {key: valueFor(key) for key in KEYS})

    async def test_oneServerStops(self) -> None:
        """
        With C{ignore_exc=True}, when one server stops the client raises
        nothing: calls for its keys return misses while the other keys
        still hit.  The first call meets the connection the server closed
        (not counted as a failure; the client drops the connection), the
        next cannot connect and marks the server failed, C{retry_attempts}
        retries fail, and the call after them removes the server from the
        ring.  Its keys then hash to the other two, which start without them
        and take them when they are stored; the other keys never move.
        """
        servers = await self.startServers()
        client = self.hashClient(servers, ignore_exc=True, retry_attempts=1, retry_timeout=0)
        await self.inThread(lambda: [client.set(key, valueFor(key)) for key in KEYS])
        before = self.owners(client, servers)
        stopped = servers[1]
        survivors = [servers[0], servers[2]]
        lost = [key for key, owner in before.items() if owner is stopped]
        kept = [key for key, owner in before.items() if owner is not stopped]
        self.assertGreater(len(lost), CALLS_TO_GIVE_UP)

        await stopped.stop()

        def whileDown() -> tuple[list[tuple[bool, Any]], list[Any]]:
            trace = []
            for key in lost[:CALLS_TO_GIVE_UP]:
                inRing = nodeName(stopped) in client.hasher.nodes
                trace.append((inRing, client.get(key)))
            return trace, [client.get(key) for key in kept]

        trace, keptValues = await self.inThread(whileDown)
        self.assertEqual([value for inRing, value in trace], [None] * CALLS_TO_GIVE_UP)
        self.assertEqual(keptValues, [valueFor(key) for key in kept])
        # In the ring for the closed connection (if the client met it before
        # the server's reset), the failed connect, one failed retry, and the
        # call that removes it; out of it after.
        callsInRing = [inRing for inRing, value in trace].count(True)
        self.assertIn(callsInRing, {3, 4})
        self.assertEqual(
            [inRing for inRing, value in trace],
            [True] * callsInRing + [False] * (CALLS_TO_GIVE_UP - callsInRing),
        )

        after = self.owners(client, survivors)
        for key in kept:
            self.assertIs(after[key], before[key])
        values = await self.inThread(client.get_many, lost)
        self.assertEqual(values, {})
        stored = await self.inThread(lambda: [client.set(key, valueFor(key)) for key in lost])
        self.assertEqual(stored, [True] * len(lost))
        self.assertHeldBy(after, survivors)
        values = await self.inThread(client.get_many, KEYS)
        self.assertEqual(values, {key: valueFor(key) for key in KEYS})

    async def test_oneServerStopsWithoutIgnoreExc(self) -> None:
        """
        Without C{ignore_exc} (pymemcache's default), the same calls raise
        instead: first the closed connection's error, then
        C{ConnectionRefusedError} until the client removes the server; then
        it carries on with the other two.
        """
        servers = await self.startServers()
        client = self.hashClient(servers, retry_attempts=1, retry_timeout=0)
        await self.inThread(lambda: [client.set(key, valueFor(key)) for key in KEYS])
        stopped = servers[0]
        lost = [key for key, owner in self.owners(client, servers).items() if owner is stopped]
        await stopped.stop()

        def whileDown() -> list[str]:
            errors = []
            for key in lost[:CALLS_TO_GIVE_UP]:
                try:
                    client.get(key)
                except Exception as error:
                    errors.append(type(error).__name__)
                else:
                    errors.append("")
            return errors

        errors = await self.inThread(whileDown)
        closed = {"MemcacheUnexpectedCloseError", "BrokenPipeError", "ConnectionResetError"}
        self.assertIn(errors[0], closed)
        refused = errors[1:].count("ConnectionRefusedError")
        self.assertIn(refused, {2, 3})
        self.assertEqual(
            errors[1:], ["ConnectionRefusedError"] * refused + [""] * (len(errors) - 1 - refused)
        )
        self.assertNotIn(nodeName(stopped), client.hasher.nodes)
        stored = await self.inThread(lambda: [client.set(key, valueFor(key)) for key in lost])
        self.assertEqual(stored, [True] * len(lost))

    async def test_serverComesBack(self) -> None:
        """
        A server that is back on its address after C{dead_timeout} rejoins
        the ring: its keys hash to it again, and it starts empty, while the
        copies written to the others in the meantime stay there.
        """
        from twisted.internet import reactor

        servers = await self.startServers()
        client = self.hashClient(
            servers, ignore_exc=True, retry_attempts=0, retry_timeout=0, dead_timeout=0.2
        )
        stopped = servers[2]
        address = stopped.address
        lost = [key for key, owner in self.owners(client, servers).items() if owner is stopped]
        await stopped.stop()
        # retry_attempts=0: the first failure drops the server at once.
        await self.inThread(client.get, lost[0])
        self.assertNotIn(nodeName(stopped), client.hasher.nodes)
        await self.inThread(client.set, lost[0], b"stored meanwhile")
        back = await serve(reactor, "tcp:%d:interface=%s" % (address[1], address[0]))
        self.addCleanup(back.stop)

        def afterDeadTimeout() -> Any:
            def putBack() -> bool:
                # A call is what makes the client retry a dead server.
                client.get(lost[1])
                return nodeName(stopped) in client.hasher.nodes

            waitForInThread(putBack, 10.0, "the client to put the server back", interval=0.05)
            client.set(lost[0], b"stored after")
            return client.get(lost[0])

        self.assertEqual(await self.inThread(afterDeadTimeout), b"stored after")
        self.assertEqual(back.client.get(lost[0]), b"stored after")
        elsewhere = [server.client.get(lost[0]) for server in servers[:2]]
        self.assertIn(b"stored meanwhile", elsewhere)
