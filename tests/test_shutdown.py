"""
Tests for graceful shutdown: draining connections, and the C{shutdown}
command.
"""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory, CacheServerProtocol
from myproto.store import MemoryStore
from myproto.tap import makeService


class DrainTests(SynchronousTestCase):
    """
    L{CacheServerFactory.drain} lets each client finish the request under
    way, closes its connection, and fires when all are closed.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.factory = CacheServerFactory(MemoryStore(self.clock), self.clock, ServerSettings())

    def connect(self) -> tuple[CacheServerProtocol, StringTransport]:
        proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        proto.makeConnection(transport)
        return proto, transport

    def lose(self, proto: CacheServerProtocol) -> None:
        proto.connectionLost(Failure(ConnectionDone()))

    def test_noConnections(self) -> None:
        """
        With nobody connected, the drain is over at once.
        """
        self.successResultOf(self.factory.drain(5))

    def test_idleClientsCloseAtOnce(self) -> None:
        """
        Clients between requests are closed at once; the drain fires when
        their connections are gone, leaving no timer behind.
        """
        first, firstTransport = self.connect()
        second, secondTransport = self.connect()
        draining = self.factory.drain(5)
        self.assertTrue(firstTransport.disconnecting)
        self.assertTrue(secondTransport.disconnecting)
        self.assertNoResult(draining)
        self.lose(first)
        self.lose(second)
        self.successResultOf(draining)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_requestUnderWayIsFinished(self) -> None:
        """
        A client halfway through a storage command may finish it: it is
        stored and answered, and then the connection closes.
        """
        proto, transport = self.connect()
        proto.dataReceived(b"set k 0 0 5\r\nhel")
        draining = self.factory.drain(5)
        self.assertFalse(transport.disconnecting)
        proto.dataReceived(b"lo\r\n")
        self.assertEqual(transport.value(), b"STORED\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.factory.cache.store.get(b"k").value, b"hello")
        self.lose(proto)
        self.successResultOf(draining)

    def test_laggardsAreCut(self) -> None:
        """
        A client that does not finish within the timeout is closed anyway.
        """
        proto, transport = self.connect()
        proto.dataReceived(b"get ")
        draining = self.factory.drain(5)
        self.clock.advance(4.9)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.lose(proto)
        self.successResultOf(draining)


class ShutdownCommandTests(SynchronousTestCase):
    """
    The C{shutdown} command stops the reactor (which stops the services:
    drain, then snapshot) when C{-A} allowed it.
    """

    def test_stopsTheReactor(self) -> None:
        """
        C{shutdown} and C{shutdown graceful} close the connection without a
        reply and stop the reactor.
        """
        for command in (b"shutdown\r\n", b"shutdown graceful\r\n"):
            reactor = MemoryReactorClock()
            reactor.running = True
            factory = CacheServerFactory(
                MemoryStore(reactor), reactor, ServerSettings(enableShutdown=True)
            )
            proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
            transport = StringTransport()
            proto.makeConnection(transport)
            proto.dataReceived(command)
            self.assertEqual(transport.value(), b"")
            self.assertTrue(transport.disconnecting)
            self.assertTrue(reactor.hasStopped)

    def test_notEnabled(self) -> None:
        """
        Without C{-A}, the reply is memcached's and nothing stops.
        """
        reactor = MemoryReactorClock()
        factory = CacheServerFactory(MemoryStore(reactor), reactor, ServerSettings())
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"shutdown\r\n")
        self.assertEqual(transport.value(), b"ERROR: shutdown not enabled\r\n")
        self.assertFalse(reactor.hasStopped)


class ServiceOrderTests(SynchronousTestCase):
    """
    Stopping the service tree stops listening first, then drains clients,
    then saves the snapshot.
    """

    def test_stopOrder(self) -> None:
        """
        The snapshot service is added first so that it stops last, after
        the drain.
        """
        reactor = MemoryReactorClock()
        top = makeService(
            {"listen": ["tcp:0:interface=127.0.0.1"], "snapshot": self.mktemp()}, reactor
        )
        names = [service.name for service in top]
        self.assertLess(names.index("snapshot"), names.index("drain"))
        listeners = [
            index
            for index, service in enumerate(top)
            if isinstance(service, StreamServerEndpointService)
        ]
        self.assertTrue(listeners)
        self.assertGreater(min(listeners), names.index("drain"))
