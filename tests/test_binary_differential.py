"""
Differential tests of the binary protocol: the same bytes go to a real
memcached 1.6.18 and to myproto, and the responses must be the same bytes.

Only CAS values are normalised: a non-zero CAS becomes its order of first
appearance in that reply (so "same item, same CAS" and "new CAS" are still
checked, and a zero CAS must stay zero).  A stream that needs a real CAS
waits for the responses before it and reads the CAS from them.

Each stream runs on a fresh connection to one memcached (started for the
test) and to a fresh myproto, whole and in two random chunkings; it starts
with a FLUSH and ends with a QUIT, unless the server hangs up first (see
L{WHOLE_ONLY} for the few sent whole only).
"""

from __future__ import annotations

import random
from typing import Callable

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from myproto.wire import binary as B
from tests.helpers import binaryFrames, binaryRequest, counter, expiration, storage
from tests.reference import (
    Part,
    afterBinaryResponses as afterResponses,
    binaryMismatch,
    exchange,
    listenMyproto,
    normaliseBinary as normalise,
    startMemcached,
)

HOST = "127.0.0.1"


def lastCas(data: bytes) -> int:
    """
    @return: the CAS of the last response that has one.
    """
    frames, _ = binaryFrames(data)
    for fields, _ in reversed(frames):
        if fields[8]:
            return int(fields[8])
    raise AssertionError("no CAS in {!r}".format(data))


def withCas(make: Callable[[int], bytes]) -> Callable[[bytes], bytes]:
    """
    @return: a part that sends C{make(cas)}, the CAS being the last one
        received.
    """
    return lambda received: make(lastCas(received))


SET = binaryRequest(B.SET, b"k", storage(7), b"abc", opaque=1)
LARGE = b"v" * 300_000

CORPUS: dict[str, list[Part]] = {
    "get family": [
        SET
        + binaryRequest(B.GET, b"k", opaque=2)
        + binaryRequest(B.GETK, b"k", opaque=3)
        + binaryRequest(B.GETQ, b"k", opaque=4)
        + binaryRequest(B.GETKQ, b"k", opaque=5)
        + binaryRequest(B.GET, b"m", opaque=6)
        + binaryRequest(B.GETK, b"m", opaque=7)
        + binaryRequest(B.GETQ, b"m", opaque=8)
        + binaryRequest(B.GETKQ, b"m", opaque=9)
        + binaryRequest(B.NOOP, opaque=10)
    ],
    "storage modes": [
        binaryRequest(B.ADD, b"a", storage(1), b"1")
        + binaryRequest(B.ADD, b"a", storage(1), b"2")
        + binaryRequest(B.ADDQ, b"a", storage(1), b"2")
        + binaryRequest(B.ADDQ, b"b", storage(2), b"2")
        + binaryRequest(B.REPLACE, b"a", storage(3), b"3")
        + binaryRequest(B.REPLACE, b"z", storage(3), b"3")
        + binaryRequest(B.REPLACEQ, b"z", storage(3), b"3")
        + binaryRequest(B.REPLACEQ, b"b", storage(4), b"4")
        + binaryRequest(B.APPEND, b"a", value=b"+")
        + binaryRequest(B.PREPEND, b"a", value=b"-")
        + binaryRequest(B.APPENDQ, b"b", value=b"+")
        + binaryRequest(B.PREPENDQ, b"b", value=b"-")
        + binaryRequest(B.APPEND, b"z", value=b"+")
        + binaryRequest(B.PREPENDQ, b"z", value=b"+")
        + binaryRequest(B.SETQ, b"c", storage(0xFFFFFFFF, 1000), b"")
        + binaryRequest(B.GETK, b"a")
        + binaryRequest(B.GETK, b"b")
        + binaryRequest(B.GETK, b"c")
    ],
    "compare and swap": [
        SET + binaryRequest(B.SET, b"k", storage(), b"x", cas=123456789),
        afterResponses(3),
        withCas(lambda cas: binaryRequest(B.SET, b"k", storage(2), b"new", cas=cas)),
        afterResponses(4),
        withCas(lambda cas: binaryRequest(B.ADD, b"k", storage(2), b"add", cas=cas)),
        afterResponses(5),
        withCas(lambda cas: binaryRequest(B.REPLACEQ, b"k", storage(2), b"rep", cas=cas)
                + binaryRequest(B.APPEND, b"k", value=b"+", cas=cas)
                + binaryRequest(B.DELETE, b"k", cas=cas)
                + binaryRequest(B.SET, b"nope", storage(), b"v", cas=cas)
                + binaryRequest(B.GET, b"k")),
    ],
    "delete": [
        SET
        + binaryRequest(B.DELETE, b"k", cas=987654321)
        + binaryRequest(B.DELETEQ, b"k")
        + binaryRequest(B.DELETE, b"k")
        + binaryRequest(B.DELETEQ, b"k")
        + binaryRequest(B.GET, b"k")
    ],
    "counters": [
        binaryRequest(B.INCREMENT, b"c", counter(1, 10, 0xFFFFFFFF))
        + binaryRequest(B.DECREMENT, b"c", counter(1, 10, 0xFFFFFFFF))
        + binaryRequest(B.INCREMENT, b"c", counter(1, 10))
        + binaryRequest(B.INCREMENT, b"c", counter(2**64 - 1))
        + binaryRequest(B.INCREMENTQ, b"c", counter(5))
        + binaryRequest(B.DECREMENT, b"c", counter(3))
        + binaryRequest(B.DECREMENT, b"c", counter(100))
        + binaryRequest(B.DECREMENTQ, b"d", counter(1, 7, 0xFFFFFFFF))
        + binaryRequest(B.DECREMENTQ, b"e", counter(1, 7, 100))
        + binaryRequest(B.GET, b"e")
        + binaryRequest(B.SET, b"t", storage(), b"text")
        + binaryRequest(B.INCREMENT, b"t", counter(1))
        + binaryRequest(B.SET, b"n", storage(5), b"99")
        + binaryRequest(B.INCREMENT, b"n", counter(1))
        + binaryRequest(B.GET, b"n")
        + binaryRequest(B.INCREMENT, b"n", counter(1), cas=5555)
        + binaryRequest(B.SET, b"big", storage(), b"18446744073709551615")
        + binaryRequest(B.INCREMENT, b"big", counter(2))
        + binaryRequest(B.GET, b"big")
    ],
    "touch and gat": [
        SET
        + binaryRequest(B.TOUCH, b"k", expiration(100))
        + binaryRequest(B.GAT, b"k", expiration(200))
        + binaryRequest(B.GATQ, b"k", expiration(300))
        + binaryRequest(B.GATK, b"k", expiration(400))
        + binaryRequest(B.GATKQ, b"k", expiration(0))
        + binaryRequest(B.TOUCH, b"m", expiration(100))
        + binaryRequest(B.GAT, b"m", expiration(100))
        + binaryRequest(B.GATQ, b"m", expiration(100))
        + binaryRequest(B.GATK, b"m", expiration(100))
        + binaryRequest(B.GATKQ, b"m", expiration(100))
        + binaryRequest(B.NOOP)
    ],
    "flush": [
        SET
        + binaryRequest(B.FLUSHQ)
        + binaryRequest(B.GET, b"k")
        + SET
        + binaryRequest(B.FLUSH, extras=expiration(0), opaque=3)
        + binaryRequest(B.GETQ, b"k")
        + SET
        + binaryRequest(B.FLUSH, extras=expiration(1000))
        + binaryRequest(B.GET, b"k")
    ],
    "server commands": [
        binaryRequest(B.VERSION, opaque=1)
        + binaryRequest(B.NOOP, opaque=2)
        + binaryRequest(B.STAT, b"reset", opaque=3)
        + binaryRequest(B.STAT, b"bogus", opaque=4)
        + binaryRequest(B.STAT, b"detail", opaque=5)
        + binaryRequest(B.QUIT, opaque=6)
        + binaryRequest(B.NOOP, opaque=7)
    ],
    "quiet quit": [SET + binaryRequest(B.QUITQ) + binaryRequest(B.NOOP)],
    "keys of any bytes": [
        binaryRequest(B.SET, b"a b\r\n\0\x80", storage(1), b"v\r\nEND")
        + binaryRequest(B.GETK, b"a b\r\n\0\x80")
        + binaryRequest(B.SET, b"k" * 250, storage(), b"long")
        + binaryRequest(B.GETK, b"k" * 250)
    ],
    "large values": [
        binaryRequest(B.SET, b"big", storage(9), LARGE)
        + binaryRequest(B.GET, b"big")
        + binaryRequest(B.APPEND, b"big", value=LARGE * 3)
        + binaryRequest(B.APPEND, b"big", value=LARGE * 2)
        + binaryRequest(B.GETQ, b"big")
        + binaryRequest(B.NOOP)
    ],
    "too large is swallowed": [
        SET
        + binaryRequest(B.SET, b"k", storage(), b"x" * (1024 * 1024))
        + binaryRequest(B.GET, b"k")
        + binaryRequest(B.SETQ, b"q", storage(), b"x" * (2 * 1024 * 1024))
        + binaryRequest(B.NOOP)
    ],
    "unknown opcodes": [
        binaryRequest(0x55, opaque=9)
        + binaryRequest(0x55, value=b"xyz", opaque=9)
        + binaryRequest(B.NOOP)
        + binaryRequest(B.VERBOSITY)
        + binaryRequest(0xFF, b"key", bodyLength=6)
        + b"key"
        + binaryRequest(B.NOOP)
    ],
    "unknown opcodes swallow into the next request": [
        binaryRequest(0x55, opaque=9)
        + binaryRequest(0x55, value=b"xyz", opaque=9)
        + binaryRequest(B.VERBOSITY, extras=expiration(1))
        + binaryRequest(B.NOOP)
        + binaryRequest(B.NOOP)
        + binaryRequest(0xFF, b"key", b"ext", b"value")
        + binaryRequest(B.NOOP)
    ],
    "SASL without -S": [
        binaryRequest(B.SASL_LIST_MECHS, opaque=1)
        + binaryRequest(B.SASL_AUTH, b"PLAIN", value=b"\0user\0password", opaque=2)
        + binaryRequest(B.SASL_STEP, b"PLAIN", value=b"x", opaque=3)
        + binaryRequest(B.NOOP)
    ],
    "SASL list with a key": [binaryRequest(B.SASL_LIST_MECHS, b"k") + binaryRequest(B.NOOP)],
    "SASL auth without a key": [binaryRequest(B.SASL_AUTH, value=b"x") + binaryRequest(B.NOOP)],
    "key too long": [binaryRequest(B.GET, b"k" * 251) + binaryRequest(B.NOOP)],
    "key longer than body": [binaryRequest(B.GET, b"k", bodyLength=0) + b"k" + binaryRequest(B.NOOP)],
    "get with extras": [binaryRequest(B.GET, b"k", extras=b"abcd") + binaryRequest(B.NOOP)],
    "set without extras": [binaryRequest(B.SET, b"k", value=b"v") + binaryRequest(B.NOOP)],
    "increment, short extras": [binaryRequest(B.INCREMENT, b"k", extras=b"\0" * 8) + binaryRequest(B.NOOP)],
    "delete with extras": [binaryRequest(B.DELETE, b"k", extras=b"\0" * 4) + binaryRequest(B.NOOP)],
    "version with a body": [binaryRequest(B.VERSION, value=b"x") + binaryRequest(B.NOOP)],
    "flush, odd extras": [binaryRequest(B.FLUSH, extras=b"ab") + binaryRequest(B.NOOP)],
    "bad magic loses unwritten replies": [
        binaryRequest(B.GET, b"x") + binaryRequest(B.GETK, b"x") + SET + binaryRequest(B.NOOP, magic=0x81)
    ],
    "bad magic": [binaryRequest(B.NOOP) + binaryRequest(B.NOOP, magic=0x81) + binaryRequest(B.NOOP)],
    "data type and vbucket": [binaryRequest(B.NOOP, dataType=1, vbucket=7) + SET],
    "stat key with a body": [binaryRequest(B.STAT, b"reset", value=b"") + binaryRequest(B.NOOP)],
}


#: Streams whose replies depend on where reads end, because memcached
#: loses the replies it has not written when it hangs up on a bad magic
#: byte: sent to myproto whole only, as to memcached.
WHOLE_ONLY = frozenset(
    ["unknown opcodes swallow into the next request", "bad magic loses unwritten replies"]
)


class BinaryDifferentialTests(TestCase):
    """
    Every stream of L{CORPUS} gets the same responses from both servers.
    """

    timeout = 300

    def test_statNames(self) -> None:
        """
        On fresh servers, STAT and each of its groups answer the same
        names, in the same order, as memcached's, with the same opaque.
        """

        async def check() -> None:
            memcached = await startMemcached(self)
            port, stop = await listenMyproto()
            self.addCleanup(stop)
            groups = [b"", b"settings", b"items", b"slabs", b"sizes", b"conns", b"detail"]
            groups += [b"detail on", b"detail dump", b"detail off", b"detail bogus"]
            for group in groups:
                request = binaryRequest(B.STAT, group, opaque=77)
                names = []
                for server in (memcached.port, port):
                    reply = await exchange(HOST, server, [request, afterResponses(1)], quit=False)
                    frames, rest = binaryFrames(reply.data)
                    names.append(
                        ([(fields[1], fields[5], fields[7]) for fields, _ in frames],
                         [body[: fields[2]] for fields, body in frames], rest)
                    )
                self.assertEqual(names[1], names[0], group)

        return Deferred.fromCoroutine(check())

    def test_corpus(self) -> Deferred[None]:
        """
        Whole and chunked, every stream's responses match memcached's.
        """

        async def check() -> None:
            memcached = await startMemcached(self)
            problems = []
            for name, stream in CORPUS.items():
                parts: list[Part] = [binaryRequest(B.FLUSH), afterResponses(1)] + list(stream)
                parts.append(binaryRequest(B.QUIT))
                theirs = await exchange(HOST, memcached.port, parts, quit=False)
                expected = normalise(theirs.data, theirs.closedByServer)
                chunkings = [None, random.Random(name), random.Random(name + "!")]
                if name in WHOLE_ONLY:
                    chunkings = [None]
                problem = await binaryMismatch(name, parts, expected, chunkings)
                if problem is not None:
                    problems.append(problem)
            self.assertEqual(problems, [], "\n".join(problems))

        return Deferred.fromCoroutine(check())
