"""
Load tools the benchmark needs where memcaslap has none: TLS, a burst of
idle connections, a latency probe and a bulk fill.

Each tool is a subcommand run in its own process, pinned by L{run} to the load
core, and speaks to the driver in lines: it prints C{ready} once it is set up,
waits for C{go} on its standard input (so the driver can read the server's
counters at the very start), then prints one JSON object with its result.
Every tool stops by itself: a run lasts a fixed time or a fixed count, and
every socket has a timeout.

The same code drives memcached and myproto, so whatever it costs on the client
side costs the same for both.

Only the standard library is used, so any Python 3 can run it.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import select
import selectors
import socket
import ssl
import struct
import sys
import time
from typing import Any

HOST = "127.0.0.1"

# Keys are 16 bytes, as in the memcaslap runs.
KEY_FORMAT = "key:%012d"
PROBE_KEY = b"bench:probe:0001"

STORED = b"STORED\r\n"
END = b"END\r\n"

# A connection that sees nothing for this long is stuck: give up, loudly.
SOCKET_TIMEOUT = 30.0


def key(index: int) -> bytes:
    """
    @return: the C{index}th key of the key space.
    """
    return (KEY_FORMAT % (index,)).encode("ascii")


def setCommand(name: bytes, value: bytes) -> bytes:
    """
    @return: a C{set} of C{value} under C{name}, data block included.
    """
    return b"set %s 0 0 %d\r\n%s\r\n" % (name, len(value), value)


def value(size: int) -> bytes:
    """
    @return: C{size} bytes of printable filler without CR or LF.
    """
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return (alphabet * (size // len(alphabet) + 1))[:size]


def emit(result: dict[str, Any]) -> None:
    """
    Hand one JSON result line to the driver.
    """
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def handshake() -> None:
    """
    Say C{ready}, then wait (at most a minute) for the driver's C{go}.
    """
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    readable, _, _ = select.select([sys.stdin], [], [], 60.0)
    if not readable or sys.stdin.readline().strip() != "go":
        raise SystemExit("loadgen: no 'go' from the driver")


def raiseFileLimit(needed: int) -> None:
    """
    Raise the soft limit on open files to at least C{needed}, if the hard limit
    allows it (the driver raises the hard limit when it runs as root).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def clientContext() -> ssl.SSLContext:
    """
    A TLS client context for the benchmark's self-signed certificate.

    Verification is off: the certificate is made fresh for each run and both
    servers present the same one, so checking it would prove nothing here.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect(port: int, context: ssl.SSLContext | None) -> socket.socket:
    """
    Open one blocking connection (TLS handshake done, if any).
    """
    sock = socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is not None:
        sock = context.wrap_socket(sock)
    return sock


def readUntil(sock: socket.socket, ending: bytes, count: int = 1) -> bytes:
    """
    Read from a blocking socket until C{ending} has been seen C{count} times.
    """
    data = b""
    while data.count(ending) < count:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def fill(sock: socket.socket, count: int, size: int, batch: int, start: int = 0) -> None:
    """
    Store C{count} items of C{size} bytes, C{batch} pipelined sets at a time,
    and check that every one was C{STORED}.
    """
    data = value(size)
    done = 0
    while done < count:
        n = min(batch, count - done)
        sock.sendall(b"".join(setCommand(key(start + done + i), data) for i in range(n)))
        replies = readUntil(sock, b"\r\n", n)
        if replies != STORED * n:
            raise SystemExit("loadgen: a set was refused: %r" % (replies[:200],))
        done += n


class MixConnection:
    """
    One connection of the get/set mix with at most C{depth} requests in flight.

    Replies are counted, not parsed: every value has the same size, so a get's
    reply ends in C{END} and a set's in C{STORED}, and neither can appear in a
    value.  Requests are built once, up front, to keep the client's cost per
    request low.
    """

    def __init__(self, sock: socket.socket, requests: list[bytes], depth: int, offset: int) -> None:
        self.sock = sock
        self.requests = requests
        self.depth = depth
        self.counter = offset
        self.inFlight = 0
        self.received = b""
        self.completed = 0
        self.misses = 0
        self.outgoing = b""

    def queueRequests(self) -> None:
        """
        Fill the window with the next requests of the shared cycle.
        """
        n = self.depth - self.inFlight
        if n <= 0:
            return
        start = self.counter % len(self.requests)
        chunk = self.requests[start : start + n]
        if len(chunk) < n:
            chunk = chunk + self.requests[: n - len(chunk)]
        self.counter += n
        self.inFlight += n
        self.outgoing += b"".join(chunk)

    def flush(self) -> None:
        """
        Write what is queued, as far as the socket takes it.
        """
        while self.outgoing:
            try:
                sent = self.sock.send(self.outgoing)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            self.outgoing = self.outgoing[sent:]

    def readReplies(self) -> None:
        """
        Take what arrived and count the replies it completes.
        """
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.received += chunk
            if not isinstance(self.sock, ssl.SSLSocket) or not self.sock.pending():
                break
        received = self.received
        if received.endswith(END) or received.endswith(STORED):
            # The common case: everything asked for so far is answered.
            last = len(received)
        else:
            last = max(received.rfind(STORED) + len(STORED), received.rfind(END) + len(END))
            if last < len(END):
                return
        done = received.count(STORED, 0, last)
        ended = received.count(END, 0, last)
        self.misses += ended - received.count(b"VALUE ", 0, last)
        self.received = received[last:]
        self.completed += done + ended
        self.inFlight -= done + ended


def mixRequests(keys: int, setEvery: int, size: int) -> list[bytes]:
    """
    The cycle of requests the mix sends: keys in a shuffled order (the same
    for every run), every C{setEvery}th request a set of C{size} bytes.
    """
    data = value(size)
    order = list(range(keys))
    random.Random(6).shuffle(order)
    requests = []
    for i, index in enumerate(order):
        name = key(index)
        if (i + 1) % setEvery == 0:
            requests.append(setCommand(name, data))
        else:
            requests.append(b"get %s\r\n" % (name,))
    return requests


def mix(args: argparse.Namespace) -> None:
    """
    Run the get/set mix for a fixed time and report operations completed.
    """
    context = clientContext() if args.tls else None
    requests = mixRequests(args.keys, args.set_every, args.value_size)
    connections = [connect(args.port, context) for _ in range(args.connections)]
    # Every key the mix may get is stored first, so gets hit, as in memcaslap
    # (which only gets keys it has set).
    fill(connections[0], args.keys, args.value_size, 100)
    runners = []
    selector = selectors.DefaultSelector()
    for i, sock in enumerate(connections):
        sock.setblocking(False)
        runner = MixConnection(sock, requests, args.depth, i * len(requests) // len(connections))
        runners.append(runner)
        selector.register(sock, selectors.EVENT_READ, runner)
    handshake()
    cpuStart = time.process_time()
    start = time.monotonic()
    deadline = start + args.duration
    for runner in runners:
        runner.queueRequests()
        runner.flush()
    now = start
    while now < deadline:
        for selectorKey, _ in selector.select(timeout=1.0):
            runner = selectorKey.data
            runner.readReplies()
            if runner.inFlight < runner.depth:
                runner.queueRequests()
            runner.flush()
        now = time.monotonic()
    elapsed = now - start
    cpu = time.process_time() - cpuStart
    for sock in connections:
        sock.close()
    emit(
        {
            "ops": sum(r.completed for r in runners),
            "misses": sum(r.misses for r in runners),
            "seconds": elapsed,
            "clientCpu": cpu / elapsed,
        }
    )


def burst(args: argparse.Namespace) -> None:
    """
    Open C{count} connections at once and keep them open, idle, until the
    driver says C{close} (or a minute passes).

    The result gives the time from the first C{connect} until every connection
    is established on the client side, on the monotonic clock, which the driver
    shares.
    """
    raiseFileLimit(args.count + 100)
    handshake()
    epoll = select.epoll()
    sockets = {}
    start = time.monotonic()
    for _ in range(args.count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        # Close with a reset, so that 10,000 closes leave no TIME_WAIT behind
        # to use up local ports.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.connect_ex((HOST, args.port))
        sockets[sock.fileno()] = sock
        epoll.register(sock.fileno(), select.EPOLLOUT)
    pending = set(sockets)
    failed = 0
    deadline = start + SOCKET_TIMEOUT
    while pending and time.monotonic() < deadline:
        for fd, _ in epoll.poll(1.0):
            if fd in pending:
                pending.discard(fd)
                epoll.unregister(fd)
                if sockets[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    failed += 1
    connected = time.monotonic()
    emit(
        {
            "start": start,
            "connected": connected,
            "open": args.count - failed - len(pending),
            "failed": failed + len(pending),
        }
    )
    select.select([sys.stdin], [], [], 60.0)
    for sock in sockets.values():
        sock.close()
    emit({"closed": len(sockets)})


def probe(args: argparse.Namespace) -> None:
    """
    Time one C{get} at a time, every C{interval} seconds, until the driver says
    C{stop} (or a minute passes); report each send time and latency.
    """
    sock = connect(args.port, None)
    sock.sendall(setCommand(PROBE_KEY, value(100)))
    readUntil(sock, STORED)
    request = b"get %s\r\n" % (PROBE_KEY,)
    handshake()
    samples = []
    stopAt = time.monotonic() + 60.0
    while time.monotonic() < stopAt:
        sent = time.monotonic()
        sock.sendall(request)
        readUntil(sock, END)
        samples.append((sent, time.monotonic() - sent))
        readable, _, _ = select.select([sys.stdin], [], [], args.interval)
        if readable:
            break
    sock.close()
    emit({"samples": samples})


def store(args: argparse.Namespace) -> None:
    """
    Store C{count} items with pipelined sets and report how long it took.
    """
    sock = connect(args.port, None)
    # One set first, so that the connection and the first item's bookkeeping
    # are in place before the driver reads the server's memory.
    sock.sendall(setCommand(b"bench:store:first", value(args.value_size)))
    readUntil(sock, STORED)
    handshake()
    start = time.monotonic()
    fill(sock, args.count, args.value_size, args.batch)
    elapsed = time.monotonic() - start
    sock.close()
    emit({"items": args.count, "seconds": elapsed})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    mixParser = commands.add_parser("mix", help="timed get/set mix, over TCP or TLS")
    mixParser.add_argument("--port", type=int, required=True)
    mixParser.add_argument("--tls", action="store_true")
    mixParser.add_argument("--connections", type=int, default=16)
    mixParser.add_argument("--depth", type=int, default=1, help="requests in flight per connection")
    mixParser.add_argument("--duration", type=float, default=5.0)
    mixParser.add_argument("--keys", type=int, default=10000)
    mixParser.add_argument("--value-size", type=int, default=100)
    mixParser.add_argument("--set-every", type=int, default=10, help="every Nth request is a set")
    mixParser.set_defaults(run=mix)

    burstParser = commands.add_parser("burst", help="open many idle connections at once")
    burstParser.add_argument("--port", type=int, required=True)
    burstParser.add_argument("--count", type=int, default=10000)
    burstParser.set_defaults(run=burst)

    probeParser = commands.add_parser("probe", help="time single gets")
    probeParser.add_argument("--port", type=int, required=True)
    probeParser.add_argument("--interval", type=float, default=0.001)
    probeParser.set_defaults(run=probe)

    storeParser = commands.add_parser("store", help="store many items with pipelined sets")
    storeParser.add_argument("--port", type=int, required=True)
    storeParser.add_argument("--count", type=int, default=200000)
    storeParser.add_argument("--value-size", type=int, default=100)
    storeParser.add_argument("--batch", type=int, default=100)
    storeParser.set_defaults(run=store)

    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
