"""
Tests for L{myproto.connection}: the protocol core on bytes alone, with no
transport and no reactor.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from myproto.cache import Cache
from myproto.config import ServerSettings
from myproto.connection import (
    CLOSE,
    HANDOVER,
    IDLE,
    NEED_DATA,
    QUIT,
    REPLY_BATCH,
    REPLY_BATCH_LIMIT,
    SHUTDOWN,
    ReaderState,
    ServerConnection,
    Signal,
)
from myproto.store import MemoryStore


class RecordingObserver:
    """
    A L{myproto.connection.ConnectionObserver} that remembers what it is told.
    """

    def __init__(self) -> None:
        self.authenticationFailures: list[str] = []
        self.internalErrors: list[str] = []
        self.binary = False

    def authenticationFailed(self, why: str) -> None:
        self.authenticationFailures.append(why)

    def internalError(self, doing: str) -> None:
        self.internalErrors.append(doing)

    def binaryDetected(self) -> None:
        self.binary = True


def connect(settings: ServerSettings = ServerSettings()) -> tuple[ServerConnection, Cache]:
    """
    @return: a connection core on a new cache, and the cache.
    """
    cache = Cache(MemoryStore(Clock()), settings)
    return ServerConnection(cache, RecordingObserver()), cache


def feed(connection: ServerConnection, *pieces: bytes) -> tuple[bytes, list[Signal]]:
    """
    Hand the core each piece in turn, as separate reads.

    @return: the reply bytes (each line with its CRLF) and each signal.
    """
    replies: list[bytes] = []
    signals = []
    for piece in pieces:
        signals.append(connection.receiveData(piece, replies))
    return b"".join(line + b"\r\n" for line in replies), signals


STREAM = b"set k 5 0 3\r\nabc\r\nget k\r\nincr n 1\r\nset n 0 0 1\r\n7\r\nincr n 2\r\ndelete k\r\nget k\r\n"
REPLIES = b"STORED\r\nVALUE k 5 3\r\nabc\r\nEND\r\nNOT_FOUND\r\nSTORED\r\n9\r\nDELETED\r\nEND\r\n"


class FramingTests(SynchronousTestCase):
    """
    Requests give the same replies however the bytes are split.
    """

    def test_whole(self) -> None:
        """
        A pipelined stream in one read gets every reply, and the core is
        idle.
        """
        connection, _ = connect()
        self.assertEqual(feed(connection, STREAM), (REPLIES, [IDLE]))
        self.assertFalse(connection.unfinished)

    def test_oneByteAtATime(self) -> None:
        """
        The same stream a byte per read gets the same replies.
        """
        connection, _ = connect()
        data, signals = feed(connection, *(STREAM[i : i + 1] for i in range(len(STREAM))))
        self.assertEqual(data, REPLIES)
        self.assertEqual(set(signals), {NEED_DATA, IDLE})
        self.assertIs(signals[-1], IDLE)

    def test_unfinished(self) -> None:
        """
        A line or data block begun and not ended leaves the core unfinished,
        holding what it has received.
        """
        connection, _ = connect()
        self.assertEqual(feed(connection, b"set k 0 0 10\r\nabc")[1], [NEED_DATA])
        self.assertTrue(connection.unfinished)
        self.assertIs(connection.state, ReaderState.DATA)
        self.assertEqual((connection.bufferedBytes, connection.dataRemaining), (3, 9))
        self.assertEqual(feed(connection, b"defghij\r\n"), (b"STORED\r\n", [IDLE]))
        self.assertFalse(connection.unfinished)

    def test_bareLineFeed(self) -> None:
        """
        A bare LF ends a line, as in memcached.
        """
        connection, _ = connect()
        self.assertEqual(feed(connection, b"version\n")[0], b"VERSION 1.6.18\r\n")

    def test_commandLinesCounted(self) -> None:
        """
        C{commandLines} counts the lines read, which the adapter uses to
        restart its idle timer.
        """
        connection, _ = connect()
        feed(connection, b"mn\r\nmn\r\nset k 0 0 1\r\n")
        self.assertEqual(connection.commandLines, 3)

    def test_swallowRefused(self) -> None:
        """
        A data block too large to store is refused and swallowed, and the
        next command is read as a command.
        """
        connection, _ = connect()
        size = 2 * 1024 * 1024
        data, _ = feed(connection, b"set k 0 0 %d\r\n" % (size,), b"x" * size + b"\r\nmn\r\n")
        self.assertEqual(data, b"SERVER_ERROR object too large for cache\r\nMN\r\n")


class SignalTests(SynchronousTestCase):
    """
    The core says what the adapter must do.
    """

    def test_quit(self) -> None:
        """
        C{quit} closes, after the replies before it, as the client asked
        (memcached's normal close, not an error's).
        """
        connection, _ = connect()
        self.assertEqual(feed(connection, b"mn\r\nquit\r\nmn\r\n"), (b"MN\r\n", [QUIT]))

    def test_tooLongLine(self) -> None:
        """
        An unfinished line longer than memcached's limit closes; a long
        multi-get does not.
        """
        connection, _ = connect()
        self.assertEqual(feed(connection, b"x" * 2049)[1], [CLOSE])
        connection, _ = connect()
        self.assertEqual(feed(connection, b"get " + b"k " * 2000)[1], [NEED_DATA])

    def test_shutdown(self) -> None:
        """
        C{shutdown graceful} asks to stop the server, when C{-A} allows it.
        """
        connection, _ = connect()
        self.assertEqual(
            feed(connection, b"shutdown\r\n"), (b"ERROR: shutdown not enabled\r\n", [IDLE])
        )
        connection, _ = connect(ServerSettings(enableShutdown=True))
        self.assertEqual(feed(connection, b"shutdown graceful\r\n"), (b"", [SHUTDOWN]))
        self.assertTrue(connection.shutdownGraceful)

    def test_handOver(self) -> None:
        """
        C{lru_crawler metadump} hands the connection over; what follows waits
        until the stream has finished.
        """
        connection, _ = connect()
        self.assertEqual(feed(connection, b"lru_crawler metadump all\r\nmn\r\n"), (b"", [HANDOVER]))
        stream = connection.stream
        if stream is None:
            self.fail("no stream handed over")
        self.assertFalse(stream.endless)
        self.assertEqual(feed(connection, b"mn\r\n"), (b"", [NEED_DATA]))
        connection.streamFinished()
        self.assertEqual(feed(connection, b""), (b"MN\r\nMN\r\n", [IDLE]))

    def test_handOverRefusedAfterReplies(self) -> None:
        """
        A stream is refused when replies are still pending, as memcached
        refuses it.
        """
        connection, _ = connect()
        data, signals = feed(connection, b"mn\r\nwatch\r\n")
        self.assertEqual(data, b"MN\r\nERROR cannot pipeline other commands before watch\r\n")
        self.assertEqual(signals, [IDLE])

    def test_replyBatch(self) -> None:
        """
        Replies that pass L{REPLY_BATCH_LIMIT} come back in batches, so that
        the adapter can send them (and be paused) before more is read.
        """
        connection, cache = connect()
        value = b"v" * 1000
        cache.store.put(b"k", value, 0, 0.0)
        gets = b"get k\r\n" * 200
        replies: list[bytes] = []
        self.assertIs(connection.receiveData(gets, replies), REPLY_BATCH)
        first = len(replies)
        self.assertGreater(sum(map(len, replies)), REPLY_BATCH_LIMIT)
        batches = [first]
        signal = REPLY_BATCH
        while signal is REPLY_BATCH:
            rest: list[bytes] = []
            signal = connection.continueReading(rest)
            batches.append(len(rest))
        self.assertIs(signal, IDLE)
        self.assertEqual(sum(batches), 200 * 3)
        self.assertEqual(len(batches), 4)


class AuthenticationTests(SynchronousTestCase):
    """
    With credentials configured, only an authentication C{set} is read.
    """

    def test_gate(self) -> None:
        """
        Commands are refused until the client authenticates; a bad token is
        reported to the observer.
        """
        settings = ServerSettings(credentials=((b"user", b"secret"),))
        cache = Cache(MemoryStore(Clock()), settings)
        observer = RecordingObserver()
        connection = ServerConnection(cache, observer)
        replies: list[bytes] = []
        connection.receiveData(b"get k\r\nset a 0 0 9\r\nuser nope\r\n", replies)
        self.assertEqual(
            replies, [b"CLIENT_ERROR unauthenticated", b"CLIENT_ERROR authentication failure"]
        )
        self.assertEqual(observer.authenticationFailures, ["authentication failure"])
        self.assertFalse(connection.authenticated)
        replies = []
        connection.receiveData(b"set a 0 0 11\r\nuser secret\r\nget k\r\n", replies)
        self.assertEqual(replies, [b"STORED", b"END"])
        self.assertTrue(connection.authenticated)


class BinaryReplyBatchTests(SynchronousTestCase):
    """
    Binary replies to one read leave in batches, quiet hits included, so
    that what a client asks for in one read cannot pile up unsent.
    """

    def test_quietHitsBatch(self) -> None:
        """
        A read of many GETQ hits returns L{REPLY_BATCH} once its replies pass
        L{REPLY_BATCH_LIMIT}, with the rest answered on continuing.
        """
        from myproto.wire import binary as B
        from tests.helpers import binaryRequest, storage

        connection, cache = connect()
        replies: list[bytes] = []
        value = b"v" * 2000
        self.assertEqual(connection.receiveData(binaryRequest(B.SET, b"k", storage(), value), replies), IDLE)
        requests = binaryRequest(B.GETQ, b"k") * 200 + binaryRequest(B.NOOP)
        replies = []
        signal = connection.receiveData(requests, replies)
        batches = [replies]
        while signal is REPLY_BATCH:
            self.assertLess(sum(map(len, batches[-1])), REPLY_BATCH_LIMIT + 2100)
            batches.append([])
            signal = connection.continueReading(batches[-1])
        self.assertEqual(signal, IDLE)
        self.assertGreater(len(batches), 3)
        answered = b"".join(b"".join(batch) for batch in batches)
        self.assertEqual(answered.count(value), 200)
        self.assertEqual(answered[-24 + 1], B.NOOP)


class PassThroughTimer:
    """
    A L{myproto.cache.CommandTimer} that only runs the commands: while one
    is set, every line goes the general way, through the parser.
    """

    def time(self, handler, request, cache):  # type: ignore[no-untyped-def]
        return handler(request, cache)

    def timeCompletion(self, completer, request, value, cache):  # type: ignore[no-untyped-def]
        return completer(request, value, cache)


class QuickGetTests(SynchronousTestCase):
    """
    C{get} lines answered without a request object get the replies, counters
    and reply windows the parser's way gives them, odd lines included.
    """

    LINES = [
        b"get a",
        b"get a b missing a",
        b"get  a",
        b"get a ",
        b"get a  b",
        b"get a\0b",
        b"get " + b"k" * 250,
        b"get " + b"k" * 251,
        b"get a " + b"k" * 251 + b" b",
        b"get a\rb",
        b"get",
        b"get ",
    ]

    def answer(self, lines: list[bytes], quick: bool, detail: bool) -> tuple[bytes, tuple[int, ...]]:
        connection, cache = connect()
        if not quick:
            cache.timings = PassThroughTimer()
        cache.prefixStats.enabled = detail
        replies, _ = feed(connection, b"set a 1 0 1\r\nx\r\nset b 2 0 2\r\nyy\r\n")
        pieces = [line + b"\r\n" for line in lines]
        # Each line alone (the read's shortcut), then all in one read.
        replies, _ = feed(connection, *pieces, b"".join(pieces))
        stats = cache.stats
        counters = (stats.cmdGet, stats.getHits, stats.getMisses, cache.replyWindow, connection.commandLines)
        return replies, counters

    def test_sameAsParsed(self) -> None:
        """
        Each line, alone in a read or among others, gets the same replies
        and leaves the same counters as through the parser.
        """
        for detail in (False, True):
            self.assertEqual(self.answer(self.LINES, True, detail), self.answer(self.LINES, False, detail))

    def test_prefixStatsCounted(self) -> None:
        """
        With C{stats detail on}, a multi-get's keys are counted by prefix.
        """
        connection, cache = connect()
        cache.prefixStats.enabled = True
        feed(connection, b"set p:a 0 0 1\r\nx\r\n", b"get p:a p:b\r\n")
        replies, _ = feed(connection, b"stats detail dump\r\n")
        self.assertEqual(replies, b"PREFIX p get 2 hit 1 set 1 del 0\r\nEND\r\n")
