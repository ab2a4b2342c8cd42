"""
Instructions per request: a server under C{valgrind --tool=callgrind},
counted only while a fixed memcaslap load runs against it.

    python bench/instructions.py [--server myproto|floor|floor-tuned] [--workload a|b|c|g] [--ops N]

CPU time per request moves with whatever else runs on the machine;
instruction counts do not, so they are what to compare when choosing
between two versions of the request path (then confirm the choice with
CPU-time medians from C{run.py} or C{floor.py}).  The server starts with
instrumentation off, gets a short unmeasured warm-up of the same load, and
is counted from just before the measured run to just after it; the count
is divided by the operations the server's own C{stats} counted (keys, for
the multi-get workload).  Under callgrind the server runs some fifty times
slower, so each read holds more of the pipelined requests than under a
real load: the figure is for comparing versions, not for a CPU budget.
Workload C{g} is (g)'s TLS shape with one request in flight, from
C{loadgen.py}.  C{--callgrind-out} keeps the profile for
C{callgrind_annotate}.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402
from servers import Myproto, Server, TLSFiles, findProgram, makeCertificate  # noqa: E402

# Python starts slowly under valgrind, the more so on a busy machine.
servers.START_TIMEOUT = 600.0

BENCH = Path(__file__).resolve().parent

# name: (value size, set share, memcaslap arguments, floor server arguments)
WORKLOADS = {
    "a": (100, 0.1, ["--concurrency=16"]),
    "b": (100, 0.01, ["--concurrency=16", "--division=10"]),
    "c": (65536, 0.1, ["--concurrency=16"]),
}


def underCallgrind(argv: list[str], output: Path, cacheSim: bool = False) -> list[str]:
    return [
        findProgram("valgrind"),
        "--tool=callgrind",
        "--instr-atstart=no",
        "--cache-sim={}".format("yes" if cacheSim else "no"),
        "--callgrind-out-file={}".format(output),
    ] + argv


class Counted(Server):
    """
    A server started under callgrind, instrumentation off.
    """

    def __init__(self, inner: Server, output: Path, cacheSim: bool = False) -> None:
        self.inner = inner
        self.output = output
        self.cacheSim = cacheSim
        self.name = inner.name
        super().__init__(inner.workdir, None, inner.tls)
        self.port = inner.port
        self.tlsPort = inner.tlsPort

    def command(self) -> list[str]:
        return underCallgrind(self.inner.command(), self.output, self.cacheSim)

    def environment(self) -> dict[str, str]:
        return self.inner.environment()

    def instrument(self, on: bool) -> None:
        subprocess.run(
            [findProgram("callgrind_control"), "--instr={}".format("on" if on else "off"), str(self.pid)],
            check=True,
            capture_output=True,
        )

    def instructions(self) -> dict[str, int]:
        """
        Dump the profile and return its totals, by event (C{Ir}: instructions;
        with the cache simulation, C{DLmr} and C{DLmw}: data reads and writes
        that missed the last-level cache).
        """
        subprocess.run([findProgram("callgrind_control"), "--dump", str(self.pid)], check=True, capture_output=True)
        totals: dict[str, int] = {}
        deadline = time.monotonic() + 60
        while not totals.get("Ir") and time.monotonic() < deadline:
            for path in self.output.parent.glob(self.output.name + "*"):
                text = path.read_text(errors="replace")
                events = re.search(r"^events: (.*)$", text, re.M)
                if events is None:
                    continue
                names = events.group(1).split()
                for match in re.finditer(r"^(?:summary|totals): (.*)$", text, re.M):
                    values = [int(value) for value in match.group(1).split()]
                    if values and values[0] > totals.get("Ir", 0):
                        totals = dict(zip(names, values))
            time.sleep(0.2)
        return totals


def floorServer(workdir: Path, python: str, valueSize: int, tuned: bool) -> Server:
    class Floor(Server):
        name = "floor"

        def command(self) -> list[str]:
            argv = [python, str(BENCH / "floor.py"), "--serve", str(self.port), "--value-size", str(valueSize)]
            return argv + (["--tuned"] if tuned else [])

        def environment(self) -> dict[str, str]:
            return Myproto.environment(self)  # type: ignore[arg-type]

    return Floor(workdir, None)


def memaslap(server: Server, config: Path, valueSize: int, extra: list[str], ops: int | None, seconds: int) -> None:
    argv = [
        findProgram("memcaslap", "memaslap"),
        "--servers=127.0.0.1:{}".format(server.port),
        "--threads=1",
        "--cfg_cmd={}".format(config),
        "--fixed_size={}".format(valueSize),
    ] + extra
    argv.append("--execute_number={}".format(ops) if ops else "--time={}s".format(seconds))
    subprocess.run(argv, check=True, capture_output=True, timeout=3600)


def tlsMix(server: Server, seconds: int) -> None:
    assert server.tlsPort is not None
    mixer = subprocess.Popen(
        [sys.executable, str(BENCH / "loadgen.py"), "mix", "--tls", "--port", str(server.tlsPort),
         "--duration", str(seconds), "--connections", "16", "--depth", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert mixer.stdin is not None and mixer.stdout is not None
    if mixer.stdout.readline().strip() != "ready":
        raise SystemExit("bench: loadgen did not start")
    mixer.stdin.write("go\n")
    mixer.stdin.flush()
    mixer.stdout.readline()
    mixer.wait(3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=["myproto", "floor", "floor-tuned"], default="myproto")
    parser.add_argument("--workload", choices=sorted(WORKLOADS) + ["g"], default="a")
    parser.add_argument("--ops", type=int, default=20000, help="operations measured (memcaslap workloads)")
    parser.add_argument("--seconds", type=int, default=20, help="seconds measured (TLS)")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the server")
    parser.add_argument("--callgrind-out", type=Path, help="keep the profile here")
    parser.add_argument("--cache-sim", action="store_true", help="count last-level cache misses too")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="myproto-instructions-") as temp:
        workdir = Path(temp)
        output = (args.callgrind_out or workdir / "callgrind.out").resolve()
        tls: TLSFiles | None = None
        if args.workload == "g":
            if args.server != "myproto":
                parser.error("the TLS workload runs against myproto only")
            tls = makeCertificate(workdir)
        valueSize, setShare, extra = WORKLOADS.get(args.workload, WORKLOADS["a"])
        inner: Server
        if args.server == "myproto":
            inner = Myproto(workdir, None, tls, python=args.python)
        else:
            inner = floorServer(workdir, args.python, valueSize, args.server == "floor-tuned")
        server = Counted(inner, output, args.cache_sim)
        config = workdir / "load.cnf"
        config.write_text(
            "key\n16 16 1\nvalue\n{size} {size} 1\ncmd\n0 {set:.3f}\n1 {get:.3f}\n".format(
                size=valueSize, set=setShare, get=1 - setShare
            )
        )
        server.start()
        try:
            if tls is not None:
                tlsMix(server, 3)
            else:
                memaslap(server, config, valueSize, extra, args.ops // 4, 0)
            server.instrument(True)
            before = server.sample()
            if tls is not None:
                tlsMix(server, args.seconds)
            else:
                memaslap(server, config, valueSize, extra, args.ops, 0)
            after = server.sample()
            server.instrument(False)
            totals = server.instructions()
        finally:
            server.stop()
    ops = after.ops - before.ops
    total = totals.get("Ir", 0)
    line = "{} ({}): {:,} instructions over {:,} operations: {:,.0f} per operation".format(
        args.server, args.workload, total, ops, total / ops
    )
    if "DLmr" in totals:
        line += "; last-level cache misses per operation: {:.1f} reads, {:.1f} writes".format(
            totals["DLmr"] / ops, totals.get("DLmw", 0) / ops
        )
    print(line)


if __name__ == "__main__":
    main()
