"""
Benchmark myproto against memcached on this machine, in one command.

    python bench/run.py [--quick] [--rounds N] [--only a,b,...] [--python PATH]

Both servers run on one core, the load on another.  Each workload starts a
fresh pair of servers and runs the same load against memcached, then myproto,
then memcached again, and so on, for several rounds; the table gives medians
and the ratio myproto / memcached, plus each server's CPU time per operation
(from C{/proc/PID/stat}, over the operations counted by its own C{stats}).
See bench/README.md for what each workload is and why.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from servers import (
    CLOCK_TICKS,
    HOST,
    MEMCACHED_THREADS,
    Memcached,
    Myproto,
    Server,
    TLSFiles,
    findProgram,
    makeCertificate,
)

BENCH = Path(__file__).resolve().parent
LOADGEN = BENCH / "loadgen.py"
RESULTS = BENCH / "results.md"
# Where the part of results.md that run.py does not write begins.
KEPT_MARKER = "<!-- Written by other scripts; bench/run.py keeps what follows. -->"

WORKLOADS = "abcdefg"

# TLS load: (connections, requests in flight on each).  A Python client with
# one request in flight per connection cannot keep memcached busy, so the
# first shape pipelines four; the second matches workload (a).
TLS_SHAPES = [(16, 4), (16, 1)]

# Open files the benchmark (10,000 idle connections and more) needs.
FILE_LIMIT = 65536


@dataclass(frozen=True)
class Plan:
    """
    How long and how much: the full run, or C{--quick}.
    """

    rounds: int
    duration: int  # seconds of load per memcaslap or TLS run
    warmup: int  # seconds of load on fresh servers before the rounds
    idleConnections: int
    items: int
    acceptLimit: float  # seconds (e) waits for the server to count every connection


FULL = Plan(rounds=5, duration=5, warmup=3, idleConnections=10000, items=200000, acceptLimit=10.0)
QUICK = Plan(rounds=2, duration=2, warmup=1, idleConnections=10000, items=50000, acceptLimit=5.0)


@dataclass
class Metric:
    """
    One row of the table: a value per round for each server, and optionally
    the CPU microseconds per operation of each round.

    @ivar higherIsBetter: whether a larger value is the better one.
    """

    label: str
    unit: str
    higherIsBetter: bool
    values: dict[str, list[float]] = field(default_factory=lambda: {"memcached": [], "myproto": []})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {"memcached": [], "myproto": []})
    notes: list[str] = field(default_factory=list)

    def add(self, server: str, value: float, cpuPerOp: float | None = None) -> None:
        self.values[server].append(value)
        if cpuPerOp is not None:
            self.cpu[server].append(cpuPerOp)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class Bench:
    """
    Runs the workloads and gathers their metrics.
    """

    def __init__(self, plan: Plan, workdir: Path, python: str, serverCore: int | None, loadCore: int | None) -> None:
        self.plan = plan
        self.workdir = workdir
        self.python = python
        self.serverCore = serverCore
        self.loadCore = loadCore
        self.memaslapProgram = findProgram("memcaslap", "memaslap")
        self.metrics: list[Metric] = []
        self._running: list[Server] = []

    # Servers

    def startPair(self, tls: TLSFiles | None = None) -> tuple[Server, Server]:
        """
        Start a fresh memcached and a fresh myproto, in that order.
        """
        pair = (
            Memcached(self.workdir, self.serverCore, tls),
            Myproto(self.workdir, self.serverCore, tls, python=self.python),
        )
        for server in pair:
            server.start()
            self._running.append(server)
        return pair

    def stopAll(self) -> None:
        while self._running:
            self._running.pop().stop()

    def stop(self, *servers: Server) -> None:
        for server in servers:
            server.stop()
            if server in self._running:
                self._running.remove(server)

    def alternate(self, pair: tuple[Server, Server]) -> Iterator[tuple[int, Server]]:
        """
        A B A B...: each round runs memcached, then myproto.
        """
        for round in range(self.plan.rounds):
            for server in pair:
                yield round, server

    # Load

    def memaslapConfig(self, name: str, valueSize: int, setShare: float) -> Path:
        """
        Write a memcaslap configuration: 16-byte keys, fixed-size values, and
        the share of sets (the rest are gets).
        """
        path = self.workdir / "{}.cnf".format(name)
        path.write_text(
            "key\n16 16 1\n"
            "value\n{size} {size} 1\n"
            "cmd\n0 {set:.3f}\n1 {get:.3f}\n".format(size=valueSize, set=setShare, get=1 - setShare)
        )
        return path

    def memaslap(self, server: Server, config: Path, valueSize: int, extra: list[str], duration: int) -> dict[str, float]:
        """
        Run memcaslap once against C{server}.

        @return: its throughput, and the server's CPU per operation and share
            of gets, from the server's own counters.
        """
        argv = [
            self.memaslapProgram,
            "--servers={}:{}".format(HOST, server.port),
            "--threads=1",
            "--cfg_cmd={}".format(config),
            "--fixed_size={}".format(valueSize),
            "--time={}s".format(duration),
        ] + extra
        busyBefore = coreBusy(self.serverCore)
        before = server.sample()
        result = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 120)
        after = server.sample()
        busyAfter = coreBusy(self.serverCore)
        match = re.search(r"Run time: ([0-9.]+)s Ops: ([0-9]+) TPS: ([0-9]+)", result.stdout)
        if result.returncode != 0 or match is None:
            raise SystemExit(
                "bench: memcaslap failed against {} ({}):\n{}\n{}".format(
                    server.name, result.returncode, result.stdout[-2000:], result.stderr[-2000:]
                )
            )
        misses = re.search(r"get_misses: ([0-9]+)", result.stdout)
        ops = after.ops - before.ops
        return {
            "throughput": float(match.group(3)),
            "cpuPerOp": (after.cpu - before.cpu) / ops * 1e6 if ops else float("nan"),
            "getShare": (after.gets - before.gets) / ops if ops else float("nan"),
            "misses": float(misses.group(1)) if misses else 0.0,
            "serverRate": ops / float(match.group(1)),
            "others": (busyAfter - busyBefore - (after.cpu - before.cpu)) / (after.when - before.when),
        }

    def loadgen(self, *arguments: str) -> subprocess.Popen[str]:
        """
        Start a L{loadgen} tool and wait for its C{ready}.
        """
        process = subprocess.Popen(
            [sys.executable, str(LOADGEN)] + list(arguments),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if line != "ready":
            process.kill()
            raise SystemExit("bench: loadgen {} did not start ({!r})".format(arguments[0], line))
        return process

    @staticmethod
    def tell(process: subprocess.Popen[str], line: str) -> None:
        assert process.stdin is not None
        process.stdin.write(line + "\n")
        process.stdin.flush()

    @staticmethod
    def answer(process: subprocess.Popen[str]) -> dict:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            process.wait()
            raise SystemExit("bench: loadgen ended without a result ({})".format(process.returncode))
        return json.loads(line)

    # Workloads

    def memaslapWorkload(self, label: str, name: str, valueSize: int, setShare: float, extra: list[str], unit: str = "ops/s") -> None:
        metric = Metric(label, unit, higherIsBetter=True)
        config = self.memaslapConfig(name, valueSize, setShare)
        pair = self.startPair()
        for server in pair:
            self.memaslap(server, config, valueSize, extra, self.plan.warmup)
        shares: dict[str, list[float]] = {"memcached": [], "myproto": []}
        others: dict[str, list[float]] = {"memcached": [], "myproto": []}
        for _, server in self.alternate(pair):
            run = self.memaslap(server, config, valueSize, extra, self.plan.duration)
            metric.add(server.name, run["throughput"], run["cpuPerOp"])
            shares[server.name].append(run["getShare"])
            others[server.name].append(max(run["others"], 0.0))
            detail = "gets {:.3f} of ops, server counted {:,.0f} ops/s, other processes took {:.0%} of the server core".format(
                run["getShare"], run["serverRate"], max(run["others"], 0.0)
            )
            if run["misses"]:
                detail += ", {:,.0f} get misses".format(run["misses"])
            self.progress(metric, server.name, run["throughput"], run["cpuPerOp"], detail)
        self.stop(*pair)
        for name, values in shares.items():
            metric.notes.append("{}: gets were {:.3f} of operations (server stats)".format(name, median(values) or 0))
        metric.notes.append(noiseNote(others))
        self.metrics.append(metric)

    def workloadA(self) -> None:
        self.memaslapWorkload(
            "(a) 90/10 get/set, 100 B values, 16 conns", "mix", 100, 0.1, ["--concurrency=16"]
        )

    def workloadB(self) -> None:
        # memcaslap applies the set share per key, and a multi-get is ten
        # keys: a 1% set share makes about 1 request in 11 a set.
        self.memaslapWorkload(
            "(b) 10-key multi-get (+1 set per ~10 requests), 16 conns",
            "multiget",
            100,
            0.01,
            ["--concurrency=16", "--division=10"],
            unit="keys/s",
        )
        self.metrics[-1].notes.insert(0, "keys, not requests: a 10-key get counts 10 (as cmd_get does); CPU is µs per key")

    def workloadC(self) -> None:
        self.memaslapWorkload(
            "(c) 90/10 get/set, 64 KiB values, 16 conns", "large", 65536, 0.1, ["--concurrency=16"]
        )

    def workloadD(self) -> None:
        # A smaller task window: memcaslap keeps one per connection.
        self.memaslapWorkload(
            "(d) 90/10 get/set, 100 B, 1,000 conns (1 request in flight each)",
            "many",
            100,
            0.1,
            ["--concurrency=1000", "--win_size=1k"],
        )

    def workloadE(self) -> None:
        count = self.plan.idleConnections
        openTime = Metric("(e) open {:,} idle conns in a burst".format(count), "s", higherIsBetter=False)
        perConnection = Metric("(e) RSS per idle connection", "KiB", higherIsBetter=False)
        during = Metric("(e) get latency during the burst, worst", "ms", higherIsBetter=False)
        afterwards = Metric("(e) get latency with all open, median", "ms", higherIsBetter=False)
        for round in range(self.plan.rounds):
            # Fresh servers each round: neither gives memory back to the
            # system when connections close.
            pair = self.startPair()
            for server in pair:
                self.idleBurst(server, count, openTime, perConnection, during, afterwards)
            self.stop(*pair)
        openTime.notes.append("until the server's curr_connections counts them all; CPU is µs per connection")
        during.notes.append("one get at a time, one every millisecond, on a connection opened before the burst")
        self.metrics += [openTime, perConnection, during, afterwards]

    def idleBurst(self, server: Server, count: int, openTime: Metric, perConnection: Metric, during: Metric, afterwards: Metric) -> None:
        prober = self.loadgen("probe", "--port", str(server.port))
        burster = self.loadgen("burst", "--port", str(server.port), "--count", str(count))
        kernelBefore = listenCounters()
        before = server.sample()
        self.tell(prober, "go")
        time.sleep(0.05)
        self.tell(burster, "go")
        deadline = time.monotonic() + self.plan.acceptLimit
        accepted = before
        while accepted.connections < before.connections + count:
            now = server.sample()
            if now.connections > accepted.connections:
                # The last sample that saw the count grow: when, and at what
                # CPU cost, the server had accepted what it accepted.
                accepted = now
            if now.when > deadline:
                break
            time.sleep(0.01)
        client = self.answer(burster)
        kernelAfter = listenCounters()
        opened = accepted.connections - before.connections
        time.sleep(1.0)
        settled = server.sample()
        self.tell(prober, "stop")
        samples = self.answer(prober)["samples"]
        self.tell(burster, "close")
        self.answer(burster)
        burster.wait(30)
        prober.wait(30)
        seconds = accepted.when - client["start"]
        if opened < count:
            # Under a full accept queue the kernel answers with SYN cookies and
            # drops the handshake's last ACK; an idle client never resends, so
            # the server never sees that connection.  Count the limit as the
            # time, and say so.
            seconds = self.plan.acceptLimit
            openTime.notes.append(
                "{}: only {:,} of {:,} accepted in {:.0f} s (the last at {:.2f} s); counted as {:.0f} s".format(
                    server.name, opened, count, self.plan.acceptLimit, accepted.when - client["start"], self.plan.acceptLimit
                )
            )
        cpu = (accepted.cpu - before.cpu) / max(opened, 1) * 1e6
        rssPerConnection = (settled.rss - before.rss) / max(opened, 1) / 1024
        openTime.add(server.name, seconds, cpu)
        perConnection.add(server.name, rssPerConnection)
        inBurst = [latency for sent, latency in samples if client["start"] <= sent <= accepted.when]
        quiet = [latency for sent, latency in samples if sent > accepted.when + 0.1]
        worst = max(inBurst) * 1000 if inBurst else float("nan")
        during.add(server.name, worst)
        afterwards.add(server.name, (median(quiet) or float("nan")) * 1000)
        overflows = {name: kernelAfter[name] - kernelBefore[name] for name in kernelAfter}
        self.progress(
            openTime,
            server.name,
            seconds,
            cpu,
            "{:,} accepted, {:.2f} KiB/conn, worst get {:.2f} ms ({} gets in the burst); kernel: {}".format(
                opened,
                rssPerConnection,
                worst,
                len(inBurst),
                ", ".join("{} {:,}".format(name, value) for name, value in overflows.items()),
            ),
        )

    def workloadF(self) -> None:
        count = self.plan.items
        metric = Metric("(f) RSS growth per stored 100 B item ({:,} items)".format(count), "B", higherIsBetter=False)
        for round in range(self.plan.rounds):
            pair = self.startPair()
            for server in pair:
                storer = self.loadgen("store", "--port", str(server.port), "--count", str(count))
                before = server.sample()
                self.tell(storer, "go")
                self.answer(storer)
                storer.wait(30)
                time.sleep(0.5)
                after = server.sample()
                perItem = (after.rss - before.rss) / count
                cpu = (after.cpu - before.cpu) / (after.sets - before.sets) * 1e6
                metric.add(server.name, perItem, cpu)
                self.progress(metric, server.name, perItem, cpu)
            self.stop(*pair)
        metric.notes.append("pipelined sets, 100 per write; CPU is µs per set")
        self.metrics.append(metric)

    def workloadG(self) -> None:
        tls = makeCertificate(self.workdir)
        pair = self.startPair(tls)
        for connections, depth in TLS_SHAPES:
            metric = Metric(
                "(g) TLS 90/10 get/set, 100 B, {} conns x {} in flight".format(connections, depth),
                "ops/s",
                higherIsBetter=True,
            )
            for server in pair:
                self.tlsMix(server, self.plan.warmup, connections, depth)
            clientLoad: dict[str, list[float]] = {"memcached": [], "myproto": []}
            others: dict[str, list[float]] = {"memcached": [], "myproto": []}
            for _, server in self.alternate(pair):
                run = self.tlsMix(server, self.plan.duration, connections, depth)
                metric.add(server.name, run["throughput"], run["cpuPerOp"])
                clientLoad[server.name].append(run["clientCpu"])
                others[server.name].append(max(run["others"], 0.0))
                self.progress(
                    metric, server.name, run["throughput"], run["cpuPerOp"],
                    "load generator {:.0%} busy, other processes took {:.0%} of the server core".format(
                        run["clientCpu"], max(run["others"], 0.0)
                    ),
                )
            for name, values in clientLoad.items():
                metric.notes.append("{}: the Python load generator was {:.0%} busy".format(name, median(values) or 0))
            metric.notes.append(noiseNote(others))
            self.metrics.append(metric)
        self.stop(*pair)

    def tlsMix(self, server: Server, duration: int, connections: int, depth: int) -> dict[str, float]:
        assert server.tlsPort is not None
        mixer = self.loadgen(
            "mix", "--tls", "--port", str(server.tlsPort), "--duration", str(duration),
            "--connections", str(connections), "--depth", str(depth),
        )
        busyBefore = coreBusy(self.serverCore)
        before = server.sample()
        self.tell(mixer, "go")
        result = self.answer(mixer)
        after = server.sample()
        busyAfter = coreBusy(self.serverCore)
        mixer.wait(30)
        ops = after.ops - before.ops
        if result["misses"]:
            raise SystemExit("bench: {} missed {} gets over TLS".format(server.name, result["misses"]))
        return {
            "throughput": result["ops"] / result["seconds"],
            "cpuPerOp": (after.cpu - before.cpu) / ops * 1e6,
            "clientCpu": result["clientCpu"],
            "others": (busyAfter - busyBefore - (after.cpu - before.cpu)) / (after.when - before.when),
        }

    # Reporting

    def progress(self, metric: Metric, server: str, value: float, cpu: float | None, extra: str = "") -> None:
        text = "  {:<9} {:>12} {}".format(server, formatValue(value, metric.unit), metric.unit)
        if cpu is not None:
            text += "  {:8.1f} µs/op".format(cpu)
        if extra:
            text += "  " + extra
        print(text, flush=True)


def formatValue(value: float | None, unit: str) -> str:
    if value is None or value != value:
        return "–"
    if unit in ("ops/s", "keys/s", "B"):
        return "{:,.0f}".format(value)
    if unit == "ms":
        return "{:.2f}".format(value)
    if unit == "KiB":
        return "{:.2f}".format(value)
    return "{:.3f}".format(value)


def formatRatio(mine: float | None, theirs: float | None) -> str:
    if mine is None or theirs is None or theirs == 0 or mine != mine or theirs != theirs:
        return "–"
    return "{:.2f}×".format(mine / theirs)


def table(metrics: list[Metric]) -> str:
    """
    @return: the results as a markdown table.
    """
    lines = [
        "| workload | memcached | myproto | ratio | CPU µs/op memcached | CPU µs/op myproto | CPU ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for metric in metrics:
        mc = median(metric.values["memcached"])
        mine = median(metric.values["myproto"])
        mcCpu = median(metric.cpu["memcached"])
        myCpu = median(metric.cpu["myproto"])
        lines.append(
            "| {} ({}{}) | {} | {} | {} | {} | {} | {} |".format(
                metric.label,
                metric.unit,
                ", higher is better" if metric.higherIsBetter else "",
                formatValue(mc, metric.unit),
                formatValue(mine, metric.unit),
                formatRatio(mine, mc),
                "{:.1f}".format(mcCpu) if mcCpu is not None else "",
                "{:.1f}".format(myCpu) if myCpu is not None else "",
                formatRatio(myCpu, mcCpu) if mcCpu is not None else "",
            )
        )
    return "\n".join(lines)


def roundsDetail(metrics: list[Metric]) -> str:
    """
    @return: every round's value, so the spread behind each median shows.
    """
    lines = []
    for metric in metrics:
        lines.append("- {}:".format(metric.label))
        for server in ("memcached", "myproto"):
            values = ", ".join(formatValue(v, metric.unit) for v in metric.values[server])
            cpu = ", ".join("{:.1f}".format(c) for c in metric.cpu[server])
            lines.append("  {} {} {}{}".format(server, values, metric.unit, "; CPU µs/op " + cpu if cpu else ""))
        for note in metric.notes:
            lines.append("  ({})".format(note))
    return "\n".join(lines)


def noiseNote(others: dict[str, list[float]]) -> str:
    """
    @return: how busy the server core was with other processes or the
        hypervisor while each server ran (median per server).
    """
    return "server core taken by other processes: memcached {:.0%}, myproto {:.0%} of the time".format(
        median(others["memcached"]) or 0.0, median(others["myproto"]) or 0.0
    )


def coreBusy(core: int | None) -> float:
    """
    @return: the seconds C{core} has spent running processes, or taken by
        the hypervisor (steal), from C{/proc/stat}; 0 if there is no core to
        watch.  Interrupt and softirq time is left out: loopback traffic to
        and from the server under test is handled there.
    """
    if core is None:
        return 0.0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu{} ".format(core)):
                user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in line.split()[1:9])
                return (user + nice + system + steal) / CLOCK_TICKS
    return 0.0


def listenCounters() -> dict[str, int]:
    """
    @return: the kernel's counts of connections refused by a full accept
        queue and of SYN cookies sent (system-wide, from C{/proc/net/netstat}).
    """
    wanted = ("ListenOverflows", "TCPReqQFullDoCookies")
    with open("/proc/net/netstat") as f:
        lines = [line.split() for line in f if line.startswith("TcpExt:")]
    names, values = lines[0], lines[1]
    counters = dict(zip(names, values))
    return {name: int(counters.get(name, 0)) for name in wanted}


def memcachedVersion() -> str:
    result = subprocess.run([findProgram("memcached"), "-V"], capture_output=True, text=True)
    return result.stdout.strip() or "memcached"


def raiseFileLimit() -> None:
    """
    Let this process and its children open L{FILE_LIMIT} files: raise the soft
    limit to the hard one, and the hard one too when running as root.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FILE_LIMIT:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))
            return
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard == resource.RLIM_INFINITY else max(soft, min(hard, FILE_LIMIT)), hard))


def chooseCores() -> tuple[int | None, int | None]:
    """
    @return: the core for the servers and the core for the load: the first two
        this process may run on, or L{None} if there is only one.
    """
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        print("bench: only one core: nothing is pinned, and the figures mean little", file=sys.stderr)
        return None, None
    return cores[0], cores[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmark myproto against memcached.")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s, fewer items: about 2 minutes")
    parser.add_argument("--rounds", type=int, help="rounds per workload (default: 5, or 2 with --quick)")
    parser.add_argument("--duration", type=int, help="seconds per load run (default: 5, or 2 with --quick)")
    parser.add_argument("--only", default=WORKLOADS, help="workloads to run, e.g. a,b,g (default: all)")
    parser.add_argument("--python", default=sys.executable, help="interpreter to run myproto with (default: this one)")
    parser.add_argument("--output", type=Path, help="write the table here (default: bench/results.md after a full run of every workload)")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    if args.rounds is not None:
        plan = dataclasses.replace(plan, rounds=args.rounds)
    if args.duration is not None:
        plan = dataclasses.replace(plan, duration=args.duration)
    selected = [w for w in WORKLOADS if w in args.only.replace(",", "").lower()]
    if not selected:
        parser.error("--only names none of the workloads a to g")
    output = args.output
    if output is None and not args.quick and selected == list(WORKLOADS) and plan == FULL:
        output = RESULTS

    # Let SIGTERM unwind like Ctrl-C, so the servers are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("bench: terminated"))
    serverCore, loadCore = chooseCores()
    if loadCore is not None:
        # This process and every load generator it starts run on the load core.
        os.sched_setaffinity(0, {loadCore})
    raiseFileLimit()

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="myproto-bench-") as temp:
        bench = Bench(plan, Path(temp), args.python, serverCore, loadCore)
        myprotoRuntime = Myproto(Path(temp), None, python=args.python).describe()
        header = [
            "Measured {} with `python bench/run.py{}`: {} rounds of {} s, alternating memcached and myproto, medians.".format(
                datetime.date.today().isoformat(),
                " --quick" if args.quick else "",
                plan.rounds,
                plan.duration,
            ),
            "{} (`-t {}`) against myproto on {}.".format(memcachedVersion(), MEMCACHED_THREADS, myprotoRuntime),
            "Servers pinned to core {}, load to core {}; {} cores, Linux {}.".format(
                serverCore, loadCore, os.cpu_count(), platform.release()
            ),
            "Ratio is myproto / memcached.",
        ]
        print("\n".join(header), flush=True)
        steps: dict[str, Callable[[], None]] = {
            "a": bench.workloadA,
            "b": bench.workloadB,
            "c": bench.workloadC,
            "d": bench.workloadD,
            "e": bench.workloadE,
            "f": bench.workloadF,
            "g": bench.workloadG,
        }
        try:
            for name in selected:
                print("\nworkload ({})".format(name), flush=True)
                steps[name]()
        finally:
            bench.stopAll()
    elapsed = time.monotonic() - started
    report = "\n".join(header) + "\n\n" + table(bench.metrics) + "\n\nEvery round:\n\n" + roundsDetail(bench.metrics) + "\n"
    print("\n" + report)
    print("Took {:.0f} s.".format(elapsed))
    if output is not None:
        # Sections other scripts wrote (below KEPT_MARKER) stay as they were.
        kept = ""
        if output.exists():
            previous = output.read_text()
            if KEPT_MARKER in previous:
                kept = "\n" + previous[previous.index(KEPT_MARKER):]
        output.write_text("# Benchmark results\n\n" + report + kept)
        print("Wrote {}.".format(output))


if __name__ == "__main__":
    main()
