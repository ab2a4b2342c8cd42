"""
Hostile and faulty input, property-based: whatever bytes a client sends and
however they are split into reads, the connection never lets an exception
out, never sends a traceback or C{SERVER_ERROR internal error}, never logs a
failure, never holds more than a bounded amount of a client's input, and
never changes another client's data.  Once the junk is over (after a line
ending, or after the data block the server is waiting for), a valid command
gets the right reply.

A state machine then checks the item commands against a small model of
memcached's semantics, with time driven by a L{Clock} and each request fed
whole, split in two or one byte at a time on one of two connections.

Everything runs in memory through the real factory, on L{StringTransport}s.
Hypothesis is bounded (a few hundred examples per property, no deadline) so
the module runs in well under a minute.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.logger import LogEvent, capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from myproto.config import ServerSettings
from myproto.connection import REPLY_BATCH_LIMIT, ReaderState
from myproto.wire import classic
from tests import helpers
from tests.helpers import Client, FillingTransport, check

# A plausible wall-clock start, so that absolute exptimes look like unix times.
START = 1_700_000_000
THIRTY_DAYS = 60 * 60 * 24 * 30

CREDENTIALS = ((b"u", b"p"),)
SMALL_ITEMS = ServerSettings(maxItemSize=1024)

# The settings the junk properties run under, each an example's choice.
SETTINGS = {
    "default": ServerSettings(),
    "small items": SMALL_ITEMS,
    "no cas": ServerSettings(useCas=False),
    "tiny memory": ServerSettings(memoryLimit=4096, maxItemSize=1024),
    "authentication": ServerSettings(credentials=CREDENTIALS),
}

# Never more than this of a client's input may be held by a connection: the
# longest multi-get line memcached lets grow, or the largest data block.
INPUT_BOUND = classic.MAX_RETRIEVAL_LINE + 1024 * 1024 + 2

# A data block still owed after the junk is supplied (to get back in step)
# only when it is no longer than this.
RESYNC_LIMIT = 2 * 1024 * 1024

# Things that must never be sent.
FORBIDDEN_OUTPUT = (b"SERVER_ERROR internal error", b"Traceback", b"Unhandled", b"Exception")

HOSTILE = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------------
# Connections.


class Connection(Client):
    """
    One client connection to a L{Server}, over a L{StringTransport}, that
    stops delivering once the server closes.
    """

    def feed(self, chunks: Iterable[bytes]) -> None:
        """
        Deliver each chunk as one read, stopping once the server closes.
        """
        for chunk in chunks:
            if self.closed:
                return
            self.protocol.dataReceived(chunk)

    def send(self, data: bytes) -> bytes:
        """
        Deliver C{data} as one read, unless the server has closed.

        @return: what the server wrote since the last call.
        """
        self.feed([data])
        return self.received()

    @property
    def output(self) -> bytes:
        return self.transport.value()

    def buffered(self) -> int:
        """
        @return: how many received bytes the connection holds on to.
        """
        return self.protocol.connection.bufferedBytes


class Server(helpers.Server):
    """
    The shared in-memory server, whose connections stop delivering at close
    and can authenticate as they open.
    """

    clientType = Connection

    def connect(self, authenticate: bool = False) -> Connection:  # type: ignore[override]
        connection = super().connect()
        if authenticate and self.settings.credentials is not None:
            check.assertEqual(connection.send(b"set auth 0 0 3\r\nu p\r\n"), b"STORED\r\n")
        return connection  # type: ignore[return-value]


def splitAt(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """
    @return: C{data} cut at each of C{cuts} (positions, in any order).
    """
    points = sorted({min(max(cut, 0), len(data)) for cut in cuts})
    pieces = []
    previous = 0
    for point in points + [len(data)]:
        pieces.append(data[previous:point])
        previous = point
    return [piece for piece in pieces if piece] or [b""]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# ---------------------------------------------------------------------------
# Strategies.

ALL_VERBS = [
    b"set", b"add", b"replace", b"append", b"prepend", b"cas",
    b"get", b"gets", b"gat", b"gats", b"bget",
    b"delete", b"incr", b"decr", b"touch",
    b"stats", b"version", b"verbosity", b"quit", b"shutdown", b"flush_all", b"cache_memlimit",
    b"mn", b"mg", b"ms", b"md", b"ma", b"me", b"mz",
    b"lru", b"lru_crawler", b"watch", b"extstore", b"refresh_certs",
    b"GET", b"POST", b"x", b"",
]  # fmt: skip

# Verbs that legitimately change every client's items (or evict them).
GLOBAL_VERBS = {b"flush_all", b"cache_memlimit"}

INTERESTING_TOKENS = [
    b"0", b"1", b"-1", b"5", b"100", b"noreply", b"4294967295", b"4294967296",
    b"18446744073709551615", b"18446744073709551616", b"9223372036854775808",
    b"2147483645", b"2147483646", b"2147483647", b"2147483648", b"-2147483649",
    b"+3", b"0x10", b"1e3", b"07", b"\t", b"\x00", b"\r", b"\x0b", b"\x7f", b"\xff",
    b"HTTP/1.1", b"b", b"q", b"v", b"k", b"c", b"f", b"t", b"s", b"h", b"l", b"u",
    b"O", b"Oopaque", b"O" + b"x" * 40, b"T-1", b"T0", b"N0", b"N30", b"R5",
    b"MS", b"MA", b"ME", b"MP", b"MR", b"MI", b"MD", b"M+", b"M-", b"Mx", b"MSS",
    b"D3", b"D-1", b"J7", b"Jx", b"C0", b"C1", b"C99999999999999999999", b"F9", b"Fx",
    b"I", b"E5", b"P", b"L", b"graceful", b"reset", b"detail", b"on", b"off", b"dump",
    b"settings", b"items", b"slabs", b"conns", b"a" * 250, b"a" * 251, b"dGVzdA==",
    b"a:b", b"=", b"!!", b"k" * 40, b"metadump", b"all", b"hash", b"crawl", b"enable",
    b"disable", b"fetchers", b"mutations", b"evictions", b"connevents", b"proxyreqs",
]  # fmt: skip

KEYS = [b"k", b"key", b"k2", b"a:b", b"x" * 250, b"\x01", b"k\r", b"-", b"noreply"]

# Bytes, biased towards the ones that matter to framing.
framingBytes = st.lists(
    st.sampled_from([b"\r", b"\n", b"\r\n", b"\0", b" ", b"\t", b"\xff", b"\r\r\n", b"\n\r"])
    | st.binary(min_size=1, max_size=8),
    max_size=30,
).map(b"".join)

token = st.one_of(
    st.sampled_from(INTERESTING_TOKENS),
    st.sampled_from(KEYS),
    st.integers(-(2**70), 2**70).map(lambda n: b"%d" % (n,)),
    st.binary(min_size=1, max_size=12).map(
        lambda b: b.replace(b"\n", b"").replace(b" ", b"") or b"z"
    ),
)

lineEnding = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"", b"\r\r\n", b"\n\r"])


@st.composite
def commandLine(draw: st.DrawFn, verbs: Sequence[bytes] = ALL_VERBS) -> bytes:
    """
    A verb with random argument tokens, separated by one or more spaces.
    """
    verb = draw(st.sampled_from(verbs))
    tokens = [verb] + draw(st.lists(token, max_size=9))
    separators = draw(
        st.lists(
            st.sampled_from([b" ", b" ", b"  ", b" \t"]), min_size=len(tokens), max_size=len(tokens)
        )
    )
    line = b"".join(t + s for t, s in zip(tokens, separators)).rstrip(b" ")
    if draw(st.booleans()):
        line = b" " * draw(st.integers(1, 3)) + line
    return line + draw(lineEnding)


# Declared data block sizes, from tiny to absurd.
declaredSize = st.one_of(
    st.integers(0, 40),
    st.sampled_from(
        [958, 964, 965, 1024, 1048000, 1048576, 2**31 - 3, 2**31 - 2, 2**31 - 1, 2**32, -1, -2]
    ),
)


@st.composite
def storageCommand(
    draw: st.DrawFn,
    verbs: Sequence[bytes] = (b"set", b"add", b"replace", b"append", b"prepend", b"cas", b"ms"),
) -> bytes:
    """
    A storage command line, and a data block that may be exact, short, long,
    or badly terminated; or nothing at all (a truncated command).
    """
    verb = draw(st.sampled_from(verbs))
    key = draw(st.sampled_from(KEYS[:5]))
    size = draw(declaredSize)
    if verb == b"ms":
        line = b"ms %s %d %s" % (key, size, b" ".join(draw(st.lists(token, max_size=4))))
    else:
        fields = [
            verb,
            key,
            b"%d" % draw(st.integers(0, 2**32)),
            b"%d" % draw(st.sampled_from([0, 1, -1, THIRTY_DAYS + 1])),
            b"%d" % size,
        ]
        if verb == b"cas":
            fields.append(b"%d" % draw(st.integers(0, 20)))
        if draw(st.booleans()):
            fields.append(b"noreply")
        line = b" ".join(fields)
    line += draw(lineEnding)
    shape = draw(st.sampled_from(["exact", "exact", "short", "long", "bad end", "truncated"]))
    length = min(max(size, 0), 2000)
    if shape == "short":
        length = max(length - draw(st.integers(1, 5)), 0)
    elif shape == "long":
        length += draw(st.integers(1, 5))
    value = draw(st.binary(min_size=min(length, 40), max_size=min(length, 40)))
    value = (value * (length // max(len(value), 1) + 1))[:length] if length else b""
    if shape == "truncated":
        return line + value[: draw(st.integers(0, length))]
    ending = (
        draw(st.sampled_from([b"\n", b"\r", b"", b"xx", b"\n\r"]))
        if shape == "bad end"
        else b"\r\n"
    )
    return line + value + ending


validCommand = st.sampled_from(
    [
        b"set k 0 0 1\r\nx\r\n",
        b"get k\r\n",
        b"gets k key\r\n",
        b"delete k\r\n",
        b"incr k 1\r\n",
        b"touch k 10\r\n",
        b"version\r\n",
        b"mn\r\n",
        b"md k q\r\n",
        b"ms k 2 T0\r\nab\r\n",
        b"stats\r\n",
    ]
)

longToken = st.integers(200, 20000).map(lambda n: b"y" * n)


@st.composite
def junk(draw: st.DrawFn, verbs: Sequence[bytes] = ALL_VERBS, longTokens: bool = True) -> bytes:
    """
    An interleaving of garbage, command lines with random arguments,
    storage commands with good and bad data blocks, valid commands and
    (optionally) very long tokens.
    """
    parts = [
        framingBytes,
        commandLine(verbs),
        storageCommand(),
        validCommand,
        st.binary(max_size=60),
    ]
    if longTokens:
        parts.append(longToken)
    return b"".join(draw(st.lists(st.one_of(*parts), max_size=10)))


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """
    C{data} cut into reads at random points.
    """
    if not data:
        return [b""]
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return splitAt(data, cuts)


# ---------------------------------------------------------------------------
# Checks shared by the properties.


def failuresIn(events: Sequence[LogEvent]) -> list[str]:
    return [str(event.get("log_format")) for event in events if "log_failure" in event]


def normalise(output: bytes) -> bytes:
    """
    Drop the values of C{STAT} lines, which depend on the process (rusage)
    and on how much input had been read when they were asked for.
    """
    return re.sub(rb"STAT (\S+) [^\r\n]*", rb"STAT \1", output)


@dataclass
class Victim:
    """
    A well-behaved client on another connection of the same server, with
    its own keys, which the junk must never affect.
    """

    connection: Connection
    keys: list[bytes] = field(default_factory=list)
    snapshot: bytes = b""

    @classmethod
    def on(cls, server: Server) -> Victim:
        connection = server.connect(authenticate=True)
        victim = cls(connection, [b"victim:%d" % (i,) for i in range(4)])
        requests = b"".join(
            b"set %s %d 0 %d\r\n%s\r\n" % (key, i * 7, len(value), value)
            for i, (key, value) in enumerate(
                (key, b"value of %s\r\n\0" % (key,)) for key in victim.keys
            )
        )
        check.assertEqual(connection.send(requests), b"STORED\r\n" * len(victim.keys))
        victim.snapshot = victim.look()
        return victim

    def look(self) -> bytes:
        return self.connection.send(b"gets " + b" ".join(self.keys) + b"\r\n")


@contextmanager
def describing(context: str) -> Iterator[None]:
    """
    Add C{context} (the example's input) to a failure's message: trial does
    not show the notes in which Hypothesis reports its falsifying example.
    """
    try:
        yield
    except AssertionError as error:
        raise type(error)("{}\n  with {}".format(error, context)) from error
    except Exception as error:
        raise AssertionError("{!r}\n  with {}".format(error, context)) from error


class HostileTestCase(SynchronousTestCase):
    """
    Feeds junk to connections and checks the invariants.
    """

    def feedChecked(
        self,
        connection: Connection,
        chunks: Sequence[bytes],
        between: Callable[[], None] | None = None,
        cleanOutput: bool = True,
    ) -> None:
        """
        Deliver C{chunks}; nothing may raise, be logged as a failure, or
        leave more than L{INPUT_BOUND} bytes held.

        @param cleanOutput: whether to look for an internal error in the
            output; a caller that checks the output exactly says no, as its
            values may hold any bytes (Hypothesis draws this module's own
            constants among them).
        """
        with capturedLogs() as events:
            for index, chunk in enumerate(chunks):
                if connection.closed:
                    break
                connection.protocol.dataReceived(chunk)
                if index % 64 == 0 or len(chunk) > 1:
                    self.assertLessEqual(connection.buffered(), INPUT_BOUND)
                if between is not None:
                    between()
            self.assertLessEqual(connection.buffered(), INPUT_BOUND)
        self.assertEqual(failuresIn(events), [])
        if cleanOutput:
            self.assertCleanOutput(connection.output)

    def assertCleanOutput(self, output: bytes) -> None:
        for forbidden in FORBIDDEN_OUTPUT:
            self.assertNotIn(forbidden, output)

    def resync(self, server: Server, connection: Connection) -> bool:
        """
        Finish whatever the junk left unfinished: end a partial line, supply
        an awaited data block (if it is not huge).

        @return: whether the connection is open and waiting for a command.
        """
        protocol = connection.protocol
        for _ in range(5):
            if connection.closed:
                return False
            stream = protocol.connection.stream
            if stream is not None:
                # Handed over (watch, lru_crawler metadump): a watcher never
                # reads commands again, as in memcached; a dump gives the
                # connection back once it has written everything.
                if stream.endless:
                    return False
                for _ in range(1000):
                    if not protocol.handedOver:
                        break
                    server.clock.advance(0)
                continue
            if protocol.connection.state is ReaderState.COMMAND:
                if not protocol.connection.buffered:
                    return True
                data = b"\r\n"
            else:
                remaining = protocol.connection.dataRemaining
                if remaining > RESYNC_LIMIT:
                    return False
                data = b"\r\n"[-remaining:] if remaining <= 2 else b"\0" * (remaining - 2) + b"\r\n"
            self.feedChecked(connection, [data])
        return False

    def assertWorks(self, connection: Connection, settings: ServerSettings) -> None:
        """
        A valid command gets the right reply.
        """
        connection.received()
        if settings.credentials is not None:
            # Either this authenticates, or (if the junk did) it is a set.
            self.assertEqual(connection.send(b"set auth 0 0 3\r\nu p\r\n"), b"STORED\r\n")
        reply = connection.send(b"set hostile:probe 0 0 5\r\nhello\r\nget hostile:probe\r\nmn\r\n")
        self.assertEqual(reply, b"STORED\r\nVALUE hostile:probe 0 5\r\nhello\r\nEND\r\nMN\r\n")

    def hostile(
        self, settingsName: str, data: bytes, chunks: Sequence[bytes], checkEachRead: bool = False
    ) -> None:
        """
        The whole check: feed C{chunks} (which join to C{data}) on one
        connection while a victim watches its own keys on another; then get
        back in step and check that a valid command works.
        """
        with describing("settings {!r}, reads {!r}".format(settingsName, list(chunks))):
            self.hostileUnder(SETTINGS[settingsName], data, chunks, checkEachRead)

    def hostileUnder(
        self, settings: ServerSettings, data: bytes, chunks: Sequence[bytes], checkEachRead: bool
    ) -> None:
        server = Server(settings)
        victim = Victim.on(server)
        attacker = server.connect()
        touchesEveryone = any(verb in data for verb in GLOBAL_VERBS)

        def watch() -> None:
            if not (touchesEveryone or server.store.stats.evictions):
                self.assertEqual(victim.look(), victim.snapshot)

        self.feedChecked(attacker, chunks, watch if checkEachRead else None)
        self.assertEqual(victim.connection.received(), b"")
        if self.resync(server, attacker):
            self.assertWorks(attacker, settings)
        self.assertCleanOutput(attacker.output)
        # Eviction (the tiny memory limit) is not interference.
        if not (touchesEveryone or server.store.stats.evictions):
            self.assertEqual(victim.look(), victim.snapshot)
        attacker.lose()
        victim.connection.lose()
        self.assertEqual(server.clock.getDelayedCalls(), [])


settingsName = st.sampled_from(sorted(SETTINGS))


class HostileInputTests(HostileTestCase):
    """
    Random bytes, random command lines and random data blocks, in random
    reads: the server survives, answers only with protocol lines, stays
    usable and leaves other clients alone.
    """

    @HOSTILE
    @given(settingsName, st.data(), st.binary(max_size=600) | framingBytes)
    def test_randomBytes(self, name: str, data: st.DataObject, junkBytes: bytes) -> None:
        """
        Arbitrary bytes, split into arbitrary reads.
        """
        self.hostile(name, junkBytes, data.draw(splits(junkBytes)))

    @HOSTILE
    @given(settingsName, st.data(), junk())
    def test_commandSoup(self, name: str, data: st.DataObject, stream: bytes) -> None:
        """
        Garbage, truncated and oversized commands, bad data blocks, long
        tokens and valid commands, interleaved, in random reads; the victim
        checks its keys after every read.
        """
        self.hostile(name, stream, data.draw(splits(stream)), checkEachRead=True)

    @HOSTILE
    @given(settingsName, st.data(), st.lists(commandLine(), min_size=1, max_size=6).map(b"".join))
    def test_everyVerbRandomArguments(self, name: str, data: st.DataObject, stream: bytes) -> None:
        """
        Every verb, with random argument tokens and line endings.
        """
        self.hostile(name, stream, data.draw(splits(stream)))

    @HOSTILE
    @given(
        settingsName, st.data(), st.lists(storageCommand(), min_size=1, max_size=5).map(b"".join)
    )
    def test_dataBlocks(self, name: str, data: st.DataObject, stream: bytes) -> None:
        """
        Storage commands whose data blocks are exact, short, long, badly
        terminated or cut off, with sizes up to the absurd.
        """
        self.hostile(name, stream, data.draw(splits(stream)))

    @HOSTILE
    @given(
        settingsName,
        st.sampled_from(
            [
                b"set k 0 0 %d\r\n",
                b"cas k 0 0 %d 1\r\n",
                b"append k 0 0 %d noreply\r\n",
                b"ms k %d T0\r\n",
                b"ms k %d MZ\r\n",
            ]
        ),
        st.sampled_from([2**31 - 3, 2**31 - 2, 2**20, 2**20 + 1, 10**6, 4294967295]),
        st.integers(1, 3),
    )
    def test_hugeDeclaredSizes(self, name: str, header: bytes, size: int, megabytes: int) -> None:
        """
        A declared size far beyond the item limit, and megabytes of its data
        block: none of it is held, whether the server swallows or refuses it.
        """
        server = Server(SETTINGS[name])
        victim = Victim.on(server)
        attacker = server.connect()
        chunk = b"z" * 65536
        self.feedChecked(attacker, [header % (size,)] + [chunk] * (16 * megabytes))
        self.assertLessEqual(
            attacker.buffered(),
            SETTINGS[name].maxItemSize + 2,
            "%s, after %r and %d MB: %d bytes held"
            % (name, header % (size,), megabytes, attacker.buffered()),
        )
        self.assertEqual(victim.look(), victim.snapshot)


class TimedJunkTests(HostileTestCase):
    """
    Junk arriving over time, with the idle and request timeouts armed.
    """

    @HOSTILE
    @given(
        st.lists(
            st.tuples(junk(longTokens=False), st.sampled_from([0, 0, 1, 4, 6, 19, 21, 45])),
            max_size=8,
        )
    )
    def test_timeoutsAmidJunk(self, steps: list[tuple[bytes, int]]) -> None:
        """
        Whatever the junk and however long the pauses between reads, the
        timers never fail or send anything, a connection left with half a
        request for the request timeout, or silent for the idle timeout, is
        closed, and no timer outlives the connection.
        """
        with describing("steps {!r}".format(steps)):
            settings = ServerSettings(idleTimeout=20, requestTimeout=5)
            server = Server(settings)
            connection = server.connect()
            for data, seconds in steps:
                self.feedChecked(connection, [data])
                if connection.closed:
                    break
                unfinished = connection.protocol.connection.unfinished
                stream = connection.protocol.handedOver
                before = len(connection.output)
                with capturedLogs() as events:
                    server.clock.advance(seconds)
                self.assertEqual(failuresIn(events), [])
                self.assertEqual(len(connection.output), before, "a timer wrote")
                if unfinished and not stream and seconds >= settings.requestTimeout:
                    self.assertTrue(connection.closed, "half a request outlived the timeout")
                if seconds > settings.idleTimeout and not stream:
                    self.assertTrue(connection.closed, "an idle client outlived the timeout")
            connection.lose()
            self.assertEqual(server.clock.getDelayedCalls(), [])


class LongLineTests(HostileTestCase):
    """
    Lines without an end, CR without LF, lone LFs and very long tokens.
    """

    @HOSTILE
    @given(
        settingsName,
        st.sampled_from([b"", b"get ", b"gets ", b" " * 101 + b"get ", b"set ", b"mg ", b"x"]),
        st.sampled_from([b"a", b"a ", b"\r", b"\0", b" "]),
        st.integers(1, 300),
        st.sampled_from([1, 100, 4096, 65536]),
    )
    def test_unfinishedLines(
        self, name: str, prefix: bytes, unit: bytes, repeat: int, readSize: int
    ) -> None:
        """
        A line that never ends is either held (a multi-get, up to its
        bound) or ends the connection; it never grows without bound.
        """
        server = Server(SETTINGS[name])
        victim = Victim.on(server)
        attacker = server.connect()
        data = prefix + unit * (repeat * 37)
        self.feedChecked(attacker, [data[i : i + readSize] for i in range(0, len(data), readSize)])
        if not attacker.closed:
            self.assertLessEqual(attacker.buffered(), classic.MAX_RETRIEVAL_LINE)
        self.assertEqual(victim.look(), victim.snapshot)

    def test_multiGetLineBound(self) -> None:
        """
        A multi-get line is held while it grows, but not past its bound:
        past that the connection is closed.
        """
        server = Server()
        attacker = server.connect()
        chunk = b" k" * 32768
        self.feedChecked(attacker, [b"get"] + [chunk] * 40)
        self.assertTrue(attacker.closed)
        self.assertLessEqual(attacker.buffered(), classic.MAX_RETRIEVAL_LINE)

    @settings(HOSTILE, max_examples=200)
    @given(st.integers(0, 2500), st.sampled_from([b"\r", b"\n", b"\r\n", b"\0", b"\r\r"]))
    def test_lineEndings(self, count: int, unit: bytes) -> None:
        """
        Runs of CRs, lone LFs, empty lines and NULs get C{ERROR}s or
        nothing, and the connection stays in step.
        """
        server = Server()
        connection = server.connect()
        self.feedChecked(connection, [unit * count])
        if self.resync(server, connection):
            self.assertWorks(connection, server.settings)


# ---------------------------------------------------------------------------
# Chunking.

# The junk for the chunking property: no meta get (whether a later in-place
# incr happens depends on the read an mg arrived in, as in memcached), no
# line longer than memcached's 2048 bytes (whether an unfinished one is
# dropped depends on where the reads end, as in memcached), and nothing that
# hands the connection over to a stream (refused while replies from the same
# read are pending, as in memcached).
CHUNKING_VERBS = [verb for verb in ALL_VERBS if verb not in (b"mg", b"watch", b"lru_crawler")]


def sameWhateverTheChunking(data: bytes) -> bool:
    return (
        b"mg " not in data
        and b"watch" not in data
        and b"lru_crawler" not in data
        and all(len(line) <= classic.MAX_COMMAND_LINE for line in data.split(b"\n"))
    )


class ChunkingTests(HostileTestCase):
    """
    The output for a byte stream does not depend on how it is split into
    reads.
    """

    def outcome(self, settings: ServerSettings, chunks: Sequence[bytes]) -> tuple[bytes, bool]:
        server = Server(settings)
        connection = server.connect()
        self.feedChecked(connection, chunks)
        result = normalise(connection.output), connection.closed
        connection.lose()
        return result

    def assertChunkingIrrelevant(self, name: str, stream: bytes, data: st.DataObject) -> None:
        assume(sameWhateverTheChunking(stream))
        settings = SETTINGS[name]
        whole = self.outcome(settings, [stream])
        self.assertEqual(self.outcome(settings, data.draw(splits(stream))), whole)
        self.assertEqual(self.outcome(settings, bytewise(stream)), whole)

    @HOSTILE
    @given(settingsName, st.data(), junk(CHUNKING_VERBS, longTokens=False))
    def test_junk(self, name: str, data: st.DataObject, stream: bytes) -> None:
        """
        Junk gets the same replies whole, in random reads, and one byte per
        read.
        """
        self.assertChunkingIrrelevant(name, stream, data)

    @HOSTILE
    @given(settingsName, st.data(), st.binary(max_size=400))
    def test_randomBytes(self, name: str, data: st.DataObject, stream: bytes) -> None:
        """
        So do random bytes.
        """
        self.assertChunkingIrrelevant(name, stream, data)


# ---------------------------------------------------------------------------
# Valid streams, against a dictionary.

smallKey = st.sampled_from([b"a", b"b", b"c", b"long:" + b"k" * 200])
smallValue = st.binary(max_size=50)


@st.composite
def validStream(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """
    A stream of set/get/delete/append requests (values may hold CR, LF and
    NUL), and the output a dictionary predicts for it.
    """
    items: dict[bytes, tuple[int, bytes]] = {}
    requests = []
    replies = []
    for _ in range(draw(st.integers(1, 25))):
        verb = draw(st.sampled_from(["set", "get", "delete", "append", "multiget"]))
        key = draw(smallKey)
        if verb == "set":
            value = draw(smallValue)
            flags = draw(st.integers(0, 2**32 - 1))
            requests.append(b"set %s %d 0 %d\r\n%s\r\n" % (key, flags, len(value), value))
            items[key] = (flags, value)
            replies.append(b"STORED\r\n")
        elif verb == "append":
            value = draw(smallValue)
            requests.append(b"append %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
            if key in items:
                items[key] = (items[key][0], items[key][1] + value)
                replies.append(b"STORED\r\n")
            else:
                replies.append(b"NOT_STORED\r\n")
        elif verb == "delete":
            requests.append(b"delete %s\r\n" % (key,))
            replies.append(b"DELETED\r\n" if items.pop(key, None) is not None else b"NOT_FOUND\r\n")
        else:
            keys = [key] if verb == "get" else draw(st.lists(smallKey, min_size=1, max_size=5))
            requests.append(b"get %s\r\n" % (b" ".join(keys),))
            reply = b""
            for k in keys:
                if k in items:
                    flags, value = items[k]
                    reply += b"VALUE %s %d %d\r\n%s\r\n" % (k, flags, len(value), value)
            replies.append(reply + b"END\r\n")
    return b"".join(requests), b"".join(replies)


class ValidStreamTests(HostileTestCase):
    """
    Valid pipelined requests get exactly the replies a dictionary predicts,
    however they are split into reads.
    """

    @HOSTILE
    @given(validStream(), st.data())
    def test_anyChunking(self, stream: tuple[bytes, bytes], data: st.DataObject) -> None:
        """
        Whole, in random reads and one byte per read.
        """
        requests, expected = stream
        for chunks in ([requests], data.draw(splits(requests)), bytewise(requests)):
            connection = Server().connect()
            self.feedChecked(connection, chunks, cleanOutput=False)
            self.assertEqual(connection.output, expected)
            self.assertFalse(connection.closed)


# ---------------------------------------------------------------------------
# Bounded buffering: reproductions of what the properties are after, at sizes
# too large for random examples.


class BoundedBufferingTests(HostileTestCase):
    """
    No single request makes the server hold input or output without bound.
    """

    def test_unauthenticatedDataBlock(self) -> None:
        """
        Before authenticating, a client that declares a 4 GB authentication
        token and streams it is not buffered: memcached drops it once the
        token outgrows its 16 KB read buffer.
        """
        server = Server(ServerSettings(credentials=CREDENTIALS))
        attacker = server.connect()
        self.feedChecked(attacker, [b"set a 0 0 4294967295\r\n"] + [b"x" * 16384] * 64)
        self.assertTrue(
            attacker.closed or attacker.buffered() <= classic.READ_BUFFER_SIZE,
            "an unauthenticated client has %d bytes held" % (attacker.buffered(),),
        )

    def test_multiGetReplyIsWrittenAsTheClientReads(self) -> None:
        """
        One multi-get naming a large item many times does not build its
        whole reply at once (a 2 KB request for a 1 MB item would make a
        1 GB reply): what is written before the client reads stays within
        the transport's buffer, one item and one reply batch; and as the
        client reads, the whole reply arrives, in order.
        """
        transport = FillingTransport()
        server = Server()
        protocol = server.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        protocol.makeConnection(transport)
        value = b"v" * 100_000
        protocol.dataReceived(b"set k 0 0 %d\r\n%s\r\n" % (len(value), value))
        transport.clear()
        protocol.dataReceived(b"get" + b" k" * 200 + b"\r\n")
        written = len(transport.value())
        self.assertLessEqual(
            written,
            transport.bufferSize + REPLY_BATCH_LIMIT + len(value) + 100,
            "a 406-byte request made %d bytes of reply at once" % (written,),
        )
        received = b""
        for _ in range(10000):
            if transport.producerState != "paused":
                break
            received += transport.drain()
        received += transport.value()
        self.assertEqual(
            received, (b"VALUE k 0 %d\r\n%s\r\n" % (len(value), value)) * 200 + b"END\r\n"
        )
        protocol.connectionLost(Failure(ConnectionDone()))

    def test_pipelinedLargeRepliesAreWrittenAsTheClientReads(self) -> None:
        """
        Pipelined gets of a large item are answered only as fast as the
        client reads: before it reads, what is written stays within the
        transport's buffer, one reply batch and one reply (a few pipelined
        C{get k} must not buffer a megabyte each).
        """
        transport = FillingTransport()
        server = Server()
        protocol = server.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        protocol.makeConnection(transport)
        value = b"v" * 1_000_000
        reply = b"VALUE k 0 %d\r\n%s\r\nEND\r\n" % (len(value), value)
        protocol.dataReceived(b"set k 0 0 %d\r\n%s\r\n" % (len(value), value))
        transport.clear()
        protocol.dataReceived(b"get k\r\n" * 100)
        written = len(transport.value())
        self.assertLessEqual(
            written,
            transport.bufferSize + REPLY_BATCH_LIMIT + len(reply),
            "700 bytes of requests made %d bytes of replies at once" % (written,),
        )
        received = b""
        for _ in range(10000):
            if transport.producerState != "paused":
                break
            received += transport.drain()
        received += transport.value()
        self.assertEqual(received, reply * 100)
        protocol.connectionLost(Failure(ConnectionDone()))


class PausedConnectionTests(HostileTestCase):
    """
    Whether a connection paused by backpressure is dropped by the request
    timeout must not depend on where the client's reads happened to end.
    """

    def pausedFor(self, chunks: Sequence[bytes]) -> bool:
        """
        Feed C{chunks} to a connection whose client never reads, wait past
        the request timeout, and say whether the server hung up.
        """
        transport = FillingTransport()
        server = Server(ServerSettings(requestTimeout=30))
        protocol = server.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        protocol.makeConnection(transport)
        protocol.dataReceived(b"set k 0 0 1000\r\n" + b"v" * 1000 + b"\r\n")
        transport.clear()
        for chunk in chunks:
            protocol.dataReceived(chunk)
        self.assertEqual(transport.producerState, "paused")
        server.clock.advance(31)
        closed = bool(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionDone()))
        return closed

    def test_requestTimeoutWhilePaused(self) -> None:
        """
        The same ten thousand pipelined C{get k}, once in one read and once
        with a read that ended mid-line first: paused for 31 seconds (past
        the request timeout), both connections meet the same fate.  (Today
        the second is dropped, because its request deadline started before
        the pause and keeps running, while the first is kept, because no
        deadline starts while paused.)
        """
        stream = b"get k\r\n" * 10000
        whole = self.pausedFor([stream])
        split = self.pausedFor([stream[:9], stream[9:]])
        self.assertEqual(whole, split, "dropped: whole %s, split mid-line %s" % (whole, split))


class TimeoutHangUpTests(HostileTestCase):
    """
    What the idle and request timeouts do to connections already closing,
    and to clients that do not read.
    """

    def test_requestTimeoutThenIdleTimeout(self) -> None:
        """
        A connection the request timeout has hung up on is not hung up on
        again by the idle timeout: no idle kick is counted or logged, and
        nothing fails.  (Found by L{TimedJunkTests}: C{b"\\r"}, then 21
        seconds with C{requestTimeout=5, idleTimeout=20}.  On a real
        transport, whose close waits for unsent replies, the idle timer is
        still armed when it fires; here L{StringTransport} raises, from the
        second C{unregisterProducer}.)
        """
        server = Server(ServerSettings(idleTimeout=20, requestTimeout=5))
        connection = server.connect()
        connection.send(b"\r")
        server.clock.advance(5)
        self.assertTrue(connection.closed)
        with capturedLogs() as events:
            server.clock.advance(16)
        self.assertEqual(server.factory.cache.stats.idleKicks, 0)
        self.assertEqual([e for e in events if "idle" in str(e.get("log_format"))], [])
        connection.lose()
        self.assertEqual(server.clock.getDelayedCalls(), [])

    def test_idleClientThatDoesNotReadIsDisconnected(self) -> None:
        """
        A client that pipelines gets and never reads them is dropped by the
        idle timeout for real.  Its transport holds replies it will never
        read, and a transport's C{loseConnection} waits for them to be sent,
        so only C{abortConnection} closes it (memcached closes the socket at
        once).  Today such a client keeps its connection, its slot under
        C{-c} and its buffered replies for as long as it likes, although
        C{idle_kicks} counts it as dropped.
        """
        transport = FillingTransport()
        server = Server(ServerSettings(idleTimeout=20))
        protocol = server.factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        protocol.makeConnection(transport)
        protocol.dataReceived(b"set k 0 0 1000\r\n" + b"v" * 1000 + b"\r\n")
        protocol.dataReceived(b"get k\r\n" * 10000)
        self.assertEqual(transport.producerState, "paused")
        server.clock.advance(21)
        self.assertEqual(server.factory.cache.stats.idleKicks, 1)
        # However long a fix lets such a client drain before it gives up.
        server.clock.advance(60)
        self.assertTrue(transport.aborted, "an idle client that does not read was never aborted")
        protocol.connectionLost(Failure(ConnectionDone()))


# ---------------------------------------------------------------------------
# A model of memcached's item semantics.

MODEL_KEYS = [b"a", b"b", b"c"]
# What incr/decr read as a number, as C's strtoull and memcached's
# safe_strtoull do: optional leading whitespace and sign, digits, then
# whitespace, a NUL or the end.
NUMERIC = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)(?:[ \t\n\v\f\r\0]|\Z)")


def counterValue(value: bytes) -> int | None:
    """
    @return: the number C{incr}/C{decr} see in a value, or L{None}.
    """
    match = NUMERIC.match(value)
    if match is None or int(match.group(2)) >= 2**64:
        return None
    number = int(match.group(2))
    if match.group(1) == b"-":
        number = -number % 2**64
    if number >= 2**63 and b"-" in value:
        return None
    return number


@dataclass
class ModelItem:
    value: bytes
    flags: int
    expires: float
    version: int


def parseRetrieval(reply: bytes) -> tuple[dict[bytes, tuple[int, bytes, int | None]], bytes]:
    """
    Read a C{get}/C{gets} reply.

    @return: the items by key, as C{(flags, value, cas)}, and what follows
        the C{END}.
    """
    found = {}
    while reply.startswith(b"VALUE "):
        header, rest = reply.split(b"\r\n", 1)
        fields = header.split(b" ")
        size = int(fields[3])
        cas = int(fields[4]) if len(fields) > 4 else None
        found[fields[1]] = (int(fields[2]), rest[:size], cas)
        check.assertEqual(rest[size : size + 2], b"\r\n", reply)
        reply = rest[size + 2 :]
    check.assertTrue(reply.startswith(b"END\r\n"), reply)
    return found, reply[5:]


class CacheModel(RuleBasedStateMachine):
    """
    myproto against a dictionary with memcached's rules for expiry, flags,
    CAS, append/prepend, incr/decr (with the space padding of an in-place
    update) and touch.  CAS uniques are not predicted, only checked: each
    new version of an item has a unique no version before it had.
    """

    def __init__(self) -> None:
        super().__init__()
        self.server = Server()
        self.connections = [self.server.connect(), self.server.connect()]
        self.items: dict[bytes, ModelItem] = {}
        self.versions = 0
        # Unique seen for each version, and versions by unique.
        self.casOfVersion: dict[int, int] = {}
        self.versionOfCas: dict[int, int] = {}
        self.knownCas: dict[bytes, int] = {}

    # Plumbing.

    def now(self) -> float:
        return self.server.clock.seconds()

    def live(self, key: bytes) -> ModelItem | None:
        item = self.items.get(key)
        if item is not None and item.expires and item.expires <= self.now():
            del self.items[key]
            return None
        return item

    def expiry(self, exptime: int) -> float:
        if exptime == 0:
            return 0.0
        if exptime < 0:
            return 1.0
        if exptime > THIRTY_DAYS:
            return float(exptime)
        return self.now() + exptime

    def store(self, key: bytes, value: bytes, flags: int, expires: float) -> None:
        self.versions += 1
        self.items[key] = ModelItem(value, flags, expires, self.versions)
        self.knownCas.pop(key, None)

    def exchange(self, connection: int, request: bytes, how: tuple[str, float]) -> bytes:
        """
        Send C{request} on one of the connections, whole, split in two or
        one byte per read.
        """
        client = self.connections[connection]
        client.received()
        mode, fraction = how
        if mode == "whole":
            chunks = [request]
        elif mode == "split":
            chunks = splitAt(request, [int(len(request) * fraction)])
        else:
            chunks = bytewise(request)
        with capturedLogs() as events:
            client.feed(chunks)
        check.assertEqual(failuresIn(events), [], events)
        check.assertFalse(client.closed)
        return client.received()

    def sawCas(self, key: bytes, cas: int) -> None:
        item = self.items[key]
        seen = self.casOfVersion.setdefault(item.version, cas)
        check.assertEqual(
            seen,
            cas,
            "version %d of %r had unique %d, now %d" % (
                item.version,
                key,
                seen,
                cas,
            ),
        )
        owner = self.versionOfCas.setdefault(cas, item.version)
        check.assertEqual(
            owner,
            item.version,
            "unique %d reused: versions %d and %d" % (
                cas,
                owner,
                item.version,
            ),
        )
        check.assertTrue(
            all(
                (earlier < item.version) == (unique < cas)
                for earlier, unique in self.casOfVersion.items()
                if earlier != item.version
            ),
            "uniques out of order",
        )
        self.knownCas[key] = cas

    # Strategies for rule arguments.

    connection = st.sampled_from([0, 1])
    how = st.tuples(st.sampled_from(["whole", "whole", "split", "bytes"]), st.floats(0, 1))
    key = st.sampled_from(MODEL_KEYS)
    value = st.one_of(
        st.binary(max_size=12),
        st.integers(0, 2**64 - 1).map(lambda n: b"%d" % (n,)),
        st.sampled_from(
            [
                b"0",
                b"9",
                b"10",
                b"99",
                b"18446744073709551615",
                b"18446744073709551616",
                b"12 ",
                b" 7",
                b"5 x",
                b"x5",
                b"",
            ]
        ),
    )
    flags = st.integers(0, 2**32 - 1)
    exptime = st.sampled_from([0, 0, 0, 1, 2, 5, -1, THIRTY_DAYS, START + 3, START - 1])
    noreply = st.booleans()

    # Rules.

    @rule(seconds=st.sampled_from([0, 1, 2, 3, 10]))
    def advance(self, seconds: int) -> None:
        self.server.clock.advance(seconds)

    @rule(
        connection=connection,
        how=how,
        verb=st.sampled_from([b"set", b"add", b"replace"]),
        key=key,
        value=value,
        flags=flags,
        exptime=exptime,
        noreply=noreply,
    )
    def storeItem(
        self,
        connection: int,
        how: tuple[str, float],
        verb: bytes,
        key: bytes,
        value: bytes,
        flags: int,
        exptime: int,
        noreply: bool,
    ) -> None:
        request = b"%s %s %d %d %d%s\r\n%s\r\n" % (
            verb,
            key,
            flags,
            exptime,
            len(value),
            b" noreply" if noreply else b"",
            value,
        )
        reply = self.exchange(connection, request, how)
        exists = self.live(key) is not None
        if verb == b"set" or (verb == b"add") != exists:
            self.store(key, value, flags, self.expiry(exptime))
            expected = b"STORED\r\n"
        else:
            expected = b"NOT_STORED\r\n"
        check.assertEqual(reply, b"" if noreply else expected, (request, reply, expected))

    @rule(
        connection=connection,
        how=how,
        verb=st.sampled_from([b"append", b"prepend"]),
        key=key,
        value=value,
        noreply=noreply,
    )
    def concatenate(
        self,
        connection: int,
        how: tuple[str, float],
        verb: bytes,
        key: bytes,
        value: bytes,
        noreply: bool,
    ) -> None:
        request = b"%s %s 99 99 %d%s\r\n%s\r\n" % (
            verb,
            key,
            len(value),
            b" noreply" if noreply else b"",
            value,
        )
        reply = self.exchange(connection, request, how)
        item = self.live(key)
        if item is None:
            expected = b"NOT_STORED\r\n"
        else:
            joined = item.value + value if verb == b"append" else value + item.value
            self.store(key, joined, item.flags, item.expires)
            expected = b"STORED\r\n"
        check.assertEqual(reply, b"" if noreply else expected, (request, reply, expected))

    @rule(
        connection=connection,
        how=how,
        keys=st.lists(key, min_size=1, max_size=4),
        withCas=st.booleans(),
    )
    def get(
        self, connection: int, how: tuple[str, float], keys: list[bytes], withCas: bool
    ) -> None:
        request = b"%s %s\r\n" % (b"gets" if withCas else b"get", b" ".join(keys))
        reply = self.exchange(connection, request, how)
        found, rest = parseRetrieval(reply)
        check.assertEqual(rest, b"", reply)
        for key in keys:
            item = self.live(key)
            if item is None:
                check.assertNotIn(key, found, (key, reply))
                continue
            check.assertIn(key, found, (key, reply))
            flags, value, cas = found[key]
            check.assertEqual((flags, value), (item.flags, item.value), (key, found[key], item))
            if withCas:
                check.assertIsInstance(cas, int)
                self.sawCas(key, cast(int, cas))

    @rule(
        connection=connection,
        how=how,
        key=key,
        value=value,
        stale=st.sampled_from([None, "zero", "old", "other"]),
        noreply=noreply,
    )
    def compareAndSwap(
        self,
        connection: int,
        how: tuple[str, float],
        key: bytes,
        value: bytes,
        stale: str | None,
        noreply: bool,
    ) -> None:
        if self.live(key) is not None and key not in self.knownCas:
            self.get(connection, ("whole", 0.0), [key], True)
        item = self.live(key)
        if stale is None:
            unique = self.knownCas.get(key, 2**64 - 1)
        elif stale == "zero":
            unique = 0
        elif stale == "old":
            # The unique of another version (of this item or another).
            current = item.version if item is not None else None
            others = [cas for cas, version in self.versionOfCas.items() if version != current]
            unique = others[0] if others else 2**64 - 1
        else:
            unique = 2**64 - 1
        request = b"cas %s 5 0 %d %d%s\r\n%s\r\n" % (
            key,
            len(value),
            unique,
            b" noreply" if noreply else b"",
            value,
        )
        reply = self.exchange(connection, request, how)
        if item is None:
            expected = b"NOT_FOUND\r\n"
        elif unique != 0 and self.knownCas.get(key) == unique:
            self.store(key, value, 5, 0.0)
            expected = b"STORED\r\n"
        else:
            expected = b"EXISTS\r\n"
        check.assertEqual(reply, b"" if noreply else expected, (request, reply, expected))

    @rule(connection=connection, how=how, key=key, noreply=noreply)
    def delete(self, connection: int, how: tuple[str, float], key: bytes, noreply: bool) -> None:
        request = b"delete %s%s\r\n" % (key, b" noreply" if noreply else b"")
        reply = self.exchange(connection, request, how)
        expected = b"DELETED\r\n" if self.live(key) is not None else b"NOT_FOUND\r\n"
        self.items.pop(key, None)
        self.knownCas.pop(key, None)
        check.assertEqual(reply, b"" if noreply else expected, (request, reply, expected))

    @rule(
        connection=connection,
        how=how,
        key=key,
        increment=st.booleans(),
        delta=st.one_of(st.integers(0, 20), st.integers(0, 2**64 - 1)),
        noreply=noreply,
    )
    def arithmetic(
        self,
        connection: int,
        how: tuple[str, float],
        key: bytes,
        increment: bool,
        delta: int,
        noreply: bool,
    ) -> None:
        request = b"%s %s %d%s\r\n" % (
            b"incr" if increment else b"decr",
            key,
            delta,
            b" noreply" if noreply else b"",
        )
        reply = self.exchange(connection, request, how)
        item = self.live(key)
        current = counterValue(item.value) if item is not None else None
        if item is None:
            expected = b"NOT_FOUND\r\n"
        elif current is None:
            expected = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        else:
            result = (current + delta) % 2**64 if increment else max(current - delta, 0)
            digits = b"%d" % (result,)
            # memcached rewrites a result no longer than the old value in
            # place, padded with spaces; a longer one is a new item.
            value = digits.ljust(len(item.value)) if len(digits) <= len(item.value) else digits
            self.store(key, value, item.flags, item.expires)
            expected = digits + b"\r\n"
        check.assertEqual(reply, b"" if noreply else expected, (request, reply, expected))

    @rule(connection=connection, how=how, key=key, exptime=exptime, noreply=noreply)
    def touch(
        self, connection: int, how: tuple[str, float], key: bytes, exptime: int, noreply: bool
    ) -> None:
        request = b"touch %s %d%s\r\n" % (key, exptime, b" noreply" if noreply else b"")
        reply = self.exchange(connection, request, how)
        item = self.live(key)
        if item is None:
            expected = b"NOT_FOUND\r\n"
        else:
            item.expires = self.expiry(exptime)
            expected = b"TOUCHED\r\n"
        check.assertEqual(reply, b"" if noreply else expected, (request, reply, expected))

    @rule(connection=connection, how=how, key=key, exptime=exptime)
    def getAndTouch(
        self, connection: int, how: tuple[str, float], key: bytes, exptime: int
    ) -> None:
        reply = self.exchange(connection, b"gat %d %s\r\n" % (exptime, key), how)
        found, rest = parseRetrieval(reply)
        check.assertEqual(rest, b"", reply)
        item = self.live(key)
        if item is None:
            check.assertEqual(found, {}, reply)
        else:
            check.assertEqual(found, {key: (item.flags, item.value, None)}, (reply, item))
            item.expires = self.expiry(exptime)

    @invariant()
    def nothingUnsolicited(self) -> None:
        for client in self.connections:
            check.assertEqual(client.received(), b"")

    def teardown(self) -> None:
        for client in self.connections:
            client.lose()


class ModelTests(SynchronousTestCase):
    """
    The item commands agree with a model of memcached's semantics.
    """

    def test_againstModel(self) -> None:
        """
        Random sequences of set/add/replace/append/prepend/cas/get/gets/
        delete/incr/decr/touch/gat on three keys from two connections, with
        the clock moving, give the replies the model predicts.
        """
        run_state_machine_as_test(
            CacheModel,
            settings=settings(
                max_examples=200,
                stateful_step_count=40,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
