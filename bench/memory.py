"""
What items and idle connections cost in memory: myproto against memcached,
both started in the same run with the same limits, 127.0.0.1 only.

    python bench/memory.py                     # every part, about 3 minutes
    python bench/memory.py --only fill --sizes 100
    python bench/memory.py --python /usr/bin/pypy3 --only growth

Parts:

- C{fill}: start each server with C{-m 64}, store twice as many items as
  memcached can hold (pipelined sets, every one must be C{STORED}), and
  report the items still held, the resident memory (RSS), and RSS over the
  64 MiB limit.  One run per value size (100 B, 1 KiB, 64 KiB).
- C{growth}: RSS growth per stored 100 B item, 200,000 items, C{-m 1024}
  (nothing evicted): bench/run.py's workload (f).
- C{idle}: RSS growth per connection for 10,000 idle connections (the soft
  open-file limit is raised here; the hard one must allow 10,100).

Memory is read from C{/proc/PID/status} (C{VmRSS}); CPU from
C{/proc/PID/stat}, so a loaded machine changes the time, not the numbers.
"""

from __future__ import annotations

import argparse
import resource
import socket
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen  # noqa: E402
import servers  # noqa: E402

SIZES = (100, 1024, 65536)
LIMIT_MB = 64
GROWTH_ITEMS = 200_000
IDLE_CONNECTIONS = 10_000


def start(kind: type[servers.Server], workdir: Path, python: str, memory: int) -> servers.Server:
    # The servers module reads its limit when it builds the command line.
    servers.MEMORY_MB = memory
    server = kind(workdir, None, python=python) if kind is servers.Myproto else kind(workdir, None)
    server.start()
    return server


def settle(server: servers.Server) -> int:
    """
    @return: the RSS once the server has been quiet for a moment.
    """
    time.sleep(0.5)
    return server.rss()


def fill(sock: socket.socket, count: int, size: int, batch: int) -> int:
    """
    Store C{count} items of C{size} bytes, C{batch} pipelined sets at a
    time.

    @return: how many sets were refused (memcached, pressed hard at a small
        C{-m}, now and then answers C{SERVER_ERROR out of memory storing
        object} while its LRU tail is busy).
    """
    data = loadgen.value(size)
    refused = 0
    done = 0
    while done < count:
        n = min(batch, count - done)
        sock.sendall(b"".join(loadgen.setCommand(loadgen.key(done + i), data) for i in range(n)))
        replies = loadgen.readUntil(sock, b"\r\n", n)
        stored = replies.count(loadgen.STORED)
        if stored + replies.count(b"SERVER_ERROR out of memory storing object\r\n") != n:
            raise SystemExit("bench: unexpected replies: %r" % (replies[:200],))
        refused += n - stored
        done += n
    return refused


def fillPart(workdir: Path, python: str, size: int) -> list[str]:
    count = int(2 * LIMIT_MB * 1024 * 1024 / (size + 70))
    rows = []
    for kind in (servers.Memcached, servers.Myproto):
        server = start(kind, workdir, python, LIMIT_MB)
        try:
            before = server.rss()
            cpu = server.cpuSeconds()
            sock = loadgen.connect(server.port, None)
            refused = fill(sock, count, size, 100 if size < 4096 else 10)
            sock.close()
            rss = settle(server)
            cpu = server.cpuSeconds() - cpu
            stats = server.stats()
            rows.append(
                "| {} B | {} | {:,} | {:,} | {:,} | {:.1f} | {:.1f} | {:.2f} | {:.1f} |".format(
                    size,
                    server.name,
                    int(stats["curr_items"]),
                    int(stats["evictions"]),
                    refused,
                    before / 2**20,
                    rss / 2**20,
                    rss / (LIMIT_MB * 2**20),
                    cpu / count * 1e6,
                )
            )
            print(rows[-1], flush=True)
        finally:
            server.stop()
    return rows


def growthPart(workdir: Path, python: str) -> list[str]:
    rows = []
    for kind in (servers.Memcached, servers.Myproto):
        server = start(kind, workdir, python, 1024)
        try:
            sock = loadgen.connect(server.port, None)
            loadgen.fill(sock, 1, 100, 1, start=GROWTH_ITEMS)
            before = settle(server)
            cpu = server.cpuSeconds()
            loadgen.fill(sock, GROWTH_ITEMS, 100, 100)
            cpu = server.cpuSeconds() - cpu
            after = settle(server)
            sock.close()
            rows.append(
                "| {} | {:.0f} | {:.1f} |".format(
                    server.name, (after - before) / GROWTH_ITEMS, cpu / GROWTH_ITEMS * 1e6
                )
            )
            print(rows[-1], flush=True)
        finally:
            server.stop()
    return rows


def idlePart(workdir: Path, python: str, count: int) -> list[str]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Each side holds one descriptor per connection: the client here, the
    # server in its own process (which inherits this limit).
    wanted = count + 100
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
        except (ValueError, OSError):
            raise SystemExit("bench: the open-file hard limit {} is below {}".format(hard, wanted))
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    rows = []
    for kind in (servers.Memcached, servers.Myproto):
        server = start(kind, workdir, python, 64)
        try:
            before = settle(server)
            opened = []
            for _ in range(count):
                sock = socket.create_connection((servers.HOST, server.port))
                opened.append(sock)
            deadline = time.monotonic() + 60
            while int(server.stats()["curr_connections"]) < count and time.monotonic() < deadline:
                time.sleep(0.1)
            after = settle(server)
            held = int(server.stats()["curr_connections"])
            rows.append(
                "| {} | {:,} | {:.2f} |".format(server.name, held, (after - before) / count / 1024)
            )
            print(rows[-1], flush=True)
            for sock in opened:
                sock.close()
        finally:
            server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run myproto with")
    parser.add_argument("--only", default="fill,growth,idle", help="parts to run, comma-separated")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="value sizes for fill")
    parser.add_argument("--connections", type=int, default=IDLE_CONNECTIONS)
    args = parser.parse_args()
    parts = set(args.only.split(","))
    with TemporaryDirectory() as directory:
        workdir = Path(directory)
        if "fill" in parts:
            print("\n-m {} filled with twice what memcached holds:\n".format(LIMIT_MB))
            print("| value | server | items held | evictions | refused | RSS empty (MiB) | RSS filled (MiB) | RSS / -m | CPU µs/set |")
            print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
            for size in map(int, args.sizes.split(",")):
                fillPart(workdir, args.python, size)
        if "growth" in parts:
            print("\nRSS growth per stored 100 B item ({:,} items, -m 1024):\n".format(GROWTH_ITEMS))
            print("| server | B/item | CPU µs/set |")
            print("| --- | --- | --- |", flush=True)
            growthPart(workdir, args.python)
        if "idle" in parts:
            print("\n{:,} idle connections:\n".format(args.connections))
            print("| server | connections | KiB/conn |")
            print("| --- | --- | --- |", flush=True)
            idlePart(workdir, args.python, args.connections)


if __name__ == "__main__":
    main()
