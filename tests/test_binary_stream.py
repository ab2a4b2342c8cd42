"""
A stream fuzzer for the binary protocol: random and mutated frames, fed to
one server in reads of random sizes, over as many connections as its bad
magic bytes close, while another client's data must stay intact, no
internal error may be logged, and what the server holds must stay bounded.

CI runs L{CI_FRAMES} of them; the recorded run is a million:

    .venv/bin/python -m tests.test_binary_stream 1000000
"""

from __future__ import annotations

import random
import resource
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from myproto.config import ServerSettings
from myproto.wire import binary as B
from tests.helpers import Server, binaryRequest

CI_FRAMES = 100_000

_OPCODES = [
    B.GET, B.SET, B.ADD, B.REPLACE, B.DELETE, B.INCREMENT, B.DECREMENT, B.QUIT, B.FLUSH, B.GETQ,
    B.NOOP, B.VERSION, B.GETK, B.GETKQ, B.APPEND, B.PREPEND, B.STAT, B.SETQ, B.ADDQ, B.REPLACEQ,
    B.DELETEQ, B.INCREMENTQ, B.DECREMENTQ, B.QUITQ, B.FLUSHQ, B.APPENDQ, B.PREPENDQ, B.VERBOSITY,
    B.TOUCH, B.GAT, B.GATQ, B.SASL_LIST_MECHS, B.GATK, B.GATKQ, 0x21, 0x22, 0x55, 0xFF,
]
# Keys, the bad ones (empty, too long) rarer.
_KEYS = [b"k", b"fuzz:a", b"fuzz:b", b"safe", b"k" * 250] * 8 + [b"", b"k" * 251]
_EXTRAS = [b"", b"\0" * 4, b"\0\0\0\1\0\0\0\0", b"\0" * 8, b"\0" * 20, b"\xff" * 20, b"abc"]


# The extras each opcode takes, and whether it carries a value.
_SHAPES = {
    **dict.fromkeys([B.SET, B.ADD, B.REPLACE, B.SETQ, B.ADDQ, B.REPLACEQ], (8, True)),
    **dict.fromkeys([B.APPEND, B.PREPEND, B.APPENDQ, B.PREPENDQ], (0, True)),
    **dict.fromkeys([B.INCREMENT, B.DECREMENT, B.INCREMENTQ, B.DECREMENTQ], (20, False)),
    **dict.fromkeys([B.TOUCH, B.GAT, B.GATQ, B.GATK, B.GATKQ, B.VERBOSITY], (4, False)),
}

_KEYLESS = {B.NOOP, B.VERSION, B.QUIT, B.QUITQ, B.FLUSH, B.FLUSHQ, B.VERBOSITY, B.SASL_LIST_MECHS}


def validFrame(rng: random.Random) -> bytes:
    """
    @return: a request with random opcode, key and value; 97 in 100 have
        the extras their opcode takes (the victim's key C{safe} is only ever
        read).
    """
    opcode = rng.choice(_OPCODES)
    key = rng.choice(_KEYS)
    if key == b"safe" and opcode not in (B.GET, B.GETQ, B.GETK, B.GETKQ):
        key = b"fuzz:c"
    if opcode in _KEYLESS and rng.random() < 0.97:
        key = b""
    size, hasValue = _SHAPES.get(opcode, (0, False))
    if opcode in (B.FLUSH, B.FLUSHQ) and rng.random() < 0.5:
        size = 4
    extras = rng.randbytes(size) if rng.random() < 0.97 else rng.choice(_EXTRAS)
    if opcode in (B.FLUSH, B.FLUSHQ) and size == 4:
        extras = b"\0\0\0\x05"  # a delayed flush: the victim's item survives it
    value = rng.randbytes(rng.choice([0, 1, 8, 40, 300])) if hasValue or rng.random() < 0.1 else b""
    return binaryRequest(opcode, key, extras, value, opaque=rng.getrandbits(32), cas=rng.choice([0, 0, 1, 2**64 - 1]))


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """
    @return: the frame with one of: a flipped byte, a random header field,
        a huge or short body length, a cut, a repeat, or random bytes.
    """
    choice = rng.randrange(7)
    data = bytearray(frame)
    if choice == 0:
        position = rng.randrange(len(data))
        data[position] ^= 1 << rng.randrange(8)
    elif choice == 1:
        position = rng.randrange(min(len(data), 24))
        data[position] = rng.randrange(256)
    elif choice == 2:
        data[8:12] = struct.pack(">I", rng.choice([0, 1, 2**20, 2**20 + 1, 2**31, 2**32 - 1]))
    elif choice == 3:
        del data[rng.randrange(len(data)) :]
    elif choice == 4:
        data = data + data
    elif choice == 5:
        data[2:4] = struct.pack(">H", rng.choice([0, 251, 0xFFFF]))
    else:
        return rng.randbytes(rng.randrange(1, 64))
    return bytes(data)


def frames(rng: random.Random, count: int):  # type: ignore[no-untyped-def]
    """
    @return: C{count} frames, one in twenty mutated.
    """
    for _ in range(count):
        frame = validFrame(rng)
        yield mutate(rng, frame) if rng.random() < 0.05 else frame


@dataclass
class FuzzReport:
    frames: int = 0
    bytes: int = 0
    connections: int = 1
    seconds: float = 0.0
    largestBuffered: int = 0
    largestOutput: int = 0
    replyBytes: int = 0
    maxRssBefore: int = 0
    maxRssAfter: int = 0
    failures: list[Any] = field(default_factory=list)
    victimIntact: bool = True
    serverAnswers: bool = False


def fuzz(count: int, seed: int = 14) -> FuzzReport:
    """
    Send C{count} random and mutated frames to one server.
    """
    rng = random.Random(seed)
    report = FuzzReport(maxRssBefore=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    failures = report.failures

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None:
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    start = time.monotonic()
    try:
        # -F: a flush would take the victim's item too.
        server = Server(ServerSettings(flushEnabled=False))
        victim = server.connect()
        victim.send(b"set safe 5 0 4\r\nsafe\r\n")
        client = server.connect()
        pending = b""
        for frame in frames(rng, count):
            report.frames += 1
            pending += frame
            if len(pending) < rng.randrange(1, 512):
                continue
            report.bytes += len(pending)
            client.protocol.dataReceived(pending)
            pending = b""
            report.largestBuffered = max(report.largestBuffered, client.protocol.connection.bufferedBytes)
            report.largestOutput = max(report.largestOutput, len(client.transport.value()))
            report.replyBytes += len(client.transport.value())
            client.transport.clear()
            # A huge body length is swallowed for good: a client would hang up.
            swallowing = client.protocol.connection.dataRemaining > 100_000
            if client.transport.disconnecting or client.protocol._closing or swallowing:
                client.protocol.connectionLost(None)  # type: ignore[arg-type]
                client = server.connect()
                report.connections += 1
            if report.frames % 50_000 == 0:
                report.victimIntact &= victim.send(b"get safe\r\n") == b"VALUE safe 5 4\r\nsafe\r\nEND\r\n"
        report.victimIntact &= victim.send(b"get safe\r\n") == b"VALUE safe 5 4\r\nsafe\r\nEND\r\n"
        report.serverAnswers = server.connect().send(binaryRequest(B.NOOP))[:2] == b"\x81\x0a"
    finally:
        globalLogPublisher.removeObserver(observe)
    report.seconds = time.monotonic() - start
    report.maxRssAfter = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return report


class BinaryStreamFuzzTests(SynchronousTestCase):
    """
    L{CI_FRAMES} random and mutated frames.
    """

    def test_fuzz(self) -> None:
        """
        The server stays up and answers, logs no internal error, holds at
        most one item's worth of a request, and the victim's item is intact.
        """
        report = fuzz(CI_FRAMES)
        self.assertEqual(report.failures, [])
        self.assertTrue(report.victimIntact)
        self.assertTrue(report.serverAnswers)
        self.assertLessEqual(report.largestBuffered, 1024 * 1024 + 1024)
        self.assertGreater(report.connections, 10)


if __name__ == "__main__":
    result = fuzz(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
    for name, value in vars(result).items():
        print("{}: {}".format(name, len(value) if name == "failures" else value))
