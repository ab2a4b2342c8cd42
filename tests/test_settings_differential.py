"""
memcached's C{-f}, C{-n}, C{-D} and C{-R} against a real memcached 1.6.18
started with the same values: what C{stats settings} reports, the slab
classes C{stats slabs} and C{me} show, the prefixes of C{stats detail dump},
and the yields C{-R} makes, counted in C{conn_yields}.

Needs the C{memcached} binary on C{PATH} (C{.ci/run} installs it).
"""

from __future__ import annotations

import re
from typing import Sequence

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import TestCase

from myproto.config import ServerSettings
from myproto.options import Options
from myproto.protocol import CacheServerFactory
from myproto.service import buildServer
from myproto.store import MemoryStore
from tests.helpers import parseStats, waitFor
from tests.reference import HOST, exchange, freePort, startMemcached

# Seconds myproto's side of the test's connections may take to close.
CLOSE_LIMIT = 5.0

#: The same values, as memcached's options and as myproto's settings.
OPTIONS = ["-f", "1.5", "-n", "64", "-D", "/", "-R", "3"]
SETTINGS = {
    "growthFactor": 1.5,
    "chunkSizeMin": 64,
    "detailDelimiter": "/",
    "maxRequestsPerEvent": 3,
}

#: Prefixed keys counted, one without the delimiter that is not, and items
#: of three sizes for C{me} to place in their slab classes.
DETAIL_STREAM = (
    b"stats detail on\r\n"
    b"set a/1 0 0 1\r\nx\r\nset a/2 0 0 1\r\ny\r\nset b:1 0 0 1\r\nz\r\n"
    b"get a/1 b:1 c/9\r\ndelete a/2\r\n"
    b"set mid 0 0 200\r\n" + b"m" * 200 + b"\r\n"
    b"set big 0 0 5000\r\n" + b"b" * 5000 + b"\r\n"
    b"me a/1\r\nme mid\r\nme big\r\n"
    b"stats detail dump\r\n"
)

#: Settings C{-f}, C{-n}, C{-D} and C{-R} set.
SETTING_NAMES = ["growth_factor", "chunk_size", "stat_key_prefix", "reqs_per_event"]

_IDLE = re.compile(rb" la=\d+")


async def listenMyproto(testCase: TestCase, settings: ServerSettings) -> int:
    """
    Serve a new myproto with C{settings} on a free loopback port until the
    test ends.

    @return: the port number.
    """
    from twisted.internet import reactor

    port = freePort()
    description = "tcp:{}:interface={}".format(port, HOST)
    store = MemoryStore(
        reactor,
        maxBytes=settings.memoryLimit,
        maxItemSize=settings.maxItemSize,
        useCas=settings.useCas,
    )
    factory = WrappingFactory(CacheServerFactory(store, reactor, settings))
    listening = await serverFromString(reactor, description).listen(factory)

    async def stop() -> None:
        await waitFor(lambda: not factory.protocols, CLOSE_LIMIT, "myproto's connections to close")
        await listening.stopListening()

    testCase.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    return port


async def stats(port: int, *group: bytes) -> dict[str, str]:
    """
    @return: a C{stats} block, asked for on a connection of its own.
    """
    query = b" ".join((b"stats",) + group) + b"\r\n"
    return parseStats((await exchange(HOST, port, [query])).data)


class SlabAndDetailOptionTests(TestCase):
    """
    C{-f}, C{-n}, C{-D} and C{-R} mean what they mean to memcached.
    """

    timeout = 60

    def test_sameAsMemcached(self) -> None:
        """
        With the same options, C{stats settings} reports the same four
        values; C{me} puts items of three sizes in the same slab classes;
        C{stats slabs} gives class 1 the same chunk size; and C{stats detail}
        counts the same prefixes, cut at the C{-D} delimiter.
        """

        async def check() -> None:
            memcached = (await startMemcached(self, options=OPTIONS)).port
            myproto = await listenMyproto(self, ServerSettings(**SETTINGS))  # type: ignore[arg-type]
            expected = (await exchange(HOST, memcached, [DETAIL_STREAM])).data
            got = (await exchange(HOST, myproto, [DETAIL_STREAM])).data
            self.assertIn(b"PREFIX a get 1 hit 1 set 2 del 1\r\n", expected)
            self.assertIn(b" cls=1 ", expected)
            self.assertEqual(_IDLE.sub(b"", got), _IDLE.sub(b"", expected))
            wanted = await stats(memcached, b"settings")
            found = await stats(myproto, b"settings")
            self.assertEqual(
                [found[name] for name in SETTING_NAMES], [wanted[name] for name in SETTING_NAMES]
            )
            self.assertEqual(wanted["chunk_size"], "64")
            slabs = [await stats(port, b"slabs") for port in (memcached, myproto)]
            self.assertEqual(slabs[1]["1:chunk_size"], slabs[0]["1:chunk_size"])
            self.assertEqual(slabs[1]["1:chunks_per_page"], slabs[0]["1:chunks_per_page"])

        return Deferred.fromCoroutine(check())


class RequestsPerEventTests(TestCase):
    """
    C{-R}: after that many commands of one read (one more for the first
    window), memcached writes its replies and yields, counting each yield in
    C{conn_yields}.
    """

    timeout = 120

    #: Pipelined commands per case, around the windows of C{-R 3} (4, then
    #: 3 at a time), sets and gets among them.
    CASES: Sequence[bytes] = [
        b"mn\r\n" * 3,
        b"mn\r\n" * 4,
        b"mn\r\n" * 7,
        b"mn\r\n" * 12,
        b"set k 0 0 1\r\nx\r\n" * 5 + b"get k\r\n" * 3,
    ]

    #: memcached sometimes reports fewer yields than it made (its worker
    #: thread counts them after writing the replies the client waits for):
    #: each case is asked of it up to this many times, keeping the largest.
    TRIES = 3

    async def yields(self, port: int, stream: bytes) -> int:
        before = int((await stats(port))["conn_yields"])
        await exchange(HOST, port, [stream])
        return int((await stats(port))["conn_yields"]) - before

    def test_yieldsCounted(self) -> None:
        """
        The same pipelines make the same number of yields in both.
        """

        async def check() -> None:
            memcached = (await startMemcached(self, options=["-R", "3"])).port
            myproto = await listenMyproto(self, ServerSettings(maxRequestsPerEvent=3))
            for stream in self.CASES:
                got = await self.yields(myproto, stream)
                expected = 0
                for _ in range(self.TRIES):
                    expected = max(expected, await self.yields(memcached, stream))
                    if expected == got:
                        break
                self.assertEqual((stream[:20], got), (stream[:20], expected))

        return Deferred.fromCoroutine(check())


class NoCasFlushTests(TestCase):
    """
    Under C{-C}, memcached flushes by whole seconds: what is stored in the
    second of a C{flush_all} is flushed too (its C{t/flush-all.t} test 27).
    With CAS uniques the flush is exact.
    """

    timeout = 60

    #: A set right after an immediate flush, then a get.
    STREAM = b"flush_all 0\r\nset foo 0 0 3\r\nnew\r\nget foo\r\n"

    #: Tries per server: one lands across a second boundary now and then.
    TRIES = 3

    async def answers(self, port: int) -> set[bytes]:
        found = set()
        for _ in range(self.TRIES):
            found.add((await exchange(HOST, port, [self.STREAM])).data)
        return found

    def test_sameSecondIsFlushed(self) -> None:
        """
        With C{-C}, memcached and myproto (as L{buildServer} makes it) both
        answer the get with C{END}; without, both with the value.
        """
        from twisted.internet import reactor

        flushed = b"OK\r\nSTORED\r\nEND\r\n"
        kept = b"OK\r\nSTORED\r\nVALUE foo 0 3\r\nnew\r\nEND\r\n"

        async def listen(settings: ServerSettings) -> int:
            port = freePort()
            description = "tcp:{}:interface={}".format(port, HOST)
            store = buildServer(settings, reactor, processWide=False).factory.cache.store
            factory = WrappingFactory(CacheServerFactory(store, reactor, settings))
            listening = await serverFromString(reactor, description).listen(factory)

            async def stop() -> None:
                await waitFor(lambda: not factory.protocols, CLOSE_LIMIT, "connections to close")
                await listening.stopListening()

            self.addCleanup(lambda: Deferred.fromCoroutine(stop()))
            return port

        async def check() -> None:
            noCas = (await startMemcached(self, options=["-C"])).port
            withCas = (await startMemcached(self)).port
            self.assertIn(flushed, await self.answers(noCas))
            self.assertEqual(await self.answers(withCas), {kept})
            self.assertIn(flushed, await self.answers(await listen(ServerSettings(useCas=False))))
            self.assertEqual(await self.answers(await listen(ServerSettings())), {kept})

        return Deferred.fromCoroutine(check())


class CacheDumpTests(TestCase):
    """
    C{stats cachedump}, and C{-X} refusing it, as memcached answers.
    """

    timeout = 60

    STREAM = (
        b"set a 0 0 1\r\nx\r\nset bb 0 0 3\r\nyyy\r\nset c 0 2000000000 2\r\nzz\r\n"
        b"mn 1\r\nstats cachedump 1 0\r\nstats cachedump 1 2\r\nstats cachedump 2 0\r\n"
        b"stats cachedump 63 0\r\nstats cachedump 64 0\r\nstats cachedump 1\r\n"
        b"stats cachedump x 1\r\nstats cachedump 1 -1\r\n"
    )

    def test_sameAsMemcached(self) -> None:
        """
        Newest first, value lengths and Unix expiry times, a limit, an empty
        class, memcached's errors; under C{-X}, refused.
        """

        async def check() -> None:
            # myproto's one LRU is memcached's cold one (as stats items
            # says), which holds every item only without memcached's
            # segmented LRU; with it, new items wait in the hot one.
            plain = ["-o", "no_lru_maintainer"]
            for options, settings in [
                (plain, ServerSettings()),
                (plain + ["-X"], ServerSettings(dumpEnabled=False)),
            ]:
                memcached = (await startMemcached(self, options=options)).port
                myproto = await listenMyproto(self, settings)
                expected = (await exchange(HOST, memcached, [self.STREAM])).data
                got = (await exchange(HOST, myproto, [self.STREAM])).data
                self.assertEqual(got, expected)
                if not options[2:]:
                    self.assertIn(
                        b"ITEM c [2 b; 2000000000 s]\r\nITEM bb [3 b; 0 s]\r\nITEM a [1 b; 0 s]\r\nEND\r\n"
                        b"ITEM c [2 b; 2000000000 s]\r\nITEM bb [3 b; 0 s]\r\nEND\r\nEND\r\n",
                        expected,
                    )

        return Deferred.fromCoroutine(check())


class LruSwitchTests(TestCase):
    """
    C{-o no_lru_crawler,no_lru_maintainer}: the crawler starts disabled, and
    C{stats}, C{stats items} and C{stats settings} leave out or switch off
    what memcached does without them.
    """

    timeout = 60

    def test_sameNames(self) -> None:
        """
        The same names as memcached in each block, and its values for the
        three switches.
        """

        async def check() -> None:
            options = Options()
            options.parseOptions(["-o", "no_lru_crawler,no_lru_maintainer"])
            self.assertEqual(options["ignored"], [])
            memcached = (await startMemcached(self, options=["-o", "no_lru_crawler,no_lru_maintainer"])).port
            myproto = await listenMyproto(self, options["settings"])
            for port in (memcached, myproto):
                await exchange(HOST, port, [b"set a 0 0 1\r\nx\r\n"])
            for group in [(), (b"items",), (b"settings",)]:
                wanted = await stats(memcached, *group)
                found = await stats(myproto, *group)
                self.assertEqual(list(found), list(wanted))
            switches = ["lru_crawler", "lru_maintainer_thread", "lru_segmented"]
            self.assertEqual([found[name] for name in switches], [wanted[name] for name in switches])
            self.assertEqual(wanted["lru_crawler"], "no")

        return Deferred.fromCoroutine(check())

    def test_crawlerSettings(self) -> None:
        """
        C{-o lru_crawler_sleep} and C{lru_crawler_tocrawl} set what C{stats
        settings} reports, as in memcached (C{atoi} reading the first).
        """

        async def check() -> None:
            given = "lru_crawler_sleep=250x,lru_crawler_tocrawl=7"
            options = Options()
            options.parseOptions(["-o", given])
            memcached = (await startMemcached(self, options=["-o", given])).port
            myproto = await listenMyproto(self, options["settings"])
            names = ["lru_crawler_sleep", "lru_crawler_tocrawl"]
            wanted = await stats(memcached, b"settings")
            found = await stats(myproto, b"settings")
            self.assertEqual([wanted[name] for name in names], ["250", "7"])
            self.assertEqual([found[name] for name in names], [wanted[name] for name in names])

        return Deferred.fromCoroutine(check())


class TrackSizesTests(TestCase):
    """
    C{-o track_sizes}: C{stats sizes} counts from the start, as after
    C{stats sizes_enable}, with and without CAS uniques.
    """

    timeout = 60

    STREAM = (
        b"stats sizes\r\nset a 0 0 1\r\nx\r\nset bb 0 0 40\r\n" + b"y" * 40 + b"\r\n"
        b"gets a\r\nstats sizes\r\n"
    )

    def test_sameAsMemcached(self) -> None:
        """
        The same histogram, and the same CAS uniques (memcached takes one
        when it starts counting).
        """

        async def check() -> None:
            # memcached reads -C after -o track_sizes too late for it (it
            # would count nothing): -C comes first here.
            for extra in ([], ["-C"]):
                given = [*extra, "-o", "track_sizes"]
                options = Options()
                options.parseOptions(given)
                self.assertEqual(options["ignored"], [])
                memcached = (await startMemcached(self, options=given)).port
                myproto = await listenMyproto(self, options["settings"])
                expected = (await exchange(HOST, memcached, [self.STREAM])).data
                got = (await exchange(HOST, myproto, [self.STREAM])).data
                # Without CAS uniques, items are 8 bytes smaller.
                histogram = b"STAT 64 1\r\nSTAT 96 1\r\n" if extra else b"STAT 64 1\r\nSTAT 128 1\r\n"
                self.assertIn(histogram + b"END\r\n", expected)
                self.assertEqual(got, expected)
                wanted = await stats(memcached, b"settings")
                found = await stats(myproto, b"settings")
                self.assertEqual((found["track_sizes"], wanted["track_sizes"]), ("yes", "yes"))

        return Deferred.fromCoroutine(check())
