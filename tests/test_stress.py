"""
A short run of the stress-and-fault script, C{bench/stress.py}: a real
myproto in a child process on 127.0.0.1, fifty well-behaved clients checking
their data while others misbehave, for five seconds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "stress.py"

# The run lasts five seconds; starting and stopping the server, and the
# final checks, take a few more.
SECONDS = 5
LIMIT = 120


def stress(*arguments: str) -> tuple[int, dict[str, Any], str]:
    """
    Run the script, stopping it (and so its server) if it overruns.

    @return: its exit status, its JSON results and its whole output.
    """
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--json", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        output, _ = process.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        raise AssertionError("the stress run overran:\n" + output.decode(errors="replace"))
    text = output.decode(errors="replace")
    lines = text.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise AssertionError("no results from the stress run:\n" + text)
    return process.returncode, json.loads(lines[-1]), text


class StressTests(SynchronousTestCase):
    """
    Under load and faults, no good client sees an error or loses data.
    """

    def test_fiveSeconds(self) -> None:
        """
        Fifty good clients doing verified set/get/cas/append/delete/incr
        cycles for five seconds, while others disconnect mid data block,
        stall, send garbage, never read and open and close connections:
        no errors, nothing lost or corrupted, no internal error or logged
        failure; stallers are dropped, the never-readers are stopped, the
        connection limit refuses the hog; and the script exits 0.
        """
        status, results, output = stress("--seconds", str(SECONDS), "--good-clients", "50")
        counts = {
            name: results[name]
            for name in (
                "errors",
                "lost",
                "corrupted",
                "forbidden_replies",
                "server_logged_failures",
            )
        }
        self.assertEqual(counts, dict.fromkeys(counts, 0), output)
        self.assertGreater(results["operations"], 1000, output)
        self.assertEqual(results["server_exit_status"], 0, output)
        seen = results["misbehaviour"]
        self.assertGreater(seen.get("staller dropped", 0), 0, output)
        self.assertGreater(seen.get("never-reader stalled", 0), 0, output)
        self.assertGreater(seen.get("hog refused as expected", 0), 0, output)
        self.assertGreater(seen.get("midblock disconnects", 0), 0, output)
        self.assertGreater(seen.get("garbage writes", 0), 0, output)
        self.assertEqual(status, 0, output)
