"""
A bounded stress-and-fault run: many well-behaved clients keep verifying
their own data while other clients misbehave, against a myproto started for
the run on a free 127.0.0.1 port.

The good clients (C{--good-clients}, 50 by default) each own a few keys and
know, at every moment, exactly what each key must hold.  They set, get,
append, delete, increment and compare-and-swap, alone and pipelined, with
values that contain CR, LF and NUL, and check every reply.  Meanwhile:

  - C{midblock} clients start a data block and disconnect halfway (some
    with a reset);
  - C{staller} clients send half a command line or half a data block and
    wait: the server must drop them after C{--request-timeout};
  - C{garbage} clients send random bytes, random verbs with random
    arguments, bad data blocks and over-long lines;
  - C{never-reader} clients pipeline thousands of gets of a large item and
    never read: the server must stop reading from them, so that they can
    only write a bounded amount;
  - C{flapper} clients open and close connections as fast as they can;
  - a C{hog} opens connections until the server refuses one with
    C{ERROR Too many open connections}, holds them, and lets go;
  - only when asked for (C{--kinds ...,multiget}): C{multiget} clients send
    one 2 KB multi-get for a 100 MB reply and never read it.

After C{--seconds} (20 by default) everything stops by itself.  Each good
client then checks all its keys again, on its own connection and on a new
one; the server's counters are read (no connection may be left counted, no
item evicted), the server is stopped with SIGTERM, and its log is searched
for tracebacks.  The run prints the operations done, the errors, the items
lost or corrupted, what the misbehaving clients saw, and the server's peak
RSS; it exits with status 1 unless there were no errors, nothing was lost
or corrupted, the server logged no failure and sent no internal error, and
every staller was dropped in time.

Only the standard library is used on the client side.  Every wait has a
timeout and all traffic goes to 127.0.0.1.

    python bench/stress.py --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# A good client's reply that takes longer than this is an error.
REPLY_TIMEOUT = 10.0

# Seconds to wait for the server to accept connections, and to exit.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0

# Replies that must never be sent, to anyone.
FORBIDDEN = (b"SERVER_ERROR internal error", b"Traceback", b"Unhandled")

# Verbs garbage is made of: everything but what legitimately changes other
# clients' data (flush_all, cache_memlimit), stops the server (shutdown) or
# hands the connection over to a stream (watch, lru_crawler).
GARBAGE_VERBS = [
    b"set", b"add", b"replace", b"append", b"prepend", b"cas", b"get", b"gets", b"gat",
    b"gats", b"delete", b"incr", b"decr", b"touch", b"stats", b"version", b"verbosity",
    b"mn", b"mg", b"ms", b"md", b"ma", b"me", b"quit", b"bogus", b"GET", b"",
]  # fmt: skip
GARBAGE_TOKENS = [
    b"0", b"1", b"-1", b"5", b"100", b"4294967296", b"18446744073709551616", b"2147483647",
    b"noreply", b"junk:1", b"junk:2", b"junk:3", b"v", b"q", b"k", b"T1", b"N5", b"MA", b"Mz",
    b"\x00", b"\r", b"\xff", b"x" * 300, b"HTTP/1.1",
]  # fmt: skip


# ---------------------------------------------------------------------------
# Results.


@dataclass
class Tally:
    """
    Everything counted during a run.
    """

    operations: int = 0
    errors: int = 0
    lost: int = 0
    corrupted: int = 0
    problems: list[str] = field(default_factory=list)
    forbiddenReplies: int = 0
    misbehaviour: dict[str, int] = field(default_factory=dict)

    def problem(self, kind: str, message: str) -> None:
        """
        Count one error, lost or corrupted item, and keep its description.
        """
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.problems) < 20:
            self.problems.append("{}: {}".format(kind, message))

    def count(self, name: str, amount: int = 1) -> None:
        self.misbehaviour[name] = self.misbehaviour.get(name, 0) + amount

    def most(self, name: str, amount: int) -> None:
        self.misbehaviour[name] = max(self.misbehaviour.get(name, 0), amount)

    def scan(self, data: bytes) -> None:
        """
        Look for what must never be sent in bytes from the server.
        """
        for forbidden in FORBIDDEN:
            if forbidden in data:
                self.forbiddenReplies += 1
                if len(self.problems) < 20:
                    self.problems.append("forbidden reply: {!r}".format(data[:200]))


class ProtocolFault(Exception):
    """
    A reply a good client did not expect.
    """


# ---------------------------------------------------------------------------
# The server.


def dieWithParent() -> None:
    """
    In the child, before it runs: on Linux, ask for SIGTERM when this script
    dies, however it dies, so that no server outlives a run.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass


def freePort() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Server:
    """
    myproto in a child process (C{python -m twisted myproto}), found through
    its twistd plugin with the repository on C{PYTHONPATH}.
    """

    def __init__(self, python: str, workdir: Path, options: list[str]) -> None:
        self.port = freePort()
        self.log = workdir / "myproto.log"
        listen = "tcp:{}:interface={}".format(self.port, HOST)
        self.argv = [
            python, "-m", "twisted", "--log-format=text", "--log-level=warn", "--log-file=-",
            "myproto", "--listen", listen, *options,
        ]  # fmt: skip
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + path if path else "")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                preexec_fn=dieWithParent,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("myproto exited at start:\n" + self.logText()[-3000:])
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("myproto did not accept connections in time")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def memory(self, field: str) -> int | None:
        """
        @return: a C{/proc/PID/status} memory figure (C{VmHWM}: peak RSS,
            C{VmRSS}: current) in bytes, or L{None} where there is no /proc.
        """
        if self.process is None:
            return None
        try:
            status = Path("/proc/{}/status".format(self.process.pid)).read_text()
        except OSError:
            return None
        match = re.search(r"^{}:\s+(\d+) kB".format(field), status, re.MULTILINE)
        return int(match.group(1)) * 1024 if match else None

    def stop(self) -> int | None:
        """
        Stop the server as a supervisor would (SIGTERM), killing it if it
        does not exit in time.

        @return: its exit status.
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def logText(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def loggedFailures(self) -> list[str]:
        """
        @return: the log lines that show a failure: a traceback, an
            unhandled error, an unexpected exception.
        """
        markers = ("Traceback", "Unhandled Error", "Unexpected error", "CRITICAL", "critical")
        return [line for line in self.logText().splitlines() if any(m in line for m in markers)]


# ---------------------------------------------------------------------------
# Client plumbing.


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(HOST, port), REPLY_TIMEOUT)


def abort(writer: asyncio.StreamWriter | None) -> None:
    """
    Close a connection with a reset rather than a FIN.
    """
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


def close(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        writer.transport.close()


async def readLine(reader: asyncio.StreamReader) -> bytes:
    line = await asyncio.wait_for(reader.readuntil(b"\r\n"), REPLY_TIMEOUT)
    return line[:-2]


async def readRetrieval(reader: asyncio.StreamReader) -> dict[bytes, tuple[int, bytes, int | None]]:
    """
    Read a C{get}/C{gets} reply.

    @return: the items by key, as C{(flags, value, cas)}.
    """
    found: dict[bytes, tuple[int, bytes, int | None]] = {}
    while True:
        line = await readLine(reader)
        if line == b"END":
            return found
        fields = line.split(b" ")
        if fields[0] != b"VALUE" or len(fields) not in (4, 5):
            raise ProtocolFault("expected VALUE or END, got {!r}".format(line[:200]))
        size = int(fields[3])
        block = await asyncio.wait_for(reader.readexactly(size + 2), REPLY_TIMEOUT)
        if not block.endswith(b"\r\n"):
            raise ProtocolFault("data block of {!r} not followed by CRLF".format(fields[1]))
        found[fields[1]] = (
            int(fields[2]),
            block[:-2],
            int(fields[4]) if len(fields) == 5 else None,
        )


async def expectLine(reader: asyncio.StreamReader, expected: bytes, context: str) -> None:
    line = await readLine(reader)
    if line != expected:
        raise ProtocolFault("{}: expected {!r}, got {!r}".format(context, expected, line[:200]))


# ---------------------------------------------------------------------------
# Good clients.

# What a key must hold: (flags, value), or None for nothing.
Expected = tuple[int, bytes] | None

# A request, and what reads and checks its reply.
Step = tuple[bytes, Callable[[asyncio.StreamReader], Awaitable[None]]]

VALUE_BYTES = b"abcdefghijklmnopqrstuvwxyz0123456789 \r\n\0\xff"


class GoodClient:
    """
    A client that owns C{keys} keys, knows what each must hold, and checks
    every reply.

    After an error (which the run reports) the keys of the requests in
    flight are marked unknown: whatever the server shows next for them is
    accepted if this client could have written it.
    """

    def __init__(self, number: int, keys: int, port: int, rng: random.Random, tally: Tally) -> None:
        self.number = number
        self.port = port
        self.rng = rng
        self.tally = tally
        self.keys = [b"good:%d:%d" % (number, index) for index in range(keys)]
        self.counterKey = b"good:%d:counter" % (number,)
        self.expected: dict[bytes, Expected] = dict.fromkeys(self.keys)
        self.counter: int | None = None
        self.unknown: set[bytes] = set()
        self.serial = 0
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    # Values.

    def newValue(self, key: bytes) -> bytes:
        """
        A value that says whose it is (so corruption by another client shows)
        followed by random bytes, CR, LF and NUL among them.
        """
        self.serial += 1
        body = bytes(self.rng.choice(VALUE_BYTES) for _ in range(self.rng.randrange(0, 120)))
        return b"%s#%d|%s" % (key, self.serial, body)

    def check(self, key: bytes, found: dict[bytes, tuple[int, bytes, int | None]]) -> None:
        """
        Compare what the server showed for C{key} with what it must hold.
        """
        shown = found.get(key)
        if key in self.unknown:
            self.unknown.discard(key)
            if shown is not None and not shown[1].startswith(key + b"#"):
                self.tally.problem("corrupted", "{!r} holds {!r}".format(key, shown[1][:80]))
            self.expected[key] = None if shown is None else (shown[0], shown[1])
            return
        expected = self.expected[key]
        if expected is None:
            if shown is not None:
                self.tally.problem(
                    "corrupted", "{!r} should be absent, holds {!r}".format(key, shown[1][:80])
                )
        elif shown is None:
            self.tally.problem("lost", "{!r} is missing".format(key))
            self.expected[key] = None
        elif (shown[0], shown[1]) != expected:
            self.tally.problem(
                "corrupted",
                "{!r} holds flags {} {!r}, expected flags {} {!r}".format(
                    key, shown[0], shown[1][:80], expected[0], expected[1][:80]
                ),
            )
            self.expected[key] = (shown[0], shown[1])

    # Steps: one request each, pipelinable.

    def setStep(self, key: bytes) -> Step:
        value = self.newValue(key)
        flags = self.rng.randrange(2**32)
        noreply = self.rng.random() < 0.1
        request = b"set %s %d 0 %d%s\r\n%s\r\n" % (
            key, flags, len(value), b" noreply" if noreply else b"", value
        )  # fmt: skip

        async def finish(reader: asyncio.StreamReader) -> None:
            if not noreply:
                await expectLine(reader, b"STORED", "set")
            self.expected[key] = (flags, value)

        return request, finish

    def getStep(self, keys: list[bytes]) -> Step:
        async def finish(reader: asyncio.StreamReader) -> None:
            found = await readRetrieval(reader)
            for key in keys:
                self.check(key, found)

        return b"get %s\r\n" % (b" ".join(keys),), finish

    def appendStep(self, key: bytes) -> Step:
        tail = bytes(self.rng.choice(VALUE_BYTES) for _ in range(self.rng.randrange(1, 20)))
        request = b"append %s 0 0 %d\r\n%s\r\n" % (key, len(tail), tail)

        async def finish(reader: asyncio.StreamReader) -> None:
            line = await readLine(reader)
            expected = self.expected[key]
            if key in self.unknown:
                return  # still unknown: settled at the next read
            if expected is None:
                if line != b"NOT_STORED":
                    raise ProtocolFault("append to a missing key: {!r}".format(line))
            elif line == b"NOT_STORED":
                self.tally.problem("lost", "{!r} missing when appended to".format(key))
                self.expected[key] = None
            elif line != b"STORED":
                raise ProtocolFault("append: {!r}".format(line))
            else:
                self.expected[key] = (expected[0], expected[1] + tail)

        return request, finish

    def deleteStep(self, key: bytes) -> Step:
        async def finish(reader: asyncio.StreamReader) -> None:
            line = await readLine(reader)
            expected = self.expected[key]
            if key in self.unknown:
                self.unknown.discard(key)
            elif expected is None and line != b"NOT_FOUND":
                self.tally.problem("corrupted", "{!r} deleted, but should be absent".format(key))
            elif expected is not None and line == b"NOT_FOUND":
                self.tally.problem("lost", "{!r} missing when deleted".format(key))
            elif line not in (b"DELETED", b"NOT_FOUND"):
                raise ProtocolFault("delete: {!r}".format(line))
            self.expected[key] = None

        return b"delete %s\r\n" % (key,), finish

    def incrementStep(self) -> Step:
        delta = self.rng.randrange(0, 1000)

        async def finish(reader: asyncio.StreamReader) -> None:
            line = await readLine(reader)
            if self.counter is None:
                if line != b"NOT_FOUND":
                    raise ProtocolFault("incr of a missing counter: {!r}".format(line))
                return
            if line == b"NOT_FOUND":
                self.tally.problem("lost", "counter {!r} missing".format(self.counterKey))
                self.counter = None
                return
            expected = (self.counter + delta) % 2**64
            if line != b"%d" % (expected,):
                self.tally.problem(
                    "corrupted", "counter at {!r}, expected {}".format(line, expected)
                )
            self.counter = int(line) if line.isdigit() else None

        return b"incr %s %d\r\n" % (self.counterKey, delta), finish

    def counterSetStep(self) -> Step:
        start = self.rng.randrange(0, 10**6)
        request = b"set %s 0 0 %d\r\n%d\r\n" % (self.counterKey, len(b"%d" % start), start)

        async def finish(reader: asyncio.StreamReader) -> None:
            await expectLine(reader, b"STORED", "counter set")
            self.counter = start

        return request, finish

    # Running.

    async def open(self) -> None:
        self.reader, self.writer = await connect(self.port)

    async def perform(self, steps: list[Step]) -> None:
        """
        Send the requests of C{steps} in one write, then read and check
        each reply in order.
        """
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"".join(request for request, _ in steps))
        await asyncio.wait_for(self.writer.drain(), REPLY_TIMEOUT)
        for _, finish in steps:
            await finish(self.reader)
            self.tally.operations += 1

    async def compareAndSwap(self, key: bytes) -> None:
        """
        C{gets}, then C{cas} with the unique it showed (which must succeed:
        nobody else writes this key), sometimes with a stale one first
        (which must not).
        """
        assert self.reader is not None and self.writer is not None
        self.writer.write(b"gets %s\r\n" % (key,))
        found = await readRetrieval(self.reader)
        self.tally.operations += 1
        self.check(key, found)
        if key not in found:
            await self.perform([self.setStep(key)])
            return
        unique = found[key][2]
        if unique is None:
            raise ProtocolFault("gets without a unique")
        value = self.newValue(key)
        flags = self.rng.randrange(2**32)
        if self.rng.random() < 0.2:
            self.writer.write(
                b"cas %s 0 0 1 %d\r\nx\r\n" % (key, unique + 1 + self.rng.randrange(10**6))
            )
            await expectLine(self.reader, b"EXISTS", "cas with a wrong unique")
            self.tally.operations += 1
        self.writer.write(b"cas %s %d 0 %d %d\r\n%s\r\n" % (key, flags, len(value), unique, value))
        line = await readLine(self.reader)
        self.tally.operations += 1
        if line == b"STORED":
            self.expected[key] = (flags, value)
        elif line == b"NOT_FOUND":
            self.tally.problem("lost", "{!r} vanished between gets and cas".format(key))
            self.expected[key] = None
        elif line == b"EXISTS":
            self.tally.problem("corrupted", "{!r} changed between gets and cas".format(key))
            self.unknown.add(key)
        else:
            raise ProtocolFault("cas: {!r}".format(line))

    async def oneRound(self) -> None:
        rng = self.rng
        key = rng.choice(self.keys)
        choice = rng.random()
        if choice < 0.25:
            await self.perform([self.setStep(key)])
        elif choice < 0.50:
            await self.perform([self.getStep([key])])
        elif choice < 0.65:
            await self.compareAndSwap(key)
        elif choice < 0.72:
            await self.perform([self.appendStep(key)])
        elif choice < 0.77:
            await self.perform([self.deleteStep(key)])
        elif choice < 0.85:
            step = (
                self.incrementStep()
                if self.counter is not None and rng.random() < 0.9
                else self.counterSetStep()
            )
            await self.perform([step])
        elif choice < 0.90:
            await self.perform([self.getStep(list(self.keys))])
        else:
            # A pipelined batch.
            steps: list[Step] = []
            for _ in range(rng.randrange(2, 12)):
                key = rng.choice(self.keys)
                pick = rng.random()
                if pick < 0.4:
                    steps.append(self.setStep(key))
                elif pick < 0.8:
                    steps.append(self.getStep(rng.sample(self.keys, rng.randrange(1, 4))))
                elif pick < 0.9:
                    steps.append(self.appendStep(key))
                else:
                    steps.append(self.deleteStep(key))
            await self.perform(steps)

    async def run(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                await self.oneRound()
            except (
                ProtocolFault,
                OSError,
                asyncio.TimeoutError,
                asyncio.IncompleteReadError,
                ValueError,
            ) as error:
                self.tally.problem("errors", "good client {}: {!r}".format(self.number, error))
                # What was in flight may or may not have happened.
                self.unknown.update(self.keys)
                self.counter = None
                close(self.writer)
                try:
                    await self.open()
                except (OSError, asyncio.TimeoutError) as reconnectError:
                    self.tally.problem(
                        "errors",
                        "good client {} cannot reconnect: {!r}".format(self.number, reconnectError),
                    )
                    return

    async def verify(self, fresh: bool) -> None:
        """
        Check every key at once, on this client's connection or a new one.
        """
        if fresh:
            close(self.writer)
            await self.open()
        try:
            await self.perform([self.getStep(list(self.keys))])
        except (
            ProtocolFault,
            OSError,
            asyncio.TimeoutError,
            asyncio.IncompleteReadError,
            ValueError,
        ) as error:
            self.tally.problem(
                "errors", "good client {} final check: {!r}".format(self.number, error)
            )

    def finish(self) -> None:
        close(self.writer)


# ---------------------------------------------------------------------------
# Misbehaving clients.  Each runs until cancelled; what they see is scanned
# for forbidden replies, and what happens to them is counted.


async def drainInto(reader: asyncio.StreamReader, tally: Tally, limit: float) -> bytes:
    """
    Read whatever comes for up to C{limit} seconds, or until the server
    closes.

    @return: what was read.
    """
    return (await readUntilClosed(reader, tally, limit))[0]


async def readUntilClosed(
    reader: asyncio.StreamReader, tally: Tally, limit: float
) -> tuple[bytes, bool]:
    """
    Read whatever comes for up to C{limit} seconds, or until the server
    closes the connection (with a FIN or a reset).

    @return: what was read, and whether the server closed the connection.
    """
    received = b""
    closed = False
    end = time.monotonic() + limit
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(65536), left)
        except asyncio.TimeoutError:
            break
        except OSError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        received += chunk
    tally.scan(received)
    return received, closed


async def midblock(port: int, rng: random.Random, tally: Tally, deadline: float) -> None:
    """
    Start data blocks and disconnect halfway through them.
    """
    while time.monotonic() < deadline:
        writer = None
        try:
            _, writer = await connect(port)
            size = rng.choice([10, 1000, 100000, 1000000])
            writer.write(b"set junk:mid:%d 0 0 %d\r\n" % (rng.randrange(5), size))
            writer.write(b"m" * rng.randrange(0, min(size, 65536)))
            await asyncio.wait_for(writer.drain(), 5)
            await asyncio.sleep(rng.random() * 0.05)
            tally.count("midblock disconnects")
        except (OSError, asyncio.TimeoutError):
            tally.count("midblock refused")
        finally:
            (abort if rng.random() < 0.5 else close)(writer)
        await asyncio.sleep(0.01)


async def staller(
    port: int, rng: random.Random, tally: Tally, requestTimeout: float, deadline: float
) -> None:
    """
    Send half a line or half a data block and wait: the server must hang up
    within the request timeout (and a little more).
    """
    while time.monotonic() < deadline:
        writer = None
        try:
            reader, writer = await connect(port)
            writer.write(b"version\r\n")
            if not (await readLine(reader)).startswith(b"VERSION"):
                tally.count("staller refused")
                await asyncio.sleep(0.2)
                continue
            if deadline - time.monotonic() < requestTimeout + 1:
                return
            half = rng.choice(
                [
                    b"get stalled",
                    b"set junk:stall 0 0 10\r\nabc",
                    b"gets a b c",
                    b"ms junk:stall 5 T0\r\nab",
                ]
            )
            writer.write(half)
            started = time.monotonic()
            received, closed = await readUntilClosed(reader, tally, requestTimeout + 5)
            waited = time.monotonic() - started
            if closed:
                tally.count("staller dropped")
                tally.most("staller longest wait (ms)", int(waited * 1000))
                if waited < requestTimeout * 0.9:
                    tally.problem(
                        "errors",
                        "staller dropped after {:.2f}s, before the request timeout".format(waited),
                    )
            else:
                tally.count("staller not dropped in time")
                tally.problem(
                    "errors",
                    "staller still connected {:.1f}s after stalling ({!r})".format(
                        waited, received[:80]
                    ),
                )
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            tally.count("staller refused")
            await asyncio.sleep(0.2)
        finally:
            close(writer)


def garbageBytes(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind < 0.8:
        tokens = [rng.choice(GARBAGE_VERBS)] + [
            (
                rng.choice(GARBAGE_TOKENS)
                if rng.random() < 0.7
                else bytes(rng.randrange(33, 127) for _ in range(rng.randrange(1, 8)))
            )
            for _ in range(rng.randrange(0, 8))
        ]
        return b" ".join(tokens) + rng.choice([b"\r\n", b"\r\n", b"\n", b"\r", b""])
    if kind < 0.95:
        size = rng.choice([0, 3, 50, 2000])
        sent = max(size + rng.randrange(-3, 4), 0)
        return b"set junk:%d 0 0 %d\r\n%s%s" % (
            rng.randrange(10),
            size,
            b"g" * sent,
            rng.choice([b"\r\n", b"\n", b"", b"xx"]),
        )
    return b"q" * rng.choice([2049, 5000, 20000]) + b"\r\n"


async def garbage(port: int, rng: random.Random, tally: Tally, deadline: float) -> None:
    """
    Send junk while reading (and scanning) whatever comes back; reconnect
    when dropped.
    """
    while time.monotonic() < deadline:
        writer = None
        listener = None
        try:
            reader, writer = await connect(port)
            listener = asyncio.ensure_future(
                drainInto(reader, tally, deadline - time.monotonic() + 1)
            )
            for _ in range(rng.randrange(10, 200)):
                if listener.done():
                    break
                writer.write(garbageBytes(rng))
                await asyncio.wait_for(writer.drain(), 5)
                tally.count("garbage writes")
                await asyncio.sleep(0)
            if listener.done():
                tally.count("garbage dropped by server")
        except ConnectionRefusedError:
            tally.count("garbage refused")
        except (OSError, asyncio.TimeoutError):
            tally.count("garbage dropped by server")
        finally:
            (abort if rng.random() < 0.3 else close)(writer)
            if listener is not None:
                try:
                    received = await asyncio.wait_for(listener, 2)
                    tally.count("garbage reply bytes", len(received))
                except (asyncio.TimeoutError, OSError):
                    pass
        await asyncio.sleep(0.01)


async def neverReader(
    port: int, number: int, rng: random.Random, tally: Tally, deadline: float
) -> None:
    """
    Pipeline gets of a 4 KB item and never read the replies: once the
    server stops reading, writes stall; count how much got written.
    """
    key = b"junk:never:%d" % (number,)
    value = b"n" * 4096
    while time.monotonic() < deadline:
        writer = None
        try:
            reader, writer = await connect(port)
            writer.write(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
            await expectLine(reader, b"STORED", "never-reader set")
            # Stop reading: the stream's buffer fills and asyncio pauses the
            # socket, so the kernel's buffers fill and the server's writes stall.
            batch = b"get %s\r\n" % (key,) * 2000
            written = 0
            stalled = False
            for _ in range(2000):
                writer.write(batch)
                try:
                    await asyncio.wait_for(writer.drain(), 2.0)
                except asyncio.TimeoutError:
                    stalled = True
                    break
                written += len(batch)
            tally.most("never-reader most bytes written before stalling", written)
            tally.count("never-reader stalled" if stalled else "never-reader never stalled")
            await asyncio.sleep(rng.random())
        except (OSError, asyncio.TimeoutError, ProtocolFault, asyncio.IncompleteReadError):
            tally.count("never-reader connection errors")
            await asyncio.sleep(0.2)
        finally:
            abort(writer)


async def multigetBomb(port: int, number: int, tally: Tally, deadline: float) -> None:
    """
    Not run by default (C{--kinds multiget}): one small multi-get naming a
    100 KB item a thousand times (a 2 KB request for a 100 MB reply), never
    read.  A server that builds a whole reply before writing any of it
    shows it in its peak RSS.
    """
    key = b"junk:bomb:%d" % (number,)
    value = b"b" * 100_000
    while time.monotonic() < deadline:
        writer = None
        try:
            reader, writer = await connect(port)
            writer.write(b"set %s 0 0 %d\r\n%s\r\n" % (key, len(value), value))
            await expectLine(reader, b"STORED", "multiget set")
            writer.write(b"get" + (b" " + key) * 1000 + b"\r\n")
            await asyncio.wait_for(writer.drain(), 5)
            tally.count("multiget requests")
            await asyncio.sleep(2)
        except (OSError, asyncio.TimeoutError, ProtocolFault, asyncio.IncompleteReadError):
            tally.count("multiget connection errors")
            await asyncio.sleep(0.2)
        finally:
            abort(writer)


async def flapper(port: int, rng: random.Random, tally: Tally, deadline: float) -> None:
    """
    Open and close connections as fast as possible.
    """
    while time.monotonic() < deadline:
        writer = None
        try:
            _, writer = await connect(port)
            if rng.random() < 0.5:
                writer.write(
                    rng.choice([b"version\r\n", b"get k", b"set k 0 0 5\r\nab", b"stats\r\n"])
                )
            tally.count("flapper connections")
        except (OSError, asyncio.TimeoutError):
            tally.count("flapper refused")
            await asyncio.sleep(0.05)
        finally:
            (abort if rng.random() < 0.5 else close)(writer)
        await asyncio.sleep(0.002)


async def hog(port: int, tally: Tally, limit: int, deadline: float) -> None:
    """
    Open connections, a batch at a time, until the server refuses some with
    memcached's C{ERROR Too many open connections} (and closes them); hold
    the rest for a moment; let go; again.
    """

    async def one() -> asyncio.StreamWriter | None:
        """
        @return: the connection if it was accepted, L{None} if refused.
        """
        reader, writer = await connect(port)
        writer.write(b"version\r\n")
        line = await readLine(reader)
        if line.startswith(b"VERSION"):
            return writer
        close(writer)
        if line != b"ERROR Too many open connections":
            tally.problem("errors", "a refused connection got {!r}".format(line))
        return None

    while time.monotonic() < deadline:
        held: list[asyncio.StreamWriter] = []
        try:
            while len(held) <= limit and time.monotonic() < deadline:
                batch = await asyncio.gather(*(one() for _ in range(25)), return_exceptions=True)
                accepted = [writer for writer in batch if isinstance(writer, asyncio.StreamWriter)]
                held += accepted
                failed = sum(isinstance(outcome, BaseException) for outcome in batch)
                if failed:
                    tally.count("hog connection errors", failed)
                refused = len(batch) - len(accepted) - failed
                if refused:
                    tally.count("hog refused as expected", refused)
                    tally.most("hog most connections held", len(held))
                    break
            else:
                if len(held) > limit:
                    tally.problem(
                        "errors", "the server accepted more than {} connections".format(limit)
                    )
            await asyncio.sleep(1.0)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            tally.count("hog connection errors")
        finally:
            for writer in held:
                close(writer)
        await asyncio.sleep(1.0)


# ---------------------------------------------------------------------------
# The run.

KINDS = ("midblock", "staller", "garbage", "never-reader", "flapper", "hog")
OPTIONAL_KINDS = ("multiget",)


async def stopAll(tasks: list[asyncio.Task[None]]) -> None:
    """
    Cancel C{tasks} and wait for them to end.  Cancelling again is needed
    now and then: C{asyncio.wait_for} can swallow a cancellation that
    arrives as what it waits for completes.
    """
    pending = {task for task in tasks if not task.done()}
    for _ in range(50):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.2)
    raise RuntimeError("{} clients would not stop".format(len(pending)))


async def statsOf(port: int) -> dict[str, str]:
    reader, writer = await connect(port)
    try:
        writer.write(b"stats\r\n")
        stats = {}
        while True:
            line = await readLine(reader)
            if line == b"END":
                return stats
            _, name, value = line.decode("ascii", "replace").split(" ", 2)
            stats[name] = value
    finally:
        close(writer)


async def settledStats(port: int, seconds: float) -> dict[str, str]:
    """
    The server's counters once every connection but the one asking has
    gone (or after C{seconds}).
    """
    end = time.monotonic() + seconds
    while True:
        stats = await statsOf(port)
        if stats.get("curr_connections") == "1" or time.monotonic() > end:
            return stats
        await asyncio.sleep(0.2)


async def run(arguments: argparse.Namespace, server: Server, tally: Tally) -> dict[str, Any]:
    rng = random.Random(arguments.seed)
    port = server.port
    clients = [
        GoodClient(number, arguments.keys, port, random.Random(rng.random()), tally)
        for number in range(arguments.good_clients)
    ]
    await asyncio.gather(*(client.open() for client in clients))
    started = time.monotonic()
    deadline = started + arguments.seconds

    kinds = arguments.kinds
    count = arguments.misbehaving

    def spawn(
        kind: str, factory: Callable[[random.Random, int], Awaitable[None]], count: int
    ) -> None:
        if kind in kinds:
            for number in range(count):
                misbehaving.append(
                    asyncio.ensure_future(factory(random.Random(rng.random()), number))
                )

    misbehaving: list[asyncio.Task[None]] = []
    spawn("midblock", lambda r, n: midblock(port, r, tally, deadline), count)
    spawn(
        "staller", lambda r, n: staller(port, r, tally, arguments.request_timeout, deadline), count
    )
    spawn("garbage", lambda r, n: garbage(port, r, tally, deadline), count)
    spawn("never-reader", lambda r, n: neverReader(port, n, r, tally, deadline), count)
    spawn("flapper", lambda r, n: flapper(port, r, tally, deadline), count)
    spawn("hog", lambda r, n: hog(port, tally, arguments.conn_limit, deadline), 1)
    spawn("multiget", lambda r, n: multigetBomb(port, n, tally, deadline), count)

    rss: list[int] = []

    async def sampleMemory() -> None:
        while True:
            current = server.memory("VmRSS")
            if current is not None:
                rss.append(current)
            await asyncio.sleep(0.25)

    sampler = asyncio.ensure_future(sampleMemory())
    await asyncio.gather(*(client.run(deadline) for client in clients))
    elapsed = time.monotonic() - started
    await stopAll(misbehaving + [sampler])
    # Let the server notice the misbehaving clients have gone.
    await asyncio.sleep(0.5)

    operationsBefore = tally.operations
    await asyncio.gather(*(client.verify(fresh=False) for client in clients))
    await asyncio.gather(*(client.verify(fresh=True) for client in clients))
    finalChecks = tally.operations - operationsBefore
    for client in clients:
        client.finish()
    stats = await settledStats(port, 10.0)
    return {"elapsed": elapsed, "stats": stats, "rss": rss, "finalChecks": finalChecks}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="how long the load lasts (default 20)"
    )
    parser.add_argument(
        "--good-clients", type=int, default=50, help="well-behaved clients (default 50)"
    )
    parser.add_argument("--keys", type=int, default=8, help="keys per good client (default 8)")
    parser.add_argument(
        "--misbehaving", type=int, default=2, help="clients of each misbehaving kind (default 2)"
    )
    parser.add_argument(
        "--kinds",
        type=lambda text: set(text.split(",")) - {""},
        default=set(KINDS),
        help="the misbehaving kinds, comma-separated (default: {}; also: {})".format(
            ",".join(KINDS), ",".join(OPTIONAL_KINDS)
        ),
    )
    parser.add_argument("--conn-limit", type=int, default=400, help="the server's -c (default 400)")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=2.0,
        help="the server's --request-timeout (default 2)",
    )
    parser.add_argument(
        "--memory-limit", type=int, default=128, help="the server's -m, in megabytes (default 128)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter to run myproto with"
    )
    parser.add_argument("--json", action="store_true", help="end with the results as one JSON line")
    arguments = parser.parse_args(argv)
    unknown = arguments.kinds - set(KINDS) - set(OPTIONAL_KINDS)
    if unknown:
        parser.error("unknown kinds: {}".format(", ".join(sorted(unknown))))
    if arguments.seed is None:
        arguments.seed = random.randrange(2**32)

    # A SIGTERM ends the run the way an exception would: the server is
    # stopped on the way out.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="myproto-stress-") as workdir:
        server = Server(
            arguments.python,
            Path(workdir),
            [
                "-m", str(arguments.memory_limit),
                "-c", str(arguments.conn_limit),
                "--request-timeout", str(arguments.request_timeout),
            ],
        )  # fmt: skip
        server.start()
        baseline = server.memory("VmRSS")
        try:
            outcome = asyncio.run(run(arguments, server, tally))
        finally:
            peak = server.memory("VmHWM")
            aliveAtEnd = server.alive()
            status = server.stop()
            failures = server.loggedFailures()

    stats = outcome["stats"]
    evictions = int(stats.get("evictions", 0))
    leftConnections = int(stats.get("curr_connections", -1)) - 1
    if evictions:
        tally.problem("errors", "{} items evicted: raise --memory-limit".format(evictions))
    if leftConnections:
        tally.problem(
            "errors", "{} connections still counted after every client left".format(leftConnections)
        )
    if not aliveAtEnd:
        tally.problem("errors", "the server died")
    if status not in (0, None):
        tally.problem("errors", "the server exited with status {}".format(status))
    for line in failures[:10]:
        tally.problems.append("server log: " + line[:300])

    results = {
        "seconds": round(outcome["elapsed"], 2),
        "seed": arguments.seed,
        "good_clients": arguments.good_clients,
        "operations": tally.operations,
        "operations_per_second": int(tally.operations / max(outcome["elapsed"], 1e-9)),
        "final_checks": outcome["finalChecks"],
        "errors": tally.errors,
        "lost": tally.lost,
        "corrupted": tally.corrupted,
        "forbidden_replies": tally.forbiddenReplies,
        "server_logged_failures": len(failures),
        "server_exit_status": status,
        "server_rss_start": baseline,
        "server_rss_peak": peak,
        "server_rss_sampled_max": max(outcome["rss"], default=None),
        "server_total_connections": int(stats.get("total_connections", 0)),
        "server_rejected_connections": int(stats.get("rejected_connections", 0)),
        "server_curr_items": int(stats.get("curr_items", 0)),
        "server_evictions": evictions,
        "misbehaviour": dict(sorted(tally.misbehaviour.items())),
        "problems": tally.problems,
    }
    ok = not (tally.errors or tally.lost or tally.corrupted or tally.forbiddenReplies or failures)
    results["ok"] = ok

    def megabytes(value: int | None) -> str:
        return "unknown" if value is None else "{:.1f} MB".format(value / 2**20)

    report = [
        "myproto stress: {seconds}s, seed {seed}, {good_clients} good clients",
        "  operations        {operations} ({operations_per_second}/s), final checks {final_checks}",
        "  errors            {errors}",
        "  lost              {lost}",
        "  corrupted         {corrupted}",
        "  forbidden replies {forbidden_replies}",
        "  server failures   {server_logged_failures} logged, exit status {server_exit_status}",
        "  server RSS        start {rss_start}, peak {rss_peak}",
        "  connections       {server_total_connections}, {server_rejected_connections} refused",
    ]
    sizes = {
        "rss_start": megabytes(results["server_rss_start"]),
        "rss_peak": megabytes(results["server_rss_peak"]),
    }
    for line in report:
        print(line.format(**results, **sizes))
    for name, value in results["misbehaviour"].items():
        print("  {:<48} {}".format(name, value))
    for problem in tally.problems:
        print("  ! " + problem)
    print("PASS" if ok else "FAIL")
    if arguments.json:
        print(json.dumps(results, sort_keys=True))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
