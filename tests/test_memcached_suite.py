"""
memcached 1.6.18's own text-protocol tests (its Perl t/*.t suite) against
myproto, which the suite's harness starts with memcached's command line.

C{tests/memcached_suite/run} fetches memcached's source from Debian
(C{apt-get source memcached}), puts a C{memcached-debug} that starts
C{python -m myproto} where the harness looks for the binary, and runs the
selected files with C{prove}; that script lists the files left out and why.
Nothing here is skipped: a missing C{prove}, a source that cannot be fetched
or any failing file fails the test, naming it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

from twisted.trial.unittest import TestCase

from tests.readme import ROOT, childEnvironment

#: The script that fetches memcached's tests and runs them against myproto.
RUN = os.path.join(ROOT.path, "tests", "memcached_suite", "run")

#: Seconds the whole run may take (38 of the 44 files took 87 s of CPU, 290 s of wall
#: time on two cores shared with a load average of 6 to 12).
LIMIT = 900

#: At least this many files must run: the script's list, less nothing.
MINIMUM_FILES = 44

_FAILED_FILE = re.compile(r"^(t/\S+\.t) +\(Wstat", re.MULTILINE)
_FILES = re.compile(r"^Files=(\d+), Tests=(\d+)", re.MULTILINE)


def runSuite() -> tuple[int, str]:
    """
    Run the selected files, ending every process the run started if it takes
    longer than L{LIMIT}.

    @return: the exit status and everything the run printed.
    """
    environment = childEnvironment()
    environment["MYPROTO_PYTHON"] = sys.executable
    process = subprocess.Popen(
        [RUN],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        return -1, output.decode("utf-8", "replace") + "\n(ended after {} s)".format(LIMIT)
    return process.returncode, output.decode("utf-8", "replace")


class MemcachedSuiteTests(TestCase):
    """
    memcached's own tests pass against myproto.
    """

    def test_selectedFilesPass(self) -> None:
        """
        Every selected t/*.t file passes, and all of them ran.
        """
        status, output = runSuite()
        failed = _FAILED_FILE.findall(output)
        if status != 0 or failed or "Result: PASS" not in output:
            self.fail(
                "memcached's tests failed against myproto (exit status {}); failing"
                " files: {}\n{}".format(status, ", ".join(failed) or "(none named)", output[-6000:])
            )
        files = _FILES.search(output)
        self.assertIsNotNone(files, output[-2000:])
        assert files is not None
        self.assertGreaterEqual(int(files.group(1)), MINIMUM_FILES, output[-2000:])
