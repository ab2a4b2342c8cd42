"""
C{watch connevents}: a line when a client connects and one when its
connection closes, with memcached 1.6.18's reason, in memcached's format
(checked against it over loopback, and on a L{StringTransport} for the
reasons a test cannot cause quickly there).
"""

from __future__ import annotations

import re

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from myproto.config import ServerSettings
from tests.helpers import Server
from tests.reference import HOST, exchange, startMemcached
from tests.test_observability_differential import (
    connect,
    hangUp,
    listenMyproto,
    waitFor,
)

_LINE = re.compile(
    rb"^ts=\d+\.\d+ gid=\d+ type=(conn_new|conn_close) rip=(\S+) rport=(\d+)"
    rb" transport=(\w+)( reason=\w+)? cfd=(\d+)$"
)


def events(received: bytes) -> list[tuple[bytes, ...]]:
    """
    @return: each line's type, address, transport and reason, and its port
        and connection number by first appearance (C{p0}, C{c0}...).
    @raise AssertionError: for a line not in memcached's format.
    """
    ports: dict[bytes, bytes] = {}
    numbers: dict[bytes, bytes] = {}
    found = []
    for line in received.split(b"\n")[:-1]:
        match = _LINE.match(line)
        if match is None:
            raise AssertionError("not a connection event: {!r}".format(line))
        kind, address, port, transport, reason, number = match.groups()
        port = ports.setdefault(port, b"p%d" % (len(ports),))
        number = numbers.setdefault(number, b"c%d" % (len(numbers),))
        found.append((kind, address, port, transport, reason or b"", number))
    return found


class ConnectionEventsDifferentialTests(TestCase):
    """
    The same clients make the same connection events in memcached and
    myproto.
    """

    timeout = 60

    #: Tries of memcached (see test_normalAndError).
    TRIES = 3

    def test_normalAndError(self) -> None:
        """
        A client that says C{quit}, one that hangs up and one memcached drops
        for an HTTP request line: each connects and closes, C{normal} or
        C{error}.
        """

        async def watched(port: int) -> list[tuple[bytes, ...]]:
            watcher = await connect(port)
            watcher.transport.write(b"watch connevents\r\n")  # type: ignore[union-attr]
            await waitFor(lambda: watcher.received.startswith(b"OK\r\n"), "OK to watch")
            await exchange(HOST, port, [b"version\r\n"])
            await waitFor(lambda: watcher.received.count(b"\n") >= 3, "two events")
            await exchange(HOST, port, [b"GET / HTTP/1.1\r\n"], quit=False)
            await waitFor(lambda: watcher.received.count(b"\n") >= 5, "four events")
            client = await connect(port)
            await waitFor(lambda: watcher.received.count(b"\n") >= 6, "five events")
            await hangUp(client)
            await waitFor(lambda: watcher.received.count(b"\n") >= 7, "six events")
            await hangUp(watcher)
            return events(watcher.received[4:])

        async def check() -> None:
            memcached = (await startMemcached(self)).port
            port, stop = await listenMyproto()
            self.addCleanup(stop)
            wanted = [
                (b"conn_new", b""),
                (b"conn_close", b" reason=normal"),
                (b"conn_new", b""),
                (b"conn_close", b" reason=error"),
                (b"conn_new", b""),
                (b"conn_close", b" reason=normal"),
            ]
            # memcached now and then reads the HTTP client's line and the
            # end of its stream in one go and calls that close normal: it
            # is asked up to TRIES times for its usual answer.
            for _ in range(self.TRIES):
                expected = await watched(memcached)
                if [(kind, reason) for kind, _, _, _, reason, _ in expected] == wanted:
                    break
            self.assertEqual([(kind, reason) for kind, _, _, _, reason, _ in expected], wanted)
            self.assertEqual(await watched(port), expected)

        return Deferred.fromCoroutine(check())


class ConnectionEventsTests(SynchronousTestCase):
    """
    Connection events on in-memory connections.
    """

    def watch(self, server: Server) -> object:
        watcher = server.connect()
        self.assertEqual(watcher.send(b"watch connevents\r\n"), b"OK\r\n")
        return watcher

    def test_reasons(self) -> None:
        """
        A binary C{QUIT} is a normal close, a bad binary magic byte an error,
        an idle client's drop C{idle_timeout}, a graceful shutdown's
        C{shutdown}; only watchers of C{connevents} see them.
        """
        server = Server(ServerSettings(idleTimeout=10))
        watcher = self.watch(server)
        other = server.connect()
        other.send(b"watch fetchers\r\n")
        clients = [server.connect() for _ in range(4)]
        clients[0].send(b"\x80\x07" + b"\x00" * 22)  # QUIT
        clients[1].send(b"\x80\x00\x00\x00" + b"\x00" * 20 + b"\x81")  # GET, then bad magic
        for client in clients[:2]:
            self.assertTrue(client.closed)
            client.lose()
        clients[3].protocol.finishAndClose()
        self.assertTrue(clients[3].closed)
        clients[3].lose()
        # Watchers are not idle, as in memcached: only the client is dropped.
        server.clock.advance(10)
        self.assertTrue(clients[2].closed)
        self.assertFalse(other.closed)
        clients[2].lose()
        found = events(watcher.received())  # type: ignore[attr-defined]
        self.assertEqual(
            [(kind, address, transport, reason) for kind, address, _, transport, reason, _ in found],
            [(b"conn_new", b"127.0.0.1", b"tcp", b"")] * 5
            + [
                (b"conn_close", b"127.0.0.1", b"tcp", b" reason=normal"),
                (b"conn_close", b"127.0.0.1", b"tcp", b" reason=error"),
                (b"conn_close", b"127.0.0.1", b"tcp", b" reason=shutdown"),
                (b"conn_close", b"127.0.0.1", b"tcp", b" reason=idle_timeout"),
            ],
        )
        self.assertEqual([number for *_, number in found][5:], [b"c1", b"c2", b"c4", b"c3"])
        self.assertEqual(other.received(), b"")  # type: ignore[attr-defined]
