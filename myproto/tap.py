"""
The command line of C{twistd myproto} and the services it starts.

L{Options} takes memcached's option names and meanings (C{-m}, C{-I}, C{-c},
C{-C}, C{-A}, C{-v}, C{-Y}) plus one repeatable C{--listen ENDPOINT} in place
of memcached's per-transport flags, and the two connection timeouts.
L{settingsFromOptions} turns parsed options, or a plain mapping written by
hand in a C{.tac} file, into a L{ServerSettings}; L{makeService} builds the
store, the protocol factory, a periodic sweep of expired items and one
listening service per endpoint.
"""

from __future__ import annotations

import gc
import re
import signal
import threading
from typing import Any, Callable, Mapping

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.filepath import FilePath

from myproto.auth import parseAuthFile
from myproto.config import DEFAULT_LISTEN, MEGABYTE, ServerSettings
from myproto.evictions import SUMMARY_INTERVAL, EvictionSummary
from myproto.metrics import metricsService
from myproto.protocol import CacheServerFactory
from myproto.snapshot import SnapshotService
from myproto.store import MemoryStore
from myproto.tls import CertificateReloader, TLSServerEndpoint

KILOBYTE = 1024

DEFAULT_MEMORY_LIMIT = 64  # megabytes, as memcached's -m
DEFAULT_MAX_ITEM_SIZE = "1m"
DEFAULT_CONNECTION_LIMIT = 1024
DEFAULT_IDLE_TIMEOUT = 0.0  # never
DEFAULT_REQUEST_TIMEOUT = ServerSettings.requestTimeout

# memcached's bounds for -I.
MIN_ITEM_SIZE = KILOBYTE
MAX_ITEM_SIZE = 1024 * MEGABYTE

# Seconds between two sweeps of expired items out of the store.
SWEEP_INTERVAL = 1.0

SWEEPER_NAME = "sweeper"
EVICTIONS_NAME = "evictions"
METRICS_NAME = "metrics"
SNAPSHOT_NAME = "snapshot"
DRAIN_NAME = "drain"

_SIZE = re.compile(r"([0-9]+)([kKmM]?)")
_UNITS = {"": 1, "k": KILOBYTE, "m": MEGABYTE}


def parseSize(text: str) -> int:
    """
    Read a size the way memcached's C{-I} does: a count of bytes, or a count
    followed by C{k} or C{m} (either case) for kilobytes or megabytes.

    @param text: the size as typed, e.g. C{"1m"}, C{"512k"} or C{"4096"}.

    @return: the size in bytes.

    @raise ValueError: if C{text} is not such a size.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            "{!r} is not a size: give bytes, or a number followed by k or m".format(
                text
            )
        )
    count, unit = match.groups()
    return int(count) * _UNITS[unit.lower()]


parseSize.coerceDoc = (  # type: ignore[attr-defined]
    "Bytes, or a number followed by k or m; at least 1k, at most 1024m"
    " and at most half the memory limit."
)


def parseInteger(text: str) -> int:
    """
    Read a whole number given on the command line.

    @param text: the number as typed.

    @return: its value.

    @raise ValueError: if C{text} is not a whole number.
    """
    try:
        return int(text)
    except ValueError:
        raise ValueError("{!r} is not a whole number".format(text)) from None


def parseSeconds(text: str) -> float:
    """
    Read a duration given on the command line.

    @param text: a number of seconds, e.g. C{"30"} or C{"2.5"}.

    @return: its value.

    @raise ValueError: if C{text} is not a finite number of seconds, zero or
        more.
    """
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError("{!r} is not a number of seconds".format(text)) from None
    if not 0 <= seconds < float("inf"):
        raise ValueError("{!r} is not a number of seconds".format(text))
    return seconds


parseSeconds.coerceDoc = "Seconds; 0 means never."  # type: ignore[attr-defined]


def _readCredentials(path: str) -> tuple[tuple[bytes, bytes], ...]:
    """
    Read memcached's C{-Y} file of C{username:password} lines, once, at
    startup.

    @param path: the file's name.

    @return: the accepted C{(username, password)} pairs.

    @raise ValueError: if the file cannot be read or is not such a file.
    """
    try:
        content = FilePath(path).getContent()
    except OSError as e:
        raise ValueError(
            "Could not read the auth file {}: {}".format(path, e.strerror)
        ) from None
    try:
        return parseAuthFile(content.splitlines(keepends=True))
    except ValueError as e:
        raise ValueError("Bad auth file {}: {}".format(path, e)) from None


def _toSize(value: int | str) -> int:
    """
    Accept a size as L{Options} leaves it (bytes) or as a C{.tac} may write it
    (C{"1m"}).
    """
    if isinstance(value, str):
        return parseSize(value)
    return int(value)


def _toBanner(value: str | bytes | None) -> bytes | None:
    """
    Check that a banner fits on one line and encode it.

    @return: the banner as UTF-8 bytes, or L{None} for no banner (an empty
        one included).

    @raise ValueError: if it contains a carriage return or a line feed.
    """
    if not value:
        return None
    banner = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if b"\r" in banner or b"\n" in banner:
        raise ValueError("The banner must fit on one line")
    return banner


def settingsFromOptions(config: Mapping[str, Any]) -> ServerSettings:
    """
    Check a server configuration and gather it into one L{ServerSettings}.

    C{config} uses L{Options}' keys; any key it lacks takes memcached's
    default, so a C{.tac} file can give a plain L{dict} with only the keys
    it cares about. Sizes may be bytes or strings such as C{"1m"}.

    @param config: the parsed L{Options}, or a mapping with the same keys.

    @return: the settings.

    @raise ValueError: if a value is out of range; the message says which,
        in memcached's words where memcached has some.
    """
    memoryLimit = int(config.get("memory-limit", DEFAULT_MEMORY_LIMIT))
    if memoryLimit < 1:
        raise ValueError("The memory limit must be at least 1 megabyte")
    memoryBytes = memoryLimit * MEGABYTE
    maxItemSize = _toSize(config.get("max-item-size", DEFAULT_MAX_ITEM_SIZE))
    if maxItemSize < MIN_ITEM_SIZE:
        raise ValueError("Item max size cannot be less than 1024 bytes.")
    if maxItemSize > MAX_ITEM_SIZE:
        raise ValueError("Cannot set item size limit higher than a gigabyte.")
    if maxItemSize > memoryBytes // 2:
        raise ValueError("Cannot set item size limit higher than 1/2 of memory max.")
    connectionLimit = int(config.get("conn-limit", DEFAULT_CONNECTION_LIMIT))
    if connectionLimit < 1:
        raise ValueError("Maximum connections must be greater than 0")
    idleTimeout = float(config.get("idle-timeout", DEFAULT_IDLE_TIMEOUT))
    requestTimeout = float(config.get("request-timeout", DEFAULT_REQUEST_TIMEOUT))
    if idleTimeout < 0 or requestTimeout < 0:
        raise ValueError("Timeouts cannot be negative")
    snapshotInterval = float(config.get("snapshot-interval", ServerSettings.snapshotInterval))
    if snapshotInterval < 0:
        raise ValueError("The snapshot interval cannot be negative")
    authFile = config.get("auth-file")
    credentials = _readCredentials(authFile) if authFile else None
    listen = tuple(config.get("listen") or (DEFAULT_LISTEN,))
    return ServerSettings(
        memoryLimit=memoryBytes,
        maxItemSize=maxItemSize,
        connectionLimit=connectionLimit,
        useCas=not config.get("disable-cas", False),
        enableShutdown=bool(config.get("enable-shutdown", False)),
        banner=_toBanner(config.get("banner")),
        verbosity=int(config.get("verbose", 0)),
        listen=listen,
        idleTimeout=idleTimeout,
        requestTimeout=requestTimeout,
        credentials=credentials,
        snapshotPath=config.get("snapshot") or None,
        snapshotInterval=snapshotInterval,
        metrics=config.get("metrics") or None,
    )


class Options(usage.Options):
    """
    The options of C{twistd myproto}, named and meant as memcached's.

    After L{parseOptions}, C{self["settings"]} holds the checked
    L{ServerSettings}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve a memcached-compatible cache on each --listen endpoint (default: "
        + DEFAULT_LISTEN
        + "). For TLS, listen on"
        " ssl:PORT:interface=ADDRESS:privateKey=KEY.pem:certKey=CERT.pem;"
        " for mutual TLS, on mtls:PORT:interface=ADDRESS:privateKey=KEY.pem"
        ":certKey=CERT.pem:caCerts=CA.pem (refresh_certs and SIGHUP reload"
        " its files)."
    )

    optFlags = [
        [
            "disable-cas",
            "C",
            "Disable use of CAS: items carry no CAS unique (memcached -C).",
        ],
        [
            "enable-shutdown",
            "A",
            "Enable the ascii 'shutdown' command (memcached -A).",
        ],
    ]

    optParameters = [
        [
            "memory-limit",
            "m",
            DEFAULT_MEMORY_LIMIT,
            "Item memory in megabytes (memcached -m).",
            parseInteger,
        ],
        [
            "max-item-size",
            "I",
            DEFAULT_MAX_ITEM_SIZE,
            "Largest item (memcached -I).",
            parseSize,
        ],
        [
            "conn-limit",
            "c",
            DEFAULT_CONNECTION_LIMIT,
            "Max simultaneous connections (memcached -c).",
            parseInteger,
        ],
        [
            "banner",
            None,
            None,
            "A line sent to each client when it connects (default: none).",
        ],
        [
            "idle-timeout",
            None,
            DEFAULT_IDLE_TIMEOUT,
            "Drop a client that completes no command for this long"
            " (memcached -o idle_timeout).",
            parseSeconds,
        ],
        [
            "request-timeout",
            None,
            DEFAULT_REQUEST_TIMEOUT,
            "Drop a client that takes longer than this to finish a command"
            " line or data block it has started.",
            parseSeconds,
        ],
        [
            "snapshot",
            None,
            None,
            "Save the cache to this file at shutdown (and periodically) and"
            " load it at start.",
        ],
        [
            "snapshot-interval",
            None,
            ServerSettings.snapshotInterval,
            "Seconds between snapshot saves while serving (0: only at shutdown).",
            parseSeconds,
        ],
        [
            "auth-file",
            "Y",
            None,
            "A file of username:password lines; clients must then"
            " authenticate (memcached -Y).",
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics on this endpoint, e.g."
            " tcp:9150:interface=127.0.0.1 (default: none).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["verbose"] = 0

    # The opt_ docstrings are --help text; they stay on one line because
    # usage.Options would keep a second line's indentation.

    def opt_listen(self, description: str) -> None:
        """Endpoint to serve on, e.g. tcp:11311 or unix:m.sock (repeatable)."""
        self["listen"].append(description)

    def opt_verbose(self) -> None:
        """Raise the starting verbosity level; repeat for more: -vv (memcached -v)."""
        self["verbose"] += 1

    opt_v = opt_verbose

    def postOptions(self) -> None:
        """
        Fill in the default endpoint and check the values together.

        @raise usage.UsageError: if a value is out of range.
        """
        self["listen"] = self["listen"] or [DEFAULT_LISTEN]
        try:
            settings = settingsFromOptions(self)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        self["max-item-size"] = settings.maxItemSize
        self["settings"] = settings


class DrainService(Service):
    """
    At shutdown, lets clients finish their current requests and closes
    their connections (within a bound) before the snapshot is saved.
    """

    def __init__(self, factory: CacheServerFactory, timeout: float) -> None:
        self.factory = factory
        self.timeout = timeout

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.factory.drain(self.timeout)


class AtReactorStart(Service):
    """
    A service whose work waits until the reactor runs (done at once if it
    already does): signal handlers, for one, must replace those the reactor
    installs as it starts.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()
        if IReactorCore.providedBy(self.reactor):
            self.reactor.callWhenRunning(self.reactorRunning)

    def reactorRunning(self) -> None:
        """
        The reactor runs: do the work.
        """
        raise NotImplementedError()


class FreezeStartupObjects(AtReactorStart):
    """
    Once the reactor runs, collects garbage, then moves every object made
    while starting (modules, Twisted, a restored snapshot) out of the sight
    of the cyclic garbage collector with C{gc.freeze} (on CPython; PyPy's
    collector has no such call).

    Those objects live as long as the process, yet each full pass of the
    collector walked them all again: about 50,000 with no snapshot, and
    passes come often while connections pile up.  Measured with bench/
    workload (e), 10,000 connections opened in a burst: 1.1 to 2.1 s and 25
    microseconds of CPU per connection before, 0.13 s and 13 after.  Frozen
    objects are still freed when their last reference goes; only cycles
    among them are not.
    """

    def reactorRunning(self) -> None:
        freeze = getattr(gc, "freeze", None)
        if freeze is not None:
            gc.collect()
            freeze()


class ExitCleanlyOnSignals(AtReactorStart):
    """
    Makes SIGTERM (and memcached's graceful-shutdown signal, SIGUSR1) stop
    the server the graceful way and exit with status 0, as memcached does.

    Twisted's own SIGTERM handler re-raises the signal once the reactor has
    stopped, so the process would end "killed by SIGTERM"; supervisors take
    that for a crash.  The handlers are installed once the reactor runs,
    replacing the ones it installs at startup.
    """

    signals = (signal.SIGTERM, signal.SIGUSR1)

    def reactorRunning(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number in self.signals:
            signal.signal(number, self._stop)

    def _stop(self, number: int, frame: Any) -> None:
        self.reactor.callFromThread(self.reactor.stop)


class ReloadCertificatesOnSignal(AtReactorStart):
    """
    Makes SIGHUP reload the certificates of the C{mtls:} endpoints, as the
    C{refresh_certs} command does.

    Like L{ExitCleanlyOnSignals}, the handler is installed once the reactor
    runs (and only in the main thread); the one it replaced comes back when
    the service stops.
    """

    log = Logger()
    signalNumber = signal.SIGHUP

    def __init__(self, reactor: Any, reload: Callable[[], str | None]) -> None:
        super().__init__(reactor)
        self.reload = reload
        self._previous: Any = None

    def stopService(self) -> None:
        super().stopService()
        if self._previous is not None:
            signal.signal(self.signalNumber, self._previous)
            self._previous = None

    def reactorRunning(self) -> None:
        if not self.running or self._previous is not None:
            return
        if threading.current_thread() is not threading.main_thread():
            return
        previous = signal.signal(self.signalNumber, self._received)
        self._previous = signal.SIG_DFL if previous is None else previous

    def _received(self, number: int, frame: Any) -> None:
        self.reactor.callFromThread(self._reload)

    def _reload(self) -> None:
        self.log.info("SIGHUP: reloading the TLS certificates")
        self.reload()


def makeService(config: Mapping[str, Any], reactor: Any = None) -> MultiService:
    """
    Build the whole server as one service.

    @param config: parsed L{Options}, or a plain mapping with the same keys
        (see L{settingsFromOptions}).
    @param reactor: the reactor to listen with and the clock for the store
        and the sweep; the global reactor if L{None}.

    @return: a service whose children are a L{TimerService} named
        C{"sweeper"} that calls the store's C{sweepExpired} every
        L{SWEEP_INTERVAL} seconds, one named C{"evictions"} that logs an
        eviction summary every L{SUMMARY_INTERVAL} seconds, with C{--metrics}
        a service named C{"metrics"} serving C{/metrics}, then one listening
        service per endpoint;
        with C{mtls:} endpoints, last, a L{ReloadCertificatesOnSignal}.
        C{refresh_certs} reloads those endpoints' files too.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = config.get("settings")
    if not isinstance(settings, ServerSettings):
        settings = settingsFromOptions(config)
    store = MemoryStore(
        reactor,
        maxBytes=settings.memoryLimit,
        maxItemSize=settings.maxItemSize,
        useCas=settings.useCas,
    )
    factory = CacheServerFactory(store, reactor, settings)
    top = MultiService()
    # Children stop in reverse order: listeners first, then open connections
    # are drained, then the snapshot is saved.
    if settings.snapshotPath is not None:
        snapshots = SnapshotService(
            store, FilePath(settings.snapshotPath), reactor, settings.snapshotInterval
        )
        snapshots.setName(SNAPSHOT_NAME)
        snapshots.setServiceParent(top)
    ExitCleanlyOnSignals(reactor).setServiceParent(top)
    FreezeStartupObjects(reactor).setServiceParent(top)
    drainer = DrainService(factory, settings.drainTimeout)
    drainer.setName(DRAIN_NAME)
    drainer.setServiceParent(top)
    sweeper = TimerService(SWEEP_INTERVAL, store.sweepExpired)
    sweeper.clock = reactor
    sweeper.setName(SWEEPER_NAME)
    sweeper.setServiceParent(top)
    evictions = TimerService(SUMMARY_INTERVAL, EvictionSummary(store).report)
    evictions.clock = reactor
    evictions.setName(EVICTIONS_NAME)
    evictions.setServiceParent(top)
    if settings.metrics is not None:
        metrics = metricsService(settings.metrics, factory.cache, reactor)
        metrics.setName(METRICS_NAME)
        metrics.setServiceParent(top)
    certificates = []
    for description in settings.listen:
        listener = strports.service(description, factory, reactor=reactor)
        listener.setServiceParent(top)
        if isinstance(listener.endpoint, TLSServerEndpoint):
            certificates.append(listener.endpoint.certificates)
    if certificates:
        reloader = CertificateReloader(certificates, reactor)
        factory.cache.certificates = reloader
        ReloadCertificatesOnSignal(reactor, reloader.reload).setServiceParent(top)
    return top
