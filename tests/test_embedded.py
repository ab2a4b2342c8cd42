"""
Tests for L{myproto.embedded}: a server started inside another program.

The wiring is tested on a L{MemoryReactorClock}; a few tests use the real
reactor and real sockets on 127.0.0.1, and the README's Twisted and asyncio
examples are run as written, each in a child process.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.internet.endpoints import quoteStringArgument
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase

from myproto.config import MEGABYTE
from myproto.embedded import PROCESS_SERVICES, EmbeddedServer, optionNames, serve
from myproto.options import Options
from myproto.certificates import selfSignedCertificate
from tests.readme import childEnvironment, readmeExample

# pymemcache is in the test extra: without it these tests error, not skip.
from pymemcache.client.base import Client as PymemcacheClient


class RecordingPort:
    """
    A listening port that notes when it is stopped.
    """

    def __init__(self, host: Any) -> None:
        self.host = host
        self.stopped = False

    def getHost(self) -> Any:
        return self.host

    def stopListening(self) -> None:
        self.stopped = True


class RefusingReactor(MemoryReactorClock):
    """
    A memory reactor on which one TCP port cannot be listened on, and whose
    other ports record being stopped.

    @ivar ports: the ports handed out.
    """

    refusedPort = 2

    def __init__(self) -> None:
        super().__init__()
        self.ports: list[RecordingPort] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        if port == self.refusedPort:
            raise CannotListenError(interface, port, OSError("Address already in use"))
        recording = RecordingPort(super().listenTCP(port, factory, backlog, interface).getHost())
        self.ports.append(recording)
        return recording


class ServeTests(SynchronousTestCase):
    """
    L{serve} builds the server L{myproto.service.buildServer} describes and
    listens on each endpoint itself.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def serve(self, *args: Any, **kwargs: Any) -> EmbeddedServer:
        return self.successResultOf(serve(self.reactor, *args, **kwargs))

    def test_defaultEndpoint(self) -> None:
        """
        By default the server listens on a free port on 127.0.0.1 only.
        """
        server = self.serve()
        [(port, factory, backlog, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (0, "127.0.0.1"))
        self.assertIs(factory, server.factory)

    def test_everyEndpoint(self) -> None:
        """
        Each endpoint description is listened on, in order; C{addresses}
        lists them and C{address} is the first TCP one.
        """
        server = self.serve(["unix:cache.sock", "tcp:1234:interface=127.0.0.1", "tcp:1235"])
        self.assertEqual(
            [entry[0] for entry in self.reactor.tcpServers], [1234, 1235]
        )
        self.assertEqual(len(self.reactor.unixServers), 1)
        self.assertEqual(len(server.addresses), 3)
        self.assertEqual(server.address, (server.host, 1234))
        self.assertEqual(server.port, 1234)

    def test_noTCP(self) -> None:
        """
        A server on a UNIX socket only has no C{address}.
        """
        server = self.serve("unix:cache.sock")
        self.assertRaises(LookupError, lambda: server.address)

    def test_options(self) -> None:
        """
        Options are C{twistd myproto}'s long options, C{_} for C{-}, in the
        command line's units.
        """
        server = self.serve(memory_limit=8, max_item_size="2k", disable_cas=True, idle_timeout=30)
        self.assertEqual(server.store.maxBytes, 8 * MEGABYTE)
        self.assertEqual(server.store.maxItemSize, 2048)
        self.assertFalse(server.store.useCas)
        self.assertEqual(server.settings.idleTimeout, 30)
        self.assertIs(server.cache, server.factory.cache)

    def test_everyOptionAccepted(self) -> None:
        """
        Every option of C{twistd myproto} but C{--listen} (which is
        C{serve}'s second argument) is a keyword.
        """
        expected = {name.replace("-", "_") for name in Options()} - {"listen"}
        self.assertEqual(optionNames(), expected)

    def test_unknownOption(self) -> None:
        """
        A misspelt option is refused before anything starts.
        """
        error = self.assertRaises(TypeError, serve, self.reactor, memory_limt=8)
        self.assertIn("memory_limt", str(error))
        self.assertEqual(self.reactor.tcpServers, [])

    def test_badValue(self) -> None:
        """
        A value C{twistd myproto} refuses is refused with the same message.
        """
        error = self.assertRaises(ValueError, serve, self.reactor, max_item_size="512")
        self.assertEqual(str(error), "Item max size cannot be less than 1024 bytes.")

    def test_noSignalHandling(self) -> None:
        """
        The host program keeps its signal handlers and its garbage
        collector: the service that makes SIGTERM stop the reactor, and the
        one that freezes the objects made at startup, are left out.
        """
        server = self.serve()
        self.assertFalse([child for child in server.service if isinstance(child, PROCESS_SERVICES)])

    def test_noSignalHandlingWithMutualTLS(self) -> None:
        """
        With an C{mtls:} endpoint, the SIGHUP handler that reloads its
        certificates is left out too; the endpoint listened on is the one
        C{refresh_certs} reloads.
        """
        keyFile, certFile = selfSignedCertificate(FilePath(self.mktemp()), "localhost")
        description = "mtls:0:interface=127.0.0.1:privateKey={}:certKey={}:caCerts={}".format(
            *(quoteStringArgument(path.path) for path in (keyFile, certFile, certFile))
        )
        server = self.serve(description)
        self.assertFalse([child for child in server.service if isinstance(child, PROCESS_SERVICES)])
        [(port, factory, backlog, interface)] = self.reactor.tcpServers
        self.assertIs(getattr(factory, "wrappedFactory", None), server.factory)
        self.assertEqual(server.client.stats().get("ssl_handshake_errors"), "0")

    def test_otherListenersKept(self) -> None:
        """
        Listeners C{makeService} adds for other things than the cache (the
        metrics endpoint) are left as they are.
        """
        self.assertIn("metrics", optionNames())
        server = self.serve(metrics="tcp:9150:interface=127.0.0.1")
        ports = sorted(entry[0] for entry in self.reactor.tcpServers)
        self.assertEqual(ports, [0, 9150])
        self.assertEqual(len(server.ports), 1)

    def test_sweeps(self) -> None:
        """
        Expired items are swept while the server runs.
        """
        server = self.serve()
        server.client.set(b"k", b"v", expire=1)
        self.reactor.advance(2)
        self.assertEqual(len(server.store), 0)

    def test_stop(self) -> None:
        """
        C{stop} stops listening and leaves no timer behind; a second call
        gives the same outcome.
        """
        self.reactor = RefusingReactor()
        server = self.serve()
        self.assertTrue(self.reactor.getDelayedCalls())
        self.assertIsNone(self.successResultOf(server.stop()))
        self.assertTrue(self.reactor.ports[0].stopped)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertIsNone(self.successResultOf(server.stop()))

    def test_stopWaitsForDrain(self) -> None:
        """
        C{stop} fires once every client connection has closed.
        """
        from twisted.internet.address import IPv4Address
        from twisted.internet.testing import StringTransport

        server = self.serve()
        proto = server.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        proto.makeConnection(transport)
        stopped = server.stop()
        self.assertNoResult(stopped)
        self.assertTrue(transport.disconnecting)
        proto.connectionLost()
        self.assertIsNone(self.successResultOf(stopped))

    def test_listenFailure(self) -> None:
        """
        If an endpoint cannot listen, C{serve} fails with the reason and
        stops what it had started.
        """
        self.reactor = RefusingReactor()
        failure = self.failureResultOf(
            serve(self.reactor, ["tcp:1:interface=127.0.0.1", "tcp:2:interface=127.0.0.1"]),
            CannotListenError,
        )
        self.assertIn("Address already in use", str(failure.value))
        self.assertTrue(self.reactor.ports[0].stopped)
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class LoopbackTests(TestCase):
    """
    An embedded server on the real reactor, with a client nobody here wrote.
    """

    async def test_sharedCache(self) -> None:
        """
        What the program stores, a network client reads, and the reverse.
        """
        from twisted.internet import reactor

        server = await serve(reactor)
        self.addCleanup(server.stop)
        server.client.set("fromProgram", "1")
        client = PymemcacheClient(server.address)
        self.addCleanup(deferToThread, client.close)

        def exchange() -> Any:
            client.set("fromClient", b"2")
            return client.get("fromProgram")

        self.assertEqual(await deferToThread(exchange), b"1")
        self.assertEqual(server.client.get("fromClient"), b"2")

    async def test_stopClosesConnections(self) -> None:
        """
        C{stop} closes connected clients' connections and the port.
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        from twisted.internet.protocol import Protocol

        server = await serve(reactor)
        host, port = server.address

        class Watcher(Protocol):
            def __init__(self) -> None:
                self.closed: Deferred[None] = Deferred()

            def connectionLost(self, reason: Any = None) -> None:
                self.closed.callback(None)

        watcher = await connectProtocol(TCP4ClientEndpoint(reactor, host, port), Watcher())
        await server.stop()
        self.assertEqual(server.factory.connections, set())
        await watcher.closed
        with self.assertRaises(ConnectionRefusedError):
            await connectProtocol(TCP4ClientEndpoint(reactor, host, port), Protocol())


class READMEExampleTests(TestCase):
    """
    The README's embedding examples run as written.
    """

    async def runExample(self, name: str) -> bytes:
        """
        Run a README example in a child process.

        @return: its standard output, once it has exited with status 0.
        """
        script = self.mktemp() + ".py"
        with open(script, "w") as file:
            file.write(readmeExample(name))
        out, err, code = await getProcessOutputAndValue(
            sys.executable, [script], env=childEnvironment()
        )
        self.assertEqual(code, 0, err.decode("utf-8", "replace"))
        return out

    async def test_twisted(self) -> None:
        """
        The Twisted example serves, uses its own cache, and stops.
        """
        out = await self.runExample("twisted")
        self.assertRegex(out, rb"connect to \('127\.0\.0\.1', \d+\)\nb'hello'\n42\n")

    async def test_asyncio(self) -> None:
        """
        The asyncio example serves on asyncio's loop to an asyncio client.
        """
        out = await self.runExample("asyncio")
        self.assertEqual(out, b"b'VALUE greeting 0 5\\r\\nhello\\r\\nEND\\r\\n'\n")
