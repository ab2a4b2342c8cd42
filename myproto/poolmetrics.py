"""
One Prometheus endpoint for a pool (L{myproto.pool}): every worker's
C{/metrics}, each series labelled with its C{worker}, and twemproxy's own
counters, read from its stats port (which serves one JSON document per
connection).

Each scrape asks every worker and the proxy afresh, all at once; one that
does not answer in time (a worker being restarted) is reported by
C{myproto_pool_worker_up 0} (or C{nutcracker_up 0}) and its series are left
out of that scrape.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from myproto.metrics import CONTENT_TYPE, MetricsSite

# Seconds a scrape waits for one worker or the proxy.
SCRAPE_TIMEOUT = 2.0

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?(\s.*)$")
_HEADER = re.compile(r"^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)( .*)?$")
_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labelled(line: str, label: str, value: str) -> str:
    """
    @param line: one sample line of the text exposition format.
    @return: the same sample with C{label="value"} first among its labels.
    """
    match = _SAMPLE.match(line)
    if match is None:
        return line
    name, braces, labels, rest = match.groups()
    pair = '{}="{}"'.format(label, _escape(value))
    if braces and labels:
        pair += "," + labels
    return "{}{{{}}}{}".format(name, pair, rest)


def mergeExpositions(texts: Iterable[tuple[str, str]], label: str = "worker") -> list[str]:
    """
    Join several C{/metrics} pages into one, each family's C{# HELP} and
    C{# TYPE} once, followed by every page's samples of it.

    @param texts: C{(label value, page)} pairs, e.g. C{("0", text)}.
    @return: the lines of the merged page, families in the order first met.
    """
    headers: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for value, text in texts:
        family = ""
        for line in text.splitlines():
            if not line.strip():
                continue
            header = _HEADER.match(line)
            if header is not None:
                family = header.group(2)
                if len(headers.setdefault(family, [])) < 2 and line not in headers[family]:
                    headers[family].append(line)
                samples.setdefault(family, [])
                continue
            if line.startswith("#"):
                continue
            samples.setdefault(family, []).append(labelled(line, label, value))
            headers.setdefault(family, [])
    lines: list[str] = []
    for family, found in samples.items():
        lines.extend(headers.get(family, []))
        lines.extend(found)
    return lines


def _metricName(*parts: str) -> str:
    return "_".join(_NAME_UNSAFE.sub("_", part) for part in parts)


def proxyExposition(document: dict[str, Any]) -> list[str]:
    """
    twemproxy's stats, as Prometheus samples: its process-wide numbers as
    C{nutcracker_NAME}, each pool's as C{nutcracker_pool_NAME{pool=...}},
    each server's as C{nutcracker_server_NAME{pool=...,server=...}}.

    @param document: the JSON document its stats port serves.
    @return: the lines, each family with a C{# TYPE} line (C{untyped}:
        twemproxy mixes counters and gauges without saying which).
    """
    families: dict[str, list[str]] = {}

    def add(name: str, value: object, **labels: str) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        pairs = ",".join('{}="{}"'.format(key, _escape(text)) for key, text in labels.items())
        families.setdefault(name, []).append(
            "{}{} {}".format(name, "{" + pairs + "}" if pairs else "", value)
        )

    for key, value in sorted(document.items()):
        if isinstance(value, dict):
            for poolKey, poolValue in sorted(value.items()):
                if isinstance(poolValue, dict):
                    for serverKey, serverValue in sorted(poolValue.items()):
                        add(
                            _metricName("nutcracker_server", serverKey),
                            serverValue,
                            pool=key,
                            server=poolKey,
                        )
                else:
                    add(_metricName("nutcracker_pool", poolKey), poolValue, pool=key)
        else:
            add(_metricName("nutcracker", key), value)
    lines = []
    for name, found in families.items():
        lines.append("# TYPE {} untyped".format(name))
        lines.extend(found)
    return lines


class _Collect(Protocol):
    """
    Sends a request, if any, then keeps everything the server sends until
    it closes.
    """

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.chunks: list[bytes] = []
        # Cancelled (a scrape that timed out): hang up rather than linger.
        self.done: Deferred[bytes] = Deferred(lambda ignored: self.transport.abortConnection())  # type: ignore[union-attr]

    def connectionMade(self) -> None:
        if self.request:
            self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.done.called:
            self.done.callback(b"".join(self.chunks))


class _CollectFactory(Factory):
    noisy = False  # one connection per scrape: not worth two log lines

    def __init__(self, request: bytes) -> None:
        self.request = request

    def buildProtocol(self, addr: Any) -> _Collect:
        return _Collect(self.request)


def fetch(endpoint: Any, request: bytes, reactor: Any) -> Deferred[bytes]:
    """
    @return: a L{Deferred} firing with all a server sent after C{request}
        until it closed, or failing after L{SCRAPE_TIMEOUT} seconds.
    """
    connected = endpoint.connect(_CollectFactory(request))
    connected.addCallback(lambda protocol: protocol.done)
    return connected.addTimeout(SCRAPE_TIMEOUT, reactor)


def httpBody(response: bytes) -> str:
    """
    @return: the body of an HTTP/1.0 reply whose status is 200.
    @raise ValueError: for any other status.
    """
    head, separator, body = response.partition(b"\r\n\r\n")
    if not separator or head.split(b" ", 2)[1:2] != [b"200"]:
        raise ValueError("no metrics")
    return body.decode("utf-8")


class PoolMetricsResource(Resource):
    """
    C{GET /metrics} for a pool.

    @ivar workers: each worker's metrics Unix socket, by worker label.
    @ivar proxyStats: the proxy's stats C{(host, port)}, or L{None}.
    """

    isLeaf = True

    def __init__(
        self, reactor: Any, workers: dict[str, str], proxyStats: tuple[str, int] | None
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.workers = workers
        self.proxyStats = proxyStats

    def _worker(self, path: str) -> Deferred[str | None]:
        endpoint = UNIXClientEndpoint(self.reactor, path, timeout=SCRAPE_TIMEOUT)
        # HTTP/1.0: the worker closes the connection after its reply.
        fetched = fetch(endpoint, b"GET /metrics HTTP/1.0\r\nHost: worker\r\n\r\n", self.reactor)
        fetched.addCallback(httpBody)
        return fetched.addErrback(lambda failure: None)

    def _proxy(self) -> Deferred[dict[str, Any] | None]:
        assert self.proxyStats is not None
        host, port = self.proxyStats
        endpoint = TCP4ClientEndpoint(self.reactor, host, port, timeout=SCRAPE_TIMEOUT)
        connected = fetch(endpoint, b"", self.reactor)
        connected.addCallback(json.loads)
        return connected.addErrback(lambda failure: None)

    def page(self) -> Deferred[str]:
        """
        @return: a L{Deferred} that fires with the whole merged page.
        """
        names = sorted(self.workers, key=int)
        asked: list[Deferred[Any]] = [self._worker(self.workers[name]) for name in names]
        if self.proxyStats is not None:
            asked.append(self._proxy())

        def join(results: list[Any]) -> str:
            pages = results[: len(names)]
            lines = ["# HELP myproto_pool_worker_up Whether the worker answered this scrape."]
            lines.append("# TYPE myproto_pool_worker_up gauge")
            for name, text in zip(names, pages):
                lines.append('myproto_pool_worker_up{{worker="{}"}} {}'.format(name, int(text is not None)))
            lines.extend(
                mergeExpositions((name, text) for name, text in zip(names, pages) if text is not None)
            )
            if self.proxyStats is not None:
                document = results[-1]
                lines.append("# HELP nutcracker_up Whether twemproxy's stats port answered this scrape.")
                lines.append("# TYPE nutcracker_up gauge")
                lines.append("nutcracker_up {}".format(int(document is not None)))
                if document is not None:
                    lines.extend(proxyExposition(document))
            return "\n".join(lines) + "\n"

        return gatherResults(asked).addCallback(join)

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"content-type", CONTENT_TYPE)

        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda failure: gone.append(True))

        def send(text: str) -> None:
            if not gone:
                request.write(text.encode("utf-8"))
                request.finish()

        self.page().addCallback(send)
        return NOT_DONE_YET


def poolMetricsSite(reactor: Any, workers: dict[str, str], proxyStats: tuple[str, int] | None) -> MetricsSite:
    """
    @return: a site serving the pool's C{/metrics}.
    """
    root = Resource()
    root.putChild(b"metrics", PoolMetricsResource(reactor, workers, proxyStats))
    return MetricsSite(root)
