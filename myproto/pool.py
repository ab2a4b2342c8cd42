"""
C{twistd myproto-pool}: several myproto worker processes, each its own
cache on its own address, supervised by Twisted's L{ProcessMonitor}, with
twemproxy (C{nutcracker}) in front on one public address.

Clients either hash keys over the workers' addresses themselves (the way
memcached fleets work, and the cheaper path), or talk to the proxy, which
shards keys over the workers (and any C{--remote} servers) with ketama.
Nothing here routes a request: the proxy is twemproxy, the ring is
twemproxy's or the client's.

Each worker is C{python -m myproto} with the pool's worker options passed
through unchanged; C{-m} is the pool's total, split evenly (rounded down);
C{--snapshot FILE} gives worker I the file C{FILE.I}.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from typing import Any, Mapping

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python import usage
from twisted.runner.procmon import ProcessMonitor

import myproto
from myproto.options import Options as WorkerOptions
from myproto.poolmetrics import poolMetricsSite
from myproto.service import ExitCleanlyOnSignals

DEFAULT_PROXY_LISTEN = "tcp:11211:interface=127.0.0.1"
DEFAULT_WORKER_PORT = 11212
DEFAULT_WORKER_INTERFACE = "127.0.0.1"
DEFAULT_MEMORY_LIMIT = 64  # megabytes, for the whole pool
DEFAULT_STATS_PORT = 22222  # twemproxy's own default, bound to 127.0.0.1 here
NUTCRACKER_PACKAGE = "nutcracker"

# Seconds a stopping worker has to drain and save its snapshot before it is
# killed.
WORKER_KILL_TIME = 30.0

# Worker options passed through as given: (long name, short name, flag?).
PASSED_PARAMETERS = [
    ("max-item-size", "I"),
    ("conn-limit", "c"),
    ("listen-backlog", "b"),
    ("protocol", "B"),
    ("idle-timeout", None),
    ("request-timeout", None),
    ("auth-file", "Y"),
    ("snapshot-interval", None),
    ("banner", None),
]
PASSED_FLAGS = [
    ("disable-cas", "C"),
    ("disable-evictions", "M"),
    ("disable-flush-all", "F"),
    ("disable-dumping", "X"),
    ("disable-watch", "W"),
    ("enable-shutdown", "A"),
    ("enable-ssl", "Z"),
]


def findNutcracker(path: str | None = None) -> str | None:
    """
    @param path: where to look, as C{PATH} is written; by default C{PATH}
        and the C{sbin} directories Debian installs it in.
    @return: the path of twemproxy's C{nutcracker}, or L{None}.
    """
    if path is None:
        directories = os.environ.get("PATH", os.defpath).split(os.pathsep)
        path = os.pathsep.join(directories + ["/usr/sbin", "/usr/local/sbin", "/sbin"])
    return shutil.which("nutcracker", path=path)


def _splitDescription(description: str) -> list[str]:
    # Endpoint descriptions escape a colon inside a value with a backslash.
    parts, current, escaped = [], "", False
    for character in description:
        if escaped:
            current += character
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ":":
            parts.append(current)
            current = ""
        else:
            current += character
    parts.append(current)
    return parts


def proxyListen(description: str) -> str:
    """
    Turn C{--listen}'s description into twemproxy's C{listen:} value.

    @param description: C{tcp:PORT[:interface=ADDRESS]} or
        C{unix:PATH[:mode=OCTAL]}, as C{twistd myproto --listen} takes them.
    @return: C{ADDRESS:PORT} or C{PATH MODE}.
    @raise ValueError: for any other description, or a bad one.
    """
    kind, *rest = _splitDescription(description)
    arguments = [part for part in rest[1:]]
    keywords = dict(part.partition("=")[::2] for part in arguments if "=" in part)
    if kind == "tcp" and rest and rest[0].isdigit():
        interface = keywords.get("interface", "0.0.0.0")
        if ":" in interface:
            interface = "[{}]".format(interface)
        return "{}:{}".format(interface, int(rest[0]))
    if kind == "unix" and rest and rest[0]:
        return "{} {}".format(os.path.abspath(rest[0]), keywords.get("mode", "700"))
    raise ValueError(
        "--listen {}: twemproxy listens on tcp:PORT:interface=ADDRESS or unix:PATH only".format(description)
    )


def parseRemote(value: str) -> str:
    """
    @param value: C{HOST:PORT} (C{[IPV6]:PORT}) or an absolute Unix socket path.
    @return: the same, checked.
    @raise ValueError: if it is neither.
    """
    if value.startswith("/"):
        return value
    host, colon, port = value.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("--remote {}: give HOST:PORT".format(value))
    return value


def nutcrackerConfig(
    listen: str,
    servers: list[str],
    timeout: int,
    retryTimeout: int,
    failureLimit: int,
    name: str = "myproto",
) -> str:
    """
    twemproxy's YAML configuration for one pool.

    Servers get no names, so twemproxy's ketama places keys by C{HOST:PORT},
    as libmemcached's ketama does (pylibmc with C{ketama}), and a server
    replaced by another on the same address keeps its keys.

    @param listen: twemproxy's C{listen:} value (L{proxyListen}).
    @param servers: C{HOST:PORT} or Unix socket paths, in order.
    @param timeout: milliseconds twemproxy waits for a server's reply.
    @param retryTimeout: milliseconds before an ejected server is tried again.
    @param failureLimit: consecutive failures that eject a server.
    """
    lines = [
        "{}:".format(name),
        "  listen: {}".format(listen),
        "  hash: md5",
        "  distribution: ketama",
        "  timeout: {}".format(timeout),
        "  auto_eject_hosts: true",
        "  server_retry_timeout: {}".format(retryTimeout),
        "  server_failure_limit: {}".format(failureLimit),
        "  servers:",
    ]
    lines.extend("   - {}:1".format(server) for server in servers)
    return "\n".join(lines) + "\n"


class Options(usage.Options):
    """
    The options of C{twistd myproto-pool}.
    """

    synopsis = "[options]"
    # Where to look for nutcracker, as PATH is written (None: the default).
    searchPath: str | None = None
    longdesc = (
        "Run a pool of myproto worker processes, one per core by default,"
        " each its own cache on its own address, supervised (a worker that dies"
        " is restarted), with twemproxy (nutcracker) in front on --listen. -m is"
        " the pool's total memory, split evenly between the workers. The worker"
        " options below pass through to every worker."
    )

    optFlags = [
        ["no-proxy", None, "Run no proxy: clients hash keys over the worker addresses themselves."],
    ] + [[name, short, "Passed to each worker (see twistd myproto --help)."] for name, short in PASSED_FLAGS]

    optParameters = [
        ["workers", None, None, "Worker processes [default: one per core].", int],
        ["worker-ports", None, DEFAULT_WORKER_PORT, "Worker I listens on TCP port FIRST+I.", int],
        ["worker-interface", None, DEFAULT_WORKER_INTERFACE, "Address the workers listen on."],
        ["worker-sockets", None, None, "Workers listen on DIR/worker-I.sock instead of TCP ports."],
        ["listen", "l", DEFAULT_PROXY_LISTEN, "The proxy's address: tcp:PORT:interface=ADDRESS or unix:PATH."],
        ["memory-limit", "m", DEFAULT_MEMORY_LIMIT, "Item memory of the whole pool in megabytes, split evenly.", int],
        ["snapshot", None, None, "Worker I saves and loads its cache in FILE.I."],
        ["metrics", None, None, "Serve every worker's and the proxy's metrics at /metrics on this endpoint."],
        ["stats-port", None, DEFAULT_STATS_PORT, "twemproxy's stats port, on 127.0.0.1.", int],
        ["proxy-timeout", None, 1000, "Milliseconds the proxy waits for a server (twemproxy timeout).", int],
        ["server-retry-timeout", None, 2000, "Milliseconds before the proxy retries an ejected server.", int],
        ["server-failure-limit", None, 2, "Consecutive failures after which the proxy ejects a server.", int],
        ["run-dir", None, None, "Where the proxy's configuration and metrics sockets go [default: a new temporary directory]."],
        ["nutcracker", None, None, "The nutcracker program [default: found on PATH or in /usr/sbin]."],
    ] + [[name, short, None, "Passed to each worker."] for name, short in PASSED_PARAMETERS]

    def __init__(self) -> None:
        super().__init__()
        self["remote"] = []
        self["extended"] = []
        self["verbose"] = 0

    def opt_threads(self, value: str) -> None:
        """memcached's -t: the number of worker processes here (same as --workers)."""
        self["workers"] = int(value)

    opt_t = opt_threads

    def opt_remote(self, value: str) -> None:
        """Another server (HOST:PORT, myproto or memcached) the proxy shards keys over (repeatable)."""
        try:
            self["remote"].append(parseRemote(value))
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    def opt_extended(self, value: str) -> None:
        """memcached's -o list, passed to each worker (repeatable)."""
        self["extended"].append(value)

    opt_o = opt_extended

    def opt_verbose(self) -> None:
        """Passed to each worker (repeatable)."""
        self["verbose"] += 1

    opt_v = opt_verbose

    def workerArguments(self) -> list[str]:
        """
        @return: the worker options given, as a worker's command line.
        """
        arguments = []
        for name, short in PASSED_PARAMETERS:
            if self[name] is not None:
                arguments += ["--" + name, self[name]]
        for name, short in PASSED_FLAGS:
            if self[name]:
                arguments.append("--" + name)
        for value in self["extended"]:
            arguments += ["-o", value]
        arguments += ["-v"] * self["verbose"]
        return arguments

    def postOptions(self) -> None:
        workers = self["workers"]
        if workers is None:
            workers = self["workers"] = os.cpu_count() or 1
        if workers < 0 or workers == 0 and not self["remote"]:
            raise usage.UsageError("--workers: give 1 or more (0 only with --remote servers)")
        if self["no-proxy"] and not workers:
            raise usage.UsageError("--no-proxy with no workers runs nothing")
        self["worker-memory"] = self["memory-limit"] // max(workers, 1)
        if workers and self["worker-memory"] < 1:
            raise usage.UsageError(
                "-m {}: less than 1 megabyte for each of {} workers".format(self["memory-limit"], workers)
            )
        if not self["no-proxy"]:
            for option in ("enable-ssl", "auth-file"):
                if self[option]:
                    raise usage.UsageError(
                        "--{}: twemproxy can carry neither TLS nor authentication to the"
                        " workers; add --no-proxy and have clients reach the workers directly".format(option)
                    )
        self["worker-arguments"] = self.workerArguments()
        if workers:
            check = WorkerOptions()
            try:
                check.parseOptions(
                    ["-l", "tcp:0:interface=127.0.0.1", "-m", str(self["worker-memory"])]
                    + self["worker-arguments"]
                )
            except usage.UsageError as e:
                raise usage.UsageError("worker options: {}".format(e)) from None
        if self["no-proxy"]:
            return
        try:
            self["proxy-listen"] = proxyListen(self["listen"])
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        if self["nutcracker"] is None:
            self["nutcracker"] = findNutcracker(self.searchPath)
        if self["nutcracker"] is None:
            raise usage.UsageError(
                "twemproxy's nutcracker program is not installed: install the {} package"
                " (apt-get install {}), or add --no-proxy to run the workers without"
                " it".format(NUTCRACKER_PACKAGE, NUTCRACKER_PACKAGE)
            )


class PoolMonitor(ProcessMonitor):
    """
    A L{ProcessMonitor} that logs each start (a restart names the process
    that ended), and whose C{stopService} waits until every process has
    ended.

    @ivar pids: the process id of each process started, by name.
    """

    log = Logger()

    def __init__(self, reactor: Any) -> None:
        super().__init__(reactor=reactor)
        self.clock = reactor
        self.pids: dict[str, int] = {}

    def startProcess(self, name: str) -> None:
        starting = name not in self.protocols
        super().startProcess(name)
        protocol = self.protocols.get(name)
        if not starting or protocol is None or protocol.transport is None:
            return
        pid = protocol.transport.pid
        previous = self.pids.get(name)
        self.pids[name] = pid
        if previous is None:
            self.log.info("Started {name} (pid {pid})", name=name, pid=pid)
        else:
            self.log.warn(
                "{name} (pid {previous}) had exited; restarted it (pid {pid})",
                name=name,
                previous=previous,
                pid=pid,
            )

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if not self.protocols:
            return succeed(None)
        ended: Deferred[None] = Deferred()

        def check() -> None:
            if not self.protocols:
                poll.stop()

        poll = LoopingCall(check)
        poll.clock = self.clock
        poll.start(0.05).addCallback(lambda ignored: ended.callback(None))
        return ended


class PoolService(MultiService):
    """
    The pool: logs its layout as it starts, and removes its run directory
    (when it made it) once every process has ended.
    """

    log = Logger()

    def __init__(self, lines: list[str], temporary: str | None) -> None:
        super().__init__()
        self.lines = lines
        self.temporary = temporary

    def privilegedStartService(self) -> None:
        for line in self.lines:
            self.log.info("{line}", line=line)
        super().privilegedStartService()

    def stopService(self) -> Deferred[Any]:
        stopped = super().stopService()
        if self.temporary is not None:
            stopped.addBoth(self._clean)
        return stopped

    def _clean(self, result: object) -> object:
        if self.temporary is not None:
            shutil.rmtree(self.temporary, ignore_errors=True)
        return result


def _workerAddress(config: Mapping[str, Any], index: int) -> tuple[str, str]:
    """
    @return: worker C{index}'s C{-l} value (memcached's interface form, or
        a C{unix:} description) and its address as a client or twemproxy
        names it.
    """
    if config.get("worker-sockets"):
        path = os.path.abspath(os.path.join(config["worker-sockets"], "worker-{}.sock".format(index)))
        return "unix:{}:mode=700".format(path.replace(":", "\\:")), path
    port = int(config.get("worker-ports", DEFAULT_WORKER_PORT)) + index
    interface = config.get("worker-interface", DEFAULT_WORKER_INTERFACE)
    shown = "[{}]".format(interface) if ":" in interface else interface
    # memcached's -l form, not a tcp: description, so that -Z makes it TLS.
    address = "{}:{}".format(shown, port)
    return address, address


def makeService(config: Mapping[str, Any], reactor: Any = None) -> MultiService:
    """
    Build the pool: its L{PoolMonitor} with one process per worker and one
    for the proxy, and with C{--metrics} the merged metrics endpoint.

    @param config: parsed L{Options}, or a mapping with the same keys (a
        C{.tac} file's); L{Options.postOptions} fills in the derived ones.
    @param reactor: the reactor to spawn and listen with; the global one if
        L{None}.
    """
    if reactor is None:
        from twisted.internet import reactor
    if not isinstance(config, Options):
        parsed = Options()
        parsed.update(config)
        parsed.postOptions()
        config = parsed
    workers = config["workers"]
    temporary = None
    runDir = config.get("run-dir")
    if not runDir:
        runDir = temporary = tempfile.mkdtemp(prefix="myproto-pool-")
    os.makedirs(runDir, exist_ok=True)
    if config.get("worker-sockets"):
        os.makedirs(config["worker-sockets"], exist_ok=True)

    environment = dict(os.environ)
    # The workers import the same myproto as this process.
    here = os.path.dirname(os.path.dirname(os.path.abspath(myproto.__file__)))
    environment["PYTHONPATH"] = os.pathsep.join(
        [here] + [part for part in environment.get("PYTHONPATH", "").split(os.pathsep) if part]
    )
    environment["PYTHONUNBUFFERED"] = "1"

    monitor = PoolMonitor(reactor)
    monitor.killTime = WORKER_KILL_TIME
    monitor.setName("monitor")
    addresses = []
    metricsSockets = {}
    for index in range(workers):
        description, address = _workerAddress(config, index)
        addresses.append(address)
        arguments = [sys.executable, "-m", "myproto", "-l", description, "-m", str(config["worker-memory"])]
        if config.get("snapshot"):
            arguments += ["--snapshot", "{}.{}".format(os.path.abspath(config["snapshot"]), index)]
        if config.get("metrics"):
            metricsSockets[str(index)] = os.path.join(runDir, "metrics-{}.sock".format(index))
            arguments += ["--metrics", "unix:{}:mode=700".format(metricsSockets[str(index)])]
        arguments += config["worker-arguments"]
        monitor.addProcess("worker-{}".format(index), arguments, env=environment)

    if workers:
        layout = "{} workers, {} megabytes each (-m {} split evenly)".format(
            workers, config["worker-memory"], config["memory-limit"]
        )
    else:
        layout = "no workers, a proxy for the --remote servers"
    lines = ["myproto {} pool: {}".format(myproto.__version__, layout)]
    if addresses:
        lines.append("Worker addresses, for a hashing client: {}".format(" ".join(addresses)))
    statsAddress = None
    if not config.get("no-proxy"):
        servers = addresses + list(config.get("remote", []))
        path = os.path.join(runDir, "nutcracker.yml")
        with open(path, "w") as file:
            file.write(
                nutcrackerConfig(
                    config["proxy-listen"],
                    servers,
                    config["proxy-timeout"],
                    config["server-retry-timeout"],
                    config["server-failure-limit"],
                )
            )
        statsAddress = ("127.0.0.1", config["stats-port"])
        monitor.addProcess(
            "proxy",
            [
                config["nutcracker"],
                "-c", path,
                "-a", statsAddress[0],
                "-s", str(statsAddress[1]),
                "-i", "1000",
            ],
            env=environment,
        )
        lines.append(
            "Proxy (twemproxy, ketama) on {} over {}; its configuration: {}; its stats:"
            " {}:{}".format(config["listen"], " ".join(servers), path, *statsAddress)
        )
    top = PoolService(lines, temporary)
    top.setName("pool")
    monitor.setServiceParent(top)
    if config.get("metrics"):
        site = poolMetricsSite(reactor, metricsSockets, statsAddress)
        strports.service(config["metrics"], site, reactor=reactor).setServiceParent(top)
    ExitCleanlyOnSignals(reactor).setServiceParent(top)
    return top
