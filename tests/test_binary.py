"""
The binary protocol, byte for byte, on a L{StringTransport}: every opcode of
phase one, fed whole, pipelined with quiet commands, and one byte at a time;
malformed headers; detection on the first byte.  The expected bytes are
what memcached 1.6.18 sends (L{tests.test_binary_differential} holds the
two servers to each other).
"""

from __future__ import annotations

import struct
from random import Random

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from myproto.config import ServerSettings
from myproto.wire import binary as B
from tests.helpers import (
    Client,
    Server,
    binaryRequest,
    binaryResponse,
    counter,
    expiration,
    storage,
)

NOT_FOUND = b"Not found"
EXISTS = b"Data exists for key."
NOT_STORED = b"Not stored."
INVALID = b"Invalid arguments"
UNKNOWN = b"Unknown command"
TOO_LARGE = b"Too large."
NON_NUMERIC = b"Non-numeric server-side value for incr or decr"


def flagsOf(flags: int) -> bytes:
    return struct.pack(">I", flags)


def number(value: int) -> bytes:
    return struct.pack(">Q", value)


class BinaryTestCase(SynchronousTestCase):
    """
    A server on a clock, and helpers that feed a stream three ways.
    """

    settings = ServerSettings()

    def setUp(self) -> None:
        self.server = Server(self.settings)
        self.client = self.server.connect()

    def exchange(self, stream: bytes) -> bytes:
        """
        Send C{stream} on the test's connection, in one read.
        """
        return self.client.send(stream)

    def assertEveryWay(self, stream: bytes, expected: bytes, closes: bool = False) -> None:
        """
        Fed whole, and one byte at a time on a fresh server, C{stream} gets
        C{expected}; the connection closes after it if C{closes}.
        """
        whole = Server(self.settings).connect()
        self.assertEqual(whole.send(stream), expected)
        self.assertEqual(whole.closed, closes)
        byByte = Server(self.settings).connect()
        received = b""
        for index in range(len(stream)):
            if byByte.closed:
                break
            received += byByte.send(stream[index : index + 1])
        self.assertEqual(received, expected)
        self.assertEqual(byByte.closed, closes)


class BinaryStorageTests(BinaryTestCase):
    """
    SET, ADD, REPLACE, APPEND and PREPEND, loud and quiet, through the
    same storage semantics as the text protocols.
    """

    def test_setThenGet(self) -> None:
        """
        SET answers with the new CAS; GET returns flags in its extras, the
        CAS, and the value; the opaque is echoed.
        """
        self.assertEveryWay(
            binaryRequest(B.SET, b"k", storage(7), b"abc", opaque=2)
            + binaryRequest(B.GET, b"k", opaque=3),
            binaryResponse(B.SET, opaque=2, cas=1)
            + binaryResponse(B.GET, extras=flagsOf(7), value=b"abc", opaque=3, cas=1),
        )

    def test_getKeyVariants(self) -> None:
        """
        GETK and GETKQ hits carry the key; GETQ and GETKQ misses say nothing;
        a GETK miss carries the key and no message; a NOOP ends the batch.
        """
        self.assertEveryWay(
            binaryRequest(B.SETQ, b"q", storage(1), b"v", opaque=1)
            + binaryRequest(B.GETQ, b"q", opaque=2)
            + binaryRequest(B.GETQ, b"nn", opaque=3)
            + binaryRequest(B.GETKQ, b"q", opaque=4)
            + binaryRequest(B.GETKQ, b"nn", opaque=5)
            + binaryRequest(B.GETK, b"nn", opaque=6)
            + binaryRequest(B.GET, b"nn", opaque=7)
            + binaryRequest(B.NOOP, opaque=8),
            binaryResponse(B.GETQ, extras=flagsOf(1), value=b"v", opaque=2, cas=1)
            + binaryResponse(B.GETKQ, extras=flagsOf(1), key=b"q", value=b"v", opaque=4, cas=1)
            + binaryResponse(B.GETK, B.KEY_ENOENT, key=b"nn", opaque=6)
            + binaryResponse(B.GET, B.KEY_ENOENT, value=NOT_FOUND, opaque=7)
            + binaryResponse(B.NOOP, opaque=8),
        )

    def test_addAndReplace(self) -> None:
        """
        ADD of a present key is "exists", REPLACE of a missing one "not
        found", as memcached words them; the quiet forms report the errors.
        """
        self.assertEveryWay(
            binaryRequest(B.ADD, b"k", storage(), b"1")
            + binaryRequest(B.ADD, b"k", storage(), b"2")
            + binaryRequest(B.ADDQ, b"k", storage(), b"2")
            + binaryRequest(B.REPLACE, b"k", storage(), b"3")
            + binaryRequest(B.REPLACE, b"x", storage(), b"3")
            + binaryRequest(B.REPLACEQ, b"x", storage(), b"3")
            + binaryRequest(B.REPLACEQ, b"k", storage(), b"4")
            + binaryRequest(B.GET, b"k"),
            binaryResponse(B.ADD, cas=1)
            + binaryResponse(B.ADD, B.KEY_EEXISTS, value=EXISTS)
            + binaryResponse(B.ADDQ, B.KEY_EEXISTS, value=EXISTS)
            + binaryResponse(B.REPLACE, cas=2)
            + binaryResponse(B.REPLACE, B.KEY_ENOENT, value=NOT_FOUND)
            + binaryResponse(B.REPLACEQ, B.KEY_ENOENT, value=NOT_FOUND)
            + binaryResponse(B.GET, extras=flagsOf(0), value=b"4", cas=3),
        )

    def test_appendAndPrepend(self) -> None:
        """
        APPEND and PREPEND take no extras, keep the flags, and say "not
        stored" for a missing key.
        """
        self.assertEveryWay(
            binaryRequest(B.APPEND, b"x", value=b"a")
            + binaryRequest(B.SET, b"k", storage(5), b"mid")
            + binaryRequest(B.APPEND, b"k", value=b"-end")
            + binaryRequest(B.PREPENDQ, b"k", value=b"start-")
            + binaryRequest(B.APPENDQ, b"x", value=b"a")
            + binaryRequest(B.GET, b"k"),
            binaryResponse(B.APPEND, B.NOT_STORED, value=NOT_STORED)
            + binaryResponse(B.SET, cas=1)
            + binaryResponse(B.APPEND, cas=2)
            + binaryResponse(B.APPENDQ, B.NOT_STORED, value=NOT_STORED)
            + binaryResponse(B.GET, extras=flagsOf(5), value=b"start-mid-end", cas=3),
        )

    def test_compareAndSwap(self) -> None:
        """
        A CAS in a SET's header makes it a compare-and-swap: the right one
        stores, a wrong one is "exists", one for a missing key "not found".
        """
        self.assertEveryWay(
            binaryRequest(B.SET, b"k", storage(), b"a")
            + binaryRequest(B.SET, b"k", storage(), b"b", cas=99)
            + binaryRequest(B.SET, b"k", storage(), b"c", cas=1)
            + binaryRequest(B.SET, b"x", storage(), b"c", cas=1)
            + binaryRequest(B.GET, b"k"),
            binaryResponse(B.SET, cas=1)
            + binaryResponse(B.SET, B.KEY_EEXISTS, value=EXISTS)
            + binaryResponse(B.SET, cas=2)
            + binaryResponse(B.SET, B.KEY_ENOENT, value=NOT_FOUND)
            + binaryResponse(B.GET, extras=flagsOf(0), value=b"c", cas=2),
        )

    def test_emptyValue(self) -> None:
        """
        A value of no bytes is stored and returned.
        """
        self.assertEveryWay(
            binaryRequest(B.SET, b"k", storage(3)) + binaryRequest(B.GET, b"k"),
            binaryResponse(B.SET, cas=1) + binaryResponse(B.GET, extras=flagsOf(3), cas=1),
        )

    def test_tooLargeIsSwallowed(self) -> None:
        """
        A value over the item size limit is refused from its header, before
        it arrives, and then swallowed unbuffered; the old item goes, as in
        memcached; the next request is read after it.
        """
        self.exchange(binaryRequest(B.SET, b"k", storage(), b"old"))
        size = self.settings.maxItemSize + 1
        reply = self.exchange(binaryRequest(B.SET, b"k", storage(), bodyLength=9 + size))
        self.assertEqual(reply, binaryResponse(B.SET, B.E2BIG, value=TOO_LARGE))
        for _ in range(size // 65536):
            self.assertEqual(self.exchange(b"x" * 65536), b"")
            self.assertEqual(self.client.protocol.connection.bufferedBytes, 0)
        reply = self.exchange(b"x" * (size % 65536) + binaryRequest(B.GET, b"k"))
        self.assertEqual(reply, binaryResponse(B.GET, B.KEY_ENOENT, value=NOT_FOUND))
        self.assertFalse(self.client.closed)

    def test_sharedCounters(self) -> None:
        """
        Binary commands count in the same statistics as text ones.
        """
        self.exchange(
            binaryRequest(B.SET, b"k", storage(), b"v")
            + binaryRequest(B.GET, b"k")
            + binaryRequest(B.GETQ, b"nope")
        )
        stats = self.server.stats()
        self.assertEqual(
            (stats["cmd_set"], stats["cmd_get"], stats["get_hits"], stats["get_misses"]),
            ("1", "2", "1", "1"),
        )


    def test_countersAsMemcached(self) -> None:
        """
        As in memcached, a counter an INCREMENT creates is not a set, and a
        value refused as too large is not counted in C{store_too_large}.
        """
        self.exchange(
            binaryRequest(B.INCREMENT, b"c", counter(1, 5))
            + binaryRequest(B.SET, b"k", storage(), bodyLength=9 + 2 * 1024 * 1024)
        )
        stats = self.server.stats()
        self.assertEqual(
            (stats["cmd_set"], stats["store_too_large"], stats["total_items"]), ("0", "0", "1")
        )


class BinaryItemTests(BinaryTestCase):
    """
    DELETE, INCREMENT, DECREMENT, TOUCH and the GAT family.
    """

    def test_delete(self) -> None:
        """
        DELETE of a present key succeeds; of a missing one, or with a wrong
        CAS, fails, quiet or not.
        """
        self.assertEveryWay(
            binaryRequest(B.SET, b"k", storage(), b"v")
            + binaryRequest(B.DELETE, b"k", cas=42)
            + binaryRequest(B.DELETEQ, b"k")
            + binaryRequest(B.DELETE, b"k")
            + binaryRequest(B.DELETEQ, b"k"),
            binaryResponse(B.SET, cas=1)
            + binaryResponse(B.DELETE, B.KEY_EEXISTS, value=EXISTS)
            + binaryResponse(B.DELETE, B.KEY_ENOENT, value=NOT_FOUND)
            + binaryResponse(B.DELETEQ, B.KEY_ENOENT, value=NOT_FOUND),
        )

    def test_counters(self) -> None:
        """
        INCREMENT creates the counter with its initial value unless the
        expiration is 0xffffffff; it wraps at 2**64; DECREMENT stops at 0;
        a value that is not a number is refused; the quiet forms are
        silent on success.
        """
        self.assertEveryWay(
            binaryRequest(B.INCREMENT, b"c", counter(1, 10, 0xFFFFFFFF))
            + binaryRequest(B.INCREMENT, b"c", counter(1, 10))
            + binaryRequest(B.INCREMENT, b"c", counter(2**64 - 1))
            + binaryRequest(B.INCREMENTQ, b"c", counter(5))
            + binaryRequest(B.DECREMENT, b"c", counter(100))
            + binaryRequest(B.DECREMENTQ, b"d", counter(1, 7, 0xFFFFFFFF))
            + binaryRequest(B.SET, b"t", storage(), b"text")
            + binaryRequest(B.INCREMENT, b"t", counter(1))
            + binaryRequest(B.INCREMENT, b"c", counter(1), cas=77),
            binaryResponse(B.INCREMENT, B.KEY_ENOENT, value=NOT_FOUND)
            + binaryResponse(B.INCREMENT, value=number(10), cas=1)
            + binaryResponse(B.INCREMENT, value=number(9), cas=2)
            + binaryResponse(B.DECREMENT, value=number(0), cas=4)
            + binaryResponse(B.DECREMENTQ, B.KEY_ENOENT, value=NOT_FOUND)
            + binaryResponse(B.SET, cas=5)
            + binaryResponse(B.INCREMENT, B.DELTA_BADVAL, value=NON_NUMERIC)
            + binaryResponse(B.INCREMENT, B.KEY_EEXISTS, value=EXISTS),
        )

    def test_touchAndGat(self) -> None:
        """
        TOUCH answers with the flags only; GAT with the value, GATK with the
        key too; misses as for GET; the new expiry holds.
        """
        self.assertEveryWay(
            binaryRequest(B.SET, b"k", storage(9), b"v")
            + binaryRequest(B.TOUCH, b"k", expiration(100))
            + binaryRequest(B.GAT, b"k", expiration(100))
            + binaryRequest(B.GATQ, b"k", expiration(100))
            + binaryRequest(B.GATK, b"k", expiration(100))
            + binaryRequest(B.GATKQ, b"k", expiration(100))
            + binaryRequest(B.GATKQ, b"x", expiration(100))
            + binaryRequest(B.GATQ, b"x", expiration(100))
            + binaryRequest(B.GATK, b"x", expiration(100))
            + binaryRequest(B.TOUCH, b"x", expiration(100)),
            binaryResponse(B.SET, cas=1)
            + binaryResponse(B.TOUCH, extras=flagsOf(9), cas=1)
            + binaryResponse(B.GAT, extras=flagsOf(9), value=b"v", cas=1)
            + binaryResponse(B.GATQ, extras=flagsOf(9), value=b"v", cas=1)
            + binaryResponse(B.GATK, extras=flagsOf(9), key=b"k", value=b"v", cas=1)
            + binaryResponse(B.GATKQ, extras=flagsOf(9), key=b"k", value=b"v", cas=1)
            + binaryResponse(B.GATK, B.KEY_ENOENT, key=b"x")
            + binaryResponse(B.TOUCH, B.KEY_ENOENT, value=NOT_FOUND),
        )

    def test_touchSetsExpiry(self) -> None:
        """
        A TOUCH's expiration is the item's new one.
        """
        self.exchange(
            binaryRequest(B.SET, b"k", storage(0, 10), b"v")
            + binaryRequest(B.TOUCH, b"k", expiration(100))
        )
        self.server.clock.advance(50)
        reply = self.exchange(binaryRequest(B.GET, b"k"))
        self.assertEqual(reply, binaryResponse(B.GET, extras=flagsOf(0), value=b"v", cas=1))
        self.server.clock.advance(51)
        reply = self.exchange(binaryRequest(B.GET, b"k"))
        self.assertEqual(reply, binaryResponse(B.GET, B.KEY_ENOENT, value=NOT_FOUND))


class BinaryServerCommandTests(BinaryTestCase):
    """
    FLUSH, NOOP, VERSION, QUIT and STAT.
    """

    def test_flush(self) -> None:
        """
        FLUSH empties the cache; FLUSHQ says nothing.
        """
        self.assertEveryWay(
            binaryRequest(B.SET, b"k", storage(), b"v")
            + binaryRequest(B.FLUSHQ)
            + binaryRequest(B.GET, b"k")
            + binaryRequest(B.FLUSH, opaque=5),
            binaryResponse(B.SET, cas=1)
            + binaryResponse(B.GET, B.KEY_ENOENT, value=NOT_FOUND)
            + binaryResponse(B.FLUSH, opaque=5),
        )

    def test_flushWithDelay(self) -> None:
        """
        A FLUSH's 4-byte extras delay it.
        """
        self.exchange(
            binaryRequest(B.SET, b"k", storage(), b"v") + binaryRequest(B.FLUSH, extras=expiration(10))
        )
        self.assertEqual(
            self.exchange(binaryRequest(B.GETQ, b"k")),
            binaryResponse(B.GETQ, extras=flagsOf(0), value=b"v", cas=1),
        )
        self.server.clock.advance(11)
        self.assertEqual(self.exchange(binaryRequest(B.GETQ, b"k")), b"")

    def test_versionNoopQuit(self) -> None:
        """
        VERSION answers memcached's version; NOOP an empty success; QUIT
        one too, then the connection closes.
        """
        self.assertEveryWay(
            binaryRequest(B.VERSION, opaque=1)
            + binaryRequest(B.NOOP, opaque=2)
            + binaryRequest(B.QUIT, opaque=3)
            + binaryRequest(B.NOOP, opaque=4),
            binaryResponse(B.VERSION, value=b"1.6.18", opaque=1)
            + binaryResponse(B.NOOP, opaque=2)
            + binaryResponse(B.QUIT, opaque=3),
            closes=True,
        )

    def test_quietQuit(self) -> None:
        """
        QUITQ closes the connection without a word.
        """
        self.assertEveryWay(binaryRequest(B.QUITQ), b"", closes=True)

    def test_stats(self) -> None:
        """
        STAT sends one response per statistic (name as key, value as body)
        and an empty one to end; C{reset} sends only the end, an unknown
        group "not found".
        """
        reply = self.exchange(binaryRequest(B.STAT, opaque=9))
        end = binaryResponse(B.STAT, opaque=9)
        self.assertTrue(reply.endswith(end))
        # The first is "pid": magic, opcode, key length, and the key.
        self.assertEqual(reply[:4], b"\x81\x10\x00\x03")
        self.assertEqual(reply[24:27], b"pid")
        self.assertEqual(
            self.exchange(binaryRequest(B.STAT, b"reset") + binaryRequest(B.STAT, b"bogus")),
            binaryResponse(B.STAT) + binaryResponse(B.STAT, B.KEY_ENOENT, value=NOT_FOUND),
        )
        settings = self.exchange(binaryRequest(B.STAT, b"settings"))
        self.assertIn(b"maxbytes67108864", settings)
        # As in memcached, the connections are listed in text only.
        self.assertEqual(
            self.exchange(binaryRequest(B.STAT, b"conns")),
            binaryResponse(B.STAT, B.KEY_ENOENT, value=NOT_FOUND),
        )

    def test_statsDetail(self) -> None:
        """
        C{detail on} and C{detail off} switch the prefix statistics;
        C{detail dump} sends the text dump as the body of one statistic,
        C{detailed}.
        """
        self.assertEqual(self.exchange(binaryRequest(B.STAT, b"detail on")), binaryResponse(B.STAT))
        self.exchange(binaryRequest(B.GET, b"p:k"))
        self.assertEqual(
            self.exchange(binaryRequest(B.STAT, b"detail dump")),
            binaryResponse(
                B.STAT,
                key=b"detailed",
                value=b"PREFIX p get 1 hit 0 set 0 del 0\r\nEND\r\n",
            )
            + binaryResponse(B.STAT),
        )
        self.assertEqual(self.exchange(binaryRequest(B.STAT, b"detail")), binaryResponse(B.STAT, B.KEY_ENOENT, value=NOT_FOUND))


class BinaryErrorTests(BinaryTestCase):
    """
    Malformed requests get memcached's status, or its hang-up.
    """

    def test_unknownOpcodeSwallowsBody(self) -> None:
        """
        An unknown opcode (VERBOSITY among them, in memcached 1.6.18) is
        refused and its body swallowed; the connection stays.
        """
        self.assertEveryWay(
            binaryRequest(0x55, value=b"xyz", opaque=9)
            + binaryRequest(B.VERBOSITY, bodyLength=4)
            + b"\0\0\0\1"
            + binaryRequest(B.NOOP),
            binaryResponse(0x55, B.UNKNOWN_COMMAND, value=UNKNOWN, opaque=9)
            + binaryResponse(B.VERBOSITY, B.UNKNOWN_COMMAND, value=UNKNOWN)
            + binaryResponse(B.NOOP),
        )

    def test_saslWithoutAuthentication(self) -> None:
        """
        Without C{-S}, SASL is an unknown command, as in memcached: the
        value of an AUTH is swallowed; lengths that do not fit are invalid.
        """
        self.assertEveryWay(
            binaryRequest(B.SASL_LIST_MECHS)
            + binaryRequest(B.SASL_AUTH, b"PLAIN", value=b"\0u\0p")
            + binaryRequest(B.NOOP),
            binaryResponse(B.SASL_LIST_MECHS, B.UNKNOWN_COMMAND, value=UNKNOWN)
            + binaryResponse(B.SASL_AUTH, B.UNKNOWN_COMMAND, value=UNKNOWN)
            + binaryResponse(B.NOOP),
        )
        self.assertEveryWay(
            binaryRequest(B.SASL_STEP, value=b"x"),
            binaryResponse(B.SASL_STEP, B.EINVAL, value=INVALID),
            closes=True,
        )

    def test_wrongLengthsAreInvalid(self) -> None:
        """
        Extras, key or body lengths that do not fit the opcode: "invalid
        arguments", then memcached closes.
        """
        cases = [
            binaryRequest(B.GET, b"k", extras=b"abcd"),
            binaryRequest(B.SET, b"k", extras=b"abcd", value=b"v"),
            binaryRequest(B.SET, extras=storage(), value=b"v"),
            binaryRequest(B.DELETE, b"k", extras=b"\0\0\0\0"),
            binaryRequest(B.INCREMENT, b"k", extras=b"\0" * 8),
            binaryRequest(B.VERSION, extras=b"a"),
            binaryRequest(B.NOOP, value=b"a"),
            binaryRequest(B.FLUSH, extras=b"ab"),
            binaryRequest(B.TOUCH, b"k"),
            binaryRequest(B.STAT, extras=b"a"),
            binaryRequest(B.GET, b"k" * 251),
        ]
        for stream in cases:
            opcode = stream[1]
            self.assertEveryWay(
                stream + binaryRequest(B.NOOP),
                binaryResponse(opcode, B.EINVAL, value=INVALID),
                closes=True,
            )

    def test_keyLongerThanBody(self) -> None:
        """
        A key and extras longer than the body: "unknown command", then
        memcached closes.
        """
        self.assertEveryWay(
            binaryRequest(B.GET, b"k", bodyLength=0) + binaryRequest(B.NOOP),
            binaryResponse(B.GET, B.UNKNOWN_COMMAND, value=UNKNOWN),
            closes=True,
        )

    def test_badMagicCloses(self) -> None:
        """
        Once binary, a header that is not a request's closes the connection.
        """
        self.assertEveryWay(
            binaryRequest(B.NOOP) + binaryRequest(B.NOOP, magic=0x81) + binaryRequest(B.NOOP),
            binaryResponse(B.NOOP),
            closes=True,
        )

    def test_badMagicLosesUnwrittenReplies(self) -> None:
        """
        memcached hangs up on a bad magic byte without writing the replies
        it holds: those since the last NOOP or error (a GETK miss is no
        such error) in the same read.  (Replies to earlier reads have gone,
        so this is fed whole only.)
        """
        bad = binaryRequest(B.NOOP, magic=0x81)
        set = binaryRequest(B.SET, b"k", storage(), b"v")
        cases = [
            (set + bad, b""),
            (binaryRequest(B.GETK, b"x") + bad, b""),
            (
                binaryRequest(B.GET, b"x") + set + bad,
                binaryResponse(B.GET, B.KEY_ENOENT, value=NOT_FOUND),
            ),
        ]
        for stream, expected in cases:
            client = Server(self.settings).connect()
            self.assertEqual(client.send(stream), expected)
            self.assertTrue(client.closed)

    def test_dataTypeAndVbucketIgnored(self) -> None:
        """
        memcached ignores the data type and vbucket of a request.
        """
        self.assertEveryWay(
            binaryRequest(B.NOOP, dataType=1, vbucket=5),
            binaryResponse(B.NOOP),
        )

    def test_halfRequestIsUnfinished(self) -> None:
        """
        Part of a header keeps the request timer running; a whole request
        stops it.
        """
        request = binaryRequest(B.NOOP)
        self.exchange(request[:10])
        self.assertTrue(self.client.protocol.connection.unfinished)
        self.assertEqual(self.exchange(request[10:]), binaryResponse(B.NOOP))
        self.assertFalse(self.client.protocol.connection.unfinished)


class DetectionTests(SynchronousTestCase):
    """
    The first byte says which protocol a connection speaks (memcached's
    C{-B auto}); C{-B ascii} and C{-B binary} fix it.
    """

    def connect(self, protocol: str) -> Client:
        return Server(ServerSettings(protocol=protocol)).connect()

    def test_textStaysText(self) -> None:
        """
        A connection that starts with text speaks text, CRLF and all.
        """
        client = self.connect("auto")
        self.assertEqual(client.send(b"version\r\n"), b"VERSION 1.6.18\r\n")
        self.assertFalse(client.protocol.connection.unfinished)

    def test_freshConnectionIsIdle(self) -> None:
        """
        Before its first byte a connection has nothing unfinished.
        """
        self.assertFalse(self.connect("auto").protocol.connection.unfinished)

    def test_asciiOnly(self) -> None:
        """
        Under C{-B ascii} a binary request is text: a line memcached does
        not know.
        """
        client = self.connect("ascii")
        self.assertEqual(client.send(binaryRequest(B.VERSION) + b"\r\n"), b"ERROR\r\n")

    def test_binaryOnly(self) -> None:
        """
        Under C{-B binary} text is a bad magic byte: once a header's worth
        has arrived, the connection closes.
        """
        client = self.connect("binary")
        self.assertEqual(client.send(b"version\r\n"), b"")
        self.assertFalse(client.closed)
        self.assertEqual(client.send(b"version\r\n" * 2), b"")
        self.assertTrue(client.closed)
        client = self.connect("binary")
        self.assertEqual(client.send(binaryRequest(B.NOOP)), binaryResponse(B.NOOP))


_OPCODES = [B.GET, B.SET, B.ADD, B.REPLACE, B.DELETE, B.INCREMENT, B.DECREMENT, B.FLUSH, B.GETQ,
            B.NOOP, B.VERSION, B.GETK, B.GETKQ, B.APPEND, B.PREPEND, B.STAT, B.SETQ, B.ADDQ,
            B.REPLACEQ, B.DELETEQ, B.INCREMENTQ, B.DECREMENTQ, B.FLUSHQ, B.APPENDQ, B.PREPENDQ,
            B.VERBOSITY, B.TOUCH, B.GAT, B.GATQ, B.SASL_LIST_MECHS, B.GATK, B.GATKQ, 0x55, 0xFF]

_FRAMES = st.builds(
    binaryRequest,
    st.sampled_from(_OPCODES),
    st.sampled_from([b"", b"k", b"p:k", b"k" * 250, b"k" * 251]),
    st.sampled_from([b"", b"\0" * 4, b"\0\0\0\1\0\0\0\0", b"\0" * 20, b"\xff" * 20, b"abc"]),
    st.binary(max_size=40),
    cas=st.sampled_from([0, 1, 2, 2**64 - 1]),
    magic=st.sampled_from([0x80] * 20 + [0x81, 0x00]),
    bodyLength=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
)


class BinaryFuzzTests(SynchronousTestCase):
    """
    Random and mutated frames never make an internal error, and leave
    other clients' data intact.
    """

    @settings(max_examples=300, deadline=None)
    @given(st.lists(_FRAMES, max_size=12), st.randoms(use_true_random=False))
    def test_framesNeverBreakTheServer(self, frames: list[bytes], random: Random) -> None:
        server = Server()
        other = server.connect()
        self.assertEqual(other.send(b"set safe 0 0 4\r\nsafe\r\n"), b"STORED\r\n")
        client = server.connect()
        stream = b"".join(frames)
        position = 0
        while position < len(stream) and not client.closed:
            step = random.randint(1, 64)
            client.send(stream[position : position + step])
            position += step
        self.assertEqual(self.flushLoggedErrors(), [])
        reply = other.send(b"get safe\r\n")
        self.assertIn(reply, (b"VALUE safe 0 4\r\nsafe\r\nEND\r\n", b"END\r\n"))
        # At most a header, extras and key, or an admitted value.
        self.assertLessEqual(client.protocol.connection.bufferedBytes, 1024 * 1024)


class BinaryAuthenticationGateTests(SynchronousTestCase):
    """
    Under C{-Y} (text authentication) a binary request cannot pass the
    gate: before authenticating, the first byte is read as text.
    """

    def test_binaryCannotBypassTextAuthentication(self) -> None:
        """
        A binary SET from an unauthenticated client stores nothing and gets
        text refusals.
        """
        server = Server(ServerSettings(credentials=((b"user", b"secret"),)))
        client = server.connect()
        reply = client.send(binaryRequest(B.SET, b"k", storage(), b"v") + b"\r\n")
        self.assertFalse(reply.startswith(b"\x81"))
        self.assertIsNone(server.store.peek(b"k"))
