"""
The blocks of C{stats}: general, C{settings}, C{items}, C{slabs} and
C{sizes}, each with every name memcached 1.6.18 (Debian's build: TLS and
extstore compiled in, no proxy, no seccomp) reports, in its order.

A value is myproto's own where myproto has the figure.  Where it has no such
thing (no slab pages, no segmented LRU, no maintainer thread, no extstore),
the value is what memcached reports with that feature off or idle: 0 for its
counters, its defaults for its settings.  C{-f}, C{-n}, C{-R} and C{-D} are reported
as given, and shape what they shape in memcached: the slab classes' chunk
sizes, the reply window, the C{stats detail} prefixes.
"""

from __future__ import annotations

import os
import resource

from myproto.cache import PROTOCOL_VERSION, Cache, Lines
from myproto.commands.crawler import crawlerStats
from myproto.commands.watch import ITEM_CLASS, watchStats
from myproto.store import SLAB_SIZES
from myproto.wire import classic

Pairs = list[tuple[str, object]]

# What "libevent" reports: myproto's event loop is Twisted's reactor, and the
# commands do not import Twisted to ask its version.
EVENT_LIBRARY = "twisted"

# memcached's hash table starts at 2**16 buckets of one pointer each; myproto's
# is a Python dict, so these are memcached's figures for a table that has not
# grown (as for any cache of fewer than 98,304 items).
HASH_POWER_LEVEL = 16
HASH_BYTES = 8 * 2**HASH_POWER_LEVEL

# How memcached names each -B choice in stats settings.
_BINDING_PROTOCOLS = {"ascii": "ascii", "binary": "binary", "auto": "auto-negotiate"}

# memcached's -o hashpower, accepted and ignored: its default.
HASHPOWER_INIT = 0

# memcached's settings of features myproto does not have, as memcached
# reports them by default.  (A NULL string prints as "(null)" there.)
_SLAB_SETTINGS: Pairs = [
    ("slab_reassign", "yes"),
]
_SLAB_AUTOMOVE_SETTINGS: Pairs = [
    ("slab_automove_ratio", "0.80"),
    ("slab_automove_window", 30),
    # The largest chunk: myproto's largest slab class, as C{me} reports it.
    ("slab_chunk_max", SLAB_SIZES[-1]),
]
_LRU_SETTINGS: Pairs = [
    ("tail_repair_time", 0),
]
_HASH_AND_LRU_SETTINGS: Pairs = [
    # The key hash of "stats detail" (L{myproto.stats.murmur3}).
    ("hash_algorithm", "murmur3"),
    # memcached's segmented LRU, on by default; myproto has one LRU, which
    # "stats items" reports as the cold one.
    ("lru_maintainer_thread", "yes"),
    ("lru_segmented", "yes"),
    ("hot_lru_pct", 20),
    ("warm_lru_pct", 40),
    ("hot_max_factor", "0.20"),
    ("warm_max_factor", "2.00"),
    ("temp_lru", "no"),
    ("temporary_ttl", 61),
]
_BUFFER_SETTINGS: Pairs = [
    ("watcher_logbuf_size", 256 * 1024),
    ("worker_logbuf_size", 64 * 1024),
    ("read_buf_mem_limit", 0),
]
_EXTSTORE_SETTINGS: Pairs = [
    ("ext_item_size", 512),
    ("ext_item_age", 2**32 - 1),
    ("ext_low_ttl", 0),
    ("ext_recache_rate", 2000),
    ("ext_wbuf_size", 4 * 1024 * 1024),
    ("ext_compact_under", 0),
    ("ext_drop_under", 0),
    ("ext_max_sleep", 1_000_000),
    ("ext_max_frag", "0.80"),
    ("slab_automove_freeratio", "0.010"),
    ("ext_drop_unread", "no"),
]
# After ssl_enabled: memcached's -o ssl_* defaults.
_TLS_SETTINGS: Pairs = [
    ("ssl_chain_cert", "(null)"),
    ("ssl_key", "(null)"),
    ("ssl_verify_mode", 0),
    ("ssl_keyformat", 1),
    ("ssl_ciphers", "NULL"),
    ("ssl_ca_cert", "NULL"),
    ("ssl_wbuf_size", 16 * 1024),
    ("ssl_session_cache", "no"),
    ("ssl_kernel_tls", "no"),
    ("ssl_min_version", "tlsv1.2"),
]
_LAST_SETTINGS: Pairs = [
    ("num_napi_ids", "(null)"),
    ("memory_file", "(null)"),
]


# What memcached leaves out of "stats" and "stats items" without its LRU
# maintainer (-o no_lru_maintainer).
_MAINTAINER_STATS = frozenset(
    """lru_maintainer_juggles evicted_active moves_to_cold moves_to_warm
    moves_within_lru direct_reclaims lru_bumps_dropped""".split()
)
_MAINTAINER_ITEM_STATS = _MAINTAINER_STATS | frozenset(
    """number_hot number_warm number_cold age_hot age_warm hits_to_hot
    hits_to_warm hits_to_cold hits_to_temp""".split()
)


def _withoutMaintainer(cache: Cache, pairs: Pairs, names: frozenset[str]) -> Pairs:
    if cache.settings.lruMaintainer:
        return pairs
    return [(name, value) for name, value in pairs if name.rsplit(":", 1)[-1] not in names]


def statLines(pairs: Pairs) -> Lines:
    """
    @return: C{STAT name value} lines, then C{END}.
    """
    lines = [b"STAT %s %s" % (name.encode("ascii"), str(value).encode("ascii")) for name, value in pairs]
    lines.append(classic.END)
    return lines


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def generalStats(cache: Cache) -> Pairs:
    """
    @return: the general statistics (plain C{stats}) as C{(name, value)}
        pairs.
    """
    now = cache.store.now()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    counters = cache.stats
    items = cache.store.stats
    pairs: Pairs = [
        ("pid", os.getpid()),
        ("uptime", int(now - cache.startedAt)),
        ("time", int(now)),
        ("version", PROTOCOL_VERSION.decode("ascii")),
        ("libevent", EVENT_LIBRARY),
        ("pointer_size", 64),
        ("rusage_user", "%.6f" % (usage.ru_utime,)),
        ("rusage_system", "%.6f" % (usage.ru_stime,)),
        ("max_connections", cache.settings.connectionLimit),
        ("curr_connections", counters.currConnections),
        ("total_connections", counters.totalConnections),
        ("rejected_connections", counters.rejectedConnections),
        ("connection_structures", counters.currConnections),
        # memcached's pools of response objects and read buffers, which
        # myproto does not keep; nor does it reserve descriptors.
        ("response_obj_oom", 0),
        ("response_obj_count", 0),
        ("response_obj_bytes", 0),
        ("read_buf_count", 0),
        ("read_buf_bytes", 0),
        ("read_buf_bytes_free", 0),
        ("read_buf_oom", 0),
        ("reserved_fds", 0),
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
        # Over the connection limit myproto refuses each new client
        # (rejected_connections) rather than stop accepting.  conn_yields
        # counts reply windows that ran out (-R), as memcached's yields.
        ("listen_disabled_num", 0),
        ("time_in_listen_disabled_us", 0),
        ("threads", 1),
        ("conn_yields", counters.connYields),
        ("hash_power_level", HASH_POWER_LEVEL),
        ("hash_bytes", HASH_BYTES),
        ("hash_is_expanding", 0),
        # No slab pages to move, and no LRU maintainer thread to juggle.
        ("slab_reassign_rescues", 0),
        ("slab_reassign_chunk_rescues", 0),
        ("slab_reassign_evictions_nomem", 0),
        ("slab_reassign_inline_reclaim", 0),
        ("slab_reassign_busy_items", 0),
        ("slab_reassign_busy_deletes", 0),
        ("slab_reassign_running", 0),
        ("slabs_moved", 0),
    ]
    pairs += crawlerStats(cache)
    pairs += [
        ("lru_maintainer_juggles", 0),
        ("malloc_fails", 0),
    ]
    pairs += watchStats(cache)
    if cache.certificates is not None:
        pairs += cache.certificates.stats()
    pairs += [
        ("unexpected_napi_ids", 0),
        ("round_robin_fallback", 0),
        ("bytes", cache.store.bytes),
        ("curr_items", len(cache.store)),
        ("total_items", items.totalItems),
        ("slab_global_page_pool", 0),
        ("expired_unfetched", items.expiredUnfetched),
        ("evicted_unfetched", items.evictedUnfetched),
        ("evicted_active", 0),
        ("evictions", items.evictions),
        ("reclaimed", items.reclaimed),
        ("crawler_reclaimed", 0),
        ("crawler_items_checked", 0),
        ("lrutail_reflocked", 0),
        ("moves_to_cold", 0),
        ("moves_to_warm", 0),
        ("moves_within_lru", 0),
        ("direct_reclaims", 0),
        ("lru_bumps_dropped", 0),
    ]
    return _withoutMaintainer(cache, pairs, _MAINTAINER_STATS)


def settingsStats(cache: Cache) -> Pairs:
    """
    @return: C{stats settings}.  The listening ones (C{tcpport}, C{inter},
        C{domain_socket}...) come from the first TCP and first Unix
        C{--listen} descriptions: without a TCP one, C{tcpport} is 0 (as
        memcached's C{-p 0}) and C{tcp_backlog} memcached's default; without
        a Unix one, C{umask} is memcached's default.
    """
    settings = cache.settings
    listening = settings.listening
    tcp = listening.tcpPort is not None
    unix = listening.unixPath is not None
    pairs: Pairs = [
        ("maxbytes", cache.store.maxBytes),
        ("maxconns", settings.connectionLimit),
        ("tcpport", listening.tcpPort if tcp else 0),
        ("udpport", settings.udpPort),
        ("inter", (listening.interface if tcp else None) or "NULL"),
        ("verbosity", cache.verbosity),
        ("oldest", cache.oldestLive),
        ("evictions", "on" if cache.store.evictions else "off"),
        ("domain_socket", listening.unixPath if unix else "NULL"),
        ("umask", "%o" % (listening.unixMode if unix else settings.unixMask,)),
        ("shutdown_command", _yes(settings.enableShutdown)),
        ("growth_factor", "%.2f" % (settings.growthFactor,)),
        ("chunk_size", settings.chunkSizeMin),
        ("num_threads", 1),
        # memcached gives each UDP port all its worker threads.
        ("num_threads_per_udp", 1),
        ("stat_key_prefix", chr(cache.prefixStats.delimiter)),
        ("detail_enabled", _yes(cache.prefixStats.enabled)),
        ("reqs_per_event", settings.maxRequestsPerEvent),
        ("cas_enabled", _yes(settings.useCas)),
        ("tcp_backlog", listening.backlog if tcp else settings.listenBacklog),
        ("binding_protocol", _BINDING_PROTOCOLS[settings.protocol]),
        ("auth_enabled_sasl", "no" if settings.saslCredentials is None else "yes"),
        ("auth_enabled_ascii", "no" if settings.credentials is None else "yes"),
        ("item_size_max", cache.store.maxItemSize),
        ("maxconns_fast", "yes"),
        ("hashpower_init", HASHPOWER_INIT),
    ]
    pairs += _SLAB_SETTINGS
    pairs.append(("slab_automove", cache.slabAutomove))
    pairs += _SLAB_AUTOMOVE_SETTINGS
    pairs += [
        ("lru_crawler", _yes(cache.crawler.enabled)),
        ("lru_crawler_sleep", cache.crawler.sleep),
        ("lru_crawler_tocrawl", cache.crawler.tocrawl),
    ]
    pairs += _LRU_SETTINGS
    pairs += [
        ("flush_enabled", _yes(settings.flushEnabled)),
        ("dump_enabled", _yes(settings.dumpEnabled)),
    ]
    maintainer = _yes(settings.lruMaintainer)
    pairs += [
        (name, maintainer if name == "lru_maintainer_thread" else value)
        for name, value in _HASH_AND_LRU_SETTINGS
    ]
    pairs.append(("idle_timeout", int(settings.idleTimeout)))
    pairs += _BUFFER_SETTINGS
    pairs += [
        ("track_sizes", _yes(cache.sizesFrom is not None)),
        ("inline_ascii_response", "no"),
    ]
    pairs += _EXTSTORE_SETTINGS
    # memcached's -Z makes every listener TLS; here the mtls: endpoints'
    # certificates are what there is to report.
    pairs.append(("ssl_enabled", _yes(cache.certificates is not None)))
    pairs += _TLS_SETTINGS
    pairs += _LAST_SETTINGS
    tuned = _tunedSettings(cache)
    return [(name, tuned.get(name, value)) for name, value in pairs]


def _signed(value: int) -> int:
    """
    memcached prints the LRU percentages, unsigned, with C{%d}.
    """
    return value - 2**32 if value >= 2**31 else value


def _tunedSettings(cache: Cache) -> dict[str, object]:
    """
    @return: the settings the tuning commands have set, in memcached's
        format, by name (L{myproto.commands.tuning}).
    """
    tuning = cache.tuning
    return {
        "slab_automove_ratio": "%.2f" % (tuning.slabAutomoveRatio,),
        "lru_segmented": _yes(tuning.lruSegmented),
        "hot_lru_pct": _signed(tuning.hotLruPct),
        "warm_lru_pct": _signed(tuning.warmLruPct),
        "hot_max_factor": "%.2f" % (tuning.hotMaxFactor,),
        "warm_max_factor": "%.2f" % (tuning.warmMaxFactor,),
        "temp_lru": _yes(tuning.tempLru),
        "temporary_ttl": tuning.temporaryTtl,
        "ext_item_size": tuning.extItemSize,
        "ext_item_age": tuning.extItemAge,
        "ext_low_ttl": tuning.extLowTtl,
        "ext_recache_rate": tuning.extRecacheRate,
        "ext_compact_under": tuning.extCompactUnder,
        "ext_drop_under": tuning.extDropUnder,
        "ext_max_sleep": tuning.extMaxSleep,
        "ext_max_frag": "%.2f" % (tuning.extMaxFrag,),
        "ext_drop_unread": _yes(tuning.extDropUnread),
    }


def itemStats(cache: Cache) -> Pairs:
    """
    @return: C{stats items}: myproto keeps one LRU, reported as class 1 and
        as memcached's cold LRU (where memcached evicts from).
    """
    count = len(cache.store)
    if not count:
        return []
    items = cache.store.stats
    oldest = next(iter(cache.store.items()), None)
    age = int(cache.store.now() - oldest.lastAccess) if oldest is not None else 0
    values: Pairs = [
        ("number", count),
        ("number_hot", 0),
        ("number_warm", 0),
        ("number_cold", count),
        ("age_hot", 0),
        ("age_warm", 0),
        ("age", age),
        ("mem_requested", cache.store.bytes),
        ("evicted", items.evictions),
        ("evicted_nonzero", items.evictedNonzero),
        ("evicted_time", items.evictedTime),
        ("outofmemory", items.outOfMemory),
        ("tailrepairs", 0),
        ("reclaimed", items.reclaimed),
        ("expired_unfetched", items.expiredUnfetched),
        ("evicted_unfetched", items.evictedUnfetched),
        ("evicted_active", 0),
        ("crawler_reclaimed", 0),
        ("crawler_items_checked", 0),
        ("lrutail_reflocked", 0),
        ("moves_to_cold", 0),
        ("moves_to_warm", 0),
        ("moves_within_lru", 0),
        ("direct_reclaims", 0),
        ("hits_to_hot", 0),
        ("hits_to_warm", 0),
        ("hits_to_cold", cache.stats.getHits),
        ("hits_to_temp", 0),
    ]
    prefix = "items:%d:" % (ITEM_CLASS,)
    values = _withoutMaintainer(cache, values, _MAINTAINER_ITEM_STATS)
    return [(prefix + name, value) for name, value in values]


# memcached's slab page: each class takes memory a page at a time.
SLAB_PAGE_SIZE = 1024 * 1024


def slabStats(cache: Cache) -> Pairs:
    """
    @return: C{stats slabs}: every item in class 1 (as C{stats items}
        says), its pages counted as memcached would count pages of that
        class's chunks; its hit counters; and the memory in use (myproto
        allocates no pages: C{total_malloced} is the bytes its items take).
    """
    count = len(cache.store)
    counters = cache.stats
    pairs: Pairs = []
    if count:
        chunkSize = cache.slabSizes[ITEM_CLASS - 1]
        perPage = SLAB_PAGE_SIZE // chunkSize
        pages = -(-count // perPage)
        values: Pairs = [
            ("chunk_size", chunkSize),
            ("chunks_per_page", perPage),
            ("total_pages", pages),
            ("total_chunks", pages * perPage),
            ("used_chunks", count),
            ("free_chunks", pages * perPage - count),
            ("free_chunks_end", 0),
            ("get_hits", counters.getHits),
            ("cmd_set", counters.cmdSet),
            ("delete_hits", counters.deleteHits),
            ("incr_hits", counters.incrHits),
            ("decr_hits", counters.decrHits),
            ("cas_hits", counters.casHits),
            ("cas_badval", counters.casBadval),
            ("touch_hits", counters.touchHits),
        ]
        pairs = [("%d:%s" % (ITEM_CLASS, name), value) for name, value in values]
    pairs.append(("active_slabs", 1 if count else 0))
    pairs.append(("total_malloced", cache.store.bytes))
    return pairs


# memcached's "stats sizes" histogram: buckets this many bytes wide.
SIZES_BUCKET = 32


def sizesStats(cache: Cache) -> Pairs:
    """
    @return: C{stats sizes}: while C{stats sizes_enable} is in force, how
        many items there are of each size, rounded up to a multiple of 32
        bytes, counting those stored since it was enabled (by CAS unique, as
        memcached does); otherwise C{sizes_status disabled}.  myproto counts
        when asked, walking the items.
    """
    start = cache.sizesFrom
    if start is None:
        return [("sizes_status", "disabled")]
    buckets = cache.store.maxItemSize // SIZES_BUCKET + 1
    counts: dict[int, int] = {}
    for item in cache.store.allItems():
        if item.cas >= start:
            bucket = -(-item.size // SIZES_BUCKET)
            if bucket < buckets:
                counts[bucket] = counts.get(bucket, 0) + 1
    return [("%d" % (bucket * SIZES_BUCKET,), counts[bucket]) for bucket in sorted(counts)]


def enableSizes(cache: Cache) -> Pairs:
    """
    C{stats sizes_enable}: count item sizes from now on; memcached refuses
    without CAS uniques, which tell new items from old.
    """
    if not cache.store.useCas:
        return [("sizes_status", "error"), ("sizes_error", "cas_support_disabled")]
    if cache.sizesFrom is None:
        # memcached takes a new CAS unique as the first one counted.
        cache.sizesFrom = cache.store.nextCas()
    return [("sizes_status", "enabled")]


def disableSizes(cache: Cache) -> Pairs:
    """
    C{stats sizes_disable}: stop counting item sizes.
    """
    cache.sizesFrom = None
    return [("sizes_status", "disabled")]
