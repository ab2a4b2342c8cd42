"""
One client connection's protocol state, without I/O: bytes in, reply lines
and a L{Signal} out.

Everything that affects what a connection reads next lives here: the
protocol, chosen on the first byte as memcached's C{-B auto} chooses it
(C{0x80} starts the binary protocol, framed by L{BinaryReader}), the reader
state (a command line, a data block, or a refused block to swallow), the
bytes waiting for the rest of a line or block, the reply windows, the
authentication gate, the dispatch of each request to L{myproto.commands},
and the mapping of errors to reply lines.  It imports nothing from Twisted;
L{myproto.protocol} adapts it to a transport, and owns the timers, the
outbox and flow control.

Framing follows memcached's rules rather than C{LineReceiver}'s: a bare LF
ends a line; an unfinished line longer than 2048 bytes closes the
connection unless it is a multi-get; and pipelined input is scanned in place
with an offset, where C{LineReceiver} copies the rest of its buffer for
every line, which is quadratic in the number of commands in one read.
"""

from __future__ import annotations

from enum import Enum, auto
from typing import Any, Optional, Protocol

from myproto.cache import Cache
from myproto.commands.dispatch import ADMITTERS, COMPLETERS, HANDLERS, badDataBlock
from myproto.errors import ClientError, CloseConnection, HandOver, ProtocolError, Stream
from myproto.commands import binary as binaryCommands
from myproto.commands import sasl
from myproto.commands.retrieval import getMany, getOne
from myproto.wire import binary, classic
from myproto.wire.text import parseRequest

CRLF = b"\r\n"
INTERNAL_ERROR = b"SERVER_ERROR internal error"

# Replies to a pipelined batch are handed out as soon as they pass this
# size, so that a transport whose buffer is full can pause the connection
# before it reads and answers more.
REPLY_BATCH_LIMIT = 64 * 1024

# memcached carries out at most -R commands (its reqs_per_event, 20 by
# default) plus the one it starts with of one read before it writes its
# replies and yields, then -R at a time; see Cache.newReplyWindow.


class Signal(Enum):
    """
    What the adapter must do once it has sent the replies.
    """

    IDLE = auto()  # nothing: every request is answered
    NEED_DATA = auto()  # nothing: a request has begun, wait for the rest of it
    REPLY_BATCH = auto()  # replies reached REPLY_BATCH_LIMIT: send, then continueReading
    CLOSE = auto()  # close the connection once the replies have gone
    QUIT = auto()  # the same, as the client asked (memcached's normal close)
    HANDOVER = auto()  # hand the connection to ServerConnection.stream
    SHUTDOWN = auto()  # close, and stop the server (see shutdownGraceful)


IDLE = Signal.IDLE
NEED_DATA = Signal.NEED_DATA
REPLY_BATCH = Signal.REPLY_BATCH
CLOSE = Signal.CLOSE
QUIT = Signal.QUIT
HANDOVER = Signal.HANDOVER
SHUTDOWN = Signal.SHUTDOWN


class ReaderState(Enum):
    """
    What the next input bytes are.
    """

    COMMAND = auto()  # a command line
    DATA = auto()  # a storage command's data block and its CRLF
    SWALLOW = auto()  # a refused data block, to be discarded
    DETECT = auto()  # the first byte: 0x80 starts the binary protocol
    BINARY = auto()  # binary requests, framed by L{BinaryReader}


# Module-level names for the states: the request path compares against them
# for every command, and a global is cheaper to reach than an Enum attribute.
COMMAND = ReaderState.COMMAND
DATA = ReaderState.DATA
SWALLOW = ReaderState.SWALLOW
DETECT = ReaderState.DETECT
BINARY = ReaderState.BINARY


class ConnectionObserver(Protocol):
    """
    Told what a connection's owner logs.
    """

    def authenticationFailed(self, why: str) -> None:
        """
        A client's credentials were refused.
        """

    def internalError(self, doing: str) -> None:
        """
        A command failed with an unexpected exception: a bug.  Called from
        the C{except} block, so the exception can be logged.
        """

    def binaryDetected(self) -> None:
        """
        The client speaks the binary protocol: from now on its replies are
        bytes to send as they are, not lines to end with CRLF.
        """


class ServerConnection:
    """
    The protocol state of one client connection.

    @ivar state: what the next input bytes are.
    @ivar authenticated: whether the client may send commands.
    @ivar stream: after L{HANDOVER}, what writes on the connection until
        L{streamFinished}.
    @ivar shutdownGraceful: after L{SHUTDOWN}, whether the client asked for
        C{shutdown graceful}.
    @ivar commandLines: command lines read so far.
    """

    quickGets = True  # whether a get may skip _carryOutLine (_quickGet)

    # One per client connection, idle ones included: slots keep it small.
    __slots__ = (
        "_cache",
        "_observer",
        "state",
        "_buffer",
        "_pending",
        "_chunks",
        "_remaining",
        "_windowRoom",
        "authenticated",
        "stream",
        "shutdownGraceful",
        "commandLines",
        "_continuing",
        "_binary",
    )

    def __init__(self, cache: Cache, observer: ConnectionObserver) -> None:
        self._cache = cache
        self._observer = observer
        self.authenticated = cache.settings.credentials is None
        # memcached's -B auto: the first byte says which protocol.  Until a
        # client authenticates (-Y), only the text protocol can do that.
        self.state = DETECT if self.authenticated and cache.settings.protocol != "ascii" else COMMAND
        self._buffer = b""
        self._pending: Any = None
        # A data block's parts so far; a list only once a block spans reads.
        self._chunks: list[bytes] | tuple[()] = ()
        self._remaining = 0
        self._windowRoom = cache.settings.maxRequestsPerEvent + 1
        self.stream: Optional[Stream] = None
        self.shutdownGraceful = False
        self.commandLines = 0
        self._continuing = False
        self._binary: BinaryReader | None = None

    @property
    def unfinished(self) -> bool:
        """
        Whether a command line, data block or binary request has begun and
        not ended: the adapter's request timer runs meanwhile.
        """
        state = self.state
        if state is BINARY:
            assert self._binary is not None
            return bool(self._buffer) or self._binary.unfinished
        return bool(self._buffer) or (state is not COMMAND and state is not DETECT)

    @property
    def buffered(self) -> bool:
        """
        Whether bytes wait to be read.
        """
        return bool(self._buffer)

    @property
    def bufferedBytes(self) -> int:
        """
        How many received bytes the connection holds on to: an unfinished
        line, or the part of a data block received so far.
        """
        held = len(self._buffer) + sum(map(len, self._chunks))
        if self._binary is not None:
            held += self._binary.bufferedBytes
        return held

    @property
    def dataRemaining(self) -> int:
        """
        How many bytes of the data block being read (or swallowed), its CRLF
        included, are still to come.
        """
        if self.state is BINARY:
            assert self._binary is not None
            return self._binary.remaining
        return self._remaining if self.state is DATA or self.state is SWALLOW else 0

    def receiveData(self, data: bytes, replies: list[bytes]) -> Signal:
        """
        Frame what has arrived into command lines and data blocks and carry
        them out.

        @param data: the bytes read (or C{b""} to read on from what waits).
        @param replies: where the reply lines go, each without its CRLF.
        @return: what the adapter must do after sending C{replies}.
        """
        stream = self.stream
        if stream is not None:
            # Handed over: a watcher's input is ignored, as memcached does;
            # a dump's waits until the connection is given back.
            if not stream.endless:
                self._cache.stats.bytesRead += len(data)
                self._buffer += data
            return NEED_DATA
        cache = self._cache
        if data[:4] == b"get " and data[-2:] == CRLF and self.state is COMMAND and not self._buffer:
            # A read is most often one get of one key: answered here as the
            # loop below would answer it, in fewer steps.
            key = data[4:-2]
            if key and len(key) <= classic.KEY_MAX_LENGTH and b" " not in key and 0 not in key \
                    and 10 not in key and self.authenticated and cache.timings is None and self.quickGets:
                cache.stats.bytesRead += len(data)
                cache.replyWindow += 1
                self.commandLines += 1
                getOne(cache, key, replies)
                self._windowRoom = cache.settings.maxRequestsPerEvent
                return IDLE
        cache.stats.bytesRead += len(data)
        if self._continuing:
            self._continuing = False
        else:
            if self.state is COMMAND or self.state is DETECT:
                # memcached writes its replies whenever it runs out of whole
                # lines (but not while it waits for the rest of a data block).
                self._cache.newReplyWindow()
            self._windowRoom = self._cache.settings.maxRequestsPerEvent + 1
        buffer = self._buffer + data if self._buffer else data
        self._buffer = b""
        position = 0
        length = len(buffer)
        signal = NEED_DATA
        # Whether a one-key get may take the short way (see getOne): not
        # before authentication, nor while commands are timed.
        quick = self.authenticated and self._cache.timings is None and self.quickGets
        counted = replySize = 0
        try:
            while position < length:
                if len(replies) > 64:
                    # Summed as they come, not all again for each command.
                    while counted < len(replies):
                        replySize += len(replies[counted])
                        counted += 1
                    if replySize > REPLY_BATCH_LIMIT:
                        signal = REPLY_BATCH
                        break
                state = self.state
                if state is COMMAND:
                    newline = buffer.find(b"\n", position)
                    if newline < 0:
                        break
                    end = newline
                    if end - position > 1 and buffer[end - 1] == 0x0D:
                        end -= 1
                    line = buffer[position:end]
                    position = newline + 1
                    if quick and line[:4] == b"get " and _quickGet(self._cache, line[4:], replies):
                        # Answered as the parser and retrieve would have.
                        self.commandLines += 1
                        self._windowRoom -= 1
                        if not self._windowRoom:
                            self._nextReplyWindow()
                        continue
                    if len(line) > classic.READ_BUFFER_SIZE and not _isRetrieval(line):
                        # memcached could never hold this line whole.
                        return CLOSE
                    self.commandLines += 1
                    signal = self._carryOutLine(line, replies)
                    if signal is not NEED_DATA:
                        break
                    if self.state is COMMAND:
                        self._windowRoom -= 1
                        if not self._windowRoom:
                            self._nextReplyWindow()
                elif state is DATA:
                    need = self._remaining
                    available = length - position
                    if available < need:
                        # Kept as a view: a large value is copied only once,
                        # when its last part arrives.
                        chunk = memoryview(buffer)[position:] if position else buffer
                        if self._chunks:
                            self._chunks.append(chunk)  # type: ignore[union-attr]
                        else:
                            self._chunks = [chunk]
                        self._remaining -= available
                        position = length
                        break
                    if self._chunks:
                        value, intact = _endOfBlock(self._chunks, buffer, position, need)  # type: ignore[arg-type]
                        self._chunks = ()
                    else:
                        value = buffer[position : position + need - 2]
                        intact = buffer.startswith(CRLF, position + need - 2)
                    position += need
                    self.state = COMMAND
                    self._carryOutDataBlock(value, intact, replies)
                    self._commandDone()
                elif state is SWALLOW:
                    taken = min(self._remaining, length - position)
                    position += taken
                    self._remaining -= taken
                    if not self._remaining:
                        self.state = COMMAND
                        self._commandDone()
                elif state is DETECT:
                    if buffer[position] == binary.REQUEST_MAGIC or self._cache.settings.protocol == "binary":
                        self._binary = BinaryReader(self._cache, self._observer)
                        self.state = BINARY
                        self._observer.binaryDetected()
                    else:
                        self.state = COMMAND
                else:
                    assert self._binary is not None
                    position, signal, commands = self._binary.receive(buffer, position, replies)
                    self.commandLines += commands
                    break
        finally:
            if position < length:
                self._buffer = buffer[position:]
        if signal is not NEED_DATA:
            return signal
        state = self.state
        if state is COMMAND:
            if not self._buffer:
                return IDLE
            # Only now is what is left an unfinished line.
            if _unfinishedLineTooLong(self._buffer, self.authenticated):
                self._buffer = b""
                return CLOSE
        elif state is not DATA and state is not SWALLOW and not self.unfinished:
            # A binary connection, or one yet to send its first byte.
            return IDLE
        return NEED_DATA

    def continueReading(self, replies: list[bytes]) -> Signal:
        """
        Read on after L{REPLY_BATCH}, in the same reply window.
        """
        # A flag rather than a second entry point into the loop: the loop
        # runs once per read, and a call more costs every request.
        self._continuing = True
        return self.receiveData(b"", replies)

    def streamFinished(self) -> None:
        """
        The stream the connection was handed to has finished: read commands
        again (the adapter calls L{receiveData} with C{b""}).
        """
        self.stream = None

    def _commandDone(self) -> None:
        """
        A command is finished; after memcached's count of them, its replies
        would have been written (see L{Cache.newReplyWindow}).
        """
        self._windowRoom -= 1
        if not self._windowRoom:
            self._nextReplyWindow()

    def _nextReplyWindow(self) -> None:
        # memcached, its -R requests done, writes its replies and yields.
        cache = self._cache
        cache.newReplyWindow()
        cache.stats.connYields += 1
        self._windowRoom = cache.settings.maxRequestsPerEvent

    def _carryOutLine(self, line: bytes, replies: list[bytes]) -> Signal:
        request = None
        cache = self._cache
        try:
            # Until a client authenticates (-Y), each line must be the set
            # that carries its credentials.
            request = parseRequest(line) if self.authenticated else classic.parseAuthentication(line)
            handler = HANDLERS.get(type(request))
            if handler is not None:
                timings = cache.timings
                if timings is None:
                    lines = handler(request, cache)
                else:
                    lines = timings.time(handler, request, cache)
                if not request.noreply:
                    replies += lines
                return NEED_DATA
            admitter = ADMITTERS.get(type(request))
            if admitter is not None:
                self._remaining = request.size + 2  # type: ignore[union-attr]
                try:
                    replies.extend(admitter(request, cache))
                except ProtocolError:
                    self.state = SWALLOW
                    raise
                self._pending = request
                self.state = DATA
                return NEED_DATA
            if isinstance(request, classic.QuitRequest):
                return QUIT
            if isinstance(request, classic.ShutdownRequest):
                signal, self.shutdownGraceful = _shutdown(self._cache, request, replies)
                return signal
            raise AssertionError("no handler for %r" % (request,))
        except CloseConnection:
            return CLOSE
        except HandOver as handOver:
            # As in memcached, replies still waiting to be written refuse it.
            if replies:
                replies.append(handOver.stream.pipelineError)
                return NEED_DATA
            self.stream = handOver.stream
            return HANDOVER
        except ProtocolError as error:
            if not (error.noreply or (request is not None and request.noreply)):
                replies.append(error.wire())
        except Exception:
            self._observer.internalError("handling a command")
            replies.append(INTERNAL_ERROR)
        return NEED_DATA

    def _carryOutDataBlock(self, value: bytes, intact: bool, replies: list[bytes]) -> None:
        request = self._pending
        self._pending = None
        cache = self._cache
        try:
            if not intact:
                raise badDataBlock(request, cache)
            completer = COMPLETERS[type(request)]
            timings = cache.timings
            if timings is None:
                lines = completer(request, value, cache)
            else:
                lines = timings.timeCompletion(completer, request, value, cache)
            if isinstance(request, classic.AuthenticationRequest):
                self.authenticated = True
        except ProtocolError as error:
            if isinstance(request, classic.AuthenticationRequest):
                self._observer.authenticationFailed(error.message.decode("ascii"))
            if not request.noreply:
                replies.append(error.wire())
            return
        except Exception:
            self._observer.internalError("storing an item")
            replies.append(INTERNAL_ERROR)
            return
        if not request.noreply:
            replies.extend(lines)

def _quickGet(cache: Cache, keys: bytes, replies: list[bytes]) -> bool:
    """
    Answer a C{get} line's keys (what follows C{"get "}) without a request
    object, when they are what the parser would split them into: no NUL,
    single spaces.

    @return: whether they were answered; if not, the line goes the long way.
    """
    if not keys or 0 in keys:
        return False
    if b" " not in keys:
        if len(keys) > classic.KEY_MAX_LENGTH:
            return False
        getOne(cache, keys, replies)
        return True
    split = keys.split(b" ")
    if b"" in split or cache.prefixStats.enabled:
        return False
    try:
        replies += getMany(cache, split, False)
    except ClientError as error:
        replies.append(error.wire())
    return True


def _shutdown(cache: Cache, request: classic.ShutdownRequest, replies: list[bytes]) -> tuple[Signal, bool]:
    """
    C{shutdown}, when C{-A} allows it.

    @return: what the connection must do, and whether the client asked for
        C{shutdown graceful}.
    """
    if not cache.settings.enableShutdown:
        replies.append(classic.SHUTDOWN_NOT_ENABLED)
        return NEED_DATA, False
    if request.mode is None or request.mode == b"graceful":
        return SHUTDOWN, request.mode is not None
    replies.append(ClientError(classic.BAD_SHUTDOWN_MODE).wire())
    return NEED_DATA, False


def _endOfBlock(chunks: list[bytes], buffer: bytes, position: int, need: int) -> tuple[bytes, bool]:
    """
    A data block begun in earlier reads (C{chunks}) that ends C{need} bytes
    into C{buffer} from C{position}.

    @return: its value, copied once, and whether its CRLF is intact.
    """
    if need < 2:
        # The block's CRLF straddles two reads.
        chunks.append(buffer[position : position + need])
        block = b"".join(chunks)
        return block[:-2], block.endswith(CRLF)
    # Joined without the CRLF: a large value is copied once.
    chunks.append(buffer[position : position + need - 2])
    return b"".join(chunks), buffer.startswith(CRLF, position + need - 2)


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
    if len(rest) <= classic.MAX_COMMAND_LINE:
        return False
    if not authenticated:
        return True
    return not _isRetrieval(rest) or len(rest) > classic.MAX_RETRIEVAL_LINE


class BinaryReader:
    """
    The framing of binary requests on one connection, as memcached's
    C{try_read_command_binary}: a request is carried out once its header,
    extras and key have arrived; then a storage command's value is read,
    or a refused one swallowed, without being parsed as requests.

    @ivar remaining: the bytes of a value (or of a swallow) still to come.
    """

    __slots__ = ("_cache", "_observer", "_pending", "_chunks", "remaining", "_sasl")

    def __init__(self, cache: Cache, observer: ConnectionObserver) -> None:
        self._cache = cache
        self._observer = observer
        # With -S, the connection's SASL state, which every request passes.
        self._sasl = sasl.SaslSession() if cache.settings.saslCredentials is not None else None
        # The storage request whose value is being read, if any.
        self._pending: binary.BinaryRequest | None = None
        self._chunks: list[bytes] = []
        self.remaining = 0

    @property
    def bufferedBytes(self) -> int:
        """
        How much of a value has arrived.
        """
        return sum(map(len, self._chunks))

    @property
    def unfinished(self) -> bool:
        """
        Whether a value or a swallow is under way.
        """
        return self.remaining > 0

    def receive(self, buffer: bytes, position: int, replies: list[bytes]) -> tuple[int, Signal, int]:
        """
        Carry out the requests in C{buffer} from C{position}.

        @return: the position up to which C{buffer} is used (what follows is
            an unfinished request, to come back with more bytes), what the
            adapter must do, and how many requests were carried out.
        """
        length = len(buffer)
        cache = self._cache
        commands = 0
        # The replies memcached would have written by now (see
        # binary.writtenAtOnce): a bad magic byte loses the others.
        written = len(replies)
        produced = 0
        while True:
            remaining = self.remaining
            if remaining:
                taken = min(remaining, length - position)
                request = self._pending
                if request is not None:
                    self._chunks.append(buffer[position : position + taken])
                position += taken
                self.remaining = remaining = remaining - taken
                if remaining:
                    return position, NEED_DATA, commands
                if request is not None:
                    self._pending = None
                    value = b"".join(self._chunks)
                    self._chunks = []
                    written = self._complete(request, value, replies, written)
                commands += 1
                continue
            if length - position < binary.HEADER_LENGTH:
                return position, (IDLE if position == length else NEED_DATA), commands
            need = binary.headerLengths(buffer, position)
            if need is None:
                # memcached closes on a bad magic byte, answering nothing.
                del replies[written:]
                return length, CLOSE, commands
            if length - position < need:
                return position, NEED_DATA, commands
            request = binary.parseRequest(buffer, position)
            position += need
            before = len(replies)
            try:
                gated = None if self._sasl is None else sasl.carryOut(request, cache, self._sasl, replies)
                if gated is None:
                    after, count = binaryCommands.carryOut(request, cache, replies)
                else:
                    after, count = gated
            except Exception:
                self._observer.internalError("handling a binary command")
                replies.append(binary.errorResponse(request, binary.UNKNOWN_COMMAND))
                return position, CLOSE, commands
            if after is binaryCommands.Next.CLOSE:
                return position, CLOSE, commands + 1
            if after is binaryCommands.Next.QUIT:
                return position, QUIT, commands + 1
            if after is binaryCommands.Next.VALUE:
                if not count:
                    written = self._complete(request, b"", replies, written)
                else:
                    self._pending = request
                    self.remaining = count
                    continue
            elif after is binaryCommands.Next.SWALLOW and count:
                self.remaining = count
                continue
            elif len(replies) > before and binary.writtenAtOnce(replies[before]):
                written = len(replies)
            commands += 1
            produced += sum(map(len, replies[before:]))
            if produced > REPLY_BATCH_LIMIT:
                # Quiet hits too: what one read asks for leaves in batches.
                return position, REPLY_BATCH, commands

    def _complete(
        self, request: binary.BinaryRequest, value: bytes, replies: list[bytes], written: int
    ) -> int:
        """
        Store a value that has arrived.

        @param written: how many of C{replies} memcached would have written.
        @return: how many it has written after this one.
        """
        before = len(replies)
        try:
            if request.opcode == binary.SASL_AUTH or request.opcode == binary.SASL_STEP:
                assert self._sasl is not None
                failure = sasl.complete(request, value, self._cache, self._sasl, replies)
                if failure is not None:
                    self._observer.authenticationFailed(failure)
            else:
                binaryCommands.completeStorage(request, value, self._cache, replies)
        except Exception:
            self._observer.internalError("storing a binary item")
            replies.append(binary.errorResponse(request, binary.ENOMEM))
        if len(replies) > before and binary.writtenAtOnce(replies[before]):
            return len(replies)
        return written
