"""
Tests for L{myproto.protocol}: the whole classic text protocol, through the
real factory, on a L{StringTransport}, with time driven by a L{Clock}.

Expected replies are memcached 1.6.18's, byte for byte: each exchange here
was checked against a real memcached.  Most exchanges are fed three ways
(one request per read, all pipelined in one read, and one byte per read) and
must give the same bytes each way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IReactorCore
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory, CacheServerProtocol
from myproto.store import MemoryStore, itemCost
from tests.helpers import (
    MEMCACHED_GENERAL_STATS,
    MEMCACHED_ITEM_STATS,
    MEMCACHED_SETTINGS,
    MEMCACHED_SLAB_STATS,
    MEMCACHED_SLAB_TOTALS,
    START,
    Client,
    Server,
    parseStats,
    statNames,
)

THIRTY_DAYS = 60 * 60 * 24 * 30

VERSION = b"VERSION 1.6.18\r\n"

# A small item limit keeps "too large" values small enough to feed one byte
# at a time: with a one-byte key and no flags, values up to 964 bytes fit.
SMALL_ITEMS = ServerSettings(maxItemSize=1024)
LARGEST_SMALL_VALUE = 1024 - 60  # 60: an item with a one-byte key and no value


@implementer(IReactorCore)
class StoppableClock(Clock):
    """
    A clock that is also enough of a reactor core to be stopped.

    @ivar stops: how many times L{stop} was called.
    """

    stops = 0

    def stop(self) -> None:
        self.stops += 1


def oneRequestPerRead(client: Client, requests: Sequence[bytes]) -> None:
    for request in requests:
        if client.closed:
            return
        client.protocol.dataReceived(request)


def allInOneRead(client: Client, requests: Sequence[bytes]) -> None:
    client.protocol.dataReceived(b"".join(requests))


def oneBytePerRead(client: Client, requests: Sequence[bytes]) -> None:
    data = b"".join(requests)
    for i in range(len(data)):
        if client.closed:
            return
        client.protocol.dataReceived(data[i : i + 1])


FEEDS: dict[str, Callable[[Client, Sequence[bytes]], None]] = {
    "one request per read": oneRequestPerRead,
    "pipelined in one read": allInOneRead,
    "one byte per read": oneBytePerRead,
}


class ProtocolTestCase(SynchronousTestCase):
    """
    Feeds byte streams to fresh servers and checks the replies.
    """

    settings = ServerSettings()

    def exchange(
        self, requests: Sequence[bytes], settings: ServerSettings | None = None
    ) -> dict[str, tuple[bytes, bool, Server]]:
        """
        Feed C{requests} three ways, each to a fresh server.

        @return: for each way, the server's whole output, whether it closed
            the connection, and the server.
        """
        results = {}
        for name, feed in FEEDS.items():
            server = Server(settings or self.settings)
            client = server.connect()
            feed(client, requests)
            results[name] = (client.transport.value(), client.closed, server)
            client.lose()
        return results

    def assertExchange(
        self,
        requests: Sequence[bytes],
        expected: bytes,
        closed: bool = False,
        settings: ServerSettings | None = None,
    ) -> Server:
        """
        Whether fed one request per read, all in one read or one byte per
        read, C{requests} get exactly C{expected}, and the connection is
        closed or not as C{closed} says.

        @return: the server fed one request per read, for further checks.
        """
        results = self.exchange(requests, settings)
        for name, (output, wasClosed, _) in results.items():
            self.assertEqual(output, expected, "fed " + name)
            self.assertEqual(wasClosed, closed, "fed " + name)
        return results["one request per read"][2]

    def assertStats(
        self,
        requests: Sequence[bytes],
        expected: dict[str, int],
        settings: ServerSettings | None = None,
    ) -> None:
        """
        After C{requests}, fed each of the three ways, C{stats} reports the
        C{expected} counters.
        """
        for name, (_, _, server) in self.exchange(requests, settings).items():
            stats = server.stats()
            got = {key: int(stats[key]) for key in expected}
            self.assertEqual(got, expected, "fed " + name)

    def server(self, settings: ServerSettings | None = None, clock: Clock | None = None) -> Server:
        """
        @return: a fresh server with this test's settings.
        """
        return Server(settings or self.settings, clock)


class StorageCommandTests(ProtocolTestCase):
    """
    C{set}, C{add}, C{replace}, C{append}, C{prepend}.
    """

    def test_setThenGet(self) -> None:
        """
        C{get} returns what C{set} stored, flags included.
        """
        self.assertExchange(
            [b"set k 7 0 3\r\nabc\r\n", b"get k\r\n"],
            b"STORED\r\nVALUE k 7 3\r\nabc\r\nEND\r\n",
        )

    def test_binaryValue(self) -> None:
        """
        A value may hold any bytes, CRLF, NUL and reply-like lines included.
        """
        value = b"\r\nEND\r\nVALUE x 0 1\r\n\x00\xff\n\r"
        self.assertExchange(
            [b"set k 0 0 %d\r\n%s\r\n" % (len(value), value), b"get k\r\n"],
            b"STORED\r\nVALUE k 0 %d\r\n%s\r\nEND\r\n" % (len(value), value),
        )

    def test_emptyValue(self) -> None:
        """
        A zero-length value is stored and returned.
        """
        self.assertExchange(
            [b"set k 0 0 0\r\n\r\n", b"get k\r\n"], b"STORED\r\nVALUE k 0 0\r\n\r\nEND\r\n"
        )

    def test_setReplaces(self) -> None:
        """
        C{set} replaces value and flags.
        """
        self.assertExchange(
            [b"set k 1 0 1\r\na\r\n", b"set k 2 0 2\r\nbb\r\n", b"get k\r\n"],
            b"STORED\r\nSTORED\r\nVALUE k 2 2\r\nbb\r\nEND\r\n",
        )

    def test_flags(self) -> None:
        """
        Flags are 32-bit unsigned: the largest is kept, larger ones wrap.
        """
        self.assertExchange(
            [
                b"set a 4294967295 0 1\r\nx\r\n",
                b"set b 4294967297 0 1\r\nx\r\n",
                b"get a b\r\n",
            ],
            b"STORED\r\nSTORED\r\nVALUE a 4294967295 1\r\nx\r\nVALUE b 1 1\r\nx\r\nEND\r\n",
        )

    def test_add(self) -> None:
        """
        C{add} stores only a missing key.
        """
        self.assertExchange(
            [b"add k 0 0 1\r\na\r\n", b"add k 0 0 1\r\nb\r\n", b"get k\r\n"],
            b"STORED\r\nNOT_STORED\r\nVALUE k 0 1\r\na\r\nEND\r\n",
        )

    def test_replace(self) -> None:
        """
        C{replace} stores only an existing key.
        """
        self.assertExchange(
            [
                b"replace k 0 0 1\r\na\r\n",
                b"get k\r\n",
                b"set k 0 0 1\r\na\r\n",
                b"replace k 3 0 1\r\nb\r\n",
                b"get k\r\n",
            ],
            b"NOT_STORED\r\nEND\r\nSTORED\r\nSTORED\r\nVALUE k 3 1\r\nb\r\nEND\r\n",
        )

    def test_appendPrepend(self) -> None:
        """
        C{append} and C{prepend} extend an existing value, keeping its
        flags whatever flags they name.
        """
        self.assertExchange(
            [
                b"set k 5 0 1\r\nx\r\n",
                b"append k 9 0 2\r\nyz\r\n",
                b"prepend k 9 0 2\r\nvw\r\n",
                b"get k\r\n",
            ],
            b"STORED\r\nSTORED\r\nSTORED\r\nVALUE k 5 5\r\nvwxyz\r\nEND\r\n",
        )

    def test_appendPrependMissing(self) -> None:
        """
        C{append} and C{prepend} to a missing key store nothing.
        """
        self.assertExchange(
            [b"append k 0 0 1\r\nx\r\n", b"prepend k 0 0 1\r\nx\r\n", b"get k\r\n"],
            b"NOT_STORED\r\nNOT_STORED\r\nEND\r\n",
        )

    def test_appendKeepsExpiry(self) -> None:
        """
        C{append} ignores its exptime: even a negative one does not expire
        the item.
        """
        self.assertExchange(
            [b"set k 0 0 1\r\nx\r\n", b"append k 0 -1 1\r\ny\r\n", b"get k\r\n"],
            b"STORED\r\nSTORED\r\nVALUE k 0 2\r\nxy\r\nEND\r\n",
        )

    def test_appendKeepsExpiryTime(self) -> None:
        """
        An appended item still expires at its original time.
        """
        server = self.server()
        client = server.connect()
        client.send(b"set k 0 10 1\r\nx\r\n")
        server.clock.advance(5)
        self.assertEqual(client.send(b"append k 0 0 1\r\ny\r\n"), b"STORED\r\n")
        server.clock.advance(5)
        self.assertEqual(client.send(b"get k\r\n"), b"END\r\n")

    def test_appendBeyondItemSize(self) -> None:
        """
        An C{append} whose result would exceed the item size limit is
        C{NOT_STORED}, as in memcached, and the old value stays.
        """
        half = LARGEST_SMALL_VALUE // 2 + 1
        self.assertExchange(
            [
                b"set k 0 0 %d\r\n%s\r\n" % (half, b"a" * half),
                b"append k 0 0 %d\r\n%s\r\n" % (half, b"b" * half),
                b"get k\r\n",
            ],
            b"STORED\r\nNOT_STORED\r\nVALUE k 0 %d\r\n%s\r\nEND\r\n" % (half, b"a" * half),
            settings=SMALL_ITEMS,
        )

    def test_prependBeyondItemSize(self) -> None:
        """
        A C{prepend} whose result would be too large is C{NOT_STORED}.
        """
        half = LARGEST_SMALL_VALUE // 2 + 1
        self.assertExchange(
            [
                b"set k 0 0 %d\r\n%s\r\n" % (half, b"a" * half),
                b"prepend k 0 0 %d\r\n%s\r\n" % (half, b"b" * half),
            ],
            b"STORED\r\nNOT_STORED\r\n",
            settings=SMALL_ITEMS,
        )

    def test_keyLength(self) -> None:
        """
        A 250-byte key works; with a 251-byte key the line is a format
        error, so no data block is expected and the value's line is read as
        a command.
        """
        key = b"k" * 250
        self.assertExchange(
            [b"set " + key + b" 0 0 1\r\nx\r\n", b"get " + key + b"\r\n"],
            b"STORED\r\nVALUE " + key + b" 0 1\r\nx\r\nEND\r\n",
        )
        self.assertExchange(
            [b"set " + key + b"k 0 0 1\r\nx\r\n"],
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
        )

    def test_badNumbers(self) -> None:
        """
        Bad flags, exptime or length are format errors; the data block that
        follows is then read as a command line.
        """
        self.assertExchange(
            [
                b"set k -1 0 1\r\nx\r\n",
                b"set k 0 x 1\r\nx\r\n",
                b"set k 0 0 -1\r\nx\r\n",
                b"set k 0 0 2147483646\r\nx\r\n",
                b"get k\r\n",
            ],
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n" * 4 + b"END\r\n",
        )

    def test_numberEdgeCases(self) -> None:
        """
        Numbers are read as memcached reads them: a plus sign, a tab after
        the digits, and flags and length truncated to 32 bits.
        """
        self.assertExchange(
            [
                b"set a +5 0 1\r\nx\r\n",
                b"set b 5\tjunk 0 1\r\nx\r\n",
                b"set c 0 0 4294967297\r\nx\r\n",
                b"get a b c\r\n",
            ],
            b"STORED\r\nSTORED\r\nSTORED\r\n"
            b"VALUE a 5 1\r\nx\r\nVALUE b 5 1\r\nx\r\nVALUE c 0 1\r\nx\r\nEND\r\n",
        )

    def test_arity(self) -> None:
        """
        A storage line with the wrong number of arguments is C{ERROR}, and
        its data block is read as a command line.
        """
        self.assertExchange(
            [b"set k 0 0\r\n", b"set k 0 0 1 noreply extra\r\nx\r\n", b"cas k 0 0 1\r\nx\r\n"],
            b"ERROR\r\n" * 5,
        )

    def test_nulInLine(self) -> None:
        """
        A NUL ends the command line, as in memcached's C strings.
        """
        self.assertExchange(
            [b"set k 0 0 1\x00junk\r\nx\r\n", b"get k\x00 other\r\n"],
            b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n",
        )


class BadDataChunkTests(ProtocolTestCase):
    """
    A data block that does not end in CRLF is refused and the connection
    stays in sync.
    """

    def test_tooLong(self) -> None:
        """
        memcached reads exactly the announced length plus two bytes; the
        rest of the line is then read as a (bad) command line.
        """
        self.assertExchange(
            [b"set k 0 0 3\r\nabcde\r\n", b"get k\r\n"],
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\nEND\r\n",
        )

    def test_tooShort(self) -> None:
        """
        A short block swallows the start of the next line.
        """
        self.assertExchange(
            [b"set k 0 0 5\r\nab\r\n", b"get k\r\n"],
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        )

    def test_bareLineFeed(self) -> None:
        """
        A data block must end in CRLF; a bare LF will not do.
        """
        self.assertExchange(
            [b"set k 0 0 1\nx\n", b"get k\r\n"],
            b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
        )

    def test_oldValueKept(self) -> None:
        """
        A refused block does not touch the stored value.
        """
        self.assertExchange(
            [b"set k 0 0 3\r\nold\r\n", b"set k 0 0 3\r\nnewer\r\n", b"get k\r\n"],
            b"STORED\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nVALUE k 0 3\r\nold\r\nEND\r\n",
        )

    def test_everyVerb(self) -> None:
        """
        Every storage verb checks its block.
        """
        requests = [b"set k 0 0 1\r\nx\r\n"]
        for line in (b"add j", b"replace k", b"append k", b"prepend k", b"cas k"):
            suffix = b" 1" if line.startswith(b"cas") else b""
            requests.append(line + b" 0 0 1" + suffix + b"\r\nxy\r\n")
        self.assertExchange(
            requests, b"STORED\r\n" + b"CLIENT_ERROR bad data chunk\r\nERROR\r\n" * 5
        )

    def test_noreply(self) -> None:
        """
        C{noreply} silences the error; the leftover line still gets its
        C{ERROR}.
        """
        self.assertExchange([b"set k 0 0 1 noreply\r\nxy\r\n", b"get k\r\n"], b"ERROR\r\nEND\r\n")


class TooLargeTests(ProtocolTestCase):
    """
    A value over the item size limit is refused before its block is read,
    and the block is swallowed.
    """

    settings = SMALL_ITEMS

    def block(self, size: int) -> bytes:
        return b"x" * size + b"\r\n"

    def test_boundary(self) -> None:
        """
        The largest value that fits is stored; one byte more is
        C{SERVER_ERROR object too large for cache}, and the block is
        swallowed so the next command is read in sync.
        """
        fits = LARGEST_SMALL_VALUE
        self.assertExchange(
            [
                b"set k 0 0 %d\r\n" % (fits,) + self.block(fits),
                b"set j 0 0 %d\r\n" % (fits + 1,) + self.block(fits + 1),
                b"get j\r\n",
            ],
            b"STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n",
        )

    def test_flagsCount(self) -> None:
        """
        Nonzero flags take four bytes of the item.
        """
        fits = LARGEST_SMALL_VALUE - 4
        self.assertExchange(
            [
                b"set k 1 0 %d\r\n" % (fits,) + self.block(fits),
                b"set k 1 0 %d\r\n" % (fits + 1,) + self.block(fits + 1),
            ],
            b"STORED\r\nSERVER_ERROR object too large for cache\r\n",
        )

    def test_swallowedBlockIsNotRead(self) -> None:
        """
        The swallowed bytes are discarded unread, whatever they look like,
        CRLF or not at the end.
        """
        size = LARGEST_SMALL_VALUE + 1
        block = (b"\r\nset j 0 0 1\r\nx\r\n" * 100)[: size - 2] + b"zz"
        self.assertExchange(
            [b"set k 0 0 %d\r\n%s\r\n" % (size, block), b"get j\r\n"],
            b"SERVER_ERROR object too large for cache\r\nEND\r\n",
        )

    def test_setRemovesOldValue(self) -> None:
        """
        A refused C{set} removes the old value, as memcached does.
        """
        size = LARGEST_SMALL_VALUE + 1
        self.assertExchange(
            [
                b"set k 0 0 1\r\nx\r\n",
                b"set k 0 0 %d\r\n" % (size,) + self.block(size),
                b"get k\r\n",
            ],
            b"STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n",
        )

    def test_otherVerbsKeepOldValue(self) -> None:
        """
        A refused C{add}, C{replace}, C{append}, C{prepend} or C{cas} leaves
        the old value.
        """
        size = LARGEST_SMALL_VALUE + 1
        for verb in (b"add", b"replace", b"append", b"prepend", b"cas"):
            suffix = b" 1" if verb == b"cas" else b""
            self.assertExchange(
                [
                    b"set k 0 0 1\r\nx\r\n",
                    verb + b" k 0 0 %d%s\r\n" % (size, suffix) + self.block(size),
                    b"get k\r\n",
                ],
                b"STORED\r\nSERVER_ERROR object too large for cache\r\nVALUE k 0 1\r\nx\r\nEND\r\n",
            )

    def test_noreply(self) -> None:
        """
        With C{noreply} the error is silent, the block still swallowed and
        the old value still removed.
        """
        size = LARGEST_SMALL_VALUE + 1
        self.assertExchange(
            [
                b"set k 0 0 1\r\nx\r\n",
                b"set k 0 0 %d noreply\r\n" % (size,) + self.block(size),
                b"get k\r\n",
            ],
            b"STORED\r\nEND\r\n",
        )

    def test_stats(self) -> None:
        """
        A refused value counts in C{store_too_large}, not in C{cmd_set}.
        """
        size = LARGEST_SMALL_VALUE + 1
        self.assertStats(
            [b"set k 0 0 %d\r\n" % (size,) + self.block(size)],
            {"store_too_large": 1, "cmd_set": 0, "curr_items": 0},
        )

    def test_hugeDeclaredSize(self) -> None:
        """
        A declared length of nearly 2 GB with the default 1 MB item limit is
        swallowed as it arrives, without being buffered, and the connection
        is in sync afterwards.
        """
        server = Server()
        client = server.connect()
        size = 2**31 - 3
        client.send(b"set k 0 0 1\r\nx\r\n")
        client.send(b"set k 0 0 %d\r\n" % (size,))
        chunk = b"x" * (1024 * 1024)
        remaining = size + 2
        while remaining:
            piece = chunk if remaining >= len(chunk) else chunk[:remaining]
            client.protocol.dataReceived(piece)
            remaining -= len(piece)
            self.assertLessEqual(bufferedBytes(client.protocol), 0)
            self.assertFalse(client.closed)
        client.send(b"get k\r\n")
        self.assertEqual(
            client.transport.value(),
            b"STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n",
        )


class OutOfMemoryTests(ProtocolTestCase):
    """
    An item within the item size limit but larger than all the memory
    cannot be stored.
    """

    settings = ServerSettings(memoryLimit=200, maxItemSize=1024)

    def test_outOfMemory(self) -> None:
        """
        The block is read, and the reply is memcached's
        C{SERVER_ERROR out of memory storing object}, counted in
        C{store_no_memory}; the connection stays in sync.
        """
        value = b"v" * 300
        self.assertExchange(
            [b"set big 0 0 300\r\n" + value + b"\r\n", b"get big\r\n"],
            b"SERVER_ERROR out of memory storing object\r\nEND\r\n",
        )
        self.assertStats(
            [b"set big 0 0 300\r\n" + value + b"\r\n"], {"store_no_memory": 1, "curr_items": 0}
        )

    def test_noreply(self) -> None:
        """
        C{noreply} silences it.
        """
        self.assertExchange(
            [b"set big 0 0 300 noreply\r\n" + b"v" * 300 + b"\r\n", b"get big\r\n"],
            b"END\r\n",
        )


def bufferedBytes(protocol: CacheServerProtocol) -> int:
    """
    @return: how many received bytes the connection is holding on to: an
        unfinished line and the parts of a data block received so far.
    """
    return protocol.connection.bufferedBytes


class CasTests(ProtocolTestCase):
    """
    C{gets} and C{cas}.
    """

    def gets(self, client: Client, key: bytes) -> int:
        """
        @return: the CAS unique C{gets} reports for C{key}.
        """
        reply = client.send(b"gets " + key + b"\r\n")
        match = re.fullmatch(
            rb"VALUE %s \d+ \d+ (\d+)\r\n.*\r\nEND\r\n" % (re.escape(key),), reply, re.DOTALL
        )
        self.assertIsNotNone(match, reply)
        return int(match.group(1))

    def test_flow(self) -> None:
        """
        A C{cas} with the unique C{gets} reported stores; the same unique
        again is stale (C{EXISTS}); a missing key is C{NOT_FOUND}.
        """
        client = self.server().connect()
        client.send(b"set k 3 0 1\r\na\r\n")
        unique = self.gets(client, b"k")
        self.assertEqual(client.send(b"cas k 4 0 1 %d\r\nb\r\n" % (unique,)), b"STORED\r\n")
        self.assertEqual(client.send(b"get k\r\n"), b"VALUE k 4 1\r\nb\r\nEND\r\n")
        self.assertNotEqual(self.gets(client, b"k"), unique)
        self.assertEqual(client.send(b"cas k 0 0 1 %d\r\nc\r\n" % (unique,)), b"EXISTS\r\n")
        self.assertEqual(client.send(b"get k\r\n"), b"VALUE k 4 1\r\nb\r\nEND\r\n")
        self.assertEqual(client.send(b"cas j 0 0 1 %d\r\nc\r\n" % (unique,)), b"NOT_FOUND\r\n")
        current = self.gets(client, b"k")
        client.send(b"delete k\r\n")
        self.assertEqual(client.send(b"cas k 0 0 1 %d\r\nc\r\n" % (current,)), b"NOT_FOUND\r\n")

    def test_flowEveryFraming(self) -> None:
        """
        A successful C{cas} works however its line and block are split.
        """
        for name, feed in FEEDS.items():
            client = self.server().connect()
            client.send(b"set k 0 0 1\r\na\r\n")
            unique = self.gets(client, b"k")
            feed(client, [b"cas k 0 0 2 %d\r\nbc\r\n" % (unique,), b"get k\r\n"])
            self.assertEqual(client.received(), b"STORED\r\nVALUE k 0 2\r\nbc\r\nEND\r\n", name)

    def test_uniquesDiffer(self) -> None:
        """
        Every item and every new version has its own unique.
        """
        client = self.server().connect()
        seen = set()
        for key in (b"a", b"b", b"a", b"c"):
            client.send(b"set " + key + b" 0 0 1\r\nx\r\n")
            seen.add(self.gets(client, key))
        self.assertEqual(len(seen), 4)

    def test_modifiersChangeUnique(self) -> None:
        """
        C{append}, C{prepend}, C{incr} and C{decr} make a new unique;
        C{touch}, C{gat} and C{get} do not.
        """
        client = self.server().connect()
        client.send(b"set k 0 0 2\r\n10\r\n")
        unique = self.gets(client, b"k")
        for command in (b"touch k 100\r\n", b"gat 100 k\r\n", b"get k\r\n"):
            client.send(command)
            self.assertEqual(self.gets(client, b"k"), unique, command)
        for command in (
            b"incr k 1\r\n",
            b"decr k 1\r\n",
            b"append k 0 0 1\r\n0\r\n",
            b"prepend k 0 0 1\r\n1\r\n",
        ):
            client.send(command)
            newUnique = self.gets(client, b"k")
            self.assertNotEqual(newUnique, unique, command)
            unique = newUnique

    def test_gatsShowsUnique(self) -> None:
        """
        C{gats} reports the same unique as C{gets}.
        """
        client = self.server().connect()
        client.send(b"set k 0 0 1\r\nx\r\n")
        unique = self.gets(client, b"k")
        self.assertEqual(
            client.send(b"gats 0 k\r\n"), b"VALUE k 0 1 %d\r\nx\r\nEND\r\n" % (unique,)
        )

    def test_staleAndZero(self) -> None:
        """
        A unique of 0, or one never issued, is C{EXISTS} for a present key.
        """
        self.assertExchange(
            [
                b"set k 0 0 1\r\nx\r\n",
                b"cas k 0 0 1 0\r\ny\r\n",
                b"cas k 0 0 1 18446744073709551615\r\ny\r\n",
                b"get k\r\n",
            ],
            b"STORED\r\nEXISTS\r\nEXISTS\r\nVALUE k 0 1\r\nx\r\nEND\r\n",
        )

    def test_missing(self) -> None:
        """
        C{cas} on a missing key is C{NOT_FOUND} and stores nothing.
        """
        self.assertExchange([b"cas k 0 0 1 1\r\nx\r\n", b"get k\r\n"], b"NOT_FOUND\r\nEND\r\n")

    def test_badUnique(self) -> None:
        """
        A unique that is not an unsigned 64-bit number is a format error.
        """
        self.assertExchange(
            [b"cas k 0 0 1 -1\r\nx\r\n", b"cas k 0 0 1 abc\r\nx\r\n"],
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n" * 2,
        )

    def test_disabled(self) -> None:
        """
        With CAS disabled (C{-C}), C{gets} reports 0 and no C{cas} can
        succeed.
        """
        settings = ServerSettings(useCas=False)
        self.assertExchange(
            [
                b"set k 0 0 1\r\nx\r\n",
                b"gets k\r\n",
                b"cas k 0 0 1 0\r\ny\r\n",
                b"cas k 0 0 1 1\r\ny\r\n",
                b"gats 0 k\r\n",
            ],
            b"STORED\r\nVALUE k 0 1 0\r\nx\r\nEND\r\nEXISTS\r\nEXISTS\r\nVALUE k 0 1 0\r\nx\r\nEND\r\n",
            settings=settings,
        )

    def test_counters(self) -> None:
        """
        C{cas_hits}, C{cas_badval} and C{cas_misses} count the outcomes.
        """
        for name, feed in FEEDS.items():
            server = self.server()
            client = server.connect()
            client.send(b"set k 0 0 1\r\na\r\n")
            unique = self.gets(client, b"k")
            feed(
                client,
                [
                    b"cas k 0 0 1 %d\r\nb\r\n" % (unique,),
                    b"cas k 0 0 1 %d\r\nc\r\n" % (unique,),
                    b"cas j 0 0 1 1\r\nc\r\n",
                ],
            )
            stats = server.stats()
            self.assertEqual(
                [int(stats[name]) for name in ("cas_hits", "cas_badval", "cas_misses", "cmd_set")],
                [1, 1, 1, 4],
                name,
            )


class RetrievalTests(ProtocolTestCase):
    """
    C{get}, C{gets}, C{gat}, C{gats}, C{bget}.
    """

    def test_missing(self) -> None:
        """
        A missing key gets just C{END}.
        """
        self.assertExchange([b"get k\r\n"], b"END\r\n")

    def test_multiGet(self) -> None:
        """
        Values come in the order asked for, missing keys skipped, repeated
        keys repeated.
        """
        self.assertExchange(
            [b"set a 1 0 1\r\nA\r\n", b"set c 3 0 2\r\nCC\r\n", b"get c b a c\r\n"],
            b"STORED\r\nSTORED\r\n"
            b"VALUE c 3 2\r\nCC\r\nVALUE a 1 1\r\nA\r\nVALUE c 3 2\r\nCC\r\nEND\r\n",
        )

    def test_manyKeys(self) -> None:
        """
        A get with far more keys than memcached tokenizes at once answers
        them all.
        """
        keys = [b"key%d" % (i,) for i in range(60)]
        sets = [b"set %s 0 0 1\r\nx\r\n" % (key,) for key in keys[::2]]
        expected = b"STORED\r\n" * 30 + b"".join(
            b"VALUE %s 0 1\r\nx\r\n" % (key,) for key in keys[::2]
        )
        self.assertExchange(sets + [b"get " + b" ".join(keys) + b"\r\n"], expected + b"END\r\n")

    def test_gets(self) -> None:
        """
        C{gets} adds the CAS unique to each VALUE line.
        """
        output = self.exchange([b"set a 5 0 1\r\nx\r\n", b"set b 0 0 2\r\nyy\r\n", b"gets a b\r\n"])
        for name, (reply, _, _) in output.items():
            self.assertTrue(
                re.fullmatch(
                    rb"STORED\r\nSTORED\r\nVALUE a 5 1 \d+\r\nx\r\nVALUE b 0 2 \d+\r\nyy\r\nEND\r\n",
                    reply,
                ),
                (name, reply),
            )

    def test_bget(self) -> None:
        """
        The ancient C{bget} is a C{get}.
        """
        self.assertExchange(
            [b"set a 0 0 1\r\nx\r\n", b"bget a\r\n"], b"STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\n"
        )

    def test_noKeys(self) -> None:
        """
        A retrieval without keys is C{ERROR}; C{gat} with an exptime but
        no key finds nothing.
        """
        self.assertExchange(
            [b"get\r\n", b"gets \r\n", b"gat\r\n", b"gats 10\r\n"],
            b"ERROR\r\nERROR\r\nERROR\r\nEND\r\n",
        )

    def test_keyTooLong(self) -> None:
        """
        A key over 250 bytes makes the whole reply
        C{CLIENT_ERROR bad command line format}, even after found keys.
        """
        long = b"k" * 251
        self.assertExchange(
            [b"set a 0 0 1\r\nx\r\n", b"get a " + long + b" a\r\n", b"get a\r\n"],
            b"STORED\r\nCLIENT_ERROR bad command line format\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        )

    def test_keyTooLongCounts(self) -> None:
        """
        The keys before a too-long key were looked up, as in memcached.
        """
        self.assertStats(
            [b"set a 0 0 1\r\nx\r\n", b"get a b " + b"k" * 251 + b" a\r\n"],
            {"cmd_get": 2, "get_hits": 1, "get_misses": 1},
        )

    def test_gat(self) -> None:
        """
        C{gat} and C{gats} return values like C{get} and C{gets}.
        """
        output = self.exchange([b"set a 5 0 1\r\nx\r\n", b"gat 100 a b\r\n", b"gats 100 a\r\n"])
        for name, (reply, _, _) in output.items():
            self.assertTrue(
                re.fullmatch(
                    rb"STORED\r\nVALUE a 5 1\r\nx\r\nEND\r\nVALUE a 5 1 \d+\r\nx\r\nEND\r\n", reply
                ),
                (name, reply),
            )

    def test_gatBadExptime(self) -> None:
        """
        A C{gat} exptime that is not a number is
        C{CLIENT_ERROR invalid exptime argument}.
        """
        self.assertExchange(
            [b"gat abc a\r\n", b"gats 1.5 a\r\n"],
            b"CLIENT_ERROR invalid exptime argument\r\n" * 2,
        )

    def test_noreplyIsAKey(self) -> None:
        """
        C{get} has no C{noreply}: the word is looked up as a key.
        """
        self.assertExchange(
            [b"set noreply 0 0 1\r\nx\r\n", b"get noreply\r\n"],
            b"STORED\r\nVALUE noreply 0 1\r\nx\r\nEND\r\n",
        )

    def test_counters(self) -> None:
        """
        C{cmd_get} counts keys looked up, split into C{get_hits} and
        C{get_misses}.
        """
        self.assertStats(
            [
                b"set a 0 0 1\r\nx\r\n",
                b"set b 0 0 2\r\nyy\r\n",
                b"get a\r\n",
                b"get a b c\r\n",
                b"gets c\r\n",
                b"bget b\r\n",
            ],
            {
                "cmd_get": 6,
                "get_hits": 4,
                "get_misses": 2,
                "cmd_touch": 0,
                "cmd_set": 2,
                "curr_items": 2,
                "total_items": 2,
                "bytes": 61 + 62,  # memcached's item sizes, as its stats report them
            },
        )


class DeleteTests(ProtocolTestCase):
    """
    C{delete <key> [0] [noreply]}.
    """

    def test_delete(self) -> None:
        """
        C{DELETED} once, then C{NOT_FOUND}.
        """
        self.assertExchange(
            [b"set k 0 0 1\r\nx\r\n", b"delete k\r\n", b"delete k\r\n", b"get k\r\n"],
            b"STORED\r\nDELETED\r\nNOT_FOUND\r\nEND\r\n",
        )

    def test_legacyZero(self) -> None:
        """
        The old hold time C{0} is accepted.
        """
        self.assertExchange(
            [b"set k 0 0 1\r\nx\r\n", b"delete k 0\r\n", b"get k\r\n"],
            b"STORED\r\nDELETED\r\nEND\r\n",
        )

    def test_badHoldTime(self) -> None:
        """
        Any other hold time is refused with memcached's usage line, and
        nothing is deleted.
        """
        self.assertExchange(
            [b"set k 0 0 1\r\nx\r\n", b"delete k 10\r\n", b"get k\r\n"],
            b"STORED\r\n"
            b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
            b"VALUE k 0 1\r\nx\r\nEND\r\n",
        )

    def test_arity(self) -> None:
        """
        C{delete} alone or with too many arguments is C{ERROR}.
        """
        self.assertExchange([b"delete\r\n", b"delete k 0 noreply x\r\n"], b"ERROR\r\nERROR\r\n")

    def test_keyTooLong(self) -> None:
        """
        A key over 250 bytes is a format error.
        """
        self.assertExchange(
            [b"delete " + b"k" * 251 + b"\r\n"], b"CLIENT_ERROR bad command line format\r\n"
        )

    def test_counters(self) -> None:
        """
        C{delete_hits} and C{delete_misses}.
        """
        self.assertStats(
            [b"set a 0 0 1\r\nx\r\n", b"delete a\r\n", b"delete a\r\n", b"delete b 0\r\n"],
            {"delete_hits": 1, "delete_misses": 2, "curr_items": 0, "bytes": 0},
        )


class ArithmeticTests(ProtocolTestCase):
    """
    C{incr}/C{decr}: 64-bit unsigned, C{incr} wraps, C{decr} stops at 0.
    """

    def test_incrDecr(self) -> None:
        """
        Each replies with the new value.
        """
        self.assertExchange(
            [b"set n 0 0 1\r\n5\r\n", b"incr n 3\r\n", b"decr n 2\r\n", b"get n\r\n"],
            b"STORED\r\n8\r\n6\r\nVALUE n 0 1\r\n6\r\nEND\r\n",
        )

    def test_growth(self) -> None:
        """
        A result longer than the value makes a longer value, keeping the
        flags.
        """
        self.assertExchange(
            [b"set n 7 0 2\r\n99\r\n", b"incr n 1\r\n", b"get n\r\n"],
            b"STORED\r\n100\r\nVALUE n 7 3\r\n100\r\nEND\r\n",
        )

    def test_spacePadding(self) -> None:
        """
        A shorter result is written in place, padded with spaces to the old
        length, as memcached does.
        """
        self.assertExchange(
            [
                b"set n 0 0 3\r\n100\r\n",
                b"decr n 91\r\n",
                b"get n\r\n",
                b"incr n 1\r\n",
                b"get n\r\n",
            ],
            b"STORED\r\n9\r\nVALUE n 0 3\r\n9  \r\nEND\r\n10\r\nVALUE n 0 3\r\n10 \r\nEND\r\n",
        )

    def test_wrap(self) -> None:
        """
        C{incr} wraps around 2**64.
        """
        self.assertExchange(
            [
                b"set n 0 0 20\r\n18446744073709551615\r\n",
                b"incr n 1\r\n",
                b"get n\r\n",
                b"incr n 18446744073709551615\r\n",
            ],
            b"STORED\r\n0\r\nVALUE n 0 20\r\n0" + b" " * 19 + b"\r\nEND\r\n"
            b"18446744073709551615\r\n",
        )

    def test_floor(self) -> None:
        """
        C{decr} stops at zero.
        """
        self.assertExchange(
            [b"set n 0 0 1\r\n5\r\n", b"decr n 100\r\n", b"decr n 1\r\n"],
            b"STORED\r\n0\r\n0\r\n",
        )

    def test_leadingSpaceAndTrailingJunk(self) -> None:
        """
        A value is read as C{strtoull} reads it: leading whitespace skipped,
        anything after a space ignored.
        """
        self.assertExchange(
            [
                b"set a 0 0 2\r\n 5\r\n",
                b"incr a 1\r\n",
                b"set b 0 0 5\r\n5 abc\r\n",
                b"incr b 1\r\n",
                b"get b\r\n",
            ],
            b"STORED\r\n6\r\nSTORED\r\n6\r\nVALUE b 0 5\r\n6    \r\nEND\r\n",
        )

    def test_nonNumeric(self) -> None:
        """
        Words, empty values, negatives, trailing junk and numbers of 2**64
        or more cannot be incremented; the value is left alone.
        """
        error = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        requests = []
        for value in (b"abc", b"", b"-1", b"5abc", b"18446744073709551616"):
            requests.append(b"set n 0 0 %d\r\n%s\r\n" % (len(value), value))
            requests.append(b"incr n 1\r\n")
            requests.append(b"decr n 1\r\n")
        requests.append(b"get n\r\n")
        self.assertExchange(
            requests,
            (b"STORED\r\n" + error * 2) * 5 + b"VALUE n 0 20\r\n18446744073709551616\r\nEND\r\n",
        )

    def test_badDelta(self) -> None:
        """
        A delta that is not an unsigned 64-bit number is
        C{CLIENT_ERROR invalid numeric delta argument}.
        """
        error = b"CLIENT_ERROR invalid numeric delta argument\r\n"
        self.assertExchange(
            [
                b"set n 0 0 1\r\n5\r\n",
                b"incr n -1\r\n",
                b"decr n abc\r\n",
                b"incr n 18446744073709551616\r\n",
                b"incr n 1.5\r\n",
            ],
            b"STORED\r\n" + error * 4,
        )

    def test_missing(self) -> None:
        """
        A missing key is C{NOT_FOUND}.
        """
        self.assertExchange([b"incr n 1\r\n", b"decr n 1\r\n"], b"NOT_FOUND\r\nNOT_FOUND\r\n")

    def test_arity(self) -> None:
        """
        Missing delta or extra arguments: C{ERROR}.
        """
        self.assertExchange(
            [b"incr n\r\n", b"decr n 1 noreply x\r\n", b"incr\r\n"], b"ERROR\r\n" * 3
        )

    def test_keyTooLong(self) -> None:
        """
        A key over 250 bytes is a format error.
        """
        self.assertExchange(
            [b"incr " + b"k" * 251 + b" 1\r\n"], b"CLIENT_ERROR bad command line format\r\n"
        )

    def test_keepsExpiry(self) -> None:
        """
        An incremented item, grown or not, expires when it would have.
        """
        server = self.server()
        client = server.connect()
        client.send(b"set a 0 10 1\r\n9\r\nset b 0 10 1\r\n1\r\n")
        self.assertEqual(client.send(b"incr a 1\r\nincr b 1\r\n"), b"10\r\n2\r\n")
        server.clock.advance(10)
        self.assertEqual(client.send(b"get a b\r\n"), b"END\r\n")

    def test_counters(self) -> None:
        """
        Hits and misses are counted per verb; a non-numeric value is
        neither.
        """
        self.assertStats(
            [
                b"set n 0 0 1\r\n5\r\n",
                b"incr n 1\r\n",
                b"incr m 1\r\n",
                b"decr n 1\r\n",
                b"decr m 1\r\n",
                b"decr m 1\r\n",
                b"set s 0 0 1\r\nx\r\n",
                b"incr s 1\r\n",
            ],
            {"incr_hits": 1, "incr_misses": 1, "decr_hits": 1, "decr_misses": 2},
        )


class TouchTests(ProtocolTestCase):
    """
    C{touch <key> <exptime> [noreply]}.
    """

    def test_touch(self) -> None:
        """
        C{TOUCHED} for a present key, C{NOT_FOUND} otherwise.
        """
        self.assertExchange(
            [b"touch k 10\r\n", b"set k 0 0 1\r\nx\r\n", b"touch k 10\r\n"],
            b"NOT_FOUND\r\nSTORED\r\nTOUCHED\r\n",
        )

    def test_badExptime(self) -> None:
        """
        A non-numeric exptime is C{CLIENT_ERROR invalid exptime argument}.
        """
        self.assertExchange([b"touch k abc\r\n"], b"CLIENT_ERROR invalid exptime argument\r\n")

    def test_arity(self) -> None:
        """
        Wrong argument counts are C{ERROR}.
        """
        self.assertExchange([b"touch k\r\n", b"touch k 1 noreply x\r\n"], b"ERROR\r\nERROR\r\n")

    def test_counters(self) -> None:
        """
        C{touch} and C{gat}/C{gats} count in C{cmd_touch}, C{touch_hits} and
        C{touch_misses}, not in the get counters.
        """
        self.assertStats(
            [
                b"set a 0 0 1\r\nx\r\n",
                b"gat 100 a c\r\n",
                b"gats 100 a\r\n",
                b"touch a 10\r\n",
                b"touch c 10\r\n",
            ],
            {
                "cmd_touch": 5,
                "touch_hits": 3,
                "touch_misses": 2,
                "cmd_get": 0,
                "get_hits": 0,
                "get_misses": 0,
            },
        )


class ExpiryTests(ProtocolTestCase):
    """
    Exptimes: 0 never, up to 30 days relative, larger absolute unix times,
    negative already expired; driven by the clock.
    """

    def setUp(self) -> None:
        self.cacheServer = self.server()
        self.client = self.cacheServer.connect()

    def advance(self, seconds: float) -> None:
        self.cacheServer.clock.advance(seconds)

    def found(self, key: bytes) -> bool:
        reply = self.client.send(b"get " + key + b"\r\n")
        self.assertIn(reply[:6], (b"VALUE ", b"END\r\n"))
        return reply.startswith(b"VALUE ")

    def set(self, key: bytes, exptime: int | bytes) -> None:
        if isinstance(exptime, int):
            exptime = b"%d" % (exptime,)
        self.assertEqual(
            self.client.send(b"set " + key + b" 0 " + exptime + b" 1\r\nx\r\n"), b"STORED\r\n"
        )

    def test_relative(self) -> None:
        """
        An exptime of 10 keeps the item for ten seconds.
        """
        self.set(b"k", 10)
        self.advance(9.9)
        self.assertTrue(self.found(b"k"))
        self.advance(0.1)
        self.assertFalse(self.found(b"k"))

    def test_never(self) -> None:
        """
        An exptime of 0 never expires.
        """
        self.set(b"k", 0)
        self.advance(365 * 86400)
        self.assertTrue(self.found(b"k"))

    def test_thirtyDays(self) -> None:
        """
        Thirty days exactly is still relative.
        """
        self.set(b"k", THIRTY_DAYS)
        self.advance(THIRTY_DAYS - 1)
        self.assertTrue(self.found(b"k"))
        self.advance(1)
        self.assertFalse(self.found(b"k"))

    def test_absolute(self) -> None:
        """
        Beyond thirty days an exptime is a unix time.
        """
        self.set(b"k", START + 100)
        self.advance(99)
        self.assertTrue(self.found(b"k"))
        self.advance(1)
        self.assertFalse(self.found(b"k"))

    def test_absoluteInThePast(self) -> None:
        """
        A unix time already gone (just over thirty days is 1970) means the
        item is already expired.
        """
        self.set(b"k", THIRTY_DAYS + 1)
        self.assertFalse(self.found(b"k"))
        self.set(b"k", START - 1)
        self.assertFalse(self.found(b"k"))

    def test_negative(self) -> None:
        """
        A negative exptime is stored but already expired.
        """
        self.set(b"k", -1)
        self.assertFalse(self.found(b"k"))

    def test_truncatedTo32Bits(self) -> None:
        """
        The exptime is truncated to 32 bits: 2**32 + 10 is ten seconds,
        2**32 - 1 is -1.
        """
        self.set(b"a", 2**32 + 10)
        self.set(b"b", 2**32 - 1)
        self.assertFalse(self.found(b"b"))
        self.advance(9)
        self.assertTrue(self.found(b"a"))
        self.advance(1)
        self.assertFalse(self.found(b"a"))

    def test_expiredCounters(self) -> None:
        """
        A get of an expired item is a miss, counted in C{get_expired}, and
        the item is gone from C{curr_items}.
        """
        self.set(b"k", 1)
        self.advance(1)
        self.assertFalse(self.found(b"k"))
        stats = self.cacheServer.stats()
        self.assertEqual(
            [
                int(stats[name])
                for name in ("get_misses", "get_hits", "get_expired", "curr_items", "bytes")
            ],
            [1, 0, 1, 0, 0],
        )

    def test_addAfterExpiry(self) -> None:
        """
        An expired item does not block C{add}, nor satisfy C{replace}.
        """
        self.set(b"k", 1)
        self.advance(1)
        self.assertEqual(self.client.send(b"replace k 0 0 1\r\ny\r\n"), b"NOT_STORED\r\n")
        self.assertEqual(self.client.send(b"add k 0 0 1\r\ny\r\n"), b"STORED\r\n")

    def test_touchExtends(self) -> None:
        """
        C{touch} gives an item a new lifetime from now.
        """
        self.set(b"k", 10)
        self.advance(5)
        self.assertEqual(self.client.send(b"touch k 100\r\n"), b"TOUCHED\r\n")
        self.advance(50)
        self.assertTrue(self.found(b"k"))
        self.advance(50)
        self.assertFalse(self.found(b"k"))

    def test_touchShortensAndNever(self) -> None:
        """
        C{touch} can shorten a lifetime, end it at once, or make it endless.
        """
        self.set(b"a", 100)
        self.set(b"b", 100)
        self.set(b"c", 100)
        self.client.send(b"touch a 5\r\ntouch b -1\r\ntouch c 0\r\n")
        self.assertFalse(self.found(b"b"))
        self.advance(5)
        self.assertFalse(self.found(b"a"))
        self.advance(1000)
        self.assertTrue(self.found(b"c"))

    def test_touchExpired(self) -> None:
        """
        An expired item cannot be touched back to life.
        """
        self.set(b"k", 1)
        self.advance(1)
        self.assertEqual(self.client.send(b"touch k 100\r\n"), b"NOT_FOUND\r\n")

    def test_gatExtends(self) -> None:
        """
        C{gat} returns the value and sets the new lifetime.
        """
        self.set(b"k", 10)
        self.advance(5)
        self.assertEqual(self.client.send(b"gat 100 k\r\n"), b"VALUE k 0 1\r\nx\r\nEND\r\n")
        self.advance(50)
        self.assertTrue(self.found(b"k"))
        self.advance(50)
        self.assertFalse(self.found(b"k"))

    def test_gatNegative(self) -> None:
        """
        C{gat} with a negative exptime returns the value one last time.
        """
        self.set(b"k", 0)
        self.assertEqual(self.client.send(b"gats -1 k\r\n")[:12], b"VALUE k 0 1 ")
        self.assertFalse(self.found(b"k"))

    def test_gatZero(self) -> None:
        """
        C{gat 0} makes an item never expire.
        """
        self.set(b"k", 10)
        self.client.send(b"gat 0 k\r\n")
        self.advance(1000)
        self.assertTrue(self.found(b"k"))


class FlushTests(ProtocolTestCase):
    """
    C{flush_all [delay] [noreply]}.
    """

    def test_flush(self) -> None:
        """
        C{flush_all} invalidates everything at once.
        """
        self.assertExchange(
            [b"set a 0 0 1\r\nx\r\n", b"set b 0 0 1\r\nx\r\n", b"flush_all\r\n", b"get a b\r\n"],
            b"STORED\r\nSTORED\r\nOK\r\nEND\r\n",
        )

    def test_zeroAndNegativeAreNow(self) -> None:
        """
        A delay of 0 or less flushes at once.
        """
        self.assertExchange(
            [
                b"set a 0 0 1\r\nx\r\n",
                b"flush_all 0\r\n",
                b"get a\r\n",
                b"set a 0 0 1\r\nx\r\n",
                b"flush_all -1\r\n",
                b"get a\r\n",
            ],
            b"STORED\r\nOK\r\nEND\r\nSTORED\r\nOK\r\nEND\r\n",
        )

    def test_noreply(self) -> None:
        """
        C{noreply} silences the C{OK}.
        """
        self.assertExchange(
            [
                b"set a 0 0 1\r\nx\r\n",
                b"flush_all noreply\r\n",
                b"flush_all 0 noreply\r\n",
                b"get a\r\n",
            ],
            b"STORED\r\nEND\r\n",
        )

    def test_badDelay(self) -> None:
        """
        A delay that is not a number is C{CLIENT_ERROR invalid exptime
        argument}; too many arguments are C{ERROR}; nothing is flushed.
        """
        self.assertExchange(
            [b"set a 0 0 1\r\nx\r\n", b"flush_all abc\r\n", b"flush_all 1 2 3\r\n", b"get a\r\n"],
            b"STORED\r\nCLIENT_ERROR invalid exptime argument\r\nERROR\r\nVALUE a 0 1\r\nx\r\nEND\r\n",
        )

    def test_delayed(self) -> None:
        """
        C{flush_all 10} leaves items readable for ten seconds, then
        invalidates them all, including those stored in between; items
        stored afterwards live.
        """
        server = self.server()
        client = server.connect()
        client.send(b"set a 0 0 1\r\nx\r\n")
        self.assertEqual(client.send(b"flush_all 10\r\n"), b"OK\r\n")
        server.clock.advance(5)
        client.send(b"set b 0 0 1\r\ny\r\n")
        server.clock.advance(4)
        self.assertEqual(
            client.send(b"get a b\r\n"), b"VALUE a 0 1\r\nx\r\nVALUE b 0 1\r\ny\r\nEND\r\n"
        )
        server.clock.advance(1)
        self.assertEqual(client.send(b"get a b\r\n"), b"END\r\n")
        client.send(b"set c 0 0 1\r\nz\r\n")
        server.clock.advance(100)
        self.assertEqual(client.send(b"get c\r\n"), b"VALUE c 0 1\r\nz\r\nEND\r\n")

    def test_laterFlushReplacesEarlier(self) -> None:
        """
        A second delayed C{flush_all} replaces the pending one.
        """
        server = self.server()
        client = server.connect()
        client.send(b"set a 0 0 1\r\nx\r\nflush_all 10\r\n")
        server.clock.advance(5)
        client.send(b"flush_all 100\r\n")
        server.clock.advance(20)
        self.assertEqual(client.send(b"get a\r\n"), b"VALUE a 0 1\r\nx\r\nEND\r\n")
        server.clock.advance(80)
        self.assertEqual(client.send(b"get a\r\n"), b"END\r\n")

    def test_immediateCancelsDelayed(self) -> None:
        """
        An immediate C{flush_all} cancels a pending delayed one.
        """
        server = self.server()
        client = server.connect()
        client.send(b"flush_all 10\r\nflush_all\r\nset a 0 0 1\r\nx\r\n")
        server.clock.advance(20)
        self.assertEqual(client.send(b"get a\r\n"), b"VALUE a 0 1\r\nx\r\nEND\r\n")

    def test_absoluteDelay(self) -> None:
        """
        A delay beyond thirty days is a unix time.
        """
        server = self.server()
        client = server.connect()
        client.send(b"set a 0 0 1\r\nx\r\nflush_all %d\r\n" % (START + 50,))
        server.clock.advance(49)
        self.assertEqual(client.send(b"get a\r\n"), b"VALUE a 0 1\r\nx\r\nEND\r\n")
        server.clock.advance(1)
        self.assertEqual(client.send(b"get a\r\n"), b"END\r\n")

    def test_counters(self) -> None:
        """
        C{cmd_flush} counts flushes; a flushed item is gone from
        C{curr_items} and a get of it is a miss.
        """
        self.assertStats(
            [b"set a 0 0 1\r\nx\r\n", b"flush_all\r\n", b"flush_all 10 noreply\r\n", b"get a\r\n"],
            {"cmd_flush": 2, "get_misses": 1, "get_hits": 0, "curr_items": 0},
        )

    def test_refusedFlushCounted(self) -> None:
        """
        memcached counts C{flush_all} in C{cmd_flush} before it reads the
        delay, so one with a bad delay counts too (one with the wrong number
        of arguments does not).
        """
        self.assertStats(
            [b"flush_all x\r\n", b"flush_all 1 2 3\r\n"],
            {"cmd_flush": 1},
        )


class NoreplyTests(ProtocolTestCase):
    """
    C{noreply} silences replies, and most errors, wherever memcached takes
    it; the command still takes effect.
    """

    def test_storage(self) -> None:
        """
        Every storage verb and every outcome is silent.
        """
        self.assertExchange(
            [
                b"set k 0 0 1 noreply\r\nx\r\n",
                b"append k 0 0 1 noreply\r\ny\r\n",
                b"prepend k 0 0 1 noreply\r\nz\r\n",
                b"replace j 0 0 1 noreply\r\nx\r\n",
                b"add k 0 0 1 noreply\r\nx\r\n",
                b"cas k 0 0 1 0 noreply\r\nq\r\n",
                b"cas j 0 0 1 1 noreply\r\nq\r\n",
                b"add j 5 0 1 noreply\r\nj\r\n",
                b"get k j\r\n",
            ],
            b"VALUE k 0 3\r\nzxy\r\nVALUE j 5 1\r\nj\r\nEND\r\n",
        )

    def test_others(self) -> None:
        """
        C{incr}, C{decr}, C{touch}, C{delete}, C{flush_all} and C{verbosity}
        are silent with C{noreply}, hit or miss.
        """
        self.assertExchange(
            [
                b"set k 0 0 1\r\n1\r\n",
                b"incr k 5 noreply\r\n",
                b"decr k 2 noreply\r\n",
                b"incr j 1 noreply\r\n",
                b"touch k 100 noreply\r\n",
                b"touch j 100 noreply\r\n",
                b"delete j noreply\r\n",
                b"get k\r\n",
                b"delete k 0 noreply\r\n",
                b"verbosity 1 noreply\r\n",
                b"flush_all noreply\r\n",
                b"get k\r\n",
            ],
            b"STORED\r\nVALUE k 0 1\r\n4\r\nEND\r\nEND\r\n",
        )

    def test_errorsSilenced(self) -> None:
        """
        Errors found after C{noreply} was seen are silent too: bad numbers,
        bad deltas, non-numeric values, long keys, bad hold times.
        """
        self.assertExchange(
            [
                b"set k 0 0 1\r\nx\r\n",
                b"set k -1 0 1 noreply\r\n",
                b"set k 0 0 noreply\r\n",
                b"incr k 1 noreply\r\n",
                b"incr k abc noreply\r\n",
                b"incr k noreply\r\n",
                b"touch k abc noreply\r\n",
                b"touch k noreply\r\n",
                b"delete k 1 noreply\r\n",
                b"delete " + b"k" * 251 + b" noreply\r\n",
                b"set " + b"k" * 251 + b" 0 0 1 noreply\r\n",
                b"flush_all abc noreply\r\n",
                b"verbosity abc noreply\r\n",
                b"verbosity noreply\r\n",
                b"version\r\n",
            ],
            b"STORED\r\n" + VERSION,
        )

    def test_unknownCommandsNotSilenced(self) -> None:
        """
        Wrong argument counts and unknown commands are C{ERROR} even with
        C{noreply}.
        """
        self.assertExchange(
            [
                b"delete k 1 2 noreply\r\n",
                b"foo noreply\r\n",
                b"incr k 1 2 noreply\r\n",
                b"set k 0 0 1 2 noreply\r\n",
            ],
            b"ERROR\r\n" * 4,
        )

    def test_onlyLastToken(self) -> None:
        """
        C{noreply} counts only as the last token, and only in lower case.
        """
        self.assertExchange(
            [b"set k 0 0 1 NOREPLY\r\nx\r\n", b"set k 0 0 1 junk\r\nx\r\n"],
            b"STORED\r\nSTORED\r\n",
        )

    def test_notSticky(self) -> None:
        """
        C{noreply} applies to its own command only.
        """
        self.assertExchange(
            [b"set k 0 0 1 noreply\r\nx\r\n", b"delete k\r\n", b"delete k\r\n"],
            b"DELETED\r\nNOT_FOUND\r\n",
        )


class OtherCommandTests(ProtocolTestCase):
    """
    C{version}, C{verbosity} and unknown commands.
    """

    def test_version(self) -> None:
        """
        C{version} reports the memcached release myproto speaks for,
        ignoring arguments.
        """
        self.assertExchange([b"version\r\n", b"version x\r\n"], VERSION * 2)

    def test_verbosity(self) -> None:
        """
        C{verbosity} answers C{OK} and changes the level C{stats settings}
        shows, capped at 2.
        """
        server = self.assertExchange([b"verbosity 1\r\n", b"verbosity 1 2\r\n"], b"OK\r\nOK\r\n")
        self.assertEqual(server.stats(b"settings")["verbosity"], "1")
        server = self.assertExchange([b"verbosity 5\r\n"], b"OK\r\n")
        self.assertEqual(server.stats(b"settings")["verbosity"], "2")

    def test_verbosityErrors(self) -> None:
        """
        A missing level is C{ERROR}; a bad one is a format error.
        """
        self.assertExchange(
            [b"verbosity\r\n", b"verbosity abc\r\n", b"verbosity -1\r\n", b"verbosity 0 1 2\r\n"],
            b"ERROR\r\n"
            b"CLIENT_ERROR bad command line format\r\n"
            b"CLIENT_ERROR bad command line format\r\n"
            b"ERROR\r\n",
        )

    def test_unknown(self) -> None:
        """
        Unknown words, upper case verbs, one-letter words and empty lines
        are C{ERROR}.
        """
        self.assertExchange(
            [b"foo\r\n", b"GET k\r\n", b"x\r\n", b"\r\n", b"\n", b"   \r\n", b"get\tk\r\n"],
            b"ERROR\r\n" * 7,
        )


class FramingTests(ProtocolTestCase):
    """
    How bytes become lines and blocks.
    """

    def test_bareLineFeed(self) -> None:
        """
        Command lines may end with a bare LF.
        """
        self.assertExchange(
            [b"set k 0 0 1\nx\r\n", b"get k\n", b"delete k\n", b"version\n"],
            b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\nDELETED\r\n" + VERSION,
        )

    def test_secondCarriageReturn(self) -> None:
        """
        Only one CR is part of the line ending; a second is read as
        whitespace after the last number.
        """
        self.assertExchange(
            [b"set k 0 0 1\r\r\nx\r\n", b"get k\r\n"],
            b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n",
        )

    def test_manyPipelined(self) -> None:
        """
        Hundreds of commands in one read are all answered, in order.
        """
        requests = []
        expected = []
        for i in range(300):
            requests.append(b"set k%d 0 0 %d\r\n%d\r\n" % (i, len(b"%d" % (i,)), i))
            expected.append(b"STORED\r\n")
        for i in range(300):
            requests.append(b"get k%d\r\n" % (i,))
            expected.append(b"VALUE k%d 0 %d\r\n%d\r\nEND\r\n" % (i, len(b"%d" % (i,)), i))
        server = Server()
        client = server.connect()
        allInOneRead(client, requests)
        self.assertEqual(client.received(), b"".join(expected))

    def test_dataBlockSplitAnywhere(self) -> None:
        """
        A data block split at every possible point gives the same result.
        """
        stream = b"set k 0 0 10\r\n0123\r\n6789\r\nget k\r\n"
        for cut in range(1, len(stream)):
            client = Server().connect()
            client.send(stream[:cut])
            client.send(stream[cut:])
            self.assertEqual(
                client.transport.value(),
                b"STORED\r\nVALUE k 0 10\r\n0123\r\n6789\r\nEND\r\n",
                cut,
            )

    def test_unfinishedLongLineCloses(self) -> None:
        """
        More than 2048 bytes without a newline, unless they start a C{get}
        or C{gets}, close the connection without a reply.
        """
        client = Server().connect()
        client.send(b"x" * 2048)
        self.assertFalse(client.closed)
        client.send(b"x")
        self.assertTrue(client.closed)
        self.assertEqual(client.transport.value(), b"")

    def test_unfinishedLongLineAfterReplies(self) -> None:
        """
        Replies to complete commands before the long line are still sent.
        """
        client = Server().connect()
        client.send(b"version\r\n" + b"set " + b"k" * 2100)
        self.assertTrue(client.closed)
        self.assertEqual(client.transport.value(), VERSION)

    def test_unfinishedLongLineBoundary(self) -> None:
        """
        Exactly 2048 bytes are tolerated; when the newline comes the line is
        answered.
        """
        client = Server().connect()
        client.send(b"x" * 2048)
        self.assertEqual(client.send(b"\r\n"), b"ERROR\r\n")
        self.assertFalse(client.closed)

    def test_longMultiGet(self) -> None:
        """
        A long C{get} or C{gets} line may arrive in pieces.
        """
        for verb in (b"get ", b"gets ", b" " * 100 + b"get "):
            client = Server().connect()
            client.send(b"set a 0 0 1\r\nx\r\n")
            line = verb + b" ".join([b"k" * 200] * 20) + b" a"
            for i in range(0, len(line), 500):
                client.send(line[i : i + 500])
            self.assertFalse(client.closed, verb)
            reply = client.send(b"\r\n")
            self.assertTrue(
                re.fullmatch(rb"VALUE a 0 1( \d+)?\r\nx\r\nEND\r\n", reply), (verb, reply)
            )

    def test_otherLongLinesClose(self) -> None:
        """
        Other retrievals, and a C{get} after more than 100 spaces, are not
        allowed to grow.
        """
        for verb in (b"gat 0 ", b"bget ", b" " * 101 + b"get ", b"getx "):
            client = Server().connect()
            client.send(verb + b"k" * 2100)
            self.assertTrue(client.closed, verb)

    def test_completeLongLine(self) -> None:
        """
        A line over 2048 bytes that arrives whole with its newline is
        answered normally, as memcached answers what fits in its buffer.
        """
        client = Server().connect()
        self.assertEqual(client.send(b"x" * 3000 + b"\r\nversion\r\n"), b"ERROR\r\n" + VERSION)
        self.assertEqual(
            client.send(b"set " + b"k" * 3000 + b" 0 0 1\r\nx\r\n"),
            b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
        )
        self.assertFalse(client.closed)

    def test_httpCloses(self) -> None:
        """
        An HTTP request line closes the connection without a reply, after
        the replies to what came before; what follows is ignored.
        """
        self.assertExchange(
            [b"version\r\n", b"GET / HTTP/1.1\r\n", b"version\r\n"], VERSION, closed=True
        )

    def test_httpLikeCommands(self) -> None:
        """
        Known commands (and memcached's other verbs) ending in C{HTTP/...}
        are not HTTP requests.
        """
        self.assertExchange(
            [b"get / HTTP/1.1\r\n", b"version HTTP/1.1\r\n", b"stats HTTP/1.1\r\n"],
            b"END\r\n" + VERSION + b"ERROR\r\n",
        )

    def test_lruCrawlerIsNotHTTP(self) -> None:
        """
        memcached knows C{lru_crawler}, so C{lru_crawler HTTP/1.1} is
        C{ERROR} and the connection stays open.
        """
        self.assertExchange([b"lru_crawler HTTP/1.1\r\n", b"version\r\n"], b"ERROR\r\n" + VERSION)


class QuitTests(ProtocolTestCase):
    """
    C{quit}.
    """

    def test_quit(self) -> None:
        """
        C{quit} closes the connection after the replies to earlier
        commands are written, without a reply of its own.
        """
        self.assertExchange(
            [b"set k 0 0 1\r\nx\r\n", b"get k\r\n", b"quit\r\n", b"get k\r\n"],
            b"STORED\r\nVALUE k 0 1\r\nx\r\nEND\r\n",
            closed=True,
        )

    def test_ignoresWhatFollows(self) -> None:
        """
        Commands after C{quit} are not carried out.
        """
        results = self.exchange([b"quit\r\n", b"set j 0 0 1\r\nx\r\n", b"flush_all\r\n"])
        for name, (output, closed, server) in results.items():
            self.assertEqual((output, closed), (b"", True), name)
            self.assertEqual(server.stats()["cmd_set"], "0", name)

    def test_laterReadsIgnored(self) -> None:
        """
        Data arriving after C{quit} (before the transport closes) is
        ignored.
        """
        server = Server()
        client = server.connect()
        client.send(b"quit\r\n")
        self.assertEqual(client.send(b"set j 0 0 1\r\nx\r\n"), b"")
        self.assertIsNone(server.store.peek(b"j"))

    def test_quitWithArguments(self) -> None:
        """
        C{quit} ignores arguments.
        """
        self.assertExchange([b"quit now\r\n"], b"", closed=True)


class ShutdownTests(ProtocolTestCase):
    """
    C{shutdown}, honoured only with C{-A}.
    """

    def test_disabled(self) -> None:
        """
        Without C{-A} every form is refused and the connection stays open.
        """
        self.assertExchange(
            [b"shutdown\r\n", b"shutdown graceful\r\n", b"shutdown foo\r\n", b"version\r\n"],
            b"ERROR: shutdown not enabled\r\n" * 3 + VERSION,
        )

    def test_stopsReactor(self) -> None:
        """
        With C{-A}, C{shutdown} closes the connection without a reply and
        stops the reactor.
        """
        clock = StoppableClock()
        server = Server(ServerSettings(enableShutdown=True), clock)
        client = server.connect()
        self.assertEqual(client.send(b"version\r\n"), VERSION)
        self.assertEqual(client.send(b"shutdown\r\nversion\r\n"), b"")
        self.assertTrue(client.closed)
        self.assertEqual(clock.stops, 1)

    def test_graceful(self) -> None:
        """
        C{shutdown graceful} asks the factory for a graceful shutdown.
        """
        for mode, graceful in ((b"", False), (b" graceful", True)):
            server = Server(ServerSettings(enableShutdown=True))
            requested: list[bool] = []

            def requestShutdown(graceful: bool, requested: list[bool] = requested) -> None:
                requested.append(graceful)

            server.factory.requestShutdown = requestShutdown  # type: ignore[method-assign]
            client = server.connect()
            self.assertEqual(client.send(b"shutdown" + mode + b"\r\n"), b"")
            self.assertTrue(client.closed)
            self.assertEqual(requested, [graceful])

    def test_badMode(self) -> None:
        """
        With C{-A}, an unknown mode (or more than one word) is
        C{CLIENT_ERROR invalid shutdown mode} and nothing stops.
        """
        clock = StoppableClock()
        server = Server(ServerSettings(enableShutdown=True), clock)
        client = server.connect()
        self.assertEqual(
            client.send(b"shutdown foo\r\nshutdown graceful now\r\nshutdown noreply\r\n"),
            b"CLIENT_ERROR invalid shutdown mode\r\n" * 3,
        )
        self.assertFalse(client.closed)
        self.assertEqual(clock.stops, 0)

    def test_everyFraming(self) -> None:
        """
        Replies before C{shutdown} are delivered however the stream is
        split, and nothing after it is answered.
        """
        self.assertExchange(
            [b"version\r\n", b"shutdown\r\n", b"version\r\n"],
            VERSION,
            closed=True,
            settings=ServerSettings(enableShutdown=True),
        )


class ConnectionTests(ProtocolTestCase):
    """
    Connection bookkeeping, the connection limit and the banner.
    """

    def test_noBannerByDefault(self) -> None:
        """
        memcached clients expect nothing on connect.
        """
        client = Server().connect()
        self.assertEqual(client.transport.value(), b"")

    def test_banner(self) -> None:
        """
        With a banner, it is the first line sent.
        """
        client = Server(ServerSettings(banner=b"Welcome to myproto")).connect()
        self.assertEqual(client.send(b"version\r\n"), b"Welcome to myproto\r\n" + VERSION)

    def test_connectionCounters(self) -> None:
        """
        C{curr_connections} counts open connections; C{total_connections}
        every one ever accepted.
        """
        server = Server()
        first = server.connect()
        second = server.connect()
        first.lose()
        stats = parseStats(second.send(b"stats\r\n"))
        self.assertEqual((stats["curr_connections"], stats["total_connections"]), ("1", "2"))
        second.lose()
        stats = server.stats()
        self.assertEqual((stats["curr_connections"], stats["total_connections"]), ("1", "3"))

    def test_limit(self) -> None:
        """
        Over the connection limit a client is told
        C{ERROR Too many open connections} and disconnected; it counts in
        C{rejected_connections}; once a slot frees, clients are accepted
        again.
        """
        server = Server(ServerSettings(connectionLimit=2))
        first = server.connect()
        second = server.connect()
        third = server.connect()
        self.assertEqual(third.transport.value(), b"ERROR Too many open connections\r\n")
        self.assertTrue(third.closed)
        self.assertFalse(first.closed or second.closed)
        third.received()
        self.assertEqual(third.send(b"set k 0 0 1\r\nx\r\n"), b"")
        third.lose()
        self.assertIsNone(server.store.peek(b"k"))
        stats = parseStats(first.send(b"stats\r\n"))
        self.assertEqual((stats["curr_connections"], stats["rejected_connections"]), ("2", "1"))
        second.lose()
        fourth = server.connect()
        self.assertFalse(fourth.closed)
        self.assertEqual(fourth.send(b"version\r\n"), VERSION)

    def test_rejectedNotInTotal(self) -> None:
        """
        As in memcached, a rejected connection is counted in
        C{rejected_connections} only, not in C{total_connections}.
        """
        server = Server(ServerSettings(connectionLimit=1))
        first = server.connect()
        server.connect().lose()
        stats = parseStats(first.send(b"stats\r\n"))
        self.assertEqual((stats["total_connections"], stats["rejected_connections"]), ("1", "1"))

    def test_noTimersLeft(self) -> None:
        """
        A connection that goes away leaves no timer behind, even with a
        half-received command.
        """
        server = Server()
        client = server.connect()
        client.send(b"set k 0 0 10\r\nabc")
        client.lose()
        self.assertEqual(server.clock.getDelayedCalls(), [])


# The fields issue 2 requires.
REQUIRED_GENERAL_STATS = """
pid uptime time version curr_connections total_connections
rejected_connections cmd_get cmd_set cmd_touch get_hits get_misses
get_expired delete_hits delete_misses incr_hits incr_misses decr_hits
decr_misses cas_hits cas_misses cas_badval touch_hits touch_misses bytes_read
bytes_written limit_maxbytes curr_items total_items bytes evictions
expired_unfetched evicted_unfetched reclaimed threads
""".split()

class StatsTests(ProtocolTestCase):
    """
    C{stats} and its sub-commands.
    """

    def test_generalFormat(self) -> None:
        """
        C{stats} is C{STAT name value} lines then C{END}, with every field
        issue 2 asks for, in memcached's order, and no field memcached does
        not have.
        """
        client = Server().connect()
        names = statNames(client.send(b"stats\r\n"))
        for name in REQUIRED_GENERAL_STATS:
            self.assertIn(name, names)
        self.assertEqual(len(names), len(set(names)))
        self.assertEqual(names, [name for name in MEMCACHED_GENERAL_STATS if name in names])

    def test_generalValues(self) -> None:
        """
        The fixed fields say what this server is.
        """
        server = Server(ServerSettings(memoryLimit=12345678, connectionLimit=77))
        server.clock.advance(42)
        stats = server.stats()
        self.assertEqual(stats["pid"], str(os.getpid()))
        self.assertEqual(stats["time"], str(START + 42))
        self.assertEqual(stats["uptime"], "42")
        self.assertEqual(stats["version"], "1.6.18")
        self.assertEqual(stats["limit_maxbytes"], "12345678")
        self.assertEqual(stats["max_connections"], "77")
        self.assertEqual(stats["curr_connections"], "1")
        self.assertEqual(stats["threads"], "1")
        self.assertEqual(stats["pointer_size"], "64")

    def test_storageCounters(self) -> None:
        """
        C{cmd_set} counts every data block received, stored or not;
        C{total_items} every item stored.
        """
        self.assertStats(
            [
                b"set a 0 0 1\r\nx\r\n",
                b"add a 0 0 1\r\ny\r\n",
                b"replace b 0 0 1\r\ny\r\n",
                b"append a 0 0 1\r\ny\r\n",
                b"prepend b 0 0 1\r\ny\r\n",
                b"set c 0 0 1\r\nz\r\n",
            ],
            {
                "cmd_set": 6,
                "total_items": 3,
                "curr_items": 2,
                "bytes": 62 + 61,
            },
        )

    def test_cmdSetCountsBadDataChunk(self) -> None:
        """
        memcached counts a data block in C{cmd_set} before checking its
        CRLF, so a bad data chunk counts too.
        """
        self.assertStats([b"set k 0 0 1\r\nxy\r\n"], {"cmd_set": 1, "curr_items": 0})

    def test_incrementCountsAsItem(self) -> None:
        """
        An increment that grows the value stores a new item.
        """
        self.assertStats(
            [b"set n 0 0 1\r\n9\r\n", b"incr n 1\r\n", b"incr n 1\r\n"],
            {"total_items": 2, "curr_items": 1, "bytes": 62},
        )

    def test_bytesReadWritten(self) -> None:
        """
        C{bytes_read} counts every byte received, C{bytes_written} every
        byte sent, up to the C{stats} command itself (whose reply is not yet
        written).
        """
        server = Server()
        client = server.connect()
        client.send(b"set a 0 0 1\r\nx\r\n")
        client.send(b"get a\r\n")
        client.send(b"bogus\r\n")
        stats = parseStats(client.send(b"stats\r\n"))
        read = len(b"set a 0 0 1\r\nx\r\n" + b"get a\r\n" + b"bogus\r\n" + b"stats\r\n")
        written = len(b"STORED\r\n" + b"VALUE a 0 1\r\nx\r\nEND\r\n" + b"ERROR\r\n")
        self.assertEqual((int(stats["bytes_read"]), int(stats["bytes_written"])), (read, written))

    def test_bytesReadSwallowed(self) -> None:
        """
        Swallowed data counts as read.
        """
        server = Server(SMALL_ITEMS)
        client = server.connect()
        request = b"set k 0 0 2000\r\n" + b"x" * 2002
        client.send(request)
        stats = parseStats(client.send(b"stats\r\n"))
        self.assertEqual(int(stats["bytes_read"]), len(request) + len(b"stats\r\n"))

    def test_evictions(self) -> None:
        """
        Storing over the memory limit evicts the least recently used items,
        counted in C{evictions} and C{evicted_unfetched}; the limit counts
        what items cost in memory, C{bytes} what memcached counts.  An item
        read twice since it was stored is kept, as memcached keeps an
        active item.
        """
        size = 61  # a one-byte key and value, as memcached counts it
        cost = itemCost(1, 1, False)
        settings = ServerSettings(memoryLimit=3 * cost)
        self.assertStats(
            [
                b"set a 0 0 1\r\nx\r\n",
                b"set b 0 0 1\r\nx\r\n",
                b"set c 0 0 1\r\nx\r\n",
                b"get a\r\n",
                b"get a\r\n",
                b"set d 0 0 1\r\nx\r\n",
                b"set e 0 0 1\r\nx\r\n",
            ],
            {
                "evictions": 2,
                "evicted_unfetched": 2,
                "curr_items": 3,
                "total_items": 5,
                "bytes": 3 * size,
                "limit_maxbytes": 3 * cost,
            },
            settings=settings,
        )
        server = self.assertExchange(
            [
                b"set a 0 0 1\r\nx\r\n",
                b"set b 0 0 1\r\nx\r\n",
                b"set c 0 0 1\r\nx\r\n",
                b"get a\r\n",
                b"get a\r\n",
                b"set d 0 0 1\r\nx\r\n",
                b"get a b c d\r\n",
            ],
            b"STORED\r\n" * 3
            + b"VALUE a 0 1\r\nx\r\nEND\r\n" * 2
            + b"STORED\r\n"
            + b"VALUE a 0 1\r\nx\r\nVALUE c 0 1\r\nx\r\nVALUE d 0 1\r\nx\r\nEND\r\n",
            settings=settings,
        )
        self.assertEqual(server.stats()["evictions"], "1")

    def test_reset(self) -> None:
        """
        C{stats reset} answers C{RESET} and zeroes the counters, keeping
        the gauges (items, bytes, connections).
        """
        server = Server()
        client = server.connect()
        client.send(b"set a 0 0 1\r\nx\r\nget a b\r\ndelete b\r\nincr a 1\r\ntouch a 1\r\n")
        self.assertEqual(client.send(b"stats reset\r\n"), b"RESET\r\n")
        stats = parseStats(client.send(b"stats\r\n"))
        for name in (
            "cmd_get",
            "cmd_set",
            "cmd_touch",
            "get_hits",
            "get_misses",
            "delete_misses",
            "incr_misses",
            "touch_hits",
            "total_items",
            "total_connections",
            "evictions",
        ):
            self.assertEqual(stats[name], "0", name)
        self.assertEqual(stats["bytes_read"], str(len(b"stats\r\n")))
        self.assertEqual(stats["bytes_written"], str(len(b"RESET\r\n")))
        self.assertEqual(stats["curr_items"], "1")
        self.assertEqual(stats["bytes"], "61")
        self.assertEqual(stats["curr_connections"], "1")

    def test_resetWithArgument(self) -> None:
        """
        Extra words after C{stats reset} are ignored.
        """
        self.assertExchange([b"stats reset now\r\n"], b"RESET\r\n")

    def test_settings(self) -> None:
        """
        C{stats settings} reports the settings in memcached's names, format
        and order.
        """
        settings = ServerSettings(
            memoryLimit=8 * 1024 * 1024,
            maxItemSize=2048,
            connectionLimit=10,
            useCas=False,
            enableShutdown=True,
        )
        client = Server(settings).connect()
        reply = client.send(b"stats settings\r\n")
        names = statNames(reply)
        self.assertEqual(names, [name for name in MEMCACHED_SETTINGS if name in names])
        stats = parseStats(reply)
        self.assertEqual(stats["maxbytes"], str(8 * 1024 * 1024))
        self.assertEqual(stats["maxconns"], "10")
        self.assertEqual(stats["item_size_max"], "2048")
        self.assertEqual(stats["cas_enabled"], "no")
        self.assertEqual(stats["shutdown_command"], "yes")
        self.assertEqual(stats["verbosity"], "0")
        self.assertEqual(stats["evictions"], "on")
        defaults = parseStats(Server().connect().send(b"stats settings\r\n"))
        self.assertEqual((defaults["cas_enabled"], defaults["shutdown_command"]), ("yes", "no"))

    def test_itemsEmpty(self) -> None:
        """
        C{stats items} on an empty cache is just C{END}, as in memcached.
        """
        self.assertExchange([b"stats items\r\n"], b"END\r\n")

    def test_items(self) -> None:
        """
        C{stats items} uses memcached's C{items:<class>:<name>} lines, in
        its order, with a truthful count and memory.
        """
        client = Server().connect()
        client.send(b"set a 0 0 1\r\nx\r\nset bb 1 0 2\r\nyy\r\n")
        reply = client.send(b"stats items\r\n")
        names = statNames(reply)
        fields = []
        for name in names:
            match = re.fullmatch(r"items:(\d+):([a-z_]+)", name)
            self.assertIsNotNone(match, name)
            fields.append(match.group(2))
        self.assertEqual(fields, [name for name in MEMCACHED_ITEM_STATS if name in fields])
        stats = parseStats(reply)
        numbers = [value for name, value in stats.items() if name.endswith(":number")]
        self.assertEqual(sum(map(int, numbers)), 2)
        requested = [value for name, value in stats.items() if name.endswith(":mem_requested")]
        self.assertEqual(sum(map(int, requested)), 61 + 67)

    def test_slabs(self) -> None:
        """
        C{stats slabs} uses memcached's C{<class>:<name>} lines, then
        C{active_slabs} and C{total_malloced}.
        """
        client = Server().connect()
        self.assertEqual(statNames(client.send(b"stats slabs\r\n")), MEMCACHED_SLAB_TOTALS)
        client.send(b"set a 0 0 1\r\nx\r\nget a\r\n")
        reply = client.send(b"stats slabs\r\n")
        names = statNames(reply)
        self.assertEqual(names[-2:], MEMCACHED_SLAB_TOTALS)
        fields = []
        for name in names[:-2]:
            match = re.fullmatch(r"(\d+):([a-z_]+)", name)
            self.assertIsNotNone(match, name)
            fields.append(match.group(2))
        self.assertEqual(fields, [name for name in MEMCACHED_SLAB_STATS if name in fields])
        stats = parseStats(reply)
        self.assertGreaterEqual(int(stats["active_slabs"]), 1)
        usedChunks = [value for name, value in stats.items() if name.endswith(":used_chunks")]
        self.assertEqual(sum(map(int, usedChunks)), 1)

    def test_detail(self) -> None:
        """
        C{stats detail} takes C{on}, C{off} or C{dump}.
        """
        self.assertExchange(
            [
                b"stats detail on\r\n",
                b"stats detail off\r\n",
                b"stats detail dump\r\n",
                b"stats detail\r\n",
                b"stats detail foo\r\n",
            ],
            b"OK\r\nOK\r\nEND\r\n" + b"CLIENT_ERROR usage: stats detail on|off|dump\r\n" * 2,
        )

    def test_unknownSubcommand(self) -> None:
        """
        An unknown sub-command is C{ERROR}.
        """
        self.assertExchange([b"stats foo\r\n", b"stats a b c\r\n"], b"ERROR\r\nERROR\r\n")

    def test_everyFraming(self) -> None:
        """
        A C{stats} reply is the same however the command is split (apart
        from the resource usage fields, which move on their own).
        """
        results = self.exchange([b"stats settings\r\n", b"version\r\n"]).values()
        outputs = [output for output, _, _ in results]
        self.assertEqual(outputs[0], outputs[1])
        self.assertEqual(outputs[0], outputs[2])
        self.assertTrue(outputs[0].endswith(b"END\r\n" + VERSION))


class MemoryLimitCommandTests(SynchronousTestCase):
    """
    C{cache_memlimit} changes the memory limit at run time, within
    memcached's bounds.
    """

    def test_loweringEvicts(self) -> None:
        """
        A lower limit takes effect at once: least recently used items are
        evicted until the store fits, and C{stats} reports the new limit.
        """
        clock = Clock()
        factory = CacheServerFactory(MemoryStore(clock), clock, ServerSettings())
        proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        proto.makeConnection(transport)
        value = b"v" * 100_000
        for number in range(100):
            proto.dataReceived(b"set k%d 0 0 %d noreply\r\n%s\r\n" % (number, len(value), value))
        self.assertEqual(len(factory.cache.store), 100)
        transport.clear()
        proto.dataReceived(b"cache_memlimit 8\r\nget k0 k99\r\nstats\r\n")
        reply = transport.value()
        self.assertTrue(reply.startswith(b"OK\r\nVALUE k99 "), reply[:40])
        self.assertNotIn(b"VALUE k0 ", reply)
        self.assertIn(b"STAT limit_maxbytes 8388608\r\n", reply)
        self.assertLessEqual(factory.cache.store.bytes, 8 * 1024 * 1024)
        self.assertGreater(factory.cache.store.stats.evictions, 0)
