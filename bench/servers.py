"""
The two servers under test, as child processes pinned to one core, and what
the benchmark reads from them: C{stats} counters over the wire, and CPU time
and resident memory from C{/proc}.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"

# The repository's root: myproto and its twistd plugin are imported from the
# working tree, not from whatever happens to be installed.
REPO = Path(__file__).resolve().parent.parent

# The same limits for both servers: 1 GiB of items, 20,000 connections.
MEMORY_MB = 1024
CONNECTIONS = 20000
BACKLOG = 1024

# memcached's worker threads.  Both servers get one core; with one worker
# thread memcached spends nothing on handing connections between threads.
MEMCACHED_THREADS = 1

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def findProgram(*names: str) -> str:
    """
    @return: the path of the first of C{names} found on C{PATH}.

    @raise SystemExit: if none is.
    """
    for name in names:
        found = shutil.which(name)
        if found is not None:
            return found
    raise SystemExit("bench: {} not found on PATH".format(" or ".join(names)))


def dieWithParent() -> None:
    """
    In a child, before C{exec}: ask Linux to send C{SIGTERM} when the
    benchmark dies, so that no server outlives an interrupted run.
    """
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def freePort() -> int:
    """
    @return: a TCP port on 127.0.0.1 that nothing listens on right now.
    """
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def waitForPort(port: int, deadline: float) -> None:
    """
    Wait until something accepts on 127.0.0.1:C{port}, or exit at C{deadline}.
    """
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("server did not start")


def readUntil(connection: socket.socket, end: bytes) -> bytes:
    """
    @return: what arrives until it ends with C{end}.
    """
    received = b""
    while not received.endswith(end):
        chunk = connection.recv(1 << 20)
        if not chunk:
            raise SystemExit("server closed the connection")
        received += chunk
    return received


def fill(port: int, items: int) -> None:
    """
    Store C{items} values of 100 bytes under C{key:NNNNNNNN}, in pipelined
    batches.
    """
    value = b"v" * 100
    with socket.create_connection(("127.0.0.1", port)) as connection:
        batch = 5000
        for start in range(0, items, batch):
            request = b"".join(
                b"set key:%08d 0 0 100 noreply\r\n%s\r\n" % (number, value)
                for number in range(start, min(start + batch, items))
            )
            connection.sendall(request + b"mn\r\n")
            readUntil(connection, b"MN\r\n")


def pinned(core: int | None, argv: list[str]) -> list[str]:
    """
    @return: C{argv} run through C{taskset} on C{core} (unchanged if L{None}).
    """
    if core is None:
        return argv
    return [findProgram("taskset"), "-c", str(core)] + argv


def quoteEndpoint(text: str) -> str:
    """
    Escape a value for an endpoint description, as Twisted's
    C{quoteStringArgument} does.
    """
    return text.replace("\\", "\\\\").replace(":", "\\:")


@dataclass(frozen=True)
class TLSFiles:
    """
    A private key and a certificate, as PEM files.
    """

    key: Path
    cert: Path


def makeCertificate(directory: Path) -> TLSFiles:
    """
    Write a fresh EC key and a self-signed certificate for C{localhost} and
    127.0.0.1 into C{directory}.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    privateKey = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(privateKey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .sign(privateKey, hashes.SHA256())
    )
    files = TLSFiles(directory / "key.pem", directory / "cert.pem")
    files.key.write_bytes(
        privateKey.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return files


class StatsClient:
    """
    One plain-TCP connection for reading a server's C{stats}.
    """

    def __init__(self, port: int) -> None:
        self._sock = socket.create_connection((HOST, port), timeout=START_TIMEOUT)

    def stats(self) -> dict[str, str]:
        """
        @return: the general statistics, by name.
        """
        self._sock.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the server closed the stats connection")
            data += chunk
        result = {}
        for line in data.decode("ascii", "replace").splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[0] == "STAT":
                result[parts[1]] = parts[2]
        return result

    def close(self) -> None:
        self._sock.close()


@dataclass(frozen=True)
class Sample:
    """
    A server's counters and resource use at one moment.
    """

    when: float
    cpu: float
    rss: int
    gets: int
    sets: int
    connections: int

    @property
    def ops(self) -> int:
        return self.gets + self.sets


class Server:
    """
    A server process under test: started, pinned, watched, stopped.

    @ivar name: how the tables call it.
    @ivar port: the plain-TCP port clients (and L{stats}) use.
    @ivar tlsPort: the TLS port, when started with TLS files.
    """

    name = ""

    def __init__(self, workdir: Path, core: int | None, tls: TLSFiles | None = None) -> None:
        self.workdir = workdir
        self.core = core
        self.tls = tls
        self.port = freePort()
        self.tlsPort = freePort() if tls is not None else None
        self.process: subprocess.Popen[bytes] | None = None
        self._stats: StatsClient | None = None
        self._log = workdir / "{}-{}.log".format(self.name, self.port)

    def command(self) -> list[str]:
        raise NotImplementedError()

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self) -> None:
        """
        Start the server and wait until it answers C{stats}.
        """
        with open(self._log, "wb") as log:
            self.process = subprocess.Popen(
                pinned(self.core, self.command()),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.environment(),
                preexec_fn=dieWithParent,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise SystemExit(
                    "bench: {} exited at start:\n{}".format(self.name, self.logTail())
                )
            try:
                self._stats = StatsClient(self.port)
                self._stats.stats()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(
                        "bench: {} did not start:\n{}".format(self.name, self.logTail())
                    )
                time.sleep(0.05)
        if self.tlsPort is not None:
            self._waitForTLS(deadline)

    def _waitForTLS(self, deadline: float) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        while True:
            try:
                with socket.create_connection((HOST, self.tlsPort), timeout=5) as raw:
                    with context.wrap_socket(raw) as sock:
                        sock.sendall(b"version\r\n")
                        if sock.recv(100).startswith(b"VERSION"):
                            return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("bench: {} does not answer over TLS:\n{}".format(self.name, self.logTail()))
            time.sleep(0.05)

    def logTail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpuSeconds(self) -> float:
        """
        @return: user plus system CPU time of the whole process (all its
            threads), from C{/proc/PID/stat}.
        """
        with open("/proc/{}/stat".format(self.pid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # Fields 14 and 15 (utime, stime) of proc(5); the split above drops
        # the first two, pid and comm.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss(self) -> int:
        """
        @return: resident memory in bytes, from C{VmRSS} in C{/proc/PID/status}.
        """
        with open("/proc/{}/status".format(self.pid)) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS for {}".format(self.pid))

    def stats(self) -> dict[str, str]:
        assert self._stats is not None
        return self._stats.stats()

    def sample(self) -> Sample:
        """
        @return: the counters, CPU time and memory now.
        """
        stats = self.stats()
        return Sample(
            when=time.monotonic(),
            cpu=self.cpuSeconds(),
            rss=self.rss(),
            gets=int(stats["cmd_get"]),
            sets=int(stats["cmd_set"]),
            connections=int(stats["curr_connections"]),
        )

    def stop(self) -> None:
        """
        Stop the server: C{SIGTERM}, then C{SIGKILL} if it lingers.
        """
        if self._stats is not None:
            self._stats.close()
            self._stats = None
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Memcached(Server):
    """
    The reference: Debian's memcached with one worker thread.
    """

    name = "memcached"

    def command(self) -> list[str]:
        listen = HOST
        if self.tls is not None:
            # -Z makes every listener TLS; this one stays plain, for stats.
            listen = "notls:{}:{},{}:{}".format(HOST, self.port, HOST, self.tlsPort)
        argv = [
            findProgram("memcached"),
            "-U", "0",
            "-l", listen,
            "-p", str(self.port),
            "-m", str(MEMORY_MB),
            "-c", str(CONNECTIONS),
            "-b", str(BACKLOG),
            "-t", str(MEMCACHED_THREADS),
        ]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        if self.tls is not None:
            argv += ["-Z", "-o", "ssl_chain_cert={},ssl_key={}".format(self.tls.cert, self.tls.key)]
        return argv


class Myproto(Server):
    """
    myproto from this working tree, started by its twistd plugin.

    @ivar python: the interpreter to run it with.
    """

    name = "myproto"

    def __init__(self, workdir: Path, core: int | None, tls: TLSFiles | None = None, python: str = sys.executable) -> None:
        self.python = python
        super().__init__(workdir, core, tls)

    def command(self) -> list[str]:
        listen = ["tcp:{}:interface={}:backlog={}".format(self.port, HOST, BACKLOG)]
        if self.tls is not None:
            listen.append(
                "ssl:{}:interface={}:backlog={}:privateKey={}:certKey={}".format(
                    self.tlsPort,
                    HOST,
                    BACKLOG,
                    quoteEndpoint(str(self.tls.key)),
                    quoteEndpoint(str(self.tls.cert)),
                )
            )
        argv = [
            self.python,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "--nodaemon",
            "--pidfile=",
            "--logfile={}".format(self._log.with_suffix(".twistd.log")),
            "myproto",
            "-m", str(MEMORY_MB),
            "-c", str(CONNECTIONS),
        ]
        for description in listen:
            argv += ["--listen", description]
        return argv

    def logTail(self, lines: int = 30) -> str:
        text = super().logTail(lines)
        twistdLog = self._log.with_suffix(".twistd.log")
        if twistdLog.exists():
            text += "\n" + "\n".join(twistdLog.read_text(errors="replace").splitlines()[-lines:])
        return text

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + path if path else "")
        return env

    def describe(self) -> str:
        """
        @return: the interpreter's name and version, and Twisted's; on
            PyPy, the size of its young-object nursery when
            C{PYPY_GC_NURSERY} sets it (see bench/README.md).
        """
        code = (
            "import os, platform, twisted; "
            "nursery = os.environ.get('PYPY_GC_NURSERY'); "
            "pypy = platform.python_implementation() == 'PyPy'; "
            "print(platform.python_implementation(), platform.python_version(), "
            "'/ Twisted', twisted.__version__, "
            "'(PYPY_GC_NURSERY=%s)' % nursery if pypy and nursery else '')"
        )
        result = subprocess.run([self.python, "-c", code], capture_output=True, text=True, env=self.environment())
        return result.stdout.strip() or "unknown interpreter"
