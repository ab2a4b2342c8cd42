"""
Differential tests for observability: the same traffic goes to a fresh real
memcached 1.6.18 and to myproto, and C{stats} names, C{stats conns},
C{lru_crawler} replies, C{metadump} lines and C{watch} lines are compared.

What legitimately differs is normalised: times (C{ts}, C{la}; C{exp} is
compared relative to the current time), CAS uniques (by order of
appearance), C{gid} (relative to the first line) and connection numbers
(C{cfd}, the C{stats conns} prefix: memcached's descriptors are not ours).
memcached lists its listening sockets in C{stats conns}, which myproto does
not; only client connections are compared.  Dumps are compared as sets of
lines: memcached walks its segmented LRUs, myproto its single one.

Needs the C{memcached} binary on C{PATH}; skipped without it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from tests import helpers
from tests.helpers import WATCH_STREAM, check
from tests.reference import (
    STATS_BLOCK,
    exchange,
    listenMyproto,
    normalise,
    startMemcached,
    statProblems,
)

HOST = "127.0.0.1"

# Seconds to wait for a watcher's lines; memcached's logger thread sleeps up
# to a second when idle.
WATCH_LIMIT = 5.0


async def crawlerReply(port: int, line: bytes) -> bytes:
    """
    Send one C{lru_crawler} line on a new connection, asking again while the
    server's crawler is busy with an earlier crawl.

    @raise AssertionError: if it is still busy after L{BUSY_LIMIT} seconds.
    """
    from twisted.internet import reactor

    deadline = reactor.seconds() + BUSY_LIMIT
    while True:
        data = (await exchange(HOST, port, [line])).data
        if data != BUSY_REPLY:
            return data
        if reactor.seconds() > deadline:
            raise AssertionError("crawler still busy after {}s: {!r}".format(BUSY_LIMIT, line))
        await deferLater(reactor, 0.05, lambda: None)


#: memcached's reply while its crawler thread is still at work.
BUSY_REPLY = b"BUSY currently processing crawler request\r\n"

#: Seconds a busy crawler may take to finish.
BUSY_LIMIT = 10.0


class Collector(Protocol):
    """
    Keeps what arrives.
    """

    def __init__(self) -> None:
        self.received = b""
        self.closed = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True


async def connect(port: int) -> Collector:
    from twisted.internet import reactor

    collector = Collector()
    await connectProtocol(TCP4ClientEndpoint(reactor, HOST, port, timeout=5), collector)
    if collector.transport is None:
        raise AssertionError("connected, but the protocol has no transport")
    collector.transport.setTcpNoDelay(True)  # type: ignore[attr-defined]
    return collector


async def waitFor(condition: Callable[[], bool], what: str) -> None:
    """
    Wait until C{condition()} holds, for at most L{WATCH_LIMIT} seconds.

    @raise AssertionError: if it does not hold by then.
    """
    await helpers.waitFor(condition, WATCH_LIMIT, what)


async def hangUp(collector: Collector) -> None:
    if collector.transport is None:
        raise AssertionError("connected, but the protocol has no transport")
    collector.transport.loseConnection()
    await waitFor(lambda: collector.closed, "the server to close the connection")


_WATCH = re.compile(rb"^ts=\d+\.\d+ gid=(\d+) (.*) cfd=(-?\d+)( .*)?$")


def normaliseWatch(lines: list[bytes]) -> list[bytes]:
    """
    Replace C{ts} with nothing, C{gid} with its offset from the first line
    and C{cfd} with C{<cfd>} (checking it is one number throughout).
    """
    result = []
    first: int | None = None
    descriptors = set()
    for line in lines:
        match = _WATCH.match(line)
        if match is None:
            raise AssertionError("not a watch line: {!r}".format(line))
        gid = int(match.group(1))
        first = gid if first is None else first
        descriptors.add(match.group(3))
        result.append(
            b"gid+%d %s cfd=<cfd>%s" % (gid - first, match.group(2), match.group(4) or b"")
        )
    check.assertLessEqual(len(descriptors), 1, descriptors)
    return result


_DUMP = re.compile(rb"^key=(\S+) exp=(-?\d+) la=(\d+) cas=(\d+) (fetch=\S+ cls=\d+ size=\d+)$")


def normaliseDump(data: bytes, now: float) -> list[bytes]:
    """
    The lines of a dump, sorted, with CAS uniques replaced by their rank
    (both servers give later stores larger ones) and times made relative to
    C{now} (C{la} must be within a few seconds).
    """
    check.assertTrue(data.endswith(b"END\r\n"), data)
    body = data[: -len(b"END\r\n")]
    items = []
    for line in body.split(b"\n")[:-1]:
        match = _DUMP.match(line)
        if match is None:
            raise AssertionError("not a metadump line: {!r}".format(line))
        key, expires, access, cas, rest = match.groups()
        # memcached's clock ticks once a second and may lag a little.
        check.assertLessEqual(abs(int(access) - now), 10, line)
        ttl = b"-1" if expires == b"-1" else b"%d" % (round((int(expires) - now) / 100) * 100,)
        items.append((key, ttl, int(cas), rest))
    ranks = {cas: rank for rank, cas in enumerate(sorted(cas for _, _, cas, _ in items))}
    return sorted(
        b"key=%s ttl~%s cas#%d %s" % (key, ttl, ranks[cas], rest) for key, ttl, cas, rest in items
    )


class ObservabilityDifferentialTests(TestCase):
    """
    myproto's observability commands against a fresh memcached each.
    """

    timeout = 60
    maxDiff = None

    async def servers(self) -> tuple[int, int]:
        memcached = await startMemcached(self)
        port, stop = await listenMyproto()
        self.addCleanup(stop)
        return memcached.port, port

    def test_statsNames(self) -> Deferred[None]:
        """
        C{stats} and C{stats settings}: myproto's names are memcached's, in
        its order, the logger's and crawler's among them.
        """

        async def check() -> None:
            memcached, myproto = await self.servers()
            for query in (b"stats\r\n", b"stats settings\r\n"):
                expected = normalise((await exchange(HOST, memcached, [query])).data)
                got = normalise((await exchange(HOST, myproto, [query])).data)
                self.assertEqual(got.lines, [STATS_BLOCK, b"END"])
                self.assertEqual(statProblems(expected.statBlocks[0], got.statBlocks[0]), [])
                names = {name for name, _ in got.statBlocks[0]}
                self.assertTrue(names <= {name for name, _ in expected.statBlocks[0]})
            expected = normalise((await exchange(HOST, memcached, [b"stats\r\n"])).data)
            for name in (b"log_watcher_sent", b"log_watchers", b"lru_crawler_starts"):
                self.assertIn(name, dict(expected.statBlocks[0]))

        return Deferred.fromCoroutine(check())

    def test_statsConns(self) -> Deferred[None]:
        """
        C{stats conns}: the same groups and states for an idle connection,
        one that has sent a command, one in a data block and the asking one.
        """

        async def groups(port: int) -> list[tuple[str, str]]:
            idle = await connect(port)
            used = await connect(port)
            used.transport.write(b"version\r\n")  # type: ignore[union-attr]
            await waitFor(lambda: used.received.endswith(b"\r\n"), "the reply to version")
            reading = await connect(port)
            reading.transport.write(b"set k 0 0 10\r\nab")  # type: ignore[union-attr]
            replies: list[bytes] = []

            async def inDataBlock() -> bool:
                replies.append((await exchange(HOST, port, [b"stats conns\r\n"])).data)
                return b":state conn_nread\r\n" in replies[-1]

            # Ask again until the server has read the command line and waits
            # for the data block.
            for attempt in range(100):
                if await inDataBlock():
                    break
            else:
                self.fail("no connection in conn_nread: {!r}".format(replies[-1]))
            reply = replies[-1]
            for collector in (idle, used, reading):
                await hangUp(collector)
            found: dict[str, dict[str, str]] = {}
            order: list[str] = []
            for number, name, value in re.findall(rb"STAT (\d+):(\S+) ([^\r]*)\r\n", reply):
                if number.decode() not in found:
                    order.append(number.decode())
                found.setdefault(number.decode(), {})[name.decode()] = value.decode()
            result = []
            for number in order:
                group = found[number]
                if group["state"] == "conn_listening":
                    continue
                self.assertEqual(
                    list(group), ["addr", "listen_addr", "state", "secs_since_last_cmd"]
                )
                self.assertRegex(group["addr"], r"^tcp:127\.0\.0\.1:\d+$")
                self.assertEqual(group["listen_addr"], "tcp:127.0.0.1:%d" % (port,))
                result.append((group["state"], group["secs_since_last_cmd"]))
            return result

        async def check() -> None:
            memcached, myproto = await self.servers()
            self.assertEqual(await groups(myproto), await groups(memcached))

        return Deferred.fromCoroutine(check())

    def test_lruCrawlerReplies(self) -> Deferred[None]:
        """
        C{lru_crawler}'s subcommands get memcached's replies.
        """
        stream = b"".join(
            line + b"\r\n"
            for line in [
                b"lru_crawler",
                b"lru_crawler metadump",
                b"lru_crawler foo bar",
                b"lru_crawler metadump all extra",
                b"lru_crawler metadump 0",
                b"lru_crawler metadump 64",
                b"lru_crawler metadump x",
                b"lru_crawler crawl all",
                b"lru_crawler crawl 0",
                b"lru_crawler crawl hash",
                b"lru_crawler tocrawl 10",
                b"lru_crawler tocrawl x",
                b"lru_crawler sleep 10",
                b"lru_crawler sleep 2000000",
                b"lru_crawler enable",
                b"lru_crawler mgdump all",
                b"lru_crawler HTTP/1.1",
            ]
        )

        async def check() -> None:
            memcached, myproto = await self.servers()
            # One at a time: memcached answers a crawl on its crawler thread,
            # which may still be busy with the one before (its BUSY is about
            # timing, not meaning: ask again, a bounded number of times).
            replies = []
            for port in (memcached, myproto):
                reply = b""
                for line in stream.splitlines(keepends=True):
                    reply += await crawlerReply(port, line)
                replies.append(reply)
            self.assertEqual(replies[1], replies[0])

        return Deferred.fromCoroutine(check())

    def test_metadump(self) -> Deferred[None]:
        """
        C{lru_crawler metadump all} and C{hash} list the same items in the
        same format, keys URI-encoded.
        """
        setup = (
            b"set plain 0 0 1\r\nx\r\nset with%20space 7 0 3\r\nabc\r\n"
            b"set k\xc3\xa9y:1/2 0 1000 5\r\nhello\r\nset gone 0 0 1\r\nx\r\n"
            b"delete gone\r\nget plain\r\n"
        )

        async def dumps(port: int) -> list[list[bytes]]:
            await exchange(HOST, port, [setup])
            result = []
            for spec in (b"all", b"hash", b"1", b"2"):
                # memcached does not read a quit pipelined behind a dump:
                # the dump is complete at its END.
                reply = await exchange(
                    HOST,
                    port,
                    [b"lru_crawler metadump " + spec + b"\r\n"],
                    quit=False,
                    until=lambda received: received.endswith(b"END\r\n"),
                )
                result.append(normaliseDump(reply.data, time.time()))
            return result

        async def check() -> None:
            memcached, myproto = await self.servers()
            expected = await dumps(memcached)
            got = await dumps(myproto)
            # Items this small are in memcached's class 1 too (larger ones
            # would be in others, where myproto reports class 1).
            self.assertEqual(got, expected)
            self.assertEqual(len(got[0]), 3)
            self.assertEqual(got[3], [])

        return Deferred.fromCoroutine(check())

    def test_watch(self) -> Deferred[None]:
        """
        C{watch fetchers mutations} streams the same lines for the same
        commands.
        """

        async def watched(port: int) -> list[bytes]:
            watcher = await connect(port)
            watcher.transport.write(b"watch fetchers mutations\r\n")  # type: ignore[union-attr]
            await waitFor(lambda: watcher.received.startswith(b"OK\r\n"), "OK to watch")
            await exchange(HOST, port, [WATCH_STREAM])
            await waitFor(lambda: watcher.received.count(b"\n") >= 32, "32 watch lines")
            await hangUp(watcher)
            return normaliseWatch(watcher.received[4:].split(b"\n")[:-1])

        async def check() -> None:
            memcached, myproto = await self.servers()
            expected = await watched(memcached)
            got = await watched(myproto)
            self.assertEqual(len(expected), 31)
            self.assertEqual(got, expected)

        return Deferred.fromCoroutine(check())
