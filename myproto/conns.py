"""
How memcached names connections and addresses in C{stats conns} and
C{watch} lines: a connection by its socket's file descriptor, an address as
C{tcp:HOST:PORT}, C{tcp6:[HOST]:PORT} or C{unix:PATH}.  Used by the protocol
adapter, which knows the transports, and by the listeners (L{Listener}).
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

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


class Listener:
    """
    A listening port as C{stats conns} lists it, as memcached lists its
    listening sockets: its address, state C{conn_listening}, and the seconds
    since it started listening.

    @ivar transport: the listening port (named as a connection's transport,
        so that L{connectionNumber} finds its descriptor).
    @ivar since: clock seconds when it started listening.
    """

    def __init__(self, port: Any, since: float) -> None:
        self.transport = port
        self.since = since

    def connectionNumber(self) -> int:
        return connectionNumber(self)

    def connectionReport(self, now: float, current: bool) -> list[tuple[str, object]]:
        address = describeAddress(self.transport.getHost())
        if address.startswith("unix:"):
            # memcached reads a listener's name into a sockaddr_in6, which
            # holds 26 bytes of a path: 1.6.18 shows no more of it.
            address = "unix:" + address[5:].encode("utf-8")[:26].decode("utf-8", "replace")
        return [
            ("addr", address),
            ("state", "conn_listening"),
            ("secs_since_last_cmd", max(int(now - self.since), 0)),
        ]
