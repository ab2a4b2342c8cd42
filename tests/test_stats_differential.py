"""
C{stats}, C{stats settings}, C{stats sizes}, C{stats slabs} and C{stats
items} against a fresh real memcached 1.6.18, key by key: the same names in
the same order, and the same values, but for the few in L{BY_TYPE}, whose
values depend on time, the process, the build or what memcached's threads
have done meanwhile, or are a setting where myproto differs for a reason
given there; those are compared by type (integer, decimal, word).

Both servers get the same traffic: two small sets (both land in memcached's
slab class 1, where myproto reports everything), then each query on a
connection of its own, plain C{stats} first so that C{bytes_written} counts
the same replies on both.

Needs the C{memcached} binary on C{PATH}; skipped without it.
"""

from __future__ import annotations

import re
from typing import Callable

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase

from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore
from tests.helpers import waitFor
from tests.reference import HOST, exchange, freePort, startMemcached

SETS = b"set a 0 0 1\r\nx\r\nset bb 1 0 2\r\nyy\r\n"

QUERIES = [b"stats", b"stats settings", b"stats sizes", b"stats slabs", b"stats items"]

# Seconds myproto's side of the test's connections may take to close.
CLOSE_LIMIT = 5.0

#: Names whose values are compared by type only, with why.
BY_TYPE: dict[bytes, dict[bytes, str]] = {
    b"stats": {
        b"pid": "each process its own",
        b"uptime": "time",
        b"time": "time",
        b"libevent": "build: myproto's event loop is Twisted's reactor",
        b"rusage_user": "rusage",
        b"rusage_system": "rusage",
        b"total_connections": "memcached counts the probe that saw it start",
        b"connection_structures": "memcached's include its listeners' and spares",
        b"response_obj_count": "memcached's allocator; myproto keeps no such pool",
        b"response_obj_bytes": "memcached's allocator; myproto keeps no such pool",
        b"read_buf_count": "memcached's allocator; myproto keeps no such pool",
        b"read_buf_bytes": "memcached's allocator; myproto keeps no such pool",
        b"read_buf_bytes_free": "memcached's allocator; myproto keeps no such pool",
        b"reserved_fds": "memcached reserves descriptors per worker thread",
        b"threads": "myproto serves on one thread, memcached on 4 by default",
        b"lru_crawler_starts": "time: memcached's LRU maintainer starts background crawls",
        b"lru_maintainer_juggles": "time: memcached's LRU maintainer thread",
        b"crawler_items_checked": "time: memcached's background crawls",
        b"moves_to_cold": "time: memcached's LRU maintainer thread",
        b"moves_to_warm": "time: memcached's LRU maintainer thread",
        b"moves_within_lru": "time: memcached's LRU maintainer thread",
    },
    b"stats settings": {
        b"tcpport": "each server its own port",
        b"num_threads": "myproto serves on one thread, memcached on 4 by default",
        b"num_threads_per_udp": "follows num_threads",
    },
    b"stats sizes": {},
    b"stats slabs": {
        b"total_malloced": "memcached's slab pages; myproto's bytes held",
    },
    b"stats items": {
        b"items:1:number_hot": "time: memcached's LRU maintainer moves items",
        b"items:1:number_warm": "time: memcached's LRU maintainer moves items",
        b"items:1:number_cold": "time: memcached's LRU maintainer moves items",
        b"items:1:age_hot": "time",
        b"items:1:age_warm": "time",
        b"items:1:age": "time",
        b"items:1:crawler_items_checked": "time: memcached's background crawls",
        b"items:1:moves_to_cold": "time: memcached's LRU maintainer thread",
        b"items:1:moves_to_warm": "time: memcached's LRU maintainer thread",
        b"items:1:moves_within_lru": "time: memcached's LRU maintainer thread",
    },
}

_STAT = re.compile(rb"STAT (\S+) (\S+)")
_TYPES: list[tuple[str, re.Pattern[bytes]]] = [
    ("integer", re.compile(rb"-?\d+")),
    ("decimal", re.compile(rb"-?\d+\.\d+")),
]


def statPairs(reply: bytes) -> list[tuple[bytes, bytes]]:
    """
    @return: the C{(name, value)} pairs of a reply of C{STAT} lines.
    @raise AssertionError: unless the reply is C{STAT} lines and C{END}.
    """
    lines = reply.split(b"\r\n")
    if lines[-2:] != [b"END", b""]:
        raise AssertionError("not ended by END: {!r}".format(reply[-200:]))
    pairs = []
    for line in lines[:-2]:
        match = _STAT.fullmatch(line)
        if match is None:
            raise AssertionError("not a STAT line: {!r}".format(line))
        pairs.append((match.group(1), match.group(2)))
    return pairs


def valueType(value: bytes) -> str:
    """
    @return: C{integer}, C{decimal} or C{word}.
    """
    for name, pattern in _TYPES:
        if pattern.fullmatch(value):
            return name
    return "word"


def problems(
    query: bytes, expected: list[tuple[bytes, bytes]], got: list[tuple[bytes, bytes]]
) -> list[str]:
    """
    Compare one of myproto's blocks with memcached's.

    @return: what differs, one line each.
    """
    found = []
    names = [name for name, _ in expected]
    gotNames = [name for name, _ in got]
    if gotNames != names:
        found.append(
            "{}: names differ: memcached has {} and not {}; in order {}".format(
                query.decode(),
                [n.decode() for n in names if n not in gotNames],
                [n.decode() for n in gotNames if n not in names],
                gotNames == [n for n in names if n in gotNames],
            )
        )
    byType = BY_TYPE[query]
    theirs = dict(expected)
    for name, value in got:
        if name not in theirs:
            continue
        want = theirs[name]
        if name in byType:
            if valueType(value) != valueType(want):
                found.append(
                    "{} {}: memcached {!r} is a(n) {}, myproto {!r} a(n) {}".format(
                        query.decode(), name.decode(), want, valueType(want),
                        value, valueType(value),
                    )
                )
        elif value != want:
            found.append(
                "{} {}: memcached {!r}, myproto {!r}".format(
                    query.decode(), name.decode(), want, value
                )
            )
    return found


async def listenMyproto(testCase: TestCase) -> int:
    """
    Serve a new myproto on a free loopback port, which its settings name (as
    memcached's C{-p} does), until the test ends.

    @return: the port number.
    """
    from twisted.internet import reactor

    port = freePort()
    description = "tcp:{}:interface={}".format(port, HOST)
    settings = ServerSettings(listen=(description,))
    factory = WrappingFactory(CacheServerFactory(MemoryStore(reactor), reactor, settings))
    listening = await serverFromString(reactor, description).listen(factory)

    async def stop() -> None:
        await waitFor(lambda: not factory.protocols, CLOSE_LIMIT, "myproto's connections to close")
        await listening.stopListening()

    testCase.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return port


class StatsDifferentialTests(TestCase):
    """
    The C{stats} blocks of a fresh myproto and a fresh memcached after the
    same traffic.
    """

    timeout = 60

    async def blocks(self, port: int) -> dict[bytes, list[tuple[bytes, bytes]]]:
        """
        @return: each of L{QUERIES}' blocks, after L{SETS}.
        """
        self.assertEqual((await exchange(HOST, port, [SETS])).data, b"STORED\r\n" * 2)
        result = {}
        for query in QUERIES:
            result[query] = statPairs((await exchange(HOST, port, [query + b"\r\n"])).data)
        return result

    def test_sameBlocks(self) -> Deferred[None]:
        """
        Every block has memcached's names in memcached's order, and its
        values but for those in L{BY_TYPE}, which have the same types.
        """

        async def check() -> None:
            memcached = await startMemcached(self)
            myproto = await listenMyproto(self)
            expected = await self.blocks(memcached.port)
            got = await self.blocks(myproto)
            found = []
            for query in QUERIES:
                found += problems(query, expected[query], got[query])
            self.assertEqual(found, [])
            self.assertEqual(len(expected[b"stats"]), 92)
            self.assertEqual(len(expected[b"stats settings"]), 76)
            self.assertEqual(expected[b"stats sizes"], [(b"sizes_status", b"disabled")])

        return Deferred.fromCoroutine(check())

    def test_sizesHistogram(self) -> None:
        """
        After C{stats sizes_enable}, C{stats sizes} counts the same items in
        the same 32-byte buckets, and C{sizes_disable} turns it off again.
        """
        stream = [
            b"set old 0 0 1\r\nx\r\nstats sizes_enable\r\nstats sizes\r\n"
            b"set a 0 0 1\r\nx\r\nset bb 0 0 40\r\n" + b"y" * 40 + b"\r\n"
            b"stats sizes\r\nstats settings\r\nstats sizes_disable\r\nstats sizes\r\n"
        ]

        async def check() -> None:
            memcached = await startMemcached(self)
            myproto = await listenMyproto(self)
            expected = (await exchange(HOST, memcached.port, stream)).data
            got = (await exchange(HOST, myproto, stream)).data
            # memcached ends the switches' lines with no END.
            self.assertTrue(expected.startswith(b"STORED\r\nSTAT sizes_status enabled\r\nEND\r\n"))
            self.assertIn(b"STAT 64 1\r\nSTAT 128 1\r\nEND\r\n", expected)
            self.assertIn(b"STAT track_sizes yes\r\n", expected)
            pattern = re.compile(rb"STAT (tcpport|tcp_backlog|num_threads\w*|binding_protocol) \S+")
            self.assertEqual(pattern.sub(b"", got), pattern.sub(b"", expected))

        return Deferred.fromCoroutine(check())

    def test_byTypeNamesExist(self) -> None:
        """
        Every name allowed to differ is one memcached reports, so the list
        cannot hide a typo.
        """
        from tests.helpers import (
            MEMCACHED_GENERAL_STATS,
            MEMCACHED_ITEM_STATS,
            MEMCACHED_SETTINGS,
            MEMCACHED_SLAB_TOTALS,
        )

        known: dict[bytes, Callable[[str], bool]] = {
            b"stats": lambda name: name in MEMCACHED_GENERAL_STATS,
            b"stats settings": lambda name: name in MEMCACHED_SETTINGS,
            b"stats sizes": lambda name: False,
            b"stats slabs": lambda name: name in MEMCACHED_SLAB_TOTALS,
            b"stats items": lambda name: name.split(":")[-1] in MEMCACHED_ITEM_STATS,
        }
        for query, names in BY_TYPE.items():
            for name in names:
                self.assertTrue(known[query](name.decode()), (query, name))
