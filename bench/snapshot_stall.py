"""
How long a client waits while the server saves a snapshot.

Starts myproto with a snapshot file and a short save interval on a free
127.0.0.1 port, stores N items (default 500,000 of 100 bytes), then sends gets
one at a time for a fixed time and reports the slowest replies, so the worst
stall a client sees during saves can be compared with the usual latency.

    python bench/snapshot_stall.py [--items 500000] [--seconds 20] [--interval 3]

Bounded: the load stops after --seconds, and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from servers import fill, freePort, readUntil, waitForPort

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--items", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=3.0)
    options = parser.parse_args()

    port = freePort()
    with tempfile.TemporaryDirectory() as directory:
        snapshot = os.path.join(directory, "cache.snapshot")
        environment = dict(os.environ, PYTHONPATH=str(ROOT))
        server = subprocess.Popen(
            [sys.executable, "-m", "twisted", "myproto", "-m", "1024",
             "--listen", "tcp:%d:interface=127.0.0.1" % (port,),
             "--snapshot", snapshot, "--snapshot-interval", str(options.interval)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            waitForPort(port, time.monotonic() + 30)
            started = time.monotonic()
            fill(port, options.items)
            print("stored %d items in %.1fs" % (options.items, time.monotonic() - started))
            latencies = []
            with socket.create_connection(("127.0.0.1", port)) as connection:
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                stop = time.monotonic() + options.seconds
                number = 0
                while time.monotonic() < stop:
                    request = b"get key:%08d\r\n" % (number % options.items,)
                    sent = time.perf_counter()
                    connection.sendall(request)
                    readUntil(connection, b"END\r\n")
                    latencies.append(time.perf_counter() - sent)
                    number += 1
            saves = os.path.getsize(snapshot) if os.path.exists(snapshot) else 0
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    latencies.sort()
    count = len(latencies)
    print("gets: %d over %.0fs; snapshot file %d bytes" % (count, options.seconds, saves))
    for label, fraction in (("median", 0.5), ("p99", 0.99), ("p99.9", 0.999)):
        print("%-7s %.3f ms" % (label, latencies[int(count * fraction)] * 1000))
    print("longest %.3f ms  (the worst stall a client saw)" % (latencies[-1] * 1000,))


if __name__ == "__main__":
    main()
