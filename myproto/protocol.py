"""
The Twisted adapter: a L{ServerConnection} on a transport, and the factory
that ties connections to one cache.

The protocol core (framing, dispatch, reply windows, the authentication
gate) is L{myproto.connection}, which does no I/O.  This module owns what a
transport needs: writing replies and queueing what the client does not read
yet, flow control, the two timers, the connection limit, the banner,
handing the connection to a stream, draining, and logging.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IPushProducer,
    IReactorCore,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from myproto._tuning import tuneTransport
from myproto.cache import Cache
from myproto.config import ServerSettings
from myproto.connection import (
    CLOSE,
    QUIT,
    DATA,
    HANDOVER,
    IDLE,
    NEED_DATA,
    REPLY_BATCH,
    SHUTDOWN,
    SWALLOW,
    ServerConnection,
)
from myproto.conns import connectionNumber, describeAddress
from myproto.errors import Stream
from myproto.producers import DumpProducer, Outbox, StreamProducer, SubscriptionProducer
from myproto.store import MemoryStore
from myproto.wire import classic



class ReportedConnection:
    """
    What the commands and the logs learn of a client connection: the
    L{ClientConnection<myproto.cache.ClientConnection>} hook (C{stats conns},
    C{watch}'s C{cfd}) and the
    L{ConnectionObserver<myproto.connection.ConnectionObserver>} hook.
    """

    log: Logger
    transport: Any
    connectedAt: float
    lastCommandAt: float | None
    _cache: Cache
    _connection: ServerConnection
    _outbox: Outbox
    _stream: StreamProducer | None
    _closing: bool

    def connectionNumber(self) -> int:
        """
        @return: the socket's file descriptor, as memcached numbers it.
        """
        return connectionNumber(self)

    def connectionReport(self, now: float, current: bool) -> list[tuple[str, object]]:
        """
        @return: this connection's C{stats conns} lines: C{addr},
            C{listen_addr}, C{state}, C{secs_since_last_cmd}, and, beyond
            memcached, C{tls_subject} for a client that presented a
            certificate.
        """
        if current:
            idle = 0
        else:
            last = self.lastCommandAt
            idle = int(now - (last if last is not None else self.connectedAt))
        report: list[tuple[str, object]] = [
            ("addr", describeAddress(self.transport.getPeer())),
            ("listen_addr", describeAddress(self.transport.getHost())),
            ("state", self.stateName()),
            ("secs_since_last_cmd", max(idle, 0)),
        ]
        subject = self.tlsSubject()
        if subject:
            report.append(("tls_subject", subject))
        return report

    def _peerForLog(self) -> tuple[str, int, str, int]:
        """
        @return: the client as memcached's connection events name it: IP
            address (C{unix} on a Unix socket), port, transport (C{tcp} or
            C{local}) and connection number.
        """
        peer = self.transport.getPeer()
        if isinstance(peer, (IPv4Address, IPv6Address)):
            return peer.host, peer.port, "tcp", self.connectionNumber()
        return "unix", 0, "local", self.connectionNumber()

    def tlsSubject(self) -> str | None:
        """
        The subject of the certificate the client presented in its TLS
        handshake, as an RFC 4514 string (e.g. C{"CN=client1,O=Example"}).

        @return: the subject, or L{None} on a plain connection, before the
            handshake, or when the client presented no certificate.
        """
        transport = ISSLTransport(self.transport, None)
        certificate = transport.getPeerCertificate() if transport is not None else None
        if certificate is None:
            return None
        return str(certificate.to_cryptography().subject.rfc4514_string())  # type: ignore[attr-defined]

    def stateName(self) -> str:
        """
        @return: memcached's name for the connection's state, for C{stats
            conns}.
        """
        if self._stream is not None:
            return "conn_watch"
        if self._closing:
            return "conn_closing"
        if self._cache.currentConnection is self:
            return "conn_parse_cmd"
        if self._outbox.full:
            return "conn_mwrite"
        state = self._connection.state
        if state is DATA:
            return "conn_nread"
        if state is SWALLOW:
            return "conn_swallow"
        if self.lastCommandAt is None and not self._connection.buffered:
            return "conn_new_cmd"
        return "conn_read"

    # ConnectionObserver

    def authenticationFailed(self, why: str) -> None:
        self.log.warn(
            "Authentication failed for {peer}: {why}", peer=self.transport.getPeer(), why=why
        )

    def internalError(self, doing: str) -> None:
        self.log.failure("Unexpected error {doing}", doing=doing)

    def binaryDetected(self) -> None:
        self._outbox.separator = b""


@implementer(IPushProducer)
class CacheServerProtocol(ReportedConnection, Protocol, TimeoutMixin):
    """
    One client connection speaking memcached's text, meta or binary protocol.

    Replies to everything in one read leave in a single C{write}, so a
    pipelined batch costs one system call.

    The connection is a push producer for its transport: when the client
    does not read its replies and the transport's buffer fills, the
    transport pauses us, and we stop reading the client's requests until it
    has drained.

    Two timers guard the connection: the idle timeout (L{TimeoutMixin}, reset
    by each completed command) and the request timeout, which starts when a
    command line or data block is begun and is cancelled when it is
    finished, so a client that stalls halfway is dropped while one that
    waits between requests is not.
    """

    log = Logger()

    # A TCP, UNIX or TLS transport: also a consumer (registerProducer) and a
    # producer (pauseProducing), which ITransport does not say.
    transport: Any

    def __init__(self, factory: CacheServerFactory) -> None:
        self.factory = factory
        self._cache = factory.cache
        self._clock = factory.clock
        self._connection = ServerConnection(factory.cache, self)
        self._closing = False
        # memcached's reason for a close, for connection events.
        self._closeReason = "normal"
        self._counted = False
        self._registered = False
        self._hangUpWhenSent = False
        self._closeWhenIdle = False
        self.connectedAt = 0.0
        self.lastCommandAt: float | None = None
        self._stream: StreamProducer | None = None
        self._requestDeadline: IDelayedCall | None = None

    @property
    def connection(self) -> ServerConnection:
        """
        The connection's protocol state.
        """
        return self._connection

    @property
    def handedOver(self) -> bool:
        """
        Whether a stream (C{watch}, C{metadump}) writes on the connection.
        """
        return self._stream is not None

    def callLater(self, delay: float, function: Callable[..., Any], *args: Any) -> IDelayedCall:
        """
        Schedule timeouts on the factory's clock (L{TimeoutMixin} hook).
        """
        return self._clock.callLater(delay, function, *args)

    def connectionMade(self) -> None:
        self._outbox = Outbox(self.transport, self._cache.stats)
        stats = self._cache.stats
        if stats.currConnections >= self._cache.settings.connectionLimit:
            stats.rejectedConnections += 1
            self.log.warn(
                "Refusing {peer}: {limit} connections already open",
                peer=self.transport.getPeer(),
                limit=self._cache.settings.connectionLimit,
            )
            self._outbox.send([classic.TOO_MANY_CONNECTIONS])
            self._closing = True
            self.transport.loseConnection()
            return
        stats.currConnections += 1
        stats.totalConnections += 1
        self._counted = True
        self.connectedAt = self._clock.seconds()
        self.factory.connections.add(self)
        self._register()
        # Kept for the close event: by then the socket has no descriptor.
        self._peer = self._peerForLog()
        if self._cache.watching is not None:
            self._cache.watching.connectionOpened(*self._peer)
        tuneTransport(self.transport)
        self.setTimeout(self._cache.settings.idleTimeout or None)
        # Only at verbosity 2 (-vv), as in memcached: a burst of connections
        # must not become a burst of log events.
        if self._cache.verbosity >= 2:
            self.log.info("Connection from {peer}", peer=self.transport.getPeer())
        banner = self._cache.settings.banner
        if banner is not None:
            self._outbox.send([banner])

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self._cancelRequestDeadline()
        # A watcher's connection belongs to memcached's logger, not logged.
        watcher = self._stream is not None and self._stream.endless
        if self._stream is not None:
            self._stream.stop()
            self._stream = None
        if self._counted:
            if self._cache.verbosity >= 2:
                self.log.info(
                    "Connection from {peer} closed after {seconds:.1f}s",
                    peer=self.transport.getPeer(),
                    seconds=self._clock.seconds() - self.connectedAt,
                )
            self._cache.stats.currConnections -= 1
            self._counted = False
            self.factory.connectionClosed(self)
            if self._cache.watching is not None and not watcher:
                self._cache.watching.connectionClosed(*self._peer, self._closeReason)

    def finishAndClose(self) -> None:
        """
        Close once the request under way, if any, is answered: part of a
        graceful shutdown.
        """
        self._closeWhenIdle = True
        if self._closing:
            return
        self._closeReason = "shutdown"
        if self._stream is not None:
            if self._stream.endless:
                # The watcher is the transport's producer; a paused one
                # would hold the connection open.
                self.transport.unregisterProducer()
                self._hangUp()
        elif not self._connection.unfinished:
            self._hangUp()

    def dataReceived(self, data: bytes) -> None:
        """
        Hand what has arrived to the connection, send the replies to all of
        it in one write (or a batch at a time), and act on its signal.
        """
        if self._closing:
            return
        connection = self._connection
        if self._stream is not None:
            # Handed over: the connection keeps (or ignores) it for later.
            connection.receiveData(data, [])
            return
        cache = self._cache
        cache.currentConnection = self
        lines = connection.commandLines
        replies: list[bytes] = []
        try:
            signal = connection.receiveData(data, replies)
            while signal is REPLY_BATCH:
                self._outbox.send(replies)
                replies = []
                if self._closing or self._outbox.full or self._outbox:
                    break
                signal = connection.continueReading(replies)
        finally:
            cache.currentConnection = None
        if replies:
            self._outbox.send(replies)
        if connection.commandLines != lines:
            if self.timeOut is not None:
                self.resetTimeout()
            self.lastCommandAt = self._clock.seconds()
        if signal is IDLE and not self._closeWhenIdle:
            # Every request answered, the usual end of a read.
            if self._requestDeadline is not None:
                self._cancelRequestDeadline()
            return
        if signal is HANDOVER:
            assert connection.stream is not None
            self._handOver(connection.stream)
            return
        if signal is CLOSE or signal is QUIT:
            self._closing = True
            self._closeReason = "error" if signal is CLOSE else "normal"
        elif signal is SHUTDOWN:
            self._closing = True
            self._closeReason = "shutdown"
            self.factory.requestShutdown(graceful=connection.shutdownGraceful)
        unfinished = signal is NEED_DATA or (signal is REPLY_BATCH and connection.unfinished)
        if self._closeWhenIdle and not unfinished:
            self._closing = True
        if self._closing:
            self._hangUp()
        elif unfinished:
            self._startRequestDeadline()
        elif self._requestDeadline is not None:
            self._cancelRequestDeadline()

    # Flow control (IPushProducer).

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: stop reading requests.  A request
        left unfinished meanwhile is the server's wait, not the client's, so
        its timeout stops too.
        """
        self._outbox.full = True
        self._cancelRequestDeadline()
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """
        The transport has drained: write what waits in the outbox, then
        answer what was read, then read on.
        """
        self._outbox.full = False
        self._outbox.flush()
        if self._outbox.full or self._outbox:
            return
        if self._hangUpWhenSent:
            self._hangUp()
            return
        if self._connection.buffered and not self._closing:
            self.dataReceived(b"")
        if not self._outbox.full and not self._outbox and not self._closing:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self._closing = True

    # Timeouts.

    def timeoutConnection(self) -> None:
        """
        The client has not completed a command for the idle timeout.
        """
        self._cache.stats.idleKicks += 1
        self._closeReason = "idle_timeout"
        self.log.info("Dropping idle client {peer}", peer=self.transport.getPeer())
        self._abort()

    def _startRequestDeadline(self) -> None:
        timeout = self._cache.settings.requestTimeout
        if timeout and self._requestDeadline is None and not self._outbox.full:
            self._requestDeadline = self.callLater(timeout, self._requestTimedOut)

    def _cancelRequestDeadline(self) -> None:
        if self._requestDeadline is not None:
            if self._requestDeadline.active():
                self._requestDeadline.cancel()
            self._requestDeadline = None

    def _requestTimedOut(self) -> None:
        self._requestDeadline = None
        self._cache.stats.requestTimeouts += 1
        self._closeReason = "error"
        self.log.info(
            "Dropping {peer}: request unfinished after {timeout} seconds",
            peer=self.transport.getPeer(),
            timeout=self._cache.settings.requestTimeout,
        )
        self._abort()

    # Closing.

    def _hangUp(self) -> None:
        """
        Close the connection once the replies already written have gone.
        A transport does not close while a producer is registered with it.
        """
        self._closing = True
        self._cancelRequestDeadline()
        if self._outbox:
            # Replies still wait in the outbox: close once they are written.
            self._hangUpWhenSent = True
            return
        self._hangUpWhenSent = False
        self._unregister()
        self.transport.loseConnection()

    def _abort(self) -> None:
        """
        Drop the connection now, unsent replies and all: for clients that
        stalled, which may not be reading either.
        """
        self._closing = True
        self._cancelRequestDeadline()
        self.setTimeout(None)
        self._outbox.discard()
        self._unregister()
        self.transport.abortConnection()

    def _register(self) -> None:
        if not self._registered:
            self._registered = True
            self.transport.registerProducer(self, True)

    def _unregister(self) -> None:
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()

    # Streams.

    def _handOver(self, stream: Stream) -> None:
        """
        Let a stream (C{watch}, C{lru_crawler metadump}) write on this
        connection, which reads no command until the stream gives it back.
        """
        # Stops reading here; what follows waits in the connection.
        self._outbox.full = True
        self.setTimeout(None)
        self._unregister()
        if stream.endless:
            self._stream = SubscriptionProducer(stream, self.transport)  # type: ignore[arg-type]
        else:
            self._stream = DumpProducer(stream, self.transport, self._clock, self._streamDone)  # type: ignore[arg-type]

    def _streamDone(self) -> None:
        """
        The stream has finished: read commands again.
        """
        self._stream = None
        self._connection.streamFinished()
        if self._closing:
            return
        self.transport.unregisterProducer()
        self._register()
        if self._closeWhenIdle and not self._connection.buffered:
            self._hangUp()
            return
        self.setTimeout(self._cache.settings.idleTimeout or None)
        self.resumeProducing()


class CacheServerFactory(Factory):
    """
    Builds connections that share one cache.

    @ivar cache: the store, counters and settings the connections act on.
    """

    protocol = CacheServerProtocol
    log = Logger()

    def __init__(
        self,
        store: MemoryStore,
        clock: IReactorTime,
        settings: ServerSettings = ServerSettings(),
    ) -> None:
        self.cache = Cache(store, settings)
        self.clock = clock
        self.settings = settings
        self.connections: set[CacheServerProtocol] = self.cache.connections
        self._drained: list[Deferred[None]] = []

    def connectionClosed(self, connection: CacheServerProtocol) -> None:
        """
        A counted connection has gone.
        """
        self.connections.discard(connection)
        if not self.connections:
            waiters, self._drained = self._drained, []
            for waiter in waiters:
                waiter.callback(None)

    def drain(self, timeout: float) -> Deferred[None]:
        """
        Close every connection once its current request is answered, for a
        graceful shutdown; those still open after C{timeout} seconds are
        closed anyway.

        @return: a L{Deferred} that fires when all connections are closed.
        """
        if not self.connections:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._drained.append(waiter)
        self.log.info(
            "Closing {count} connections (waiting up to {timeout}s)",
            count=len(self.connections),
            timeout=timeout,
        )
        for connection in list(self.connections):
            connection.finishAndClose()
        if self.connections:
            deadline = self.clock.callLater(timeout, self._forceClose)

            def cancelDeadline(result: None) -> None:
                if deadline.active():
                    deadline.cancel()
                return result

            waiter.addBoth(cancelDeadline)
        return waiter

    def _forceClose(self) -> None:
        for connection in list(self.connections):
            connection.transport.abortConnection()

    def buildProtocol(self, addr: IAddress | None) -> CacheServerProtocol:
        return self.protocol(self)

    def requestShutdown(self, graceful: bool) -> None:
        """
        A client asked the server to stop (C{shutdown}, enabled by C{-A}).

        @param graceful: whether it asked for C{shutdown graceful}.
        """
        self.log.info("Shutdown requested by a client (graceful={graceful})", graceful=graceful)
        if IReactorCore.providedBy(self.clock):
            self.clock.stop()
