"""
What timing every command costs: the same pipelined reads through one
connection, with C{--metrics}' per-command timing off and on.

    python bench/metrics_overhead.py [--rounds N]

The connection is driven in-process through a transport that discards what
it is given, so the numbers are the server's own CPU time per command (no
network, no reactor).  Off and on alternate, round after round, and the
fastest round of each is kept, which is the figure least disturbed by other
work on the machine.  The last line is the timing wrapper alone, around a
command that does nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock

from myproto import metrics
from myproto.wire import classic
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore

KEYS = 1000


class NullTransport:
    """
    Takes replies and drops them.
    """

    disconnecting = False

    def write(self, data: bytes) -> None:
        pass

    def writeSequence(self, data: Any) -> None:
        pass

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 40000)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 11211)

    def loseConnection(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


def connection(timed: bool) -> Any:
    clock = Clock()
    factory = CacheServerFactory(MemoryStore(clock), clock)
    if timed:
        metrics.enableTimings(factory.cache)
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(NullTransport())
    protocol.dataReceived(
        b"".join(b"set key:%06d 0 0 10\r\n0123456789\r\n" % (i,) for i in range(KEYS))
    )
    return protocol


WORKLOADS = {
    "get, 1 per read": ([b"get key:%06d\r\n" % (i % KEYS,) for i in range(20000)], 1),
    "get, 20 per read": (
        [b"".join(b"get key:%06d\r\n" % ((i + j) % KEYS,) for j in range(20)) for i in range(1000)],
        20,
    ),
    "set, 1 per read": (
        [b"set key:%06d 0 0 10\r\n0123456789\r\n" % (i % KEYS,) for i in range(20000)],
        1,
    ),
}


def nanosecondsPerCommand(protocol: Any, reads: list[bytes], perRead: int) -> float:
    gc.disable()
    try:
        start = time.perf_counter()
        for data in reads:
            protocol.dataReceived(data)
        elapsed = time.perf_counter() - start
    finally:
        gc.enable()
    return elapsed / (len(reads) * perRead) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    rounds = parser.parse_args().rounds
    for name, (reads, perRead) in WORKLOADS.items():
        results: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for timed in (False, True):
                results[timed].append(nanosecondsPerCommand(connection(timed), reads, perRead))
        off, on = min(results[False]), min(results[True])
        print(
            "%-18s off %6.0f ns/command, on %6.0f: %+5.0f ns (%+.1f%%)"
            % (name, off, on, on - off, (on - off) / off * 100)
        )
    timings = metrics.CommandTimings()
    request = classic.VersionRequest()

    def nothing(request: Any, cache: Any) -> list[bytes]:
        return []

    count = 1_000_000
    bare, wrapped = [], []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(count):
            nothing(request, None)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(count):
            timings.time(nothing, request, None)  # type: ignore[arg-type]
        wrapped.append(time.perf_counter() - start)
    print("timing wrapper alone: %.0f ns per command" % ((min(wrapped) - min(bare)) / count * 1e9))


if __name__ == "__main__":
    main()
