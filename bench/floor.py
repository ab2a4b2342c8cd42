"""
The floor under myproto: what a Twisted server that does nothing but answer
costs per request, beside memcached and myproto, on workloads (a), (b) and
(c) of C{run.py}.

    python bench/floor.py [--only a,b,c] [--rounds N] [--duration S] [--python PATH]

C{--serve PORT} runs the floor server itself: one C{Protocol} on the
reactor Twisted picks, which answers each key of a C{get} with the same
value (100 bytes, or 64 KiB for (c)) and each C{set} with C{STORED}
(skipping its data block), counts them, and answers C{stats} with the
counts; it keeps no items and parses nothing else.  Its replies go straight
to the socket, as myproto's do, and large ones as one C{sendmsg} of the
value and its lines, uncopied.  So its CPU per request is what the reactor,
the system calls and the interpreter's call into C{dataReceived} cost
before any cache work: the least a stock Twisted server could spend on this
machine under this interpreter.

A fourth server, "floor, tuned", is the same protocol on myproto's own read
path (L{myproto._tuning}: reads handed to C{doRead} without Twisted's
per-event logging context): the floor myproto itself stands on.

The servers run one after another, round after round, pinned to the same
core as in C{run.py}, each under the same memcaslap load.  "CPU vs floor"
divides by the stock floor's median.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path


def serve(port: int, valueSize: int = 100, tuned: bool = False) -> None:
    """
    Run the floor server on 127.0.0.1:C{port} until stopped, answering every
    key of a C{get} with a value of C{valueSize} bytes; C{tuned}, with
    myproto's read path (L{myproto._tuning}).
    """
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.internet.protocol import Factory, Protocol

    counts = {"cmd_get": 0, "cmd_set": 0}
    value = b"x" * valueSize
    valueLine = b" 0 %d\r\n" % (valueSize,)
    # Large replies leave as a list of buffers (sendmsg), so the value is
    # never copied into a joined reply: the least a server can do for them.
    gather = valueSize > 4096

    class Floor(Protocol):
        def connectionMade(self) -> None:
            if tuned:
                from myproto._tuning import tuneTransport

                tuneTransport(self.transport)
            self.transport.setTcpNoDelay(True)  # type: ignore[attr-defined]
            self.socket = self.transport.getHandle()  # type: ignore[attr-defined]
            self.buffer = b""
            self.skip = 0

        def dataReceived(self, data: bytes) -> None:
            data = self.buffer + data if self.buffer else data
            replies = []
            position = 0
            while True:
                if self.skip:
                    taken = min(self.skip, len(data) - position)
                    position += taken
                    self.skip -= taken
                    if self.skip:
                        break
                newline = data.find(b"\n", position)
                if newline < 0:
                    break
                line = data[position:newline]
                position = newline + 1
                if line.startswith(b"get "):
                    for key in line[4:].split():
                        counts["cmd_get"] += 1
                        replies += (b"VALUE ", key, valueLine, value, b"\r\n")
                    replies.append(b"END\r\n")
                elif line.startswith(b"set "):
                    counts["cmd_set"] += 1
                    self.skip = int(line.split()[4]) + 2
                    replies.append(b"STORED\r\n")
                elif line.startswith(b"stats"):
                    replies.append(
                        b"".join(b"STAT %s %d\r\n" % (name.encode(), value) for name, value in counts.items())
                        + b"STAT curr_connections 0\r\nEND\r\n"
                    )
            self.buffer = data[position:]
            if not replies:
                return
            if gather:
                sent = self.socket.sendmsg(replies)
                total = sum(map(len, replies))
                if sent < total:
                    self.transport.write(b"".join(replies)[sent:])
                return
            reply = b"".join(replies)
            sent = self.socket.send(reply)
            if sent < len(reply):
                self.transport.write(reply[sent:])

    serverFromString(reactor, "tcp:{}:interface=127.0.0.1:backlog=1024".format(port)).listen(
        Factory.forProtocol(Floor)
    )
    reactor.run()  # type: ignore[attr-defined]


# name: (label, value size, set share, memcaslap arguments, unit)
WORKLOADS = {
    "a": ("(a) 90/10 get/set, 100 B", 100, 0.1, ["--concurrency=16"], "ops"),
    "b": ("(b) 10-key multi-get", 100, 0.01, ["--concurrency=16", "--division=10"], "keys"),
    "c": ("(c) 90/10 get/set, 64 KiB", 65536, 0.1, ["--concurrency=16"], "ops"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per run")
    parser.add_argument("--python", default=sys.executable, help="interpreter for myproto and the floor server")
    parser.add_argument("--only", default="a", help="workloads, of a, b and c (default: a)")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--value-size", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--tuned", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.value_size, args.tuned)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import FULL, Bench, chooseCores, raiseFileLimit
    from servers import Memcached, Myproto, Server

    class FloorServer(Server):
        name = "floor"
        valueSize = 100
        tuned = False

        def command(self) -> list[str]:
            argv = [args.python, str(Path(__file__).resolve()), "--serve", str(self.port)]
            argv += ["--value-size", str(self.valueSize)]
            return argv + (["--tuned"] if self.tuned else [])

        def environment(self) -> dict[str, str]:
            return Myproto.environment(self)  # type: ignore[arg-type]

    class TunedFloorServer(FloorServer):
        name = "floor, tuned"
        tuned = True

    serverCore, loadCore = chooseCores()
    if loadCore is not None:
        os.sched_setaffinity(0, {loadCore})
    raiseFileLimit()
    tables = []
    for workload in [w for w in "abc" if w in args.only]:
        label, size, setShare, load, unit = WORKLOADS[workload]
        with tempfile.TemporaryDirectory(prefix="myproto-floor-") as temp:
            workdir = Path(temp)
            bench = Bench(FULL, workdir, args.python, serverCore, loadCore)
            floor = FloorServer(workdir, serverCore)
            tunedFloor = TunedFloorServer(workdir, serverCore)
            floor.valueSize = tunedFloor.valueSize = size
            servers: list[Server] = [
                Memcached(workdir, serverCore),
                Myproto(workdir, serverCore, python=args.python),
                floor,
                tunedFloor,
            ]
            config = bench.memaslapConfig("load", size, setShare)
            results: dict[str, list[tuple[float, float]]] = {server.name: [] for server in servers}
            try:
                for server in servers:
                    server.start()
                    bench.memaslap(server, config, size, load, FULL.warmup)
                for round in range(args.rounds):
                    for server in servers:
                        run = bench.memaslap(server, config, size, load, args.duration)
                        results[server.name].append((run["throughput"], run["cpuPerOp"]))
                        print(
                            "{} round {} {:13} {:>9,.0f} {}/s {:6.2f} µs/{}".format(
                                workload, round + 1, server.name, run["throughput"], unit,
                                run["cpuPerOp"], unit[:-1]
                            ),
                            flush=True,
                        )
            finally:
                for server in servers:
                    server.stop()
        reference = statistics.median(throughput for throughput, _ in results["memcached"])
        referenceCpu = statistics.median(cpu for _, cpu in results["memcached"])
        floorCpu = statistics.median(cpu for _, cpu in results["floor"])
        lines = [
            "\n{}: medians of {} rounds\n".format(label, args.rounds),
            "| server | {unit}/s | ratio | CPU µs/{one} | CPU ratio | CPU vs floor |".format(unit=unit, one=unit[:-1]),
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, runs in results.items():
            throughput = statistics.median(value for value, _ in runs)
            cpu = statistics.median(value for _, value in runs)
            lines.append(
                "| {} | {:,.0f} | {:.2f}× | {:.2f} | {:.2f}× | {:.2f}× |".format(
                    name, throughput, throughput / reference, cpu, cpu / referenceCpu, cpu / floorCpu
                )
            )
        for name, runs in results.items():
            lines.append("  {}: CPU {}".format(name, ", ".join("{:.2f}".format(cpu) for _, cpu in runs)))
        tables.append("\n".join(lines))
        print(tables[-1], flush=True)
    print("\n".join(tables))


if __name__ == "__main__":
    main()
