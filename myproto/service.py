"""
The services one server runs, built in one place from its settings.

L{buildServer} makes the store, the L{CacheServerFactory} and every service
around them, and sorts them by who should run them: the cache's own (expiry
sweep, eviction summary, drain, snapshot, metrics), the listeners, and those
that act on the whole process (signal handlers, the garbage-collector
freeze).  C{twistd myproto} (L{myproto.tap.makeService}) runs them all; an
embedding program (L{myproto.embedded.serve}) asks for no process-wide ones
and listens on the endpoints itself.
"""

from __future__ import annotations

import gc
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable

from twisted.application.internet import StreamServerEndpointService, TimerService
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger
from twisted.python.filepath import FilePath

from myproto.config import ServerSettings
from myproto._tuning import raiseListenErrorsAtStart
from myproto.conns import Listener
from myproto.dashboard import dashboardService
from myproto.evictions import SUMMARY_INTERVAL, EvictionSummary
from myproto.protocol import CacheServerFactory
from myproto.snapshot import SnapshotService
from myproto.secondflush import SecondFlushStore
from myproto.store import MemoryStore
from myproto.tls import CertificateReloader, TLSServerEndpoint
from myproto.udp import udpService

# Seconds between two sweeps of expired items out of the store.
SWEEP_INTERVAL = 1.0

SWEEPER_NAME = "sweeper"
EVICTIONS_NAME = "evictions"
METRICS_NAME = "metrics"
SNAPSHOT_NAME = "snapshot"
DRAIN_NAME = "drain"


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


class _NotingEndpoint:
    """
    Listens on an endpoint and tells a L{ListeningService} the port.
    """

    def __init__(self, endpoint: Any, service: "ListeningService") -> None:
        self._endpoint = endpoint
        self._service = service

    def listen(self, factory: Any) -> Deferred[Any]:
        return self._endpoint.listen(factory).addCallback(self._service.listening)


class ListeningService(StreamServerEndpointService):
    """
    Serves one endpoint, and lists its port in the cache's C{listeners}
    while it listens (C{stats conns} shows them, as memcached shows its
    listening sockets).

    @ivar port: the listening port, once it listens; else L{None}.
    """

    factory: CacheServerFactory

    def __init__(self, endpoint: Any, factory: CacheServerFactory) -> None:
        super().__init__(endpoint, factory)
        raiseListenErrorsAtStart(self)
        self.port: Any = None
        self._listener: Listener | None = None

    def privilegedStartService(self) -> None:
        # Twisted's service listens on self.endpoint; for that one call it
        # is one that notes the port, and self.endpoint stays the real one
        # (refresh_certs finds mtls: certificates through it).
        endpoint = self.endpoint
        self.endpoint = _NotingEndpoint(endpoint, self)
        try:
            super().privilegedStartService()
        finally:
            self.endpoint = endpoint

    def listening(self, port: Any) -> Any:
        """
        The endpoint listens on C{port}: list it.
        """
        cache = self.factory.cache
        self.port = port
        self._listener = Listener(port, cache.store.now())
        cache.listeners.add(self._listener)
        return port

    def stopService(self) -> Deferred[None]:
        if self._listener is not None:
            self.factory.cache.listeners.discard(self._listener)
            self._listener = None
        self.port = None
        return super().stopService()


@dataclass(frozen=True)
class ServerParts:
    """
    What L{buildServer} made, sorted so that a caller can take only what it
    runs.

    @ivar factory: the protocol factory every connection comes from; its
        C{cache} holds the store, counters and settings.
    @ivar cacheServices: the cache's own services, in start order: with a
        snapshot file the L{SnapshotService} named C{"snapshot"}; the
        L{DrainService} C{"drain"}; the L{TimerService}s C{"sweeper"} and
        C{"evictions"}; with C{metrics} the service C{"metrics"}.
    @ivar listeners: one listening service per C{listen} description (as
        served: L{ServerSettings.endpoints}), in
        order, all with L{factory}.  Their C{endpoint}s are kept even by a
        caller that listens itself: C{mtls:} certificates reload through
        them.
    @ivar processServices: the services that act on the whole process:
        L{ExitCleanlyOnSignals}, L{FreezeStartupObjects} and, with C{mtls:}
        endpoints, L{ReloadCertificatesOnSignal}.  Empty when built with
        C{processWide=False}.
    @ivar services: all of the above in the order they start (they stop in
        reverse): the snapshot first, so that it is loaded before the
        objects made at startup are frozen, and saved last, after the
        drain; the listeners after the drain, so they stop before it; the
        SIGHUP handler last, so the one it replaced comes back first.
    """

    factory: CacheServerFactory
    cacheServices: tuple[IService, ...]
    listeners: tuple[ListeningService, ...]
    processServices: tuple[IService, ...]
    services: tuple[IService, ...]
    datagramListeners: tuple[IService, ...] = ()


def _named(service: Service, name: str) -> Service:
    service.setName(name)
    return service


def _timer(interval: float, call: Callable[[], object], reactor: Any, name: str) -> TimerService:
    timer = TimerService(interval, call)
    timer.clock = reactor
    timer.setName(name)
    return timer


def buildServer(
    settings: ServerSettings, reactor: Any, processWide: bool = True
) -> ServerParts:
    """
    Build one server: a store and a protocol factory that follow
    C{settings}, and the services that keep them.

    Nothing is started and nothing listens yet; the caller puts the services
    it wants under its own parent.  C{refresh_certs} and the TLS lines of
    C{stats} are wired to the C{mtls:} endpoints whether or not the SIGHUP
    handler is wanted.

    @param settings: the checked settings (see
        L{myproto.options.settingsFromOptions}).
    @param reactor: the reactor to listen with and the clock for the store,
        the timers and the drain.
    @param processWide: whether to make the services that act on the whole
        process (signal handlers, the garbage-collector freeze); a server
        embedded in another program leaves those to it.

    @return: the factory and the services, sorted.
    """
    store = (MemoryStore if settings.useCas else SecondFlushStore)(
        reactor,
        maxBytes=settings.memoryLimit,
        maxItemSize=settings.maxItemSize,
        useCas=settings.useCas,
        evictions=settings.evictions,
    )
    factory = CacheServerFactory(store, reactor, settings)
    snapshot: list[IService] = []
    if settings.snapshotPath is not None:
        path = FilePath(settings.snapshotPath)
        service = SnapshotService(store, path, reactor, settings.snapshotInterval)
        snapshot.append(_named(service, SNAPSHOT_NAME))
    running: list[IService] = [
        _named(DrainService(factory, settings.drainTimeout), DRAIN_NAME),
        _timer(SWEEP_INTERVAL, store.sweepExpired, reactor, SWEEPER_NAME),
        _timer(SUMMARY_INTERVAL, EvictionSummary(store).report, reactor, EVICTIONS_NAME),
    ]
    if settings.metrics is not None:
        metrics = dashboardService(settings.metrics, factory.cache, settings, reactor)
        running.append(_named(metrics, METRICS_NAME))
    listeners = [
        ListeningService(serverFromString(reactor, description), factory)
        for description in settings.endpoints
    ]
    udp = udpService(factory, reactor)
    datagram: list[IService] = [] if udp is None else [udp]
    atStart: list[IService] = []
    onSignal: list[IService] = []
    if processWide:
        atStart += [ExitCleanlyOnSignals(reactor), FreezeStartupObjects(reactor)]
    certificates = [
        listener.endpoint.certificates
        for listener in listeners
        if isinstance(listener.endpoint, TLSServerEndpoint)
    ]
    if certificates:
        reloader = CertificateReloader(certificates, reactor)
        factory.cache.certificates = reloader
        if processWide:
            onSignal.append(ReloadCertificatesOnSignal(reactor, reloader.reload))
    return ServerParts(
        factory=factory,
        cacheServices=tuple(snapshot + running),
        listeners=tuple(listeners),
        processServices=tuple(atStart + onSignal),
        # Why this order: see ServerParts.services.
        services=tuple(snapshot + atStart + running + listeners + datagram + onSignal),
        datagramListeners=tuple(datagram),
    )
