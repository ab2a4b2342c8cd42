"""
Tests that run the real server in a child process: a restart keeps the
cache, SIGTERM shuts down gracefully with exit status 0, and SIGKILL during
a save never leaves a broken snapshot in place.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

import myproto
from myproto.snapshot import SnapshotError, decodeItems
from tests.reference import freePort
from tests.helpers import receiveUntil

# The directory holding the myproto package and the twisted/plugins dropin.
SOURCE_ROOT = FilePath(myproto.__file__).parent().parent()


class ServerProcess(ProcessProtocol):
    """
    A myproto server run with C{python -m twisted myproto}.
    """

    def __init__(self) -> None:
        self.output: list[bytes] = []
        self.ended: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output.append(data)

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if reason.check(ProcessDone):
            self.ended.callback(0)
        elif reason.check(ProcessTerminated):
            value = reason.value
            self.ended.callback(value.exitCode if value.exitCode is not None else -value.signal)
        else:
            self.ended.errback(reason)


def exchange(port: int, request: bytes, expectEnd: bytes) -> bytes:
    """
    Send a request and read until the reply ends with C{expectEnd}
    (blocking; run in a thread).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        return receiveUntil(
            connection,
            lambda received: received.endswith(expectEnd),
            "a reply ending in {!r}".format(expectEnd),
        )


class RestartTests(TestCase):
    """
    The cache survives a real process restart.
    """

    timeout = 60

    def setUp(self) -> None:
        self.directory = FilePath(self.mktemp())
        self.directory.makedirs()
        self.snapshot = self.directory.child("cache.snapshot")

    async def start(self, *extra: str) -> tuple[ServerProcess, int]:
        port = freePort()
        process = ServerProcess()
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [SOURCE_ROOT.path] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        args = [sys.executable, "-m", "twisted", "myproto"]
        args += ["--listen", "tcp:%d:interface=127.0.0.1" % (port,)]
        args += ["--snapshot", self.snapshot.path, *extra]
        transport = reactor.spawnProcess(process, sys.executable, args, env=environment)

        def cleanup() -> Deferred[Any] | None:
            if process.ended.called:
                return None
            transport.signalProcess("KILL")
            return process.ended

        self.addCleanup(cleanup)
        for _ in range(200):
            try:
                await deferToThread(socket.create_connection(("127.0.0.1", port), timeout=1).close)
                return process, port
            except OSError:
                await deferLater(reactor, 0.05, lambda: None)
        self.fail("server did not start: %r" % (b"".join(process.output),))

    async def stop(self, process: ServerProcess, how: str = "TERM") -> int:
        process.transport.signalProcess(how)
        return await process.ended

    async def test_restartKeepsItems(self) -> None:
        """
        Items set before a SIGTERM are served after a restart, with their
        flags and CAS; SIGTERM exits with status 0 after saving.
        """
        process, port = await self.start()
        stored = await deferToThread(
            exchange,
            port,
            b"set a 7 0 5\r\nalpha\r\nset b 0 1000 3\r\nbee\r\nset gone 0 1 1\r\nx\r\ngets a b\r\n",
            b"END\r\n",
        )
        self.assertEqual(await self.stop(process), 0, b"".join(process.output))
        self.assertTrue(self.snapshot.exists())
        await deferLater(reactor, 1.1, lambda: None)  # "gone" expires meanwhile
        process, port = await self.start()
        served = await deferToThread(exchange, port, b"gets a b gone\r\n", b"END\r\n")
        self.assertEqual(served, stored.split(b"STORED\r\n")[-1])
        self.assertEqual(await self.stop(process), 0)

    async def test_killDuringSaves(self) -> None:
        """
        Killing the server with SIGKILL at any moment, saves under way
        included, leaves either no snapshot or the last complete one, never a
        broken file in its place.
        """
        process, port = await self.start("--snapshot-interval", "0")
        value = b"v" * 200
        batch = b"".join(b"set k%d 0 0 200 noreply\r\n%s\r\n" % (n, value) for n in range(50000))
        await deferToThread(exchange, port, batch + b"version\r\n", b"\r\n")
        self.assertEqual(await self.stop(process), 0)
        process, port = await self.start("--snapshot-interval", "0.2")
        for delay in (0.25, 0.33, 0.41, 0.5, 0.62):
            await deferLater(reactor, delay, lambda: None)
            self.assertNotEqual(await self.stop(process, "KILL"), 0)
            if self.snapshot.exists():
                try:
                    items = list(decodeItems(self.snapshot.getContent()))
                except SnapshotError as error:
                    self.fail("broken snapshot after SIGKILL: %s" % (error,))
                self.assertEqual(len(items), 50000)
            process, port = await self.start("--snapshot-interval", "0.2")
        served = await deferToThread(exchange, port, b"get k0 k49999\r\n", b"END\r\n")
        self.assertEqual(served.count(b"VALUE"), 2)
        self.assertEqual(await self.stop(process), 0)
