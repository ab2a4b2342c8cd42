"""
The blocks of C{stats} in memory: every name memcached 1.6.18 reports, in
its order, and the values myproto has figures for.  The same blocks against
a real memcached are in L{tests.test_stats_differential}.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from myproto.config import ServerSettings
from tests.helpers import (
    MEMCACHED_GENERAL_STATS,
    MEMCACHED_ITEM_STATS,
    MEMCACHED_SETTINGS,
    MEMCACHED_SLAB_STATS,
    MEMCACHED_SLAB_TOTALS,
    Server,
    statNames,
)


class StatsBlockTests(SynchronousTestCase):
    """
    C{stats}, C{stats settings}, C{stats items}, C{stats slabs} and
    C{stats sizes}.
    """

    def test_generalNames(self) -> None:
        """
        C{stats} has all of memcached's names, C{idle_kicks} only with an
        idle timeout (as memcached).
        """
        client = Server().connect()
        names = statNames(client.send(b"stats\r\n"))
        self.assertEqual(names, [name for name in MEMCACHED_GENERAL_STATS if name != "idle_kicks"])
        client = Server(ServerSettings(idleTimeout=5)).connect()
        self.assertEqual(statNames(client.send(b"stats\r\n")), MEMCACHED_GENERAL_STATS)

    def test_settingsNames(self) -> None:
        """
        C{stats settings} has all of memcached's names, with memcached's
        defaults for what myproto does not have.
        """
        server = Server()
        self.assertEqual(list(server.stats(b"settings")), MEMCACHED_SETTINGS)
        stats = server.stats(b"settings")
        self.assertEqual(
            [stats[name] for name in ("growth_factor", "chunk_size", "reqs_per_event")],
            ["1.25", "48", "20"],
        )
        self.assertEqual(
            [stats[name] for name in ("slab_chunk_max", "ext_item_age", "ssl_enabled")],
            ["524288", "4294967295", "no"],
        )

    def test_oldest(self) -> None:
        """
        C{oldest} is 0 until a C{flush_all}, then memcached's time of it,
        less a second with CAS on, as memcached keeps it.
        """
        server = Server()
        self.assertEqual(server.stats(b"settings")["oldest"], "0")
        server.clock.advance(10)
        server.connect().send(b"flush_all\r\n")
        self.assertEqual(server.stats(b"settings")["oldest"], str(62 + 10 - 1))
        server.connect().send(b"flush_all 5\r\n")
        self.assertEqual(server.stats(b"settings")["oldest"], str(62 + 15 - 1))
        server = Server(ServerSettings(useCas=False))
        server.connect().send(b"flush_all\r\n")
        self.assertEqual(server.stats(b"settings")["oldest"], "62")

    def test_items(self) -> None:
        """
        C{stats items} has every per-class name of memcached's, for class 1:
        the single LRU, reported as the cold one.
        """
        server = Server()
        client = server.connect()
        client.send(b"set a 0 0 1\r\nx\r\nset bb 1 0 2\r\nyy\r\nget a\r\n")
        reply = client.send(b"stats items\r\n")
        self.assertEqual(statNames(reply), ["items:1:" + name for name in MEMCACHED_ITEM_STATS])
        stats = server.stats(b"items")
        self.assertEqual(
            [stats["items:1:" + name] for name in ("number", "number_cold", "hits_to_cold")],
            ["2", "2", "1"],
        )

    def test_evictedTime(self) -> None:
        """
        C{evicted_time} is how long the last evicted item had gone unused.
        """
        server = Server(ServerSettings(memoryLimit=8 * 1024 * 1024, maxItemSize=1024 * 1024))
        client = server.connect()
        value = b"v" * 1000 * 1000
        client.send(b"set a 0 0 %d\r\n%s\r\n" % (len(value), value))
        server.clock.advance(7)
        for key in range(8):
            client.send(b"set k%d 0 0 %d\r\n%s\r\n" % (key, len(value), value))
        stats = server.stats(b"items")
        self.assertEqual(stats["items:1:evicted"], "1")
        self.assertEqual(stats["items:1:evicted_time"], "7")

    def test_slabs(self) -> None:
        """
        C{stats slabs} has every per-class name of memcached's, its pages
        counted as memcached counts pages of 96-byte chunks.
        """
        server = Server()
        client = server.connect()
        client.send(b"set a 0 0 1\r\nx\r\n")
        reply = client.send(b"stats slabs\r\n")
        expected = ["1:" + name for name in MEMCACHED_SLAB_STATS] + MEMCACHED_SLAB_TOTALS
        self.assertEqual(statNames(reply), expected)
        stats = server.stats(b"slabs")
        self.assertEqual(
            [stats["1:" + name] for name in ("chunk_size", "chunks_per_page", "total_pages")],
            ["96", "10922", "1"],
        )
        self.assertEqual((stats["1:used_chunks"], stats["1:free_chunks"]), ("1", "10921"))

    def test_sizes(self) -> None:
        """
        C{stats sizes} is disabled until C{stats sizes_enable}; then it
        counts the items stored since, by size rounded up to 32 bytes.
        """
        server = Server()
        client = server.connect()
        client.send(b"set old 0 0 1\r\nx\r\n")
        self.assertEqual(client.send(b"stats sizes\r\n"), b"STAT sizes_status disabled\r\nEND\r\n")
        # memcached sends no END after the switches' lines.
        self.assertEqual(client.send(b"stats sizes_enable\r\n"), b"STAT sizes_status enabled\r\n")
        self.assertEqual(client.send(b"stats sizes\r\n"), b"END\r\n")
        # 48 + 1 + 1 + 1 + 2 + 8 = 61 bytes and 48 + 2 + 1 + 40 + 2 + 8 = 101.
        client.send(b"set a 0 0 1\r\nx\r\nset bb 0 0 40\r\n%s\r\n" % (b"y" * 40,))
        self.assertEqual(client.send(b"stats sizes\r\n"), b"STAT 64 1\r\nSTAT 128 1\r\nEND\r\n")
        self.assertTrue(server.stats(b"settings")["track_sizes"] == "yes")
        self.assertEqual(
            client.send(b"stats sizes_disable\r\nstats sizes\r\n"),
            b"STAT sizes_status disabled\r\n" * 2 + b"END\r\n",
        )

    def test_sizesWithoutCas(self) -> None:
        """
        Without CAS uniques, C{stats sizes_enable} is refused, as memcached
        refuses it (with no C{END}, as memcached).
        """
        client = Server(ServerSettings(useCas=False)).connect()
        self.assertEqual(
            client.send(b"stats sizes_enable\r\n"),
            b"STAT sizes_status error\r\nSTAT sizes_error cas_support_disabled\r\n",
        )
