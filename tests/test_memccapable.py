"""
libmemcached's C{memccapable} conformance checker, its ASCII tests (C{-a})
and its binary ones (C{-b}), against myproto serving in this process (and
against memcached, to check the checker).

C{memccapable} prints each test's name on stdout and its verdict on stdout
(C{[pass]}) or stderr (C{[FAIL]}), so the two cannot be lined up from one
run; a failed run is repeated one test at a time (C{-T name -v}) to say which
tests failed and why.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from typing import Optional

from twisted.internet.defer import Deferred
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import SkipTest, TestCase

from tests.helpers import waitFor
from tests.readme import childEnvironment
from tests.reference import MEMCCAPABLE_MISSING, freePort, listenMyproto, startMemcached

#: The command line memcached's own test suite starts memcached with (its
#: t/lib/MemcachedTest.pm), after the program: a port, loopback only, no UDP.
MEMCACHED_TEST_OPTIONS = ("-l", "127.0.0.1", "-U", "0", "-m", "64", "-c", "1024", "-t", "4")

#: Seconds a child server may take to start listening.
START_LIMIT = 20.0

#: Seconds memccapable waits for any one reply (its C{-t}).
IO_TIMEOUT = 5

#: memccapable's option for each protocol, by the word its test names start with.
_MODES = {b"ascii": "-a", b"binary": "-b"}


def _names(mode: bytes) -> re.Pattern[bytes]:
    return re.compile(mode + rb"(?: [a-z_]+)*")


def _passed(mode: bytes) -> re.Pattern[bytes]:
    return re.compile(b"(" + mode + rb"(?: [a-z_]+)*) +\[pass\]")


def accepts(port: int) -> bool:
    """
    @return: whether something accepts connections on 127.0.0.1:C{port}.
    """
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def requireMemccapable() -> str:
    """
    @return: the path of the C{memccapable} binary.
    @raise SkipTest: if there is none on C{PATH}.
    """
    path = shutil.which("memccapable")
    if path is None:
        raise SkipTest(MEMCCAPABLE_MISSING)
    return path


async def runMemccapable(
    binary: str, port: int, test: Optional[bytes] = None, mode: bytes = b"ascii"
) -> tuple[bytes, bytes, int]:
    """
    Run memccapable's tests of one protocol against 127.0.0.1:C{port}.

    @param binary: the memccapable binary.
    @param port: the server's port.
    @param test: run only the test with this name, verbosely.
    @param mode: C{b"ascii"} or C{b"binary"}.
    @return: its stdout, stderr and exit status.
    """
    from twisted.internet import reactor

    args = [_MODES[mode], "-h", "127.0.0.1", "-p", str(port), "-t", str(IO_TIMEOUT)]
    if test is not None:
        args += ["-v", "-T", test.decode()]
    out, err, code = await getProcessOutputAndValue(
        binary, args, env=dict(os.environ), reactor=reactor
    )
    return out, err, code


async def failures(
    binary: str, port: int, mode: bytes = b"ascii"
) -> tuple[list[bytes], list[str]]:
    """
    Run every test of one protocol; rerun each failed one alone for its
    diagnostics.

    @param mode: C{b"ascii"} or C{b"binary"}.
    @return: the names of all tests seen, and a report for each failure.
    """
    out, err, code = await runMemccapable(binary, port, mode=mode)
    names = _names(mode).findall(out)
    passed = set(_passed(mode).findall(out))
    if code == 0 and b"All tests passed" in out and names:
        return names, []
    report = []
    for name in names:
        if name in passed:
            continue
        alone = await runMemccapable(binary, port, name, mode)
        report.append(
            "{}: exit {}\n    {}".format(
                name.decode(),
                alone[2],
                (alone[0] + alone[1]).decode("replace").strip().replace("\n", "\n    "),
            )
        )
    if not report:
        report.append(
            "memccapable exited {} without naming a failed test:\n{}\n{}".format(
                code, out.decode("replace"), err.decode("replace")
            )
        )
    return names, report


class MemccapableTests(TestCase):
    """
    C{memccapable -a} and C{memccapable -b} pass against myproto.
    """

    timeout = 120

    def test_myprotoPassesAsciiTests(self) -> Deferred[None]:
        """
        Every ASCII test passes (set, get, gets, cas, noreply forms, flush,
        incr/decr, append/prepend, verbosity, version, quit, stat).
        """

        async def check() -> None:
            binary = requireMemccapable()
            port, stop = await listenMyproto()
            self.addCleanup(stop)
            names, report = await failures(binary, port)
            if report:
                self.fail(
                    "{} of {} memccapable ASCII tests failed against myproto:\n  {}".format(
                        len(report), len(names), "\n  ".join(report)
                    )
                )
            self.assertGreaterEqual(len(names), 27)

        return Deferred.fromCoroutine(check())

    def test_myprotoPassesBinaryTests(self) -> Deferred[None]:
        """
        Every binary test passes, all 27 (the quiet forms of set, add,
        replace, delete, get, getk, incr, decr, append, prepend, flush and
        quit among them, and stat).
        """

        async def check() -> None:
            binary = requireMemccapable()
            port, stop = await listenMyproto()
            self.addCleanup(stop)
            names, report = await failures(binary, port, b"binary")
            if report:
                self.fail(
                    "{} of {} memccapable binary tests failed against myproto:\n  {}".format(
                        len(report), len(names), "\n  ".join(report)
                    )
                )
            self.assertEqual(len(names), 27)

        return Deferred.fromCoroutine(check())

    def test_dropInCommandLine(self) -> Deferred[None]:
        """
        C{python -m myproto}, started with the command line memcached's own
        test suite gives memcached (C{-p PORT -l 127.0.0.1 -U 0 ...}), passes
        the same tests: myproto stands in for memcached unchanged.
        """

        async def check() -> None:
            binary = requireMemccapable()
            port = freePort()
            process = subprocess.Popen(
                [sys.executable, "-m", "myproto", "-p", str(port), *MEMCACHED_TEST_OPTIONS],
                env=childEnvironment(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

            def stop() -> None:
                process.terminate()
                try:
                    process.wait(timeout=START_LIMIT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()

            self.addCleanup(stop)
            await waitFor(lambda: accepts(port), START_LIMIT, "python -m myproto to listen")
            names, report = await failures(binary, port)
            self.assertEqual(report, [])
            self.assertGreaterEqual(len(names), 27)

        return Deferred.fromCoroutine(check())

    def test_memcachedPassesAsciiTests(self) -> Deferred[None]:
        """
        The same tests pass against memcached 1.6.18, so a failure above is
        myproto's, and this module reads memccapable's output right.
        """

        async def check() -> None:
            binary = requireMemccapable()
            memcached = await startMemcached(self)
            names, report = await failures(binary, memcached.port)
            self.assertEqual(report, [])
            self.assertGreaterEqual(len(names), 27)

        return Deferred.fromCoroutine(check())

    def test_memcachedPassesBinaryTests(self) -> Deferred[None]:
        """
        The 27 binary tests pass against memcached 1.6.18 too.
        """

        async def check() -> None:
            binary = requireMemccapable()
            memcached = await startMemcached(self)
            names, report = await failures(binary, memcached.port, b"binary")
            self.assertEqual(report, [])
            self.assertEqual(len(names), 27)

        return Deferred.fromCoroutine(check())
