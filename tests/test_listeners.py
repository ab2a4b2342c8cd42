"""
The listening sockets of a server built from memcached's command line:
what the kernel shows of them (C{ss}: a backlog of 1024 by default, as
memcached's C{-b}; a Unix socket C{srwx------}, as memcached's C{-a 700}),
how C{stats conns} lists them beside the clients, and the ports file
C{MEMCACHED_PORT_FILENAME} asks for, against a real memcached 1.6.18.

Needs C{ss} (Debian's C{iproute2}) and C{memcached} on C{PATH}; C{.ci/run}
installs both.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.trial.unittest import SynchronousTestCase, TestCase

from myproto.config import ServerSettings
from myproto.options import Options
from myproto.service import ServerParts, buildServer
from myproto.tap import writePortsFile
from tests.readme import childEnvironment
from tests.helpers import waitFor
from tests.reference import HOST, _Collector, exchange, freePort, requireMemcached, startMemcached

# Seconds a client or server may take to close.
CLOSE_LIMIT = 5.0

# Seconds a child process may take to start or answer.
CHILD_TIMEOUT = 20


def settingsFrom(*arguments: str) -> ServerSettings:
    """
    @return: the settings of C{twistd myproto} with this command line.
    """
    options = Options()
    options.parseOptions(list(arguments))
    settings: ServerSettings = options["settings"]
    return settings


async def serve(testCase: TestCase, settings: ServerSettings) -> ServerParts:
    """
    Build a server from C{settings} on the real reactor, start its listeners
    (only: no timers or signal handlers) until the test ends.

    @return: what was built.
    """
    from twisted.internet import reactor

    parts = buildServer(settings, reactor, processWide=False)
    top = MultiService()
    for listener in parts.listeners:
        listener.setServiceParent(top)
    top.privilegedStartService()
    top.startService()

    async def stop() -> None:
        factory = parts.factory
        await waitFor(lambda: not factory.connections, CLOSE_LIMIT, "myproto's connections to close")
        await top.stopService()

    testCase.addCleanup(lambda: Deferred.fromCoroutine(stop()))
    await waitFor(
        lambda: all(listener.port is not None for listener in parts.listeners),
        CLOSE_LIMIT,
        "myproto to listen",
    )
    return parts


def ss(*arguments: str) -> list[list[str]]:
    """
    @return: the rows C{ss -H ARGUMENTS} prints, split into columns.
    """
    tool = shutil.which("ss")
    if tool is None:
        raise AssertionError("ss is missing; .ci/run installs iproute2")
    output = subprocess.run(
        [tool, "-H", *arguments], check=True, capture_output=True, text=True, timeout=10
    ).stdout
    return [line.split() for line in output.splitlines() if line.strip()]


def shortDirectory(testCase: TestCase) -> str:
    """
    @return: a new directory with a short path (a Unix socket's name must
        fit in 108 bytes), removed when the test ends.
    """
    directory = tempfile.mkdtemp(prefix="myproto-")
    testCase.addCleanup(shutil.rmtree, directory, True)
    return directory


class KernelViewTests(TestCase):
    """
    What C{ss} and C{stat} show of the sockets a default command line makes.
    """

    timeout = 30

    def test_tcpBacklog(self) -> None:
        """
        C{-p PORT} alone listens with a backlog of 1024, which C{ss -ltn}
        shows as the listening socket's Send-Q.
        """

        async def check() -> None:
            port = freePort()
            await serve(self, settingsFrom("-p", str(port)))
            rows = ss("-ltn", "sport = :{}".format(port))
            self.assertEqual(
                [(row[0], row[2], row[3]) for row in rows],
                [("LISTEN", "1024", "{}:{}".format(HOST, port))],
            )

        return Deferred.fromCoroutine(check())

    def test_unixSocket(self) -> None:
        """
        C{-s PATH} alone makes a socket C{srwx------} (memcached's C{-a} 700)
        listening with a backlog of 1024.
        """

        async def check() -> None:
            path = os.path.join(shortDirectory(self), "m.sock")
            await serve(self, settingsFrom("-s", path))
            mode = os.stat(path).st_mode
            self.assertEqual(stat.filemode(mode), "srwx------")
            rows = [row for row in ss("-lx") if path in row]
            self.assertEqual([(row[1], row[3]) for row in rows], [("LISTEN", "1024")])

        return Deferred.fromCoroutine(check())


_NUMBER = re.compile(rb"^STAT (\d+):", re.MULTILINE)
_SECONDS = re.compile(rb"secs_since_last_cmd \d+")


def normalisedConns(reply: bytes, replacements: dict[bytes, bytes]) -> bytes:
    """
    @return: a C{stats conns} reply with each connection number replaced by
        its rank, the seconds by C{S}, and the given addresses by names.
    """
    ranks: dict[bytes, bytes] = {}
    for number in _NUMBER.findall(reply):
        ranks.setdefault(number, b"%d" % (len(ranks),))
    reply = _NUMBER.sub(lambda match: b"STAT " + ranks[match.group(1)] + b":", reply)
    reply = _SECONDS.sub(b"secs_since_last_cmd S", reply)
    for old, new in replacements.items():
        reply = reply.replace(old, new)
    return reply


class ConnsListListenersTests(TestCase):
    """
    C{stats conns} lists the listening sockets first (they have the lowest
    descriptors), as memcached does.
    """

    timeout = 30

    def test_tcp(self) -> None:
        """
        Over TCP: the listener's address and C{conn_listening}, then the
        asking client.
        """

        async def check() -> None:
            memcached = await startMemcached(self)
            port = freePort()
            await serve(self, settingsFrom("-p", str(port), "-l", HOST))
            replies = []
            for number in (memcached.port, port):
                reply = (await exchange(HOST, number, [b"stats conns\r\n"])).data
                client = re.search(rb"addr tcp:127\.0\.0\.1:(\d+)\r\nSTAT \d+:listen_addr", reply)
                assert client is not None, reply
                replies.append(
                    normalisedConns(
                        reply,
                        {b":%d\r" % (number,): b":PORT\r", b":" + client.group(1) + b"\r": b":CLIENT\r"},
                    )
                )
            self.assertIn(b"STAT 0:state conn_listening\r\n", replies[0])
            self.assertEqual(replies[1], replies[0])

        return Deferred.fromCoroutine(check())

    def test_unix(self) -> None:
        """
        Over a Unix socket: the listener named by the first 26 bytes of its
        path (all memcached shows of a longer one), the client by
        memcached's C{?:<AF 0>}.
        """
        from twisted.internet import reactor

        async def ask(path: str) -> bytes:
            collector = _Collector(reactor)
            await connectProtocol(UNIXClientEndpoint(reactor, path), collector)
            assert collector.transport is not None
            collector.transport.write(b"stats conns\r\nquit\r\n")
            await waitFor(lambda: collector.closed, CLOSE_LIMIT, "the reply")
            return normalisedConns(collector.data(), {path.encode(): b"PATH"})

        async def check() -> None:
            directory = shortDirectory(self)
            theirs = os.path.join(directory, "memcached.sock")
            command = [requireMemcached(), "-s", theirs, "-U", "0"]
            if os.geteuid() == 0:
                command += ["-u", "root"]
            memcached = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

            def stopMemcached() -> None:
                memcached.kill()
                memcached.wait(CLOSE_LIMIT)

            self.addCleanup(stopMemcached)
            await waitFor(lambda: os.path.exists(theirs), CLOSE_LIMIT, "memcached to listen")
            ours = os.path.join(directory, "myproto.sock")
            await serve(self, settingsFrom("-s", ours))
            expected = await ask(theirs)
            self.assertIn(b"STAT 0:state conn_listening\r\n", expected)
            self.assertIn(b"STAT 1:listen_addr unix:PATH\r\n", expected)
            # The listener's own name, as memcached cuts it.
            shown = re.search(rb"STAT 0:addr unix:(\S+)\r\n", expected)
            assert shown is not None, expected
            self.assertEqual(shown.group(1), theirs.encode()[:26])
            got = await ask(ours)
            self.assertEqual(got.replace(ours.encode()[:26], theirs.encode()[:26]), expected)

        return Deferred.fromCoroutine(check())


class PortsFileTests(SynchronousTestCase):
    """
    With C{MEMCACHED_PORT_FILENAME} set, the ports listened on are written
    to that file, as memcached writes them (its harness reads the file to
    learn the ports of C{-p -1}).
    """

    #: Two loopback interfaces, each on a port the system picks.
    ARGUMENTS = ["-p", "-1", "-U", "0", "-l", "127.0.0.1,127.0.0.2"]

    def start(self, command: list[str], portsFile: str) -> dict[str, str]:
        """
        Start a server with the ports file named, until it has written it.

        @return: the file's content.
        """
        environment = childEnvironment()
        environment["MEMCACHED_PORT_FILENAME"] = portsFile
        process = subprocess.Popen(
            command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def stop() -> None:
            process.kill()
            process.wait(CHILD_TIMEOUT)

        self.addCleanup(stop)
        deadline = time.monotonic() + CHILD_TIMEOUT
        while not os.path.exists(portsFile):
            if time.monotonic() > deadline or process.poll() is not None:
                self.fail("{} wrote no ports file".format(command[0]))
            time.sleep(0.05)
        with open(portsFile) as file:
            return {"content": file.read(), "left": str(os.path.exists(portsFile + ".lck"))}

    def test_sameAsMemcached(self) -> None:
        """
        One C{TCP INET: PORT} line per interface, in order, whole (the
        C{.lck} file it was written to is gone), and each port answers.
        """
        directory = shortDirectory(self)
        root = ["-u", "root"] if os.geteuid() == 0 else []
        found = []
        for name, command in [
            ("memcached", [requireMemcached(), *root, *self.ARGUMENTS]),
            ("myproto", [sys.executable, "-m", "myproto", *self.ARGUMENTS]),
        ]:
            result = self.start(command, os.path.join(directory, name + ".ports"))
            ports = [int(number) for number in re.findall(r"^TCP INET: (\d+)$", result["content"], re.M)]
            self.assertEqual(len(ports), 2, result)
            for host, port in zip(["127.0.0.1", "127.0.0.2"], ports):
                with socket.create_connection((host, port), timeout=CHILD_TIMEOUT) as client:
                    client.sendall(b"version\r\n")
                    self.assertTrue(client.recv(100).startswith(b"VERSION 1.6.18"))
            found.append((re.sub(r"\d+", "N", result["content"]), result["left"]))
        self.assertEqual(found[1], found[0])
        self.assertEqual(found[0], ("TCP INET: N\nTCP INET: N\n", "False"))

    def test_unwritable(self) -> None:
        """
        A ports file that cannot be written is logged, and serving goes on.
        """
        events: list[dict[str, object]] = []
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        writePortsFile("/nonexistent-directory/m.ports", [None])
        self.assertEqual(
            [event["path"] for event in events if "why" in event], ["/nonexistent-directory/m.ports.lck"]
        )
