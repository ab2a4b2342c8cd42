"""
A memcached-compatible server for your tests: no memcached binary needed.

For trial (or any Twisted test running on the reactor), L{startServer}
starts a server on a free port on 127.0.0.1 and stops it when the test
ends:

    from myproto.testing import startServer

    class CacheTests(TestCase):
        async def test_roundTrip(self) -> None:
            server = await startServer(self)
            ...connect a client to server.address...

For pytest, this module is also a plugin, registered through the C{pytest11}
entry point, so installing myproto is enough.  Its fixtures are:

    - C{myproto_server}: a fresh server for each test;
    - C{myproto_tls_server}: the same, serving TLS only, with a self-signed
      certificate (C{.certificate} is its PEM file, C{.sslContext()} a
      client context that trusts it);
    - C{myproto_session_server}, C{myproto_session_tls_server}: one server
      for the whole session, shared by every test that asks for it (flush it
      with C{.client.flushAll()} if a test needs it empty);
    - C{myproto_reactor}: the L{ReactorThread} they run on.

Each gives a L{ThreadedServer}.  The marker C{@pytest.mark.myproto(...)}
passes settings to the per-test fixtures, named as L{myproto.embedded.serve}
takes them (C{memory_limit=8}, C{max_item_size="2k"}...).

pytest fixtures are synchronous and the test's own code blocks, so the
plugin runs Twisted's global reactor in a daemon thread, started when a test
first asks for a server and stopped at the end of the session; every call
into it goes through C{callFromThread}.  If the reactor is already running in
another thread (crochet, say), the plugin uses it as it is; a test suite
that runs the reactor in the test thread itself (pytest-twisted) should use
L{startServer} instead.

Importing this module imports neither pytest nor Twisted: pytest is needed
only by the fixtures, which are built when pytest loads the plugin, and
Twisted only once a test asks for a server, so the plugin costs other test
suites in the same environment nothing.
"""

from __future__ import annotations

import threading
import types
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar, cast, overload

# pytest imports this module for every run in an environment where myproto
# is installed, so it imports only what the hooks need; Twisted and the
# server come in when a test first asks for one.
if TYPE_CHECKING:
    import ssl

    from twisted.internet.defer import Deferred
    from twisted.python.filepath import FilePath
    from twisted.trial.unittest import TestCase

    from myproto.embedded import EmbeddedServer
    from myproto.local import LocalClient

T = TypeVar("T")

# The name clients check the self-signed certificate against; it is also
# valid for the address 127.0.0.1.
TLS_HOSTNAME = "localhost"

# How long, in seconds, the reactor thread may take to stop at the end.
STOP_TIMEOUT = 10.0

MARKER = "myproto"


def tlsListen(directory: FilePath[str], hostname: str = TLS_HOSTNAME) -> tuple[str, str]:
    """
    Make (or reuse) a self-signed certificate and describe a TLS endpoint
    that serves with it on a free port on 127.0.0.1.

    The endpoint is myproto's C{mtls:} without C{caCerts}, which serves
    server-authenticated TLS as Twisted's C{ssl:} does, but has OpenSSL read
    the PEM files itself.  Twisted's C{ssl:} hands OpenSSL pyOpenSSL's
    C{X509} and C{PKey} objects, which pyOpenSSL deprecates, so every test
    that used a TLS server printed two C{DeprecationWarning}s (and failed
    under C{-W error}).

    @param directory: where the key and certificate are kept.
    @param hostname: the DNS name the certificate is for.

    @return: the C{mtls:} endpoint description, and the certificate's PEM
        file for clients to trust.
    """
    from twisted.internet.endpoints import quoteStringArgument

    from myproto.certificates import selfSignedCertificate

    keyPath, certPath = selfSignedCertificate(directory, hostname)
    description = "mtls:0:interface=127.0.0.1:privateKey={}:certKey={}".format(
        quoteStringArgument(keyPath.path), quoteStringArgument(certPath.path)
    )
    return description, certPath.path


def _listeners(
    listen: str | list[str] | None, tls: bool, directory: Callable[[], FilePath[str]]
) -> tuple[list[str], str | None]:
    """
    The endpoints a test server listens on: those asked for, or a free port
    on 127.0.0.1; with C{tls}, a TLS endpoint in place of that default (or
    after those asked for).
    """
    from myproto.embedded import EPHEMERAL_LISTEN

    descriptions = [listen] if isinstance(listen, str) else list(listen or [])
    certificate = None
    if tls:
        description, certificate = tlsListen(directory())
        descriptions.append(description)
    return descriptions or [EPHEMERAL_LISTEN], certificate


def startServer(
    testCase: TestCase,
    listen: str | list[str] | None = None,
    tls: bool = False,
    reactor: Any = None,
    **options: Any,
) -> Deferred[EmbeddedServer]:
    """
    Start a server for one trial test, stopped (connections closed, port
    released) when the test's cleanups run.

    @param testCase: the running test; the server is stopped by its
        C{addCleanup}, and a TLS certificate goes under its C{mktemp()}.
    @param listen: endpoint descriptions; by default a free port on
        127.0.0.1.
    @param tls: serve TLS with a new self-signed certificate for
        C{localhost} and 127.0.0.1 (instead of plain TCP, unless C{listen}
        is given too); the server's C{certificate} is its PEM file.
    @param reactor: the reactor to serve on; the global one if L{None}.
    @param options: server settings, as L{myproto.embedded.serve} takes
        them.

    @return: a L{Deferred} that fires with the running L{EmbeddedServer}.
    """
    from twisted.internet.defer import Deferred
    from twisted.python.filepath import FilePath

    from myproto.embedded import serve

    descriptions, certificate = _listeners(listen, tls, lambda: FilePath(testCase.mktemp()))

    async def start() -> EmbeddedServer:
        server = await serve(reactor, descriptions, **options)
        server.certificate = certificate
        testCase.addCleanup(server.stop)
        return server

    return Deferred.fromCoroutine(start())


class ReactorThread:
    """
    Twisted's reactor running in a thread of its own, for code that is not
    itself on the reactor: a blocking test suite, a WSGI application...

    @ivar reactor: the reactor.
    """

    def __init__(self, reactor: Any = None) -> None:
        """
        @param reactor: the reactor to run; the global one if L{None}.
        """
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """
        Run the reactor in a daemon thread, unless it already runs in some
        other thread, and wait until it turns.

        @raise RuntimeError: if called from the reactor's own thread, where
            waiting for it would wait forever.
        """
        self._checkThread()
        if not self.reactor.running:
            self._thread = threading.Thread(
                target=self.reactor.run,
                kwargs={"installSignalHandlers": False},
                name="myproto reactor",
                daemon=True,
            )
            self._thread.start()
        self.call(lambda: None)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """
        Stop the reactor, if L{start} started it, and wait for its thread to
        end.  A stopped reactor cannot run again in this process.
        """
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self.reactor.callFromThread(self.reactor.stop)
        thread.join(timeout)

    @overload
    def call(self, function: Callable[..., Deferred[T]], *args: Any, **kwargs: Any) -> T: ...

    @overload
    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """
        Call a function in the reactor thread and wait for its result; if it
        returns a L{Deferred}, wait for that.

        @return: the result.
        @raise Exception: what the function raised, or its L{Deferred}'s
            failure.
        """
        from twisted.internet.threads import blockingCallFromThread

        self._checkThread()
        return blockingCallFromThread(self.reactor, function, *args, **kwargs)

    def startServer(
        self,
        listen: str | list[str] | None = None,
        tls: bool = False,
        directory: FilePath[str] | None = None,
        **options: Any,
    ) -> ThreadedServer:
        """
        Start a server on the reactor and wait until it listens.

        @param listen: endpoint descriptions; by default a free port on
            127.0.0.1.
        @param tls: serve TLS (see L{myproto.testing.startServer}).
        @param directory: where to keep the TLS key and certificate;
            required with C{tls}.
        @param options: server settings, as L{myproto.embedded.serve} takes
            them.

        @return: the server; stop it with its C{stop} method.
        """

        def tlsDirectory() -> FilePath[str]:
            if directory is None:
                raise TypeError("A TLS server needs a directory for its certificate")
            return directory

        from myproto.embedded import serve

        descriptions, certificate = _listeners(listen, tls, tlsDirectory)
        server = self.call(serve, self.reactor, descriptions, **options)
        server.certificate = certificate
        return ThreadedServer(self, server)

    def _checkThread(self) -> None:
        from twisted.python import threadable

        if self.reactor.running and threadable.isInIOThread():
            raise RuntimeError(
                "This is the reactor's thread: use myproto.embedded.serve or"
                " myproto.testing.startServer here instead"
            )


class _InReactor:
    """
    Forwards method calls to an object that lives in the reactor thread.
    """

    def __init__(self, thread: ReactorThread, target: object) -> None:
        self._thread = thread
        self._target = target

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._target, name)

        def inReactor(*args: Any, **kwargs: Any) -> Any:
            return self._thread.call(method, *args, **kwargs)

        return inReactor


class ThreadedServer:
    """
    A server running on a L{ReactorThread}, used from another thread.

    @ivar server: the server itself; touch it only in the reactor thread
        (see L{call}).
    """

    def __init__(self, thread: ReactorThread, server: EmbeddedServer) -> None:
        self._thread = thread
        self.server = server
        self.address: tuple[str, int] = server.address
        self.certificate: str | None = server.certificate

    @property
    def host(self) -> str:
        """
        The address clients connect to: C{127.0.0.1} unless told otherwise.
        """
        return self.address[0]

    @property
    def port(self) -> int:
        """
        The TCP port it listens on.
        """
        return self.address[1]

    @property
    def client(self) -> LocalClient:
        """
        The served cache, read and written directly (see
        L{myproto.local.LocalClient}); each call runs in the reactor thread
        and waits for its result.
        """
        return cast("LocalClient", _InReactor(self._thread, self.server.client))

    @overload
    def call(self, function: Callable[..., Deferred[T]], *args: Any, **kwargs: Any) -> T: ...

    @overload
    def call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """
        Call a function in the reactor thread and wait for its result; if it
        returns a L{Deferred}, wait for that.
        """
        return self._thread.call(function, *args, **kwargs)

    def sslContext(self) -> ssl.SSLContext:
        """
        @return: a client context that trusts this server's self-signed
            certificate, for C{pymemcache.Client(..., tls_context=...)}.
        @raise ValueError: if the server does not serve TLS.
        """
        import ssl

        if self.certificate is None:
            raise ValueError("This server was started without TLS")
        return ssl.create_default_context(cafile=self.certificate)

    def stop(self) -> None:
        """
        Stop the server (see L{EmbeddedServer.stop}) and wait until it has.
        """
        self._thread.call(self.server.stop)


# The pytest plugin.  pytest calls these hooks by name; nothing else here
# needs pytest, which is imported only once pytest itself loads the plugin.

_FIXTURES = "myproto-fixtures"


def pytest_configure(config: Any) -> None:
    """
    pytest hook: declare the C{myproto} marker and register the fixtures.
    """
    config.addinivalue_line(
        "markers",
        MARKER + "(**options): settings for the myproto_server and"
        " myproto_tls_server fixtures, as myproto.embedded.serve takes them",
    )
    if not config.pluginmanager.has_plugin(_FIXTURES):
        config.pluginmanager.register(_makeFixtures(), _FIXTURES)


def _makeFixtures() -> types.ModuleType:
    """
    @return: a pytest plugin (a module object, as pytest scans those for
        fixtures) with the fixtures this module's docstring describes.
    """
    import pytest
    from twisted.python.filepath import FilePath

    def markedOptions(request: Any) -> dict[str, Any]:
        marker = request.node.get_closest_marker(MARKER)
        return dict(marker.kwargs) if marker is not None else {}

    def running(server: ThreadedServer) -> Iterator[ThreadedServer]:
        try:
            yield server
        finally:
            server.stop()

    @pytest.fixture(scope="session")
    def myproto_reactor() -> Iterator[ReactorThread]:
        """
        The reactor, running in a thread of its own for the session.
        """
        thread = ReactorThread()
        thread.start()
        try:
            yield thread
        finally:
            thread.stop()

    @pytest.fixture(scope="session")
    def myproto_tls_directory(tmp_path_factory: Any) -> FilePath[str]:
        """
        Where the TLS fixtures keep their self-signed certificate.
        """
        return FilePath(str(tmp_path_factory.mktemp("myproto-tls")))

    @pytest.fixture
    def myproto_server(
        request: Any, myproto_reactor: ReactorThread, myproto_tls_directory: Any
    ) -> Iterator[ThreadedServer]:
        """
        A fresh server for this test, on a free port on 127.0.0.1.
        """
        options = markedOptions(request)
        yield from running(
            myproto_reactor.startServer(directory=myproto_tls_directory, **options)
        )

    @pytest.fixture
    def myproto_tls_server(
        request: Any, myproto_reactor: ReactorThread, myproto_tls_directory: Any
    ) -> Iterator[ThreadedServer]:
        """
        A fresh server for this test, serving TLS with a self-signed
        certificate.
        """
        options = markedOptions(request)
        options["tls"] = True
        yield from running(
            myproto_reactor.startServer(directory=myproto_tls_directory, **options)
        )

    @pytest.fixture(scope="session")
    def myproto_session_server(myproto_reactor: ReactorThread) -> Iterator[ThreadedServer]:
        """
        One server shared by the whole session.
        """
        yield from running(myproto_reactor.startServer())

    @pytest.fixture(scope="session")
    def myproto_session_tls_server(
        myproto_reactor: ReactorThread, myproto_tls_directory: Any
    ) -> Iterator[ThreadedServer]:
        """
        One TLS server shared by the whole session.
        """
        yield from running(
            myproto_reactor.startServer(tls=True, directory=myproto_tls_directory)
        )

    plugin = types.ModuleType(__name__ + ".fixtures")
    vars(plugin).update(
        myproto_reactor=myproto_reactor,
        myproto_tls_directory=myproto_tls_directory,
        myproto_server=myproto_server,
        myproto_tls_server=myproto_tls_server,
        myproto_session_server=myproto_session_server,
        myproto_session_tls_server=myproto_session_tls_server,
    )
    return plugin
