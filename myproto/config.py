"""
The settings one server runs with, gathered in one immutable value.

L{ServerSettings} is what the service wiring (L{myproto.options},
L{myproto.service}) builds from the command line and what the protocol
factory reads; nothing else needs to know where a setting came from.

What C{stats settings} reports about the listeners (C{tcpport}, C{inter},
C{domain_socket}...) memcached takes from its command line; here it is read
from the C{--listen} endpoint descriptions, once, when the settings are made
(L{ServerSettings.listening}).

This is a leaf module: it imports nothing from myproto or Twisted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

MEGABYTE = 1024 * 1024

DEFAULT_LISTEN = "tcp:11211:interface=127.0.0.1"

# memcached's defaults (-b, -a) for what a description leaves out; Twisted's
# own (50, 0o666) are never used: see withListenDefaults.
DEFAULT_BACKLOG = 1024
DEFAULT_UNIX_MODE = 0o700

# Endpoint types that listen on a TCP port (TLS included, as memcached's
# tcpport is its TLS port too).
_TCP_TYPES = frozenset(["tcp", "tcp6", "ssl", "mtls"])


@dataclass(frozen=True)
class ListenFacts:
    """
    What the first TCP and first Unix endpoint descriptions say.

    @ivar tcpPort: the first TCP-based endpoint's port, or L{None}.
    @ivar interface: its interface, or L{None} for all interfaces.
    @ivar backlog: its listen backlog.
    @ivar unixPath: the first Unix endpoint's path, or L{None}.
    @ivar unixMode: that socket's permission bits.
    """

    tcpPort: int | None = None
    interface: str | None = None
    backlog: int = DEFAULT_BACKLOG
    unixPath: str | None = None
    unixMode: int = DEFAULT_UNIX_MODE


def splitDescription(description: str) -> tuple[str, list[str], dict[str, str]]:
    """
    Split an endpoint description the way Twisted does: on colons, with a
    backslash quoting the next character; C{key=value} parts are keywords.

    @return: the endpoint type, the positional arguments and the keywords.
    """
    parts: list[list[str]] = [[]]
    escaped = False
    for character in description:
        if escaped:
            parts[-1].append("\\" + character)
            escaped = False
        elif character == "\\":
            escaped = True
        elif character == ":":
            parts.append([])
        else:
            parts[-1].append(character)
    positional: list[str] = []
    keywords: dict[str, str] = {}
    for pieces in parts[1:]:
        key: list[str] | None = None
        value: list[str] = []
        for piece in pieces:
            if piece == "=" and key is None:
                key, value = value, []
            else:
                value.append(piece[-1])
        if key is None:
            positional.append("".join(value))
        else:
            keywords["".join(key)] = "".join(value)
    kind = "".join(piece[-1] for piece in parts[0])
    return kind, positional, keywords


def withListenDefaults(
    description: str,
    backlog: int = DEFAULT_BACKLOG,
    unixMode: int = DEFAULT_UNIX_MODE,
) -> str:
    """
    Fill in what an endpoint description leaves out with memcached's
    defaults rather than Twisted's: C{backlog=} on the TCP, TLS and Unix
    types (Twisted: 50), and C{mode=} on Unix sockets (Twisted: 0666).

    @param description: an endpoint description, e.g. C{tcp:11211}.
    @param backlog: the listen backlog to give it (memcached's C{-b}).
    @param unixMode: the Unix socket's permission bits (memcached's C{-a}).

    @return: the description, with those keywords added if it lacked them;
        other types (C{systemd:}...) come back unchanged.
    """
    kind, _, keywords = splitDescription(description)
    kind = kind.lower()
    if kind not in _TCP_TYPES and kind != "unix":
        return description
    if "backlog" not in keywords:
        description += ":backlog=%d" % (backlog,)
    if kind == "unix" and "mode" not in keywords:
        description += ":mode=%o" % (unixMode,)
    return description


def listenFacts(descriptions: Sequence[str]) -> ListenFacts:
    """
    Read what C{stats settings} reports from the endpoint descriptions.

    @param descriptions: the C{--listen} descriptions, in order.
    @return: the facts; what cannot be read is left at its default.
    """
    tcpPort: int | None = None
    interface: str | None = None
    backlog = DEFAULT_BACKLOG
    unixPath: str | None = None
    unixMode = DEFAULT_UNIX_MODE
    for description in descriptions:
        kind, positional, keywords = splitDescription(description)
        kind = kind.lower()
        if kind in _TCP_TYPES and tcpPort is None:
            port = keywords.get("port", positional[0] if positional else None)
            try:
                tcpPort = int(port) if port is not None else None
                backlog = int(keywords.get("backlog", DEFAULT_BACKLOG))
            except ValueError:
                continue
            interface = keywords.get("interface") or None
        elif kind == "unix" and unixPath is None:
            path = keywords.get("address", positional[0] if positional else None)
            try:
                unixMode = int(keywords.get("mode", "%o" % (DEFAULT_UNIX_MODE,)), 8)
            except ValueError:
                unixMode = DEFAULT_UNIX_MODE
            unixPath = path
    return ListenFacts(tcpPort, interface, backlog, unixPath, unixMode)



@dataclass(frozen=True)
class ServerSettings:
    """
    Everything that shapes how a server behaves, with memcached's defaults.

    @ivar memoryLimit: the most bytes the store may hold (memcached's C{-m},
        here in bytes).
    @ivar maxItemSize: the largest item, header included (memcached's C{-I}).
    @ivar connectionLimit: the most clients served at once (C{-c}).
    @ivar useCas: whether items carry CAS uniques (C{-C} turns them off).
    @ivar enableShutdown: whether the C{shutdown} command is honoured (C{-A}).
    @ivar banner: a line sent to each client on connect, or L{None}.
    @ivar verbosity: the starting log verbosity (C{-v}).
    @ivar listen: the endpoint descriptions served.
    @ivar idleTimeout: seconds a client may go without completing a command
        before it is dropped (memcached's C{-o idle_timeout}); 0 is never.
    @ivar requestTimeout: seconds a client may take to finish a command line
        or data block it has started; 0 is never.
    @ivar credentials: the C{(username, password)} pairs accepted by ASCII
        authentication, or L{None} when authentication is off (C{-Y}).
    @ivar saslCredentials: the C{(username, password)} pairs accepted by
        SASL C{PLAIN} on the binary protocol, or L{None} when SASL is off
        (C{-S} with C{--sasl-file}).  As in memcached, SASL needs the binary
        protocol only (C{protocol="binary"}).
    @ivar snapshotPath: the file the cache is saved to and loaded from, or
        L{None} for a cache that starts empty.
    @ivar snapshotInterval: seconds between saves while serving; 0 saves only
        at shutdown.
    @ivar drainTimeout: at shutdown, the most seconds to wait for clients to
        finish their current requests.
    @ivar metrics: the endpoint description to serve Prometheus metrics on,
        or L{None} for none.
    @ivar dashboardValues: whether the dashboard's key browser shows values
        (C{--dashboard-values}).
    @ivar listenBacklog: the listen backlog of each endpoint whose
        description gives none (memcached's C{-b}).
    @ivar unixMask: the permission bits of each Unix socket whose
        description gives no C{mode=} (memcached's C{-a}).
    @ivar udpPort: memcached's C{-U}; 0 is off (see L{myproto.udp}).
    @ivar threads: memcached's C{-t}; accepted, one reactor thread serves.
    @ivar protocol: memcached's C{-B}: C{ascii}, C{binary} or C{auto} (the
        first byte of each connection says which).
    @ivar maxRequestsPerEvent: memcached's C{-R}.
    @ivar evictions: whether the store evicts to make room (C{-M} turns
        this off).
    @ivar flushEnabled: whether C{flush_all} is honoured (C{-F} turns it
        off).
    @ivar dumpEnabled: whether C{lru_crawler metadump} and C{stats
        cachedump} are honoured (C{-X} turns them off).
    @ivar watchEnabled: whether C{watch} is honoured (C{-W} turns it off).
    @ivar detailDelimiter: the key prefix delimiter of C{stats detail}
        (C{-D}).
    @ivar growthFactor: the slab growth factor (C{-f}).
    @ivar chunkSizeMin: the smallest slab chunk for key, value and flags
        (C{-n}).
    @ivar lruCrawler: whether the C{lru_crawler} starts enabled (memcached's
        C{-o no_lru_crawler} turns it off).
    @ivar lruMaintainer: memcached's LRU maintainer and segmented LRU, which
        myproto does not have: C{-o no_lru_maintainer} makes C{stats} report
        them off, as memcached does.
    @ivar crawlerSleep: the crawler's starting pause between items, in
        microseconds (C{-o lru_crawler_sleep}).
    @ivar crawlerToCrawl: the most items one crawl examines at first, 0 for
        no limit (C{-o lru_crawler_tocrawl}).
    @ivar trackSizes: whether C{stats sizes} counts from the start, as after
        C{stats sizes_enable} (C{-o track_sizes}).
    @ivar endpoints: the C{listen} descriptions as they are served: with
        C{listenBacklog} and C{unixMask} filled in where a description
        gives no C{backlog=} or C{mode=} (see L{withListenDefaults}).
    @ivar listening: what C{stats settings} reports about C{endpoints}, read
        from them when the settings are made (not an argument).
    """

    memoryLimit: int = 64 * MEGABYTE
    maxItemSize: int = MEGABYTE
    connectionLimit: int = 1024
    useCas: bool = True
    enableShutdown: bool = False
    banner: bytes | None = None
    verbosity: int = 0
    listen: tuple[str, ...] = (DEFAULT_LISTEN,)
    idleTimeout: float = 0.0
    requestTimeout: float = 30.0
    credentials: tuple[tuple[bytes, bytes], ...] | None = None
    saslCredentials: tuple[tuple[bytes, bytes], ...] | None = None
    snapshotPath: str | None = None
    snapshotInterval: float = 300.0
    drainTimeout: float = 5.0
    metrics: str | None = None
    dashboardValues: bool = False
    listenBacklog: int = DEFAULT_BACKLOG
    unixMask: int = DEFAULT_UNIX_MODE
    udpPort: int = 0
    threads: int = 4
    protocol: str = "auto"
    maxRequestsPerEvent: int = 20
    evictions: bool = True
    flushEnabled: bool = True
    dumpEnabled: bool = True
    watchEnabled: bool = True
    detailDelimiter: str = ":"
    growthFactor: float = 1.25
    chunkSizeMin: int = 48
    lruCrawler: bool = True
    lruMaintainer: bool = True
    crawlerSleep: int = 100
    crawlerToCrawl: int = 0
    trackSizes: bool = False
    endpoints: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # Read here rather than per "stats settings": the descriptions never
    # change.  Not compared, as it follows from listen.
    listening: ListenFacts = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.saslCredentials is not None and self.protocol != "binary":
            # Text clients could never authenticate: refuse rather than
            # serve them unauthenticated.
            raise ValueError("You cannot allow the ASCII protocol while using SASL.")
        if self.saslCredentials is not None and self.credentials is not None:
            raise ValueError("SASL (-S) authenticates binary clients and -Y text ones: use one")
        # The dataclass is frozen: these are the assignments it allows.
        endpoints = tuple(
            withListenDefaults(description, self.listenBacklog, self.unixMask)
            for description in self.listen
        )
        object.__setattr__(self, "endpoints", endpoints)
        object.__setattr__(self, "listening", listenFacts(endpoints))
