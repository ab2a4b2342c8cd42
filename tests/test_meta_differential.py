"""
Differential tests of the meta commands: hypothesis writes streams of meta
commands (with classic ones mixed in, on the same keys), the same bytes go to
a real memcached 1.6.18 and to myproto, and the replies must be the same
bytes.

Only what legitimately differs between two servers is normalised:

  - CAS values.  Before each stream the client stores a probe item with
    C{ms ... c}, which reports the CAS value the server gave it; the stream's
    C{C} tokens and C{cas} commands are written relative to that value, and
    CAS values in the replies are compared relative to it too.  So a CAS the
    stream expects to match does match, and the servers must hand out CAS
    values in the same order.
  - Seconds: a TTL (C{t}, C{exp=}) or an idle time (C{l}, C{la=}) may be off
    by one, since the two servers' clocks tick at different moments; a TTL
    that wrapped around (an item expired by the very request that reports
    it) depends on the server's uptime, so any two wrapped values match.

The TTLs in the streams are never within a second of each other, so no
decision (expired or not, recache won or not) can go differently on the two
servers.

Each server gets one connection per hypothesis example, over which twenty
streams run back to back; the probe between streams also marks where one
stream's replies end.  Sockets here are blocking, so the exchanges run in a
thread while myproto serves on the reactor.
"""

from __future__ import annotations

import base64
import os
import random
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Sequence, Union

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore
from tests import reference

HOST = "127.0.0.1"

#: memcached for these tests listens on a port in this range.
PORTS = range(24000, 25000)

#: Streams per hypothesis example (one connection per server).
STREAMS_PER_EXAMPLE = 20

#: Hypothesis examples; with STREAMS_PER_EXAMPLE, the streams compared.
EXAMPLES = 110

#: Seconds to wait for a reply before calling the stream stuck.
REPLY_LIMIT = 5.0


# ---------------------------------------------------------------------------
# Streams: lists of commands, each a list of pieces rendered per server.


@dataclass(frozen=True)
class Key:
    """
    One of a stream's keys, as the command spells it.

    @ivar index: which of the stream's keys.
    @ivar spelling: C{"plain"}; C{"longest"}, the plain key padded to 250
        bytes; C{"base64"} of the plain key; C{"messy"}, that with bytes
        outside the alphabet in it, which memcached skips; or C{"binary"}:
        base64 of a key with bytes a text key cannot hold.
    """

    index: int
    spelling: str

    def render(self, prefix: bytes) -> bytes:
        if self.spelling == "binary":
            return base64.b64encode(b"\x01 " + prefix + b"\xff%d" % (self.index,))
        raw = prefix + b"k%d" % (self.index,)
        if self.spelling == "longest":
            return raw.ljust(250, b"y")
        if self.spelling == "messy":
            encoded = base64.b64encode(raw)
            return encoded[:3] + b"*" + encoded[3:-1] + b"." + encoded[-1:]
        return base64.b64encode(raw) if self.spelling == "base64" else raw


@dataclass(frozen=True)
class Cas:
    """
    A CAS value: the probe's, plus C{offset}.
    """

    offset: int


Piece = Union[bytes, Key, Cas]
Command = tuple[Piece, ...]


def render(stream: Sequence[Command], prefix: bytes, base: int) -> bytes:
    """
    @param stream: the commands.
    @param prefix: what makes this stream's keys its own.
    @param base: the probe's CAS value.
    @return: the bytes to send.
    """
    out = []
    for command in stream:
        for piece in command:
            if isinstance(piece, Key):
                out.append(piece.render(prefix))
            elif isinstance(piece, Cas):
                out.append(b"%d" % (base + piece.offset,))
            else:
                out.append(piece)
    return b"".join(out)


LONG_KEY = b"x" * 251

# Tokens, valid ones more often than not.
_ttls = st.sampled_from(
    [b"100"] * 6 + [b"1000"] * 3 + [b"0"] * 3 + [b"-1"] * 2 + [b"2592001", b"+100", b"x", b""]
)
_recaches = st.sampled_from([b"30"] * 3 + [b"5000"] * 4 + [b"0", b"-1", b"x"])
_clientFlags = st.sampled_from([b"0"] * 3 + [b"7"] * 4 + [b"4294967295"] * 2 + [b"4294967296", b"-1", b"x"])
_deltas = st.sampled_from(
    [b"1"] * 4 + [b"5"] * 3 + [b"0", b"90"] * 2 + [b"18446744073709551615", b"-1", b"x", b""]
)
_initials = st.sampled_from([b"0"] * 3 + [b"7"] * 3 + [b"99"] * 2 + [b"18446744073709551615", b"x"])
_setModes = st.sampled_from(list(b"SEAPR") * 4 + [b"x"[0], b"I"[0]])
_arithmeticModes = st.sampled_from(list(b"ID+-") * 4 + [b"S"[0], b"x"[0]])
_opaques = st.one_of(
    *[st.text("abc123", min_size=0, max_size=4)] * 5,
    st.text("z", min_size=30, max_size=33),
).map(lambda text: b"O" + text.encode())
# No value is whitespace only: memcached's incr reads such a value past its
# end, into whatever the memory after it holds, and may find a number there.
_values = st.one_of(
    st.sampled_from([b"", b"0", b"1", b"9", b"10", b"99", b"100", b"18446744073709551615", b"12 ", b"abc"]),
    st.binary(max_size=12)
    .map(lambda raw: bytes(b"xyz 0123\r\n"[byte % 10] for byte in raw))
    .filter(lambda value: value.strip(b" \r\n") or not value),
)


@st.composite
def _casToken(draw: Any, letter: bytes = b"C") -> tuple[Piece, ...]:
    choice = draw(st.integers(0, 11))
    if choice < 10:
        return (letter, Cas(draw(st.integers(1, 8))))
    return (letter + draw(st.sampled_from([b"0", b"x", b"", b"18446744073709551616"])),)


@st.composite
def _flagToken(draw: Any, flag: str, command: str) -> tuple[Piece, ...]:
    letter = flag.encode("latin-1")
    if flag in "TN":
        return (letter + draw(_ttls),)
    if flag == "R":
        return (letter + draw(_recaches),)
    if flag == "F":
        return (letter + draw(_clientFlags),)
    if flag == "C":
        return draw(_casToken())
    if flag == "M":
        if draw(st.integers(0, 15)) == 0:
            return (draw(st.sampled_from([b"M", b"MSS"])),)
        modes = _setModes if command == "ms" else _arithmeticModes
        return (letter + bytes([draw(modes)]),)
    if flag == "D":
        return (letter + draw(_deltas),)
    if flag == "J":
        return (letter + draw(_initials),)
    if flag == "O":
        return (draw(_opaques),)
    if flag in "PL":
        return (letter + b"path/",)
    return (letter,)


#: The flags each command uses, and some it accepts but ignores.
_FLAGS = {
    "mg": "bcfhklqstuvOTNRPL" + "kvqtc",
    "ms": "bcCFIkOqTMPL" + "qcTFM" + "vstN",
    "md": "bCIkOqTPL" + "qIC" + "v",
    "ma": "bCNJDTMOqtcvkPL" + "qvNDM",
}
_INVALID_FLAGS = ["x", "E", "S", "Z", "e", "\xff"]


@st.composite
def _flags(draw: Any, command: str) -> list[str]:
    names = draw(st.lists(st.sampled_from(_FLAGS[command]), max_size=7, unique=True))
    if draw(st.integers(0, 40)) == 0:
        names.insert(draw(st.integers(0, len(names))), draw(st.sampled_from(_INVALID_FLAGS)))
    if names and draw(st.integers(0, 40)) == 0:
        names.append(draw(st.sampled_from(names)))
    return names


@st.composite
def _key(draw: Any, binary: bool) -> Piece:
    index = draw(st.sampled_from([0, 0, 1, 1, 2]))
    if binary:
        return draw(
            st.sampled_from(
                [Key(index, "base64")] * 5
                + [Key(index, "binary")] * 2
                + [Key(index, "messy"), Key(index, "plain")]
                + [b"!!!", b"AA="] * (draw(st.integers(0, 3)) == 0)
            )
        )
    return draw(st.sampled_from([Key(index, "plain")] * 30 + [LONG_KEY, Key(index, "longest")]))


@st.composite
def _metaCommand(draw: Any) -> Command:
    verb = draw(st.sampled_from(["mg"] * 5 + ["ms"] * 5 + ["md"] * 2 + ["ma"] * 3 + ["me", "mn"]))
    if verb == "mn":
        return (b"mn\r\n",)
    if verb == "me":
        binary = draw(st.booleans())
        return (b"me ", draw(_key(binary)), b" b\r\n" if binary else b"\r\n")
    names = draw(_flags(verb))
    pieces: list[Piece] = [verb.encode(), b" ", draw(_key("b" in names))]
    value = b""
    if verb == "ms":
        value = draw(_values)
        size = len(value)
        if draw(st.integers(0, 20)) == 0:
            # A data block longer than announced: a bad data chunk.
            value += b"!"
        pieces.append(b" %d" % (size,))
    for name in names:
        pieces.append(b" ")
        pieces.extend(draw(_flagToken(name, verb)))
    pieces.append(b"\r\n")
    if verb == "ms":
        pieces.append(value + b"\r\n")
    return tuple(pieces)


@st.composite
def _classicCommand(draw: Any) -> Command:
    verb = draw(
        st.sampled_from(
            ["set", "get", "gets", "incr", "decr", "delete", "touch", "append", "prepend", "add", "replace", "cas", "gat"]
        )
    )
    key = Key(draw(st.integers(0, 2)), "plain")
    noreply = (b" noreply",) if draw(st.integers(0, 6)) == 0 else ()
    if verb in ("get", "gets"):
        keys: list[Piece] = [key]
        if draw(st.booleans()):
            keys += [b" ", Key(draw(st.integers(0, 2)), "plain")]
        return (verb.encode(), b" ", *keys, b"\r\n")
    if verb == "gat":
        return (b"gat ", draw(_ttls.filter(lambda ttl: ttl[:1].isdigit())), b" ", key, b"\r\n")
    if verb in ("incr", "decr"):
        return (verb.encode(), b" ", key, b" ", draw(st.sampled_from([b"1", b"5", b"90"])), *noreply, b"\r\n")
    if verb == "delete":
        return (b"delete ", key, *noreply, b"\r\n")
    if verb == "touch":
        return (b"touch ", key, b" ", draw(st.sampled_from([b"100", b"0", b"1000"])), *noreply, b"\r\n")
    value = draw(_values)
    header: list[Piece] = [verb.encode(), b" ", key, b" ", draw(st.sampled_from([b"0", b"7"]))]
    header += [b" ", draw(st.sampled_from([b"0", b"100", b"1000", b"-1"])), b" %d" % (len(value),)]
    if verb == "cas":
        header += [b" ", Cas(draw(st.integers(1, 8)))]
    return (*header, *noreply, b"\r\n", value + b"\r\n")


_commands = st.one_of(_metaCommand(), _metaCommand(), _metaCommand(), _classicCommand())
streams = st.lists(_commands, min_size=1, max_size=15)


# ---------------------------------------------------------------------------
# Talking to a server.


class _Connection:
    """
    A blocking client connection that sends streams and reads replies up to
    a probe's reply.
    """

    def __init__(self, port: int) -> None:
        self._socket = socket.create_connection((HOST, port), timeout=REPLY_LIMIT)
        self._received = b""
        self._serial = 0

    def probe(self) -> tuple[bytes, int]:
        """
        Store the probe item and wait for its reply.

        @return: everything received before the probe's reply, and the CAS
            value the server gave the probe.
        """
        self._serial += 1
        marker = b" Oprobe%d\r\n" % (self._serial,)
        self._socket.sendall(b"ms __probe__ 1 c Oprobe%d\r\nx\r\n" % (self._serial,))
        deadline = time.monotonic() + REPLY_LIMIT
        while marker not in self._received:
            if time.monotonic() > deadline:
                raise AssertionError("no reply to the probe; received {!r}".format(self._received))
            try:
                data = self._socket.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise AssertionError("server closed; received {!r}".format(self._received))
            self._received += data
        end = self._received.index(marker)
        start = self._received.rfind(b"\r\n", 0, end) + 2 if b"\r\n" in self._received[:end] else 0
        probeLine = self._received[start:end]
        before = self._received[:start]
        self._received = self._received[end + len(marker) :]
        match = re.fullmatch(rb"HD c(\d+)", probeLine)
        if match is None:
            raise AssertionError("bad probe reply {!r} after {!r}".format(probeLine, before))
        return before, int(match.group(1))

    def send(self, data: bytes) -> None:
        self._socket.sendall(data)

    def close(self) -> None:
        self._socket.sendall(b"quit\r\n")
        self._socket.settimeout(REPLY_LIMIT)
        try:
            while self._socket.recv(65536):
                pass
        finally:
            self._socket.close()


@dataclass
class Exchange:
    """
    One stream as one server saw it.
    """

    sent: bytes
    base: int
    reply: bytes


def runStreams(port: int, batch: Sequence[Sequence[Command]], tag: bytes) -> list[Exchange]:
    """
    Send streams over one connection, each after a probe.

    @param port: the server's port.
    @param batch: the streams.
    @param tag: makes the keys of this batch its own.
    @return: what each stream sent and got back.
    """
    connection = _Connection(port)
    try:
        exchanges = []
        _, base = connection.probe()
        for index, stream in enumerate(batch):
            sent = render(stream, tag + b"%02d" % (index,), base)
            connection.send(sent)
            reply, nextBase = connection.probe()
            exchanges.append(Exchange(sent, base, reply))
            base = nextBase
        return exchanges
    finally:
        connection.close()


# ---------------------------------------------------------------------------
# Comparing replies.


def splitReply(reply: bytes) -> list[bytes]:
    """
    Split a reply into lines and data blocks.

    @return: the lines (without CRLF), each data block one entry of its own.
    """
    parts = []
    position = 0
    while position < len(reply):
        end = reply.find(b"\r\n", position)
        if end < 0:
            parts.append(reply[position:])
            break
        line = reply[position:end]
        parts.append(line)
        position = end + 2
        size = None
        fields = line.split(b" ")
        if fields[0] == b"VA" and len(fields) > 1 and fields[1].isdigit():
            size = int(fields[1])
        elif fields[0] == b"VALUE" and len(fields) > 3 and fields[3].isdigit():
            size = int(fields[3])
        if size is not None:
            parts.append(reply[position : position + size])
            position += size + 2
    return parts


_META_CODES = frozenset([b"VA", b"HD", b"EN", b"NS", b"EX", b"NF"])
_WRAPPED = 2**31


def _sameSeconds(a: bytes, b: bytes) -> bool:
    try:
        x, y = int(a), int(b)
    except ValueError:
        return a == b
    return abs(x - y) <= 1 or (x >= _WRAPPED and y >= _WRAPPED)


def _sameCas(a: bytes, baseA: int, b: bytes, baseB: int) -> bool:
    if a.isdigit() and b.isdigit():
        return int(a) - baseA == int(b) - baseB or int(a) == int(b) == 0
    return a == b


def sameLine(a: bytes, baseA: int, b: bytes, baseB: int) -> bool:
    """
    Whether two reply lines match, up to CAS values (relative to each
    stream's probe) and seconds (see the module docstring).
    """
    if a == b:
        return True
    fieldsA, fieldsB = a.split(b" "), b.split(b" ")
    if len(fieldsA) != len(fieldsB) or fieldsA[0] != fieldsB[0]:
        return False
    code = fieldsA[0]
    for x, y in zip(fieldsA[1:], fieldsB[1:]):
        if x == y:
            continue
        if code in _META_CODES and x[:1] == y[:1]:
            if x[:1] == b"c" and _sameCas(x[1:], baseA, y[1:], baseB):
                continue
            if x[:1] in (b"t", b"l") and _sameSeconds(x[1:], y[1:]):
                continue
        if code == b"ME":
            nameX, _, valueX = x.partition(b"=")
            nameY, _, valueY = y.partition(b"=")
            if nameX == nameY == b"cas" and _sameCas(valueX, baseA, valueY, baseB):
                continue
            if nameX == nameY and nameX in (b"exp", b"la") and _sameSeconds(valueX, valueY):
                continue
        if code == b"VALUE" and x is fieldsA[-1] and len(fieldsA) == 5:
            if _sameCas(x, baseA, y, baseB):
                continue
        return False
    return True


def compareExchanges(expected: Exchange, actual: Exchange) -> str | None:
    """
    @return: L{None} if the replies match, else a description of the first
        difference.
    """
    partsA, partsB = splitReply(expected.reply), splitReply(actual.reply)
    for index, (a, b) in enumerate(zip(partsA, partsB)):
        if not sameLine(a, expected.base, b, actual.base):
            return "part {}: memcached {!r}, myproto {!r}".format(index, a, b)
    if len(partsA) != len(partsB):
        return "memcached sent {} parts, myproto {}".format(len(partsA), len(partsB))
    return None


# ---------------------------------------------------------------------------
# The servers.


def _portFree(port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        probe.close()


async def startMemcached(testCase: TestCase) -> int:
    """
    Start a memcached for one test on a free port in L{PORTS}; the test's
    cleanup stops it.

    @return: its port.
    @raise SkipTest: if there is no memcached binary.
    """
    binary = reference.requireMemcached()
    chooser = random.Random()
    for attempt in range(20):
        port = chooser.choice(PORTS)
        if not _portFree(port):
            continue
        process = subprocess.Popen(
            reference.memcachedArguments(binary, port) + reference.NO_LRU_THREADS,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
            except OSError:
                await deferLater(reactor, 0.02, lambda: None)
                continue
            testCase.addCleanup(_stop, process)
            return port
        _stop(process)
    raise AssertionError("could not start memcached")


def _stop(process: "subprocess.Popen[bytes]") -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def startMyproto(testCase: TestCase) -> int:
    """
    Serve myproto in this process, on the reactor, until the test ends.

    @return: its port.
    """
    factory = CacheServerFactory(MemoryStore(reactor), reactor)
    port = reactor.listenTCP(0, factory, interface=HOST)
    testCase.addCleanup(port.stopListening)
    return int(port.getHost().port)


# ---------------------------------------------------------------------------
# The tests.


class MetaDifferentialTests(TestCase):
    """
    The same meta command streams, sent to memcached and to myproto, get the
    same replies.
    """

    timeout = 300

    def setUp(self) -> Deferred[None]:
        async def start() -> None:
            self.memcachedPort = await startMemcached(self)
            self.myprotoPort = startMyproto(self)

        return ensureDeferred(start())

    def compare(self, batch: Sequence[Sequence[Command]], tag: bytes) -> list[str]:
        """
        Send a batch to both servers.

        @return: a description of each stream whose replies differ.
        """
        expected = runStreams(self.memcachedPort, batch, tag)
        actual = runStreams(self.myprotoPort, batch, tag)
        problems = []
        for mine, theirs in zip(actual, expected):
            difference = compareExchanges(theirs, mine)
            if difference is not None:
                problems.append(
                    "{}\n  sent (memcached): {!r}\n  memcached: {!r}\n  myproto:   {!r}".format(
                        difference, theirs.sent, theirs.reply, mine.reply
                    )
                )
        return problems

    def test_generatedStreams(self) -> Deferred[None]:
        """
        Hypothesis-generated meta streams ({} examples of {} streams each)
        get byte-for-byte the same replies from both servers.
        """
        counter = iter(range(10**9))
        compared = []

        @settings(
            max_examples=int(os.environ.get("MYPROTO_META_EXAMPLES", EXAMPLES)),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(streams, min_size=STREAMS_PER_EXAMPLE, max_size=STREAMS_PER_EXAMPLE))
        def check(batch: list[list[Command]]) -> None:
            tag = b"t%06d" % (next(counter),)
            problems = self.compare(batch, tag)
            compared.append(len(batch))
            if problems and os.environ.get("MYPROTO_META_LOG"):
                with open(os.environ["MYPROTO_META_LOG"], "a") as log:
                    log.write("\n".join(problems) + "\n\n")
            self.assertFalse(problems, "\n".join(problems))

        def run() -> None:
            check()
            self.compared = sum(compared)

        return deferToThread(run)

    test_generatedStreams.__doc__ = (test_generatedStreams.__doc__ or "").format(
        EXAMPLES, STREAMS_PER_EXAMPLE
    )

    def test_chosenStreams(self) -> Deferred[None]:
        """
        Streams written by hand for the corners: items changed or not in
        place, stale and recache tokens, base64 keys, refused and broken data
        blocks, slab classes.
        """

        def run() -> None:
            problems = self.compare(CHOSEN_STREAMS, b"chosen")
            self.assertEqual(problems, [], "\n".join(problems))

        return deferToThread(run)


def _stream(*pieces: Piece) -> list[Command]:
    """
    One stream of one command made of C{pieces}; C{K0}..C{K2} are the
    stream's keys.
    """
    return [tuple(pieces)]


K0, K1, K2 = Key(0, "plain"), Key(1, "plain"), Key(2, "plain")

CHOSEN_STREAMS: list[list[Command]] = [
    # A longer result makes a new item, and T then touches the old one.
    _stream(b"set ", K0, b" 0 0 2\r\n99\r\nma ", K0, b" T100 t v c\r\nmg ", K0, b" t v h\r\n"),
    # A reply not yet written holds the item: the next ma makes a new one.
    _stream(b"set ", K0, b" 0 0 2\r\n10\r\nmg ", K0, b"\r\nma ", K0, b" MD\r\nmg ", K0, b" v\r\n"),
    _stream(b"set ", K0, b" 0 0 2\r\n10\r\nmg ", K0, b"\r\nmn\r\nma ", K0, b" MD\r\nmg ", K0, b" v\r\n"),
    _stream(b"set ", K0, b" 0 0 2\r\n10\r\nmg ", K0, b"\r\nget ", K0, b"\r\ndecr ", K0, b" 1\r\nget ", K0, b"\r\n"),
    # ... until memcached writes its replies, after 21 commands of a read.
    _stream(b"set ", K0, b" 0 0 2\r\n10\r\nmg ", K0, b"\r\n", b"version\r\n" * 18, b"decr ", K0, b" 1\r\nget ", K0, b"\r\n"),
    _stream(b"set ", K0, b" 0 0 2\r\n10\r\nmg ", K0, b"\r\n", b"version\r\n" * 19, b"decr ", K0, b" 1\r\nget ", K0, b"\r\n"),
    _stream(b"mn\r\n" * 21, b"set ", K0, b" 0 0 2\r\n10\r\nmg ", K0, b"\r\n", b"version\r\n" * 17, b"decr ", K0, b" 1\r\nget ", K0, b"\r\n"),
    _stream(b"mn\r\n" * 21, b"set ", K0, b" 0 0 2\r\n10\r\nmg ", K0, b"\r\n", b"version\r\n" * 18, b"decr ", K0, b" 1\r\nget ", K0, b"\r\n"),
    # Stale items, recache tokens, and stale stores with an older CAS.
    _stream(
        b"ms ", K0, b" 1 T100 c\r\na\r\nmd ", K0, b" I T30\r\nmg ", K0, b" v c t\r\nmg ", K0,
        b" v\r\nms ", K0, b" 1 I C", Cas(1), b"\r\nb\r\nmg ", K0, b" v t c\r\nms ", K0,
        b" 1 I C", Cas(99), b"\r\nc\r\nmd ", K0, b" I q\r\nmg ", K0, b" k\r\nset ", K0,
        b" 0 0 1\r\nd\r\nmg ", K0, b" v\r\n",
    ),
    _stream(
        b"mg ", K0, b" N30 v t c\r\nmg ", K0, b" N30 v\r\nms ", K0, b" 1 C", Cas(1), b" T5\r\nx\r\nmg ",
        K0, b" R30 t\r\nmg ", K0, b" R30\r\nmg ", K0, b" T1000 R30\r\nmg ", K1, b" R30 T10\r\n",
    ),
    # Base64 keys, clean and messy, text and binary.
    _stream(
        b"ms ", Key(0, "base64"), b" 1 b k c\r\nx\r\nmg ", K0, b" k v\r\nme ", Key(0, "messy"),
        b" b\r\nmg ", Key(1, "binary"), b" b N30 k\r\nma ", Key(2, "messy"), b" b N0 J5 k v\r\nmd ",
        Key(2, "base64"), b" b k q\r\nmd ", Key(2, "base64"), b" b k\r\n",
    ),
    # An append with a base64 key makes an item that is not marked binary,
    # whatever the old item was; a set with one does.
    _stream(
        b"ms ", Key(0, "base64"), b" 1 b\r\nx\r\nms ", Key(0, "base64"), b" 1 b MA\r\ny\r\nmg ", K0,
        b" k v\r\nma ", Key(1, "base64"), b" b N0\r\nms ", Key(1, "base64"), b" 1 b MP\r\n1\r\nmg ",
        K1, b" k v\r\nms ", Key(1, "base64"), b" 1 b\r\n2\r\nmg ", K1, b" k v\r\n",
    ),
    # Refused and broken data blocks, in quiet mode too.
    _stream(
        b"ms ", K0, b" 1\r\na\r\nms ", K0, b" %d ME\r\n" % (1024 * 1024,), b"x" * (1024 * 1024),
        b"\r\nmg ", K0, b"\r\nms ", K0, b" 1 q\r\nab\r\nms ", K0, b" 2 Tx q\r\nab\r\nmn\r\n",
    ),
    _stream(b"ms ", K0, b" 1 Oxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx MZ\r\na\r\nms ", K0, b" x\r\nmn\r\n"),
    # Slab classes at their edges, and the largest.
    _stream(
        b"ms ", K0, b" 30\r\n", b"x" * 30, b"\r\nme ", K0, b"\r\nms ", K0, b" 31\r\n", b"x" * 31,
        b"\r\nme ", K0, b"\r\nms ", K0, b" 31 F1\r\n", b"x" * 31, b"\r\nme ", K0, b"\r\nms ", K1,
        b" 600000\r\n", b"y" * 600000, b"\r\nme ", K1, b"\r\n",
    ),
    # Flags after a too-long opaque token are not reached; those before are.
    _stream(
        b"mg ", K0, b" N30 T60 O", b"z" * 32, b"\r\nmg ", K0, b" t v\r\nma ", K1, b" N0 J9 O", b"z" * 32,
        b"\r\nmg ", K1, b" v\r\n",
    ),
    # Quiet pipelines.
    _stream(
        b"set ", K0, b" 0 0 1\r\n1\r\nmg ", K0, b" q v k\r\nmg ", K1, b" q v k\r\nms ", K2,
        b" 1 q\r\nx\r\nmd ", K1, b" q\r\nma ", K0, b" q v\r\nma ", K1, b" q N0\r\nmn\r\n",
    ),
]
