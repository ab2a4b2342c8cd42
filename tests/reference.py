"""
The differential harness: a real memcached to compare against, myproto served
on a loopback port the same way, a client that sends either a byte stream and
collects the whole reply, and the normalisation that compares two replies.

The differential tests run memcached as a child process and myproto inside
the trial process, on the real reactor; so everything here that waits does so
with L{Deferred}s, never with blocking sockets or sleeps in the reactor
thread.

memcached is started with C{subprocess.Popen} rather than
C{reactor.spawnProcess}: a shared instance outlives single tests, and a child
the reactor knew about would be reported (and killed) as a dirty reactor
after each one.

How a reply is known to be complete:

  - a stream that ends in command state gets C{quit\\r\\n} appended; both
    servers close the connection once they have answered everything before
    it, so the reply is everything received until the connection closes;
  - a stream that deliberately ends mid data block, or that the server is
    expected to drop, is not followed by C{quit}; the reply is everything
    received until the server closes or nothing has arrived for a short quiet
    period, whichever comes first.

Waits are bounded and fail loudly: a server that neither closes after
C{quit} nor reaches a sync point (L{WaitUntil}) within L{IDLE_LIMIT} seconds
of silence raises L{AssertionError} with what it had sent, rather than
handing back a partial reply.  The one time window that is not a failure is
the quiet period after a stream without C{quit}, which is how "nothing more
is answered" is observed; a caller that knows how much reply is due passes
C{until} so that the quiet period only starts once it has arrived.
"""

from __future__ import annotations

import atexit
import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Optional, Sequence, Union

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest

from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore
from tests.helpers import binaryFrames, waitFor

MEMCACHED_MISSING = "memcached binary not on PATH; .ci/run installs it"
MEMCCAPABLE_MISSING = "memccapable binary not on PATH; .ci/run installs it"

HOST = "127.0.0.1"

#: Seconds to wait for a new memcached to accept connections.
START_LIMIT = 10.0

#: Seconds of silence after which an exchange fails: the server neither
#: answers nor closes.  Generous, since a passing exchange never waits it out.
IDLE_LIMIT = 10.0

#: Seconds of silence that end a reply to a stream that is not followed by
#: C{quit} (after C{until}, if given, holds).
QUIET_PERIOD = 0.3

#: Seconds between the pieces of a chunked write.
CHUNK_DELAY = 0.002

QUIT = b"quit\r\n"

#: memcached's background LRU threads briefly take references to items, and
#: an item someone holds is not incremented in place (C{ma} and C{incr} store
#: a new item, which loses the old one's fetched, stale and token flags).
#: That race makes memcached itself nondeterministic, so the meta tests run
#: memcached with these options, without those threads.  (Without them
#: memcached's LRU is not segmented, which changes only when the last-access
#: time moves: by then the tests have long ended.)
NO_LRU_THREADS = ["-o", "no_lru_maintainer,no_lru_crawler"]


def _reactor() -> Any:
    """
    @return: the global reactor, imported only when first needed.
    """
    from twisted.internet import reactor

    return reactor


def findMemcached() -> Optional[str]:
    """
    @return: the path of the C{memcached} binary on C{PATH}, or L{None}.
    """
    return shutil.which("memcached")


def requireMemcached() -> str:
    """
    @return: the path of the C{memcached} binary.
    @raise SkipTest: if there is none on C{PATH}.
    """
    path = findMemcached()
    if path is None:
        raise SkipTest(MEMCACHED_MISSING)
    return path


def freePort() -> int:
    """
    Ask the kernel for a TCP port on 127.0.0.1 that nothing listens on now.

    The port is released before it is returned, so another process may take
    it first; L{MemcachedServer.start} retries with a new port when that
    happens.

    @return: a port number.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])
    finally:
        probe.close()


def memcachedArguments(binary: str, port: int) -> list[str]:
    """
    The command line of a memcached that matches myproto's defaults
    (L{myproto.config.ServerSettings}): 64 MiB of memory, 1 MiB items, 1024
    connections, CAS on, no UDP, loopback only.

    @param binary: the path of the memcached binary.
    @param port: the TCP port to listen on.
    @return: the argument vector.
    """
    argv = [
        binary,
        "-U", "0",
        "-l", HOST,
        "-p", str(port),
        "-m", "64",
        "-I", "1m",
        "-c", "1024",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv += ["-u", "root"]
    return argv


class MemcachedStartError(Exception):
    """
    memcached exited, or did not accept connections in time.
    """


@dataclass
class MemcachedServer:
    """
    One memcached child process.

    @ivar binary: the path of the memcached binary.
    @ivar host: the address it listens on.
    @ivar port: the port it listens on, once started.
    @ivar options: arguments added to L{memcachedArguments}'s.
    """

    binary: str
    host: str = HOST
    port: int = 0
    options: Sequence[str] = ()
    _process: Optional["subprocess.Popen[bytes]"] = field(default=None, repr=False)
    _stderr: Optional[IO[bytes]] = field(default=None, repr=False)

    def start(self, reactor: Any = None) -> Deferred[None]:
        """
        Start memcached on a free port and wait until it accepts connections.

        @param reactor: the reactor to poll with.
        @return: a L{Deferred} that fires when it is ready.
        """
        return ensureDeferred(self._start(reactor or _reactor()))

    async def _start(self, reactor: Any) -> None:
        lastError = "never started"
        for attempt in range(3):
            await self._stop(reactor)
            self.port = freePort()
            self._stderr = tempfile.TemporaryFile()
            self._process = subprocess.Popen(
                memcachedArguments(self.binary, self.port) + list(self.options),
                stdin=subprocess.DEVNULL,
                stdout=self._stderr,
                stderr=self._stderr,
            )
            deadline = reactor.seconds() + START_LIMIT
            while reactor.seconds() < deadline:
                if self._process.poll() is not None:
                    lastError = "memcached exited with {}: {!r}".format(
                        self._process.returncode, self._output()
                    )
                    break
                if await _accepts(reactor, self.host, self.port):
                    if self._process.poll() is None:
                        return
                await deferLater(reactor, 0.01, lambda: None)
            else:
                lastError = "memcached did not accept connections in {}s".format(
                    START_LIMIT
                )
        await self._stop(reactor)
        raise MemcachedStartError(lastError)

    def _output(self) -> bytes:
        if self._stderr is None:
            return b""
        self._stderr.seek(0)
        return self._stderr.read()[-2000:]

    def stop(self, reactor: Any = None) -> Deferred[None]:
        """
        Stop memcached and reap it.

        @param reactor: the reactor to poll with.
        @return: a L{Deferred} that fires once the process has exited.
        """
        return ensureDeferred(self._stop(reactor or _reactor()))

    async def _stop(self, reactor: Any) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            # SIGKILL: there is nothing to save, and memcached takes about a
            # second to finish after SIGTERM (its LRU maintainer sleeps).
            process.kill()
            await waitFor(
                lambda: process.poll() is not None, 5.0, "memcached to exit after SIGKILL",
                reactor, interval=0.005,
            )
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stopNow(self) -> None:
        """
        Stop memcached without a reactor (for interpreter exit).
        """
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


async def _accepts(reactor: Any, host: str, port: int) -> bool:
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=1)
    try:
        protocol = await connectProtocol(endpoint, Protocol())
    except ConnectError:
        return False
    if protocol.transport is None:
        raise AssertionError("connected, but the protocol has no transport")
    done: Deferred[None] = Deferred()
    protocol.connectionLost = lambda reason: done.callback(None)  # type: ignore[method-assign]
    protocol.transport.loseConnection()
    await done
    return True


async def startMemcached(
    testCase: Any, reactor: Any = None, options: Sequence[str] = ()
) -> MemcachedServer:
    """
    Start a fresh memcached for one test and stop it when the test ends.

    @param testCase: the trial test case; its cleanup stops the server.
    @param reactor: the reactor to poll with.
    @param options: arguments added to L{memcachedArguments}'s.
    @return: the running server.
    @raise SkipTest: if memcached is not on C{PATH}.
    """
    server = MemcachedServer(requireMemcached(), options=options)
    await server.start(reactor)
    testCase.addCleanup(server.stop, reactor)
    return server


_shared: dict[str, MemcachedServer] = {}


async def sharedMemcached(reactor: Any = None) -> MemcachedServer:
    """
    The memcached that the corpus tests share, started on first use and
    stopped when the interpreter exits (or by L{stopSharedMemcached}).

    Tests that share it must not depend on what other tests stored: each
    should start with L{resetMemcached}.

    @param reactor: the reactor to poll with.
    @return: the running server.
    @raise SkipTest: if memcached is not on C{PATH}.
    """
    server = _shared.get("server")
    if server is not None and server._process is not None:
        if server._process.poll() is None:
            return server
    server = MemcachedServer(requireMemcached())
    await server.start(reactor)
    _shared["server"] = server
    return server


@atexit.register
def stopSharedMemcached() -> None:
    """
    Stop the shared memcached, if it runs.
    """
    server = _shared.pop("server", None)
    if server is not None:
        server.stopNow()


#: What L{resetMemcached} sends, and what memcached answers.
RESET_STREAM = b"flush_all\r\nverbosity 0\r\nstats detail off\r\n"
RESET_REPLY = b"OK\r\nOK\r\nOK\r\n"


async def resetMemcached(server: MemcachedServer, reactor: Any = None) -> None:
    """
    Bring a shared memcached back to a blank state: no items (an immediate
    C{flush_all} also cancels any delayed one), verbosity 0, prefix stats
    off.  Counters are not reset.

    @param server: the server to reset.
    @param reactor: the reactor to use.
    """
    reply = await exchange(server.host, server.port, [RESET_STREAM], reactor=reactor)
    if reply.data != RESET_REPLY:
        raise AssertionError("memcached did not reset: {!r}".format(reply.data))


# ---------------------------------------------------------------------------
# myproto, served the same way.


async def listenMyproto(
    settings: Optional[ServerSettings] = None,
) -> tuple[int, Callable[[], Deferred[None]]]:
    """
    Serve a new myproto, with a new store, on a free loopback port.

    @param settings: its settings; memcached's defaults if L{None}.
    @return: the port number, and a function that stops the server once
        every connection to it has closed.
    """
    from twisted.internet import reactor

    factory = WrappingFactory(
        CacheServerFactory(MemoryStore(reactor), reactor, settings or ServerSettings())
    )
    port = await serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(factory)

    async def stop() -> None:
        # The client has closed or been closed; the server's side normally
        # notices at once.  One that does not (say, it stopped reading) is
        # aborted, so that it does not outlive the test: the first wait is
        # a grace period, the second must succeed.
        try:
            await waitFor(lambda: not factory.protocols, 1.0, "myproto to see the client go",
                          reactor, interval=0.005)
        except AssertionError:
            for wrapper in list(factory.protocols):
                wrapper.transport.abortConnection()
            await waitFor(lambda: not factory.protocols, 5.0,
                          "myproto's aborted connections to close", reactor, interval=0.005)
        await port.stopListening()

    return port.getHost().port, lambda: Deferred.fromCoroutine(stop())


# ---------------------------------------------------------------------------
# The client.


@dataclass(frozen=True)
class WaitUntil:
    """
    A sync point in a stream: stop sending until what has been received so
    far satisfies C{predicate}, or the server closes (the rest of the stream
    is then not sent).  Silence for L{IDLE_LIMIT} seconds before either
    fails the exchange.

    @ivar predicate: called with all bytes received so far.
    """

    predicate: Callable[[bytes], bool]


def expectSuffix(suffix: bytes) -> WaitUntil:
    """
    @return: a sync point that waits until the reply so far ends with
        C{suffix}.
    """
    return WaitUntil(lambda received: received.endswith(suffix))


def expectCount(marker: bytes, count: int) -> WaitUntil:
    """
    @return: a sync point that waits until C{marker} occurs C{count} times in
        the reply so far.
    """
    return WaitUntil(lambda received: received.count(marker) >= count)


@dataclass(frozen=True)
class Pause:
    """
    A pause in a stream, so that the server reads what came before on its
    own.

    @ivar seconds: how long to wait before sending the rest.
    """

    seconds: float


#: One piece of a stream: bytes to send; a function that makes the bytes to
#: send from everything received so far (used to echo a CAS unique back);
#: a sync point; or a pause.
Part = Union[bytes, Callable[[bytes], bytes], WaitUntil, Pause]


@dataclass(frozen=True)
class Reply:
    """
    Everything a server sent back on one connection.

    @ivar data: the bytes received.
    @ivar closedByServer: whether the server closed (or reset) the
        connection; L{False} if the client gave up waiting and closed it.
    """

    data: bytes
    closedByServer: bool


class _Collector(Protocol):
    """
    Keeps what arrives, when it last arrived, and whether the connection has
    gone.
    """

    def __init__(self, reactor: IReactorTime) -> None:
        self._clock = reactor
        self.received: list[bytes] = []
        self.lastActivity = reactor.seconds()
        self.closed = False
        self._waiters: list[Deferred[None]] = []

    def data(self) -> bytes:
        return b"".join(self.received)

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        self.lastActivity = self._clock.seconds()
        self._wake()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def activity(self, limit: float) -> Deferred[None]:
        """
        @return: a L{Deferred} that fires when data arrives, the connection
            closes, or C{limit} seconds pass.
        """
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        call = self._clock.callLater(limit, self._timeUp, waiter)
        waiter.addBoth(_cancelCall, call)
        return waiter

    def _timeUp(self, waiter: Deferred[None]) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
            waiter.callback(None)


def _cancelCall(result: object, call: Any) -> object:
    if call.active():
        call.cancel()
    return result


def _chunks(data: bytes, chunking: Optional[random.Random]) -> list[bytes]:
    if chunking is None or len(data) < 2:
        return [data]
    pieces = chunking.randint(2, min(8, len(data)))
    cuts = sorted(chunking.sample(range(1, len(data)), pieces - 1))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def exchange(
    host: str,
    port: int,
    parts: Sequence[Part],
    quit: bool = True,
    chunking: Optional[random.Random] = None,
    reactor: Any = None,
    until: Optional[Callable[[bytes], bool]] = None,
) -> Deferred[Reply]:
    """
    Open a connection, send a stream, and collect the whole reply.

    @param host: the server's address.
    @param port: the server's port.
    @param parts: the stream, in pieces (see L{Part}).
    @param quit: if true, append C{quit\\r\\n} and read until the server
        closes; if false, read until the server closes or has been quiet for
        L{QUIET_PERIOD} seconds after the last write (and after C{until}
        holds).
    @param chunking: if given, each bytes part is written in a few random
        pieces (cut where this generator says) with a short pause between
        them; otherwise in one write.
    @param reactor: the reactor to use.
    @param until: with C{quit} false, called with what has been received:
        the reply is not complete before it returns true (or the server
        closes).
    @return: a L{Deferred} that fires with the L{Reply}.
    @raise AssertionError: (from the L{Deferred}) if the server stays silent
        for L{IDLE_LIMIT} seconds when a sync point, C{until}, or (with
        C{quit}) the server's close is due.
    """
    return ensureDeferred(
        _exchange(host, port, list(parts), quit, chunking, reactor or _reactor(), until)
    )


async def _exchange(
    host: str,
    port: int,
    parts: list[Part],
    quit: bool,
    chunking: Optional[random.Random],
    reactor: Any,
    until: Optional[Callable[[bytes], bool]] = None,
) -> Reply:
    collector = _Collector(reactor)
    await connectProtocol(TCP4ClientEndpoint(reactor, host, port, timeout=5), collector)
    transport: Any = collector.transport
    if transport is None:
        raise AssertionError("connected, but the protocol has no transport")
    # Chunked writes are small and close together: without this, Nagle's
    # algorithm and delayed ACKs add ~40 ms to each of them.
    transport.setTcpNoDelay(True)
    if quit:
        # In the same write as the end of the stream where possible: a
        # server that closes on an earlier quit with input still unread
        # sends a reset, which can take replies in flight with it.
        if parts and isinstance(parts[-1], bytes):
            parts = parts[:-1] + [parts[-1] + QUIT]
        else:
            parts = parts + [QUIT]
    for part in parts:
        if collector.closed:
            break
        if isinstance(part, WaitUntil):
            predicate = part.predicate
            await _waitFor(reactor, collector, lambda: predicate(collector.data()), "a sync point")
            continue
        if isinstance(part, Pause):
            await deferLater(reactor, part.seconds, lambda: None)
            collector.lastActivity = reactor.seconds()
            continue
        data = part if isinstance(part, bytes) else part(collector.data())
        pieces = _chunks(data, chunking)
        for index, piece in enumerate(pieces):
            if collector.closed:
                break
            transport.write(piece)
            collector.lastActivity = reactor.seconds()
            if index < len(pieces) - 1:
                await deferLater(reactor, CHUNK_DELAY, lambda: None)
    if quit:
        await _waitFor(reactor, collector, lambda: False, "the server to close after quit")
    else:
        if until is not None:
            complete = until
            await _waitFor(reactor, collector, lambda: complete(collector.data()), "the reply")
        # Nothing more is due: the quiet period is how "nothing more is
        # answered" is observed.
        await _quiet(reactor, collector, QUIET_PERIOD)
    closedByServer = collector.closed
    if not collector.closed:
        transport.abortConnection()
        while not collector.closed:
            await collector.activity(IDLE_LIMIT)
    return Reply(collector.data(), closedByServer)


async def _waitFor(
    reactor: Any,
    collector: _Collector,
    condition: Callable[[], bool],
    what: str,
) -> None:
    """
    Wait until C{condition()} holds or the connection closes.

    @raise AssertionError: if nothing is sent or received for L{IDLE_LIMIT}
        seconds first.
    """
    while not collector.closed and not condition():
        remaining = collector.lastActivity + IDLE_LIMIT - reactor.seconds()
        if remaining <= 0:
            collector.transport.abortConnection()  # type: ignore[union-attr]
            raise AssertionError(
                "server silent for {}s while waiting for {}; received {!r}".format(
                    IDLE_LIMIT, what, collector.data()[-500:]
                )
            )
        await collector.activity(remaining)


async def _quiet(reactor: Any, collector: _Collector, period: float) -> None:
    """
    Wait until the connection closes or nothing has been sent or received
    for C{period} seconds.
    """
    while not collector.closed:
        remaining = collector.lastActivity + period - reactor.seconds()
        if remaining <= 0:
            return
        await collector.activity(remaining)


# ---------------------------------------------------------------------------
# Reading replies.


_VALUE = re.compile(rb"^VALUE (\S+) (\d+) (\d+)(?: (\d+))?$")


def casUniques(reply: bytes) -> list[int]:
    """
    The CAS uniques in the C{VALUE} lines of a reply, in order.

    @param reply: bytes received from a server.
    @return: the uniques (C{gets}/C{gats} lines only).
    """
    uniques = []
    for line in reply.split(b"\r\n"):
        match = _VALUE.match(line)
        if match is not None and match.group(4) is not None:
            uniques.append(int(match.group(4)))
    return uniques


def lastCas(reply: bytes) -> int:
    """
    @param reply: bytes received from a server.
    @return: the CAS unique of the last C{VALUE} line that has one, or 0 if
        none has.
    """
    uniques = casUniques(reply)
    return uniques[-1] if uniques else 0


#: General-stats names myproto must report (in memcached's order, with
#: others of memcached's allowed in between).
CORE_STATS = (
    "pid uptime time version pointer_size rusage_user rusage_system "
    "max_connections curr_connections total_connections rejected_connections "
    "connection_structures cmd_get cmd_set cmd_flush cmd_touch cmd_meta "
    "get_hits get_misses get_expired get_flushed delete_misses delete_hits "
    "incr_misses incr_hits decr_misses decr_hits cas_misses cas_hits "
    "cas_badval touch_hits touch_misses store_too_large store_no_memory "
    "auth_cmds auth_errors bytes_read bytes_written limit_maxbytes "
    "accepting_conns threads bytes curr_items total_items expired_unfetched "
    "evicted_unfetched evicted_active evictions reclaimed"
).split()

#: C{stats settings} values that must match when myproto reports the name.
EXACT_SETTINGS = (
    "maxbytes maxconns verbosity evictions cas_enabled item_size_max "
    "shutdown_command flush_enabled detail_enabled"
).split()

#: What L{normalise} puts in place of a block of STAT lines.
STATS_BLOCK = b"<stats>"

_VALUE_LINE = re.compile(rb"^(VALUE [^ ]+ \d+ )(\d+)(?: (\d+))?$")
_VA_LINE = re.compile(rb"^VA (\d+)(?: .*)?$")


@dataclass
class Normalised:
    """
    A reply with the server-specific parts taken out.

    @ivar lines: reply lines (CRLF removed) and value blocks, normalised; a
        block of STAT lines is one element, L{STATS_BLOCK}.
    @ivar statBlocks: the STAT blocks, each a list of (name, value).
    """

    lines: list[bytes]
    statBlocks: list[list[tuple[bytes, bytes]]]


def normalise(data: bytes) -> Normalised:
    """
    Split a reply into lines and value blocks and normalise CAS uniques,
    versions and STAT blocks.  Never raises: what cannot be parsed is kept
    as it is.

    @param data: the bytes a server sent.
    @return: the normalised reply.
    """
    lines: list[bytes] = []
    blocks: list[list[tuple[bytes, bytes]]] = []
    uniques: dict[bytes, int] = {}
    position = 0
    while position < len(data):
        end = data.find(b"\r\n", position)
        if end < 0:
            lines.append(b"<no CRLF> " + data[position:])
            break
        line = data[position:end]
        position = end + 2
        value = _VALUE_LINE.match(line)
        meta = _VA_LINE.match(line)
        if value is not None or meta is not None:
            if value is not None:
                size = int(value.group(2))
                if value.group(3) is not None:
                    number = uniques.setdefault(value.group(3), len(uniques))
                    line = value.group(1) + value.group(2) + b" <cas#%d>" % (number,)
            else:
                if meta is None:
                    raise AssertionError("neither VALUE nor VA: {!r}".format(line))
                size = int(meta.group(1))
            lines.append(line)
            lines.append(b"<data> " + data[position : position + size + 2])
            position += size + 2
        elif line.startswith(b"VERSION "):
            lines.append(b"VERSION <version>")
        elif line.startswith(b"STAT "):
            block = []
            while line.startswith(b"STAT "):
                name, _, stat = line[5:].partition(b" ")
                block.append((name, stat))
                end = data.find(b"\r\n", position)
                if end < 0:
                    line = b""
                    break
                line = data[position:end]
                position = end + 2
            lines.append(STATS_BLOCK)
            blocks.append(block)
            if line:
                lines.append(line)
        else:
            lines.append(line)
    return Normalised(lines, blocks)


def statProblems(
    expected: list[tuple[bytes, bytes]], got: list[tuple[bytes, bytes]]
) -> list[str]:
    """
    Check one of myproto's STAT blocks against memcached's.

    @return: what is wrong, if anything.
    """
    problems = []
    names = [name for name, _ in expected]
    gotNames = [name for name, _ in got]
    if len(set(gotNames)) != len(gotNames):
        problems.append("duplicate names: {}".format(gotNames))
    remaining = iter(names)
    for name in gotNames:
        if name not in remaining:
            problems.append(
                "{!r} is not one of memcached's names, or is out of memcached's order".format(
                    name
                )
            )
            break
    if names and names[0] == b"pid":
        missing = [n for n in CORE_STATS if n.encode() not in gotNames]
        if missing:
            problems.append("missing general stats: {}".format(" ".join(missing)))
    if names and names[0] == b"maxbytes":
        want = dict(expected)
        for name, value in got:
            if name.decode() in EXACT_SETTINGS and want.get(name) != value:
                problems.append(
                    "stats settings {}: memcached {!r}, myproto {!r}".format(
                        name.decode(), want.get(name), value
                    )
                )
    return problems


# ---------------------------------------------------------------------------
# The binary protocol and SASL.

#: A binary stream's responses: each as its header fields (a non-zero CAS
#: numbered by first appearance) and body, the bytes after the last whole
#: one, and whether the server closed.
NormalBinary = tuple[list[tuple[object, ...]], bytes, bool]


def normaliseBinary(data: bytes, closed: bool) -> NormalBinary:
    """
    @return: the responses with CAS values numbered by first appearance,
        the bytes after the last whole response, and whether the server
        closed.
    """
    frames, rest = binaryFrames(data)
    seen: dict[int, int] = {}
    normal: list[tuple[object, ...]] = []
    for fields, body in frames:
        cas = fields[8]
        if cas:
            cas = seen.setdefault(cas, len(seen) + 1)
        normal.append(fields[:8] + ("cas#%d" % (cas,) if cas else 0, body))
    return normal, rest, closed


def afterBinaryResponses(count: int) -> WaitUntil:
    """
    @return: a sync point that waits for C{count} whole binary responses.
    """
    return WaitUntil(lambda received: len(binaryFrames(received)[0]) >= count)


async def binaryMismatch(
    name: str,
    parts: list[Part],
    expected: NormalBinary,
    chunkings: Sequence[Optional[random.Random]],
    settings: Any = None,
) -> Optional[str]:
    """
    Send a binary stream to a fresh myproto once per chunking and compare
    each normalised answer with memcached's.

    @param expected: memcached's answer, through L{normaliseBinary}.
    @return: L{None}, or a description of the first answer that differs.
    """
    host = "127.0.0.1"
    for chunking in chunkings:
        port, stop = await listenMyproto(settings)
        try:
            ours = await exchange(host, port, parts, quit=False, chunking=chunking)
        finally:
            await stop()
        actual = normaliseBinary(ours.data, ours.closedByServer)
        if actual != expected:
            return "{} ({}):\n  memcached {!r}\n  myproto   {!r}".format(
                name, "whole" if chunking is None else "chunked", expected, actual
            )
    return None


def memcachedSaslConfiguration(directory: Any, users: Sequence[tuple[bytes, bytes]]) -> str:
    """
    Write a Cyrus SASL configuration for memcached's C{-S}: C{PLAIN} only,
    with these users in a sasldb that C{saslpasswd2} (Debian's
    C{sasl2-bin}) makes.  memcached reads it from the directory named by
    C{SASL_CONF_PATH}.

    @param directory: a L{FilePath} to write in; made if need be.
    @return: the directory's path, for C{SASL_CONF_PATH}.
    @raise AssertionError: without C{saslpasswd2}.
    """
    saslpasswd2 = shutil.which("saslpasswd2")
    if saslpasswd2 is None:
        raise AssertionError("saslpasswd2 is missing: install Debian's sasl2-bin (.ci/run does)")
    directory.makedirs(ignoreExistingDirectory=True)
    database = directory.child("sasldb2")
    for user, password in users:
        subprocess.run(
            [saslpasswd2, "-p", "-c", "-a", "memcached", "-f", database.path, user.decode()],
            input=password, check=True, timeout=30,
        )
    directory.child("memcached.conf").setContent(
        b"mech_list: plain\nsasldb_path: " + database.path.encode() + b"\n"
    )
    return str(directory.path)
