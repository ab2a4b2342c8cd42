"""
The connection: framing bytes into command lines and data blocks, sending
replies, and the factory that ties connections to one cache.
"""

from __future__ import annotations

from collections import deque
from enum import Enum, auto
from types import MethodType
from typing import Any, Callable

from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IPushProducer,
    IReactorCore,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet import tcp
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from myproto import commands, wire
from myproto.config import ServerSettings
from myproto.errors import ClientError, CloseConnection, HandOver, ProtocolError, Stream
from myproto.store import MemoryStore

CRLF = b"\r\n"
INTERNAL_ERROR = b"SERVER_ERROR internal error"

# Replies to a pipelined batch are written as soon as they pass this size, so
# that a transport whose buffer is full can pause the connection before it
# reads and answers more (see pauseProducing).
REPLY_BATCH_LIMIT = 64 * 1024

# The most reply bytes handed to the transport in one write (beyond a single
# line, such as one large value).  A reply bigger than this, say a multi-get
# of many large values, waits in the connection's outbox as references to the
# stored values, the way memcached queues item references, and is written as
# the client reads; so a small request cannot make the server copy gigabytes.
OUTPUT_CHUNK = 64 * 1024

# memcached carries out at most this many commands of one read before it
# writes its replies, then this many at a time (its reqs_per_event, 20, plus
# the command it starts with); see Cache.newReplyWindow.
FIRST_REPLY_WINDOW = 21
REPLY_WINDOW = 20

# The command table, looked up for every command line.
_HANDLERS = commands.HANDLERS

# The most connections a listening TCP port accepts in one reactor turn.
# Twisted starts at 100 and adds 20 after each full batch, so in a burst of
# thousands of connects one turn grows to accept hundreds, and clients
# already connected wait for all of them.  Measured with bench/ workload
# (e), 10,000 connects in a burst: the worst get from a connected client
# took 13-14 ms with Twisted's batches, and 2.3-10.8 ms over ten rounds
# with these (medians 4.9 and 7.1); the burst was accepted as fast.
ACCEPTS_PER_TURN = 64


class ReaderState(Enum):
    """
    What the next input bytes are.
    """

    COMMAND = auto()  # a command line
    DATA = auto()  # a storage command's data block and its CRLF
    SWALLOW = auto()  # a refused data block, to be discarded


# Module-level names for the states: the request path compares against them
# for every command, and a global is cheaper to reach than an Enum attribute.
COMMAND = ReaderState.COMMAND
DATA = ReaderState.DATA
SWALLOW = ReaderState.SWALLOW


@implementer(IPushProducer)
class CacheServerProtocol(Protocol, TimeoutMixin):
    """
    One client connection speaking memcached's text protocol.

    Framing is done here rather than with L{LineReceiver} for two reasons:
    memcached's line rules (a bare LF ends a line; an unfinished line longer
    than 2048 bytes closes the connection unless it is a multi-get) do not
    fit C{MAX_LENGTH}; and pipelined input is scanned in place with an offset,
    where C{LineReceiver} copies the rest of its buffer for every line, which
    is quadratic in the number of commands in one read.

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
        self._state = COMMAND
        self._buffer = b""
        self._pending: wire.DataRequest | None = None
        self._chunks: list[bytes] = []
        self._remaining = 0
        self._closing = False
        self._counted = False
        self._windowRoom = FIRST_REPLY_WINDOW
        self._paused = False
        # Made when first needed: an empty deque takes 760 bytes, and most
        # connections never queue a reply.
        self._outbox: deque[bytes] | None = None
        self._registered = False
        self._hangUpWhenSent = False
        self._closeWhenIdle = False
        self.connectedAt = 0.0
        self.lastCommandAt: float | None = None
        self._stream: Stream | None = None
        self._authenticated = factory.settings.credentials is None
        self._requestDeadline: IDelayedCall | None = None

    def callLater(self, delay: float, function: Callable[..., Any], *args: Any) -> IDelayedCall:
        """
        Schedule timeouts on the factory's clock (L{TimeoutMixin} hook).
        """
        return self.factory.clock.callLater(delay, function, *args)

    def connectionMade(self) -> None:
        stats = self._cache.stats
        if stats.currConnections >= self._cache.settings.connectionLimit:
            stats.rejectedConnections += 1
            self.log.warn(
                "Refusing {peer}: {limit} connections already open",
                peer=self.transport.getPeer(),
                limit=self._cache.settings.connectionLimit,
            )
            self._send([wire.TOO_MANY_CONNECTIONS])
            self._closing = True
            self.transport.loseConnection()
            return
        stats.currConnections += 1
        stats.totalConnections += 1
        self._counted = True
        self.connectedAt = self.factory.clock.seconds()
        self.factory.connections.add(self)
        self._register()
        _tuneTransport(self.transport)
        self.setTimeout(self._cache.settings.idleTimeout or None)
        # Only at verbosity 2 (-vv), as in memcached: a burst of connections
        # must not become a burst of log events.
        if self._cache.verbosity >= 2:
            self.log.info("Connection from {peer}", peer=self.transport.getPeer())
        banner = self._cache.settings.banner
        if banner is not None:
            self._send([banner])

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self._cancelRequestDeadline()
        if self._stream is not None:
            self._stream.stop()
            self._stream = None
        if self._counted:
            if self._cache.verbosity >= 2:
                self.log.info(
                    "Connection from {peer} closed after {seconds:.1f}s",
                    peer=self.transport.getPeer(),
                    seconds=self.factory.clock.seconds() - self.connectedAt,
                )
            self._cache.stats.currConnections -= 1
            self._counted = False
            self.factory.connectionClosed(self)
        self._buffer = b""
        self._chunks = []

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

    def finishAndClose(self) -> None:
        """
        Close once the request under way, if any, is answered: part of a
        graceful shutdown.
        """
        self._closeWhenIdle = True
        if self._closing:
            return
        if self._stream is not None:
            if self._stream.endless:
                # The watcher is the transport's producer; a paused one
                # would hold the connection open.
                self.transport.unregisterProducer()
                self._hangUp()
        elif not self._buffer and self._state is COMMAND:
            self._hangUp()

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if self._stream is not None:
            # Handed over: a watcher's input is ignored, as memcached does;
            # a dump's waits (its stream stopped reading, but a TLS
            # transport may still hand over what it had decrypted).
            if not self._stream.endless:
                self._cache.stats.bytesRead += len(data)
                self._buffer += data
            return
        self._cache.stats.bytesRead += len(data)
        self._process(data)

    def _process(self, data: bytes) -> None:
        """
        Frame what has arrived into command lines and data blocks, carry
        them out, and send the replies to all of them in one write.
        """
        cache = self._cache
        cache.currentConnection = self
        replies: list[bytes] = []
        try:
            buffer = self._buffer + data if self._buffer else data
            self._buffer = b""
            position = 0
            length = len(buffer)
            commandSeen = False
            if self._state is COMMAND:
                # memcached writes its replies whenever it runs out of whole
                # lines (but not while it waits for the rest of a data block).
                cache.newReplyWindow()
            self._windowRoom = FIRST_REPLY_WINDOW
            while position < length:
                if self._closing or self._paused or self._outbox:
                    break
                if len(replies) > 64 and sum(map(len, replies)) > REPLY_BATCH_LIMIT:
                    self._send(replies)
                    replies.clear()
                    continue
                state = self._state
                if state is COMMAND:
                    newline = buffer.find(b"\n", position)
                    if newline < 0:
                        break
                    end = newline
                    if end - position > 1 and buffer[end - 1] == 0x0D:
                        end -= 1
                    line = buffer[position:end]
                    position = newline + 1
                    if len(line) > wire.READ_BUFFER_SIZE and not _isRetrieval(line):
                        # memcached could never hold this line whole.
                        self._closing = True
                        break
                    commandSeen = True
                    if self._authenticated:
                        self._lineReceived(line, replies)
                    else:
                        self._authenticationLineReceived(line, replies)
                    if self._state is COMMAND:
                        self._windowRoom -= 1
                        if not self._windowRoom:
                            self._nextReplyWindow()
                elif state is DATA:
                    need = self._remaining
                    available = length - position
                    if available < need:
                        self._chunks.append(buffer[position:] if position else buffer)
                        self._remaining -= available
                        position = length
                        break
                    if self._chunks and need < 2:
                        # The block's CRLF straddles two reads.
                        self._chunks.append(buffer[position : position + need])
                        block = b"".join(self._chunks)
                        self._chunks = []
                        value = block[:-2]
                        intact = block.endswith(CRLF)
                    elif self._chunks:
                        # Joined without the CRLF: a large value is copied once.
                        self._chunks.append(buffer[position : position + need - 2])
                        value = b"".join(self._chunks)
                        self._chunks = []
                        intact = buffer.startswith(CRLF, position + need - 2)
                    else:
                        value = buffer[position : position + need - 2]
                        intact = buffer.startswith(CRLF, position + need - 2)
                    position += need
                    self._state = COMMAND
                    self._dataReceived(value, intact, replies)
                    self._commandDone()
                else:
                    taken = min(self._remaining, length - position)
                    position += taken
                    self._remaining -= taken
                    if not self._remaining:
                        self._state = COMMAND
                        self._commandDone()
            if commandSeen:
                self.resetTimeout()
                self.lastCommandAt = self._clock.seconds()
            if position < length and not self._closing:
                rest = buffer[position:]
                # Paused, the rest may hold whole lines: they are read on
                # resume, and only then is what is left an unfinished line.
                if (
                    self._state is COMMAND
                    and not self._paused
                    and _unfinishedLineTooLong(rest, self._authenticated)
                ):
                    self._closing = True
                else:
                    self._buffer = rest
        finally:
            if replies:
                self._send(replies)
            unfinished = self._buffer or self._state is not COMMAND
            if self._closeWhenIdle and not unfinished:
                self._closing = True
            if self._closing:
                self._hangUp()
            elif unfinished:
                self._startRequestDeadline()
            elif self._requestDeadline is not None:
                self._cancelRequestDeadline()
            cache.currentConnection = None

    # Flow control (IPushProducer).

    def pauseProducing(self) -> None:
        """
        The transport's buffer is full: stop reading requests.  A request
        left unfinished meanwhile is the server's wait, not the client's, so
        its timeout stops too.
        """
        self._paused = True
        self._cancelRequestDeadline()
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        """
        The transport has drained: write what waits in the outbox, then
        answer what was read, then read on.
        """
        self._paused = False
        self._flush()
        if self._paused or self._outbox:
            return
        if self._hangUpWhenSent:
            self._hangUp()
            return
        if self._buffer and not self._closing:
            self._process(b"")
        if not self._paused and not self._outbox and not self._closing:
            self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self._closing = True

    # Timeouts.

    def timeoutConnection(self) -> None:
        """
        The client has not completed a command for the idle timeout.
        """
        self._cache.stats.idleKicks += 1
        self.log.info("Dropping idle client {peer}", peer=self.transport.getPeer())
        self._abort()

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
        self._outbox = None
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

    def _startRequestDeadline(self) -> None:
        timeout = self._cache.settings.requestTimeout
        if timeout and self._requestDeadline is None and not self._paused:
            self._requestDeadline = self.callLater(timeout, self._requestTimedOut)

    def _cancelRequestDeadline(self) -> None:
        if self._requestDeadline is not None:
            if self._requestDeadline.active():
                self._requestDeadline.cancel()
            self._requestDeadline = None

    def _requestTimedOut(self) -> None:
        self._requestDeadline = None
        self._cache.stats.requestTimeouts += 1
        self.log.info(
            "Dropping {peer}: request unfinished after {timeout} seconds",
            peer=self.transport.getPeer(),
            timeout=self._cache.settings.requestTimeout,
        )
        self._abort()

    def _send(self, lines: list[bytes]) -> None:
        """
        Write reply lines, each followed by CRLF: in one write when they are
        small, else through the outbox a chunk at a time.
        """
        # Three lines hold at most one value, which goes whole in any case.
        if self._outbox or (len(lines) > 3 and sum(map(len, lines)) > OUTPUT_CHUNK):
            if self._outbox is None:
                self._outbox = deque()
            self._outbox.extend(lines)
            self._flush()
            return
        lines.append(b"")
        self._write(CRLF.join(lines))

    def _flush(self) -> None:
        """
        Hand the outbox to the transport a chunk at a time, until it is
        empty or the transport pauses us.
        """
        outbox = self._outbox
        while outbox and not self._paused:
            chunk = [outbox.popleft()]
            size = len(chunk[0])
            while outbox and size + len(outbox[0]) <= OUTPUT_CHUNK:
                line = outbox.popleft()
                chunk.append(line)
                size += len(line)
            chunk.append(b"")
            self._write(CRLF.join(chunk))
        if not outbox and self._hangUpWhenSent:
            self._hangUp()

    def _write(self, payload: bytes) -> None:
        """
        Write reply bytes, counting them as memcached's C{bytes_written}
        does (before any TLS).
        """
        self._cache.stats.bytesWritten += len(payload)
        self.transport.write(payload)

    # Framing.

    def _commandDone(self) -> None:
        """
        A command is finished; after memcached's count of them, its replies
        would have been written (see L{commands.Cache.newReplyWindow}).
        """
        self._windowRoom -= 1
        if not self._windowRoom:
            self._nextReplyWindow()

    def _nextReplyWindow(self) -> None:
        self._cache.newReplyWindow()
        self._windowRoom = REPLY_WINDOW

    def _lineReceived(self, line: bytes, replies: list[bytes]) -> None:
        request = None
        try:
            request = wire.parseRequest(line)
            handler = _HANDLERS.get(type(request))
            if handler is not None:
                cache = self._cache
                if cache.timings is None:
                    lines = handler(request, cache)
                else:
                    lines = cache.timings.time(handler, request, cache)
                if not request.noreply:
                    replies += lines
                return
            if isinstance(request, wire.DATA_REQUESTS):
                self._remaining = request.size + 2
                try:
                    replies.extend(commands.admit(request, self._cache))
                except ProtocolError:
                    self._state = SWALLOW
                    raise
                self._pending = request
                self._state = DATA
                return
            if isinstance(request, wire.QuitRequest):
                self._closing = True
                return
            if isinstance(request, wire.ShutdownRequest):
                self._shutdown(request, replies)
                return
            raise AssertionError("no handler for %r" % (request,))
        except CloseConnection:
            self._closing = True
            return
        except HandOver as handOver:
            self._handOver(handOver.stream, replies)
        except ProtocolError as error:
            if not (error.noreply or (request is not None and request.noreply)):
                replies.append(error.wire())
        except Exception:
            self.log.failure("Unexpected error handling a command")
            replies.append(INTERNAL_ERROR)

    def _authenticationLineReceived(self, line: bytes, replies: list[bytes]) -> None:
        try:
            request = wire.parseAuthentication(line)
        except CloseConnection:
            self._closing = True
            return
        except ProtocolError as error:
            replies.append(error.wire())
            return
        self._remaining = request.size + 2
        self._pending = request
        self._state = DATA

    def _dataReceived(self, value: bytes, intact: bool, replies: list[bytes]) -> None:
        request = self._pending
        assert request is not None
        self._pending = None
        try:
            if not intact:
                raise commands.badDataBlock(request, self._cache)
            lines = commands.complete(request, value, self._cache)
            if isinstance(request, wire.AuthenticationRequest):
                self._authenticated = True
        except ProtocolError as error:
            if isinstance(request, wire.AuthenticationRequest):
                self.log.warn(
                    "Authentication failed for {peer}: {why}",
                    peer=self.transport.getPeer(),
                    why=error.message.decode("ascii"),
                )
            if not request.noreply:
                replies.append(error.wire())
            return
        except Exception:
            self.log.failure("Unexpected error storing an item")
            replies.append(INTERNAL_ERROR)
            return
        if not request.noreply:
            replies.extend(lines)

    def _handOver(self, stream: Stream, replies: list[bytes]) -> None:
        """
        Let a stream (C{watch}, C{lru_crawler metadump}) write on this
        connection, which reads no command until the stream gives it back.
        As in memcached, replies still waiting to be written refuse it.
        """
        if replies:
            replies.append(stream.pipelineError)
            return
        self._stream = stream
        # Stops this read here; what follows waits in the buffer.
        self._paused = True
        self.setTimeout(None)
        self._unregister()
        stream.start(self.transport, self.factory.clock, self._streamDone)

    def _streamDone(self) -> None:
        """
        The stream has finished: read commands again.
        """
        self._stream = None
        if self._closing:
            return
        self.transport.unregisterProducer()
        self._register()
        if self._closeWhenIdle and not self._buffer:
            self._hangUp()
            return
        self.setTimeout(self._cache.settings.idleTimeout or None)
        self.resumeProducing()

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
        if self._paused:
            return "conn_mwrite"
        if self._state is DATA:
            return "conn_nread"
        if self._state is SWALLOW:
            return "conn_swallow"
        if self.lastCommandAt is None and not self._buffer:
            return "conn_new_cmd"
        return "conn_read"

    def _shutdown(self, request: wire.ShutdownRequest, replies: list[bytes]) -> None:
        if not self._cache.settings.enableShutdown:
            replies.append(wire.SHUTDOWN_NOT_ENABLED)
        elif request.mode is None or request.mode == b"graceful":
            self._closing = True
            self.factory.requestShutdown(graceful=request.mode is not None)
        else:
            replies.append(ClientError(wire.BAD_SHUTDOWN_MODE).wire())


def _tuneTransport(transport: Any) -> None:
    """
    Make each reply cost fewer system calls and reactor turns on the
    transports servers get from Twisted, TCP and TLS over TCP, and keep
    their listening port's accept batches short.  Others (UNIX sockets,
    L{StringTransport}) are left as they are.

    Replies to one read already leave in one write, so two of Twisted's
    ways of saving writes only add work here:

      - a TLS transport (L{BufferingTLSTransport}) holds every write for a
        C{callLater(0)} to gather small ones.  Twisted puts that buffer in
        place by assigning the instance's C{write}; assigning the
        unbuffered C{write} back undoes it the same way.
      - a TCP transport's C{write} queues the bytes and turns on write
        polling, and the next reactor turn sends them and turns polling
        off again: two C{epoll_ctl} calls per reply.  When nothing is
        queued the bytes go to the socket at once instead, and what the
        kernel does not take is queued as before.

    Measured on 16 connections of 90/10 get/set (bench/ workloads (a) and
    (g)): the TCP shortcut saves about a third of the server's CPU per
    request, and over TLS with one request in flight the two together take
    it from 45 to 38 microseconds.

    The listening port the connection came from is held to
    L{ACCEPTS_PER_TURN}, the same way: by assigning the instance's
    C{doRead}.

    @param transport: a new connection's transport.
    """
    if isinstance(transport, BufferingTLSTransport):
        transport.write = MethodType(TLSMemoryBIOProtocol.write, transport)  # type: ignore[method-assign]
        transport = transport.transport
    if type(transport) is not tcp.Server:
        return
    # As memcached does: replies are whole messages, so Nagle's algorithm
    # only holds them back waiting for ACKs.
    transport.setTcpNoDelay(True)
    transport.write = MethodType(_writeToSocketFirst, transport)  # type: ignore[method-assign]
    port = transport.server
    if isinstance(port, tcp.Port) and "doRead" not in vars(port):
        port.doRead = MethodType(_acceptInTurns, port)  # type: ignore[method-assign]


def _acceptInTurns(port: tcp.Port) -> None:
    """
    L{tcp.Port.doRead}, accepting at most L{ACCEPTS_PER_TURN} connections.
    """
    port.numberAccepts = min(port.numberAccepts, ACCEPTS_PER_TURN)
    type(port).doRead(port)


def _writeToSocketFirst(transport: tcp.Server, data: bytes) -> None:
    """
    L{tcp.Server.write}, trying the socket first when no earlier bytes wait
    to be sent (so these cannot overtake them).
    """
    if (
        not transport._tempDataBuffer
        and transport.offset == len(transport.dataBuffer)
        and transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnecting
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:
            # Full (EAGAIN), or broken: a queued write finds out which.
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    tcp.Server.write(transport, data)


def _isRetrieval(line: bytes) -> bool:
    """
    Whether a line starts as a multi-get, which memcached lets grow long.
    """
    stripped = line.lstrip(b" ")
    return len(line) - len(stripped) <= 100 and (
        stripped.startswith(b"get ") or stripped.startswith(b"gets ")
    )


def _unfinishedLineTooLong(rest: bytes, authenticated: bool) -> bool:
    """
    memcached's rule for a line still without its newline.
    """
    if len(rest) <= wire.MAX_COMMAND_LINE:
        return False
    if not authenticated:
        return True
    return not _isRetrieval(rest) or len(rest) > wire.MAX_RETRIEVAL_LINE


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
        self.cache = commands.Cache(store, settings)
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
