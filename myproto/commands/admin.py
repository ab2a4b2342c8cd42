"""
The server's own commands: C{version}, C{verbosity}, C{cache_memlimit},
C{mn}, C{refresh_certs}, C{slabs automove}, and C{stats} with its
sub-commands, with memcached's names and order for what myproto has.
"""

from __future__ import annotations

import os
import resource

from myproto.cache import PROTOCOL_VERSION, Cache, Lines
from myproto.commands.crawler import crawlerStats
from myproto.commands.watch import watchStats
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


def stats(request: classic.StatsRequest, cache: Cache) -> Lines:
    """
    C{stats} and its sub-commands, with memcached's names and order for what
    this implementation has.
    """
    arguments = request.arguments
    if not arguments:
        return _statLines(generalStats(cache))
    subcommand = arguments[0]
    if subcommand == b"reset":
        cache.stats.reset()
        cache.store.stats.reset()
        cache.prefixStats.clear()
        return [classic.RESET]
    if subcommand == b"detail":
        if len(arguments) < 2 or arguments[1] not in (b"on", b"off", b"dump"):
            raise ClientError(classic.BAD_STATS_DETAIL)
        if arguments[1] == b"dump":
            return cache.prefixStats.dump() + [classic.END]
        cache.prefixStats.enabled = arguments[1] == b"on"
        return [classic.OK]
    if subcommand == b"settings":
        return _statLines(settingsStats(cache))
    if subcommand == b"items":
        return _statLines(itemStats(cache))
    if subcommand == b"slabs":
        return _statLines(slabStats(cache))
    if subcommand == b"conns":
        return _statLines(connectionStats(cache))
    raise UnknownCommand()


def _statLines(pairs: list[tuple[str, object]]) -> Lines:
    lines = [b"STAT %s %s" % (name.encode("ascii"), str(value).encode("ascii")) for name, value in pairs]
    lines.append(classic.END)
    return lines


def generalStats(cache: Cache) -> list[tuple[str, object]]:
    """
    @return: the general statistics as C{(name, value)} pairs.
    """
    now = cache.store.now()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    counters = cache.stats
    items = cache.store.stats
    pairs: list[tuple[str, object]] = [
        ("pid", os.getpid()),
        ("uptime", int(now - cache.startedAt)),
        ("time", int(now)),
        ("version", PROTOCOL_VERSION.decode("ascii")),
        ("pointer_size", 64),
        ("rusage_user", "%.6f" % (usage.ru_utime,)),
        ("rusage_system", "%.6f" % (usage.ru_stime,)),
        ("max_connections", cache.settings.connectionLimit),
        ("curr_connections", counters.currConnections),
        ("total_connections", counters.totalConnections),
        ("rejected_connections", counters.rejectedConnections),
        ("connection_structures", counters.currConnections),
        ("cmd_get", counters.cmdGet),
        ("cmd_set", counters.cmdSet),
        ("cmd_flush", counters.cmdFlush),
        ("cmd_touch", counters.cmdTouch),
        ("cmd_meta", counters.cmdMeta),
        ("get_hits", counters.getHits),
        ("get_misses", counters.getMisses),
        ("get_expired", items.getExpired),
        ("get_flushed", items.getFlushed),
        ("delete_misses", counters.deleteMisses),
        ("delete_hits", counters.deleteHits),
        ("incr_misses", counters.incrMisses),
        ("incr_hits", counters.incrHits),
        ("decr_misses", counters.decrMisses),
        ("decr_hits", counters.decrHits),
        ("cas_misses", counters.casMisses),
        ("cas_hits", counters.casHits),
        ("cas_badval", counters.casBadval),
        ("touch_hits", counters.touchHits),
        ("touch_misses", counters.touchMisses),
        ("store_too_large", counters.storeTooLarge),
        ("store_no_memory", counters.storeNoMemory),
        ("auth_cmds", counters.authCmds),
        ("auth_errors", counters.authErrors),
    ]
    if cache.settings.idleTimeout:
        pairs.append(("idle_kicks", counters.idleKicks))
    pairs += [
        ("bytes_read", counters.bytesRead),
        ("bytes_written", counters.bytesWritten),
        ("limit_maxbytes", cache.store.maxBytes),
        ("accepting_conns", 1),
        ("threads", 1),
    ]
    pairs += crawlerStats(cache) + watchStats(cache)
    if cache.certificates is not None:
        pairs += cache.certificates.stats()
    pairs += [
        ("bytes", cache.store.bytes),
        ("curr_items", len(cache.store)),
        ("total_items", items.totalItems),
        ("expired_unfetched", items.expiredUnfetched),
        ("evicted_unfetched", items.evictedUnfetched),
        ("evicted_active", 0),
        ("evictions", items.evictions),
        ("reclaimed", items.reclaimed),
    ]
    return pairs


def settingsStats(cache: Cache) -> list[tuple[str, object]]:
    """
    @return: C{stats settings}: the settings memcached reports that apply
        here.  The listening ones (C{tcpport}, C{inter}, C{domain_socket}...)
        come from the first TCP and first Unix C{--listen} descriptions.
    """
    settings = cache.settings
    listening = settings.listening
    tcp = listening.tcpPort is not None
    pairs: list[tuple[str, object]] = [
        ("maxbytes", cache.store.maxBytes),
        ("maxconns", settings.connectionLimit),
    ]
    if tcp:
        pairs.append(("tcpport", listening.tcpPort))
    pairs.append(("udpport", 0))
    if tcp:
        pairs.append(("inter", listening.interface or "NULL"))
    pairs += [
        ("verbosity", cache.verbosity),
        ("evictions", "on"),
        ("domain_socket", listening.unixPath or "NULL"),
    ]
    if listening.unixPath is not None:
        pairs.append(("umask", "%o" % (listening.unixMode,)))
    pairs += [
        ("shutdown_command", "yes" if settings.enableShutdown else "no"),
        ("num_threads", 1),
        ("stat_key_prefix", ":"),
        ("detail_enabled", "yes" if cache.prefixStats.enabled else "no"),
        ("cas_enabled", "yes" if settings.useCas else "no"),
    ]
    if tcp:
        pairs.append(("tcp_backlog", listening.backlog))
    pairs += [
        ("binding_protocol", "ascii"),
        ("auth_enabled_sasl", "no"),
        ("auth_enabled_ascii", "no" if settings.credentials is None else "yes"),
        ("item_size_max", cache.store.maxItemSize),
        ("maxconns_fast", "yes"),
        ("lru_crawler", "yes" if cache.crawler.enabled else "no"),
        ("lru_crawler_sleep", cache.crawler.sleep),
        ("lru_crawler_tocrawl", cache.crawler.tocrawl),
        ("flush_enabled", "yes"),
        ("dump_enabled", "yes"),
        ("idle_timeout", int(settings.idleTimeout)),
    ]
    return pairs


def itemStats(cache: Cache) -> list[tuple[str, object]]:
    """
    @return: C{stats items}: myproto keeps one LRU, reported as class 1.
    """
    count = len(cache.store)
    if not count:
        return []
    items = cache.store.stats
    oldest = next(iter(cache.store.items()), None)
    age = int(cache.store.now() - oldest.lastAccess) if oldest is not None else 0
    return [
        ("items:1:number", count),
        ("items:1:age", age),
        ("items:1:mem_requested", cache.store.bytes),
        ("items:1:evicted", items.evictions),
        ("items:1:evicted_nonzero", items.evictedNonzero),
        ("items:1:outofmemory", items.outOfMemory),
        ("items:1:reclaimed", items.reclaimed),
        ("items:1:expired_unfetched", items.expiredUnfetched),
        ("items:1:evicted_unfetched", items.evictedUnfetched),
    ]


def slabStats(cache: Cache) -> list[tuple[str, object]]:
    """
    @return: C{stats slabs}: no slabs here, so one class holding every item,
        with its hit counters, and the memory in use.
    """
    count = len(cache.store)
    counters = cache.stats
    pairs: list[tuple[str, object]] = []
    if count:
        pairs = [
            ("1:used_chunks", count),
            ("1:get_hits", counters.getHits),
            ("1:cmd_set", counters.cmdSet),
            ("1:delete_hits", counters.deleteHits),
            ("1:incr_hits", counters.incrHits),
            ("1:decr_hits", counters.decrHits),
            ("1:cas_hits", counters.casHits),
            ("1:cas_badval", counters.casBadval),
            ("1:touch_hits", counters.touchHits),
        ]
    pairs.append(("active_slabs", 1 if count else 0))
    pairs.append(("total_malloced", cache.store.bytes))
    return pairs


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
    C{stats conns}: one group of lines per open client connection, ordered
    by its number (memcached's file descriptor).  Listening sockets are not
    listed.
    """
    now = cache.store.now()
    numbered = sorted((c.connectionNumber(), id(c), c) for c in list(cache.connections))
    pairs: list[tuple[str, object]] = []
    for number, _, connection in numbered:
        prefix = "%d:" % (number,)
        report = connection.connectionReport(now, connection is cache.currentConnection)
        pairs += [(prefix + name, value) for name, value in report]
    return pairs
