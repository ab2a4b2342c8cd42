"""
Tests for L{myproto.tap} and L{myproto.options}: the options of C{twistd
myproto}, the services L{makeService} builds, and the plugin that makes
C{twistd} find them.  What L{myproto.service.buildServer} makes is tested in
L{tests.test_service}.
"""

from __future__ import annotations

import gc
import re
from typing import Any, cast

from twisted.application.internet import StreamServerEndpointService, TimerService
from twisted.application.service import IServiceMaker, MultiService
from twisted.internet.endpoints import quoteStringArgument
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python.filepath import FilePath
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from myproto.config import DEFAULT_LISTEN, MEGABYTE, ServerSettings
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore
from myproto.evictions import SUMMARY_INTERVAL
from myproto.options import parseSize, settingsFromOptions
from myproto.service import SWEEPER_NAME, ExitCleanlyOnSignals, FreezeStartupObjects
from myproto.tap import Options, makeService
from tests.helpers import selfSignedFiles


def parse(*arguments: str) -> Options:
    """
    Parse a command line the way C{twistd myproto} does.

    @param arguments: the words after C{twistd myproto}.

    @return: the parsed options.
    """
    options = Options()
    options.parseOptions(list(arguments))
    return options


def settingsFor(*arguments: str) -> ServerSettings:
    """
    @param arguments: the words after C{twistd myproto}.

    @return: the settings that command line gives.
    """
    settings: ServerSettings = parse(*arguments)["settings"]
    return settings


class OptionsDefaultsTests(SynchronousTestCase):
    """
    With no options, the server runs with memcached's defaults.
    """

    def test_defaults(self) -> None:
        """
        No options give memcached's defaults: 64 megabytes, 1m items, 1024
        connections, CAS on, no shutdown, no banner, quiet, and one loopback
        TCP endpoint on port 11211.
        """
        options = parse()
        self.assertEqual(options["settings"], ServerSettings())
        self.assertEqual(
            options["settings"],
            ServerSettings(
                memoryLimit=64 * MEGABYTE,
                maxItemSize=MEGABYTE,
                connectionLimit=1024,
                useCas=True,
                enableShutdown=False,
                banner=None,
                verbosity=0,
                listen=("tcp:11211:interface=127.0.0.1",),
            ),
        )
        self.assertEqual(options["listen"], [DEFAULT_LISTEN])

    def test_optionsKeepFinalValues(self) -> None:
        """
        After parsing, the options hold converted values too, defaults
        included: the item size is in bytes.
        """
        options = parse()
        self.assertEqual(options["memory-limit"], 64)
        self.assertEqual(options["max-item-size"], MEGABYTE)
        self.assertEqual(options["conn-limit"], 1024)
        self.assertEqual(parse("-I", "2k")["max-item-size"], 2048)


class ListenOptionTests(SynchronousTestCase):
    """
    C{--listen} takes an endpoint description and may be repeated.
    """

    def test_one(self) -> None:
        """
        One C{--listen} replaces the default endpoint.
        """
        self.assertEqual(settingsFor("--listen", "tcp:11311").listen, ("tcp:11311",))

    def test_repeated(self) -> None:
        """
        Each C{--listen} adds an endpoint, in the order given.
        """
        settings = settingsFor(
            "--listen", "tcp:11311", "--listen=unix:myproto.sock", "--listen", "tcp6:1"
        )
        self.assertEqual(settings.listen, ("tcp:11311", "unix:myproto.sock", "tcp6:1"))


class MemoryLimitOptionTests(SynchronousTestCase):
    """
    C{-m}/C{--memory-limit} is the item memory in megabytes.
    """

    def test_shortAndLong(self) -> None:
        """
        Both spellings set the limit, converted to bytes.
        """
        self.assertEqual(settingsFor("-m", "128").memoryLimit, 128 * MEGABYTE)
        self.assertEqual(settingsFor("--memory-limit=2").memoryLimit, 2 * MEGABYTE)

    def test_notANumber(self) -> None:
        """
        A limit that is not a whole number is a usage error.
        """
        for value in ["abc", "1.5", "64m", ""]:
            with self.subTest(value=value):
                self.assertRaises(UsageError, parse, "-m", value)

    def test_notPositive(self) -> None:
        """
        A limit below one megabyte is a usage error.
        """
        for value in ["0", "-5"]:
            with self.subTest(value=value):
                self.assertRaises(UsageError, parse, "--memory-limit", value)


class MaxItemSizeOptionTests(SynchronousTestCase):
    """
    C{-I}/C{--max-item-size} follows memcached's C{-I}: bytes or a C{k}/C{m}
    suffix, at least 1k, at most 1024m and at most half the memory limit.
    """

    def test_suffixes(self) -> None:
        """
        A bare number is bytes; C{k} and C{m}, in either case, multiply by
        1024 and 1024 * 1024.
        """
        cases = {
            "1024": 1024,
            "4096": 4096,
            "1k": 1024,
            "512K": 512 * 1024,
            "2m": 2 * MEGABYTE,
            "3M": 3 * MEGABYTE,
        }
        for text, size in cases.items():
            with self.subTest(text=text):
                self.assertEqual(parseSize(text), size)
                self.assertEqual(settingsFor("-I", text).maxItemSize, size)
                self.assertEqual(
                    settingsFor("--max-item-size=" + text).maxItemSize, size
                )

    def test_largest(self) -> None:
        """
        1024m is allowed when the memory limit is at least twice as big.
        """
        settings = settingsFor("-m", "2048", "-I", "1024m")
        self.assertEqual(settings.maxItemSize, 1024 * MEGABYTE)

    def test_malformed(self) -> None:
        """
        Anything but digits with an optional k or m is a usage error.
        """
        for value in ["abc", "1.5m", "1g", "m", "", "-1k", "1mb", "1 m", "0x400"]:
            with self.subTest(value=value):
                self.assertRaises(ValueError, parseSize, value)
                self.assertRaises(UsageError, parse, "-I", value)

    def test_tooSmall(self) -> None:
        """
        Below 1024 bytes is a usage error, with memcached's message.
        """
        for value in ["1023", "0", "0k"]:
            with self.subTest(value=value):
                error = self.assertRaises(UsageError, parse, "-I", value)
                self.assertEqual(
                    str(error), "Item max size cannot be less than 1024 bytes."
                )

    def test_tooLarge(self) -> None:
        """
        Above 1024m is a usage error, however much memory there is.
        """
        error = self.assertRaises(UsageError, parse, "-m", "4096", "-I", "1025m")
        self.assertEqual(
            str(error), "Cannot set item size limit higher than a gigabyte."
        )

    def test_moreThanHalfTheMemory(self) -> None:
        """
        An item limit above half the memory limit is a usage error, the
        default item limit included.
        """
        for arguments in [("-m", "1"), ("-m", "1024", "-I", "600m")]:
            with self.subTest(arguments=arguments):
                error = self.assertRaises(UsageError, parse, *arguments)
                self.assertEqual(
                    str(error),
                    "Cannot set item size limit higher than 1/2 of memory max.",
                )
        self.assertEqual(settingsFor("-m", "2").maxItemSize, MEGABYTE)


class ConnectionLimitOptionTests(SynchronousTestCase):
    """
    C{-c}/C{--conn-limit} is the most clients served at once.
    """

    def test_shortAndLong(self) -> None:
        """
        Both spellings set the limit.
        """
        self.assertEqual(settingsFor("-c", "10").connectionLimit, 10)
        self.assertEqual(settingsFor("--conn-limit=2").connectionLimit, 2)

    def test_bad(self) -> None:
        """
        A limit that is not a positive whole number is a usage error.
        """
        for value in ["0", "-1", "abc", "1.5"]:
            with self.subTest(value=value):
                self.assertRaises(UsageError, parse, "-c", value)


class FlagOptionTests(SynchronousTestCase):
    """
    C{-C}, C{-A} and C{-v} are flags, as in memcached.
    """

    def test_disableCas(self) -> None:
        """
        C{-C}/C{--disable-cas} turns CAS uniques off.
        """
        self.assertFalse(settingsFor("-C").useCas)
        self.assertFalse(settingsFor("--disable-cas").useCas)

    def test_enableShutdown(self) -> None:
        """
        C{-A}/C{--enable-shutdown} lets clients use C{shutdown}.
        """
        self.assertTrue(settingsFor("-A").enableShutdown)
        self.assertTrue(settingsFor("--enable-shutdown").enableShutdown)

    def test_verboseCounts(self) -> None:
        """
        Each C{-v} or C{--verbose} raises the verbosity by one; they can be
        grouped like memcached's C{-vv}.
        """
        self.assertEqual(settingsFor("-v").verbosity, 1)
        self.assertEqual(settingsFor("-vv").verbosity, 2)
        self.assertEqual(settingsFor("-v", "--verbose", "-v").verbosity, 3)

    def test_grouped(self) -> None:
        """
        Short flags combine in one word.
        """
        settings = settingsFor("-ACvv")
        self.assertEqual(
            (settings.enableShutdown, settings.useCas, settings.verbosity),
            (True, False, 2),
        )


class BannerOptionTests(SynchronousTestCase):
    """
    C{--banner} is a line sent to each client on connect.
    """

    def test_banner(self) -> None:
        """
        The banner is kept as UTF-8 bytes.
        """
        self.assertEqual(settingsFor("--banner", "hello there").banner, b"hello there")
        self.assertEqual(settingsFor("--banner=caf\u00e9").banner, b"caf\xc3\xa9")

    def test_empty(self) -> None:
        """
        An empty banner is no banner.
        """
        self.assertIsNone(settingsFor("--banner", "").banner)

    def test_oneLineOnly(self) -> None:
        """
        A banner with a line break in it is a usage error.
        """
        for value in ["two\nlines", "two\r\nlines", "cr\r"]:
            with self.subTest(value=value):
                self.assertRaises(UsageError, parse, "--banner", value)


class TimeoutOptionTests(SynchronousTestCase):
    """
    C{--idle-timeout} and C{--request-timeout} are durations in seconds.
    """

    def test_defaults(self) -> None:
        """
        By default idle clients stay, and a started request has 30 seconds.
        """
        settings = settingsFor()
        self.assertEqual((settings.idleTimeout, settings.requestTimeout), (0.0, 30.0))

    def test_given(self) -> None:
        """
        Both take whole or fractional seconds; 0 turns a timeout off.
        """
        settings = settingsFor("--idle-timeout", "600", "--request-timeout=2.5")
        self.assertEqual((settings.idleTimeout, settings.requestTimeout), (600.0, 2.5))
        self.assertEqual(settingsFor("--request-timeout", "0").requestTimeout, 0.0)

    def test_bad(self) -> None:
        """
        A negative, infinite or non-numeric duration is a usage error.
        """
        for option in ["--idle-timeout", "--request-timeout"]:
            for value in ["-1", "abc", "inf", "nan", ""]:
                with self.subTest(option=option, value=value):
                    self.assertRaises(UsageError, parse, option, value)


class AuthFileOptionTests(SynchronousTestCase):
    """
    C{-Y}/C{--auth-file} names memcached's file of C{username:password}
    lines, read once at startup.
    """

    def authFile(self, content: bytes) -> str:
        """
        @param content: what the file holds.

        @return: the name of a new file holding it.
        """
        path = FilePath(self.mktemp())
        path.setContent(content)
        return path.path

    def test_noneByDefault(self) -> None:
        """
        Without C{-Y}, no authentication is asked for.
        """
        self.assertIsNone(settingsFor().credentials)

    def test_credentials(self) -> None:
        """
        Each line of the file is an accepted username and password.
        """
        path = self.authFile(b"alice:secret\nbob:pa:ss\n")
        expected = ((b"alice", b"secret"), (b"bob", b"pa:ss"))
        self.assertEqual(settingsFor("-Y", path).credentials, expected)
        self.assertEqual(settingsFor("--auth-file=" + path).credentials, expected)

    def test_missing(self) -> None:
        """
        A file that cannot be read is a usage error naming it.
        """
        path = FilePath(self.mktemp()).path
        error = self.assertRaises(UsageError, parse, "-Y", path)
        self.assertIn(path, str(error))

    def test_malformed(self) -> None:
        """
        A file that is not C{username:password} lines is a usage error.
        """
        for content in [b"no colon here\n", b""]:
            with self.subTest(content=content):
                path = self.authFile(content)
                self.assertRaises(UsageError, parse, "-Y", path)


class HelpTests(SynchronousTestCase):
    """
    C{twistd myproto --help} documents every option.
    """

    def test_everyOptionListed(self) -> None:
        """
        Each option appears in the usage text with its short form, if any,
        on the same line as its long form.
        """
        lines = Options().getUsage().splitlines()
        expected = [
            ("--listen=", None),
            ("--memory-limit=", "-m"),
            ("--max-item-size=", "-I"),
            ("--conn-limit=", "-c"),
            ("--disable-cas", "-C"),
            ("--enable-shutdown", "-A"),
            ("--verbose", "-v"),
            ("--banner=", None),
            ("--idle-timeout=", None),
            ("--request-timeout=", None),
            ("--auth-file=", "-Y"),
            ("--help", None),
        ]
        for longForm, shortForm in expected:
            with self.subTest(option=longForm):
                matching = [line for line in lines if longForm in line]
                self.assertEqual(len(matching), 1, matching)
                if shortForm is not None:
                    self.assertIn(shortForm + ",", matching[0])

    def test_noStrayIndentation(self) -> None:
        """
        Help text is wrapped cleanly: no option's description keeps the
        indentation of a docstring's second line.
        """
        for line in Options().getUsage().splitlines():
            text = line.strip()
            if line.startswith(("  -", "      --")):
                # Leave out the column of option names.
                text = re.split(" {2,}", text, maxsplit=1)[-1]
            with self.subTest(line=line):
                self.assertNotIn("  ", text)

    def test_defaultsShown(self) -> None:
        """
        The usage text gives the defaults in memcached's units.
        """
        usage = " ".join(Options().getUsage().split())
        for default in ["[default: 64]", "[default: 1m]", "[default: 1024]"]:
            with self.subTest(default=default):
                self.assertIn(default, usage)
        self.assertIn(DEFAULT_LISTEN, usage)

    def test_helpSaysWhatZeroAndBannerDo(self) -> None:
        """
        C{--snapshot-interval}'s help says 0 saves only at shutdown (never
        "0 means never", which the other durations say), and C{--banner}'s
        warns that standard clients fail on the extra line.
        """
        helps: dict[str, str] = {}
        option = ""
        for line in Options().getUsage().splitlines():
            named = re.match(r" +(?:-\w, )?(--[\w-]+)", line)
            if named:
                option = named.group(1)
                helps[option] = line.strip()
            elif option:
                helps[option] += " " + line.strip()
        self.assertIn("0: only at shutdown", helps["--snapshot-interval"])
        self.assertNotIn("never", helps["--snapshot-interval"])
        self.assertIn("pymemcache raises", helps["--banner"])


class SettingsFromMappingTests(SynchronousTestCase):
    """
    L{settingsFromOptions} also takes a plain mapping, as a C{.tac} gives.
    """

    def test_empty(self) -> None:
        """
        Missing keys take memcached's defaults.
        """
        self.assertEqual(settingsFromOptions({}), ServerSettings())

    def test_sizesAsTextOrBytes(self) -> None:
        """
        The item size may be written with a suffix or in bytes.
        """
        self.assertEqual(
            settingsFromOptions({"max-item-size": "2m"}).maxItemSize, 2 * MEGABYTE
        )
        self.assertEqual(settingsFromOptions({"max-item-size": 4096}).maxItemSize, 4096)

    def test_everyKey(self) -> None:
        """
        Every key of L{Options} is read.
        """
        settings = settingsFromOptions(
            {
                "listen": ["tcp:1", "tcp:2"],
                "memory-limit": 8,
                "max-item-size": "2k",
                "conn-limit": 3,
                "disable-cas": True,
                "enable-shutdown": True,
                "verbose": 2,
                "banner": "hi",
                "idle-timeout": 5,
                "request-timeout": 7.5,
            }
        )
        self.assertEqual(
            settings,
            ServerSettings(
                memoryLimit=8 * MEGABYTE,
                maxItemSize=2048,
                connectionLimit=3,
                useCas=False,
                enableShutdown=True,
                banner=b"hi",
                verbosity=2,
                listen=("tcp:1", "tcp:2"),
                idleTimeout=5.0,
                requestTimeout=7.5,
            ),
        )

    def test_badValue(self) -> None:
        """
        A value out of range raises L{ValueError}.
        """
        self.assertRaises(ValueError, settingsFromOptions, {"max-item-size": 10})
        self.assertRaises(ValueError, settingsFromOptions, {"conn-limit": 0})
        self.assertRaises(ValueError, settingsFromOptions, {"memory-limit": 0})
        self.assertRaises(ValueError, settingsFromOptions, {"idle-timeout": -1})


def childrenOf(
    top: MultiService,
) -> tuple[TimerService, list[StreamServerEndpointService]]:
    """
    Split the services L{makeService} builds into the sweep timer and the
    listening services.

    @param top: what L{makeService} returned.

    @return: the timer and the listeners, in order.
    """
    children = list(top)
    sweeper = top.getServiceNamed(SWEEPER_NAME)
    listeners = [child for child in children if isinstance(child, StreamServerEndpointService)]
    if not isinstance(sweeper, TimerService):
        raise AssertionError("the sweeper is not a TimerService: {!r}".format(sweeper))
    return sweeper, listeners  # type: ignore[return-value]


class MakeServiceTests(SynchronousTestCase):
    """
    L{makeService} wires a store, a factory, a sweep timer and one listener
    per endpoint, all on the reactor it is given.
    """

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()

    def start(self, config: Any) -> MultiService:
        """
        Build and start the service on the fake reactor; stop it at cleanup.

        @param config: parsed options or a plain mapping.

        @return: the started service.
        """
        top = makeService(config, self.reactor)
        top.privilegedStartService()
        top.startService()
        self.addCleanup(top.stopService)
        return top

    def test_defaultEndpoint(self) -> None:
        """
        By default the server listens on TCP port 11211 of 127.0.0.1 with a
        L{CacheServerFactory}.
        """
        self.start(parse())
        [(port, factory, backlog, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (11211, "127.0.0.1"))
        self.assertIsInstance(factory, CacheServerFactory)
        self.assertEqual(cast(CacheServerFactory, factory).settings, ServerSettings())

    def test_everyEndpoint(self) -> None:
        """
        Each C{--listen} description gets its own listener, TCP, UNIX and
        TLS alike, all sharing one factory (and so one store).
        """
        keyFile, certFile, _ = selfSignedFiles(FilePath(self.mktemp()), "localhost")
        socketPath = FilePath(self.mktemp()).path
        self.start(
            parse(
                "--listen",
                "tcp:11311:interface=127.0.0.1",
                "--listen",
                "unix:" + quoteStringArgument(socketPath),
                "--listen",
                "ssl:11312:interface=127.0.0.1:privateKey={}:certKey={}".format(
                    quoteStringArgument(keyFile.path),
                    quoteStringArgument(certFile.path),
                ),
            )
        )
        [(tcpPort, tcpFactory, _, tcpInterface)] = self.reactor.tcpServers
        [(unixPath, unixFactory, *_)] = self.reactor.unixServers
        [(sslPort, sslFactory, contextFactory, _, sslInterface)] = (
            self.reactor.sslServers
        )
        self.assertEqual((tcpPort, tcpInterface), (11311, "127.0.0.1"))
        self.assertEqual(unixPath, socketPath)
        self.assertEqual((sslPort, sslInterface), (11312, "127.0.0.1"))
        self.assertIsNotNone(contextFactory.getContext())
        self.assertIs(tcpFactory, unixFactory)
        self.assertIs(tcpFactory, sslFactory)

    def test_storeFollowsSettings(self) -> None:
        """
        The store gets the memory limit and item size in bytes, and the CAS
        setting.
        """
        top = makeService(parse("-m", "2", "-I", "4k", "-C"), self.reactor)
        sweeper, _ = childrenOf(top)
        store = sweeper.call[0].__self__
        self.assertIsInstance(store, MemoryStore)
        self.assertEqual(
            (store.maxBytes, store.maxItemSize, store.useCas),
            (2 * MEGABYTE, 4096, False),
        )

    def test_sweepsEverySecond(self) -> None:
        """
        The store's C{sweepExpired} runs on the given reactor's clock once a
        second, so an expired item nobody asks for again is removed.
        """
        top = self.start(parse())
        sweeper, _ = childrenOf(top)
        self.assertEqual(sweeper.call[0].__name__, "sweepExpired")
        store = sweeper.call[0].__self__
        store.put(b"k", b"v", 0, self.reactor.seconds() + 1.5)
        # The other timer is the eviction summary's.
        summary = SUMMARY_INTERVAL
        self.assertEqual(sorted(c.getTime() for c in self.reactor.getDelayedCalls()), [1.0, summary])
        self.reactor.advance(1)
        self.assertEqual(len(store), 1)
        self.reactor.advance(1)
        self.assertEqual(len(store), 0)
        self.assertEqual(sorted(c.getTime() for c in self.reactor.getDelayedCalls()), [3.0, summary])

    def test_stopLeavesNoTimer(self) -> None:
        """
        Stopping the service cancels the sweep and stops listening.
        """
        top = makeService(parse(), self.reactor)
        top.privilegedStartService()
        top.startService()
        top.stopService()
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        _, [listener] = childrenOf(top)
        self.assertFalse(listener.running)

    def test_freezesStartupObjectsOnceRunning(self) -> None:
        """
        Once the reactor runs, garbage is collected and then everything
        made while starting is frozen out of the collector's passes; not
        before.
        """
        calls: list[str] = []
        self.patch(gc, "collect", lambda: calls.append("collect"))
        if not hasattr(gc, "freeze"):
            # PyPy has no gc.freeze: give it one for the test to watch.
            gc.freeze = None  # type: ignore[attr-defined]
            self.addCleanup(delattr, gc, "freeze")
        self.patch(gc, "freeze", lambda: calls.append("freeze"))
        self.start(parse())
        self.assertEqual(calls, [])
        # Only this service's hook: the others would install signal
        # handlers in the test process.
        [freeze] = [
            hook
            for hook, _, _ in self.reactor.whenRunningHooks
            if isinstance(getattr(hook, "__self__", None), FreezeStartupObjects)
        ]
        freeze()
        self.assertEqual(calls, ["collect", "freeze"])

    def test_childrenInOrder(self) -> None:
        """
        The children keep their names and order: the snapshot, the signal
        handlers and the freeze, the drain, the timers, the metrics, then
        the listeners.
        """
        top = makeService(
            {
                "listen": ["tcp:0:interface=127.0.0.1"],
                "snapshot": self.mktemp(),
                "metrics": "tcp:9150:interface=127.0.0.1",
            },
            self.reactor,
        )
        children = list(top)
        self.assertEqual(
            [child.name for child in children if child.name],
            ["snapshot", "drain", "sweeper", "evictions", "metrics"],
        )
        self.assertIsInstance(children[1], ExitCleanlyOnSignals)
        self.assertIsInstance(children[2], FreezeStartupObjects)
        self.assertIsInstance(children[-1], StreamServerEndpointService)
        self.assertIs(children[-1].factory, top.getServiceNamed("drain").factory)  # type: ignore[attr-defined]

    def test_plainMapping(self) -> None:
        """
        A plain L{dict}, as a C{.tac} file writes, works too.
        """
        self.start({"listen": ["tcp:0:interface=127.0.0.1"], "memory-limit": 8})
        [(port, _, _, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (0, "127.0.0.1"))

    def test_badMapping(self) -> None:
        """
        A plain mapping is checked like the command line.
        """
        self.assertRaises(
            ValueError, makeService, {"max-item-size": "1g"}, self.reactor
        )


class PluginTests(SynchronousTestCase):
    """
    C{twistd} finds the C{myproto} plugin.
    """

    def test_discoverable(self) -> None:
        """
        Exactly one L{IServiceMaker} plugin is named C{myproto}, and it uses
        L{myproto.tap}'s options and service.
        """
        makers = [
            maker for maker in getPlugins(IServiceMaker) if maker.tapname == "myproto"
        ]
        self.assertEqual(len(makers), 1)
        [maker] = makers
        self.assertIs(maker.options, Options)
        self.assertIs(maker.makeService, makeService)
        self.assertTrue(maker.description)
