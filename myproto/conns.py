"""
What C{stats conns} says about client connections, in memcached's format.

memcached names a connection by its socket's file descriptor and writes
addresses as C{tcp:HOST:PORT}, C{tcp6:[HOST]:PORT} or C{unix:PATH}.  What
C{stats settings} says about the listeners is read once from the
C{--listen} descriptions, in L{myproto.config}.
"""

from __future__ import annotations

import itertools
import weakref
from typing import TYPE_CHECKING, Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

if TYPE_CHECKING:
    from myproto.commands import Cache

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


def connectionStats(cache: Cache) -> list[tuple[str, object]]:
    """
    C{stats conns}: one group of lines per open client connection, ordered
    by descriptor: C{addr}, C{listen_addr}, C{state}, C{secs_since_last_cmd},
    and, beyond memcached, C{tls_subject} for a client that presented a
    certificate.  Listening sockets are not listed.

    @param cache: the cache whose C{connections} are described.
    @return: C{(name, value)} pairs.
    """
    now = cache.store.now()
    numbered = sorted((connectionNumber(c), id(c), c) for c in list(cache.connections))
    pairs: list[tuple[str, object]] = []
    for number, _, connection in numbered:
        transport = connection.transport
        if connection is cache.currentConnection:
            idle = 0
        else:
            last = connection.lastCommandAt
            idle = int(now - (last if last is not None else connection.connectedAt))
        prefix = "%d:" % (number,)
        pairs += [
            (prefix + "addr", describeAddress(transport.getPeer())),
            (prefix + "listen_addr", describeAddress(transport.getHost())),
            (prefix + "state", connection.stateName()),
            (prefix + "secs_since_last_cmd", max(idle, 0)),
        ]
        tlsSubject = getattr(connection, "tlsSubject", None)
        subject = tlsSubject() if tlsSubject is not None else None
        if subject:
            pairs.append((prefix + "tls_subject", subject))
    return pairs
