"""
The connection: framing bytes into command lines and data blocks, sending
replies, and the factory that ties connections to one cache.
"""

from __future__ import annotations

from enum import Enum, auto

from twisted.internet.interfaces import IAddress, IReactorCore, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from myproto import commands, wire
from myproto.config import ServerSettings
from myproto.errors import ClientError, CloseConnection, ProtocolError
from myproto.store import MemoryStore

CRLF = b"\r\n"
INTERNAL_ERROR = b"SERVER_ERROR internal error"


class ReaderState(Enum):
    """
    What the next input bytes are.
    """

    COMMAND = auto()  # a command line
    DATA = auto()  # a storage command's data block and its CRLF
    SWALLOW = auto()  # a refused data block, to be discarded


class CacheServerProtocol(Protocol):
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
    """

    log = Logger()

    def __init__(self, factory: CacheServerFactory) -> None:
        self.factory = factory
        self._cache = factory.cache
        self._state = ReaderState.COMMAND
        self._buffer = b""
        self._pending: wire.DataRequest | None = None
        self._chunks: list[bytes] = []
        self._remaining = 0
        self._closing = False
        self._counted = False

    def connectionMade(self) -> None:
        stats = self._cache.stats
        stats.totalConnections += 1
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
        self._counted = True
        banner = self._cache.settings.banner
        if banner is not None:
            self._send([banner])

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._counted:
            self._cache.stats.currConnections -= 1
            self._counted = False
        self._buffer = b""
        self._chunks = []

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self._cache.stats.bytesRead += len(data)
        replies: list[bytes] = []
        try:
            self._consume(data, replies)
        finally:
            if replies:
                self._send(replies)
            if self._closing:
                self.transport.loseConnection()

    def _send(self, lines: list[bytes]) -> None:
        """
        Write reply lines, each followed by CRLF, in one write.
        """
        lines.append(b"")
        payload = CRLF.join(lines)
        self._cache.stats.bytesWritten += len(payload)
        self.transport.write(payload)

    # Framing.

    def _consume(self, data: bytes, replies: list[bytes]) -> None:
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        position = 0
        length = len(buffer)
        while position < length and not self._closing:
            state = self._state
            if state is ReaderState.COMMAND:
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
                self._lineReceived(line, replies)
            elif state is ReaderState.DATA:
                need = self._remaining
                available = length - position
                if available < need:
                    self._chunks.append(buffer[position:] if position else buffer)
                    self._remaining -= available
                    position = length
                    break
                if self._chunks:
                    self._chunks.append(buffer[position : position + need])
                    block = b"".join(self._chunks)
                    self._chunks = []
                    value = block[:-2]
                    intact = block.endswith(CRLF)
                else:
                    value = buffer[position : position + need - 2]
                    intact = buffer.startswith(CRLF, position + need - 2)
                position += need
                self._state = ReaderState.COMMAND
                self._dataReceived(value, intact, replies)
            else:
                taken = min(self._remaining, length - position)
                position += taken
                self._remaining -= taken
                if not self._remaining:
                    self._state = ReaderState.COMMAND
        if position < length and not self._closing:
            rest = buffer[position:]
            if self._state is ReaderState.COMMAND and _unfinishedLineTooLong(rest):
                self._closing = True
            else:
                self._buffer = rest

    def _lineReceived(self, line: bytes, replies: list[bytes]) -> None:
        request = None
        try:
            request = wire.parseRequest(line)
            if isinstance(request, wire.DATA_REQUESTS):
                self._remaining = request.size + 2
                try:
                    replies.extend(commands.admit(request, self._cache))
                except ProtocolError:
                    self._state = ReaderState.SWALLOW
                    raise
                self._pending = request
                self._state = ReaderState.DATA
                return
            if isinstance(request, wire.QuitRequest):
                self._closing = True
                return
            if isinstance(request, wire.ShutdownRequest):
                self._shutdown(request, replies)
                return
            lines = commands.execute(request, self._cache)
        except CloseConnection:
            self._closing = True
            return
        except ProtocolError as error:
            if not (error.noreply or getattr(request, "noreply", False)):
                replies.append(error.wire())
            return
        except Exception:
            self.log.failure("Unexpected error handling a command")
            replies.append(INTERNAL_ERROR)
            return
        if not getattr(request, "noreply", False):
            replies.extend(lines)

    def _dataReceived(self, value: bytes, intact: bool, replies: list[bytes]) -> None:
        request = self._pending
        assert request is not None
        self._pending = None
        try:
            if not intact:
                raise ClientError(wire.BAD_DATA_CHUNK)
            lines = commands.complete(request, value, self._cache)
        except ProtocolError as error:
            if not request.noreply:
                replies.append(error.wire())
            return
        except Exception:
            self.log.failure("Unexpected error storing an item")
            replies.append(INTERNAL_ERROR)
            return
        if not request.noreply:
            replies.extend(lines)

    def _shutdown(self, request: wire.ShutdownRequest, replies: list[bytes]) -> None:
        if not self._cache.settings.enableShutdown:
            replies.append(wire.SHUTDOWN_NOT_ENABLED)
        elif request.mode is None or request.mode == b"graceful":
            self._closing = True
            self.factory.requestShutdown(graceful=request.mode is not None)
        else:
            replies.append(ClientError(wire.BAD_SHUTDOWN_MODE).wire())


def _isRetrieval(line: bytes) -> bool:
    """
    Whether a line starts as a multi-get, which memcached lets grow long.
    """
    stripped = line.lstrip(b" ")
    return len(line) - len(stripped) <= 100 and (
        stripped.startswith(b"get ") or stripped.startswith(b"gets ")
    )


def _unfinishedLineTooLong(rest: bytes) -> bool:
    """
    memcached's rule for a line still without its newline.
    """
    if len(rest) <= wire.MAX_COMMAND_LINE:
        return False
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

    def buildProtocol(self, addr: IAddress) -> CacheServerProtocol:
        return self.protocol(self)

    def requestShutdown(self, graceful: bool) -> None:
        """
        A client asked the server to stop (C{shutdown}, enabled by C{-A}).

        @param graceful: whether it asked for C{shutdown graceful}.
        """
        self.log.info("Shutdown requested by a client (graceful={graceful})", graceful=graceful)
        if IReactorCore.providedBy(self.clock):
            self.clock.stop()
