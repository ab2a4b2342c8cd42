"""
Tests for a connection's flow control and timers: backpressure when a client
does not read its replies, the request timeout for clients that stall
halfway through a command, and the idle timeout.
"""

from __future__ import annotations

import socket

from twisted.internet import reactor, tcp
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.ssl import CertificateOptions
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from myproto.config import ServerSettings
from myproto._tuning import ACCEPTS_PER_TURN
from myproto.connection import REPLY_BATCH_LIMIT
from myproto.protocol import CacheServerFactory, CacheServerProtocol
from myproto.store import MemoryStore
from tests.helpers import FillingTransport, waitFor


def connect(settings: ServerSettings, transport: StringTransport) -> tuple[CacheServerProtocol, Clock]:
    clock = Clock()
    clock.advance(1_000_000)
    factory = CacheServerFactory(MemoryStore(clock), clock, settings)
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    proto.makeConnection(transport)
    return proto, clock


class BackpressureTests(SynchronousTestCase):
    """
    A client that pipelines requests and does not read the replies makes the
    server stop reading from it, instead of buffering without bound.
    """

    def setUp(self) -> None:
        self.transport = FillingTransport()
        self.proto, self.clock = connect(ServerSettings(), self.transport)
        value = b"v" * 1000
        self.proto.dataReceived(b"set k 0 0 1000\r\n" + value + b"\r\n")
        self.transport.clear()
        self.reply = b"VALUE k 0 1000\r\n" + value + b"\r\nEND\r\n"

    def test_stopsReadingWhileRepliesWait(self) -> None:
        """
        Ten thousand gets in one read are not all answered at once: the
        server writes until the transport is full, pauses the transport's
        reading, and keeps the rest of the requests unparsed.
        """
        self.proto.dataReceived(b"get k\r\n" * 10000)
        written = len(self.transport.value())
        self.assertEqual(self.transport.producerState, "paused")
        self.assertLessEqual(
            written, self.transport.bufferSize + REPLY_BATCH_LIMIT + len(self.reply)
        )
        self.assertEqual(written % len(self.reply), 0)

    def test_resumesWhenDrained(self) -> None:
        """
        Each time the client drains the replies the server answers more,
        until every request is answered exactly once and in order; then the
        transport reads again.
        """
        self.proto.dataReceived(b"get k\r\n" * 10000)
        received = b""
        for _ in range(10000):
            if self.transport.producerState != "paused":
                break
            received += self.transport.drain()
        received += self.transport.value()
        self.assertEqual(received, self.reply * 10000)
        self.assertEqual(self.transport.producerState, "producing")

    def test_requestsArrivingWhilePausedWait(self) -> None:
        """
        Bytes that arrive while paused (already in flight) are queued behind
        the unanswered requests, not answered out of order.
        """
        self.proto.dataReceived(b"get k\r\n" * 5000)
        self.proto.dataReceived(b"version\r\n")
        received = b""
        while self.transport.producerState == "paused":
            received += self.transport.drain()
        received += self.transport.value()
        self.assertTrue(received.endswith(self.reply + b"VERSION 1.6.18\r\n"))
        self.assertEqual(received.count(b"VALUE"), 5000)


class RequestTimeoutTests(SynchronousTestCase):
    """
    A client that starts a command and stalls is dropped after the request
    timeout; one that waits between commands is not.
    """

    def setUp(self) -> None:
        self.transport = StringTransport()
        self.proto, self.clock = connect(ServerSettings(requestTimeout=30), self.transport)

    def tearDown(self) -> None:
        self.proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idleBetweenRequestsIsFine(self) -> None:
        """
        Silence after complete requests never trips the request timeout.
        """
        self.proto.dataReceived(b"version\r\n")
        self.clock.advance(3600)
        self.assertFalse(self.transport.disconnecting)

    def test_unfinishedLine(self) -> None:
        """
        Part of a command line, then nothing: dropped after the timeout,
        counted, and nothing is answered.
        """
        self.proto.dataReceived(b"get ")
        self.clock.advance(29)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(self.proto.factory.cache.stats.requestTimeouts, 1)

    def test_dribblingDoesNotExtend(self) -> None:
        """
        Sending a byte now and then does not restart the clock: the whole
        request must arrive within the timeout (slowloris).
        """
        for byte in b"set k 0 0 100\r\n" + b"0" * 40:
            self.proto.dataReceived(bytes([byte]))
            self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)

    def test_unfinishedDataBlock(self) -> None:
        """
        A storage command whose data block stops short is dropped too, and
        stores nothing.
        """
        self.proto.dataReceived(b"set k 0 0 10\r\n01234")
        self.clock.advance(30)
        self.assertTrue(self.transport.disconnecting)
        self.assertIsNone(self.proto.factory.cache.store.get(b"k"))

    def test_finishingCancels(self) -> None:
        """
        Completing the request cancels its deadline; the next request gets a
        fresh one.
        """
        self.proto.dataReceived(b"set k 0 0 2\r\n")
        self.clock.advance(20)
        self.proto.dataReceived(b"hi\r\n")
        self.clock.advance(20)
        self.assertFalse(self.transport.disconnecting)
        self.proto.dataReceived(b"ge")
        self.clock.advance(29)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.transport.value(), b"STORED\r\n")

    def test_disabled(self) -> None:
        """
        A request timeout of 0 never drops anyone.
        """
        transport = StringTransport()
        proto, clock = connect(ServerSettings(requestTimeout=0), transport)
        proto.dataReceived(b"get ")
        clock.advance(10**6)
        self.assertFalse(transport.disconnecting)
        self.assertEqual(clock.getDelayedCalls(), [])


class IdleTimeoutTests(SynchronousTestCase):
    """
    With an idle timeout, a client that completes no command for that long
    is dropped and counted in C{idle_kicks}, as memcached's C{idle_timeout}.
    """

    def setUp(self) -> None:
        self.transport = StringTransport()
        self.proto, self.clock = connect(
            ServerSettings(idleTimeout=30, requestTimeout=0), self.transport
        )

    def test_idleClientIsDropped(self) -> None:
        """
        Commands restart the countdown; silence closes; no timer outlives
        the connection.
        """
        self.clock.advance(29)
        self.proto.dataReceived(b"version\r\n")
        self.clock.advance(29)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.proto.factory.cache.stats.idleKicks, 1)
        self.proto.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_partialInputIsNotActivity(self) -> None:
        """
        Bytes that do not complete a command do not count as activity, as in
        memcached, which looks at the time of the last command.
        """
        self.proto.dataReceived(b"version\r\n")
        self.clock.advance(20)
        self.proto.dataReceived(b"vers")
        self.clock.advance(10)
        self.assertTrue(self.transport.disconnecting)

    def test_statsShowIdleKicks(self) -> None:
        """
        C{idle_kicks} appears in C{stats} only when an idle timeout is set,
        and C{stats settings} shows the timeout.
        """
        self.proto.dataReceived(b"stats\r\nstats settings\r\n")
        self.assertIn(b"STAT idle_kicks 0\r\n", self.transport.value())
        self.assertIn(b"STAT idle_timeout 30\r\n", self.transport.value())
        transport = StringTransport()
        proto, _ = connect(ServerSettings(), transport)
        proto.dataReceived(b"stats\r\n")
        self.assertNotIn(b"idle_kicks", transport.value())


class Collector(Protocol):
    """
    Collects everything a server sends; C{done} fires with it on close.
    """

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Failure = ConnectionDone()) -> None:
        self.done.callback(b"".join(self.received))


class LoopbackFlowTests(TestCase):
    """
    Over a real socket, replies larger than the kernel takes at once arrive
    complete and in order, and a client that stops reading makes the server
    hold only a bounded amount of output.
    """

    async def test_largeRepliesInOrder(self) -> None:
        """
        Megabyte values that fill the socket buffers, followed by small
        replies, all arrive intact and in request order.
        """
        factory = CacheServerFactory(MemoryStore(reactor, maxItemSize=2 * 1024 * 1024), reactor)
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        big = bytes(range(256)) * 4096
        client = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), Collector()
        )
        request = b"set big 0 0 %d\r\n%s\r\nset small 0 0 1\r\ns\r\n" % (len(big), big)
        request += b"get big\r\nget small\r\n" * 5 + b"version\r\nquit\r\n"
        client.transport.write(request)
        received = await client.done
        bigReply = b"VALUE big 0 %d\r\n%s\r\nEND\r\n" % (len(big), big)
        expected = b"STORED\r\nSTORED\r\n" + (bigReply + b"VALUE small 0 1\r\ns\r\nEND\r\n") * 5
        self.assertEqual(received, expected + b"VERSION 1.6.18\r\n")

    async def test_unreadRepliesAreBounded(self) -> None:
        """
        A client that pipelines thousands of gets and does not read leaves
        the server holding at most a bounded amount of unsent output; once
        it reads, every reply arrives.
        """
        factory = CacheServerFactory(MemoryStore(reactor), reactor)
        connections: list[CacheServerProtocol] = []
        buildProtocol = factory.buildProtocol

        def recordingBuildProtocol(addr):  # type: ignore[no-untyped-def]
            proto = buildProtocol(addr)
            connections.append(proto)
            return proto

        factory.buildProtocol = recordingBuildProtocol  # type: ignore[method-assign]
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        client = await connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), Collector()
        )
        client.transport.pauseProducing()  # stop reading replies
        value = b"x" * 1000
        client.transport.write(b"set k 0 0 1000\r\n" + value + b"\r\n" + b"get k\r\n" * 20000)
        # The server stops reading once its output is full: what it holds
        # then is all it will hold until the client reads.
        await waitFor(
            lambda: bool(connections)
            and connections[0].transport.connected
            and connections[0].transport not in reactor.getReaders(),
            20.0,
            "the server to stop reading from a client that does not read",
        )
        serverTransport = connections[0].transport
        queued = len(serverTransport.dataBuffer) - serverTransport.offset
        queued += serverTransport._tempDataLen
        reply = b"VALUE k 0 1000\r\n" + value + b"\r\nEND\r\n"
        # 20,000 replies are 20 MB; the server holds at most a few batches.
        self.assertLess(queued, 4 * (serverTransport.bufferSize + REPLY_BATCH_LIMIT + len(reply)))
        client.transport.write(b"quit\r\n")
        client.transport.resumeProducing()
        received = await client.done
        self.assertEqual(received, b"STORED\r\n" + reply * 20000)


def tcpSocketPair() -> tuple[socket.socket, socket.socket]:
    """
    @return: the server and client ends of a TCP connection on 127.0.0.1,
        made without a reactor.
    """
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    client.settimeout(5)
    return server, client


class WriteThroughTests(SynchronousTestCase):
    """
    Replies on a TCP connection go to the socket at once when nothing is
    queued before them, without turning on write polling; bytes already
    queued keep their place.  A TLS connection writes without Twisted's
    small-write aggregation, which would wait for a C{callLater(0)}.
    """

    def setUp(self) -> None:
        serverSocket, self.client = tcpSocketPair()
        self.addCleanup(self.client.close)
        self.reactor = MemoryReactorClock()
        factory = CacheServerFactory(MemoryStore(self.reactor), self.reactor)
        self.proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = tcp.Server(
            serverSocket, self.proto, ("127.0.0.1", 40000), None, 1, self.reactor
        )
        self.addCleanup(serverSocket.close)
        self.proto.makeConnection(self.transport)

    def receive(self, size: int) -> bytes:
        """
        Read exactly C{size} bytes from the client end.
        """
        received = b""
        while len(received) < size:
            chunk = self.client.recv(size - len(received))
            self.assertTrue(chunk, "connection closed early")
            received += chunk
        return received

    def test_replyGoesStraightToSocket(self) -> None:
        """
        With nothing queued, a reply is in the client's socket when
        C{dataReceived} returns, and the transport never asked to write.
        """
        self.proto.dataReceived(b"set k 0 0 2\r\nhi\r\nget k\r\n")
        expected = b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n"
        self.assertEqual(self.receive(len(expected)), expected)
        self.assertEqual(self.reactor.getWriters(), [])
        self.assertEqual(self.proto.factory.cache.stats.bytesWritten, len(expected))

    def test_queuedBytesKeepTheirPlace(self) -> None:
        """
        When bytes already wait in the transport, a reply waits behind
        them, and both leave in order once the transport writes.
        """
        tcp.Server.write(self.transport, b"EARLIER\r\n")
        self.proto.dataReceived(b"version\r\n")
        self.client.setblocking(False)
        self.assertRaises(BlockingIOError, self.client.recv, 100)
        self.client.setblocking(True)
        self.assertEqual(self.reactor.getWriters(), [self.transport])
        self.transport.doWrite()
        expected = b"EARLIER\r\nVERSION 1.6.18\r\n"
        self.assertEqual(self.receive(len(expected)), expected)

    def test_partialSendQueuesTheRest(self) -> None:
        """
        What the kernel does not take at once is queued and written later,
        in order.
        """
        self.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        value = bytes(range(256)) * 200
        self.proto.dataReceived(b"set k 0 0 %d\r\n%s\r\n" % (len(value), value))
        expected = b"STORED\r\n"
        self.assertEqual(self.receive(len(expected)), expected)
        self.proto.dataReceived(b"get k\r\n")
        self.assertEqual(self.reactor.getWriters(), [self.transport])
        expected = b"VALUE k 0 %d\r\n%s\r\nEND\r\n" % (len(value), value)
        received = b""
        while len(received) < len(expected):
            received += self.client.recv(65536)
            self.transport.doWrite()
        self.assertEqual(received, expected)

    def test_largeValueIsGathered(self) -> None:
        """
        A reply holding a large value goes to the socket as one list of
        buffers (the stored value itself, uncopied), with nothing queued.
        """
        value = bytes(range(256)) * 256
        self.proto.dataReceived(b"set k 0 0 %d\r\n%s\r\n" % (len(value), value))
        self.receive(len(b"STORED\r\n"))
        sent = []
        socket = self.transport.socket

        class Recording:
            def sendmsg(self, buffers: list[bytes]) -> int:
                sent.append(list(buffers))
                return socket.sendmsg(buffers)

        self.transport.socket = Recording()  # type: ignore[assignment]
        self.addCleanup(setattr, self.transport, "socket", socket)
        self.proto.dataReceived(b"get k\r\n")
        expected = b"VALUE k 0 %d\r\n%s\r\nEND\r\n" % (len(value), value)
        self.assertTrue(self.receive(len(expected)) == expected)
        self.assertEqual(len(sent), 1)
        # The value is a buffer of its own, not copied into a joined reply.
        self.assertIn(len(value), [len(part) for part in sent[0]])
        self.assertEqual(self.reactor.getWriters(), [])
        self.assertEqual(self.proto.factory.cache.stats.bytesWritten, len(b"STORED\r\n") + len(expected))

    def test_gatheredReplyWaitsItsTurn(self) -> None:
        """
        A large reply waits behind bytes already queued, as a small one does.
        """
        value = b"v" * 40000
        self.proto.dataReceived(b"set k 0 0 %d\r\n%s\r\n" % (len(value), value))
        self.receive(len(b"STORED\r\n"))
        tcp.Server.write(self.transport, b"EARLIER\r\n")
        self.proto.dataReceived(b"get k\r\n")
        self.client.setblocking(False)
        self.assertRaises(BlockingIOError, self.client.recv, 100)
        self.client.setblocking(True)
        expected = b"EARLIER\r\nVALUE k 0 40000\r\n" + value + b"\r\nEND\r\n"
        received = b""
        while len(received) < len(expected):
            self.transport.doWrite()
            received += self.client.recv(65536)
        self.assertTrue(received == expected)

    def test_noDelay(self) -> None:
        """
        Nagle's algorithm is off, as in memcached: replies are whole
        messages.
        """
        self.assertTrue(self.transport.getTcpNoDelay())

    def test_tlsWritesAreNotDeferred(self) -> None:
        """
        Over TLS, a reply is handed to TLS at once: nothing is left for a
        later reactor turn.
        """
        clock = Clock()
        tlsFactory = TLSMemoryBIOFactory(
            CertificateOptions(), False, CacheServerFactory(MemoryStore(clock), clock), clock
        )
        wrapper = tlsFactory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.assertIsInstance(wrapper, BufferingTLSTransport)
        wrapper.makeConnection(StringTransport())
        wrapper.wrappedProtocol.dataReceived(b"version\r\n")
        self.assertEqual(clock.getDelayedCalls(), [])
        # And it reads and writes records only while OpenSSL holds some.
        self.assertIn("_flushReceiveBIO", vars(wrapper))
        self.assertIn("_flushSendBIO", vars(wrapper))


class AcceptInTurnsTests(SynchronousTestCase):
    """
    A listening TCP port accepts at most L{ACCEPTS_PER_TURN} connections in
    one reactor turn, so that a burst of connects cannot hold up clients
    already connected for long.
    """

    def test_burstIsAcceptedInTurns(self) -> None:
        """
        Twisted's first batch is its own (100); after that each turn takes
        at most L{ACCEPTS_PER_TURN}, where Twisted would take 120.
        """
        reactor = MemoryReactorClock()
        factory = CacheServerFactory(
            MemoryStore(reactor), reactor, ServerSettings(connectionLimit=1000)
        )
        port = tcp.Port(0, factory, backlog=512, interface="127.0.0.1", reactor=reactor)
        port.startListening()
        self.addCleanup(port.connectionLost, None)
        address = port.getHost()
        clients = [socket.create_connection((address.host, address.port)) for _ in range(300)]
        for client in clients:
            self.addCleanup(client.close)
        port.doRead()
        self.assertEqual(len(factory.connections), 100)
        port.doRead()
        self.assertEqual(len(factory.connections), 100 + ACCEPTS_PER_TURN)
        for connection in list(factory.connections):
            self.addCleanup(connection.transport.connectionLost, Failure(ConnectionDone()))


class ReadPathTests(SynchronousTestCase):
    """
    On an epoll reactor, a tuned TCP connection's reads go straight to its
    C{doRead}, without Twisted's per-event logging context, and end as
    Twisted's would: data reaches the protocol, end of file closes the
    connection, and an exception is logged and closes it.
    """

    def setUp(self) -> None:
        from twisted.internet.epollreactor import EPollReactor

        self.reactor = EPollReactor()
        self.addCleanup(self.reactor._poller.close)
        serverSocket, self.client = tcpSocketPair()
        self.addCleanup(self.client.close)
        self.addCleanup(serverSocket.close)
        clock = Clock()
        self.factory = CacheServerFactory(MemoryStore(clock), clock)
        self.proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = tcp.Server(
            serverSocket, self.proto, ("127.0.0.1", 40000), None, 1, self.reactor
        )
        self.proto.makeConnection(self.transport)
        self.transport.startReading()

    def test_tuned(self) -> None:
        """
        The reactor's poll is replaced (once), and the connection's reads.
        """
        self.assertIn("doIteration", vars(self.reactor))
        self.assertIn("doRead", vars(self.transport))

    def test_requestAnswered(self) -> None:
        """
        A request read by the tuned poll is answered.
        """
        self.client.sendall(b"version\r\n")
        self.reactor.doIteration(5)
        self.assertEqual(self.client.recv(100), b"VERSION 1.6.18\r\n")

    def test_endOfFileCloses(self) -> None:
        """
        The client's end of file closes the connection, as Twisted's poll
        would.
        """
        self.client.shutdown(socket.SHUT_WR)
        self.reactor.doIteration(5)
        self.assertEqual(self.factory.cache.stats.currConnections, 0)
        self.assertEqual(self.client.recv(100), b"")

    def test_exceptionIsLoggedAndCloses(self) -> None:
        """
        An exception from the protocol is logged and closes the connection.
        """

        def broken(data: bytes) -> None:
            raise ZeroDivisionError()

        self.proto.dataReceived = broken  # type: ignore[method-assign]
        self.client.sendall(b"version\r\n")
        self.reactor.doIteration(5)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual(self.factory.cache.stats.currConnections, 0)
