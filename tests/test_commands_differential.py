"""
The last text commands and C{stats} subcommands, against a real memcached
1.6.18: the same stream to both, the same bytes back.
"""

from __future__ import annotations

import re

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase

from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore

from tests.reference import NO_LRU_THREADS, exchange, listenMyproto, startMemcached

# Absolute expiry times (beyond memcached's 30 days) show as given.
LATER = b"2000000000"

CACHEDUMP_STREAMS: list[bytes] = [
    b"set a 0 0 1\r\nx\r\nset bb 0 " + LATER + b" 3\r\nxyz\r\n"
    b"set big 0 0 500\r\n" + b"x" * 500 + b"\r\n"
    b"ms Zm9v 2 b\r\nhi\r\n"
    b"stats cachedump 1 0\r\nstats cachedump 1 1\r\nstats cachedump 5 0\r\n"
    b"stats cachedump 0 0\r\nstats cachedump 63 0\r\nstats cachedump 64 0\r\n"
    b"stats cachedump 1\r\nstats cachedump\r\nstats cachedump x 0\r\nstats cachedump 1 -1\r\n"
    b"stats cachedump 1 0 extra\r\nstats cachedump -1 0\r\nstats cachedump 1 2 3 4\r\n"
    b"stats cachedump 4294967297 0\r\nstats cachedump 1 4294967297\r\n",
    # A fetch does not move an item; a new store does.
    b"set a 0 0 1\r\nx\r\nset b 0 0 1\r\ny\r\nget a\r\nstats cachedump 1 0\r\n"
    b"set a 0 0 1\r\nz\r\nstats cachedump 1 0\r\ndelete b\r\nstats cachedump 1 0\r\n",
    # Classes by size, and items of several classes.
    b"".join(b"set k%d 0 0 %d\r\n%s\r\n" % (n, n * 37, b"v" * (n * 37)) for n in range(30))
    + b"".join(b"stats cachedump %d 0\r\n" % (n,) for n in range(1, 12)),
]


class CachedumpTests(TestCase):
    """
    C{stats cachedump} lists what memcached lists (run without its LRU
    threads, so that its cold LRU holds every item of a class at once).
    """

    async def test_streams(self) -> None:
        memcached = await startMemcached(self, options=NO_LRU_THREADS)
        port, stop = await listenMyproto()
        self.addCleanup(stop)
        for stream in CACHEDUMP_STREAMS:
            expected = await exchange(memcached.host, memcached.port, [b"flush_all\r\n" + stream])
            got = await exchange("127.0.0.1", port, [b"flush_all\r\n" + stream])
            self.assertEqual(got.data, expected.data, stream[:200])

    async def test_disabled(self) -> None:
        """
        Under C{-X}, memcached's refusal.
        """
        memcached = await startMemcached(self, options=NO_LRU_THREADS + ["-X"])
        expected = await exchange(memcached.host, memcached.port, [b"stats cachedump 1 0\r\n"])
        self.assertEqual(expected.data, b"CLIENT_ERROR stats cachedump not allowed\r\n")
        clock = Clock()
        factory = CacheServerFactory(MemoryStore(clock), clock, ServerSettings(dumpEnabled=False))
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"stats cachedump 1 0\r\n")
        self.assertEqual(transport.value(), expected.data)


#: Lines memcached's tuning commands answer, each with its reply checked.
TUNING_LINES = b"""lru
lru tune
lru tune 10 15 0.3 3.5
lru tune 10 10 0.1 2.0 noreply
lru tune 50 50 0.1 2.0
lru tune 4294967295 81 0.1 2.0
lru tune 10 10 0 2.0
lru tune 10 10 0.1 -1
lru tune 10 10 x 2.0
lru tune 10 10 0.1
lru tune 10 10 1e1 0x10
lru mode flat
lru mode segmented
lru mode flat
lru mode bogus
lru mode
lru temp_ttl 10
lru temp_ttl -1
lru temp_ttl 77
lru temp_ttl x
lru temp_ttl
lru bogus
lru bogus noreply
slabs
slabs reassign
slabs reassign 1 2
slabs reassign 1 1
slabs reassign 99 99
slabs reassign -1 2
slabs reassign 0 2
slabs reassign 1 99
slabs reassign 1 39
slabs reassign 1 40
slabs reassign -2 1
slabs reassign x y
slabs reassign 1 2 noreply
slabs reassign 1
slabs automove
slabs automove 0
slabs automove 2
slabs automove 3
slabs automove x
slabs automove ratio 0.5
slabs automove ratio x
slabs automove ratio
slabs automove ratio 0.25 noreply
slabs bogus 1
extstore
extstore item_size
extstore item_size 10
extstore item_age 11
extstore low_ttl 12
extstore recache_rate 13
extstore compact_under 14
extstore drop_under 15
extstore max_sleep 16
extstore max_frag 0.5
extstore drop_unread 1
extstore free_memchunks 1 2
extstore free_memchunks 64 2
extstore free_memchunks 1
extstore bogus 1
extstore item_size x
extstore item_size -1
extstore low_ttl 5 noreply
stats extstore
misbehave
debugtime 10
""".replace(b"\n", b"\r\n")

#: The C{stats settings} those commands change.
TUNED_SETTINGS = (
    b"slab_automove ", b"slab_automove_ratio ", b"lru_segmented ", b"hot_lru_pct ",
    b"warm_lru_pct ", b"hot_max_factor ", b"warm_max_factor ", b"temp_lru ",
    b"temporary_ttl ", b"ext_",
)


def tunedSettings(reply: bytes) -> list[bytes]:
    return [
        line for line in reply.split(b"\r\n")
        if line.startswith(b"STAT ") and line[5:].startswith(TUNED_SETTINGS)
    ]


class TuningTests(TestCase):
    """
    C{lru}, C{slabs} and C{extstore}: memcached's replies, and what they set
    in C{stats settings}.
    """

    async def test_replies(self) -> None:
        memcached = await startMemcached(self)
        port, stop = await listenMyproto()
        self.addCleanup(stop)
        for line in TUNING_LINES.split(b"\r\n")[:-1]:
            stream = line + b"\r\nmn\r\n"
            expected = await exchange(memcached.host, memcached.port, [stream])
            got = await exchange("127.0.0.1", port, [stream])
            self.assertEqual(got.data, expected.data, line)
        expected = await exchange(memcached.host, memcached.port, [b"stats settings\r\n"])
        got = await exchange("127.0.0.1", port, [b"stats settings\r\n"])
        self.assertEqual(len(tunedSettings(expected.data)), 19)
        self.assertEqual(tunedSettings(got.data), tunedSettings(expected.data))

    async def test_reassignSparePage(self) -> None:
        """
        A class with items enough for two pages has one to spare.
        """
        memcached = await startMemcached(self)
        port, stop = await listenMyproto()
        self.addCleanup(stop)
        big = b"x" * 400000
        stream = b"".join(b"set big%d 0 0 400000\r\n%s\r\n" % (n, big) for n in range(3))
        stream += b"slabs reassign 39 1\r\n"
        expected = await exchange(memcached.host, memcached.port, [stream])
        got = await exchange("127.0.0.1", port, [stream])
        self.assertEqual(expected.data, b"STORED\r\n" * 3 + b"OK\r\n")
        self.assertEqual(got.data, expected.data)


class ConnectionEventTests(TestCase):
    """
    C{watch connevents}: a client's C{conn_new} and C{conn_close} lines.
    """

    async def test_connevents(self) -> None:
        from tests.test_observability_differential import connect, hangUp, normaliseWatch, waitFor

        async def watched(port: int) -> list[bytes]:
            watcher = await connect(port)
            watcher.transport.write(b"watch connevents\r\n")  # type: ignore[union-attr]
            await waitFor(lambda: watcher.received.startswith(b"OK\r\n"), "OK to watch")
            # One client the server closes (quit), one that closes itself.
            ours = []
            first = await connect(port)
            ours.append(b"rport=%d " % (first.transport.getHost().port,))  # type: ignore[union-attr]
            first.transport.write(b"mn\r\nquit\r\n")  # type: ignore[union-attr]
            await waitFor(lambda: first.closed, "quit to close")
            second = await connect(port)
            ours.append(b"rport=%d " % (second.transport.getHost().port,))  # type: ignore[union-attr]
            second.transport.loseConnection()  # type: ignore[union-attr]

            def ourLines() -> list[bytes]:
                # Only our clients' (memcached may log a late one of the
                # harness's), ordered by gid: memcached logs an opening from
                # its accepting thread and the rest from a worker's.
                return sorted(
                    (
                        line for line in watcher.received[4:].split(b"\n")[:-1]
                        if any(port in line for port in ours)
                    ),
                    key=lambda line: int(re.search(rb"gid=(\d+)", line).group(1)),  # type: ignore[union-attr]
                )

            await waitFor(lambda: len(ourLines()) >= 4, "4 watch lines")
            await hangUp(watcher)
            # Ordered, the gids are compared no further: others may come between.
            lines = [re.sub(rb"gid=\d+", b"gid=1", line) for line in ourLines()]
            return [
                re.sub(rb"rport=\d+", b"rport=<port>", line)
                for line in normaliseWatch([re.sub(rb"cfd=\d+", b"cfd=1", line) for line in lines])
            ]

        memcached = await startMemcached(self)
        port, stop = await listenMyproto()
        self.addCleanup(stop)
        expected = await watched(memcached.port)
        got = await watched(port)
        self.assertEqual(
            expected,
            [
                b"gid+0 type=conn_new rip=127.0.0.1 rport=<port> transport=tcp cfd=<cfd>",
                b"gid+0 type=conn_close rip=127.0.0.1 rport=<port> transport=tcp reason=normal cfd=<cfd>",
            ]
            * 2,
        )
        self.assertEqual(got, expected)
