"""
Tests for observability: C{stats conns}, C{stats settings} and the logger
lines of C{stats}; C{watch} (L{myproto.commands.watch}); C{lru_crawler} and its
C{metadump} (L{myproto.commands.crawler}); the Prometheus endpoint
(L{myproto.metrics}); and the log events for connections and evictions.

Expected lines are memcached 1.6.18's: the C{watch} and C{metadump} formats
below were captured from a real memcached given the same commands (see also
L{tests.test_observability_differential}, which compares live).
"""

from __future__ import annotations

import re
from dataclasses import replace

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, readBody

from myproto import config, metrics, tap
from myproto.commands import crawler, watch
from myproto.config import ServerSettings, listenFacts, splitDescription
from myproto.conns import describeAddress
from myproto.service import DRAIN_NAME, METRICS_NAME
from myproto.evictions import EvictionSummary
from myproto.store import MemoryStore, itemCost
from tests.helpers import (
    MEMCACHED_GENERAL_STATS,
    MEMCACHED_SETTINGS,
    START,
    WATCH_STREAM,
    Client,
    Server,
    check,
    parseStats,
)

_WATCH_LINE = re.compile(rb"^ts=(\d+)\.(\d+) gid=(\d+) (.*)$")


def watchBodies(data: bytes) -> list[bytes]:
    """
    @return: the event lines of a watcher's output without C{ts} and C{gid}
        (checked to be well formed and consecutive), after its C{OK}.
    """
    check.assertTrue(data.startswith(b"OK\r\n"), data)
    lines = data[4:].split(b"\n")
    check.assertEqual(lines[-1], b"", data)
    bodies = []
    gids = []
    for line in lines[:-1]:
        match = _WATCH_LINE.match(line)
        if match is None:
            raise AssertionError("not a watch line: {!r}".format(line))
        gids.append(int(match.group(3)))
        bodies.append(match.group(4))
    if gids:
        check.assertEqual(gids, list(range(gids[0], gids[0] + len(gids))), "gids not consecutive")
    return bodies


class PausingTransport(StringTransport):
    """
    A transport that pauses its streaming producer once more than
    C{bufferSize} bytes wait, and resumes it when drained, as a TCP
    transport does.
    """

    bufferSize = 200

    def __init__(self) -> None:
        super().__init__()
        self.full = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if not self.full and len(self.value()) > self.bufferSize and self.producer is not None:
            self.full = True
            self.producer.pauseProducing()

    def drain(self) -> bytes:
        sent = self.value()
        self.clear()
        if self.full and self.producer is not None:
            self.full = False
            self.producer.resumeProducing()
        return sent


def fileNumber(client: Client) -> int:
    """
    @return: the number C{stats conns} and C{cfd} use for a test connection.
    """
    from myproto.conns import connectionNumber

    return connectionNumber(client.protocol)


# ---------------------------------------------------------------------------
# stats conns, stats settings, general stats.


class StatsConnsTests(SynchronousTestCase):
    """
    C{stats conns}: one group per connection in memcached's format.
    """

    def setUp(self) -> None:
        self.server = Server()

    def conns(self, client: Client) -> dict[str, str]:
        return parseStats(client.send(b"stats conns\r\n"))

    def test_groups(self) -> None:
        """
        Each open connection has C{addr}, C{listen_addr}, C{state} and
        C{secs_since_last_cmd}, prefixed by its number, in that order and
        by number; the asking connection is in C{conn_parse_cmd}.
        """
        idle = self.server.connect()
        asking = self.server.connect()
        reply = asking.send(b"stats conns\r\n")
        first, second = sorted([fileNumber(idle), fileNumber(asking)])
        names = re.findall(rb"STAT (\S+) ", reply)
        self.assertEqual(
            names,
            [
                b"%d:%s" % (number, name)
                for number in (first, second)
                for name in (b"addr", b"listen_addr", b"state", b"secs_since_last_cmd")
            ],
        )
        stats = parseStats(reply)
        number = fileNumber(asking)
        self.assertEqual(
            stats["%d:addr" % number],
            "tcp:127.0.0.1:%d" % (asking.protocol.transport.getPeer().port,),
        )
        self.assertEqual(stats["%d:listen_addr" % number], "tcp:10.0.0.1:12345")
        self.assertEqual(stats["%d:state" % number], "conn_parse_cmd")
        self.assertEqual(stats["%d:secs_since_last_cmd" % number], "0")
        self.assertEqual(stats["%d:state" % fileNumber(idle)], "conn_new_cmd")

    def test_states(self) -> None:
        """
        A connection that has sent a command waits in C{conn_read}, one in
        the middle of a data block in C{conn_nread}, one swallowing a
        refused block in C{conn_swallow}, as memcached reports them.
        """
        used = self.server.connect()
        used.send(b"version\r\n")
        partial = self.server.connect()
        partial.send(b"get fo")
        reading = self.server.connect()
        reading.send(b"set k 0 0 10\r\nab")
        swallowing = self.server.connect()
        swallowing.send(b"set k 0 0 2000000\r\nab")
        stats = self.conns(self.server.connect())
        for client, state in [
            (used, "conn_read"),
            (partial, "conn_read"),
            (reading, "conn_nread"),
            (swallowing, "conn_swallow"),
        ]:
            self.assertEqual(stats["%d:state" % fileNumber(client)], state)

    def test_secondsSinceLastCommand(self) -> None:
        """
        C{secs_since_last_cmd} counts from the last command, or from the
        connection when there was none.
        """
        quiet = self.server.connect()
        talker = self.server.connect()
        self.server.clock.advance(5)
        talker.send(b"version\r\n")
        self.server.clock.advance(3)
        stats = self.conns(self.server.connect())
        self.assertEqual(stats["%d:secs_since_last_cmd" % fileNumber(quiet)], "8")
        self.assertEqual(stats["%d:secs_since_last_cmd" % fileNumber(talker)], "3")

    def test_closedConnectionsLeave(self) -> None:
        """
        A connection that has gone is no longer listed.
        """
        gone = self.server.connect()
        number = fileNumber(gone)
        gone.lose()
        self.assertNotIn("%d:addr" % number, self.conns(self.server.connect()))

    def test_tlsSubject(self) -> None:
        """
        Beyond memcached, a client that presented a certificate has a
        C{tls_subject} line, last in its group.
        """
        client = self.server.connect()
        client.protocol.tlsSubject = lambda: "CN=client1,O=Example"  # type: ignore[method-assign]
        reply = self.server.connect().send(b"stats conns\r\n")
        number = fileNumber(client)
        self.assertIn(
            b"STAT %d:secs_since_last_cmd 0\r\nSTAT %d:tls_subject CN=client1,O=Example\r\n"
            % (number, number),
            reply,
        )

    def test_addresses(self) -> None:
        """
        Addresses are written as memcached writes them; a Unix peer has no
        name, which memcached shows as C{?:<AF 0>}.
        """
        from twisted.internet.address import IPv6Address, UNIXAddress

        self.assertEqual(
            describeAddress(IPv4Address("TCP", "127.0.0.1", 11211)), "tcp:127.0.0.1:11211"
        )
        self.assertEqual(describeAddress(IPv6Address("TCP", "::1", 11211)), "tcp6:[::1]:11211")
        self.assertEqual(describeAddress(UNIXAddress(b"m.sock")), "unix:m.sock")
        self.assertEqual(describeAddress(UNIXAddress(None)), "?:<AF 0>")


class StatsSettingsTests(SynchronousTestCase):
    """
    C{stats settings} reports what applies, in memcached's order.
    """

    def settings(self, server: Server) -> dict[str, str]:
        return server.stats(b"settings")

    def test_namesInMemcachedOrder(self) -> None:
        """
        Every name is one of memcached's, in its order.
        """
        settings = ServerSettings(listen=("tcp:11211", "unix:m.sock:mode=600"))
        names = list(self.settings(Server(settings)))
        self.assertEqual(names, [name for name in MEMCACHED_SETTINGS if name in names])
        self.assertIn("tcpport", names)
        self.assertIn("umask", names)

    def test_listening(self) -> None:
        """
        C{tcpport}, C{inter} and C{tcp_backlog} come from the first TCP
        endpoint, C{domain_socket} and C{umask} from the first Unix one.
        """
        settings = ServerSettings(
            listen=(
                "unix:run/m\\:1.sock:mode=600",
                "tcp:11311:interface=127.0.0.1:backlog=1024",
                "tcp:11411",
            )
        )
        stats = self.settings(Server(settings))
        self.assertEqual(stats["tcpport"], "11311")
        self.assertEqual(stats["inter"], "127.0.0.1")
        self.assertEqual(stats["tcp_backlog"], "1024")
        self.assertEqual(stats["domain_socket"], "run/m:1.sock")
        self.assertEqual(stats["umask"], "600")
        self.assertEqual(stats["binding_protocol"], "auto-negotiate")
        self.assertEqual(stats["dump_enabled"], "yes")

    def test_noTCP(self) -> None:
        """
        Every name is there whatever the endpoints, as in memcached: without
        a TCP endpoint C{tcpport} is 0 (memcached's C{-p 0}), C{inter}
        C{NULL} and C{tcp_backlog} memcached's default; without a Unix one,
        C{domain_socket} is C{NULL}.  What a description leaves out is
        memcached's default: a 0700 mask and a backlog of 1024.
        """
        stats = self.settings(Server(ServerSettings(listen=("unix:m.sock",))))
        self.assertEqual(list(stats), MEMCACHED_SETTINGS)
        self.assertEqual(stats["tcpport"], "0")
        self.assertEqual(stats["inter"], "NULL")
        self.assertEqual(stats["tcp_backlog"], "1024")
        self.assertEqual(stats["umask"], "700")
        stats = self.settings(Server(ServerSettings(listen=("tcp:11211",))))
        self.assertEqual(list(stats), MEMCACHED_SETTINGS)
        self.assertEqual(stats["inter"], "NULL")
        self.assertEqual(stats["tcp_backlog"], "1024")
        self.assertEqual(stats["domain_socket"], "NULL")
        self.assertEqual(stats["umask"], "700")

    def test_changingSettings(self) -> None:
        """
        C{detail_enabled} and the crawler's settings follow the commands
        that change them.
        """
        server = Server()
        client = server.connect()
        client.send(b"stats detail on\r\nlru_crawler sleep 50\r\nlru_crawler tocrawl 7\r\n")
        stats = self.settings(server)
        self.assertEqual(
            (stats["detail_enabled"], stats["lru_crawler_sleep"], stats["lru_crawler_tocrawl"]),
            ("yes", "50", "7"),
        )
        client.send(b"lru_crawler disable\r\n")
        self.assertEqual(self.settings(server)["lru_crawler"], "no")

    def test_splitDescription(self) -> None:
        """
        Descriptions split as Twisted splits them: backslash quotes.
        """
        self.assertEqual(
            splitDescription("unix:/a\\:b:mode=600"), ("unix", ["/a:b"], {"mode": "600"})
        )
        self.assertEqual(listenFacts(["ssl:11212:privateKey=k.pem"]).tcpPort, 11212)
        self.assertEqual(listenFacts(["tcp:port=11213"]).tcpPort, 11213)

    def test_listenFactsReadOnce(self) -> None:
        """
        The settings read their listen facts when they are made, not at
        each C{stats settings}; a copy with other endpoints reads its own,
        and the facts play no part in equality.
        """
        settings = ServerSettings(listen=("tcp:11311", "unix:m.sock:mode=600"))
        self.assertEqual(settings.listening, listenFacts(settings.listen))
        self.assertEqual(settings, ServerSettings(listen=settings.listen))
        other = replace(settings, listen=("tcp:11411",))
        self.assertEqual(other.listening.tcpPort, 11411)
        server = Server(settings)
        self.patch(config, "listenFacts", lambda descriptions: self.fail("read again"))
        self.assertEqual(self.settings(server)["tcpport"], "11311")
        self.assertEqual(self.settings(server)["umask"], "600")


class GeneralStatsTests(SynchronousTestCase):
    """
    The crawler's and the logger's lines of C{stats}.
    """

    def test_inMemcachedOrder(self) -> None:
        """
        The new names are memcached's, in its order.
        """
        names = list(Server().stats())
        self.assertEqual(names, [name for name in MEMCACHED_GENERAL_STATS if name in names])
        for name in (
            "lru_crawler_running",
            "lru_crawler_starts",
            "log_worker_dropped",
            "log_worker_written",
            "log_watcher_skipped",
            "log_watcher_sent",
            "log_watchers",
        ):
            self.assertIn(name, names)

    def test_crawlerDisabled(self) -> None:
        """
        As in memcached, the crawler's lines are left out while it is
        disabled.
        """
        server = Server()
        server.connect().send(b"lru_crawler disable\r\n")
        self.assertNotIn("lru_crawler_starts", server.stats())


# ---------------------------------------------------------------------------
# watch


# memcached 1.6.18's lines for WATCH_STREAM (ts and gid removed), CFD
# standing for the client's descriptor.  A store logs the lookup it makes
# first.
MEMCACHED_LINES = b"""\
type=item_get key=foo status=not_found clsid=0 cfd=CFD size=0
type=item_store key=foo status=stored cmd=set ttl=100 clsid=1 cfd=CFD size=3
type=item_get key=a%2520b status=not_found clsid=0 cfd=CFD size=0
type=item_store key=a%2520b status=stored cmd=set ttl=0 clsid=1 cfd=CFD size=1
type=item_get key=foo status=found clsid=1 cfd=CFD size=3
type=item_get key=nokey status=not_found clsid=0 cfd=CFD size=0
type=item_get key=foo status=found clsid=1 cfd=CFD size=3
type=item_store key=foo status=not_stored cmd=add ttl=0 clsid=1 cfd=CFD size=1
type=item_get key=nope status=not_found clsid=0 cfd=CFD size=0
type=item_store key=nope status=not_stored cmd=replace ttl=0 clsid=1 cfd=CFD size=1
type=item_get key=foo status=found clsid=1 cfd=CFD size=3
type=item_store key=foo status=stored cmd=append ttl=100 clsid=1 cfd=CFD size=5
type=item_get key=foo status=found clsid=1 cfd=CFD size=5
type=item_store key=foo status=stored cmd=prepend ttl=100 clsid=1 cfd=CFD size=6
type=item_get key=foo status=found clsid=1 cfd=CFD size=6
type=item_store key=foo status=exists cmd=cas ttl=0 clsid=1 cfd=CFD size=1
type=item_get key=nope status=not_found clsid=0 cfd=CFD size=0
type=item_store key=nope status=not_found cmd=cas ttl=0 clsid=1 cfd=CFD size=1
type=item_get key=foo status=found clsid=1 cfd=CFD size=6
type=item_get key=foo status=found clsid=1 cfd=CFD size=6
type=item_get key=foo status=found clsid=1 cfd=CFD size=6
type=item_get key=foo status=found clsid=1 cfd=CFD size=6
type=item_get key=foo status=found clsid=1 cfd=CFD size=6
type=item_get key=n status=not_found clsid=0 cfd=CFD size=0
type=item_store key=n status=stored cmd=set ttl=0 clsid=1 cfd=CFD size=1
type=item_get key=n status=found clsid=1 cfd=CFD size=1
type=item_get key=n status=found clsid=1 cfd=CFD size=1
type=item_get key=n status=found clsid=1 cfd=CFD size=1
type=item_get key=missing status=not_found clsid=0 cfd=CFD size=0
type=item_get key=m status=not_found clsid=0 cfd=CFD size=0
type=item_store key=m status=stored cmd=set ttl=0 clsid=1 cfd=CFD size=2
""".splitlines()


class WatchTests(SynchronousTestCase):
    """
    C{watch}: C{OK}, then one line per event in memcached's formats.
    """

    def setUp(self) -> None:
        self.server = Server()
        self.server.clock.advance(0.25)

    def watcher(self, line: bytes = b"watch\r\n") -> Client:
        client = self.server.connect()
        self.assertEqual(client.send(line), b"OK\r\n")
        return client

    def test_formats(self) -> None:
        """
        Fetches and mutations are logged as memcached logs them, the lookup
        a store makes included, keys URI-encoded.
        """
        watcher = self.watcher(b"watch fetchers mutations\r\n")
        client = self.server.connect()
        client.send(WATCH_STREAM)
        cfd = b"%d" % (fileNumber(client),)
        self.assertEqual(
            watchBodies(b"OK\r\n" + watcher.received()),
            [line.replace(b"CFD", cfd) for line in MEMCACHED_LINES],
        )

    def test_timestampAndNumbering(self) -> None:
        """
        C{ts} is the clock's seconds and unpadded microseconds; C{gid}
        counts events from the one the watcher itself took.
        """
        self.server.clock.advance(0.000005)
        watcher = self.watcher()
        self.server.connect().send(b"get a\r\nget b\r\n")
        lines = watcher.received().split(b"\n")
        self.assertTrue(
            lines[0].startswith(b"ts=%d.250005 gid=2 type=item_get key=a " % (START,)), lines
        )
        self.assertTrue(
            lines[1].startswith(b"ts=%d.250005 gid=3 type=item_get key=b " % (START,)), lines
        )

    def test_fetchersByDefault(self) -> None:
        """
        C{watch} alone watches fetches only; C{watch mutations} only
        mutations.
        """
        fetches = self.watcher()
        mutations = self.watcher(b"watch mutations\r\n")
        self.server.connect().send(b"set k 0 0 1\r\nx\r\n")
        self.assertEqual(
            [line.split(b" ")[2] for line in fetches.received().splitlines()], [b"type=item_get"]
        )
        self.assertEqual(
            [line.split(b" ")[2] for line in mutations.received().splitlines()],
            [b"type=item_store"],
        )

    def test_evictions(self) -> None:
        """
        An eviction is logged with the item's fetched flag, remaining TTL,
        seconds since last access and value size.
        """
        # Room for one: the new item evicts the old.
        self.server.store.setMemoryLimit(itemCost(3, 100, True))
        client = self.server.connect()
        client.send(b"set old 0 100 100\r\n" + b"v" * 100 + b"\r\nget old\r\n")
        self.server.clock.advance(7)
        watcher = self.watcher(b"watch evictions\r\n")
        client.send(b"set new 0 0 100\r\n" + b"v" * 100 + b"\r\n")
        self.assertEqual(
            watchBodies(b"OK\r\n" + watcher.received()),
            [b"type=eviction key=old fetch=yes ttl=93 la=7 clsid=1 size=100"],
        )

    def test_tooLarge(self) -> None:
        """
        A value too large is logged before the lookup that drops the old
        item, as memcached does.
        """
        watcher = self.watcher(b"watch fetchers mutations\r\n")
        client = self.server.connect()
        client.send(b"set big 0 0 2000000\r\n")
        cfd = fileNumber(client)
        self.assertEqual(
            watchBodies(b"OK\r\n" + watcher.received()),
            [
                b"type=item_store key=big status=too_large cmd=set ttl=0 clsid=0 cfd=%d size=0"
                % (cfd,),
                b"type=item_get key=big status=not_found clsid=0 cfd=%d size=0" % (cfd,),
            ],
        )

    def test_expired(self) -> None:
        """
        A lookup that finds an expired item says so.
        """
        client = self.server.connect()
        client.send(b"set k 0 1 1\r\nx\r\n")
        self.server.clock.advance(2)
        watcher = self.watcher()
        client.send(b"get k\r\n")
        self.assertEqual(
            watchBodies(b"OK\r\n" + watcher.received()),
            [b"type=item_get key=k status=expired clsid=0 cfd=%d size=0" % (fileNumber(client),)],
        )

    def test_watcherReadsNoMoreCommands(self) -> None:
        """
        A watching connection ignores whatever it sends next, pipelined or
        not, and gets no idle timeout.
        """
        server = Server(ServerSettings(idleTimeout=10))
        watcher = server.connect()
        self.assertEqual(watcher.send(b"watch\r\nversion\r\n"), b"OK\r\n")
        self.assertEqual(watcher.send(b"version\r\n"), b"")
        server.clock.advance(60)
        self.assertFalse(watcher.closed)
        stats = parseStats(server.connect().send(b"stats conns\r\n"))
        self.assertEqual(stats["%d:state" % fileNumber(watcher)], "conn_watch")

    def test_pipelinedBefore(self) -> None:
        """
        As in memcached, replies still pending refuse a C{watch}.
        """
        client = self.server.connect()
        self.assertEqual(
            client.send(b"version\r\nwatch\r\nversion\r\n"),
            b"VERSION 1.6.18\r\nERROR cannot pipeline other commands before watch\r\n"
            b"VERSION 1.6.18\r\n",
        )

    def test_badEvents(self) -> None:
        """
        An event class memcached does not know gets C{ERROR}, which
        C{noreply} silences; memcached's other classes are accepted.
        """
        client = self.server.connect()
        self.assertEqual(client.send(b"watch bogus\r\n"), b"ERROR\r\n")
        self.assertEqual(client.send(b"watch fetchers bogus\r\n"), b"ERROR\r\n")
        self.assertEqual(client.send(b"watch fetchers noreply\r\n"), b"")
        self.assertEqual(client.send(b"watch sysevents connevents rawcmds\r\n"), b"OK\r\n")

    def test_tooMany(self) -> None:
        """
        memcached's limit is 20 watchers.
        """
        for _ in range(watch.WATCHER_LIMIT):
            self.watcher()
        self.assertEqual(
            self.server.connect().send(b"watch\r\n"),
            b"WATCHER_TOO_MANY log watcher limit reached\r\n",
        )

    def test_slowWatcherSkips(self) -> None:
        """
        Lines for a watcher whose transport is full are dropped and
        counted; the next line it gets says how many it missed.
        """
        watcher = self.server.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = PausingTransport()
        watcher.makeConnection(transport)
        watcher.dataReceived(b"watch\r\n")
        client = self.server.connect()
        client.send(b"get a\r\n" * 10)
        sent = transport.drain()
        self.assertEqual(sent.count(b"type=item_get"), 3)
        client.send(b"get b\r\n")
        self.assertTrue(transport.value().startswith(b"skipped=7\nts="), transport.value())
        stats = self.server.stats()
        self.assertEqual(
            (stats["log_watcher_sent"], stats["log_watcher_skipped"], stats["log_worker_written"]),
            ("4", "7", "11"),
        )
        self.assertEqual(stats["log_watchers"], "1")

    def test_leavingWatcherCostsNothing(self) -> None:
        """
        When the last watcher goes, the store's observer and the cache's
        C{watching} are L{None} again, and nothing more is logged.
        """
        watcher = self.watcher()
        self.assertIsNotNone(self.server.store.observer)
        watcher.lose()
        self.assertIsNone(self.server.store.observer)
        self.assertIsNone(self.server.factory.cache.watching)
        self.server.connect().send(b"get a\r\n")
        self.assertEqual(self.server.stats()["log_worker_written"], "0")

    def test_drainClosesWatchers(self) -> None:
        """
        A graceful shutdown closes a watcher at once: it has no request
        under way.
        """
        watcher = self.watcher()
        self.server.factory.drain(5)
        self.assertTrue(watcher.closed)
        self.assertIsNone(watcher.transport.producer)


# ---------------------------------------------------------------------------
# lru_crawler


class MetadumpTests(SynchronousTestCase):
    """
    C{lru_crawler metadump}: memcached's lines, streamed.
    """

    def setUp(self) -> None:
        self.server = Server()
        self.client = self.server.connect()

    def dump(self, spec: bytes = b"all", client: Client | None = None) -> bytes:
        client = client or self.client
        reply = client.send(b"lru_crawler metadump " + spec + b"\r\n")
        while self.server.clock.getDelayedCalls() and not reply.endswith(b"END\r\n"):
            self.server.clock.advance(0)
            reply += client.received()
        return reply

    def test_format(self) -> None:
        """
        One line per live item, least recently used first, keys URI-encoded,
        then C{END}; C{exp} and C{la} are unix times.
        """
        self.client.send(
            b"set a%20b 0 0 1\r\nx\r\nset k\xc3\xa9y 3 1000 5\r\nhello\r\nget k\xc3\xa9y\r\n"
        )
        self.assertEqual(
            self.dump(),
            b"key=a%%2520b exp=-1 la=%d cas=1 fetch=no cls=1 size=65\n"
            b"key=k%%C3%%A9y exp=%d la=%d cas=2 fetch=yes cls=1 size=72\n"
            b"END\r\n" % (START, START + 1000, START),
        )

    def test_empty(self) -> None:
        """
        An empty cache dumps only C{END}.
        """
        self.assertEqual(self.dump(), b"END\r\n")
        self.assertEqual(self.dump(b"hash"), b"END\r\n")

    def test_classes(self) -> None:
        """
        myproto's one class is 1: a list with it dumps everything, one
        without it nothing; a bad id is C{BADCLASS}; a list of no ids is
        C{NOTSTARTED}.
        """
        self.client.send(b"set k 0 0 1\r\nx\r\n")
        self.assertIn(b"key=k ", self.dump(b"1"))
        self.assertIn(b"key=k ", self.dump(b"2,1"))
        self.assertEqual(self.dump(b"2,63"), b"END\r\n")
        for bad in (b"0", b"64", b"x", b"1,x", b"-1"):
            self.assertEqual(self.dump(bad), b"BADCLASS invalid class id\r\n")
        self.assertEqual(self.dump(b","), b"NOTSTARTED no items to crawl\r\n")

    def test_skipsExpiredAndDeleted(self) -> None:
        """
        Items expired or deleted before their turn are left out, and the
        dump does not count as fetching anything.
        """
        self.client.send(b"set a 0 1 1\r\nx\r\nset b 0 0 1\r\nx\r\nset c 0 0 1\r\nx\r\n")
        self.server.clock.advance(2)
        self.client.send(b"delete b\r\n")
        self.assertEqual(self.dump().count(b"\n"), 1 + 1)
        self.assertIn(b"key=c exp=-1 la=%d cas=3 fetch=no" % (START,), self.dump())

    def test_streams(self) -> None:
        """
        A large dump is written a batch per reactor turn (one write each),
        reading no command meanwhile; the command sent behind it is answered
        after C{END}.
        """
        items = crawler.DUMP_BATCH * 2 + 5
        self.client.send(b"".join(b"set k%d 0 0 1 noreply\r\nx\r\n" % (i,) for i in range(items)))
        writes: list[bytes] = []
        write = self.client.transport.write

        def recordingWrite(data: bytes) -> None:
            writes.append(data)
            write(data)

        self.client.transport.write = recordingWrite  # type: ignore[method-assign]
        first = self.client.send(b"lru_crawler metadump all\r\nversion\r\n")
        self.assertEqual(first, b"")
        self.assertEqual(self.client.transport.producerState, "paused")
        busy = self.server.connect()
        self.assertEqual(
            busy.send(b"lru_crawler metadump all\r\nlru_crawler crawl all\r\n"),
            b"BUSY currently processing crawler request\r\n" * 2,
        )
        self.assertEqual(
            parseStats(busy.send(b"stats conns\r\n"))["%d:state" % fileNumber(self.client)],
            "conn_watch",
        )
        self.server.clock.advance(0)
        self.assertEqual(
            [data.count(b"key=") for data in writes[:3]], [crawler.DUMP_BATCH] * 2 + [5]
        )
        rest = self.client.received()
        self.assertEqual(rest.count(b"key="), items)
        self.assertTrue(rest.endswith(b"\nEND\r\nVERSION 1.6.18\r\n"), rest[-100:])
        self.assertEqual(self.client.transport.producerState, "producing")
        self.assertEqual(self.client.send(b"version\r\n"), b"VERSION 1.6.18\r\n")
        stats = self.server.stats()
        self.assertEqual((stats["lru_crawler_running"], stats["lru_crawler_starts"]), ("0", "1"))

    def test_pausedByTransport(self) -> None:
        """
        A client that does not read pauses the dump, which goes on when its
        transport has drained.
        """
        self.client.send(b"".join(b"set k%d 0 0 1 noreply\r\nx\r\n" % (i,) for i in range(50)))
        protocol = self.server.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = PausingTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"lru_crawler metadump all\r\n")
        self.server.clock.advance(0)
        self.assertEqual(self.server.clock.getDelayedCalls(), [])
        received = transport.drain()
        while not received.endswith(b"END\r\n"):
            self.server.clock.advance(0)
            received += transport.drain()
        self.assertEqual(received.count(b"key="), 50)

    def test_lostMidway(self) -> None:
        """
        A client that goes away mid-dump frees the crawler.
        """
        self.client.send(b"".join(b"set k%d 0 0 1 noreply\r\nx\r\n" % (i,) for i in range(3000)))
        self.client.send(b"lru_crawler metadump all\r\n")
        self.server.clock.advance(0)
        self.client.lose()
        self.assertEqual(self.server.clock.getDelayedCalls(), [])
        self.assertEqual(self.dump(client=self.server.connect()).count(b"key="), 3000)

    def test_drainWaitsForTheDump(self) -> None:
        """
        A graceful shutdown lets a dump under way finish, then closes.
        """
        self.client.send(b"".join(b"set k%d 0 0 1 noreply\r\nx\r\n" % (i,) for i in range(3000)))
        self.client.send(b"lru_crawler metadump all\r\n")
        self.server.factory.drain(5)
        self.assertFalse(self.client.closed)
        self.server.clock.advance(0)
        self.assertTrue(self.client.received().endswith(b"END\r\n"))
        self.assertTrue(self.client.closed)

    def test_pipelinedBefore(self) -> None:
        """
        As in memcached, replies still pending refuse a dump.
        """
        self.assertEqual(
            self.client.send(b"version\r\nlru_crawler metadump all\r\n"),
            b"VERSION 1.6.18\r\nERROR cannot pipeline other commands before metadump\r\n",
        )


class LruCrawlerTests(SynchronousTestCase):
    """
    C{lru_crawler}'s other subcommands, answered as memcached answers.
    """

    def setUp(self) -> None:
        self.server = Server()
        self.client = self.server.connect()

    def test_replies(self) -> None:
        """
        memcached 1.6.18's replies, captured.
        """
        for line, reply in [
            (b"lru_crawler", b"ERROR"),
            (b"lru_crawler metadump", b"ERROR"),
            (b"lru_crawler foo", b"ERROR"),
            (b"lru_crawler foo bar", b"ERROR"),
            (b"lru_crawler metadump all extra", b"ERROR"),
            (b"lru_crawler metadump all noreply", b"ERROR"),
            (b"lru_crawler mgdump all", b"ERROR"),
            (b"lru_crawler crawl all", b"OK"),
            (b"lru_crawler crawl 5", b"OK"),
            (b"lru_crawler crawl 0", b"BADCLASS invalid class id"),
            (b"lru_crawler crawl hash", b"ERROR an unknown error happened"),
            (b"lru_crawler crawl ,", b"NOTSTARTED no items to crawl"),
            (b"lru_crawler tocrawl 10", b"OK"),
            (b"lru_crawler tocrawl x", b"CLIENT_ERROR bad command line format"),
            (b"lru_crawler tocrawl -1", b"CLIENT_ERROR bad command line format"),
            (b"lru_crawler sleep 10", b"OK"),
            (b"lru_crawler sleep 2000000", b"CLIENT_ERROR sleep must be one second or less"),
            (b"lru_crawler enable", b"ERROR failed to start lru crawler thread"),
            (b"lru_crawler disable", b"OK"),
            (b"lru_crawler disable", b"OK"),
            (b"lru_crawler metadump all", b"CLIENT_ERROR lru crawler disabled"),
            (b"lru_crawler crawl all", b"CLIENT_ERROR lru crawler disabled"),
            (b"lru_crawler enable", b"OK"),
            (b"lru_crawler HTTP/1.1", b"ERROR"),
        ]:
            self.assertEqual(self.client.send(line + b"\r\n"), reply + b"\r\n", line)

    def test_crawlReclaims(self) -> None:
        """
        C{crawl} reclaims expired items at once.
        """
        self.client.send(b"set a 0 1 1\r\nx\r\nset b 0 0 1\r\nx\r\n")
        self.server.clock.advance(2)
        self.assertEqual(self.client.send(b"lru_crawler crawl 1\r\n"), b"OK\r\n")
        self.assertEqual(self.server.stats()["curr_items"], "1")


# ---------------------------------------------------------------------------
# metrics


def samples(exposition: str) -> dict[str, float]:
    """
    @return: each sample line of a Prometheus exposition, name and labels
        as written, with its value.
    """
    values = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


class MetricsTests(SynchronousTestCase):
    """
    The exposition: memcached_exporter's names, from the same numbers as
    C{stats}, and per-command latency histograms.
    """

    def setUp(self) -> None:
        self.server = Server()
        self.cache = self.server.factory.cache
        metrics.enableTimings(self.cache)

    def test_countersMatchOperations(self) -> None:
        """
        After known traffic, the exporter's counters say what happened.
        """
        client = self.server.connect()
        client.send(
            b"set a 0 0 1\r\nx\r\nset b 0 0 1\r\nx\r\nget a b c\r\ndelete c\r\n"
            b"incr a 1\r\ncas a 0 0 1 99\r\ny\r\ntouch b 10\r\nflush_all\r\n"
        )
        values = samples(metrics.render(self.cache))
        expected = {
            'memcached_commands_total{command="get",status="hit"}': 2,
            'memcached_commands_total{command="get",status="miss"}': 1,
            'memcached_commands_total{command="delete",status="miss"}': 1,
            'memcached_commands_total{command="incr",status="miss"}': 0,
            'memcached_commands_total{command="cas",status="badval"}': 1,
            'memcached_commands_total{command="touch",status="hit"}': 1,
            'memcached_commands_total{command="flush",status="hit"}': 1,
            'memcached_commands_total{command="set",status="hit"}': 2,
            "memcached_current_connections": 1,
            "memcached_connections_total": 1,
            "memcached_current_items": 0,
            "memcached_items_total": 2,
            "memcached_limit_bytes": 64 * 1024 * 1024,
            "memcached_max_connections": 1024,
            "memcached_up": 1,
            'memcached_version{version="1.6.18"}': 1,
            "memcached_read_bytes_total": self.cache.stats.bytesRead,
            "memcached_written_bytes_total": self.cache.stats.bytesWritten,
        }
        for name, value in expected.items():
            self.assertEqual(values[name], value, name)
        self.assertIn("memcached_uptime_seconds", values)
        self.assertIn("memcached_items_evicted_total", values)
        self.assertIn("memcached_current_bytes", values)

    def test_histograms(self) -> None:
        """
        Each command is observed once, under its verb; buckets are
        cumulative and end at C{+Inf} with the count.
        """
        self.server.connect().send(
            b"set a 0 0 1\r\nx\r\nget a\r\nget a\r\ngets a\r\nincr a 1\r\nmn\r\n"
        )
        values = samples(metrics.render(self.cache))
        name = "myproto_command_duration_seconds"
        for command, count in [("set", 1), ("get", 2), ("gets", 1), ("incr", 1), ("mn", 1)]:
            self.assertEqual(values['%s_count{command="%s"}' % (name, command)], count)
            self.assertEqual(values['%s_bucket{command="%s",le="+Inf"}' % (name, command)], count)
            buckets = [
                values['%s_bucket{command="%s",le="%s"}' % (name, command, metrics._number(bound))]
                for bound in metrics.BUCKETS
            ]
            self.assertEqual(buckets, sorted(buckets))
        self.assertIn(
            "# TYPE myproto_command_duration_seconds histogram", metrics.render(self.cache)
        )

    def test_errorsAreTimed(self) -> None:
        """
        A command that fails is timed too.
        """
        reply = self.server.connect().send(b"set a 0 0 1\r\nx\r\nincr a 1\r\n")
        self.assertTrue(reply.endswith(b"non-numeric value\r\n"), reply)
        self.assertEqual(sum(self.cache.timings.histograms["incr"].counts), 1)

    def test_noTimingsWithoutEndpoint(self) -> None:
        """
        Without a metrics endpoint nothing is timed.
        """
        server = Server()
        server.connect().send(b"get a\r\n")
        self.assertIsNone(server.factory.cache.timings)
        self.assertNotIn("myproto_command_duration_seconds", metrics.render(server.factory.cache))

    def test_wiring(self) -> None:
        """
        C{--metrics} adds a service named C{metrics} listening on the
        endpoint, and turns timing on.
        """
        reactor = MemoryReactorClock()
        options = tap.Options()
        options.parseOptions(["--metrics", "tcp:9150:interface=127.0.0.1"])
        top = tap.makeService(options, reactor)
        top.privilegedStartService()
        top.startService()
        service = top.getServiceNamed(METRICS_NAME)
        self.assertIsInstance(service.factory, metrics.MetricsSite)  # type: ignore[attr-defined]
        self.assertEqual(sorted(port for port, *_ in reactor.tcpServers), [9150, 11211])
        self.assertIsNotNone(top.getServiceNamed(DRAIN_NAME).factory.cache.timings)  # type: ignore[attr-defined]
        top.stopService()


class MetricsScrapeTests(TestCase):
    """
    A real scrape over loopback HTTP.
    """

    def test_scrape(self) -> Deferred[None]:
        """
        C{GET /metrics} answers the exposition with Prometheus' content
        type; other paths are not found.
        """
        return Deferred.fromCoroutine(self._scrape())

    async def _scrape(self) -> None:
        from twisted.internet import reactor

        server = Server()
        site = metrics.metricsSite(server.factory.cache)
        server.connect().send(b"set a 0 0 1\r\nx\r\nget a\r\n")
        port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(site)
        self.addCleanup(port.stopListening)
        agent = Agent(reactor)
        url = b"http://127.0.0.1:%d/metrics" % (port.getHost().port,)
        response = await agent.request(b"GET", url)
        body = await readBody(response)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [metrics.CONTENT_TYPE])
        values = samples(body.decode("utf-8"))
        self.assertEqual(values['memcached_commands_total{command="get",status="hit"}'], 1)
        self.assertEqual(values['myproto_command_duration_seconds_count{command="get"}'], 1)
        missing = await agent.request(b"GET", url.replace(b"/metrics", b"/other"))
        await readBody(missing)
        self.assertEqual(missing.code, 404)


# ---------------------------------------------------------------------------
# Log events and the hot path's cost.


class LogEventTests(SynchronousTestCase):
    """
    Connections and evictions are logged; requests are not.
    """

    def test_connections(self) -> None:
        """
        At verbosity 2 (C{-vv}), opening and closing a connection are each
        one info event naming the peer; the commands in between log nothing.
        At the default verbosity connections are not logged.
        """
        quiet = Server()
        with capturedLogs() as events:
            quiet.connect().lose()
        self.assertEqual(list(events), [])
        server = Server(ServerSettings(verbosity=2))
        with capturedLogs() as events:
            client = server.connect()
            client.send(b"set a 0 0 1\r\nx\r\nget a\r\nget b\r\n" * 10)
            server.clock.advance(2.5)
            client.lose()
        self.assertEqual([event["log_level"] for event in events], [LogLevel.info] * 2)
        self.assertIn("127.0.0.1", repr(events[0]["peer"]))
        self.assertEqual(events[1]["seconds"], 2.5)

    def test_evictionSummary(self) -> None:
        """
        The summary logs the evictions since the last one, and nothing when
        there were none.
        """
        clock = Clock()
        store = MemoryStore(clock, maxBytes=itemCost(2, 100, False))
        summary = EvictionSummary(store)
        for index in range(5):
            store.put(b"k%d" % (index,), b"v" * 100, 0, 0.0)
        with capturedLogs() as events:
            summary.report()
            summary.report()
        self.assertEqual(len(events), 1)
        self.assertEqual((events[0]["count"], events[0]["unfetched"]), (4, 4))

    def test_evictionSummaryAfterReset(self) -> None:
        """
        After C{stats reset} zeroes the counters, evictions count from zero.
        """
        clock = Clock()
        store = MemoryStore(clock, maxBytes=itemCost(2, 100, False))
        summary = EvictionSummary(store)
        for index in range(5):
            store.put(b"k%d" % (index,), b"v" * 100, 0, 0.0)
        summary.report()
        store.stats.reset()
        store.put(b"k9", b"v" * 100, 0, 0.0)
        with capturedLogs() as events:
            summary.report()
        self.assertEqual(events[0]["count"], 1)


class PausedPipelineTests(SynchronousTestCase):
    """
    Commands pipelined behind replies that filled the transport are kept
    for when it drains, whatever their length.
    """

    def test_keptWhilePaused(self) -> None:
        """
        Replies of more than the batch limit pause the connection mid-read;
        the sets behind them (more than a command line's length in all) are
        answered once the transport drains, not taken for a line too long.
        """
        server = Server()
        server.connect().send(b"set big 0 0 2000\r\n" + b"x" * 2000 + b"\r\n")
        protocol = server.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
        transport = PausingTransport()
        transport.bufferSize = 65536
        protocol.makeConnection(transport)
        protocol.dataReceived(b"get big\r\n" * 33 + b"set k 0 0 1\r\nx\r\n" * 300)
        self.assertFalse(transport.disconnecting)
        received = transport.drain()
        while transport.full:
            received += transport.drain()
        received += transport.drain()
        self.assertEqual(received.count(b"STORED\r\n"), 300)
        protocol.connectionLost(Failure(ConnectionDone()))
