"""
C{twistd myproto-pool}: its options and generated twemproxy configuration
in memory, then real pools in child processes: keys through the proxy and
through hashing clients (pymemcache and pylibmc), a killed worker, SIGTERM,
and a proxy over "hosts" 127.0.0.2-4 mixing memcached and myproto.

Every child is started in a session of its own and killed with it at
cleanup, whatever happened; every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

import pylibmc
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
from twisted.python import usage
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

import myproto
from myproto.pool import Options, nutcrackerConfig, proxyListen
from myproto.poolmetrics import mergeExpositions, proxyExposition
from tests.helpers import selfSignedFiles
from tests.readme import readmeExample
from tests.reference import freePort

SOURCE_ROOT = Path(myproto.__file__).resolve().parent.parent
HOST = "127.0.0.1"

# Seconds any one wait may take before the test fails.
DEADLINE = 30.0


def wait(condition: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """
    Poll C{condition} until it is true, or fail after C{timeout} seconds.
    """
    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out after {}s waiting for {}".format(timeout, what))
        time.sleep(0.05)


def accepts(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def freePorts(count: int, hosts: tuple[str, ...] = (HOST,)) -> int:
    """
    @return: the first of C{count} consecutive ports free on every host.
    """
    for attempt in range(100):
        first = freePort()
        if first + count > 65535:
            continue
        probes = []
        try:
            for host in hosts:
                for port in range(first, first + count):
                    probe = socket.socket()
                    probes.append(probe)
                    probe.bind((host, port))
            return first
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise AssertionError("no {} consecutive free ports".format(count))


def sessionMembers(session: int) -> list[int]:
    """
    @return: the processes, zombies aside, in session C{session}.
    """
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(entry))
    return found


class Child:
    """
    A child process in a session of its own, its output in a file; killed
    with everything it started at the test's cleanup.
    """

    def __init__(self, test: SynchronousTestCase, arguments: list[str], directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.logPath = directory / "output-{}.log".format(len(list(directory.glob("output-*.log"))))
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(SOURCE_ROOT)] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        with open(self.logPath, "wb") as log:
            self.popen = subprocess.Popen(
                arguments,
                cwd=directory,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        test.addCleanup(self.kill)

    def output(self) -> str:
        return self.logPath.read_text(errors="replace")

    def waitFor(self, text: str, timeout: float = DEADLINE) -> None:
        wait(lambda: text in self.output() or self.popen.poll() is not None, repr(text), timeout)
        if text not in self.output():
            raise AssertionError("{!r} not in output:\n{}".format(text, self.output()[-3000:]))

    def stop(self, timeout: float = DEADLINE) -> int:
        """
        SIGTERM, then wait for it to exit.

        @return: its exit status.
        """
        self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def kill(self) -> None:
        if self.popen.poll() is None:
            try:
                self.stop(15)
            except subprocess.TimeoutExpired:
                pass
        for pid in sessionMembers(self.popen.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.popen.poll() is None:
            self.popen.wait(5)


def twistd(*arguments: str) -> list[str]:
    """
    @return: the command line of C{twistd -n myproto-pool ARGUMENTS}, with
        this interpreter.
    """
    run = "from twisted.scripts.twistd import run; run()"
    return [sys.executable, "-c", run, "--nodaemon", "--pidfile=", "myproto-pool", *arguments]


class Pool:
    """
    A running C{twistd myproto-pool} on free ports.
    """

    def __init__(
        self, test: SynchronousTestCase, workers: int, *extra: str, proxy: bool = True, like: Pool | None = None
    ) -> None:
        """
        @param like: a pool whose ports to take again.
        """
        self.directory = Path(test.mktemp())
        if like is None:
            self.first, self.proxyPort, self.statsPort = freePorts(workers), freePort(), freePort()
        else:
            self.first, self.proxyPort, self.statsPort = like.first, like.proxyPort, like.statsPort
        self.workers = [(HOST, self.first + index) for index in range(workers)]
        arguments = ["--workers", str(workers), "--worker-ports", str(self.first)]
        if proxy:
            arguments += ["--listen", "tcp:{}:interface={}".format(self.proxyPort, HOST)]
            arguments += ["--stats-port", str(self.statsPort)]
        else:
            arguments.append("--no-proxy")
        self.child = Child(test, twistd(*arguments, *extra), self.directory)
        for host, port in self.workers + ([(HOST, self.proxyPort)] if proxy else []):
            wait(lambda: accepts(host, port) or self.child.popen.poll() is not None, "port {}".format(port))
            if self.child.popen.poll() is not None:
                raise AssertionError(self.child.output())

    def proxy(self) -> Client:
        return Client((HOST, self.proxyPort), connect_timeout=2, timeout=2)

    def worker(self, index: int) -> Client:
        return Client(self.workers[index], connect_timeout=2, timeout=2)

    def addresses(self) -> list[str]:
        return ["{}:{}".format(*address) for address in self.workers]

    def placement(self, keys: list[str]) -> dict[str, int]:
        """
        @return: the worker holding each key, asked directly.
        """
        where: dict[str, int] = {}
        for index in range(len(self.workers)):
            for key in self.worker(index).get_many(keys):
                self.assertNew(where, key)
                where[key] = index
        return where

    @staticmethod
    def assertNew(where: dict[str, int], key: str) -> None:
        if key in where:
            raise AssertionError("{} is on two workers".format(key))

    def proxyStats(self) -> dict[str, object]:
        with socket.create_connection((HOST, self.statsPort), timeout=2) as connection:
            chunks = []
            while True:
                chunk = connection.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        return json.loads(b"".join(chunks))  # type: ignore[no-any-return]

    def pid(self, name: str) -> int:
        marker = "Started {} (pid ".format(name)
        text = self.child.output()
        return int(text[text.index(marker) + len(marker):].split(")", 1)[0])


KEYS = ["key-{}".format(index) for index in range(300)]
VALUES = {key: "value of {}".format(key).encode() for key in KEYS}


class OptionsTests(SynchronousTestCase):
    """
    The pool's command line, checked before anything starts.
    """

    def parse(self, *arguments: str) -> Options:
        options = Options()
        options.parseOptions(list(arguments))
        return options

    def test_memorySplit(self) -> None:
        """
        C{-m} is the pool's total, split evenly and rounded down.
        """
        options = self.parse("--workers", "3", "-m", "100", "--no-proxy")
        self.assertEqual(options["worker-memory"], 33)

    def test_threadsAreWorkers(self) -> None:
        """
        memcached's C{-t} names the number of worker processes.
        """
        self.assertEqual(self.parse("-t", "3", "--no-proxy")["workers"], 3)

    def test_defaultOnePerCore(self) -> None:
        """
        With no C{--workers}, one worker per core.
        """
        self.assertEqual(self.parse("--no-proxy")["workers"], os.cpu_count())

    def test_workerOptionsPassAndAreChecked(self) -> None:
        """
        Worker options go to every worker as given, and are checked as
        C{twistd myproto} checks them, against each worker's share of C{-m}.
        """
        options = self.parse("--workers", "2", "-I", "2m", "-c", "50", "--idle-timeout", "9", "-C", "-o", "hashpower=20", "--no-proxy")
        self.assertEqual(
            options["worker-arguments"],
            ["--max-item-size", "2m", "--conn-limit", "50", "--idle-timeout", "9", "--disable-cas", "-o", "hashpower=20"],
        )
        error = self.assertRaises(usage.UsageError, self.parse, "--workers", "2", "-m", "4", "-I", "2m", "--no-proxy")
        self.assertIn("worker options", str(error))

    def test_missingNutcracker(self) -> None:
        """
        Without C{nutcracker}, the error names the package to install and
        C{--no-proxy}, which still works.
        """
        options = Options()
        options.searchPath = self.mktemp()
        error = self.assertRaises(usage.UsageError, options.parseOptions, ["--workers", "1"])
        self.assertIn("install the nutcracker package", str(error))
        self.assertIn("--no-proxy", str(error))
        options = Options()
        options.searchPath = self.mktemp()
        options.parseOptions(["--workers", "1", "--no-proxy"])

    def test_tlsAndAuthNeedNoProxy(self) -> None:
        """
        twemproxy carries neither TLS nor authentication: with either, the
        proxy must be left out.
        """
        error = self.assertRaises(usage.UsageError, self.parse, "--workers", "1", "-Y", "users.txt")
        self.assertIn("--no-proxy", str(error))

    def test_proxyListen(self) -> None:
        """
        C{--listen} takes C{twistd myproto}'s TCP and Unix descriptions.
        """
        self.assertEqual(proxyListen("tcp:11211:interface=127.0.0.1"), "127.0.0.1:11211")
        self.assertEqual(proxyListen("tcp:11211:interface=\\:\\:1"), "[::1]:11211")
        self.assertEqual(proxyListen("unix:/run/p.sock:mode=660"), "/run/p.sock 660")
        self.assertRaises(ValueError, proxyListen, "ssl:11211")
        self.assertRaises(usage.UsageError, self.parse, "--workers", "1", "--listen", "tcp:x")

    def test_remote(self) -> None:
        """
        C{--remote} takes C{HOST:PORT}, repeated; with remotes, a pool may
        have no workers (a proxy for other hosts).
        """
        options = self.parse("--workers", "0", "--remote", "127.0.0.2:11211", "--remote", "127.0.0.3:11211")
        self.assertEqual(options["remote"], ["127.0.0.2:11211", "127.0.0.3:11211"])
        self.assertRaises(usage.UsageError, self.parse, "--remote", "nowhere")
        self.assertRaises(usage.UsageError, self.parse, "--workers", "0")

    def test_config(self) -> None:
        """
        The twemproxy configuration: ketama over unnamed servers, ejection
        and timeouts as given.
        """
        self.assertEqual(
            nutcrackerConfig("127.0.0.1:11211", ["127.0.0.1:11212", "/run/w.sock"], 400, 2000, 2),
            "myproto:\n"
            "  listen: 127.0.0.1:11211\n"
            "  hash: md5\n"
            "  distribution: ketama\n"
            "  timeout: 400\n"
            "  auto_eject_hosts: true\n"
            "  server_retry_timeout: 2000\n"
            "  server_failure_limit: 2\n"
            "  servers:\n"
            "   - 127.0.0.1:11212:1\n"
            "   - /run/w.sock:1\n",
        )


class MetricsMergeTests(SynchronousTestCase):
    """
    The pool's metrics page, from the workers' pages and twemproxy's stats.
    """

    def test_merge(self) -> None:
        """
        Each family's header once, then every worker's samples, labelled.
        """
        page = '# HELP up Up.\n# TYPE up gauge\nup 1\n# TYPE hits counter\nhits{command="get"} {}\n'
        merged = mergeExpositions([("0", page.replace("{}", "3")), ("1", page.replace("{}", "4"))])
        self.assertEqual(
            merged,
            [
                "# HELP up Up.",
                "# TYPE up gauge",
                'up{worker="0"} 1',
                'up{worker="1"} 1',
                "# TYPE hits counter",
                'hits{worker="0",command="get"} 3',
                'hits{worker="1",command="get"} 4',
            ],
        )

    def test_proxy(self) -> None:
        """
        twemproxy's numbers, by pool and server; its strings are left out.
        """
        document = {
            "service": "nutcracker",
            "uptime": 5,
            "myproto": {"server_ejects": 1, "127.0.0.1:1": {"requests": 7, "server_ejected_at": 0}},
        }
        self.assertEqual(
            proxyExposition(document),
            [
                "# TYPE nutcracker_server_requests untyped",
                'nutcracker_server_requests{pool="myproto",server="127.0.0.1:1"} 7',
                "# TYPE nutcracker_server_server_ejected_at untyped",
                'nutcracker_server_server_ejected_at{pool="myproto",server="127.0.0.1:1"} 0',
                "# TYPE nutcracker_pool_server_ejects untyped",
                'nutcracker_pool_server_ejects{pool="myproto"} 1',
                "# TYPE nutcracker_uptime untyped",
                "nutcracker_uptime 5",
            ],
        )


class PoolTests(SynchronousTestCase):
    """
    Real pools: workers supervised by twistd, twemproxy in front.
    """

    def test_proxyAndHashingClients(self) -> None:
        """
        Keys set through the proxy spread over every worker and read back
        through it, with pymemcache and pylibmc; pylibmc's ketama over the
        worker addresses finds them where the proxy put them, and keys set
        by pymemcache's HashClient and by pylibmc over the workers spread
        too and read back.  C{--metrics} serves every worker's series and
        the proxy's counters.
        """
        metricsPort = freePort()
        pool = Pool(self, 3, "--metrics", "tcp:{}:interface={}".format(metricsPort, HOST))
        proxy = pool.proxy()
        for key in KEYS:
            self.assertTrue(proxy.set(key, VALUES[key], noreply=False))
        self.assertEqual(proxy.get_many(KEYS), VALUES)
        placement = pool.placement(KEYS)
        self.assertEqual(sorted(placement), sorted(KEYS))
        self.assertEqual(sorted(set(placement.values())), [0, 1, 2])

        viaProxy = pylibmc.Client(["{}:{}".format(HOST, pool.proxyPort)])
        self.assertEqual(viaProxy.get_multi(KEYS), VALUES)
        # libmemcached's weighted ketama places keys as twemproxy's does.
        direct = pylibmc.Client(pool.addresses(), behaviors={"ketama_weighted": True})
        self.assertEqual(direct.get_multi(KEYS), VALUES)
        others = {"pylibmc-{}".format(index): b"p" for index in range(100)}
        direct.set_multi(others)
        self.assertEqual(viaProxy.get_multi(list(others)), others)
        self.assertEqual(proxy.get_many(list(others)), others)

        hashing = HashClient(pool.workers, connect_timeout=2, timeout=2)
        hashed = {"hash-{}".format(index): b"h" for index in range(300)}
        for key, value in hashed.items():
            self.assertTrue(hashing.set(key, value, noreply=False))
        self.assertEqual(hashing.get_many(list(hashed)), hashed)
        self.assertEqual(sorted(set(pool.placement(list(hashed)).values())), [0, 1, 2])

        page = urllib.request.urlopen("http://{}:{}/metrics".format(HOST, metricsPort), timeout=10).read().decode()
        for index in range(3):
            self.assertIn('myproto_pool_worker_up{{worker="{}"}} 1'.format(index), page)
            self.assertIn('memcached_commands_total{{worker="{}",command="set",status="hit"}}'.format(index), page)
        self.assertIn("nutcracker_up 1", page)
        for address in pool.addresses():
            self.assertIn('nutcracker_server_server_connections{{pool="myproto",server="{}"}}'.format(address), page)

        self.assertIn("Worker addresses, for a hashing client: " + " ".join(pool.addresses()), pool.child.output())
        self.assertEqual(pool.child.stop(), 0)
        self.assertEqual(sessionMembers(pool.child.popen.pid), [])

    def test_killedWorker(self) -> None:
        """
        A killed worker is restarted by the monitor, and the restart logged;
        its keys miss and refill, the other workers' keys are untouched, and
        the proxy ejects it and later admits it again.  A killed proxy is
        restarted and logged too.
        """
        pool = Pool(self, 3, "--server-failure-limit", "1", "--server-retry-timeout", "1000")
        proxy = pool.proxy()
        for key in KEYS:
            proxy.set(key, VALUES[key], noreply=False)
        placement = pool.placement(KEYS)
        lost = [key for key in KEYS if placement[key] == 1]
        kept = {key: VALUES[key] for key in KEYS if placement[key] != 1}
        pid = pool.pid("worker-1")
        os.kill(pid, signal.SIGKILL)

        def ejected() -> bool:
            try:
                pool.proxy().get(lost[0])
            except Exception:
                pass
            stats = pool.proxyStats()["myproto"]
            return stats["server_ejects"] >= 1  # type: ignore[index, operator, no-any-return]

        wait(ejected, "the proxy to eject the dead worker")
        pool.child.waitFor("worker-1 (pid {}) had exited; restarted it".format(pid))
        wait(lambda: accepts(*pool.workers[1]), "worker-1 to listen again")
        self.assertEqual(pool.worker(1).get_many(lost), {})
        self.assertEqual(pool.worker(0).get_many(list(kept)) | pool.worker(2).get_many(list(kept)), kept)

        def refilled() -> bool:
            for key in lost:
                pool.proxy().set(key, VALUES[key], noreply=False)
            return len(pool.worker(1).get_many(lost)) == len(lost)

        wait(refilled, "the proxy to send worker-1's keys to it again")
        self.assertEqual(pool.proxy().get_many(KEYS), VALUES)

        # The proxy, killed, is restarted too; the workers keep the keys.
        proxyPid = pool.pid("proxy")
        os.kill(proxyPid, signal.SIGKILL)
        pool.child.waitFor("proxy (pid {}) had exited; restarted it".format(proxyPid))
        wait(lambda: accepts(HOST, pool.proxyPort), "the proxy to listen again")
        self.assertEqual(pool.proxy().get_many(KEYS), VALUES)
        self.assertEqual(pool.child.stop(), 0)
        self.assertEqual(sessionMembers(pool.child.popen.pid), [])

    def test_sigtermSavesAndStopsAll(self) -> None:
        """
        SIGTERM stops every worker and the proxy, each worker saving its own
        snapshot; the pool exits with status 0, leaves no process behind and
        removes its run directory; started again, it serves the same keys.
        """
        snapshot = Path(self.mktemp()).resolve()
        pool = Pool(self, 2, "--snapshot", str(snapshot))
        for key in KEYS:
            pool.proxy().set(key, VALUES[key], noreply=False)
        output = pool.child.output()
        marker = "its configuration: "
        runDirectory = Path(output[output.index(marker) + len(marker):].split()[0].rstrip(";")).parent
        self.assertTrue(runDirectory.exists())
        self.assertEqual(pool.child.stop(), 0)
        self.assertEqual(sessionMembers(pool.child.popen.pid), [])
        self.assertFalse(runDirectory.exists())
        self.assertTrue(Path("{}.0".format(snapshot)).exists())
        self.assertTrue(Path("{}.1".format(snapshot)).exists())
        # The same ports: twemproxy's ketama places keys by address.
        again = Pool(self, 2, "--snapshot", str(snapshot), like=pool)
        self.assertEqual(again.proxy().get_many(KEYS), VALUES)

    def test_noProxyUnixSockets(self) -> None:
        """
        C{--no-proxy} runs the workers alone, here on Unix sockets, with the
        worker options given.
        """
        directory = Path(self.mktemp()).resolve()
        # Unix socket paths are short (108 bytes): not under _trial_temp.
        sockets = Path(tempfile.mkdtemp(prefix="pool-"))
        self.addCleanup(shutil.rmtree, sockets, True)
        child = Child(
            self,
            twistd("--workers", "2", "--no-proxy", "--worker-sockets", str(sockets), "-I", "2m", "-m", "16"),
            directory,
        )
        paths = [str(sockets / "worker-{}.sock".format(index)) for index in range(2)]
        wait(lambda: all(os.path.exists(path) for path in paths), "the sockets")
        child.waitFor("Worker addresses, for a hashing client: " + " ".join(paths))
        big = b"x" * (1024 * 1024 + 10)  # over the default -I, under 2m
        for path in paths:
            client = Client(path, connect_timeout=2, timeout=2)
            wait(lambda: self._answers(client), "the worker on {}".format(path))
            self.assertTrue(client.set("big", big, noreply=False))
            self.assertEqual(client.get("big"), big)
        self.assertNotIn("nutcracker", child.output())
        self.assertEqual(child.stop(), 0)
        self.assertEqual(sessionMembers(child.popen.pid), [])

    def test_readmeExamples(self) -> None:
        """
        The README's client examples for a pool work as written, on this
        pool's ports.
        """
        pool = Pool(self, 2)
        ports = {"11211": pool.proxyPort, "11212": pool.first, "11213": pool.first + 1}
        for name, printed in [("pool-pylibmc", "hello"), ("pool-hashclient", "b'hello'"), ("pool-proxy", "b'hello'")]:
            code = readmeExample(name)
            for old, new in ports.items():
                code = code.replace(old, str(new))
            output = io.StringIO()
            with contextlib.redirect_stdout(output):
                exec(compile(code, name, "exec"), {})
            self.assertEqual(output.getvalue(), printed + "\n", name)

    def test_tlsAndAuthPassThrough(self) -> None:
        """
        With C{--no-proxy}, C{-Z -o ssl_*} and C{-Y} reach every worker:
        each serves TLS and asks clients to authenticate.
        """
        directory = Path(self.mktemp()).resolve()
        keyFile, certFile, certificate = selfSignedFiles(FilePath(str(directory / "tls")), "localhost")
        users = directory / "users.txt"
        users.write_text("alice:s3cret\n")
        first = freePorts(2)
        child = Child(
            self,
            twistd(
                "--workers", "2", "--no-proxy", "--worker-ports", str(first), "-Y", str(users),
                "-Z", "-o", "ssl_chain_cert={},ssl_key={}".format(certFile.path, keyFile.path),
            ),
            directory,
        )
        context = ssl.create_default_context(cadata=certificate.decode("ascii"))
        for port in (first, first + 1):
            wait(lambda: accepts(HOST, port), "port {}".format(port))
            client = Client((HOST, port), connect_timeout=2, timeout=2, tls_context=context)
            self.assertRaises(Exception, client.set, "k", "v", noreply=False)
            client.close()
            self.assertTrue(client.set("auth", "alice s3cret", noreply=False))
            self.assertTrue(client.set("k", "v", noreply=False))
            self.assertEqual(client.get("k"), b"v")
            client.close()
        self.assertEqual(child.stop(), 0)

    @staticmethod
    def _answers(client: Client) -> bool:
        try:
            client.version()
            return True
        except Exception:
            client.close()
            return False


class AcrossHostsTests(SynchronousTestCase):
    """
    One twemproxy spreading keys over servers on three "hosts" (127.0.0.2,
    127.0.0.3, 127.0.0.4), memcached and myproto mixed.
    """

    HOSTS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")

    def serve(self, kinds: tuple[str, ...], port: int, proxyPort: int, statsPort: int) -> dict[str, int]:
        """
        Run one server of each kind on each host and a proxy over them, set
        the keys through the proxy, and stop everything.

        @return: the host (by index) holding each key.
        """
        directory = Path(self.mktemp())
        children = []
        for host, kind in zip(self.HOSTS, kinds):
            if kind == "memcached":
                arguments = ["memcached", "-l", host, "-p", str(port), "-U", "0", "-m", "16"]
                if os.geteuid() == 0:
                    arguments += ["-u", "root"]
            else:
                arguments = twistd("--workers", "1", "--no-proxy", "--worker-interface", host, "--worker-ports", str(port))
            children.append(Child(self, arguments, directory))
        remotes = ["--remote={}:{}".format(host, port) for host in self.HOSTS]
        proxy = Child(
            self,
            twistd("--workers", "0", *remotes, "--listen", "tcp:{}:interface={}".format(proxyPort, HOST), "--stats-port", str(statsPort)),
            directory,
        )
        for host in self.HOSTS:
            wait(lambda: accepts(host, port), "{}:{}".format(host, port))
        wait(lambda: accepts(HOST, proxyPort), "the proxy")
        client = Client((HOST, proxyPort), connect_timeout=2, timeout=2)
        for key in KEYS:
            self.assertTrue(client.set(key, VALUES[key], noreply=False))
        self.assertEqual(client.get_many(KEYS), VALUES)
        where = {}
        for index, host in enumerate(self.HOSTS):
            for key in Client((host, port), connect_timeout=2, timeout=2).get_many(KEYS):
                where[key] = index
        for child in children + [proxy]:
            self.assertEqual(child.stop(), 0, child.output())
        return where

    def test_mixedPoolPlacesKeysAsMemcached(self) -> None:
        """
        With the same configuration, a pool of myproto, memcached and myproto
        serves every key from the server an all-memcached pool does, and
        keys spread over all three hosts.
        """
        port = freePorts(1, self.HOSTS)
        proxyPort, statsPort = freePort(), freePort()
        memcached = self.serve(("memcached",) * 3, port, proxyPort, statsPort)
        mixed = self.serve(("myproto", "memcached", "myproto"), port, proxyPort, statsPort)
        self.assertEqual(sorted(memcached), sorted(KEYS))
        self.assertEqual(sorted(set(memcached.values())), [0, 1, 2])
        self.assertEqual(mixed, memcached)


class ApplicationFileTests(SynchronousTestCase):
    """
    C{tac/pool.tac} builds the same pool as the plugin, from the
    environment.
    """

    def test_tac(self) -> None:
        """
        The environment's worker count, ports and memory reach the pool; with
        C{MYPROTO_POOL_NO_PROXY=1} it runs no proxy.
        """
        from twisted.application.service import IServiceCollection

        for name, value in [
            ("MYPROTO_POOL_WORKERS", "3"),
            ("MYPROTO_POOL_WORKER_PORTS", "21000"),
            ("MYPROTO_MEMORY_LIMIT", "300"),
            ("MYPROTO_POOL_NO_PROXY", "1"),
        ]:
            self.addCleanup(os.environ.pop, name, None)
            os.environ[name] = value
        namespace = runpy.run_path(str(SOURCE_ROOT / "tac" / "pool.tac"))
        (pool,) = list(IServiceCollection(namespace["application"]))
        self.addCleanup(shutil.rmtree, pool.temporary, True)
        self.assertEqual(
            pool.lines,
            [
                "myproto {} pool: 3 workers, 100 megabytes each (-m 300 split evenly)".format(myproto.__version__),
                "Worker addresses, for a hashing client: 127.0.0.1:21000 127.0.0.1:21001 127.0.0.1:21002",
            ],
        )


class ScrapeTimeoutTests(SynchronousTestCase):
    """
    A worker or proxy that does not answer a scrape in time is hung up on
    and reported down, and the page is still served.
    """

    def test_silentWorker(self) -> None:
        """
        After L{SCRAPE_TIMEOUT} seconds without an answer, the connection is
        aborted and C{myproto_pool_worker_up} is 0.
        """
        from twisted.internet.testing import MemoryReactorClock, StringTransport

        from myproto.poolmetrics import SCRAPE_TIMEOUT, PoolMetricsResource

        reactor = MemoryReactorClock()
        resource = PoolMetricsResource(reactor, {"0": "/nowhere.sock"}, None)
        pages: list[str] = []
        resource.page().addCallback(pages.append)
        (path, factory, timeout, check) = reactor.unixClients[0]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.value(), b"GET /metrics HTTP/1.0\r\nHost: worker\r\n\r\n")
        self.assertEqual(pages, [])
        reactor.advance(SCRAPE_TIMEOUT)
        self.assertTrue(transport.disconnecting)
        (page,) = pages
        self.assertIn('myproto_pool_worker_up{worker="0"} 0', page)
