"""
memcached's UDP protocol (C{-U PORT}): the Twisted datagram adapter over the
same sans-IO L{ServerConnection} and L{Cache} the stream connections use.

Every datagram starts with an 8-byte frame header: request id, sequence
number, total datagrams in the message, and two reserved bytes, each a
16-bit big-endian number.  As memcached 1.6.18 does (C{try_read_udp},
C{build_udp_header}, C{transmit_udp}):

  - a datagram of 8 bytes or fewer is ignored, unanswered, as is one whose
    header announces more (or fewer) than one datagram: requests that span
    datagrams are not served;
  - a datagram whose first byte is C{0x80} holds binary requests, any
    other text ones, whatever C{-B} says; each reply is a message of its own,
    sent in as many datagrams as it needs at 1392 bytes of reply each
    (1400 with the header), numbered from 0, all with the request's id;
  - a multi-get answers one message per key, the last carrying C{END}; a
    missed key before the last is an empty message (a bare header that
    says 0 datagrams), as is C{quit}, which ends the datagram;
  - C{bytes_read} and C{bytes_written} count whole datagrams, headers
    included, and the port is a connection in C{curr_connections} and
    C{total_connections}.

Where memcached's behaviour depends on which of its threads reads the next
datagram, myproto keeps each datagram self-contained: a request left
unfinished at its end (a data block that does not arrive whole) is dropped,
unanswered, with the replies it held back; memcached would read the next
datagram, header included, as the rest of the data block.  Nor does
myproto repeat a memcached bug: after the first C{quit} on its UDP port,
memcached answers each datagram only up to its first write.  C{watch} and
C{lru_crawler metadump}, which take over a stream, are not answered.

A source that never sends a well-formed header gets nothing: replies only
ever go to the address and request id of a datagram that had one.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.application.internet import UDPServer
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from myproto.connection import (
    CLOSE,
    COMMAND,
    DETECT,
    HANDOVER,
    REPLY_BATCH,
    SHUTDOWN,
    ServerConnection,
)
from myproto.conns import connectionNumber, describeAddress
from myproto.errors import CloseConnection, ProtocolError
from myproto.protocol import CacheServerFactory
from myproto.wire import binary, classic
from myproto.wire.text import parseRequest

HEADER = struct.Struct(">HHHH")
HEADER_SIZE = HEADER.size

# memcached's UDP_MAX_PAYLOAD_SIZE: a reply datagram, header included.
MAX_PAYLOAD = 1400
DATA_SIZE = MAX_PAYLOAD - HEADER_SIZE

# memcached's UDP_READ_BUFFER_SIZE: read whole any datagram that can be sent.
READ_SIZE = 65536

# The header of a request that fits one datagram: sequence 0 of 1 (memcached
# looks only at the total).
_ONE_DATAGRAM = b"\x00\x01"

CRLF = b"\r\n"


def frames(requestId: int, message: bytes) -> list[bytes]:
    """
    Split one reply message into datagrams as memcached does.

    @param requestId: the id of the request it answers.
    @param message: the reply; empty for memcached's empty message.
    @return: the datagrams, each with its header.
    """
    total = min(-(-len(message) // DATA_SIZE), 0xFFFF)
    if not message:
        return [HEADER.pack(requestId, 0, 0, 0)]
    return [
        HEADER.pack(requestId, sequence & 0xFFFF, total, 0)
        + message[offset : offset + DATA_SIZE]
        for sequence, offset in enumerate(range(0, len(message), DATA_SIZE))
    ]


def textMessages(request: Any, lines: list[bytes]) -> tuple[list[bytes | None], bool]:
    """
    The reply messages of one text request, as memcached makes them.

    @param request: the parsed request, or L{None} if it did not parse.
    @param lines: its reply lines, without their CRLFs.
    @return: the messages (L{None} for a reply memcached skips, as for
        C{noreply}; C{b""} for an empty one), and whether memcached writes
        its queued replies once the request is done (after a C{get},
        C{mn} or C{quit}).
    """
    text = [line + CRLF for line in lines]
    if isinstance(request, classic.RetrievalRequest) and lines and lines[-1] == b"END":
        # One message per key; the last takes END.
        messages: list[bytes | None] = []
        position = 0
        for key in request.keys:
            message = b""
            line = lines[position] if position < len(lines) - 1 else b""
            if line.startswith(b"VALUE ") and line.split(b" ", 2)[1] == key:
                message = text[position] + text[position + 1]
                position += 2
            messages.append(message)
        messages[-1] = messages[-1] + b"".join(text[position:])  # type: ignore[operator]
        return messages, True
    if isinstance(request, classic.QuitRequest):
        return [b""], True
    flush = isinstance(request, classic.NoOpRequest)
    return [b"".join(text) if lines else None], flush


def transmitted(queue: list[bytes]) -> list[bytes]:
    """
    The messages memcached's C{transmit_udp} sends of those queued at one
    write: each in turn, but an empty message only at the head, as the
    empty ones right after a message it has sent are finished with it.
    """
    return queue[:1] + [message for message in queue[1:] if message]


def binaryMessages(replies: list[bytes]) -> list[bytes]:
    """
    The reply messages of binary requests: each response (a header and the
    body it announces) is a message.
    """
    data = b"".join(replies)
    messages = []
    position = 0
    while position < len(data):
        end = position + binary.HEADER_LENGTH + int.from_bytes(data[position + 8 : position + 12], "big")
        messages.append(data[position:end])
        position = end
    return messages


class DatagramConnection(ServerConnection):
    """
    A connection that notes where each text request's replies begin, so
    that each can be sent as a message of its own.

    @ivar requests: for each command line, the index of its first reply
        and the request (L{None} for a line that does not parse).
    """

    __slots__ = ("requests", "windows")
    # Each request's replies must be told apart (one message each), so no
    # get skips _carryOutLine.
    quickGets = False

    def __init__(self, cache: Any, observer: Any, first: int) -> None:
        super().__init__(cache, observer)
        # memcached's UDP reads each datagram's first byte whatever -B says.
        self.state = DETECT if first == binary.REQUEST_MAGIC else COMMAND
        self.requests: list[tuple[int, Any]] = []
        # After how many requests memcached's reply windows end.
        self.windows: set[int] = set()

    def _nextReplyWindow(self) -> None:
        self.windows.add(len(self.requests))
        super()._nextReplyWindow()

    def _carryOutLine(self, line: bytes, replies: list[bytes]) -> Any:
        try:
            request: Any = parseRequest(line)
        except (ProtocolError, CloseConnection):
            request = None
        self.requests.append((len(replies), request))
        return super()._carryOutLine(line, replies)


class UDPServerProtocol(DatagramProtocol):
    """
    The requests of each datagram on a memcached UDP port, carried out on
    the factory's cache.
    """

    log = Logger()

    def __init__(self, factory: CacheServerFactory) -> None:
        self.factory = factory
        self._cache = factory.cache
        self._binary = False
        self._source: Any = None

    def startProtocol(self) -> None:
        # memcached counts its UDP connection (one per thread serving it:
        # one here, as stats settings' num_threads_per_udp says).
        stats = self._cache.stats
        stats.currConnections += 1
        stats.totalConnections += 1
        # stats conns lists it beside the listening sockets, as memcached does.
        self._cache.listeners.add(self)

    def stopProtocol(self) -> None:
        self._cache.stats.currConnections -= 1
        self._cache.listeners.discard(self)

    def datagramReceived(self, datagram: bytes, address: Any) -> None:  # type: ignore[override]
        if len(datagram) <= HEADER_SIZE:
            return
        stats = self._cache.stats
        # Counted whole, as memcached counts them, header and all.
        stats.bytesRead += HEADER_SIZE
        if datagram[4:6] != _ONE_DATAGRAM:
            stats.bytesRead += len(datagram) - HEADER_SIZE
            return
        requestId = (datagram[0] << 8) | datagram[1]
        self._source = address
        self._binary = False
        connection = DatagramConnection(self._cache, self, datagram[HEADER_SIZE])
        replies: list[bytes] = []
        cache = self._cache
        cache.currentConnection = self
        try:
            signal = connection.receiveData(datagram[HEADER_SIZE:], replies)
            while signal is REPLY_BATCH:
                signal = connection.continueReading(replies)
        finally:
            cache.currentConnection = None
        if signal is HANDOVER:
            return
        if connection.unfinished and signal is not CLOSE and signal is not SHUTDOWN:
            if connection.dataRemaining:
                # memcached holds these until the data block is complete.
                return
        if self._binary:
            messages = binaryMessages(replies)
        else:
            messages = self._textMessages(connection, replies)
        self._send(requestId, address, messages)
        if signal is SHUTDOWN:
            self.factory.requestShutdown(graceful=connection.shutdownGraceful)

    def _textMessages(self, connection: DatagramConnection, replies: list[bytes]) -> list[bytes]:
        requests = connection.requests
        sent: list[bytes] = []
        queue: list[bytes] = []
        for index, (start, request) in enumerate(requests):
            end = requests[index + 1][0] if index + 1 < len(requests) else len(replies)
            messages, flush = textMessages(request, replies[start:end])
            queue += [message for message in messages if message is not None]
            if flush or index + 1 in connection.windows:
                sent += transmitted(queue)
                queue = []
        return sent + transmitted(queue)

    def _send(self, requestId: int, address: Any, messages: list[bytes]) -> None:
        stats = self._cache.stats
        write = self.transport.write  # type: ignore[union-attr]
        for message in messages:
            for datagram in frames(requestId, message):
                stats.bytesWritten += len(datagram)
                write(datagram, address)

    # ConnectionObserver

    def authenticationFailed(self, why: str) -> None:
        self.log.warn("Authentication failed for {peer}: {why}", peer=self._source, why=why)

    def internalError(self, doing: str) -> None:
        self.log.failure("Unexpected error {doing}", doing=doing)

    def binaryDetected(self) -> None:
        self._binary = True

    # ClientConnection (the cfd of watch lines)

    def connectionNumber(self) -> int:
        return connectionNumber(self)

    def connectionReport(self, now: float, current: bool) -> list[tuple[str, object]]:
        # memcached 1.6.18's lines for its UDP connection, "UDP UDP" first.
        return [
            ("UDP", "UDP"),
            ("addr", describeAddress(self.transport.getHost())),  # type: ignore[union-attr]
            ("state", "conn_read"),
            ("secs_since_last_cmd", 0),
        ]


def udpService(factory: CacheServerFactory, reactor: Any) -> UDPServer | None:
    """
    The UDP listener of C{-U PORT}, on the interface of the first TCP
    listener (all interfaces if it names none), or L{None} when C{-U} is 0
    or nothing listens on TCP (memcached serves UDP only beside TCP).
    """
    settings = factory.settings
    if not settings.udpPort or settings.listening.tcpPort is None:
        return None
    interface = settings.listening.interface or ""
    service = UDPServer(
        settings.udpPort,
        UDPServerProtocol(factory),
        interface=interface,
        maxPacketSize=READ_SIZE,
        reactor=reactor,
    )
    service.setName("udp")
    return service
