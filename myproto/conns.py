"""
What C{stats conns} and C{stats settings} say about connections and
listeners, in memcached's formats.

memcached names a connection by its socket's file descriptor, writes
addresses as C{tcp:HOST:PORT}, C{tcp6:[HOST]:PORT} or C{unix:PATH}, and
reports its listening options (C{tcpport}, C{inter}, C{domain_socket}...)
from its command line; here they come from the C{--listen} endpoint
descriptions.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

# Twisted's defaults for what a description leaves out.
DEFAULT_BACKLOG = 50
DEFAULT_UNIX_MODE = 0o666

# Endpoint types that listen on a TCP port (TLS included, as memcached's
# tcpport is its TLS port too).
_TCP_TYPES = frozenset(["tcp", "tcp6", "ssl", "mtls"])

# Connections without a file descriptor (tests' in-memory transports) get a
# number of their own, above any descriptor a test would see.
_serials: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_nextSerial = itertools.count(10000)


def connectionNumber(connection: Any) -> int:
    """
    The number memcached shows for a connection: its socket's file
    descriptor (C{cfd} in C{watch} lines, the prefix in C{stats conns}).

    @param connection: a protocol instance with a C{transport}, or L{None}.
    @return: the descriptor; for a transport without one, a stable number of
        its own; -1 for no connection.
    """
    if connection is None:
        return -1
    fileno = getattr(connection.transport, "fileno", None)
    if fileno is not None:
        try:
            number = int(fileno())
        except Exception:
            number = -1
        if number >= 0:
            return number
    serial = _serials.get(connection)
    if serial is None:
        serial = _serials[connection] = next(_nextSerial)
    return serial


def describeAddress(address: object) -> str:
    """
    An address as memcached's C{stats conns} writes it.

    @param address: a Twisted address (C{getPeer()} or C{getHost()}).
    @return: C{tcp:HOST:PORT}, C{tcp6:[HOST]:PORT}, C{unix:PATH}; a Unix
        peer, which has no name, is C{?:<AF 0>}, as in memcached.
    """
    if isinstance(address, IPv4Address):
        return "%s:%s:%d" % ("udp" if address.type == "UDP" else "tcp", address.host, address.port)
    if isinstance(address, IPv6Address):
        return "%s:[%s]:%d" % (
            "udp6" if address.type == "UDP" else "tcp6",
            address.host,
            address.port,
        )
    if isinstance(address, UNIXAddress) and address.name:
        name = address.name
        text = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
        return "unix:" + text
    return "?:<AF 0>"


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
                unixMode = int(keywords.get("mode", "666"), 8)
            except ValueError:
                unixMode = DEFAULT_UNIX_MODE
            unixPath = path
    return ListenFacts(tcpPort, interface, backlog, unixPath, unixMode)
