"""
The last text commands and C{stats} subcommands, against a real memcached
1.6.18: the same stream to both, the same bytes back.
"""

from __future__ import annotations

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
