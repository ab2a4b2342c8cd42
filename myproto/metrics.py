"""
An optional Prometheus endpoint (C{--metrics DESCRIPTION}): C{GET /metrics}
in the text exposition format, served with twisted.web.

The counters carry the names and labels of the Prometheus memcached_exporter
(C{memcached_commands_total{command,status}}, C{memcached_current_items}...),
computed from the same numbers as C{stats} and C{stats settings}, so
dashboards built for the exporter work unchanged.  Beyond what the exporter
can get from memcached, C{myproto_command_duration_seconds} is a histogram of
the time each command takes to carry out, by command: from its parsed request
to its reply lines, without the network or the parsing.

The timing costs one pair of L{time.perf_counter} calls and a bucket
increment per command, and only when the endpoint is configured; without
it, one attribute check (L{myproto.cache.Cache.timings}).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import Any

from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from myproto.cache import Cache, Lines
from myproto.commands.stats import generalStats, settingsStats
from myproto.wire import classic, meta

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
METRICS_PATH = b"metrics"

# Upper bounds of the latency buckets, in seconds: a command carried out in
# memory takes microseconds; the long tail shows a blocked reactor.
BUCKETS = (
    0.000005,
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

# The histogram's label for each request type whose verb is fixed.
_FIXED_LABELS: dict[type, str] = {
    classic.DeleteRequest: "delete",
    classic.TouchRequest: "touch",
    classic.FlushRequest: "flush_all",
    classic.VersionRequest: "version",
    classic.VerbosityRequest: "verbosity",
    classic.StatsRequest: "stats",
    classic.NoOpRequest: "mn",
    classic.MemoryLimitRequest: "cache_memlimit",
    classic.AuthenticationRequest: "auth",
    classic.WatchRequest: "watch",
    classic.LruCrawlerRequest: "lru_crawler",
    classic.SlabsAutomoveRequest: "slabs",
    meta.MetaGetRequest: "mg",
    meta.MetaSetRequest: "ms",
    meta.MetaDeleteRequest: "md",
    meta.MetaArithmeticRequest: "ma",
    meta.MetaDebugRequest: "me",
}


# For the request types that several verbs share: what tells them apart.
_VERBS: dict[type, Callable[[Any], object]] = {
    classic.StorageRequest: lambda request: request.verb,
    classic.RetrievalRequest: lambda request: (request.withCas, request.touchExptime is None),
    classic.ArithmeticRequest: lambda request: request.increment,
}


def commandLabel(request: object) -> str:
    """
    @return: the command a request is, as its verb (C{gets}, C{incr}...).
    """
    label = _FIXED_LABELS.get(type(request))
    if label is not None:
        return label
    if isinstance(request, classic.StorageRequest):
        return request.verb.decode("ascii")
    if isinstance(request, classic.RetrievalRequest):
        verb = "get" if request.touchExptime is None else "gat"
        return verb + "s" if request.withCas else verb
    if isinstance(request, classic.ArithmeticRequest):
        return "incr" if request.increment else "decr"
    return type(request).__name__.removesuffix("Request").lower()


class Histogram:
    """
    Observations of one command's duration.

    @ivar counts: observations per bucket (not cumulative), the last one
        for those above every bound.
    @ivar total: the sum of all observations, in seconds.
    """

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0


class CommandTimings:
    """
    How long commands take, by command.

    @ivar histograms: the observations, by command.
    """

    def __init__(self) -> None:
        self.histograms: dict[str, Histogram] = {}
        # The histogram of each request type with a fixed verb, found by
        # type alone on the hot path; the others', by type and verb.
        self._byType: dict[type, Histogram] = {}
        self._byKey: dict[object, Histogram] = {}

    def time(self, handler: Callable[[Any, Cache], Lines], request: Any, cache: Cache) -> Lines:
        """
        Carry out a command and record how long it took, error or not.

        @param handler: the command's function.
        @param request: its request.
        @param cache: what it acts on.
        @return: what C{handler} returns.
        """
        start = perf_counter()
        try:
            return handler(request, cache)
        finally:
            self._record(request, perf_counter() - start)

    def timeCompletion(
        self,
        completer: Callable[[Any, bytes, Cache], Lines],
        request: Any,
        value: bytes,
        cache: Cache,
    ) -> Lines:
        """
        L{time} for a command with a data block.
        """
        start = perf_counter()
        try:
            return completer(request, value, cache)
        finally:
            self._record(request, perf_counter() - start)

    def _record(self, request: object, seconds: float) -> None:
        histogram = self._byType.get(type(request))
        if histogram is None:
            histogram = self._histogram(request)
        histogram.counts[bisect_left(BUCKETS, seconds)] += 1
        histogram.total += seconds

    def _histogram(self, request: object) -> Histogram:
        kind = type(request)
        verb = _VERBS.get(kind)
        key = (kind, verb(request)) if verb is not None else kind
        histogram = self._byKey.get(key)
        if histogram is None:
            command = commandLabel(request)
            histogram = self.histograms.get(command)
            if histogram is None:
                histogram = self.histograms[command] = Histogram()
            self._byKey[key] = histogram
            if verb is None:
                self._byType[kind] = histogram
        return histogram

    def observe(self, command: str, seconds: float) -> None:
        """
        Record one duration.
        """
        histogram = self.histograms.get(command)
        if histogram is None:
            histogram = self.histograms[command] = Histogram()
        histogram.counts[bisect_left(BUCKETS, seconds)] += 1
        histogram.total += seconds


def enableTimings(cache: Cache) -> CommandTimings:
    """
    Start timing the commands carried out on a cache.

    @return: the timings, also set as C{cache.timings}.
    """
    if cache.timings is None:
        cache.timings = CommandTimings()
    return cache.timings


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: object) -> str:
    if isinstance(value, float):
        if value == float("inf"):
            return "+Inf"
        return repr(value)
    return str(value)


class _Family:
    """
    One metric family being written: its header, then its samples.
    """

    def __init__(self, lines: list[str], name: str, kind: str, help: str) -> None:
        self._lines = lines
        self._name = name
        lines.append("# HELP %s %s" % (name, help))
        lines.append("# TYPE %s %s" % (name, kind))

    def sample(self, value: object, suffix: str = "", **labels: str) -> None:
        if labels:
            text = ",".join('%s="%s"' % (key, _escape(label)) for key, label in labels.items())
            self._lines.append("%s%s{%s} %s" % (self._name, suffix, text, _number(value)))
        else:
            self._lines.append("%s%s %s" % (self._name, suffix, _number(value)))


# The exporter's metrics that map one statistic each: name, type, help text
# (the exporter's), and the C{stats} name.
_SIMPLE = [
    (
        "memcached_uptime_seconds",
        "counter",
        "Number of seconds since the server started.",
        "uptime",
    ),
    ("memcached_time_seconds", "gauge", "current UNIX time according to the server.", "time"),
]
_TRAFFIC = [
    (
        "memcached_read_bytes_total",
        "counter",
        "Total number of bytes read by this server from network.",
        "bytes_read",
    ),
    (
        "memcached_written_bytes_total",
        "counter",
        "Total number of bytes sent by this server to network.",
        "bytes_written",
    ),
    (
        "memcached_current_connections",
        "gauge",
        "Current number of open connections.",
        "curr_connections",
    ),
]
_CONNECTIONS = [
    (
        "memcached_connections_total",
        "counter",
        "Total number of connections opened since the server started running.",
        "total_connections",
    ),
    (
        "memcached_connections_rejected_total",
        "counter",
        "Total number of connections rejected due to hitting the memcached's -c limit in maxconns_fast mode.",
        "rejected_connections",
    ),
    ("memcached_current_bytes", "gauge", "Current number of bytes used to store items.", "bytes"),
    (
        "memcached_limit_bytes",
        "gauge",
        "Number of bytes this server is allowed to use for storage.",
        "limit_maxbytes",
    ),
]
_ITEMS = [
    (
        "memcached_current_items",
        "gauge",
        "Current number of items stored by this instance.",
        "curr_items",
    ),
    (
        "memcached_items_total",
        "counter",
        "Total number of items stored during the life of this instance.",
        "total_items",
    ),
    (
        "memcached_items_evicted_total",
        "counter",
        "Total number of valid items removed from cache to free memory for new items.",
        "evictions",
    ),
    (
        "memcached_items_reclaimed_total",
        "counter",
        "Total number of times an entry was stored using memory from an expired entry.",
        "reclaimed",
    ),
    (
        "memcached_item_too_large_total",
        "counter",
        "The number of times an item exceeded the max-item-size when being stored.",
        "store_too_large",
    ),
    (
        "memcached_item_no_memory_total",
        "counter",
        "The number of times an item could not be stored due to no more memory.",
        "store_no_memory",
    ),
]

_HIT_MISS_COMMANDS = ("get", "delete", "incr", "decr", "cas", "touch")


def render(cache: Cache) -> str:
    """
    The metrics of one cache in Prometheus' text format (version 0.0.4).

    @param cache: the cache served.
    @return: the exposition, ending in a newline.
    """
    stats = dict(generalStats(cache))
    settings = dict(settingsStats(cache))
    lines: list[str] = []

    def simple(table: Iterable[tuple[str, str, str, str]]) -> None:
        for name, kind, help, stat in table:
            if stat in stats:
                _Family(lines, name, kind, help).sample(stats[stat])

    _Family(lines, "memcached_up", "gauge", "Could the memcached server be reached.").sample(1)
    simple(_SIMPLE)
    _Family(lines, "memcached_version", "gauge", "The version of this memcached server.").sample(
        1, version=str(stats["version"])
    )
    for name, help, stat in [
        (
            "memcached_process_user_cpu_seconds_total",
            "Accumulated user time for this process.",
            "rusage_user",
        ),
        (
            "memcached_process_system_cpu_seconds_total",
            "Accumulated system time for this process.",
            "rusage_system",
        ),
    ]:
        _Family(lines, name, "counter", help).sample(float(str(stats[stat])))
    simple(_TRAFFIC)
    _Family(
        lines, "memcached_max_connections", "gauge", "Maximum number of clients allowed."
    ).sample(settings["maxconns"])
    simple(_CONNECTIONS)

    family = _Family(
        lines,
        "memcached_commands_total",
        "counter",
        "Total number of all requests broken down by command (get, set, etc.) and status.",
    )
    for command in _HIT_MISS_COMMANDS:
        family.sample(stats[command + "_hits"], command=command, status="hit")
        family.sample(stats[command + "_misses"], command=command, status="miss")
    family.sample(stats["cas_badval"], command="cas", status="badval")
    family.sample(stats["cmd_flush"], command="flush", status="hit")
    # As the exporter does: cmd_set counts cas commands too.
    casCommands = (
        int(str(stats["cas_misses"])) + int(str(stats["cas_hits"])) + int(str(stats["cas_badval"]))
    )
    family.sample(int(str(stats["cmd_set"])) - casCommands, command="set", status="hit")

    simple(_ITEMS)
    if settings.get("lru_crawler") == "yes":
        for name, help, value in [
            ("memcached_lru_crawler_enabled", "Whether the LRU crawler is enabled.", 1),
            (
                "memcached_lru_crawler_sleep",
                "Microseconds to sleep between LRU crawls.",
                settings["lru_crawler_sleep"],
            ),
            (
                "memcached_lru_crawler_to_crawl",
                "Max items to crawl per slab per run.",
                settings["lru_crawler_tocrawl"],
            ),
        ]:
            _Family(lines, name, "gauge", help).sample(value)
    if "lru_crawler_starts" in stats:
        _Family(
            lines,
            "memcached_lru_crawler_starts_total",
            "counter",
            "Times an LRU crawler was started.",
        ).sample(stats["lru_crawler_starts"])
    _Family(
        lines,
        "memcached_accepting_connections",
        "gauge",
        "The Memcached server is currently accepting new connections.",
    ).sample(stats["accepting_conns"])

    timings = cache.timings
    if timings is not None:
        family = _Family(
            lines,
            "myproto_command_duration_seconds",
            "histogram",
            "Time taken to carry out each command, from its parsed request to its reply, by command.",
        )
        for command, histogram in sorted(timings.histograms.items()):
            cumulative = 0
            for bound, count in zip(BUCKETS + (float("inf"),), histogram.counts):
                cumulative += count
                family.sample(cumulative, "_bucket", command=command, le=_number(bound))
            family.sample(histogram.total, "_sum", command=command)
            family.sample(cumulative, "_count", command=command)
    lines.append("")
    return "\n".join(lines)


class MetricsResource(Resource):
    """
    C{GET /metrics}.
    """

    isLeaf = True

    def __init__(self, cache: Cache) -> None:
        super().__init__()
        self._cache = cache

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE)
        return render(self._cache).encode("utf-8")


class MetricsSite(Site):
    """
    The endpoint's site; scrapes every few seconds do not fill the log.
    """

    noisy = False

    def log(self, request: http.Request) -> None:
        pass


def metricsSite(cache: Cache) -> Site:
    """
    @return: a site serving C{/metrics} for a cache, whose commands are
        timed from now on.
    """
    enableTimings(cache)
    root = Resource()
    root.putChild(METRICS_PATH, MetricsResource(cache))
    return MetricsSite(root)
