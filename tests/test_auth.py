"""
Tests for memcached's ASCII authentication (C{-Y}).
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from myproto.auth import AuthFileError, checkCredentials, parseAuthFile
from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore

CREDENTIALS = ((b"alice", b"s3cret"), (b"bob", b"hunter2"))


class AuthFileTests(SynchronousTestCase):
    """
    The C{username:password} file.
    """

    def test_entries(self) -> None:
        """
        Each line is split at its first colon; blank lines are skipped and
        a password may contain colons.
        """
        self.assertEqual(
            parseAuthFile([b"alice:s3cret\n", b"\n", b"bob:a:b\r\n"]),
            ((b"alice", b"s3cret"), (b"bob", b"a:b")),
        )

    def test_malformed(self) -> None:
        """
        A line without a colon or username, an over-long line, or a file
        with no entries is refused with the line number.
        """
        self.assertRaises(AuthFileError, parseAuthFile, [b"alice\n"])
        self.assertRaises(AuthFileError, parseAuthFile, [b":pw\n"])
        self.assertRaises(AuthFileError, parseAuthFile, [b"a:" + b"x" * 300 + b"\n"])
        self.assertRaises(AuthFileError, parseAuthFile, [b"\n"])
        error = self.assertRaises(AuthFileError, parseAuthFile, [b"a:b\n", b"nocolon\n"])
        self.assertIn("line 2", str(error))

    def test_check(self) -> None:
        """
        Only an exact username and password pair is accepted.
        """
        self.assertTrue(checkCredentials(CREDENTIALS, b"bob", b"hunter2"))
        self.assertFalse(checkCredentials(CREDENTIALS, b"bob", b"s3cret"))
        self.assertFalse(checkCredentials(CREDENTIALS, b"alice", b"s3cre"))
        self.assertFalse(checkCredentials(CREDENTIALS, b"carol", b"hunter2"))
        self.assertFalse(checkCredentials((), b"alice", b"s3cret"))


class AuthenticationTests(SynchronousTestCase):
    """
    Until a client authenticates, every command is refused with memcached's
    replies; afterwards the connection works normally.
    """

    def setUp(self) -> None:
        clock = Clock()
        self.factory = CacheServerFactory(
            MemoryStore(clock), clock, ServerSettings(credentials=CREDENTIALS)
        )
        self.proto = self.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        self.transport = StringTransport()
        self.proto.makeConnection(self.transport)

    def feed(self, data: bytes) -> bytes:
        self.transport.clear()
        self.proto.dataReceived(data)
        return self.transport.value()

    def test_commandsRefused(self) -> None:
        """
        Anything but an authentication C{set} gets C{CLIENT_ERROR
        unauthenticated}, and the line is consumed.
        """
        self.assertEqual(self.feed(b"get a\r\n"), b"CLIENT_ERROR unauthenticated\r\n")
        self.assertEqual(self.feed(b"set a 0 0\r\n"), b"CLIENT_ERROR unauthenticated\r\n")
        self.assertEqual(self.feed(b"set a 0 0 x\r\n"), b"CLIENT_ERROR unauthenticated\r\n")
        self.assertEqual(self.feed(b"x\r\n"), b"CLIENT_ERROR unauthenticated\r\n")

    def test_authenticate(self) -> None:
        """
        A C{set} whose data is C{"username password"} answers C{STORED}
        (whatever the key, flags, expiry or noreply) and stores nothing;
        then commands work.
        """
        self.assertEqual(self.feed(b"set any 5 100 12 noreply\r\nalice s3cret\r\n"), b"STORED\r\n")
        self.assertEqual(self.feed(b"get any\r\n"), b"END\r\n")
        self.assertEqual(self.feed(b"set k 0 0 1\r\nv\r\nget k\r\n"), b"STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n")
        self.assertEqual(self.factory.cache.stats.authCmds, 1)
        self.assertEqual(self.factory.cache.stats.authErrors, 0)

    def test_byteAtATime(self) -> None:
        """
        The authentication works whatever the read boundaries.
        """
        for byte in b"set a 0 0 11\r\nbob hunter2\r\nget a\r\n":
            self.proto.dataReceived(bytes([byte]))
        self.assertEqual(self.transport.value(), b"STORED\r\nEND\r\n")

    def test_failure(self) -> None:
        """
        A wrong password gets C{CLIENT_ERROR authentication failure}, is
        counted, and is logged without the password; the client may retry.
        """
        with capturedLogs() as events:
            reply = self.feed(b"set a 0 0 12\r\nalice wrong!\r\n")
        self.assertEqual(reply, b"CLIENT_ERROR authentication failure\r\n")
        self.assertEqual(self.factory.cache.stats.authErrors, 1)
        self.assertEqual(self.factory.cache.stats.authCmds, 1)
        self.assertEqual([event["log_level"] for event in events], [LogLevel.warn])
        self.assertNotIn("wrong!", repr(events))
        self.assertEqual(self.feed(b"get a\r\n"), b"CLIENT_ERROR unauthenticated\r\n")
        self.assertEqual(self.feed(b"set a 0 0 12\r\nalice s3cret\r\n"), b"STORED\r\n")

    def test_badTokens(self) -> None:
        """
        A data block that is not two tokens, or does not end in CRLF, gets
        memcached's errors.
        """
        self.assertEqual(
            self.feed(b"set a 0 0 5\r\nalice\r\n"), b"CLIENT_ERROR bad authentication token format\r\n"
        )
        self.assertEqual(
            self.feed(b"set a 0 0 3\r\nu pxx"), b"CLIENT_ERROR bad command line termination\r\n"
        )

    def test_longLineCloses(self) -> None:
        """
        An unauthenticated client sending over 2048 bytes without a newline
        is disconnected, whatever the command.
        """
        self.feed(b"get " + b"k" * 3000)
        self.assertTrue(self.transport.disconnecting)

    def test_statsSettings(self) -> None:
        """
        C{stats settings} reports ASCII authentication as enabled.
        """
        self.feed(b"set a 0 0 12\r\nalice s3cret\r\n")
        self.assertIn(b"STAT auth_enabled_ascii yes\r\n", self.feed(b"stats settings\r\n"))
