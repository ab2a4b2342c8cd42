"""
SASL on the binary protocol (C{-S}, C{--sasl-file}) on a
L{StringTransport}: the exchanges fed whole, pipelined and one byte at a
time; wrong passwords, unknown mechanisms, commands before authentication,
text refused; the options and what C{stats} reports.  The expected bytes
are memcached 1.6.18's with C{-S} (L{tests.test_sasl_differential} holds
the two servers to each other).
"""

from __future__ import annotations

from random import Random

from hypothesis import given, settings, strategies as st
from twisted.logger import LogLevel, capturedLogs
from twisted.python.filepath import FilePath
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from myproto.auth import checkPlain
from myproto.config import ServerSettings
from myproto.tap import Options, startupNotes
from myproto.wire import binary as B
from tests.helpers import Server, binaryRequest, binaryResponse, parseStats, storage

USERS = ((b"alice", b"s3cret"), (b"bob", b"hunter2"))
GOOD = b"\0alice\0s3cret"
BAD = b"\0alice\0wrong!"

AUTH_FAILURE = b"Auth failure."
AUTHENTICATED = b"Authenticated"
INVALID = b"Invalid arguments"
NO_MEMORY = b"Out of memory"


def auth(data: bytes = GOOD, mechanism: bytes = b"PLAIN", opaque: int = 0) -> bytes:
    return binaryRequest(B.SASL_AUTH, mechanism, value=data, opaque=opaque)


def step(data: bytes = GOOD, mechanism: bytes = b"PLAIN", opaque: int = 0) -> bytes:
    return binaryRequest(B.SASL_STEP, mechanism, value=data, opaque=opaque)


def refused(opcode: int, opaque: int = 0) -> bytes:
    return binaryResponse(opcode, B.AUTH_ERROR, value=AUTH_FAILURE, opaque=opaque)


OK = binaryResponse(B.SASL_AUTH, value=AUTHENTICATED)
STEPPED = binaryResponse(B.SASL_STEP, value=AUTHENTICATED)
CONTINUE = binaryResponse(B.SASL_AUTH, B.AUTH_CONTINUE)
VERSION = binaryRequest(B.VERSION)
VERSIONED = binaryResponse(B.VERSION, value=b"1.6.18")
MISS = binaryRequest(B.GET, b"k", opaque=5)
MISSED = binaryResponse(B.GET, B.KEY_ENOENT, value=b"Not found", opaque=5)


class PlainTests(SynchronousTestCase):
    """
    The C{PLAIN} message: C{authzid NUL authcid NUL password}.
    """

    def test_accepted(self) -> None:
        """
        A known pair is accepted, with or without the same identity to act
        as; the username comes back for the log.
        """
        self.assertEqual(checkPlain(USERS, b"\0bob\0hunter2"), (True, b"bob"))
        self.assertEqual(checkPlain(USERS, b"bob\0bob\0hunter2"), (True, b"bob"))

    def test_refused(self) -> None:
        """
        A wrong password, another identity to act as, a missing or extra
        NUL, or an unknown user is refused.
        """
        for message in [
            b"\0bob\0s3cret", b"alice\0bob\0hunter2", b"bob\0hunter2", b"\0bob\0hunter2\0",
            b"", b"\0\0", b"\0carol\0hunter2", b"\0bob\0hunter",
        ]:
            self.assertFalse(checkPlain(USERS, message)[0], message)


def parse(*arguments: str) -> Options:
    """
    Parse a command line as C{twistd myproto} does.
    """
    options = Options()
    options.parseOptions(list(arguments))
    return options


class SaslTestCase(SynchronousTestCase):
    """
    A server with C{-S} and two users, and helpers that feed a stream
    several ways.
    """

    settings = ServerSettings(saslCredentials=USERS, protocol="binary")

    def setUp(self) -> None:
        self.server = Server(self.settings)
        self.client = self.server.connect()

    def exchange(self, stream: bytes) -> bytes:
        """
        Send C{stream} on the test's connection, in one read.
        """
        return self.client.send(stream)

    def assertEveryWay(self, stream: bytes, expected: bytes, closes: bool = False) -> None:
        """
        Fed whole, and one byte at a time, each on a fresh server, C{stream}
        gets C{expected}; the connection closes after it if C{closes}.
        """
        whole = Server(self.settings).connect()
        self.assertEqual(whole.send(stream), expected)
        self.assertEqual(whole.closed, closes)
        self.assertInPieces(stream, expected, closes, [1] * len(stream))

    def assertPipelined(self, stream: bytes, expected: bytes, closes: bool = False) -> None:
        """
        As L{assertEveryWay}, and also split at every request boundary.
        """
        self.assertEveryWay(stream, expected, closes)
        sizes = []
        position = 0
        while position < len(stream):
            sizes.append(B.HEADER_LENGTH + int.from_bytes(stream[position + 8 : position + 12], "big"))
            position += sizes[-1]
        self.assertInPieces(stream, expected, closes, sizes)

    def assertInPieces(self, stream: bytes, expected: bytes, closes: bool, sizes: list[int]) -> None:
        client = Server(self.settings).connect()
        received = b""
        position = 0
        for size in sizes:
            if client.closed:
                break
            received += client.send(stream[position : position + size])
            position += size
        self.assertEqual(received, expected)
        self.assertEqual(client.closed, closes)


class SaslExchangeTests(SaslTestCase):
    """
    SASL_LIST_MECHS, SASL_AUTH and SASL_STEP.
    """

    def test_listMechanisms(self) -> None:
        """
        The only mechanism offered is C{PLAIN}, with the opaque echoed.
        """
        self.assertPipelined(
            binaryRequest(B.SASL_LIST_MECHS, opaque=3),
            binaryResponse(B.SASL_LIST_MECHS, value=b"PLAIN", opaque=3),
        )

    def test_plain(self) -> None:
        """
        C{PLAIN} with the credentials in the AUTH answers C{Authenticated};
        then the other commands are served.
        """
        self.assertPipelined(
            auth(opaque=9)
            + binaryRequest(B.SET, b"k", storage(3), b"v", opaque=1)
            + binaryRequest(B.GET, b"k", opaque=2),
            binaryResponse(B.SASL_AUTH, value=AUTHENTICATED, opaque=9)
            + binaryResponse(B.SET, opaque=1, cas=1)
            + binaryResponse(B.GET, extras=b"\0\0\0\3", value=b"v", opaque=2, cas=1),
        )
        self.assertEqual(self.server.factory.cache.stats.authCmds, 0)

    def test_continueThenStep(self) -> None:
        """
        An AUTH without data asks to continue (0x21, empty); the
        credentials then come in a STEP, whatever its key.
        """
        self.assertPipelined(
            auth(b"") + step(mechanism=b"X") + VERSION + MISS,
            CONTINUE + STEPPED + VERSIONED + MISSED,
        )

    def test_mechanismName(self) -> None:
        """
        The mechanism is matched without regard to case, and ends at a
        NUL, as a C string does.
        """
        self.assertPipelined(auth(mechanism=b"plain") + MISS, OK + MISSED)
        self.assertPipelined(auth(mechanism=b"PLAIN\0junk") + MISS, OK + MISSED)

    def test_wrongPassword(self) -> None:
        """
        A wrong password gets C{Auth failure.} (0x20), is counted in
        C{auth_cmds} and C{auth_errors}, and is logged with the username
        but never the password; the client may try again.
        """
        with capturedLogs() as events:
            reply = self.exchange(auth(BAD, opaque=4))
        self.assertEqual(reply, refused(B.SASL_AUTH, opaque=4))
        stats = self.server.factory.cache.stats
        self.assertEqual((stats.authCmds, stats.authErrors), (1, 1))
        self.assertEqual([event["log_level"] for event in events], [LogLevel.warn])
        self.assertIn("alice", repr(events))
        self.assertNotIn("wrong!", repr(events))
        self.assertEqual(self.exchange(auth() + MISS), OK + MISSED)
        self.assertEqual((stats.authCmds, stats.authErrors), (2, 1))
        self.assertFalse(self.client.closed)

    def test_unknownMechanism(self) -> None:
        """
        A mechanism other than C{PLAIN} fails and is counted; a STEP after
        it fails too, as there is no exchange to continue.
        """
        self.assertPipelined(
            auth(mechanism=b"CRAM-MD5") + step() + MISS,
            refused(B.SASL_AUTH) + refused(B.SASL_STEP) + refused(B.GET, opaque=5),
            closes=True,
        )

    def test_stepWithoutAuth(self) -> None:
        """
        A STEP before any AUTH, or after one that failed, fails.
        """
        self.assertPipelined(
            step() + auth(BAD) + step() + VERSION,
            refused(B.SASL_STEP) + refused(B.SASL_AUTH) + refused(B.SASL_STEP) + VERSIONED,
        )

    def test_stepsAfterFailedStep(self) -> None:
        """
        Within an exchange, a failed or empty STEP may be followed by
        another.
        """
        self.assertPipelined(
            auth(b"") + step(BAD) + step(b"") + step() + MISS,
            CONTINUE + refused(B.SASL_STEP) + refused(B.SASL_STEP) + STEPPED + MISSED,
        )

    def test_exchangeIsSpent(self) -> None:
        """
        After a successful exchange, as with Cyrus SASL, no credentials are
        checked again on the connection: a second AUTH fails, and the
        failure forgets the authentication.
        """
        self.assertPipelined(
            auth() + auth() + MISS,
            OK + refused(B.SASL_AUTH) + refused(B.GET, opaque=5),
            closes=True,
        )
        self.assertPipelined(
            auth(b"") + step() + step() + MISS,
            CONTINUE + STEPPED + refused(B.SASL_STEP) + refused(B.GET, opaque=5),
            closes=True,
        )

    def test_listForgetsAuthentication(self) -> None:
        """
        SASL_LIST_MECHS forgets an earlier authentication, as memcached's
        does; during an exchange it changes nothing.
        """
        self.assertPipelined(
            auth() + binaryRequest(B.SASL_LIST_MECHS) + MISS,
            OK + binaryResponse(B.SASL_LIST_MECHS, value=b"PLAIN") + refused(B.GET, opaque=5),
            closes=True,
        )
        self.assertPipelined(
            auth(b"") + binaryRequest(B.SASL_LIST_MECHS) + step() + MISS,
            CONTINUE + binaryResponse(B.SASL_LIST_MECHS, value=b"PLAIN") + STEPPED + MISSED,
        )

    def test_counters(self) -> None:
        """
        Successes count in C{auth_cmds}, failures in both counters, a
        request to continue in neither; C{stats} reports them.
        """
        self.exchange(auth(b"") + step(BAD) + step() + auth(BAD))
        stats = self.server.factory.cache.stats
        self.assertEqual((stats.authCmds, stats.authErrors), (3, 2))


class SaslMalformedTests(SaslTestCase):
    """
    Lengths that do not fit, as memcached answers them.
    """

    def test_mechanismLength(self) -> None:
        """
        A mechanism of 32 bytes is merely unknown; of 33, C{Invalid
        arguments} and the data swallowed; past the key limit, or none at
        all, C{Invalid arguments} and a hang-up.
        """
        self.assertPipelined(auth(mechanism=b"P" * 32) + VERSION, refused(B.SASL_AUTH) + VERSIONED)
        self.assertPipelined(
            auth(mechanism=b"P" * 33) + VERSION,
            binaryResponse(B.SASL_AUTH, B.EINVAL, value=INVALID) + VERSIONED,
        )
        for request in [auth(mechanism=b"P" * 251), auth(mechanism=b""), step(mechanism=b"")]:
            self.assertEveryWay(
                request + VERSION,
                binaryResponse(request[1], B.EINVAL, value=INVALID),
                closes=True,
            )

    def test_extrasOrBody(self) -> None:
        """
        Extras on an AUTH, or a body on a SASL_LIST_MECHS: C{Invalid
        arguments} and a hang-up.
        """
        self.assertEveryWay(
            binaryRequest(B.SASL_AUTH, b"PLAIN", b"1234", GOOD) + VERSION,
            binaryResponse(B.SASL_AUTH, B.EINVAL, value=INVALID),
            closes=True,
        )
        self.assertEveryWay(
            binaryRequest(B.SASL_LIST_MECHS, b"x") + VERSION,
            binaryResponse(B.SASL_LIST_MECHS, B.EINVAL, value=INVALID),
            closes=True,
        )

    def test_dataTooLarge(self) -> None:
        """
        Data that would not fit memcached's unchunked item (512 KiB, header
        and key included) gets C{Out of memory}, and is swallowed as it
        arrives, not held.
        """
        largest = 512 * 1024 - 48 - 5 - 1 - 2 - 8
        self.assertEqual(self.exchange(auth(b"x" * largest) + VERSION), refused(B.SASL_AUTH) + VERSIONED)
        request = auth(b"x" * (largest + 1))
        self.assertEqual(
            self.exchange(request[:100_000]), binaryResponse(B.SASL_AUTH, B.ENOMEM, value=NO_MEMORY)
        )
        self.assertEqual(self.client.protocol.connection.bufferedBytes, 0)
        self.assertEqual(self.exchange(request[100_000:] + VERSION), VERSIONED)


class SaslGateTests(SaslTestCase):
    """
    Before authentication, only VERSION and SASL are served.
    """

    def test_commandsBeforeAuthentication(self) -> None:
        """
        Any other command, quiet or unknown, with a key too long or a value
        to follow, gets C{Auth failure.} with its opcode and opaque, and
        the connection is closed; nothing after it is read.
        """
        for request in [
            binaryRequest(B.GET, b"k", opaque=7),
            binaryRequest(B.GETQ, b"k", opaque=7),
            binaryRequest(B.SETQ, b"k", storage(), b"v", opaque=7),
            binaryRequest(B.NOOP, opaque=7),
            binaryRequest(B.STAT, opaque=7),
            binaryRequest(B.VERBOSITY, extras=b"\0\0\0\0", opaque=7),
            binaryRequest(B.QUIT, opaque=7),
            binaryRequest(0x50, opaque=7),
            binaryRequest(B.GET, b"k" * 300, opaque=7),
        ]:
            self.assertPipelined(request + auth(), refused(request[1], opaque=7), closes=True)
        self.assertEqual(self.server.factory.cache.stats.authCmds, 0)

    def test_versionBeforeAuthentication(self) -> None:
        """
        VERSION is served before authentication, as in memcached.
        """
        self.assertPipelined(
            VERSION + binaryRequest(B.NOOP), VERSIONED + refused(B.NOOP), closes=True
        )

    def test_lengthsCheckedFirst(self) -> None:
        """
        A key longer than the body is refused as without SASL, before the
        gate: C{Unknown command} and a hang-up.
        """
        self.assertEveryWay(
            binaryRequest(B.GET, b"abcde", bodyLength=2) + b"abcde",
            binaryResponse(B.GET, B.UNKNOWN_COMMAND, value=b"Unknown command"),
            closes=True,
        )

    def test_quietAfterAuthentication(self) -> None:
        """
        Once authenticated, quiet commands are held back as usual.
        """
        self.assertPipelined(
            auth()
            + binaryRequest(B.SETQ, b"q", storage(), b"v")
            + binaryRequest(B.GETQ, b"q")
            + binaryRequest(B.GETQ, b"none")
            + binaryRequest(B.NOOP),
            OK
            + binaryResponse(B.GETQ, extras=b"\0\0\0\0", value=b"v", cas=1)
            + binaryResponse(B.NOOP),
        )

    def test_textRefused(self) -> None:
        """
        With C{-S} memcached serves the binary protocol only: a text
        command waits for a binary header's 24 bytes, then the connection
        is closed without a word.
        """
        self.assertEqual(self.exchange(b"get foo\r\n"), b"")
        self.assertFalse(self.client.closed)
        self.assertEqual(self.exchange(b"stats\r\nversion\r\nget k\r\n"), b"")
        self.assertTrue(self.client.closed)


_SASL_FRAMES = st.one_of(
    st.builds(
        binaryRequest,
        st.sampled_from([B.SASL_AUTH, B.SASL_STEP, B.SASL_LIST_MECHS]),
        st.sampled_from([b"PLAIN", b"plain", b"", b"X", b"P" * 33, b"P" * 251]),
        st.sampled_from([b"", b"", b"", b"\0\0\0\0"]),
        st.sampled_from([GOOD, BAD, b"", b"\0bob\0hunter2", b"alice\0s3cret", b"x" * 600_000]),
        opaque=st.integers(0, 3),
    ),
    st.sampled_from([
        binaryRequest(B.GET, b"k"), binaryRequest(B.GETQ, b"k"), binaryRequest(B.NOOP),
        binaryRequest(B.VERSION), binaryRequest(B.SET, b"k", storage(), b"v"),
        binaryRequest(B.GET, b"abcde", bodyLength=2) + b"abcde",
    ]),
)


class SaslFuzzTests(SynchronousTestCase):
    """
    Random SASL streams: no internal error, and the same bytes out however
    the stream is split.  (No text: a bad magic byte loses the replies
    memcached had not yet written, which depends on the split.)
    """

    @settings(max_examples=200, deadline=None)
    @given(st.lists(_SASL_FRAMES, max_size=8), st.randoms(use_true_random=False))
    def test_anySplitSameReplies(self, frames: list[bytes], random: Random) -> None:
        settings = ServerSettings(saslCredentials=USERS, protocol="binary")
        stream = b"".join(frames)
        whole = Server(settings).connect()
        expected = whole.send(stream)
        client = Server(settings).connect()
        received = b""
        position = 0
        while position < len(stream) and not client.closed:
            size = random.choice([1, 7, 24, 100, 70_000])
            received += client.send(stream[position : position + size])
            position += size
        self.assertEqual(received, expected)
        self.assertEqual(client.closed, whole.closed)
        self.assertEqual(self.flushLoggedErrors(), [])


class SaslOptionTests(SynchronousTestCase):
    """
    C{-S} and C{--sasl-file}, and what C{stats} says of them.
    """

    def usersFile(self, content: bytes = b"alice:s3cret\nbob:hunter2\n") -> str:
        path = FilePath(self.mktemp())
        path.setContent(content)
        return path.path

    def test_enabled(self) -> None:
        """
        C{-S --sasl-file FILE} reads the users, and, as memcached's C{-S},
        serves the binary protocol only; nothing is noted as ignored.
        """
        options = parse("-S", "--sasl-file", self.usersFile())
        settings = options["settings"]
        self.assertEqual(settings.saslCredentials, USERS)
        self.assertEqual(settings.protocol, "binary")
        self.assertEqual(startupNotes(options, settings), [])
        self.assertEqual(parse("-S", "-B", "binary", "--sasl-file", self.usersFile())["settings"].protocol, "binary")

    def test_refused(self) -> None:
        """
        C{-S} without a file or the reverse, the text protocol, UDP or
        C{-Y} with it, and a bad file are refused, in memcached's words
        where it has some.
        """
        users = self.usersFile()
        for arguments, message in [
            (["-S"], "-S needs --sasl-file FILE"),
            (["--sasl-file", users], "--sasl-file is read only with -S"),
            (["-S", "--sasl-file", users, "-B", "ascii"], "You cannot allow the ASCII protocol while using SASL."),
            (["-S", "--sasl-file", users, "-B", "auto"], "You cannot allow the ASCII protocol while using SASL."),
            (["-S", "--sasl-file", users, "-U", "11211"], "Cannot enable UDP while using binary SASL authentication."),
            (["-S", "--sasl-file", users, "-Y", users], "use one"),
            (["-S", "--sasl-file", self.usersFile(b"nocolon\n")], "Bad SASL file"),
            (["-S", "--sasl-file", users + ".missing"], "Could not read the SASL file"),
        ]:
            error = self.assertRaises(UsageError, parse, *arguments)
            self.assertIn(message, str(error), arguments)

    def test_settingsRefuseText(self) -> None:
        """
        Settings made in code (a C{.tac}) cannot serve text clients
        unauthenticated beside SASL.
        """
        self.assertRaises(ValueError, ServerSettings, saslCredentials=USERS)
        self.assertRaises(ValueError, ServerSettings, saslCredentials=USERS, protocol="ascii")

    def test_statsSettings(self) -> None:
        """
        C{stats settings} reports SASL on, and the binary protocol, as
        memcached with C{-S}; off without it.
        """
        server = Server(ServerSettings(saslCredentials=USERS, protocol="binary"))
        client = server.connect()
        reply = client.send(auth() + binaryRequest(B.STAT, b"settings"))
        self.assertIn(b"auth_enabled_saslyes", reply)
        self.assertIn(b"binding_protocolbinary", reply)
        self.assertEqual(parseStats(Server().connect().send(b"stats settings\r\n"))["auth_enabled_sasl"], "no")
