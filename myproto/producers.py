"""
What the protocol adapter writes through: the L{Outbox} of reply lines, and
the producers that stream on a connection handed over to C{watch} or
C{lru_crawler metadump}.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

from myproto.connection import CRLF
from myproto.errors import Dump, Subscription
from myproto.stats import ServerStats

# The most reply bytes handed to the transport in one write (beyond a single
# line, such as one large value).  A reply bigger than this, say a multi-get
# of many large values, waits in the connection's outbox as references to the
# stored values, the way memcached queues item references, and is written as
# the client reads; so a small request cannot make the server copy gigabytes.
OUTPUT_CHUNK = 64 * 1024

# Replies at least this large go to the transport as a list of buffers,
# their values uncopied: on TCP one sendmsg (myproto._tuning).  Smaller ones
# are joined, which costs less than gathering many small buffers.
GATHER_SIZE = 16 * 1024


class Outbox:
    """
    Reply lines on their way to a transport.

    Replies to one read go in one C{write}.  A reply bigger than
    L{OUTPUT_CHUNK} waits here as references to the stored values, the way
    memcached queues item references, and is written a chunk at a time as
    the client reads; so a small request cannot make the server copy
    gigabytes.

    @ivar full: whether the transport has paused its producer: nothing is
        written until it resumes.
    """

    __slots__ = ("_transport", "_stats", "_lines", "full", "separator")

    def __init__(self, transport: Any, stats: ServerStats) -> None:
        self._transport = transport
        self._stats = stats
        # Made when first needed: an empty deque takes 760 bytes, and most
        # connections never queue a reply.
        self._lines: deque[bytes] | None = None
        self.full = False
        # What ends each line: CRLF, or nothing for the binary protocol,
        # whose replies are whole responses.
        self.separator = CRLF

    def __bool__(self) -> bool:
        """
        @return: whether lines wait to be written.
        """
        return bool(self._lines)

    def send(self, lines: list[bytes]) -> None:
        """
        Write reply lines, each followed by the separator: in one write when
        they are small; as a list of buffers when they hold a large value,
        which then reaches the transport without being copied into a joined
        reply; else a chunk at a time.
        """
        # A value is never alone, so fewer than three lines hold none worth
        # gathering; three are one reply, its value second.
        if self._lines or len(lines) > 2 and (
            len(lines[1]) >= GATHER_SIZE or len(lines) > 3 and sum(map(len, lines)) >= GATHER_SIZE
        ):
            self._sendLarge(lines)
            return
        lines.append(b"")
        payload = self.separator.join(lines)
        self._stats.bytesWritten += len(payload)
        self._transport.write(payload)

    def _sendLarge(self, lines: list[bytes]) -> None:
        # Three lines hold at most one value, which goes whole in any case.
        if not self._lines and (len(lines) <= 3 or sum(map(len, lines)) <= OUTPUT_CHUNK):
            self._writeLines(lines)
            return
        if self._lines is None:
            self._lines = deque()
        self._lines.extend(lines)
        self.flush()

    def flush(self) -> None:
        """
        Hand waiting lines to the transport a chunk at a time, until none
        wait or the transport is full.
        """
        waiting = self._lines
        while waiting and not self.full:
            chunk = [waiting.popleft()]
            size = len(chunk[0])
            while waiting and size + len(waiting[0]) <= OUTPUT_CHUNK:
                line = waiting.popleft()
                chunk.append(line)
                size += len(line)
            self._writeLines(chunk)

    def discard(self) -> None:
        """
        Forget what waits: the connection is being dropped.
        """
        self._lines = None

    def _writeLines(self, lines: list[bytes]) -> None:
        """
        Write lines, each followed by the separator, as one sequence of
        buffers (see L{myproto._tuning}: on TCP, one C{sendmsg}).
        """
        separator = self.separator
        if separator:
            parts = []
            for line in lines:
                parts.append(line)
                parts.append(separator)
        else:
            parts = lines
        # Counted as memcached's bytes_written counts, before any TLS.
        self._stats.bytesWritten += sum(map(len, parts))
        self._transport.writeSequence(parts)


class StreamProducer:
    """
    A stream the connection is handed to, as the transport's producer.
    """

    endless: bool

    def stop(self) -> None:
        """
        The connection has gone.
        """


@implementer(IPushProducer)
class SubscriptionProducer(StreamProducer):
    """
    A C{watch}: it writes as events come; a full transport pauses it, and
    it drops lines meanwhile.
    """

    endless = True

    def __init__(self, subscription: Subscription, transport: Any) -> None:
        self._subscription = subscription
        subscription.start(transport.write)
        transport.registerProducer(self, True)

    def stop(self) -> None:
        self._subscription.close()

    def pauseProducing(self) -> None:
        self._subscription.pause()

    def resumeProducing(self) -> None:
        self._subscription.resume()

    def stopProducing(self) -> None:
        self.stop()


@implementer(IPushProducer)
class DumpProducer(StreamProducer):
    """
    A C{metadump}: one batch written per reactor turn while the transport
    is not full, then the connection is given back.
    """

    endless = False

    def __init__(
        self, dump: Dump, transport: Any, clock: IReactorTime, done: Callable[[], None]
    ) -> None:
        self._dump = dump
        self._transport = transport
        self._clock = clock
        self._done: Callable[[], None] | None = done
        self._call: IDelayedCall | None = None
        self._paused = False
        dump.start()
        # memcached reads no commands from a connection while it dumps.
        transport.pauseProducing()
        transport.registerProducer(self, True)
        self._schedule()

    def _schedule(self) -> None:
        if self._call is None and not self._paused and self._done is not None:
            self._call = self._clock.callLater(0, self._writeBatch)

    def _writeBatch(self) -> None:
        self._call = None
        try:
            batch = next(self._dump)
        except StopIteration:
            self._finish()
            return
        self._transport.write(batch)
        self._schedule()

    def _finish(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done()

    def stop(self) -> None:
        self._cancel()
        self._done = None
        self._dump.close()

    def _cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def pauseProducing(self) -> None:
        self._paused = True
        self._cancel()

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self.stop()
