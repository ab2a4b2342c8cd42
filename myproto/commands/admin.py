"""
The server's own commands: C{version}, C{verbosity}, C{cache_memlimit},
C{mn}, C{refresh_certs}, C{slabs automove}, and C{stats} with its
sub-commands (their blocks are made in L{myproto.commands.stats}).
"""

from __future__ import annotations

from typing import Callable

from myproto.cache import PROTOCOL_VERSION, Cache, Lines
from myproto.commands import items
from myproto.commands.stats import (
    disableSizes,
    enableSizes,
    generalStats,
    itemStats,
    settingsStats,
    sizesStats,
    slabStats,
    statLines,
)
from myproto.errors import ClientError, UnknownCommand
from myproto.wire import classic


def version(request: classic.VersionRequest, cache: Cache) -> Lines:
    return [classic.VERSION + PROTOCOL_VERSION]


def verbosity(request: classic.VerbosityRequest, cache: Cache) -> Lines:
    cache.verbosity = min(request.level, 2)
    return [classic.OK]


def memoryLimit(request: classic.MemoryLimitRequest, cache: Cache) -> Lines:
    """
    C{cache_memlimit}: a new memory limit in megabytes, with memcached's
    bounds; lowering it evicts at once.
    """
    if request.megabytes < 8:
        return [classic.MEMLIMIT_TOO_SMALL]
    if request.megabytes > 1_000_000_000:
        return [classic.MEMLIMIT_NOT_BYTES]
    cache.store.setMemoryLimit(request.megabytes * 1024 * 1024)
    return [classic.OK]


def noOp(request: classic.NoOpRequest, cache: Cache) -> Lines:
    # mn makes memcached write its replies at once.
    cache.newReplyWindow()
    return [classic.MN]


def refreshCertificates(request: classic.RefreshCertificatesRequest, cache: Cache) -> Lines:
    """
    C{refresh_certs}: have the TLS endpoints load their files again.  Its
    C{noreply} silences only the C{OK}, as in memcached.
    """
    if cache.certificates is None:
        return [classic.TLS_NOT_ENABLED]
    error = cache.certificates.reload()
    if error is not None:
        return [error.encode("utf-8", "replace")]
    return [] if request.quietSuccess else [classic.OK]


# memcached's switches of its size histogram (C{stats sizes}).
_SIZES_SWITCHES = {
    b"sizes_enable": enableSizes,
    b"sizes_disable": disableSizes,
}


def stats(request: classic.StatsRequest, cache: Cache) -> Lines:
    """
    C{stats} and its sub-commands, with memcached's names and order for what
    this implementation has.
    """
    arguments = request.arguments
    if not arguments:
        return statLines(generalStats(cache))
    subcommand = arguments[0]
    if subcommand == b"reset":
        resetStats(cache)
        return [classic.RESET]
    if subcommand == b"detail":
        if len(arguments) < 2 or arguments[1] not in (b"on", b"off", b"dump"):
            raise ClientError(classic.BAD_STATS_DETAIL)
        if arguments[1] == b"dump":
            return cache.prefixStats.dump() + [classic.END]
        cache.prefixStats.enabled = arguments[1] == b"on"
        return [classic.OK]
    if subcommand == b"cachedump":
        return items.cacheDump(arguments, cache)
    if subcommand == b"extstore":
        # memcached built with extstore, but none configured: no lines.
        return [classic.END]
    group = STAT_GROUPS.get(subcommand)
    if group is not None:
        return statLines(group(cache))
    if subcommand in _SIZES_SWITCHES:
        # memcached ends these STAT lines with no END.
        return statLines(_SIZES_SWITCHES[subcommand](cache))[:-1]
    raise UnknownCommand()


def resetStats(cache: Cache) -> None:
    """
    C{stats reset}: zero the counters, in every protocol.
    """
    cache.stats.reset()
    cache.store.stats.reset()
    cache.prefixStats.clear()


def slabsAutomove(request: classic.SlabsAutomoveRequest, cache: Cache) -> Lines:
    """
    C{slabs automove <0|1|2>}: remembered, as there are no slabs to move.
    """
    if request.level is None:
        raise ClientError(classic.BAD_FORMAT)
    if request.level > 2:
        raise UnknownCommand()
    cache.slabAutomove = request.level
    return [classic.OK]


def connectionStats(cache: Cache) -> list[tuple[str, object]]:
    """
    C{stats conns}: one group of lines per listening socket and open client
    connection, ordered by its number (memcached's file descriptor).
    """
    now = cache.store.now()
    everyone = list(cache.listeners) + list(cache.connections)
    numbered = sorted((c.connectionNumber(), id(c), c) for c in everyone)
    pairs: list[tuple[str, object]] = []
    for number, _, connection in numbered:
        prefix = "%d:" % (number,)
        report = connection.connectionReport(now, connection is cache.currentConnection)
        pairs += [(prefix + name, value) for name, value in report]
    return pairs


# The C{stats} groups every protocol serves alike, by name.
STAT_GROUPS: dict[bytes, Callable[[Cache], list[tuple[str, object]]]] = {
    b"settings": settingsStats,
    b"items": itemStats,
    b"slabs": slabStats,
    b"sizes": sizesStats,
    b"conns": connectionStats,
}
