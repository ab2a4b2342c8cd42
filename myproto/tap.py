"""
The command line of C{twistd myproto} and the services it starts.

L{Options} takes memcached's option names and meanings (C{-m}, C{-I}, C{-c},
C{-C}, C{-A}, C{-v}) plus one repeatable C{--listen ENDPOINT} in place of
memcached's per-transport flags. L{settingsFromOptions} turns parsed options,
or a plain mapping written by hand in a C{.tac} file, into a
L{ServerSettings}; L{makeService} builds the store, the protocol factory, a
periodic sweep of expired items and one listening service per endpoint.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from twisted.application import strports
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.python import usage

from myproto.config import DEFAULT_LISTEN, MEGABYTE, ServerSettings
from myproto.protocol import CacheServerFactory
from myproto.store import MemoryStore

KILOBYTE = 1024

DEFAULT_MEMORY_LIMIT = 64  # megabytes, as memcached's -m
DEFAULT_MAX_ITEM_SIZE = "1m"
DEFAULT_CONNECTION_LIMIT = 1024

# memcached's bounds for -I.
MIN_ITEM_SIZE = KILOBYTE
MAX_ITEM_SIZE = 1024 * MEGABYTE

# Seconds between two sweeps of expired items out of the store.
SWEEP_INTERVAL = 1.0

SWEEPER_NAME = "sweeper"

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
    )


class Options(usage.Options):
    """
    The options of C{twistd myproto}, named and meant as memcached's.

    After L{parseOptions}, C{self["settings"]} holds the checked
    L{ServerSettings}.
    """

    synopsis = "[options]"
    longdesc = (
        "Serve a memcached-compatible cache on each --listen endpoint"
        " (default: " + DEFAULT_LISTEN + ")."
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
            "A line sent to each client when it connects (default: none).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["verbose"] = 0

    def opt_listen(self, description: str) -> None:
        """
        Endpoint to serve on, e.g. tcp:11211:interface=127.0.0.1 or
        ssl:11212:privateKey=key.pem:certKey=cert.pem (repeatable; default:
        tcp:11211:interface=127.0.0.1).
        """
        self["listen"].append(description)

    def opt_verbose(self) -> None:
        """
        Raise the verbosity by one; repeat it (-vv) for more (memcached -v).
        """
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


def makeService(config: Mapping[str, Any], reactor: Any = None) -> MultiService:
    """
    Build the whole server as one service.

    @param config: parsed L{Options}, or a plain mapping with the same keys
        (see L{settingsFromOptions}).
    @param reactor: the reactor to listen with and the clock for the store
        and the sweep; the global reactor if L{None}.

    @return: a service whose children are a L{TimerService} named
        C{"sweeper"} that calls the store's C{sweepExpired} every
        L{SWEEP_INTERVAL} seconds, then one listening service per endpoint.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = config.get("settings")
    if not isinstance(settings, ServerSettings):
        settings = settingsFromOptions(config)
    store = MemoryStore(
        reactor,
        maxBytes=settings.memoryLimit,
        maxItemSize=settings.maxItemSize,
        useCas=settings.useCas,
    )
    factory = CacheServerFactory(store, reactor, settings)
    top = MultiService()
    sweeper = TimerService(SWEEP_INTERVAL, store.sweepExpired)
    sweeper.clock = reactor
    sweeper.setName(SWEEPER_NAME)
    sweeper.setServiceParent(top)
    for description in settings.listen:
        strports.service(description, factory, reactor=reactor).setServiceParent(top)
    return top
