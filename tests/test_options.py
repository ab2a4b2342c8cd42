"""
Tests for memcached's command line in L{myproto.options} and
L{myproto.endpoints}: the options memcached 1.6.18 takes, with its meanings
and defaults; start-up errors as usage errors; C{-V}; and, in child
processes, C{python -m myproto} started with the options memcached's own
test suite uses, C{--help | head}, and C{twistd -n myproto} on a port in use.
"""

from __future__ import annotations

import io
import re
import os
import pwd
import socket
import subprocess
import sys
from contextlib import redirect_stdout
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.filepath import FilePath
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from myproto import __version__
from myproto.__main__ import programName, run
from myproto.config import ServerSettings
from myproto.endpoints import Interface, parseInterfaces
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore
from myproto.tap import Options, makeService, startupNotes
from tests.reference import freePort
from myproto.store import slabSizes
from tests.helpers import Server, receiveUntil, selfSignedFiles
from tests.readme import childEnvironment

# Seconds a child process may take to start, answer or stop.
CHILD_TIMEOUT = 20


def parse(*arguments: str) -> Options:
    """
    Parse a command line as C{twistd myproto} does.
    """
    options = Options()
    options.parseOptions(list(arguments))
    return options


def settingsFor(*arguments: str) -> ServerSettings:
    settings: ServerSettings = parse(*arguments)["settings"]
    return settings


class InterfaceListTests(SynchronousTestCase):
    """
    L{parseInterfaces} tells memcached's C{-l} lists from endpoint
    descriptions.
    """

    def test_lists(self) -> None:
        """
        IP addresses, with ports, brackets for IPv6 and C{notls:}, are
        interface lists; C{localhost} is 127.0.0.1.
        """
        self.assertEqual(
            parseInterfaces("127.0.0.1,[::1]:11311,notls:10.0.0.1:5,::1,localhost"),
            [
                Interface("127.0.0.1"),
                Interface("::1", 11311),
                Interface("10.0.0.1", 5, tls=False),
                Interface("::1"),
                Interface("127.0.0.1"),
            ],
        )

    def test_descriptions(self) -> None:
        """
        Anything else is not: endpoint descriptions, names, bad ports.
        """
        for text in ["tcp:11311", "unix:m.sock", "foo:1", "127.0.0.1:x", "1.2.3.4.5", "[::1", ""]:
            with self.subTest(text=text):
                self.assertIsNone(parseInterfaces(text))


class MemcachedListenOptionTests(SynchronousTestCase):
    """
    C{-p}, C{-l}, C{-s}, C{-a}, C{-b} and C{-Z} become endpoint descriptions
    with memcached's meanings and defaults.
    """

    def test_portAndInterfaces(self) -> None:
        """
        C{-p} is the port of each C{-l} interface that gives none; C{-l}
        repeats and takes lists; IPv6 works; the backlog is 1024.
        """
        settings = settingsFor("-p", "11311", "-l", "127.0.0.1,[::1]:11411", "-l", "::1")
        self.assertEqual(
            settings.endpoints,
            (
                "tcp:11311:interface=127.0.0.1:backlog=1024",
                "tcp:11411:interface=\\:\\:1:backlog=1024",
                "tcp:11311:interface=\\:\\:1:backlog=1024",
            ),
        )
        self.assertEqual(settings.listening.tcpPort, 11311)
        self.assertEqual(settings.listening.backlog, 1024)

    def test_portAlone(self) -> None:
        """
        C{-p} alone serves 127.0.0.1 (memcached: every interface); C{-p 0},
        as in memcached, turns TCP off.
        """
        self.assertEqual(settingsFor("-p", "11311").listen, ("tcp:11311:interface=127.0.0.1",))
        self.assertEqual(
            settingsFor("-p", "0", "--listen", "unix:m.sock").listen, ("unix:m.sock",)
        )

    def test_descriptionsStillWork(self) -> None:
        """
        C{--listen} and C{-l} still take endpoint descriptions, beside
        memcached's options.
        """
        settings = settingsFor("--listen", "tcp:1", "-l", "unix:m.sock", "-p", "2")
        self.assertEqual(settings.listen, ("tcp:1", "unix:m.sock", "tcp:2:interface=127.0.0.1"))

    def test_defaults(self) -> None:
        """
        Descriptions without a backlog get memcached's 1024 (or C{-b});
        Unix sockets without a mode get memcached's 0700 (or C{-a}).
        """
        settings = settingsFor("--listen", "tcp:1", "--listen", "unix:m.sock")
        self.assertEqual(settings.endpoints, ("tcp:1:backlog=1024", "unix:m.sock:backlog=1024:mode=700"))
        settings = settingsFor("--listen", "unix:m.sock", "-b", "7", "-a", "600")
        self.assertEqual(settings.endpoints, ("unix:m.sock:backlog=7:mode=600",))
        self.assertEqual(settings.listening.unixMode, 0o600)
        given = settingsFor("--listen", "tcp:1:backlog=9")
        self.assertEqual(given.endpoints, ("tcp:1:backlog=9",))

    def test_unixSocket(self) -> None:
        """
        C{-s} serves the Unix socket alone, as memcached: C{-p} is not
        served.
        """
        settings = settingsFor("-s", "/tmp/m.sock", "-p", "11311")
        self.assertEqual(settings.endpoints, ("unix:/tmp/m.sock:backlog=1024:mode=700",))

    def test_listensWithTheBacklog(self) -> None:
        """
        The backlog given to the reactor is the one reported: 1024.
        """
        reactor = MemoryReactorClock()
        makeService(parse("-p", "11311"), reactor).privilegedStartService()
        [(port, _, backlog, interface)] = reactor.tcpServers
        self.assertEqual((port, backlog, interface), (11311, 1024, "127.0.0.1"))

    def test_tls(self) -> None:
        """
        C{-Z} with C{-o ssl_*} serves each TCP listener but the C{notls:}
        ones as C{mtls:}, with memcached's verify modes.
        """
        directory = FilePath(self.mktemp())
        keyFile, certFile, _ = selfSignedFiles(directory, "localhost")
        settings = settingsFor(
            "-Z",
            "-p",
            "11311",
            "-l",
            "127.0.0.1,notls:127.0.0.1:11312",
            "-o",
            "ssl_chain_cert={},ssl_key={},ssl_ca_cert={},ssl_verify_mode=2".format(
                certFile.path, keyFile.path, certFile.path
            ),
        )
        secure, plain = settings.endpoints
        self.assertTrue(secure.startswith("mtls:11311:interface=127.0.0.1:privateKey="))
        self.assertIn(":verify=require", secure)
        self.assertEqual(plain, "tcp:11312:interface=127.0.0.1:backlog=1024")

    def test_tlsNeedsACertificate(self) -> None:
        """
        C{-Z} without a certificate, or with one that cannot be read, is a
        usage error.
        """
        self.assertRaises(UsageError, parse, "-Z")
        error = self.assertRaises(UsageError, parse, "-Z", "-o", "ssl_chain_cert=/no/such.pem")
        self.assertIn("No such file or directory", str(error))


class StartupErrorTests(SynchronousTestCase):
    """
    Endpoints that cannot be served are usage errors with the reason, found
    while parsing, before anything listens.
    """

    def test_badDescriptions(self) -> None:
        """
        A bad port, an unknown endpoint type, an C{mtls:} key that is not
        there: each says why.
        """
        cases = [
            ("tcp:notaport", "Cannot serve on tcp:notaport: invalid literal"),
            ("foo:1", "Cannot serve on foo:1: Unknown endpoint type: 'foo' (nor is it"),
            ("mtls:0:privateKey=/no/key.pem", "/no/key.pem : error:system library::No such file"),
        ]
        for description, reason in cases:
            with self.subTest(description=description):
                error = self.assertRaises(UsageError, parse, "--listen", description)
                self.assertIn(reason, str(error))

    def test_badValues(self) -> None:
        """
        Values memcached refuses are refused, in its words where it has some.
        """
        cases = [
            (["-o", "foo=1"], 'Illegal suboption "foo=1"'),
            (["-B", "bogus"], "Invalid value for binding protocol: bogus"),
            (["-f", "1"], "Factor must be greater than 1"),
            (["-a", "9"], "not an access mask"),
            (["-o", "idle_timeout=x"], "idle_timeout"),
            (["-b", "0"], "backlog"),
            (["-t", "0"], "Number of threads must be greater than 0"),
            (["-R", "0"], "Number of requests per event must be greater than 0"),
            (["-n", "0"], "Chunk size must be greater than 0"),
            (["-D", ""], "No delimiter specified"),
            (["-N", "0"], "Maximum number of NAPI IDs must be greater than 0"),
            (["-o", "lru_crawler_sleep=2000000"], "LRU crawler sleep must be between 0 and 1 second"),
            (["-o", "lru_crawler_sleep"], "Missing lru_crawler_sleep value"),
            (["-o", "lru_crawler_tocrawl=x"], "lru_crawler_tocrawl takes a numeric 32bit value"),
        ]
        for arguments, reason in cases:
            with self.subTest(arguments=arguments):
                error = self.assertRaises(UsageError, parse, *arguments)
                self.assertIn(reason, str(error))

    def test_mainSaysWhy(self) -> None:
        """
        Under C{python -m myproto}, a bad endpoint prints the usage and the
        reason, and the status is 1; nothing listens.
        """
        reactor = MemoryReactorClock()
        stderr = io.StringIO()
        status = run(["--listen", "tcp:notaport"], reactor, lambda stream: None, stderr=stderr)
        self.assertEqual(status, 1)
        self.assertIn("Usage: python -m myproto", stderr.getvalue())
        self.assertIn("python -m myproto: Cannot serve on tcp:notaport", stderr.getvalue())
        self.assertEqual(reactor.tcpServers, [])


class ProcessOptionTests(SynchronousTestCase):
    """
    C{-d}, C{-P}, C{-u}, C{-V}, C{-v} and the options with no meaning here.
    """

    def test_daemonRefusedOutsideTwistd(self) -> None:
        """
        C{-d} without twistd is refused, saying to use twistd.
        """
        error = self.assertRaises(UsageError, parse, "-d")
        self.assertIn("use twistd myproto (without -n)", str(error))

    def test_underTwistd(self) -> None:
        """
        Under twistd, C{-P} is twistd's pid file and C{-d} conflicts with
        C{-n} only.
        """
        from twisted.scripts.twistd import ServerOptions

        twistd = ServerOptions()
        twistd.parseOptions(["--nodaemon", "myproto", "-P", "m.pid"])
        self.assertTrue(twistd["pidfile"].endswith("m.pid"))
        self.assertRaises(UsageError, ServerOptions().parseOptions, ["-n", "myproto", "-d"])
        ServerOptions().parseOptions(["myproto", "-d"])

    def test_version(self) -> None:
        """
        C{-V} and C{--version} print myproto's version and memcached's.
        """
        for flag in ["-V", "--version"]:
            output = io.StringIO()
            with redirect_stdout(output):
                self.assertRaises(SystemExit, parse, flag)
            self.assertEqual(
                output.getvalue(), "myproto {} (memcached 1.6.18)\n".format(__version__)
            )

    def test_license(self) -> None:
        """
        C{-i} and C{--license} print the license, as memcached's C{-i} does.
        """
        for flag in ["-i", "--license"]:
            output = io.StringIO()
            with redirect_stdout(output):
                self.assertRaises(SystemExit, parse, flag)
            self.assertIn("MIT-licensed", output.getvalue())

    def test_verbosity(self) -> None:
        """
        C{-vv} and C{-vvv} count.
        """
        self.assertEqual(settingsFor("-vvv").verbosity, 3)

    def test_stored(self) -> None:
        """
        The flags and values memcached's options set are in the settings.
        """
        settings = settingsFor(
            "-M", "-F", "-X", "-W", "-D", "/", "-f", "1.5", "-n", "64",
            "-t", "8", "-R", "5", "-B", "ascii", "-U", "0", "-o", "idle_timeout=7",
        )
        self.assertEqual(
            (
                settings.evictions, settings.flushEnabled, settings.dumpEnabled,
                settings.watchEnabled, settings.detailDelimiter, settings.growthFactor,
                settings.chunkSizeMin, settings.threads, settings.maxRequestsPerEvent,
                settings.protocol, settings.udpPort, settings.idleTimeout,
            ),
            (False, False, False, False, "/", 1.5, 64, 8, 5, "ascii", 0, 7.0),
        )

    def test_ignoredAreLogged(self) -> None:
        """
        Options with no meaning here are accepted and noted for the log.
        """
        options = parse(
            "-k", "-L", "-r", "-o", "ext_path=/x:1G,maxconns_fast", "-U", "1", "-t", "2",
            "-e", "/dev/shm/m", "-N", "4",
        )
        notes = startupNotes(options, options["settings"])
        text = "\n".join(notes)
        for word in ["-k", "-L", "-r", "ext_path", "maxconns_fast", "UDP", "-t 2", "-e /dev/shm/m", "-N 4"]:
            self.assertIn(word, text)

    def test_testSuiteAdditions(self) -> None:
        """
        What memcached's own test harness adds to every command line,
        C{-o relaxed_privileges} and (as root) C{-u root}, is accepted and
        noted, as memcached accepts it: staying the same user changes
        nothing.
        """
        user = pwd.getpwuid(os.getuid()).pw_name
        options = parse("-o", "relaxed_privileges", "-u", user)
        self.assertEqual(options["ignored"], ["-o relaxed_privileges", "-u " + user])

    def test_binaryProtocolIsServed(self) -> None:
        """
        C{-B binary} is acted on now, so it is not noted as ignored.
        """
        options = parse("-B", "binary")
        self.assertEqual(options["settings"].protocol, "binary")
        self.assertEqual(startupNotes(options, options["settings"]), [])

    def test_programName(self) -> None:
        """
        Messages name the command as it was started.
        """
        self.assertEqual(programName("/x/myproto/__main__.py"), "python -m myproto")
        self.assertEqual(programName("/usr/local/bin/myproto"), "myproto")


class DisabledCommandTests(SynchronousTestCase):
    """
    C{-F}, C{-X} and C{-W} refuse their commands in memcached's words.
    """

    def test_refused(self) -> None:
        clock = Clock()
        settings = ServerSettings(flushEnabled=False, dumpEnabled=False, watchEnabled=False)
        factory = CacheServerFactory(MemoryStore(clock), clock, settings)
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"flush_all\r\nlru_crawler metadump all\r\nwatch\r\nmn\r\n")
        self.assertEqual(
            transport.value(),
            b"CLIENT_ERROR flush_all not allowed\r\n"
            b"ERROR metadump not allowed\r\n"
            b"CLIENT_ERROR watch commands not allowed\r\n"
            b"MN\r\n",
        )

    def test_reportedInSettings(self) -> None:
        """
        C{stats settings} says that C{flush_all} and dumps are off, as
        memcached does under C{-F} and C{-X}, and gives C{-b} and C{-a}.
        """
        clock = Clock()
        settings = ServerSettings(
            flushEnabled=False, dumpEnabled=False, listen=(), listenBacklog=77, unixMask=0o750
        )
        factory = CacheServerFactory(MemoryStore(clock), clock, settings)
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(b"stats settings\r\n")
        lines = transport.value().split(b"\r\n")
        for line in [
            b"STAT flush_enabled no",
            b"STAT dump_enabled no",
            b"STAT tcp_backlog 77",
            b"STAT umask 750",
        ]:
            self.assertIn(line, lines)


class SlabAndEventOptionTests(SynchronousTestCase):
    """
    C{-D}, C{-f}, C{-n} and C{-R} act as in memcached (checked against it in
    L{tests.test_settings_differential}).
    """

    def test_firstCharacterDelimits(self) -> None:
        """
        memcached's C{-D} takes the first character given; C{stats detail}
        cuts prefixes there, and C{stats settings} names it.
        """
        settings = settingsFor("-D", "/x")
        self.assertEqual(settings.detailDelimiter, "/")
        server = Server(settings)
        client = server.connect()
        client.send(b"stats detail on\r\nset a/b:c 0 0 1\r\nx\r\nset d:e 0 0 1\r\nx\r\n")
        self.assertEqual(
            client.send(b"stats detail dump\r\n"), b"PREFIX a get 0 hit 0 set 1 del 0\r\nEND\r\n"
        )
        self.assertEqual(server.stats(b"settings")["stat_key_prefix"], "/")

    def test_slabClasses(self) -> None:
        """
        C{-n} is the first class's chunk less memcached's 48-byte item
        header, C{-f} the growth from one class to the next (aligned to 8
        bytes), as C{stats settings} reports them.
        """
        server = Server(settingsFor("-f", "2", "-n", "100"))
        client = server.connect()
        client.send(b"set a 0 0 1\r\nx\r\nset b 0 0 200\r\n" + b"y" * 200 + b"\r\n")
        self.assertIn(b" cls=1 ", client.send(b"me a\r\n"))
        self.assertIn(b" cls=2 ", client.send(b"me b\r\n"))
        self.assertEqual(server.stats(b"slabs")["1:chunk_size"], "152")
        self.assertEqual(slabSizes(2.0, 100)[:3], (152, 304, 608))
        found = server.stats(b"settings")
        self.assertEqual((found["growth_factor"], found["chunk_size"]), ("2.00", "100"))

    def test_yieldsPerWindow(self) -> None:
        """
        After C{-R} commands of one read (one more at first), a yield is
        counted, even with nothing more waiting: C{N} pipelined commands
        make C{(N - 1) // R} of them, as memcached's state machine does.
        """
        for perEvent in [1, 3, 20]:
            for count in [1, 2, 3, 4, 7, 21, 22, 41, 61]:
                server = Server(ServerSettings(maxRequestsPerEvent=perEvent))
                client = server.connect()
                self.assertEqual(client.send(b"mn\r\n" * count), b"MN\r\n" * count)
                self.assertEqual(
                    (perEvent, count, server.stats()["conn_yields"]),
                    (perEvent, count, str((count - 1) // perEvent)),
                )
                self.assertEqual(server.stats(b"settings")["reqs_per_event"], str(perEvent))

    def test_windowResetsPerRead(self) -> None:
        """
        Each read starts a new window of C{-R} plus one.
        """
        server = Server(ServerSettings(maxRequestsPerEvent=2))
        client = server.connect()
        for _ in range(3):
            client.send(b"mn\r\nmn\r\n")
        self.assertEqual(server.stats()["conn_yields"], "0")
        client.send(b"mn\r\n" * 3)
        self.assertEqual(server.stats()["conn_yields"], "1")


class DropInCommandTests(SynchronousTestCase):
    """
    C{python -m myproto} and C{twistd myproto} started as memcached is.
    """

    def spawn(self, *command: str, **kwargs: Any) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            list(command),
            env=childEnvironment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **kwargs,
        )

        def reap() -> None:
            if process.poll() is None:
                process.kill()
            process.communicate()

        self.addCleanup(reap)
        return process

    def test_memcachedTestSuiteOptions(self) -> None:
        """
        The command line memcached's test suite uses starts a server that
        answers; the log names the version, the address and the limits.
        """
        port = freePort()
        process = self.spawn(
            sys.executable, "-m", "myproto", "-p", str(port), "-l", "127.0.0.1", "-U", "0",
            "-m", "64", "-c", "1024", "-o", "idle_timeout=30", "-t", "4", "-vv",
        )
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "CacheServerFactory starting on" in line:
                break
        else:
            self.fail("The server did not start:\n" + "".join(lines))
        log = "".join(lines)
        self.assertIn("myproto {} (memcached 1.6.18)".format(__version__), log)
        self.assertIn("tcp:{}:interface=127.0.0.1:backlog=1024".format(port), log)
        self.assertIn("memory limit 64 megabytes, item size limit 1048576 bytes", log)
        with socket.create_connection(("127.0.0.1", port), timeout=CHILD_TIMEOUT) as client:
            client.sendall(b"set k 0 0 2\r\nhi\r\nget k\r\nstats settings\r\n")
            received = receiveUntil(client, lambda data: data.count(b"END\r\n") == 2, "two ENDs")
        self.assertTrue(received.startswith(b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n"))
        self.assertIn(b"STAT idle_timeout 30\r\n", received)
        self.assertIn(b"STAT tcp_backlog 1024\r\n", received)
        process.terminate()
        process.communicate(timeout=CHILD_TIMEOUT)
        self.assertEqual(process.returncode, 0)

    def test_consoleCommand(self) -> None:
        """
        The installed C{myproto} command (pip puts it beside the
        interpreter) runs the same entry point: C{-V} names both versions.
        """
        command = os.path.join(os.path.dirname(sys.executable), "myproto")
        self.assertTrue(os.path.exists(command), "pip did not install {}".format(command))
        completed = subprocess.run(
            [command, "-V"], capture_output=True, text=True, timeout=CHILD_TIMEOUT
        )
        self.assertEqual(
            (completed.returncode, completed.stdout),
            (0, "myproto {} (memcached 1.6.18)\n".format(__version__)),
        )

    def test_helpIntoHead(self) -> None:
        """
        C{--help} into a reader that stops early ends without a traceback.
        """
        process = self.spawn(sys.executable, "-m", "myproto", "--help")
        assert process.stdout is not None
        process.stdout.readline()
        process.stdout.close()
        process.wait(timeout=CHILD_TIMEOUT)
        process.stdout = None
        self.assertIn(process.returncode, (0, 1))

    def test_twistdPortInUse(self) -> None:
        """
        Under C{twistd -n}, a port in use is one line and status 1, no
        traceback.
        """
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
            directory = FilePath(self.mktemp())
            directory.makedirs()
            process = self.spawn(
                sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "--nodaemon", "--pidfile=", "myproto", "-p", str(port), "-l", "127.0.0.1",
                cwd=directory.path,
            )
            output, _ = process.communicate(timeout=CHILD_TIMEOUT)
        self.assertEqual(process.returncode, 1, output)
        self.assertNotIn("Traceback", output)
        self.assertTrue(
            re.search(r"myproto: Couldn't listen on 127.0.0.1:%d" % (port,), output), output
        )


class UDPOptionTests(SynchronousTestCase):
    """
    C{-U}, as memcached reads it.
    """

    def test_tcpFollowsUDPPort(self) -> None:
        """
        Without C{-p} (or C{--listen}), TCP listens on the UDP port too; a
        C{-p} or C{--listen} keeps its own.
        """
        self.assertEqual(settingsFor("-U", "11300").listen, ("tcp:11300:interface=127.0.0.1",))
        self.assertEqual(settingsFor("-U", "11300", "-p", "11301").listen, ("tcp:11301:interface=127.0.0.1",))
        self.assertEqual(settingsFor("-U", "11300", "--listen", "tcp:11302").listen, ("tcp:11302",))
        self.assertEqual(settingsFor("-U", "0").listen, ("tcp:11211:interface=127.0.0.1",))

    def test_notWithAsciiAuthentication(self) -> None:
        """
        C{-U} with C{-Y} is refused in memcached's words.
        """
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("user:secret\n")
        error = self.assertRaises(UsageError, parse, "-U", "11300", "-Y", path)
        self.assertIn("Cannot use UDP with ascii authentication enabled", str(error))

    def test_startupLogNamesIt(self) -> None:
        """
        The start-up notes name the UDP listener.
        """
        options = parse("-U", "11300", "-l", "127.0.0.2")
        notes = startupNotes(options, options["settings"])
        self.assertIn("Serving memcached's UDP protocol on udp:11300:interface=127.0.0.2", notes)
