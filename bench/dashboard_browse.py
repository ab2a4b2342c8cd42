"""
How long a client waits for a get while the dashboard's key browser walks
the whole cache.

Starts myproto with --metrics on free 127.0.0.1 ports, stores N items
(default 100,000 of 100 bytes), then, for a fixed time each, sends gets one
at a time and times every reply: first with nobody browsing, then while
another process asks /api/keys for a new substring search (a walk of every
item) again and again, and /api/overview once a second as the open page does
(which counts item sizes by slab class, another walk, every few seconds).
Prints the gets' latency percentiles for both phases, and how long a search
of every item takes.

    python bench/dashboard_browse.py [--items 100000] [--seconds 10]

Bounded: each phase stops after --seconds, and the server is stopped at the
end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import multiprocessing
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from servers import fill, freePort, readUntil, waitForPort

ROOT = Path(__file__).resolve().parent.parent


def gets(port: int, items: int, seconds: float) -> list[float]:
    """
    @return: the latency of each get, one at a time, for C{seconds}.
    """
    latencies = []
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stop = time.monotonic() + seconds
        number = 0
        while time.monotonic() < stop:
            request = b"get key:%08d\r\n" % ((number * 7919) % items,)
            sent = time.perf_counter()
            connection.sendall(request)
            readUntil(connection, b"END\r\n")
            latencies.append(time.perf_counter() - sent)
            number += 1
    return latencies


def browse(web: int, stop: Any, results: Any) -> None:
    """
    Search every item for a new substring, one search after another, and
    ask for the overview once a second, until C{stop} is set; put each
    search's (seconds, items examined) on C{results}, then L{None}.

    Run in a process of its own, so that its parsing never holds the
    interpreter lock the timed gets need.
    """

    def fetch(path: str) -> dict[str, Any]:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (web, path), timeout=60) as answer:
            found: dict[str, Any] = json.load(answer)
            return found

    number = 0
    lastOverview = 0.0
    while not stop.is_set():
        if time.monotonic() - lastOverview >= 1:
            fetch("/api/overview?history=5")
            lastOverview = time.monotonic()
        # A query never asked before: a walk of every item.
        started = time.perf_counter()
        found = fetch("/api/keys?mode=substring&q=%d&page=%d" % (number, number % 3))
        results.put((time.perf_counter() - started, found["examined"]))
        number += 1
    results.put(None)


def report(label: str, latencies: list[float]) -> None:
    latencies = sorted(latencies)
    count = len(latencies)
    print(
        "%-16s %6d gets  median %.3f ms  p99 %.3f ms  p99.9 %.3f ms  longest %.3f ms"
        % (
            label,
            count,
            latencies[count // 2] * 1000,
            latencies[int(count * 0.99)] * 1000,
            latencies[int(count * 0.999)] * 1000,
            latencies[-1] * 1000,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    options = parser.parse_args()

    port, web = freePort(), freePort()
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    server = subprocess.Popen(
        [sys.executable, "-m", "myproto", "-m", "1024",
         "--listen", "tcp:%d:interface=127.0.0.1" % (port,),
         "--metrics", "tcp:%d:interface=127.0.0.1" % (web,)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        waitForPort(port, time.monotonic() + 30)
        waitForPort(web, time.monotonic() + 30)
        started = time.monotonic()
        fill(port, options.items)
        print("stored %d items in %.1fs" % (options.items, time.monotonic() - started))
        quiet = gets(port, options.items, options.seconds)
        stop = multiprocessing.Event()
        results: Any = multiprocessing.Queue()
        browser = multiprocessing.Process(target=browse, args=(web, stop, results), daemon=True)
        browser.start()
        busy = gets(port, options.items, options.seconds)
        stop.set()
        searches = []
        for found in iter(lambda: results.get(timeout=120), None):
            searches.append(found)
        browser.join(120)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    report("nobody browsing", quiet)
    report("while browsing", busy)
    durations = sorted(seconds for seconds, _ in searches)
    if durations:
        print(
            "%d searches of %d items each; median %.0f ms, longest %.0f ms per search"
            % (len(durations), searches[0][1], durations[len(durations) // 2] * 1000,
               durations[-1] * 1000)
        )


if __name__ == "__main__":
    main()
