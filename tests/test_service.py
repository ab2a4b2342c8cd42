"""
Tests for L{myproto.service.buildServer}: which services one server is made
of, and how they are sorted for C{twistd} and for an embedding program.
"""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.endpoints import quoteStringArgument
from twisted.internet.testing import MemoryReactorClock
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory
from myproto.service import (
    DrainService,
    ExitCleanlyOnSignals,
    FreezeStartupObjects,
    ReloadCertificatesOnSignal,
    ServerParts,
    buildServer,
)
from myproto.certificates import selfSignedCertificate


class BuildServerTests(SynchronousTestCase):
    """
    L{buildServer} makes the factory and every service, starts none of
    them, and sorts them by who should run them.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def build(self, processWide: bool = True, **settings: object) -> ServerParts:
        return buildServer(ServerSettings(**settings), self.reactor, processWide)  # type: ignore[arg-type]

    def mtlsDescription(self) -> str:
        """
        @return: an C{mtls:} endpoint description on port 0, with a
            certificate made for this test.
        """
        keyFile, certFile = selfSignedCertificate(FilePath(self.mktemp()), "localhost")
        return "mtls:0:interface=127.0.0.1:privateKey={}:certKey={}:caCerts={}".format(
            *(quoteStringArgument(path.path) for path in (keyFile, certFile, certFile))
        )

    def test_defaults(self) -> None:
        """
        With the default settings: the cache's services are the drain, the
        sweeper and the eviction summary; one listener per endpoint, with
        the factory; SIGTERM handling and the garbage-collector freeze.
        """
        parts = self.build()
        self.assertIsInstance(parts.factory, CacheServerFactory)
        self.assertEqual(parts.factory.settings, ServerSettings())
        self.assertEqual(
            [service.name for service in parts.cacheServices], ["drain", "sweeper", "evictions"]
        )
        [drain, sweeper, _] = parts.cacheServices
        self.assertIsInstance(drain, DrainService)
        self.assertIs(sweeper.call[0].__self__, parts.factory.cache.store)  # type: ignore[attr-defined]
        [listener] = parts.listeners
        self.assertIsInstance(listener, StreamServerEndpointService)
        self.assertIs(listener.factory, parts.factory)
        self.assertEqual(
            [type(service) for service in parts.processServices],
            [ExitCleanlyOnSignals, FreezeStartupObjects],
        )

    def test_nothingStarts(self) -> None:
        """
        Building listens on nothing and schedules nothing: the caller starts
        what it takes.
        """
        parts = self.build(listen=("tcp:11311", "unix:m.sock"))
        self.assertEqual(len(parts.listeners), 2)
        self.assertEqual((self.reactor.tcpServers, self.reactor.unixServers), ([], []))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.reactor.whenRunningHooks, [])
        self.assertFalse([service for service in parts.services if service.running])

    def test_everyServiceInOrder(self) -> None:
        """
        C{services} holds each service once, in C{twistd}'s order: the
        snapshot first (it loads before the startup objects are frozen and
        saves after the drain), the listeners after the drain (they stop
        before it), and the SIGHUP handler last.
        """
        parts = self.build(
            snapshotPath=self.mktemp(),
            metrics="tcp:9150:interface=127.0.0.1",
            listen=("tcp:11311", self.mtlsDescription()),
        )
        self.assertEqual(
            [service.name for service in parts.cacheServices],
            ["snapshot", "drain", "sweeper", "evictions", "metrics"],
        )
        [snapshot, *rest] = parts.cacheServices
        [signals, freeze, reload] = parts.processServices
        self.assertIsInstance(reload, ReloadCertificatesOnSignal)
        self.assertEqual(
            list(parts.services),
            [snapshot, signals, freeze, *rest, *parts.listeners, reload],
        )

    def test_embeddedGetsNoProcessServices(self) -> None:
        """
        With C{processWide=False}, no signal handler and no freeze are made,
        not even the SIGHUP one for C{mtls:}; C{refresh_certs} and the TLS
        lines of C{stats} are wired all the same.
        """
        parts = self.build(processWide=False, listen=(self.mtlsDescription(),))
        self.assertEqual(parts.processServices, ())
        processWide = (ExitCleanlyOnSignals, FreezeStartupObjects, ReloadCertificatesOnSignal)
        self.assertFalse([s for s in parts.services if isinstance(s, processWide)])
        self.assertEqual(list(parts.services), [*parts.cacheServices, *parts.listeners])
        cache = parts.factory.cache
        self.assertIsNotNone(cache.certificates)

    def test_noCertificatesNoReload(self) -> None:
        """
        Without C{mtls:} endpoints, nothing reloads certificates.
        """
        parts = self.build()
        self.assertIsNone(parts.factory.cache.certificates)
        self.assertFalse(
            [s for s in parts.services if isinstance(s, ReloadCertificatesOnSignal)]
        )
