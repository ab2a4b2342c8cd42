"""
The command line of C{twistd myproto}, and the checks that turn it into
L{ServerSettings}.

L{Options} takes memcached's option names and meanings (C{-m}, C{-I}, C{-c},
C{-C}, C{-A}, C{-v}, C{-Y}) plus one repeatable C{--listen ENDPOINT} in place
of memcached's per-transport flags, and the two connection timeouts.
L{settingsFromOptions} turns parsed options, or a plain mapping written by
hand in a C{.tac} file, into a L{ServerSettings}.  What is built from the
settings is L{myproto.service}'s business.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from twisted.python import usage
from twisted.python.filepath import FilePath

from myproto.auth import parseAuthFile
from myproto.config import DEFAULT_LISTEN, MEGABYTE, ServerSettings

KILOBYTE = 1024

DEFAULT_MEMORY_LIMIT = 64  # megabytes, as memcached's -m
DEFAULT_MAX_ITEM_SIZE = "1m"
DEFAULT_CONNECTION_LIMIT = 1024
DEFAULT_IDLE_TIMEOUT = 0.0  # never
DEFAULT_REQUEST_TIMEOUT = ServerSettings.requestTimeout

# memcached's bounds for -I.
MIN_ITEM_SIZE = KILOBYTE
MAX_ITEM_SIZE = 1024 * MEGABYTE

_SIZE = re.compile(r"([0-9]+)([kKmM]?)")
_UNITS = {"": 1, "k": KILOBYTE, "m": MEGABYTE}


def parseSize(text: str) -> int:
    """
    Read a size the way memcached's C{-I} does: a count of bytes, or a count
    followed by C{k} or C{m} (either case) for kilobytes or megabytes.

    @param text: the size as typed, e.g. C{"1m"}, C{"512k"} or C{"4096"}.

    @return: the size in bytes.

    @raise ValueError: if C{text} is not such a size.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            "{!r} is not a size: give bytes, or a number followed by k or m".format(
                text
            )
        )
    count, unit = match.groups()
    return int(count) * _UNITS[unit.lower()]


parseSize.coerceDoc = (  # type: ignore[attr-defined]
    "Bytes, or a number followed by k or m; at least 1k, at most 1024m"
    " and at most half the memory limit."
)


def parseInteger(text: str) -> int:
    """
    Read a whole number given on the command line.

    @param text: the number as typed.

    @return: its value.

    @raise ValueError: if C{text} is not a whole number.
    """
    try:
        return int(text)
    except ValueError:
        raise ValueError("{!r} is not a whole number".format(text)) from None


def parseSeconds(text: str) -> float:
    """
    Read a duration given on the command line.

    @param text: a number of seconds, e.g. C{"30"} or C{"2.5"}.

    @return: its value.

    @raise ValueError: if C{text} is not a finite number of seconds, zero or
        more.
    """
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError("{!r} is not a number of seconds".format(text)) from None
    if not 0 <= seconds < float("inf"):
        raise ValueError("{!r} is not a number of seconds".format(text))
    return seconds


parseSeconds.coerceDoc = "Seconds; 0 means never."  # type: ignore[attr-defined]


def parseSnapshotInterval(text: str) -> float:
    """
    Read C{--snapshot-interval}: as L{parseSeconds}, but its help says what 0
    means there (no saves while serving, the one at shutdown still).
    """
    return parseSeconds(text)


parseSnapshotInterval.coerceDoc = "Seconds; 0: only at shutdown."  # type: ignore[attr-defined]


def _readCredentials(path: str) -> tuple[tuple[bytes, bytes], ...]:
    """
    Read memcached's C{-Y} file of C{username:password} lines, once, at
    startup.

    @param path: the file's name.

    @return: the accepted C{(username, password)} pairs.

    @raise ValueError: if the file cannot be read or is not such a file.
    """
    try:
        content = FilePath(path).getContent()
    except OSError as e:
        raise ValueError(
            "Could not read the auth file {}: {}".format(path, e.strerror)
        ) from None
    try:
        return parseAuthFile(content.splitlines(keepends=True))
    except ValueError as e:
        raise ValueError("Bad auth file {}: {}".format(path, e)) from None


def _toSize(value: int | str) -> int:
    """
    Accept a size as L{Options} leaves it (bytes) or as a C{.tac} may write it
    (C{"1m"}).
    """
    if isinstance(value, str):
        return parseSize(value)
    return int(value)


def _toBanner(value: str | bytes | None) -> bytes | None:
    """
    Check that a banner fits on one line and encode it.

    @return: the banner as UTF-8 bytes, or L{None} for no banner (an empty
        one included).

    @raise ValueError: if it contains a carriage return or a line feed.
    """
    if not value:
        return None
    banner = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if b"\r" in banner or b"\n" in banner:
        raise ValueError("The banner must fit on one line")
    return banner


def settingsFromOptions(config: Mapping[str, Any]) -> ServerSettings:
    """
    Check a server configuration and gather it into one L{ServerSettings}.

    C{config} uses L{Options}' keys; any key it lacks takes memcached's
    default, so a C{.tac} file can give a plain L{dict} with only the keys
    it cares about. Sizes may be bytes or strings such as C{"1m"}.

    @param config: the parsed L{Options}, or a mapping with the same keys.

    @return: the settings.

    @raise ValueError: if a value is out of range; the message says which,
        in memcached's words where memcached has some.
    """
    memoryLimit = int(config.get("memory-limit", DEFAULT_MEMORY_LIMIT))
    if memoryLimit < 1:
        raise ValueError("The memory limit must be at least 1 megabyte")
    memoryBytes = memoryLimit * MEGABYTE
    maxItemSize = _toSize(config.get("max-item-size", DEFAULT_MAX_ITEM_SIZE))
    if maxItemSize < MIN_ITEM_SIZE:
        raise ValueError("Item max size cannot be less than 1024 bytes.")
    if maxItemSize > MAX_ITEM_SIZE:
        raise ValueError("Cannot set item size limit higher than a gigabyte.")
    if maxItemSize > memoryBytes // 2:
        raise ValueError("Cannot set item size limit higher than 1/2 of memory max.")
    connectionLimit = int(config.get("conn-limit", DEFAULT_CONNECTION_LIMIT))
    if connectionLimit < 1:
        raise ValueError("Maximum connections must be greater than 0")
    idleTimeout = float(config.get("idle-timeout", DEFAULT_IDLE_TIMEOUT))
    requestTimeout = float(config.get("request-timeout", DEFAULT_REQUEST_TIMEOUT))
    if idleTimeout < 0 or requestTimeout < 0:
        raise ValueError("Timeouts cannot be negative")
    snapshotInterval = float(config.get("snapshot-interval", ServerSettings.snapshotInterval))
    if snapshotInterval < 0:
        raise ValueError("The snapshot interval cannot be negative")
    authFile = config.get("auth-file")
    credentials = _readCredentials(authFile) if authFile else None
    listen = tuple(config.get("listen") or (DEFAULT_LISTEN,))
    return ServerSettings(
        memoryLimit=memoryBytes,
        maxItemSize=maxItemSize,
        connectionLimit=connectionLimit,
        useCas=not config.get("disable-cas", False),
        enableShutdown=bool(config.get("enable-shutdown", False)),
        banner=_toBanner(config.get("banner")),
        verbosity=int(config.get("verbose", 0)),
        listen=listen,
        idleTimeout=idleTimeout,
        requestTimeout=requestTimeout,
        credentials=credentials,
        snapshotPath=config.get("snapshot") or None,
        snapshotInterval=snapshotInterval,
        metrics=config.get("metrics") or None,
    )


class Options(usage.Options):
    """
    The options of C{twistd myproto}, named and meant as memcached's.

    After L{parseOptions}, C{self["settings"]} holds the checked
    L{ServerSettings}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve a memcached-compatible cache on each --listen endpoint (default: "
        + DEFAULT_LISTEN
        + "). For TLS, listen on"
        " ssl:PORT:interface=ADDRESS:privateKey=KEY.pem:certKey=CERT.pem;"
        " for mutual TLS, on mtls:PORT:interface=ADDRESS:privateKey=KEY.pem"
        ":certKey=CERT.pem:caCerts=CA.pem (refresh_certs and SIGHUP reload"
        " its files)."
    )

    optFlags = [
        [
            "disable-cas",
            "C",
            "Disable use of CAS: items carry no CAS unique (memcached -C).",
        ],
        [
            "enable-shutdown",
            "A",
            "Enable the ascii 'shutdown' command (memcached -A).",
        ],
    ]

    optParameters = [
        [
            "memory-limit",
            "m",
            DEFAULT_MEMORY_LIMIT,
            "Item memory in megabytes (memcached -m).",
            parseInteger,
        ],
        [
            "max-item-size",
            "I",
            DEFAULT_MAX_ITEM_SIZE,
            "Largest item (memcached -I).",
            parseSize,
        ],
        [
            "conn-limit",
            "c",
            DEFAULT_CONNECTION_LIMIT,
            "Max simultaneous connections (memcached -c).",
            parseInteger,
        ],
        [
            "banner",
            None,
            None,
            "A line sent to each client when it connects (default: none)."
            " memcached sends none, and standard clients take it for the reply"
            " to their first command and fail (pymemcache raises).",
        ],
        [
            "idle-timeout",
            None,
            DEFAULT_IDLE_TIMEOUT,
            "Drop a client that completes no command for this long"
            " (memcached -o idle_timeout).",
            parseSeconds,
        ],
        [
            "request-timeout",
            None,
            DEFAULT_REQUEST_TIMEOUT,
            "Drop a client that takes longer than this to finish a command"
            " line or data block it has started.",
            parseSeconds,
        ],
        [
            "snapshot",
            None,
            None,
            "Save the cache to this file at shutdown (and periodically) and"
            " load it at start.",
        ],
        [
            "snapshot-interval",
            None,
            ServerSettings.snapshotInterval,
            "Seconds between snapshot saves while serving; the cache is also saved"
            " at shutdown.",
            parseSnapshotInterval,
        ],
        [
            "auth-file",
            "Y",
            None,
            "A file of username:password lines; clients must then"
            " authenticate (memcached -Y).",
        ],
        [
            "metrics",
            None,
            None,
            "Serve Prometheus metrics at /metrics on this endpoint, e.g."
            " tcp:9150:interface=127.0.0.1 (default: none).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["verbose"] = 0

    # The opt_ docstrings are --help text; they stay on one line because
    # usage.Options would keep a second line's indentation.

    def opt_listen(self, description: str) -> None:
        """Endpoint to serve on, e.g. tcp:11311 or unix:m.sock (repeatable)."""
        self["listen"].append(description)

    def opt_verbose(self) -> None:
        """Raise the starting verbosity level; repeat for more: -vv (memcached -v)."""
        self["verbose"] += 1

    opt_v = opt_verbose

    def postOptions(self) -> None:
        """
        Fill in the default endpoint and check the values together.

        @raise usage.UsageError: if a value is out of range.
        """
        self["listen"] = self["listen"] or [DEFAULT_LISTEN]
        try:
            settings = settingsFromOptions(self)
        except ValueError as e:
            raise usage.UsageError(str(e)) from None
        self["max-item-size"] = settings.maxItemSize
        self["settings"] = settings
