"""
The settings one server runs with, gathered in one immutable value.

L{ServerSettings} is what the service wiring (L{myproto.tap}) builds from the
command line and what the protocol factory reads; nothing else needs to know
where a setting came from.
"""

from __future__ import annotations

from dataclasses import dataclass

MEGABYTE = 1024 * 1024

DEFAULT_LISTEN = "tcp:11211:interface=127.0.0.1"


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
    @ivar snapshotPath: the file the cache is saved to and loaded from, or
        L{None} for a cache that starts empty.
    @ivar snapshotInterval: seconds between saves while serving; 0 saves only
        at shutdown.
    @ivar drainTimeout: at shutdown, the most seconds to wait for clients to
        finish their current requests.
    @ivar metrics: the endpoint description to serve Prometheus metrics on,
        or L{None} for none.
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
    snapshotPath: str | None = None
    snapshotInterval: float = 300.0
    drainTimeout: float = 5.0
    metrics: str | None = None
