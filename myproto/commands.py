"""
What each command does: a request and the cache in, reply lines out.

One function per verb, found through one table.  Reply lines are bytes
without their CRLF; a data block is one line of its own.  Nothing here sees a
transport or the reactor.
"""

from __future__ import annotations

import os
import resource
from typing import Any, Callable

from myproto import conns, crawler, meta, watch, wire
from myproto.auth import checkCredentials
from myproto.config import ServerSettings
from myproto.errors import ClientError, ProtocolError, ServerError, UnknownCommand
from myproto.stats import PrefixStats, ServerStats
from myproto.store import MemoryStore

# Clients gate features on the server's version, so myproto reports the
# memcached release whose protocol it speaks.
PROTOCOL_VERSION = b"1.6.18"

# memcached's longest relative expiry; larger values are absolute unix times.
MAX_RELATIVE_EXPTIME = 60 * 60 * 24 * 30

# Reply lines, as a list of byte strings.
Lines = list[bytes]


class Cache:
    """
    Everything commands act on: the store, the counters and the settings.

    @ivar store: the items.
    @ivar stats: the server-wide counters.
    @ivar settings: the server's settings.
    @ivar verbosity: the current verbosity, which C{verbosity} changes.
    @ivar startedAt: clock seconds when the server started.
    @ivar replyWindow: names the replies a connection has made but memcached
        would not have written yet (see L{newReplyWindow}).
    @ivar reloadCertificates: set by the service wiring when the server has
        C{mtls:} endpoints: loads their files again and returns L{None}, or
        memcached's error line.  L{None} when there is nothing to reload.
    @ivar tlsStats: set along with it: the TLS lines of C{stats}.
    @ivar connections: the open client connections (C{stats conns}); the
        protocol factory shares this set.
    @ivar currentConnection: the connection whose input is being handled.
    @ivar watchers: the C{watch} connections and the logger counters.
    @ivar watching: C{watchers} while anyone watches, else L{None}.
    @ivar crawler: the C{lru_crawler} settings and state.
    @ivar timings: per-command durations, kept while a metrics endpoint is
        configured (L{myproto.metrics}), else L{None}.
    """

    def __init__(self, store: MemoryStore, settings: ServerSettings) -> None:
        self.store = store
        self.stats = ServerStats()
        self.prefixStats = PrefixStats()
        self.settings = settings
        self.verbosity = settings.verbosity
        # The store's start: its coarse last-access clock ticks on the same
        # whole seconds as the times reported to clients.
        self.startedAt = store.startedAt
        self.replyWindow = 1
        self.reloadCertificates: Callable[[], str | None] | None = None
        self.tlsStats: Callable[[], list[tuple[str, object]]] | None = None
        self.connections: set[Any] = set()
        self.currentConnection: Any = None
        self.watchers = watch.Watchers(self)
        self.watching: watch.Watchers | None = None
        self.crawler = crawler.Crawler()
        self.timings: Any = None

    def newReplyWindow(self) -> None:
        """
        Note that memcached would now have written the replies made so far.

        Until it does, each reply showing an item holds a reference to it,
        and C{incr}/C{decr}/C{ma} will not change a referenced item in place:
        they store a new item instead.  C{mg} marks what it shows with the
        current window, and arithmetic compares; C{get} and C{mn} make
        memcached write its replies, as does the end of a read or every
        twentieth command (see L{myproto.protocol}).
        """
        self.replyWindow += 1

    def expiry(self, exptime: int) -> float:
        """
        Turn a protocol expiration time into absolute clock seconds.

        @param exptime: 0 for never, up to 30 days as seconds from now,
            larger as a unix time; negative means already expired.
        @return: absolute clock seconds, or 0.0 for never.
        """
        if exptime == 0:
            return 0.0
        if exptime < 0:
            # Any moment in the past will do; zero would mean "never".
            return 1.0
        if exptime > MAX_RELATIVE_EXPTIME:
            return float(exptime)
        return self.store.now() + exptime


# Storage.


def admitStorage(request: wire.StorageRequest, cache: Cache) -> Lines:
    """
    Check, before its data block is read, that an item can be stored.

    @raise ServerError: when it is too large; the caller swallows the data
        block.  As in memcached, a refused C{set} removes the old value, so
        that a stale value does not outlive a failed update.
    """
    if cache.prefixStats.enabled:
        cache.prefixStats.recordSet(request.key)
    if not cache.store.fits(request.key, request.size, request.flags):
        cache.stats.storeTooLarge += 1
        if request.verb == b"set":
            cache.store.delete(request.key)
        raise ServerError(wire.TOO_LARGE, request.noreply)
    return []


def store(request: wire.StorageRequest, value: bytes, cache: Cache) -> Lines:
    """
    Carry out a storage command whose data block has arrived intact.

    @param request: the parsed command line.
    @param value: the data block, without its CRLF.
    @return: the reply.
    """
    cache.stats.cmdSet += 1
    items = cache.store
    verb = request.verb
    old = items.peek(request.key)
    if old is None:
        if verb == b"cas":
            cache.stats.casMisses += 1
            return [wire.NOT_FOUND]
        if verb != b"set" and verb != b"add":
            return [wire.NOT_STORED]
        return _put(cache, request.key, value, request.flags, cache.expiry(request.exptime))
    if verb == b"set" or verb == b"replace":
        return _put(cache, request.key, value, request.flags, cache.expiry(request.exptime))
    if verb == b"add":
        # Not stored, but memcached refreshes the old item's access time
        # (without marking it fetched, which mg's "h" flag would show).
        old.lastAccess = items.now()
        return [wire.NOT_STORED]
    if verb == b"cas":
        if request.cas != 0 and request.cas == old.cas:
            cache.stats.casHits += 1
            return _put(cache, request.key, value, request.flags, cache.expiry(request.exptime))
        cache.stats.casBadval += 1
        return [wire.EXISTS]
    # append and prepend keep the old item's flags and expiry time; one that
    # would outgrow the item size limit is simply not stored.
    if not items.fits(request.key, len(old.value) + len(value), old.flags):
        return [wire.NOT_STORED]
    joined = old.value + value if verb == b"append" else value + old.value
    return _put(cache, request.key, joined, old.flags, old.expires)


def _put(cache: Cache, key: bytes, value: bytes, flags: int, expires: float) -> Lines:
    if cache.store.put(key, value, flags, expires) is None:
        cache.stats.storeNoMemory += 1
        raise ServerError(wire.OUT_OF_MEMORY)
    return [wire.STORED]


def authenticate(request: wire.AuthenticationRequest, payload: bytes, cache: Cache) -> Lines:
    """
    Check the C{"username password"} data block of an authentication C{set}.

    @return: C{STORED} when accepted.
    @raise ClientError: when the token is malformed or not accepted.
    """
    username, password = wire.parseCredentials(payload)
    cache.stats.authCmds += 1
    if checkCredentials(cache.settings.credentials or (), username, password):
        return [wire.STORED]
    cache.stats.authErrors += 1
    raise ClientError(wire.AUTH_FAILURE)


# Retrieval.


def retrieve(request: wire.RetrievalRequest, cache: Cache) -> Lines:
    """
    C{get}/C{gets}, and C{gat}/C{gats}, which give each item found a new
    expiry time and count as touches.
    """
    items = cache.store
    stats = cache.stats
    touching = request.touchExptime is not None
    expires = cache.expiry(request.touchExptime) if request.touchExptime is not None else 0.0
    prefixStats = cache.prefixStats if cache.prefixStats.enabled else None
    withCas = request.withCas
    lines: Lines = []
    for key in request.keys:
        if len(key) > wire.KEY_MAX_LENGTH:
            # memcached has served the keys before this one, counters and
            # all, but sends only the error.
            cache.newReplyWindow()
            raise ClientError(wire.BAD_FORMAT)
        item = items.get(key)
        if prefixStats is not None:
            prefixStats.recordGet(key, item is not None)
        if touching:
            stats.cmdTouch += 1
            if item is None:
                stats.touchMisses += 1
                continue
            stats.touchHits += 1
            items.touch(item, expires)
        else:
            stats.cmdGet += 1
            if item is None:
                stats.getMisses += 1
                continue
            stats.getHits += 1
        value = item.value
        if withCas:
            lines.append(wire.VALUE_HEADER_WITH_CAS % (key, item.flags, len(value), item.cas))
        else:
            lines.append(wire.VALUE_HEADER % (key, item.flags, len(value)))
        lines.append(value)
    lines.append(wire.END)
    # memcached writes its replies after a get (unlike after mg).
    cache.newReplyWindow()
    return lines


# Other item commands.


def delete(request: wire.DeleteRequest, cache: Cache) -> Lines:
    if cache.prefixStats.enabled:
        cache.prefixStats.recordDelete(request.key)
    if cache.store.delete(request.key):
        cache.stats.deleteHits += 1
        return [wire.DELETED]
    cache.stats.deleteMisses += 1
    return [wire.NOT_FOUND]


def arithmetic(request: wire.ArithmeticRequest, cache: Cache) -> Lines:
    """
    C{incr}/C{decr}: the value is a decimal 64-bit unsigned number; C{incr}
    wraps, C{decr} stops at zero.  As in memcached, a result no longer than
    the old value is written in place, padded with spaces.
    """
    stats = cache.stats
    item = cache.store.peek(request.key)
    if item is None:
        if request.increment:
            stats.incrMisses += 1
        else:
            stats.decrMisses += 1
        return [wire.NOT_FOUND]
    current = wire.parseCounter(item.value)
    if current is None:
        raise ClientError(wire.NON_NUMERIC, request.noreply)
    if request.increment:
        stats.incrHits += 1
        result = (current + request.delta) % 2**64
    else:
        stats.decrHits += 1
        result = max(current - request.delta, 0)
    digits = b"%d" % (result,)
    if len(digits) <= len(item.value) and item.replyWindow != cache.replyWindow:
        cache.store.updateInPlace(item, digits.ljust(len(item.value)))
    else:
        _put(cache, request.key, digits, item.flags, item.expires)
    return [digits]


def touch(request: wire.TouchRequest, cache: Cache) -> Lines:
    cache.stats.cmdTouch += 1
    item = cache.store.get(request.key)
    if item is None:
        cache.stats.touchMisses += 1
        return [wire.NOT_FOUND]
    cache.stats.touchHits += 1
    cache.store.touch(item, cache.expiry(request.exptime))
    return [wire.TOUCHED]


def flushAll(request: wire.FlushRequest, cache: Cache) -> Lines:
    cache.stats.cmdFlush += 1
    if request.exptime is None:
        raise ClientError(wire.BAD_EXPTIME, request.noreply)
    if request.exptime > 0:
        cache.store.flush(cache.expiry(request.exptime) - cache.store.now())
    else:
        cache.store.flush()
    return [wire.OK]


# Server commands.


def version(request: wire.VersionRequest, cache: Cache) -> Lines:
    return [wire.VERSION + PROTOCOL_VERSION]


def verbosity(request: wire.VerbosityRequest, cache: Cache) -> Lines:
    cache.verbosity = min(request.level, 2)
    return [wire.OK]


def memoryLimit(request: wire.MemoryLimitRequest, cache: Cache) -> Lines:
    """
    C{cache_memlimit}: a new memory limit in megabytes, with memcached's
    bounds; lowering it evicts at once.
    """
    if request.megabytes < 8:
        return [wire.MEMLIMIT_TOO_SMALL]
    if request.megabytes > 1_000_000_000:
        return [wire.MEMLIMIT_NOT_BYTES]
    cache.store.setMemoryLimit(request.megabytes * 1024 * 1024)
    return [wire.OK]


def noOp(request: wire.NoOpRequest, cache: Cache) -> Lines:
    # mn makes memcached write its replies at once.
    cache.newReplyWindow()
    return [wire.MN]


def refreshCertificates(request: wire.RefreshCertificatesRequest, cache: Cache) -> Lines:
    """
    C{refresh_certs}: have the TLS endpoints load their files again.  Its
    C{noreply} silences only the C{OK}, as in memcached.
    """
    if cache.reloadCertificates is None:
        return [wire.TLS_NOT_ENABLED]
    error = cache.reloadCertificates()
    if error is not None:
        return [error.encode("utf-8", "replace")]
    return [] if request.quietSuccess else [wire.OK]


def stats(request: wire.StatsRequest, cache: Cache) -> Lines:
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
        return [wire.RESET]
    if subcommand == b"detail":
        if len(arguments) < 2 or arguments[1] not in (b"on", b"off", b"dump"):
            raise ClientError(wire.BAD_STATS_DETAIL)
        if arguments[1] == b"dump":
            return cache.prefixStats.dump() + [wire.END]
        cache.prefixStats.enabled = arguments[1] == b"on"
        return [wire.OK]
    if subcommand == b"settings":
        return _statLines(settingsStats(cache))
    if subcommand == b"items":
        return _statLines(itemStats(cache))
    if subcommand == b"slabs":
        return _statLines(slabStats(cache))
    if subcommand == b"conns":
        return _statLines(conns.connectionStats(cache))
    raise UnknownCommand()


def _statLines(pairs: list[tuple[str, object]]) -> Lines:
    lines = [b"STAT %s %s" % (name.encode("ascii"), str(value).encode("ascii")) for name, value in pairs]
    lines.append(wire.END)
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
    pairs += crawler.crawlerStats(cache) + watch.watchStats(cache)
    if cache.tlsStats is not None:
        pairs += cache.tlsStats()
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


_ADMITTERS: dict[type, Callable[..., Lines]] = {
    wire.StorageRequest: admitStorage,
    meta.MetaSetRequest: meta.admitMetaSet,
}

_COMPLETERS: dict[type, Callable[..., Lines]] = {
    wire.StorageRequest: store,
    meta.MetaSetRequest: meta.metaSet,
    wire.AuthenticationRequest: authenticate,
}

# The commands that need no data block, by request type.
HANDLERS: dict[type, Callable[..., Lines]] = {
    wire.RetrievalRequest: retrieve,
    wire.DeleteRequest: delete,
    wire.ArithmeticRequest: arithmetic,
    wire.TouchRequest: touch,
    wire.FlushRequest: flushAll,
    wire.VersionRequest: version,
    wire.VerbosityRequest: verbosity,
    wire.StatsRequest: stats,
    wire.NoOpRequest: noOp,
    wire.MemoryLimitRequest: memoryLimit,
    wire.RefreshCertificatesRequest: refreshCertificates,
    wire.WatchRequest: watch.watch,
    wire.LruCrawlerRequest: crawler.lruCrawler,
    meta.MetaGetRequest: meta.metaGet,
    meta.MetaDeleteRequest: meta.metaDelete,
    meta.MetaArithmeticRequest: meta.metaArithmetic,
    meta.MetaDebugRequest: meta.metaDebug,
}


def execute(request: wire.Request, cache: Cache) -> Lines:
    """
    Carry out a request that needs no data block.

    @param request: a parsed request (not storage, C{quit} or C{shutdown}).
    @param cache: what the command acts on.
    @return: the reply lines.
    @raise ProtocolError: for requests that get an error reply.
    """
    if cache.timings is not None:
        return cache.timings.time(HANDLERS[type(request)], request, cache)  # type: ignore[no-any-return]
    return HANDLERS[type(request)](request, cache)


def badDataBlock(request: wire.DataRequest, cache: Cache) -> ProtocolError:
    """
    The error for a data block that does not end in CRLF.  memcached counts
    the attempt as a set all the same.

    @param request: the request the block belongs to.
    @param cache: what the command acts on.
    @return: the error to reply with.
    """
    if isinstance(request, wire.AuthenticationRequest):
        return ClientError(wire.BAD_AUTH_TERMINATION)
    cache.stats.cmdSet += 1
    return ClientError(wire.BAD_DATA_CHUNK)


def admit(request: wire.DataRequest, cache: Cache) -> Lines:
    """
    Decide, before its data block is read, whether a request can be stored.

    @param request: a request followed by a data block.
    @param cache: what the command acts on.
    @return: reply lines to send at once (normally none).
    @raise ProtocolError: when the data block must be swallowed unread.
    """
    if cache.watching is not None:
        return cache.watching.admitting(_ADMITTERS[type(request)], request, cache)
    return _ADMITTERS[type(request)](request, cache)


def complete(request: wire.DataRequest, value: bytes, cache: Cache) -> Lines:
    """
    Carry out a request whose data block arrived intact.

    @param request: a request followed by a data block.
    @param value: the data block, without its CRLF.
    @param cache: what the command acts on.
    @return: the reply lines.
    @raise ProtocolError: for requests that get an error reply.
    """
    completer = _COMPLETERS[type(request)]
    if cache.watching is None and cache.timings is None:
        return completer(request, value, cache)
    return _observedCompletion(completer, request, value, cache)


def _observedCompletion(
    completer: Callable[..., Lines], request: wire.DataRequest, value: bytes, cache: Cache
) -> Lines:
    """
    L{complete} while someone watches (C{watch mutations}) or commands are
    timed (L{myproto.metrics}).
    """
    watching = cache.watching
    if watching is not None:
        inner = completer

        def completer(request: Any, value: bytes, cache: Cache) -> Lines:
            return watching.completing(inner, request, value, cache)

    if cache.timings is not None:
        return cache.timings.timeCompletion(completer, request, value, cache)  # type: ignore[no-any-return]
    return completer(request, value, cache)
