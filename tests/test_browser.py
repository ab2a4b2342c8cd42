"""
The dashboard in a real browser: Debian's C{chromium}, driven by
C{chromium-driver} through selenium, loads the page from a live server
(C{python -m myproto --metrics ...} in a process of its own), waits for the
page's first updates, checks that the numbers it shows equal the server's
C{stats}, searches for keys, asks for a value (hidden), looks at the page
at a phone's width, and saves a screenshot.

Set C{MYPROTO_SCREENSHOT} to a file name to keep the screenshot there too
(C{docs/dashboard.png} is made so).  Bounded: every wait has a deadline, and
the server and the browser are stopped at the end.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import parseStats

# Seconds any one thing may take: the server to start, the page to update.
DEADLINE = 30

# What Chromium needs to run as root, headless, on a machine with no
# network beyond loopback and no display.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]

# The figures compared, page against stats.
COMPARED = [
    "curr_items",
    "total_items",
    "cmd_get",
    "get_hits",
    "get_misses",
    "cmd_set",
    "evictions",
    "reclaimed",
    "curr_connections",
    "total_connections",
    "rejected_connections",
    "bytes",
    "limit_maxbytes",
    "max_connections",
]

_PORT = re.compile(r"(\w+) starting on (\d+)")


def request(connection: socket.socket, data: bytes, end: bytes) -> bytes:
    connection.sendall(data)
    received = b""
    deadline = time.monotonic() + DEADLINE
    while not received.endswith(end):
        if time.monotonic() > deadline:
            raise AssertionError("no full reply: %r" % (received[-200:],))
        chunk = connection.recv(65536)
        if not chunk:
            raise AssertionError("connection closed")
        received += chunk
    return received


class LiveServer:
    """
    C{python -m myproto} with a dashboard, on ports of its choosing.
    """

    def __init__(self, directory: str, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "myproto", "--listen", "tcp:0:interface=127.0.0.1",
             "--metrics", "tcp:0", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=directory,
        )
        lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()
        ports = {}
        deadline = time.monotonic() + DEADLINE
        while len(ports) < 2:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise AssertionError("the server did not start: " + "".join(self.output))
            found = _PORT.search(line)
            if found:
                ports[found.group(1)] = int(found.group(2))
        self.port = ports["CacheServerFactory"]
        self.web = ports["DashboardSite"]

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def browser(directory: str, width: int, height: int) -> object:
    """
    @return: a selenium driver of a fresh headless Chromium.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driverPath = shutil.which("chromedriver")
    chromium = shutil.which("chromium")
    if driverPath is None or chromium is None:
        raise AssertionError("install Debian's chromium and chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument("--user-data-dir=" + os.path.join(directory, "profile"))
    options.add_argument("--window-size=%d,%d" % (width, height))
    return webdriver.Chrome(options=options, service=Service(executable_path=driverPath))


class BrowserTests(SynchronousTestCase):
    """
    The page, loaded by Chromium from a live server.
    """

    def setUp(self) -> None:
        self.directory = os.path.abspath(self.mktemp())
        os.makedirs(self.directory)
        self.server = LiveServer(self.directory)
        self.addCleanup(self.server.stop)

    def fill(self) -> None:
        with self.server.connect() as connection:
            data = b"".join(
                b"set user:%d 0 0 %d noreply\r\n%s\r\n" % (i, 10 + i % 900, b"v" * (10 + i % 900))
                for i in range(1500)
            )
            data += b"".join(b"set session:%d 3 600 3000 noreply\r\n%s\r\n" % (i, b"s" * 3000) for i in range(200))
            data += b"".join(b"get user:%d\r\n" % (i,) for i in range(0, 3000, 7))
            request(connection, data + b"mn\r\n", b"MN\r\n")

    def test_page(self) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.fill()
        # A client that stays connected, as the page's figures count it.
        stats = self.server.connect()
        self.addCleanup(stats.close)
        before = parseStats(request(stats, b"stats\r\n", b"END\r\n"))
        driver = browser(self.directory, 1280, 1900)
        self.addCleanup(driver.quit)  # type: ignore[attr-defined]
        driver.get("http://127.0.0.1:%d/" % (self.server.web,))  # type: ignore[attr-defined]
        wait = WebDriverWait(driver, DEADLINE)

        def updates() -> int:
            status = driver.find_element(By.ID, "status")  # type: ignore[attr-defined]
            return int(status.get_attribute("data-updates") or 0)

        wait.until(lambda _: updates() >= 1)
        # The page's next update comes after these stats.
        now = parseStats(request(stats, b"stats\r\n", b"END\r\n"))
        seen = updates()
        wait.until(lambda _: updates() >= seen + 1)
        self.assertEqual(now["curr_items"], before["curr_items"])
        for name in COMPARED:
            for element in driver.find_elements(By.CSS_SELECTOR, '[data-stat="%s"]' % (name,)):  # type: ignore[attr-defined]
                self.assertEqual(element.get_attribute("data-value"), now[name], name)
                if element.get_attribute("data-format") != "bytes":
                    self.assertEqual(element.text.replace(",", ""), now[name], name)
        self.assertEqual(driver.find_element(By.ID, "status").text, "live")  # type: ignore[attr-defined]
        self.assertIn("1.6.18", driver.find_element(By.ID, "version").text)  # type: ignore[attr-defined]

        query = driver.find_element(By.ID, "query")  # type: ignore[attr-defined]
        query.send_keys("user:14")
        driver.find_element(By.ID, "searchButton").click()  # type: ignore[attr-defined]
        wait.until(
            lambda _: driver.find_element(By.ID, "searchStatus").get_attribute("data-matches")  # type: ignore[attr-defined]
        )
        status = driver.find_element(By.ID, "searchStatus")  # type: ignore[attr-defined]
        expected = sorted(key for key in ("user:%d" % (i,) for i in range(1500)) if key.startswith("user:14"))
        self.assertEqual(status.get_attribute("data-matches"), str(len(expected)))
        rows = driver.find_elements(By.CSS_SELECTOR, "#keyRows tr.row")  # type: ignore[attr-defined]
        encoded = [key.replace(":", "%3A") for key in expected]
        self.assertEqual([row.get_attribute("data-key") for row in rows], encoded[:100])
        cells = rows[0].find_elements(By.TAG_NAME, "td")
        self.assertEqual([cell.text for cell in cells[:4]], ["user:14", "90", "24", "0"])
        self.assertEqual(cells[4].text, "never")
        rows[0].click()
        box = driver.find_element(By.ID, "valueBox")  # type: ignore[attr-defined]
        wait.until(lambda _: "hidden" in box.text)
        driver.find_element(By.ID, "next").click()  # type: ignore[attr-defined]
        wait.until(lambda _: "page 2 of 2" in driver.find_element(By.ID, "pageInfo").text)  # type: ignore[attr-defined]
        rows = driver.find_elements(By.CSS_SELECTOR, "#keyRows tr.row")  # type: ignore[attr-defined]
        self.assertEqual([row.get_attribute("data-key") for row in rows], encoded[100:])

        # Searching by substring, from the form.
        query.clear()
        query.send_keys("ion:19")
        driver.find_element(By.CSS_SELECTOR, "#mode option[value=substring]").click()  # type: ignore[attr-defined]
        driver.find_element(By.ID, "searchButton").click()  # type: ignore[attr-defined]
        wait.until(lambda _: status.get_attribute("data-matches") == "11")

        # Clear the search for a tidy picture, then keep it.
        query.clear()
        query.send_keys("session:1")
        driver.find_element(By.CSS_SELECTOR, "#mode option[value=prefix]").click()  # type: ignore[attr-defined]
        driver.find_element(By.ID, "searchButton").click()  # type: ignore[attr-defined]
        wait.until(lambda _: status.get_attribute("data-matches") == "111")
        driver.execute_script("window.scrollTo(0, 0)")  # type: ignore[attr-defined]
        seen = updates()
        wait.until(lambda _: updates() >= seen + 2)
        path = os.path.join(self.directory, "dashboard.png")
        self.assertTrue(driver.save_screenshot(path))  # type: ignore[attr-defined]
        with open(path, "rb") as picture:
            self.assertEqual(picture.read(8), b"\x89PNG\r\n\x1a\n")
        kept = os.environ.get("MYPROTO_SCREENSHOT")
        if kept:
            shutil.copyfile(path, kept)

        # At a phone's width, nothing is wider than the screen.
        driver.set_window_size(390, 844)  # type: ignore[attr-defined]
        wait.until(
            lambda _: driver.execute_script(  # type: ignore[attr-defined]
                "return document.documentElement.scrollWidth <= window.innerWidth"
            )
        )
        seen = updates()
        wait.until(lambda _: updates() >= seen + 1)
        driver.save_screenshot(os.path.join(self.directory, "phone.png"))  # type: ignore[attr-defined]
