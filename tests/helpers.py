"""
Fixtures shared by the test modules.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Callable

from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from twisted.python.filepath import FilePath

from myproto.certificates import selfSignedCertificate

#: trial's assertions for helpers that have no test case of their own (and
#: for the Hypothesis state machine): C{check.assertEqual(reply, b"END\\r\\n")}
#: raises the same AssertionError, with the same message, as in a test.
check = SynchronousTestCase()


def selfSignedFiles(
    directory: FilePath[str], host: str
) -> tuple[FilePath[str], FilePath[str], bytes]:
    """
    Write an EC private key and a self-signed certificate for C{host} (a DNS
    subject alternative name, plus the IP address 127.0.0.1) as PEM files.

    @param directory: where to write them; created if needed.
    @param host: the name clients will check the certificate against.

    @return: the key file, the certificate file and the certificate's PEM
        bytes (for a client's trust root).
    """
    keyFile, certFile = selfSignedCertificate(directory, host)
    return keyFile, certFile, certFile.getContent()


class FillingTransport(StringTransport):
    """
    A transport that, like a real one, pauses its streaming producer when
    more than C{bufferSize} bytes are waiting to be sent.
    """

    bufferSize = 65536

    def write(self, data: bytes) -> None:
        super().write(data)
        full = len(self.io.getvalue()) > self.bufferSize
        if full and self.producer is not None and self.producerState != "paused":
            self.producer.pauseProducing()

    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()

    def drain(self) -> bytes:
        """
        Hand over what was written, as if the client read it all, and tell
        the producer it may go on.
        """
        sent = self.value()
        self.clear()
        if self.producer is not None:
            self.producer.resumeProducing()
        return sent


async def waitFor(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    reactor: Any = None,
    interval: float = 0.01,
) -> None:
    """
    Wait on the reactor until C{condition()} holds; fail loudly if it does
    not within C{timeout} seconds.

    For tests on real sockets and processes, where there is no L{Clock} to
    advance: the bound is generous, and reaching it is a failure, never a
    silent end of the wait.

    @param condition: checked now and every C{interval} seconds.
    @param timeout: seconds after which to give up.
    @param what: what is awaited, for the failure message.
    @param reactor: the reactor to wait on; the global one by default.
    @param interval: seconds between checks.
    @raise AssertionError: if C{condition()} is still false after
        C{timeout} seconds.
    """
    if reactor is None:
        from twisted.internet import reactor
    deadline = reactor.seconds() + timeout
    while not condition():
        if reactor.seconds() > deadline:
            raise AssertionError("timed out after {}s waiting for {}".format(timeout, what))
        await deferLater(reactor, interval, lambda: None)


def waitForInThread(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.01,
) -> None:
    """
    L{waitFor} for code that blocks in a thread (never the reactor's).

    @raise AssertionError: if C{condition()} is still false after
        C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out after {}s waiting for {}".format(timeout, what))
        time.sleep(interval)


def receiveUntil(
    connection: socket.socket,
    complete: Callable[[bytes], bool],
    what: str,
    received: bytes = b"",
) -> bytes:
    """
    Read from a blocking socket (which has a timeout set) until what has
    arrived is complete.

    @param connection: the socket; its timeout bounds each read.
    @param complete: called with everything received so far.
    @param what: what is awaited, for the failure message.
    @param received: bytes already read.
    @return: everything received.
    @raise AssertionError: if the peer closes, or a read times out, first.
    """
    while not complete(received):
        try:
            chunk = connection.recv(65536)
        except socket.timeout:
            raise AssertionError(
                "timed out waiting for {}; received {!r}".format(what, received[-500:])
            ) from None
        if not chunk:
            raise AssertionError(
                "connection closed before {}; received {!r}".format(what, received[-500:])
            )
        received += chunk
    return received
