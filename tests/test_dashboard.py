"""
The dashboard (L{myproto.dashboard}, L{myproto.figures},
L{myproto.browse}): each API route's answers, checked against C{stats} and
the cache; parameters refused with a 400; values hidden unless asked for;
HTTP Basic authentication with C{-Y}; loopback by default; a real request
over loopback, over plain TCP and over mutual TLS.
"""

from __future__ import annotations

import json
from base64 import b64encode
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.ssl import Certificate, PrivateCertificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, ResponseFailed, ResponseNeverReceived, readBody
from twisted.web.iweb import IPolicyForHTTPS
from twisted.web.resource import getChildForRequest
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer

from myproto import browse, dashboard, figures, tap
from myproto.commands.stats import generalStats
from myproto.config import ServerSettings
from myproto.metrics import MetricsSite
from myproto.service import METRICS_NAME
from myproto.store import SLAB_SIZES, slabClass
from tests.helpers import Server, parseStats, selfSignedFiles

USERS = ((b"alice", b"s3cret"), (b"bob", b"hunter2"))


class Response:
    """
    What a resource answered to a L{DummyRequest}.
    """

    def __init__(self, request: DummyRequest) -> None:
        self.code = request.responseCode or 200
        self.headers = request.responseHeaders
        self.body = b"".join(request.written)
        self.finished = request.finished

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: bytes) -> bytes | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


class Turns:
    """
    A reactor whose C{callLater(0, ...)} calls wait until L{turn}, one per
    turn, as the reactor runs one between two reads; the rest goes to a
    L{Clock}.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pending: list[Any] = []

    def seconds(self) -> float:
        return self.clock.seconds()

    def callLater(self, delay: float, function: Any, *args: Any, **kwargs: Any) -> Any:
        if delay:
            return self.clock.callLater(delay, function, *args, **kwargs)
        self.pending.append(lambda: function(*args, **kwargs))
        return None

    def turn(self) -> bool:
        """
        Run the oldest call due now.

        @return: whether there was one.
        """
        if not self.pending:
            return False
        self.pending.pop(0)()
        return True


class Page:
    """
    A server (L{tests.helpers.Server}) with its dashboard, on one L{Clock}
    that the sampler runs on too; the walks take a step per L{Turns.turn}.
    """

    def __init__(self, settings: ServerSettings | None = None) -> None:
        settings = settings or ServerSettings()
        self.server = Server(settings)
        self.clock = self.server.clock
        self.cache = self.server.factory.cache
        self.turns = Turns(self.clock)
        self.dashboard = dashboard.Dashboard(self.cache, self.turns, settings.dashboardValues)
        self.site = dashboard.dashboardSite(self.dashboard, settings.credentials)

    def get(
        self, path: bytes, method: bytes = b"GET", headers: dict[bytes, bytes] | None = None,
        run: bool = True, **args: bytes | list[bytes],
    ) -> Response:
        """
        Ask the site, running the walks to their end (unless C{run} is
        false).
        """
        request = DummyRequest(path.lstrip(b"/").split(b"/"))
        request.method = method
        for name, value in args.items():
            request.args[name.encode("ascii")] = value if isinstance(value, list) else [value]
        for name, value in (headers or {}).items():
            request.requestHeaders.setRawHeaders(name, [value])
        resource = getChildForRequest(self.site.resource, request)
        result = resource.render(request)
        if isinstance(result, bytes):
            request.write(result)
            request.finish()
        if run:
            self.runWalks()
        return Response(request)

    def runWalks(self, limit: int = 10000) -> int:
        """
        Turn the clock until no walk is left to step.

        @return: how many turns it took.
        """
        turns = 0
        while self.turns.turn():
            turns += 1
            if turns > limit:
                raise AssertionError("the walks never end")
        return turns

    def fill(self, keys: list[bytes], value: bytes = b"v", exptime: int = 0, flags: int = 0) -> None:
        client = self.server.connect()
        data = b"".join(
            b"set %s %d %d %d noreply\r\n%s\r\n" % (key, flags, exptime, len(value), value)
            for key in keys
        )
        client.send(data)
        client.lose()


def basic(user: bytes, password: bytes) -> dict[bytes, bytes]:
    return {b"authorization": b"Basic " + b64encode(user + b":" + password)}


class OverviewTests(SynchronousTestCase):
    """
    C{/api/overview}: the figures of C{stats}, with history.
    """

    def test_statsEqualStats(self) -> None:
        """
        C{stats} and C{settings} hold every name C{stats} and C{stats
        settings} report, with the same values, asked with the same client
        open.
        """
        page = Page()
        page.fill([b"a", b"b"])
        client = page.server.connect()
        client.send(b"get a b c\r\n")
        stats = parseStats(client.send(b"stats\r\n"))
        settings = parseStats(client.send(b"stats settings\r\n"))
        overview = page.get(b"/api/overview").json()
        # What changes by the asking itself: the process's CPU time, and
        # the bytes of the stats replies.
        for name in ("rusage_user", "rusage_system", "bytes_read", "bytes_written"):
            del stats[name], overview["stats"][name]
        self.assertEqual({name: str(value) for name, value in overview["stats"].items()}, stats)
        self.assertEqual(
            {name: str(value) for name, value in overview["settings"].items()}, settings
        )
        self.assertEqual(overview["stats"]["get_hits"], 2)
        self.assertEqual(overview["stats"]["curr_items"], 2)
        self.assertIsInstance(overview["stats"]["bytes"], int)
        self.assertEqual(overview["server"]["version"], "1.6.18")
        self.assertFalse(overview["values"])

    def test_historyAndRates(self) -> None:
        """
        Sampled once a second, the history gives each second's commands by
        kind and its get hit ratio; C{history} bounds how many seconds.
        """
        page = Page()
        page.dashboard.start()
        self.addCleanup(page.dashboard.stop)
        client = page.server.connect()
        client.send(b"set a 0 0 1\r\n1\r\n")
        page.clock.advance(1)
        client.send(b"get a\r\nget a\r\nget a\r\nget b\r\ndelete b\r\nincr a 1\r\n")
        page.clock.advance(1)
        client.send(b"touch a 10\r\n")
        page.clock.advance(1)
        history = page.get(b"/api/overview", history=b"300").json()["history"]
        self.assertEqual(history["rates"]["set"], [1, 0, 0])
        self.assertEqual(history["rates"]["get"], [0, 4, 0])
        self.assertEqual(history["rates"]["delete"], [0, 1, 0])
        self.assertEqual(history["rates"]["incr"], [0, 1, 0])
        self.assertEqual(history["rates"]["touch"], [0, 0, 1])
        self.assertEqual(history["hitRatio"], [None, 0.75, None])
        self.assertEqual(history["items"], [1, 1, 1])
        self.assertEqual(len(history["t"]), 3)
        last = page.get(b"/api/overview", history=b"1").json()["history"]
        self.assertEqual(last["rates"]["touch"], [1])
        none = page.get(b"/api/overview", history=b"0").json()["history"]
        self.assertEqual(none["t"], [])

    def test_ratios(self) -> None:
        """
        Hit ratios cover the last one and five minutes; a kind without
        commands has none; C{stats reset} does not make them negative.
        """
        page = Page()
        page.dashboard.start()
        self.addCleanup(page.dashboard.stop)
        client = page.server.connect()
        client.send(b"set a 0 0 1\r\n1\r\nget a\r\nget b\r\n")
        page.clock.advance(120)
        client.send(b"get a\r\nget a\r\nget a\r\ncas a 0 0 1 999\r\nx\r\nincr a 1\r\ndecr z 1\r\n")
        ratios = page.get(b"/api/overview").json()["ratios"]
        self.assertEqual(ratios["get"], {"60s": 1.0, "300s": 0.8})
        self.assertEqual(ratios["touch"], {"60s": None, "300s": None})
        self.assertEqual(ratios["cas"], {"60s": 0.0, "300s": 0.0})
        self.assertEqual(ratios["incr/decr"], {"60s": 0.5, "300s": 0.5})
        client.send(b"stats reset\r\n")
        client.send(b"get a\r\n")
        ratios = page.get(b"/api/overview").json()["ratios"]
        self.assertEqual(ratios["get"]["60s"], 1.0)

    def test_latency(self) -> None:
        """
        Latency percentiles come from the metrics histograms, over the last
        minute; the totals since the start are kept.
        """
        page = Page()
        page.dashboard.start()
        self.addCleanup(page.dashboard.stop)
        timings = page.cache.timings
        for _ in range(98):
            timings.observe("get", 0.00002)
        timings.observe("get", 0.003)
        timings.observe("get", 2.0)
        latency = page.get(b"/api/overview").json()["latency"]
        self.assertEqual(
            latency,
            [{"command": "get", "count": 100, "total": 100, "mean": round(2.00496 / 100 * 1000, 4),
              "p50": 0.025, "p90": 0.025, "p99": 5.0}],
        )
        for _ in range(61):
            page.clock.advance(1)
        timings.observe("get", 0.0002)
        [row] = page.get(b"/api/overview").json()["latency"]
        self.assertEqual((row["count"], row["total"], row["p99"]), (1, 101, 0.25))
        for _ in range(61):
            page.clock.advance(1)
        [row] = page.get(b"/api/overview").json()["latency"]
        self.assertEqual((row["count"], row["total"]), (0, 101))
        self.assertNotIn("p50", row)

    def test_percentilesAboveEveryBound(self) -> None:
        """
        A percentile in the bucket above every bound has no number.
        """
        counts = [0] * (len(figures.BUCKETS) + 1)
        counts[-1] = 3
        self.assertEqual(figures.percentiles(counts), {"p50": None, "p90": None, "p99": None})

    def test_sizes(self) -> None:
        """
        Items are counted per slab class, by a walk that takes one batch per
        reactor turn, started by an overview when the last count is more
        than a few seconds old.
        """
        page = Page()
        page.fill([b"small%d" % (i,) for i in range(6000)])
        page.fill([b"big%d" % (i,) for i in range(10)], value=b"x" * 1000)
        self.assertIsNone(page.get(b"/api/overview", run=False).json()["sizes"]["classes"])
        self.assertEqual(page.runWalks(), 1 + -(-6010 // figures.SIZE_BATCH) + 1)
        classes = page.get(b"/api/overview").json()["sizes"]["classes"]
        small = sum(page.cache.store.find(b"small%d" % (i,)).size for i in range(6000))
        big = page.cache.store.find(b"big1").size
        bigClass = slabClass(big)
        self.assertEqual(
            classes,
            [
                {"class": 1, "chunk": 96, "items": 6000, "bytes": small},
                {"class": bigClass, "chunk": SLAB_SIZES[bigClass - 1], "items": 10, "bytes": 10 * big},
            ],
        )
        page.fill([b"more"])
        page.clock.advance(dashboard.SIZES_INTERVAL - 1)
        page.get(b"/api/overview")
        self.assertEqual(page.get(b"/api/overview").json()["sizes"]["classes"][0]["items"], 6000)
        page.clock.advance(1)
        page.get(b"/api/overview")
        self.assertEqual(page.get(b"/api/overview").json()["sizes"]["classes"][0]["items"], 6001)

    def test_prefixes(self) -> None:
        """
        With C{stats detail on}, the busiest prefixes and their counts.
        """
        page = Page()
        self.assertEqual(page.get(b"/api/overview").json()["prefixes"], {"enabled": False, "top": []})
        client = page.server.connect()
        client.send(b"stats detail on\r\nset u:1 0 0 1\r\nx\r\nget u:1\r\nget u:2\r\nget s:1\r\ndelete u:1\r\n")
        self.assertEqual(
            page.get(b"/api/overview").json()["prefixes"],
            {
                "enabled": True,
                "top": [
                    {"prefix": "u", "get": 2, "hit": 1, "set": 1, "delete": 1},
                    {"prefix": "s", "get": 1, "hit": 0, "set": 0, "delete": 0},
                ],
            },
        )


class KeysTests(SynchronousTestCase):
    """
    C{/api/keys}: the key browser.
    """

    def setUp(self) -> None:
        self.page = Page()
        self.page.fill([b"user:%03d" % (i,) for i in range(250)], flags=7, exptime=100)
        self.page.fill([b"session:%d" % (i,) for i in range(30)])

    def test_prefixPaged(self) -> None:
        """
        A prefix search lists the matching keys sorted, 100 a page, each with
        the item's size, flags, TTL left and last access.
        """
        first = self.page.get(b"/api/keys", q=b"user:", mode=b"prefix").json()
        self.assertEqual(
            (first["matches"], first["pages"], first["page"], first["examined"]), (250, 3, 0, 280)
        )
        self.assertEqual([row["text"] for row in first["rows"]], ["user:%03d" % (i,) for i in range(100)])
        item = self.page.cache.store.find(b"user:000")
        self.assertEqual(
            first["rows"][0],
            {"key": "user%3A000", "text": "user:000", "size": item.size, "length": 1, "flags": 7,
             "ttl": 100, "idle": 0, "cas": item.cas, "fetched": False},
        )
        self.page.clock.advance(30)
        last = self.page.get(b"/api/keys", q=b"user:", page=b"2").json()
        self.assertEqual([row["text"] for row in last["rows"]], ["user:%03d" % (i,) for i in range(200, 250)])
        self.assertEqual((last["rows"][0]["ttl"], last["rows"][0]["idle"]), (70, 30))
        beyond = self.page.get(b"/api/keys", q=b"user:", page=b"9").json()
        self.assertEqual(beyond["rows"], [])

    def test_substringAndEverything(self) -> None:
        """
        A substring search matches anywhere in the key; an empty query
        matches every key.
        """
        found = self.page.get(b"/api/keys", q=b"on:2", mode=b"substring").json()
        self.assertEqual(
            [row["text"] for row in found["rows"]],
            ["session:2", "session:20", "session:21", "session:22", "session:23", "session:24",
             "session:25", "session:26", "session:27", "session:28", "session:29"],
        )
        self.assertEqual(self.page.get(b"/api/keys").json()["matches"], 280)
        self.assertEqual(self.page.get(b"/api/keys", q=b"nothing").json()["rows"], [])

    def test_readOnly(self) -> None:
        """
        Browsing changes nothing: no counter of C{stats} moves (no crawl is
        counted), nothing is marked fetched, and the LRU order is kept.
        """
        before = self.page.server.stats()
        order = self.page.cache.store.keys()
        self.page.get(b"/api/keys", q=b"user")
        self.page.get(b"/api/keys", q=b"user", page=b"1")
        after = self.page.server.stats()
        for name in ("rusage_user", "rusage_system", "total_connections", "bytes_read", "bytes_written"):
            del before[name], after[name]
        self.assertEqual(before, after)
        self.assertEqual(self.page.cache.store.keys(), order)
        self.assertFalse(any(item.fetched for item in self.page.cache.store.items()))

    def test_goneItemsLeftOut(self) -> None:
        """
        Expired items are not found; items deleted after the walk leave
        their page.
        """
        self.page.clock.advance(101)
        self.assertEqual(self.page.get(b"/api/keys", q=b"user").json()["matches"], 0)
        client = self.page.server.connect()
        client.send(b"delete session:1\r\n")
        found = self.page.get(b"/api/keys", q=b"session:1").json()
        self.assertEqual(found["matches"], 10)
        client.send(b"delete session:10\r\n")
        again = self.page.get(b"/api/keys", q=b"session:1", page=b"0").json()
        self.assertEqual(len(again["rows"]), 9)

    def test_incremental(self) -> None:
        """
        The walk looks at one batch of items per reactor turn, then merges
        the sorted batches a slice per turn; the answer waits for it.
        """
        page = Page()
        page.fill([b"k%05d" % (i,) for i in range(12000)])
        pending = page.get(b"/api/keys", q=b"k", run=False)
        self.assertFalse(pending.finished)
        turns = page.runWalks()
        # One turn for the copy of the references, one per batch walked and
        # per slice merged, and the last to finish.
        self.assertEqual(turns, 1 + 12000 // browse.WALK_BATCH + 12000 // browse.MERGE_BATCH + 1)

    def test_searchesReused(self) -> None:
        """
        Later pages reuse the walk of the first; a new first page walks
        again once the last walk is a few seconds old.
        """
        self.page.get(b"/api/keys", q=b"user")
        self.page.fill([b"user:999"])
        self.assertEqual(self.page.get(b"/api/keys", q=b"user", page=b"1").json()["matches"], 250)
        self.assertEqual(self.page.get(b"/api/keys", q=b"user").json()["matches"], 250)
        self.page.clock.advance(dashboard.FRESH_SEARCH + 1)
        self.assertEqual(self.page.get(b"/api/keys", q=b"user").json()["matches"], 251)

    def test_runningSearchReused(self) -> None:
        """
        A search asked for again while its walk runs waits for that walk,
        however long it takes.
        """
        self.page.get(b"/api/keys", q=b"user", run=False)
        self.page.clock.advance(dashboard.FRESH_SEARCH + 1)
        self.page.get(b"/api/keys", q=b"user", run=False)
        # One walk: the copy, one batch, the end.
        self.assertEqual(self.page.runWalks(), 3)

    def test_stopped(self) -> None:
        """
        A search cut short by the service stopping answers 503; after a
        restart, searches work again.
        """
        request = DummyRequest([b"api", b"keys"])
        resource = getChildForRequest(self.page.site.resource, request)
        resource.render(request)
        self.page.dashboard.stop()
        self.page.runWalks()
        self.assertEqual(request.responseCode, 503)
        self.assertEqual(json.loads(b"".join(request.written)), {"error": "search stopped"})
        self.page.dashboard.start()
        self.addCleanup(self.page.dashboard.stop)
        self.assertEqual(self.page.get(b"/api/keys", q=b"user").json()["matches"], 250)

    def test_tooManySearches(self) -> None:
        """
        Beyond a few walks at once, a new search gets a 503.
        """
        for number in range(dashboard.MAX_SEARCHES):
            self.page.get(b"/api/keys", q=b"%d" % (number,), run=False)
        busy = self.page.get(b"/api/keys", q=b"more", run=False)
        self.assertEqual((busy.code, busy.json()), (503, {"error": "too many searches running"}))
        self.page.runWalks()
        self.assertEqual(self.page.get(b"/api/keys", q=b"more").code, 200)


class ValueTests(SynchronousTestCase):
    """
    C{/api/value}: only with C{--dashboard-values}.
    """

    def test_hidden(self) -> None:
        """
        Without C{--dashboard-values}, a value is never sent.
        """
        page = Page()
        page.fill([b"secret"], value=b"p4ssw0rd")
        response = page.get(b"/api/value", key=b"secret")
        self.assertEqual(response.code, 403)
        self.assertNotIn(b"p4ssw0rd", response.body)

    def test_shown(self) -> None:
        """
        With it, the value as text and as a hex dump, cut at 4 KiB; binary
        values are marked; a missing key gets a 404.  Reading it changes
        nothing.
        """
        page = Page(ServerSettings(dashboardValues=True))
        page.fill([b"t%key"], value=b"hello")
        page.fill([b"bin"], value=bytes(range(20)))
        page.fill([b"long"], value=b"\xc3\xa9" * 3000)
        text = page.get(b"/api/value", key=b"t%25key").json()
        self.assertEqual((text["value"], text["binary"], text["truncated"]), ("hello", False, False))
        self.assertEqual(text["hex"], "00000000  68 65 6c 6c 6f" + " " * 33 + "  hello")
        binary = page.get(b"/api/value", key=b"bin").json()
        self.assertTrue(binary["binary"])
        self.assertEqual(binary["hex"].splitlines()[1], "00000010  10 11 12 13" + " " * 36 + "  ....")
        long = page.get(b"/api/value", key=b"long").json()
        self.assertEqual((long["truncated"], long["binary"], long["length"]), (True, False, 6000))
        self.assertEqual(long["value"], "\xe9" * 2048)
        self.assertEqual(page.get(b"/api/value", key=b"nothing").code, 404)
        self.assertFalse(page.cache.store.find(b"bin").fetched)
        self.assertEqual(page.server.stats()["get_hits"], "0")


class BadRequestTests(SynchronousTestCase):
    """
    Every parameter is checked: a 400 with a short reason in JSON.
    """

    def assertBad(self, target: Page, path: bytes, reason: str, **args: bytes | list[bytes]) -> None:
        response = target.get(path, **args)
        self.assertEqual((response.code, response.json()), (400, {"error": reason}))
        self.assertEqual(response.header(b"content-type"), dashboard.JSON_TYPE)

    def test_parameters(self) -> None:
        page = Page(ServerSettings(dashboardValues=True))
        pages = "page must be a whole number from 0 to 1000000"
        for value in (b"-1", b"x", b"1.5", b"", b"1000001", b"99999999999999", b" 1", b"\xff"):
            self.assertBad(page, b"/api/keys", pages, page=value)
        self.assertBad(page, b"/api/keys", "mode must be one of prefix, substring", mode=b"regex")
        self.assertBad(page, b"/api/keys", "q must be at most 250 bytes", q=b"x" * 251)
        self.assertBad(page, b"/api/keys", "unknown parameter 'limit'", limit=b"5")
        self.assertBad(page, b"/api/keys", "q given more than once", q=[b"a", b"b"])
        self.assertBad(page, b"/api/overview", "history must be a whole number from 0 to 300", history=b"301")
        self.assertBad(page, b"/api/value", "key is missing")
        self.assertBad(page, b"/api/value", "key must be 1 to 250 bytes", key=b"")
        self.assertBad(page, b"/api/value", "key must be 1 to 250 bytes", key=b"%41" * 251)

    def test_paths(self) -> None:
        """
        Unknown paths are JSON 404s.
        """
        page = Page()
        for path in (b"/api/nothing", b"/api/keys/more", b"/api", b"/nothing"):
            self.assertEqual(page.get(path).code, 404, path)


class PageTests(SynchronousTestCase):
    """
    C{GET /}: the page, self-contained.
    """

    def test_page(self) -> None:
        """
        The page is HTML whose one inline script is the only script allowed,
        and it loads nothing from elsewhere.
        """
        page = Page()
        response = page.get(b"/")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.header(b"content-type"), b"text/html; charset=utf-8")
        self.assertEqual(response.body, dashboard.pageSource())
        policy = response.header(b"content-security-policy")
        self.assertIn(b"default-src 'none'", policy)
        self.assertIn(b"script-src '" + dashboard.scriptHash(response.body) + b"'", policy)
        self.assertNotIn(b"http://", response.body.replace(b"http://www.w3.org/2000/svg", b""))
        self.assertNotIn(b"https://", response.body)
        self.assertEqual(response.body.count(b"<script"), 1)
        self.assertIn(b'name="viewport"', response.body)

    def test_metricsStillServed(self) -> None:
        """
        C{/metrics} is served beside the page.
        """
        page = Page()
        response = page.get(b"/metrics")
        self.assertIn(b"memcached_up 1", response.body)


class AuthenticationTests(SynchronousTestCase):
    """
    With C{-Y}, the page and the API ask for HTTP Basic authentication.
    """

    def setUp(self) -> None:
        self.page = Page(ServerSettings(credentials=USERS))

    def test_asked(self) -> None:
        """
        Without credentials: a 401 with a Basic challenge, not counted as a
        failure.
        """
        for path in (b"/", b"/api/overview", b"/api/keys"):
            response = self.page.get(path)
            self.assertEqual(response.code, 401, path)
            self.assertEqual(response.header(b"www-authenticate"), b'basic realm="myproto"')
            self.assertNotIn(b"curr_items", response.body)
        self.assertEqual(self.page.cache.stats.authErrors, 0)

    def test_wrong(self) -> None:
        """
        Wrong credentials get a 401 and are counted in C{auth_errors}.
        """
        for user, password in [(b"alice", b"hunter2"), (b"carol", b"s3cret"), (b"alice", b"")]:
            response = self.page.get(b"/api/overview", headers=basic(user, password))
            self.assertEqual(response.code, 401)
        self.assertEqual(dict(generalStats(self.page.cache))["auth_errors"], 3)

    def test_right(self) -> None:
        """
        Each user of the file gets in.
        """
        for user, password in USERS:
            self.assertEqual(self.page.get(b"/", headers=basic(user, password)).code, 200)
            response = self.page.get(b"/api/keys", headers=basic(user, password), q=b"x")
            self.assertEqual(response.json()["matches"], 0)
        self.assertEqual(self.page.cache.stats.authErrors, 0)

    def test_metricsOpen(self) -> None:
        """
        C{/metrics} stays open, as before.
        """
        self.assertEqual(self.page.get(b"/metrics").code, 200)


class WiringTests(SynchronousTestCase):
    """
    C{--metrics} serves the dashboard, on loopback unless told otherwise.
    """

    def test_localByDefault(self) -> None:
        local = dashboard.localByDefault
        self.assertEqual(local("tcp:9150"), "tcp:9150:interface=127.0.0.1")
        self.assertEqual(local("TCP:port=9150"), "TCP:port=9150:interface=127.0.0.1")
        self.assertEqual(local("tcp6:9150"), "tcp6:9150:interface=\\:\\:1")
        self.assertEqual(local("tcp:9150:interface=0.0.0.0"), "tcp:9150:interface=0.0.0.0")
        self.assertEqual(local("mtls:9150:privateKey=k"), "mtls:9150:privateKey=k:interface=127.0.0.1")
        self.assertEqual(local("unix:/tmp/x.sock"), "unix:/tmp/x.sock")

    def serve(self, *arguments: str) -> tuple[MemoryReactorClock, Any]:
        reactor = MemoryReactorClock()
        options = tap.Options()
        options.parseOptions(list(arguments))
        top = tap.makeService(options, reactor)
        top.privilegedStartService()
        top.startService()
        self.addCleanup(top.stopService)
        return reactor, top.getServiceNamed(METRICS_NAME)

    def test_wiring(self) -> None:
        """
        The metrics service serves the dashboard's site on loopback, and
        samples every second while it runs; C{--dashboard-values} reaches
        it.
        """
        reactor, service = self.serve("--metrics", "tcp:9150")
        self.assertIsInstance(service.factory, MetricsSite)
        self.assertIsInstance(service, dashboard.DashboardService)
        [(port, factory, _, interface)] = [s for s in reactor.tcpServers if s[0] == 9150]
        self.assertEqual(interface, "127.0.0.1")
        self.assertFalse(service.dashboard.showValues)
        reactor.advance(1)
        reactor.advance(1)
        self.assertEqual(len(service.dashboard.sampler.samples), 3)
        _, shown = self.serve("--metrics", "tcp:9151:interface=0.0.0.0", "--dashboard-values")
        self.assertTrue(shown.dashboard.showValues)

    def test_stops(self) -> None:
        """
        Stopping the service stops its timers.
        """
        reactor, service = self.serve("--metrics", "tcp:9150")
        service.stopService()
        calls = [repr(call) for call in reactor.getDelayedCalls()]
        self.assertEqual([call for call in calls if "Sampler" in call or "countSizes" in call], [])


@implementer(IPolicyForHTTPS)
class _ClientTLS:
    def __init__(self, options: Any) -> None:
        self._options = options

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return self._options


class LoopbackTests(TestCase):
    """
    Real requests over loopback.
    """

    def test_http(self) -> Deferred[None]:
        """
        The page and the API, over HTTP, with Basic authentication.
        """
        return Deferred.fromCoroutine(self._http())

    async def _http(self) -> None:
        from twisted.internet import reactor

        server = Server()
        server.connect().send(b"set user:1 0 0 1\r\nx\r\n")
        service = dashboard.dashboardService(
            "tcp:0", server.factory.cache, ServerSettings(credentials=USERS), reactor
        )
        port = await service.endpoint.listen(service.factory)
        self.addCleanup(port.stopListening)
        self.assertEqual(port.getHost().host, "127.0.0.1")
        base = b"http://127.0.0.1:%d" % (port.getHost().port,)
        agent = Agent(reactor)
        refused = await agent.request(b"GET", base + b"/api/overview")
        await readBody(refused)
        self.assertEqual(refused.code, 401)
        headers = basic(b"alice", b"s3cret")
        from twisted.web.http_headers import Headers

        response = await agent.request(b"GET", base + b"/api/keys?q=user", Headers({k: [v] for k, v in headers.items()}))
        body = json.loads(await readBody(response))
        self.assertEqual([row["text"] for row in body["rows"]], ["user:1"])
        page = await agent.request(b"GET", base + b"/", Headers({k: [v] for k, v in headers.items()}))
        self.assertIn(b"<title>myproto dashboard</title>", await readBody(page))
        posted = await agent.request(b"POST", base + b"/api/keys", Headers({k: [v] for k, v in headers.items()}))
        body = await readBody(posted)
        self.assertEqual(posted.code, 405)
        self.assertNotIn(b"Traceback", body)

    def test_mutualTLS(self) -> Deferred[None]:
        """
        On an C{mtls:} endpoint, the dashboard answers only clients with a
        certificate from the CA.
        """
        return Deferred.fromCoroutine(self._mutualTLS())

    async def _mutualTLS(self) -> None:
        from twisted.internet import reactor

        directory = FilePath(self.mktemp())
        serverKey, serverCert, serverPem = selfSignedFiles(directory.child("server"), "localhost")
        clientKey, clientCert, clientPem = selfSignedFiles(directory.child("client"), "client1")
        description = "mtls:0:interface=127.0.0.1:privateKey={}:certKey={}:caCerts={}".format(
            *(quoteStringArgument(path.path) for path in (serverKey, serverCert, clientCert))
        )
        server = Server()
        site = dashboard.dashboardSite(dashboard.Dashboard(server.factory.cache, reactor), None)
        port = await serverFromString(reactor, description).listen(site)
        self.addCleanup(port.stopListening)
        url = b"https://127.0.0.1:%d/api/overview?history=0" % (port.getHost().port,)
        trustRoot = Certificate.loadPEM(serverPem)
        client = PrivateCertificate.loadPEM(clientKey.getContent() + clientPem)
        trusted = optionsForClientTLS("localhost", trustRoot=trustRoot, clientCertificate=client)
        response = await Agent(reactor, contextFactory=_ClientTLS(trusted)).request(b"GET", url)
        self.assertEqual(json.loads(await readBody(response))["stats"]["curr_items"], 0)
        anonymous = optionsForClientTLS("localhost", trustRoot=trustRoot)
        try:
            failed = await Agent(reactor, contextFactory=_ClientTLS(anonymous)).request(b"GET", url)
            await readBody(failed)
        except (ResponseNeverReceived, ResponseFailed) as e:
            self.assertIn("SSL", repr(e.reasons))
        else:
            self.fail("answered a client without a certificate")


class EncodingTests(SynchronousTestCase):
    """
    Keys travel URI-encoded, as C{metadump} writes them.
    """

    def test_roundTrip(self) -> None:
        for key in (b"plain", b"with space", b"\xff\x00binary", "caf\xe9".encode("utf-8")):
            row = {"key": quote(key, safe="")}
            self.assertEqual(browse.decodeKey(row["key"].encode("ascii")), key)
        self.assertEqual(browse.displayKey(b"a\xffb"), "a\\xffb")
