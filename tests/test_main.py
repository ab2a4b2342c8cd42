"""
Tests for L{myproto.__main__}: C{python -m myproto}.

The wiring is tested on a L{MemoryReactorClock}; the command itself is run
in a child process, serving on 127.0.0.1, to check C{--help} and that
SIGTERM ends it with status 0.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from myproto.__main__ import MainOptions, run
from myproto.protocol import CacheServerFactory
from myproto.tap import Options
from tests.helpers import receiveUntil
from tests.readme import childEnvironment

# Seconds a child process may take to start or to stop.
CHILD_TIMEOUT = 20


def noLogging(stream: Any) -> None:
    """
    Leave the test process's logging alone.
    """


class BusyReactor(MemoryReactorClock):
    """
    A memory reactor on which no TCP port can be listened on.
    """

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        raise CannotListenError(interface, port, OSError("Address already in use"))


class RunTests(SynchronousTestCase):
    """
    L{run} parses C{twistd myproto}'s options and serves with the same
    service.
    """

    def setUp(self) -> None:
        # Running the service installs the SIGTERM handler (in this, the
        # main thread); put trial's back afterwards.
        for number in (signal.SIGTERM, signal.SIGUSR1):
            self.addCleanup(signal.signal, number, signal.getsignal(number))
        self.stderr = io.StringIO()

    def test_sameOptions(self) -> None:
        """
        The options are L{myproto.tap.Options}', under another name.
        """
        self.assertTrue(issubclass(MainOptions, Options))
        self.assertIn("python -m myproto", str(MainOptions()))

    def test_serves(self) -> None:
        """
        The service listens on every endpoint, starts when the reactor runs
        and stops at shutdown; the exit status is then 0.
        """
        reactor = MemoryReactorClock()
        status = run(
            ["--listen", "tcp:1234:interface=127.0.0.1", "--listen", "tcp:1235", "-m", "8"],
            reactor,
            noLogging,
            stderr=self.stderr,
        )
        self.assertEqual(status, 0)
        self.assertTrue(reactor.hasRun)
        self.assertEqual([entry[0] for entry in reactor.tcpServers], [1234, 1235])
        factory = reactor.tcpServers[0][1]
        self.assertIsInstance(factory, CacheServerFactory)
        self.assertEqual(factory.cache.store.maxBytes, 8 * 1024 * 1024)
        [(stop, args, kwargs)] = reactor.triggers["before"]["shutdown"]
        results = self.successResultOf(stop(*args, **kwargs))
        self.assertTrue(all(succeeded for succeeded, _ in results))
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_badOption(self) -> None:
        """
        A value C{twistd myproto} refuses prints the usage and the reason,
        and the exit status is 1; nothing listens.
        """
        reactor = MemoryReactorClock()
        status = run(["-I", "512"], reactor, noLogging, stderr=self.stderr)
        self.assertEqual(status, 1)
        output = self.stderr.getvalue()
        self.assertTrue(output.startswith("Usage: python -m myproto [options]\n"))
        self.assertTrue(
            output.endswith("python -m myproto: Item max size cannot be less than 1024 bytes.\n")
        )
        self.assertFalse(reactor.hasRun)
        self.assertEqual(reactor.tcpServers, [])

    def test_cannotListen(self) -> None:
        """
        An endpoint that cannot listen ends the process with status 1 and
        the reason, before the reactor runs.
        """
        reactor = BusyReactor()
        status = run(["--listen", "tcp:11211"], reactor, noLogging, stderr=self.stderr)
        self.assertEqual(status, 1)
        self.assertIn("Address already in use", self.stderr.getvalue())
        self.assertFalse(reactor.hasRun)


class CommandTests(SynchronousTestCase):
    """
    C{python -m myproto}, run as a user would.
    """

    def command(self, *arguments: str, **kwargs: Any) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "myproto", *arguments],
            env=childEnvironment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            **kwargs,
        )
        self.addCleanup(self.reap, process)
        return process

    def reap(self, process: subprocess.Popen[str]) -> None:
        if process.poll() is None:
            process.kill()
        process.communicate()

    def test_help(self) -> None:
        """
        C{--help} lists the options of C{twistd myproto} and exits with
        status 0.
        """
        process = self.command("--help")
        output, _ = process.communicate(timeout=CHILD_TIMEOUT)
        self.assertEqual(process.returncode, 0)
        self.assertTrue(output.startswith("Usage: python -m myproto [options]\n"))
        for option in ("--listen=", "--memory-limit=", "--max-item-size=", "--snapshot="):
            self.assertIn(option, output)

    def test_servesUntilSIGTERM(self) -> None:
        """
        The server answers on the port it logs, and SIGTERM ends it with
        status 0, as memcached does.
        """
        process = self.command("--listen", "tcp:0:interface=127.0.0.1")
        self.assertIsNotNone(process.stdout)
        lines = []
        for line in process.stdout:
            lines.append(line)
            started = re.search(r"CacheServerFactory starting on (\d+)", line)
            if started:
                break
        else:
            self.fail("The server did not start:\n" + "".join(lines))
        address = ("127.0.0.1", int(started.group(1)))
        with socket.create_connection(address, timeout=CHILD_TIMEOUT) as client:
            client.sendall(b"set k 0 0 2\r\nhi\r\nget k\r\n")
            received = receiveUntil(client, lambda data: data.endswith(b"END\r\n"), "END")
        self.assertEqual(received, b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n")
        os.kill(process.pid, signal.SIGTERM)
        output, _ = process.communicate(timeout=CHILD_TIMEOUT)
        self.assertEqual(process.returncode, 0, "".join(lines) + output)
