"""
Run a myproto server inside another Python program, on its running reactor.

One call, L{serve}, starts a server with the same settings as
C{twistd myproto} and returns a L{Deferred} that fires with an
L{EmbeddedServer}: the addresses it listens on, direct access to the cache
it serves (L{EmbeddedServer.client}), and L{EmbeddedServer.stop}.

    from twisted.internet import reactor
    from myproto.embedded import serve

    server = await serve(reactor, memory_limit=16)
    print(server.address)            # ('127.0.0.1', 40123): give it to clients
    server.client.set(b"greeting", b"hello")
    await server.stop()

The server is built by the same L{myproto.service.buildServer} as the
twistd plugin, less what belongs to a whole process rather than to one
server in it: the signal handlers (SIGTERM, and SIGHUP with C{mtls:}; the
host program decides what signals do) and the garbage-collector freeze.  Its
endpoints are listened on here rather than by strports services, so that
the bound ports are known and a port that cannot be bound fails the call
instead of being logged.  The cache's other listener (C{metrics}) is run as
C{twistd} runs it.

Everything here must be called from the reactor thread.  From another
thread, see L{myproto.testing.ReactorThread}.

An asyncio program can serve through Twisted's asyncio reactor, installed on
its running loop (the README has the example).  The reactor is then never
I{run}, so its thread pool never starts, and the C{snapshot} option, which
writes its file from that pool, would wait forever at L{EmbeddedServer.stop}:
use snapshots only where the reactor runs.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.interfaces import IAddress, IListeningPort, IStreamServerEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from myproto.cache import Cache
from myproto.config import ServerSettings
from myproto.local import LocalClient
from myproto.options import Options, settingsFromOptions
from myproto.protocol import CacheServerFactory
from myproto.service import (
    ExitCleanlyOnSignals,
    FreezeStartupObjects,
    ReloadCertificatesOnSignal,
    buildServer,
)
from myproto.store import MemoryStore

# A port the system picks, on the loopback interface only.
EPHEMERAL_LISTEN = "tcp:0:interface=127.0.0.1"

# The parts of a twistd server that act on the whole process (signal
# handlers, the garbage collector), which belong to the program that embeds
# it: serve never makes them.  Kept as a public name for callers that check.
PROCESS_SERVICES = (ExitCleanlyOnSignals, ReloadCertificatesOnSignal, FreezeStartupObjects)


def optionNames() -> frozenset[str]:
    """
    @return: the keyword arguments L{serve} takes for server settings: the
        long options of C{twistd myproto}, with C{_} in place of C{-}
        (C{memory_limit}, C{max_item_size}, C{idle_timeout}...).
    """
    return frozenset(name.replace("-", "_") for name in Options() if name != "listen")


def configFromKeywords(listen: str | Iterable[str], options: dict[str, Any]) -> dict[str, Any]:
    """
    Turn L{serve}'s arguments into the mapping
    L{myproto.options.settingsFromOptions} reads, with the command line's
    keys and units.

    @param listen: one endpoint description, or several.
    @param options: option names as L{optionNames} lists them, and values as
        on the command line (C{memory_limit=16} is 16 megabytes;
        C{max_item_size} may be C{"2m"}).

    @return: the configuration.

    @raise TypeError: for an option name C{twistd myproto} does not have.
    """
    known = optionNames()
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(
            "Unknown myproto option(s): {}; known: {}".format(
                ", ".join(unknown), ", ".join(sorted(known))
            )
        )
    descriptions = [listen] if isinstance(listen, str) else list(listen)
    if not descriptions:
        raise TypeError("Give at least one endpoint description to listen on")
    config = {name.replace("_", "-"): value for name, value in options.items()}
    config["listen"] = descriptions
    return config


class EmbeddedServer:
    """
    A server started by L{serve}.

    @ivar ports: the listening ports, one per endpoint description, in the
        order given.
    @ivar addresses: the address of each port (an C{IPv4Address}, an
        C{IPv6Address} or a C{UNIXAddress}), in the same order; they stay
        readable after L{stop}.
    @ivar factory: the protocol factory every connection comes from.
    @ivar service: the rest of the server (expiry sweep, connection drain,
        snapshots), already started.
    @ivar certificate: the PEM certificate file clients should trust, when
        L{myproto.testing} started this server with TLS; otherwise L{None}.
    """

    log = Logger()

    def __init__(
        self,
        ports: Sequence[IListeningPort],
        factory: CacheServerFactory,
        service: MultiService,
    ) -> None:
        self.ports = list(ports)
        self.addresses: list[IAddress] = [port.getHost() for port in self.ports]
        self.factory = factory
        self.service = service
        self.certificate: str | None = None
        self.client = LocalClient(factory.cache)
        self._waiters: list[Deferred[None]] = []
        self._done = False
        self._failure: Failure | None = None

    @property
    def address(self) -> tuple[str, int]:
        """
        C{(host, port)} of the first TCP (or TLS) listener: what a memcached
        client such as pymemcache's C{Client} takes.

        @raise LookupError: if the server listens on no TCP port.
        """
        for address in self.addresses:
            host = getattr(address, "host", None)
            port = getattr(address, "port", None)
            if isinstance(host, str) and isinstance(port, int):
                return host, port
        raise LookupError("This server has no TCP listener")

    @property
    def host(self) -> str:
        """
        The host part of L{address}.
        """
        return self.address[0]

    @property
    def port(self) -> int:
        """
        The port part of L{address}.
        """
        return self.address[1]

    @property
    def cache(self) -> Cache:
        """
        The store, counters and settings that connections act on.
        """
        return self.factory.cache

    @property
    def store(self) -> MemoryStore:
        """
        The items themselves.  Prefer L{client}, which keeps the counters
        and the protocol's rules as a network client sees them.
        """
        return self.factory.cache.store

    @property
    def settings(self) -> ServerSettings:
        """
        The checked settings the server runs with.
        """
        return self.factory.settings

    def stop(self) -> Deferred[None]:
        """
        Stop listening, let connected clients finish the request under way
        and close their connections (within the drain timeout), stop the
        expiry sweep, and save the snapshot if one is configured.

        Calling it again returns a L{Deferred} for the same outcome.

        @return: a L{Deferred} that fires when all of that is done.
        """
        waiter: Deferred[None] = Deferred()
        if self._done:
            waiter.callback(self._failure)
            return waiter
        self._waiters.append(waiter)
        if len(self._waiters) == 1:
            Deferred.fromCoroutine(self._stop()).addBoth(self._stopped)
        return waiter

    def _stopped(self, outcome: None | Failure) -> None:
        self._done = True
        self._failure = outcome if isinstance(outcome, Failure) else None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(self._failure)

    async def _stop(self) -> None:
        await gatherResults(
            [maybeDeferred(port.stopListening) for port in self.ports],
            consumeErrors=True,
        )
        await maybeDeferred(self.service.stopService)


def serve(
    reactor: Any = None,
    listen: str | Iterable[str] = EPHEMERAL_LISTEN,
    **options: Any,
) -> Deferred[EmbeddedServer]:
    """
    Start a server on the running reactor.

    @param reactor: the reactor to listen with and to take time from; the
        global reactor if L{None}.
    @param listen: a Twisted endpoint description, or several, as
        C{--listen} takes them.  The default listens on a free port on
        127.0.0.1; L{EmbeddedServer.address} says which.
    @param options: the other options of C{twistd myproto}, by their long
        names with C{_} for C{-}, in the command line's units:
        C{memory_limit=16} (megabytes), C{max_item_size="2m"},
        C{conn_limit}, C{disable_cas=True}, C{enable_shutdown}, C{banner},
        C{idle_timeout}, C{request_timeout}, C{auth_file}, C{snapshot},
        C{snapshot_interval}, C{verbose}.

    @return: a L{Deferred} that fires with the L{EmbeddedServer} once every
        endpoint listens, or fails (having closed any that did) if one
        cannot.

    @raise TypeError: for an unknown option name.
    @raise ValueError: for a value C{twistd myproto} would refuse, with the
        same message.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = settingsFromOptions(configFromKeywords(listen, options))
    parts = buildServer(settings, reactor, processWide=False)
    service = MultiService()
    for child in parts.cacheServices:
        child.setServiceParent(service)
    # Listened on here, not through their strports services; the endpoint
    # itself is kept, as mtls: endpoints' certificates reload through it.
    endpoints = [listener.endpoint for listener in parts.listeners]
    return Deferred.fromCoroutine(_start(endpoints, parts.factory, service))


async def _start(
    endpoints: list[IStreamServerEndpoint],
    factory: CacheServerFactory,
    service: MultiService,
) -> EmbeddedServer:
    # The snapshot, if any, is loaded before the first client can connect.
    service.privilegedStartService()
    service.startService()
    ports: list[IListeningPort] = []
    try:
        for endpoint in endpoints:
            ports.append(await endpoint.listen(factory))
    except BaseException:
        await EmbeddedServer(ports, factory, service).stop()
        raise
    server = EmbeddedServer(ports, factory, service)
    EmbeddedServer.log.info(
        "myproto serving on {addresses}", addresses=", ".join(map(str, server.addresses))
    )
    return server
