"""
Tests for L{myproto.testing}: the trial helper, and the pytest plugin run by
pytest itself in a child process (on a test file written here, on the
README's examples, and on the example project in C{examples/pagecache}).

pytest and pymemcache are in the test extra: without them these tests fail.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import re
import ssl
import sys
import warnings
from typing import Any, Callable

from twisted.internet.error import ConnectionRefusedError
from twisted.internet.threads import deferToThread
from twisted.internet.utils import getProcessOutputAndValue
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase, TestCase

from myproto.testing import tlsListen
from tests.readme import ROOT, childEnvironment, readmeExample

# pymemcache is in the test extra: without it these tests error, not skip.
from pymemcache.client.base import Client as PymemcacheClient


# A test module for the plugin's fixtures: fresh and shared servers, the
# marker, TLS, and calls into the reactor thread.
PLUGIN_TESTS = '''
import pytest
from pymemcache.client.base import Client

from myproto.embedded import EmbeddedServer

ports = []


def test_freshServer(myproto_server):
    ports.append(myproto_server.port)
    assert myproto_server.host == "127.0.0.1"
    client = Client(myproto_server.address)
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()
    myproto_server.client.set("left", "behind")


def test_anotherFreshServer(myproto_server):
    assert myproto_server.port not in ports
    assert myproto_server.client.get("left") is None


@pytest.mark.myproto(memory_limit=8, max_item_size="2k")
def test_marker(myproto_server):
    assert myproto_server.call(lambda: myproto_server.server.store.maxBytes) == 8 * 1024 * 1024
    assert myproto_server.client.stats()["limit_maxbytes"] == str(8 * 1024 * 1024)


def test_callIsInTheReactorThread(myproto_server):
    from twisted.python import threadable
    assert not threadable.isInIOThread()
    assert myproto_server.call(threadable.isInIOThread)
    assert isinstance(myproto_server.server, EmbeddedServer)


def test_tls(myproto_tls_server):
    assert myproto_tls_server.certificate.endswith(".pem")
    client = Client(myproto_tls_server.address, tls_context=myproto_tls_server.sslContext())
    client.set("k", "v")
    assert client.get("k") == b"v"
    client.close()


def test_plainHasNoTLS(myproto_server):
    with pytest.raises(ValueError):
        myproto_server.sslContext()


def test_sessionWrites(myproto_session_server, myproto_session_tls_server):
    myproto_session_server.client.set("shared", "1")
    myproto_session_tls_server.client.set("shared", "2")


def test_sessionShared(myproto_session_server, myproto_session_tls_server):
    assert myproto_session_server.client.get("shared") == b"1"
    assert myproto_session_tls_server.client.get("shared") == b"2"
'''


def entryPointInstalled() -> bool:
    """
    @return: whether an installed myproto distribution declares the pytest
        plugin (as after C{pip install .}).
    """
    try:
        distribution = importlib.metadata.distribution("myproto")
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(
        entry.group == "pytest11" and entry.value == "myproto.testing"
        for entry in distribution.entry_points
    )


def pytestArguments(environment: dict[str, str]) -> list[str]:
    """
    How to have pytest load the plugin: through the installed entry point
    if there is one (as users get it), else by naming the module (a
    checkout that is not installed), with other plugins left out.

    @param environment: the child's environment, changed as needed.
    @return: the arguments that load it.
    """
    if entryPointInstalled():
        return []
    environment["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return ["-p", "myproto.testing"]


def summary(output: bytes) -> dict[str, int]:
    """
    @return: the counts in pytest's last line, e.g. C{{"passed": 3}}.
    """
    counts = re.findall(rb"(\d+) (passed|failed|errors?|skipped)", output.splitlines()[-1])
    return {word.decode("ascii"): int(number) for number, word in counts}


class RecordingTestCase:
    """
    What L{myproto.testing.startServer} needs of a test case, keeping the
    cleanups so that a test can run them and look.
    """

    def __init__(self, real: TestCase) -> None:
        self.mktemp = real.mktemp
        self.cleanups: list[Callable[[], Any]] = []

    def addCleanup(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.cleanups.append(lambda: function(*args, **kwargs))

    async def runCleanups(self) -> None:
        while self.cleanups:
            await self.cleanups.pop()()


class StartServerTests(TestCase):
    """
    L{myproto.testing.startServer} gives a trial test a server and stops it
    when the test's cleanups run.
    """

    def setUp(self) -> None:
        self.test = RecordingTestCase(self)

    async def test_startAndStop(self) -> None:
        """
        The server listens on 127.0.0.1; the cleanup it registers stops it.
        """
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
        from twisted.internet.protocol import Protocol

        from myproto.testing import startServer

        server = await startServer(self.test, memory_limit=8)  # type: ignore[arg-type]
        self.assertEqual(server.host, "127.0.0.1")
        self.assertEqual(server.store.maxBytes, 8 * 1024 * 1024)
        self.assertIsNone(server.certificate)
        self.assertEqual(len(self.test.cleanups), 1)
        await self.test.runCleanups()
        with self.assertRaises(ConnectionRefusedError):
            await connectProtocol(TCP4ClientEndpoint(reactor, *server.address), Protocol())

    async def test_tls(self) -> None:
        """
        With C{tls=True} the server serves TLS only, with a certificate for
        127.0.0.1 that its C{certificate} names.
        """
        from myproto.testing import startServer

        server = await startServer(self.test, tls=True)  # type: ignore[arg-type]
        self.assertEqual(len(server.addresses), 1)
        self.assertIsNotNone(server.certificate)
        context = ssl.create_default_context(cafile=server.certificate)
        client = PymemcacheClient(server.address, tls_context=context)

        def exchange() -> Any:
            client.set("k", b"over TLS")
            value = client.get("k")
            client.close()
            return value

        try:
            self.assertEqual(await deferToThread(exchange), b"over TLS")
        finally:
            await self.test.runCleanups()

    async def test_tlsWithoutDeprecationWarnings(self) -> None:
        """
        A TLS server, its certificate and a client's exchange with it raise
        no C{DeprecationWarning} (Twisted's C{ssl:} endpoint hands pyOpenSSL
        objects it deprecates): a user's test suite run with warnings as
        errors can use it.
        """
        from myproto.testing import startServer

        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            server = await startServer(self.test, tls=True)  # type: ignore[arg-type]
            context = ssl.create_default_context(cafile=server.certificate)
            client = PymemcacheClient(server.address, tls_context=context)

            def exchange() -> Any:
                client.set("k", b"no warnings")
                value = client.get("k")
                client.close()
                return value

            try:
                self.assertEqual(await deferToThread(exchange), b"no warnings")
            finally:
                await self.test.runCleanups()

    def test_tlsListen(self) -> None:
        """
        L{tlsListen} describes a loopback C{mtls:} endpoint without client
        certificates on a free port, and makes the certificate once.
        """
        directory = FilePath(self.mktemp())
        description, certificate = tlsListen(directory)
        self.assertTrue(description.startswith("mtls:0:interface=127.0.0.1:privateKey="))
        self.assertNotIn("caCerts", description)
        self.assertEqual(FilePath(certificate).parent(), directory)
        content = FilePath(certificate).getContent()
        self.assertEqual(tlsListen(directory)[1], certificate)
        self.assertEqual(FilePath(certificate).getContent(), content)


class PluginRegistrationTests(SynchronousTestCase):
    """
    The pytest plugin is declared, and importing it costs nothing.
    """

    def test_entryPoint(self) -> None:
        """
        setup.cfg registers L{myproto.testing} under pytest's C{pytest11}
        entry point group.
        """
        config = configparser.ConfigParser()
        config.read(ROOT.child("setup.cfg").path)
        lines = config["options.entry_points"]["pytest11"].strip().splitlines()
        self.assertIn("myproto = myproto.testing", [line.strip() for line in lines])


class LazyImportTests(TestCase):
    """
    Importing L{myproto.testing} (as pytest does for every run once myproto
    is installed) imports neither pytest nor Twisted.
    """

    async def test_lazy(self) -> None:
        """
        After the import, no C{pytest} or C{twisted} module is in
        C{sys.modules}.
        """
        code = (
            "import sys, myproto.testing;"
            " print(sorted(name for name in sys.modules"
            " if name.split('.')[0] in ('pytest', 'twisted')))"
        )
        out, err, status = await getProcessOutputAndValue(
            sys.executable, ["-c", code], env=childEnvironment()
        )
        self.assertEqual((status, out), (0, b"[]\n"), err)


class PytestPluginTests(TestCase):
    """
    pytest, in a child process, runs tests that use the fixtures.
    """

    async def pytest(self, directory: FilePath[str], *arguments: str) -> bytes:
        """
        Run pytest in C{directory}.

        @return: its output, once every test passed.
        """
        environment = childEnvironment()
        out, err, status = await getProcessOutputAndValue(
            sys.executable,
            ["-m", "pytest", "-q", "-p", "no:cacheprovider", *pytestArguments(environment), *arguments],
            env=environment,
            path=directory.path,
        )
        self.assertEqual(status, 0, (out + err).decode("utf-8", "replace"))
        return out

    async def test_fixtures(self) -> None:
        """
        The fixtures give fresh servers per test, shared ones per session,
        TLS, and settings from the marker; the README's pytest example runs
        as written.
        """
        directory = FilePath(self.mktemp())
        directory.makedirs()
        directory.child("test_plugin.py").setContent(PLUGIN_TESTS.encode("utf-8"))
        directory.child("test_readme.py").setContent(readmeExample("pytest").encode("utf-8"))
        out = await self.pytest(directory)
        self.assertEqual(summary(out), {"passed": 11})

    async def test_exampleProject(self) -> None:
        """
        The tests of the example project in C{examples/pagecache} pass with
        nothing but the fixtures.
        """
        out = await self.pytest(ROOT.descendant(["examples", "pagecache"]))
        self.assertEqual(summary(out), {"passed": 7})


class TrialExampleTests(TestCase):
    """
    The README's trial example runs as written.
    """

    async def test_trialExample(self) -> None:
        """
        trial, in a child process, passes the README's example test.
        """
        directory = FilePath(self.mktemp())
        directory.makedirs()
        directory.child("readme_example.py").setContent(readmeExample("trial").encode("utf-8"))
        out, err, status = await getProcessOutputAndValue(
            sys.executable,
            ["-m", "twisted.trial", "readme_example"],
            env=childEnvironment(),
            path=directory.path,
        )
        self.assertEqual(status, 0, (out + err).decode("utf-8", "replace"))
        self.assertIn(b"PASSED (successes=1)", out)
