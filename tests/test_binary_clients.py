"""
Client libraries nobody here wrote, in binary mode, against myproto over
loopback: pylibmc (libmemcached) with C{binary=True}, without and with
SASL, and python-binary-memcached (C{bmemcached}) with SASL.

myproto serves in this process on the reactor; the clients block, so each
scenario runs in a thread.  The same scenarios also run against a real
memcached (with C{-S} and a Cyrus sasldb for the SASL ones), to show the
clients see no difference.

pylibmc must be built from source against Debian's libmemcached (1.1.4,
with SASL), not taken from its manylinux wheel (see
L{requireSystemLibmemcached}).  C{.ci/run} installs it so
(C{PIP_NO_BINARY=pylibmc}).
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import deferToThread
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from myproto.config import ServerSettings
from tests.helpers import SetEnvironment
from tests.readme import readmeExample
from tests.reference import listenMyproto, memcachedSaslConfiguration, startMemcached

# Both are in the test extra: without them these tests error, not skip.
import bmemcached
import pylibmc

HOST = "127.0.0.1"
USER = "alice"
PASSWORD = "s3cret"


def requireSystemLibmemcached() -> None:
    """
    Fail, saying how to fix it, if pylibmc is the manylinux wheel: its
    bundled Cyrus SASL does not reliably find Debian's C{PLAIN} plugin, and
    its bundled libmemcached 1.0.18 sometimes marks a server failed after a
    binary C{gets} (seen against memcached itself, through a proxy that
    splits replies differently).
    """
    import _pylibmc

    bundled = os.path.join(os.path.dirname(_pylibmc.__file__), "pylibmc.libs")
    if os.path.isdir(bundled):
        raise AssertionError(
            "pylibmc was installed from its wheel, which bundles its own libmemcached and Cyrus"
            " SASL; install libmemcached-dev and reinstall it from source:"
            " PIP_NO_BINARY=pylibmc .venv/bin/pip install --force-reinstall pylibmc"
        )


class ServerMixin:
    """
    Start a server for each test: myproto or memcached, with or without
    SASL.
    """

    timeout = 60
    sasl = False

    def startServer(self) -> Deferred[int]:
        raise NotImplementedError()

    def setUp(self) -> Deferred[None]:
        async def start() -> None:
            self.port = await self.startServer()

        return ensureDeferred(start())

    def inThread(self, scenario: Callable[[Any], None], client: Any) -> Deferred[None]:
        """
        Run a blocking scenario with C{client} in a thread, then disconnect
        it.
        """

        def run() -> None:
            try:
                scenario(client)
            finally:
                client.disconnect_all()

        return deferToThread(run)


class MyprotoServer(ServerMixin):
    def startServer(self) -> Deferred[int]:
        async def start() -> int:
            settings = ServerSettings()
            if self.sasl:
                settings = ServerSettings(
                    saslCredentials=((USER.encode(), PASSWORD.encode()),), protocol="binary"
                )
            port, stop = await listenMyproto(settings)
            self.addCleanup(stop)  # type: ignore[attr-defined]
            return port

        return ensureDeferred(start())


class MemcachedServer(ServerMixin):
    def startServer(self) -> Deferred[int]:
        async def start() -> int:
            options: list[str] = []
            if self.sasl:
                directory = FilePath(self.mktemp())  # type: ignore[attr-defined]
                configuration = memcachedSaslConfiguration(
                    directory, [(USER.encode(), PASSWORD.encode())]
                )
                SetEnvironment(self)(SASL_CONF_PATH=configuration)  # type: ignore[arg-type]
                options = ["-S"]
            server = await startMemcached(self, options=options)
            return server.port

        return ensureDeferred(start())


class PylibmcBinaryMixin:
    """
    pylibmc with C{binary=True}: the operations an application uses.
    """

    sasl = False
    port: int
    inThread: Callable[..., Deferred[None]]

    def client(self, password: str = PASSWORD) -> Any:
        credentials = {"username": USER, "password": password} if self.sasl else {}
        return pylibmc.Client(
            ["{}:{}".format(HOST, self.port)], binary=True, behaviors={"cas": True}, **credentials
        )

    def setUp(self) -> Deferred[None]:
        requireSystemLibmemcached()
        return super().setUp()  # type: ignore[misc, no-any-return]

    def test_setGetDelete(self) -> Deferred[None]:
        """
        Values of several types round-trip; a missing key is None; delete
        says whether the key was there.
        """

        def scenario(mc: Any) -> None:
            for key, value in [("s", "text"), ("b", b"\0\xffbytes"), ("i", 42), ("d", {"a": [1]})]:
                assert mc.set(key, value, time=60) is True
                assert mc.get(key) == value, (key, mc.get(key))
            assert mc.get("missing") is None
            assert mc.delete("s") is True
            assert mc.delete("s") is False
            assert mc.get("s") is None

        return self.inThread(scenario, self.client())

    def test_storageModes(self) -> Deferred[None]:
        """
        add, replace, append and prepend succeed and fail as memcached's
        (libmemcached raises NotFound for a replace of a missing key).
        """

        def scenario(mc: Any) -> None:
            try:
                mc.replace("m", "b")
            except pylibmc.NotFound:
                pass
            else:
                raise AssertionError("replace of a missing key succeeded")
            assert mc.add("m", "b") is True
            assert mc.add("m", "x") is False
            assert mc.append("m", "c") is True
            assert mc.prepend("m", "a") is True
            assert mc.get("m") == "abc"
            assert mc.replace("m", "z") is True
            assert mc.get("m") == "z"
            assert mc.append("none", "x") is False

        return self.inThread(scenario, self.client())

    def test_counters(self) -> Deferred[None]:
        """
        incr and decr count from a stored number; a missing counter is
        not created; decr stops at zero.
        """

        def scenario(mc: Any) -> None:
            mc.set("n", "10")
            assert mc.incr("n", 5) == 15
            assert mc.decr("n", 20) == 0
            try:
                mc.incr("none")
            except pylibmc.NotFound:
                pass
            else:
                raise AssertionError("incr of a missing counter succeeded")

        return self.inThread(scenario, self.client())

    def test_cas(self) -> Deferred[None]:
        """
        gets returns a CAS that cas must match; a stale one is refused.
        """

        def scenario(mc: Any) -> None:
            mc.set("c", "one")
            value, cas = mc.gets("c")
            assert value == "one"
            assert mc.cas("c", "two", cas) is True
            assert mc.cas("c", "three", cas) is False
            assert mc.get("c") == "two"

        return self.inThread(scenario, self.client())

    def test_multi(self) -> Deferred[None]:
        """
        set_multi, get_multi (quiet gets ended by a NOOP) and
        delete_multi.
        """

        def scenario(mc: Any) -> None:
            values = {"k{}".format(index): "v" * index for index in range(1, 50)}
            assert mc.set_multi(values) == []
            assert mc.get_multi(list(values) + ["missing"]) == values
            assert mc.delete_multi(list(values)) is True
            assert mc.get_multi(list(values)) == {}

        return self.inThread(scenario, self.client())

    def test_largeValueTouchFlush(self) -> Deferred[None]:
        """
        A value near the item size limit round-trips; touch and flush_all
        work.
        """

        def scenario(mc: Any) -> None:
            big = b"x" * 900_000
            assert mc.set("big", big) is True
            assert mc.get("big") == big
            assert mc.touch("big", 100) is True
            assert mc.touch("none", 100) is False
            assert mc.flush_all() is True
            assert mc.get("big") is None

        return self.inThread(scenario, self.client())

    def test_stats(self) -> Deferred[None]:
        """
        get_stats reads the STAT responses, counting this client's traffic.
        """

        def scenario(mc: Any) -> None:
            mc.get("missing")
            [(_, stats)] = mc.get_stats()
            assert int(stats["get_misses"]) >= 1, stats
            assert stats["version"] == b"1.6.18", stats

        return self.inThread(scenario, self.client())


class PylibmcSaslMixin(PylibmcBinaryMixin):
    """
    pylibmc with SASL: the same operations, once authenticated.
    """

    sasl = True

    def test_wrongPassword(self) -> Deferred[None]:
        """
        With a wrong password, every operation fails.
        """

        def scenario(mc: Any) -> None:
            for operation in [lambda: mc.set("k", "v"), lambda: mc.get("k")]:
                try:
                    operation()
                except pylibmc.Error:
                    continue
                raise AssertionError("an operation succeeded without authentication")

        return self.inThread(scenario, self.client("wrong"))


class BmemcachedSaslMixin:
    """
    python-binary-memcached, which authenticates with SASL PLAIN.
    """

    sasl = True
    port: int
    inThread: Callable[..., Deferred[None]]

    def client(self, password: str = PASSWORD) -> Any:
        return bmemcached.Client(["{}:{}".format(HOST, self.port)], USER, password)

    def test_operations(self) -> Deferred[None]:
        """
        Once authenticated: set, get, add, replace, delete, counters, CAS,
        multi-key operations, stats and flush_all.
        """

        def scenario(mc: Any) -> None:
            assert mc.set("k", "v") is True
            assert mc.get("k") == "v"
            assert mc.add("k", "x") is False
            assert mc.replace("k", "w") is True
            value, cas = mc.gets("k")
            assert value == "w"
            assert mc.cas("k", "y", cas) is True
            assert mc.cas("k", "z", cas) is False
            assert mc.incr("n", 1) == 0  # created at its default
            assert mc.incr("n", 5) == 5
            assert mc.decr("n", 9) == 0
            assert mc.set_multi({"a": "1", "b": "2"}) == []
            assert mc.get_multi(["a", "b", "c"]) == {"a": "1", "b": "2"}
            assert mc.delete("k") is True
            assert mc.delete("k") is True  # bmemcached: a miss is no failure
            assert mc.delete_multi(["a", "b"]) is True
            [stats] = mc.stats().values()
            assert stats["version"] == b"1.6.18", stats
            assert mc.flush_all() is True
            assert mc.get("n") is None

        return self.inThread(scenario, self.client())

    def test_wrongPassword(self) -> Deferred[None]:
        """
        A wrong password raises the server's C{Auth failure.}.
        """

        def scenario(mc: Any) -> None:
            try:
                mc.set("k", "v")
            except bmemcached.exceptions.MemcachedException as error:
                assert error.code == 0x20, error
                assert "Auth failure." in str(error), error
            else:
                raise AssertionError("set succeeded without authentication")

        return self.inThread(scenario, self.client("wrong"))


class PylibmcBinaryTests(PylibmcBinaryMixin, MyprotoServer, TestCase):
    """
    pylibmc in binary mode against myproto.
    """


class PylibmcBinaryMemcachedTests(PylibmcBinaryMixin, MemcachedServer, TestCase):
    """
    The same against memcached.
    """


class PylibmcSaslTests(PylibmcSaslMixin, MyprotoServer, TestCase):
    """
    pylibmc with SASL against myproto with C{-S}.
    """


class PylibmcSaslMemcachedTests(PylibmcSaslMixin, MemcachedServer, TestCase):
    """
    The same against memcached with C{-S}.
    """


class BmemcachedSaslTests(BmemcachedSaslMixin, MyprotoServer, TestCase):
    """
    bmemcached against myproto with C{-S}.
    """


class BmemcachedSaslMemcachedTests(BmemcachedSaslMixin, MemcachedServer, TestCase):
    """
    The same against memcached with C{-S}.
    """


class ReadmeExampleTests(MyprotoServer, TestCase):
    """
    The README's SASL client examples work as written, against myproto
    with C{-S} and the user they name.
    """

    sasl = True

    def runExample(self, name: str) -> Deferred[None]:
        code = readmeExample(name).replace("11211", str(self.port))
        printed: list[tuple[object, ...]] = []

        def run() -> None:
            namespace = {"print": lambda *values: printed.append(values)}
            exec(compile(code, "README.md:" + name, "exec"), namespace)
            namespace["client"].disconnect_all()  # type: ignore[attr-defined]

        def check(_: object) -> None:
            self.assertEqual(printed, [("hello",)])

        return deferToThread(run).addCallback(check)

    def test_pylibmc(self) -> Deferred[None]:
        """
        pylibmc in binary mode with SASL.
        """
        requireSystemLibmemcached()
        return self.runExample("pylibmc-sasl")

    def test_bmemcached(self) -> Deferred[None]:
        """
        python-binary-memcached with SASL.
        """
        return self.runExample("bmemcached-sasl")
