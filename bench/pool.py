"""
Pools against one process: workload (a) (memcaslap, 90/10 get/set, 100 B
values, 16 connections) against

- one myproto process (C{twistd myproto});
- a pool (C{twistd myproto-pool}) of 1 and of 2 workers, reached directly
  (one memcaslap thread per worker, keys of its own: to each worker, the
  traffic of a client that hashes keys over the workers) and through its
  twemproxy;
- memcached C{-t 1} and C{-t 2}, reached directly and through a twemproxy
  started here with the pool's configuration;

all started once, measured one after another in each round (the order
turning by one each round), medians over the rounds.  Every server process
(workers, memcached, each twemproxy, the pools' supervisors) is pinned to
one core and the load to the other; CPU time comes from C{/proc} for each
process, so the figures per request hold however busy the machine is, and
the throughputs do not.

    python bench/pool.py                 # 3 rounds of 5 s: about 3 minutes
    python bench/pool.py --rounds 5 --results bench/results.md

Needs memcached and nutcracker (Debian packages C{memcached} and
C{nutcracker}) and memcaslap (C{libmemcached-tools}); uses the standard
library, L{servers}, and myproto from this working tree.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import json
import re
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402
from servers import (  # noqa: E402
    CLOCK_TICKS,
    HOST,
    REPO,
    Memcached,
    Myproto,
    dieWithParent,
    findProgram,
    freePort,
    pinned,
)

sys.path.insert(0, str(REPO))
from myproto.pool import findNutcracker, nutcrackerConfig  # noqa: E402

CLIENTS = 16
PACED_KEYS = 10000
# The paths: 16 connections over the servers, 16 to each server, or 16 to
# the proxy.
DIRECT = "direct"
EACH = "direct, 16 conns each"
PROXY = "proxy"
VALUE_SIZE = 100
SET_EVERY = 10
MEMORY_MB = 1024
START_TIMEOUT = 30.0


def cpuSeconds(pid: int) -> float:
    """
    @return: user plus system CPU time of process C{pid}, all its threads.
    """
    with open("/proc/{}/stat".format(pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def waitForPort(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("bench: port {} never answered:\n{}".format(port, log.read_text()[-3000:]))
            time.sleep(0.05)


@dataclass
class System:
    """
    Something under test: the processes whose CPU counts as the servers' and
    as the proxy's, and the addresses of each path.
    """

    name: str
    servers: list[int]
    proxy: int | None
    direct: list[int]
    proxied: int | None
    stop: list[subprocess.Popen[bytes]] = field(default_factory=list)
    supervisor: int | None = None


def startNutcracker(workdir: Path, core: int | None, servers: list[str], name: str) -> tuple[subprocess.Popen[bytes], int]:
    """
    Start a twemproxy over C{servers} with the pool's configuration.

    @return: the process and its port.
    """
    binary = findNutcracker()
    if binary is None:
        raise SystemExit("bench: nutcracker not found (Debian package nutcracker)")
    port = freePort()
    config = workdir / "{}.yml".format(name)
    config.write_text(nutcrackerConfig("{}:{}".format(HOST, port), servers, 1000, 2000, 2))
    log = workdir / "{}.log".format(name)
    with open(log, "wb") as output:
        process = subprocess.Popen(
            pinned(core, [binary, "-c", str(config), "-a", HOST, "-s", str(freePort())]),
            stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, preexec_fn=dieWithParent,
        )
    waitForPort(port, process, log)
    return process, port


def startPool(workdir: Path, core: int | None, workers: int) -> System:
    """
    Start C{twistd myproto-pool --workers N} and read its processes from its log.
    """
    first = freePort()
    while any(not portFree(port) for port in range(first, first + workers)):
        first = freePort()
    proxyPort = freePort()
    log = workdir / "pool-{}.log".format(workers)
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [environment.get("PYTHONPATH")] if p])
    argv = [
        sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
        "--nodaemon", "--pidfile=", "--logfile={}".format(log), "myproto-pool",
        "--workers", str(workers), "--worker-ports", str(first),
        "--listen", "tcp:{}:interface={}".format(proxyPort, HOST), "--stats-port", str(freePort()),
        "-m", str(MEMORY_MB * workers), "-c", "20000",
    ]
    process = subprocess.Popen(
        pinned(core, argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        env=environment, cwd=workdir, preexec_fn=dieWithParent,
    )
    for port in [proxyPort] + list(range(first, first + workers)):
        waitForPort(port, process, log)

    def pid(name: str) -> int:
        marker = "Started {} (pid ".format(name)
        text = log.read_text()
        return int(text[text.index(marker) + len(marker):].split(")", 1)[0])

    return System(
        "pool of {}".format(workers),
        [pid("worker-{}".format(index)) for index in range(workers)],
        pid("proxy"),
        list(range(first, first + workers)),
        proxyPort,
        [process],
        supervisor=process.pid,
    )


def portFree(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
            return True
        except OSError:
            return False


class MemcachedThreads(Memcached):
    threads = 1

    def command(self) -> list[str]:
        argv = super().command()
        argv[argv.index("-t") + 1] = str(self.threads)
        return argv


def startMemcached(workdir: Path, core: int | None, threads: int) -> System:
    server = MemcachedThreads(workdir, core)
    server.threads = threads
    server.start()
    proxy, proxyPort = startNutcracker(workdir, core, ["{}:{}".format(HOST, server.port)], "nutcracker-t{}".format(threads))
    assert server.process is not None
    return System("memcached -t {}".format(threads), [server.pid], proxy.pid, [server.port], proxyPort, [proxy, server.process])


def startSingle(workdir: Path, core: int | None) -> System:
    server = Myproto(workdir, core)
    server.start()
    assert server.process is not None
    return System("myproto, one process", [server.pid], None, [server.port], None, [server.process])


class PacedClient:
    """
    One client of the paced load: a connection to every server, one request
    in flight, each sent to the server its key's CRC-32 picks, no sooner
    than its turn in a fixed schedule.
    """

    def __init__(self, sockets: list[socket.socket], requests: list[bytes], targets: list[int], offset: int) -> None:
        self.sockets = sockets
        self.requests = requests
        self.targets = targets
        self.counter = offset
        self.sent = 0
        self.received = b""
        self.completed = 0
        self.misses = 0
        self.busy = False

    def send(self) -> None:
        index = self.counter % len(self.requests)
        self.counter += 1
        self.sent += 1
        self.busy = True
        self.sockets[self.targets[index]].sendall(self.requests[index])

    def receive(self, sock: socket.socket) -> None:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("a server closed the connection")
        self.received += chunk
        if self.received.endswith(loadgen.END) or self.received.endswith(loadgen.STORED):
            if self.received == loadgen.END:
                self.misses += 1
            self.received = b""
            self.completed += 1
            self.busy = False


def pacedLoad(arguments: argparse.Namespace) -> None:
    """
    The paced load's own process: connect, store every key on every server,
    say C{ready}, wait for C{go}, send C{--rate} requests a second in all
    for C{--duration} seconds, print the result.
    """
    ports = [int(port) for port in arguments.ports.split(",")]
    requests = loadgen.mixRequests(PACED_KEYS, SET_EVERY, VALUE_SIZE)
    targets = [zlib.crc32(request.split()[1]) % len(ports) for request in requests]
    for port in ports:
        with loadgen.connect(port, None) as sock:
            loadgen.fill(sock, PACED_KEYS, VALUE_SIZE, 100)
    selector = selectors.DefaultSelector()
    clients = []
    for index in range(arguments.clients):
        sockets = [loadgen.connect(port, None) for port in ports]
        client = PacedClient(sockets, requests, targets, index * len(requests) // arguments.clients)
        clients.append(client)
        for sock in sockets:
            selector.register(sock, selectors.EVENT_READ, client)
    loadgen.handshake()
    interval = arguments.clients / arguments.rate  # between one client's requests
    start = time.monotonic()
    deadline = start + arguments.duration
    late = 0
    now = start
    while now < deadline:
        soonest = deadline
        for index, client in enumerate(clients):
            if client.busy:
                continue
            due = start + (client.sent + index / len(clients)) * interval
            if due <= now:
                late += due < now - interval
                client.send()
            else:
                soonest = min(soonest, due)
        for key, _ in selector.select(timeout=max(0.0, soonest - time.monotonic())):
            key.data.receive(key.fileobj)
        now = time.monotonic()
    loadgen.emit(
        {
            "ops": sum(client.completed for client in clients),
            "misses": sum(client.misses for client in clients),
            "seconds": now - start,
            "late": late,
        }
    )


def operations(ports: list[int]) -> int:
    """
    @return: C{cmd_get} plus C{cmd_set} summed over the servers on C{ports}.
    """
    total = 0
    for port in ports:
        with socket.create_connection((HOST, port), timeout=10) as sock:
            sock.sendall(b"stats\r\n")
            reply = b""
            while not reply.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("stats cut short")
                reply += chunk
        for line in reply.decode().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in ("cmd_get", "cmd_set"):
                total += int(parts[2])
    return total


@dataclass
class Result:
    ops: list[float] = field(default_factory=list)
    servers: list[float] = field(default_factory=list)
    proxy: list[float] = field(default_factory=list)
    supervisor: list[float] = field(default_factory=list)
    late: list[float] = field(default_factory=list)


def measure(system: System, path: str, config: Path, core: int | None, duration: int, result: Result) -> None:
    """
    One run of memcaslap along C{path}, counting C{system}'s CPU and the
    requests its servers served.

    Directly, memcaslap runs one thread per server, each with its share of
    the 16 connections (L{DIRECT}) or 16 of its own (L{EACH}: each server
    loaded as the single process is) and keys of its own: to each server,
    the traffic of a client that hashes keys over the servers.  Through the
    proxy, one thread and 16 connections, as workload (a).
    """
    ports = [system.proxied] if path == PROXY else system.direct
    connections = CLIENTS * len(ports) if path == EACH else CLIENTS
    argv = [
        findProgram("memcaslap", "memaslap"),
        "--servers={}".format(",".join("{}:{}".format(HOST, port) for port in ports)),
        "--threads={}".format(len(ports)),
        "--concurrency={}".format(connections),
        "--cfg_cmd={}".format(config),
        "--fixed_size={}".format(VALUE_SIZE),
        "--time={}s".format(duration),
    ]
    pids = system.servers + ([system.proxy] if system.proxy else []) + ([system.supervisor] if system.supervisor else [])
    before = {pid: cpuSeconds(pid) for pid in pids}
    opsBefore = operations(system.direct)
    run = subprocess.run(pinned(core, argv), capture_output=True, text=True, timeout=duration + 120)
    opsAfter = operations(system.direct)
    after = {pid: cpuSeconds(pid) for pid in pids}
    match = re.search(r"Run time: ([0-9.]+)s Ops: ([0-9]+) TPS: ([0-9]+)", run.stdout)
    if run.returncode != 0 or match is None:
        raise SystemExit("bench: memcaslap failed against {}:\n{}\n{}".format(system.name, run.stdout[-2000:], run.stderr[-2000:]))
    ops = opsAfter - opsBefore

    def perOp(chosen: list[int]) -> float:
        return sum(after[pid] - before[pid] for pid in chosen) / ops * 1e6

    result.ops.append(float(match.group(3)))
    result.servers.append(perOp(system.servers))
    result.proxy.append(perOp([system.proxy]) if system.proxy else 0.0)
    result.supervisor.append(perOp([system.supervisor]) if system.supervisor else 0.0)


def measurePaced(system: System, path: str, rate: int, core: int | None, duration: int, result: Result) -> None:
    """
    One run of the paced load along C{path} at C{rate} requests a second
    (per server for L{EACH}), counting C{system}'s CPU and the requests its
    servers served.
    """
    ports = [system.proxied] if path == PROXY else system.direct
    clients, total = (CLIENTS * len(ports), rate * len(ports)) if path == EACH else (CLIENTS, rate)
    argv = [
        sys.executable, str(Path(__file__).resolve()), "paced", "--ports", ",".join(map(str, ports)),
        "--duration", str(duration), "--rate", str(total), "--clients", str(clients),
    ]
    process = subprocess.Popen(pinned(core, argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, preexec_fn=dieWithParent)
    assert process.stdin is not None and process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        raise SystemExit("bench: the paced load did not start")
    pids = system.servers + ([system.proxy] if system.proxy else []) + ([system.supervisor] if system.supervisor else [])
    before = {pid: cpuSeconds(pid) for pid in pids}
    opsBefore = operations(system.direct)
    process.stdin.write("go\n")
    process.stdin.flush()
    answer = json.loads(process.stdout.readline())
    opsAfter = operations(system.direct)
    after = {pid: cpuSeconds(pid) for pid in pids}
    process.wait()
    if answer["misses"]:
        raise SystemExit("bench: {} misses against {}".format(answer["misses"], system.name))
    ops = opsAfter - opsBefore

    def perOp(chosen: list[int]) -> float:
        return sum(after[pid] - before[pid] for pid in chosen) / ops * 1e6

    result.ops.append(answer["ops"] / answer["seconds"])
    result.servers.append(perOp(system.servers))
    result.proxy.append(perOp([system.proxy]) if system.proxy else 0.0)
    result.supervisor.append(perOp([system.supervisor]) if system.supervisor else 0.0)
    result.late.append(answer["late"] / max(answer["ops"], 1))


def loadAverage() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def table(rows: list[tuple[str, str, Result]]) -> list[str]:
    single = statistics.median(rows[0][2].servers)
    lines = [
        "| server | path | ops/s | CPU µs/op servers | CPU µs/op proxy | CPU µs/op total | servers' CPU/op ÷ one process's |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, path, result in rows:
        servers = statistics.median(result.servers)
        proxy = statistics.median(result.proxy)
        total = statistics.median([a + b for a, b in zip(result.servers, result.proxy)])
        lines.append(
            "| {} | {} | {:,.0f} | {:.1f} | {} | {:.1f} | {:.2f}× |".format(
                name, path, statistics.median(result.ops), servers,
                "{:.1f}".format(proxy) if path == PROXY else "", total, servers / single,
            )
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--results", type=Path, help="append the table to this Markdown file")
    parser.add_argument("--rate", type=int, help="pace the load: this many requests a second (per server for"
                        " 16 conns each), from a Python client, instead of memcaslap's as many as they answer")
    if sys.argv[1:2] == ["paced"]:
        paced = argparse.ArgumentParser()
        paced.add_argument("--ports", required=True)
        paced.add_argument("--duration", type=float, required=True)
        paced.add_argument("--rate", type=int, required=True)
        paced.add_argument("--clients", type=int, required=True)
        pacedLoad(paced.parse_args(sys.argv[2:]))
        return
    arguments = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0))
    serverCore, loadCore = (cores[0], cores[1]) if len(cores) > 1 else (None, None)
    findProgram("memcached")
    workdir = Path(tempfile.mkdtemp(prefix="bench-pool-"))
    systems: list[System] = []
    try:
        systems.append(startSingle(workdir, serverCore))
        systems.append(startPool(workdir, serverCore, 1))
        systems.append(startPool(workdir, serverCore, 2))
        systems.append(startMemcached(workdir, serverCore, 1))
        systems.append(startMemcached(workdir, serverCore, 2))
        plan = [(systems[0], DIRECT)]
        for system in systems[1:]:
            plan += [(system, DIRECT)]
            if len(system.direct) > 1:
                plan += [(system, EACH)]
            plan += [(system, PROXY)]
        results = {index: Result() for index in range(len(plan))}
        config = workdir / "a.cnf"
        config.write_text("key\n16 16 1\nvalue\n{0} {0} 1\ncmd\n0 {1:.3f}\n1 {2:.3f}\n".format(VALUE_SIZE, 1 / SET_EVERY, 1 - 1 / SET_EVERY))
        loadBefore = loadAverage()
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        for round in range(arguments.rounds):
            order = list(range(len(plan)))
            order = order[round % len(order):] + order[: round % len(order)]
            for index in order:
                system, path = plan[index]
                if arguments.rate:
                    measurePaced(system, path, arguments.rate, loadCore, arguments.duration, results[index])
                else:
                    measure(system, path, config, loadCore, arguments.duration, results[index])
                print(
                    "round {} {} {}: {:,.0f} ops/s, servers {:.1f} µs/op, proxy {:.1f} µs/op".format(
                        round + 1, system.name, path, results[index].ops[-1], results[index].servers[-1], results[index].proxy[-1]
                    ),
                    flush=True,
                )
        loadAfter = loadAverage()
    finally:
        for system in systems:
            for process in system.stop:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
        for system in systems:
            for process in system.stop:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
    rows = [(plan[index][0].name, plan[index][1], results[index]) for index in range(len(plan))]
    supervisor = max(statistics.median(result.supervisor) for _, _, result in rows)
    command = "python bench/pool.py --rounds {} --duration {}{}".format(
        arguments.rounds, arguments.duration, " --rate {}".format(arguments.rate) if arguments.rate else ""
    )
    if arguments.rate:
        load = (
            "A paced load from a Python client: workload (a)'s requests (90/10 get/set, 100 B values, 10,000 keys),"
            " {} requests a second in all (per server for \"16 conns each\"), from {} clients with one request in"
            " flight each; directly, each client keeps a connection to every server and sends each key to the server"
            " its CRC-32 picks; at this rate no server falls behind, so every row pays the cost of a request met on"
            " its own (no batching), whatever else the machine does. Late requests (sent over one interval behind"
            " schedule): at most {:.1%}.".format(arguments.rate, CLIENTS, max(max(r.late) for _, _, r in rows))
        )
    else:
        load = (
            "Workload (a) as bench/run.py runs it (memcaslap, 90/10 get/set, 100 B values, {} connections, as many"
            " requests as the servers answer); directly, one memcaslap thread per server, each with its share of the"
            " 16 connections (or, \"16 conns each\", 16 of its own: each worker loaded as the one process is) and"
            " keys of its own (to each server, the traffic of a client hashing keys over them); through the proxy,"
            " one thread.".format(CLIENTS)
        )
    lines = [
        "",
        "### {}".format("paced, {:,} requests a second".format(arguments.rate) if arguments.rate else "as fast as they answer"),
        "",
        "Measured {} with `{}`: rounds of {} s, every row once per round, the order turning each round, medians."
        " CPython {}, memcached 1.6.18, twemproxy 0.5.0.".format(started, command, arguments.duration, platform.python_version()),
        load + " CPU per request: each process's CPU time from /proc over the run, divided by the gets and sets"
        " the servers counted.",
        "Every server process pinned to core {}, the load to core {}; {} cores; load average {} before, {} after"
        " (other work shared the machine, so throughputs vary more than CPU per request).".format(serverCore, loadCore, os.cpu_count(), loadBefore, loadAfter),
        "The pools' supervisor (twistd and its ProcessMonitor) spent at most {:.2f} µs per request.".format(supervisor),
        "",
    ] + table(rows) + [""]
    for name, path, result in rows:
        lines.append(
            "- {} {}: {} ops/s; servers {} µs/op; proxy {} µs/op".format(
                name, path,
                ", ".join("{:,.0f}".format(value) for value in result.ops),
                ", ".join("{:.1f}".format(value) for value in result.servers),
                ", ".join("{:.1f}".format(value) for value in result.proxy),
            )
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if arguments.results is not None:
        with open(arguments.results, "a") as output:
            output.write(text)


if __name__ == "__main__":
    main()
