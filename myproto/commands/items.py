"""
The other commands on items: deletion (C{delete} and C{md}, through one
decision tree), C{flush_all}, C{me}'s debug line, and C{stats cachedump}.
"""

from __future__ import annotations

import base64
from typing import Sequence

from myproto.cache import Cache, Lines
from myproto.errors import ClientError
from myproto.store import slabClass
from myproto.wire import classic, meta
from myproto.wire.numbers import strtoul
from myproto.wire.replies import CLASSIC, DELETED, EXISTS, META, NOT_FOUND, Outcome

FLUSH_NOT_ALLOWED = b"flush_all not allowed"  # memcached -F


def deleteItem(
    cache: Cache,
    key: bytes,
    compareCas: int | None = None,
    invalidate: bool = False,
    expires: float | None = None,
) -> Outcome:
    """
    Remove an item, or mark it stale.

    @param compareCas: the CAS unique the item must have, or L{None} for
        any.
    @param invalidate: instead of removing it, mark it stale: a new CAS
        unique, and its recache token free again (C{md I}).
    @param expires: with C{invalidate}, its new expiry time (absolute clock
        seconds), or L{None} to keep it.
    @return: L{DELETED}, L{NOT_FOUND} or L{EXISTS}.
    """
    store = cache.store
    stats = cache.stats
    item = store.peek(key)
    if item is None:
        stats.deleteMisses += 1
        return NOT_FOUND
    if compareCas is not None and item.cas != compareCas:
        stats.deleteMisses += 1
        return EXISTS
    if invalidate:
        if expires is not None:
            store.touch(item, expires)
        item.stale = True
        item.tokenSent = False
        item.cas = store.nextCas()
    else:
        stats.deleteHits += 1
        store.remove(item)
    return DELETED


def delete(request: classic.DeleteRequest, cache: Cache) -> Lines:
    """
    C{delete}: C{DELETED} or C{NOT_FOUND}.
    """
    if cache.prefixStats.enabled:
        cache.prefixStats.recordDelete(request.key)
    return [CLASSIC[deleteItem(cache, request.key)]]


def metaDelete(request: meta.MetaDeleteRequest, cache: Cache) -> Lines:
    """
    C{md}: remove an item, or with C{I} mark it stale (new CAS, recache
    token free again, C{T} setting its TTL).

    @return: C{HD} (hidden by C{q}), C{NF} or C{EX}, with C{O} and C{k}.
    """
    flags = request.flags
    # A too-long opaque token fails the request before it has any effect.
    echoes = meta.echoes(flags, flags.key, flags.binaryKey)
    expires = cache.expiry(flags.ttl) if flags.ttl is not None else None
    outcome = deleteItem(cache, flags.key, flags.compareCas, flags.invalidate, expires)
    if outcome is DELETED and flags.quiet:
        return []
    return [b" ".join([META[outcome]] + echoes)]


def flush(cache: Cache, exptime: int) -> None:
    """
    Invalidate every item, now or at a protocol expiration time.

    @param exptime: 0 or less for now, else as an item's expiration time.
    """
    cache.stats.cmdFlush += 1
    now = cache.store.now()
    moment = cache.expiry(exptime) if exptime > 0 else now
    if exptime > 0:
        cache.store.flush(moment - now)
    else:
        cache.store.flush()
    # memcached keeps a second less when items carry CAS uniques.
    cache.oldestLive = cache.serverTime(moment) - (1 if cache.store.useCas else 0)


def flushAll(request: classic.FlushRequest, cache: Cache) -> Lines:
    """
    C{flush_all [delay]}: C{OK}, or memcached's refusal under C{-F}.
    """
    if not cache.settings.flushEnabled:
        # memcached counts it, then refuses it before reading the delay.
        cache.stats.cmdFlush += 1
        raise ClientError(FLUSH_NOT_ALLOWED)
    if request.exptime is None:
        # memcached counts the command before it refuses the delay.
        cache.stats.cmdFlush += 1
        raise ClientError(classic.BAD_EXPTIME)
    flush(cache, request.exptime)
    return [classic.OK]


def metaDebug(request: meta.MetaDebugRequest, cache: Cache) -> Lines:
    """
    C{me}: memcached's debug line for an item, without bumping it.

    @return: C{ME <key> exp=.. la=.. cas=.. fetch=.. cls=.. size=..}, or
        C{EN}.
    """
    cache.stats.cmdMeta += 1
    item = cache.store.peek(request.key)
    if item is None:
        return [meta.MISS]
    key = base64.b64encode(item.key) if item.keyBinary else item.key
    if item.expires:
        left = cache.serverTime(cache.store.now()) - cache.expiryTime(item.expires)
        expiry = ((left + 2**31) & 0xFFFFFFFF) - 2**31
    else:
        expiry = -1
    return [
        b"%s %s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d"
        % (
            meta.DEBUG,
            key,
            expiry,
            cache.idleTime(item),
            item.cas,
            b"yes" if item.fetched else b"no",
            slabClass(item.size, cache.slabSizes),
            item.size,
        )
    ]


CACHEDUMP_NOT_ALLOWED = b"stats cachedump not allowed"  # memcached -X
BAD_COMMAND_LINE = b"bad command line"
ILLEGAL_SLAB_ID = b"Illegal slab id"
# memcached's MAX_NUMBER_OF_SLAB_CLASSES, and its cap on a dump's reply.
SLAB_CLASSES = 64
CACHEDUMP_LIMIT = 2 * 1024 * 1024


def cacheDump(arguments: Sequence[bytes], cache: Cache) -> Lines:
    """
    C{stats cachedump <class> <limit>}: one C{ITEM <key> [<bytes> b;
    <expiry> s]} line per item of that slab class, most recently stored
    first, at most C{limit} of them (0: all, within memcached's 2 MiB), then
    C{END}.  memcached lists only its cold LRU; with its LRU maintainer off
    that holds every item of the class, and with it on, every item that has
    settled (not just stored, nor fetched since).  Items stored under a
    binary (base64) key are left out, as memcached leaves them out.

    @param arguments: the words after C{stats}.
    """
    if not cache.settings.dumpEnabled:
        raise ClientError(CACHEDUMP_NOT_ALLOWED)
    if len(arguments) < 3:
        raise ClientError(BAD_COMMAND_LINE)
    number = strtoul(arguments[1])
    limit = strtoul(arguments[2])
    if number is None or limit is None:
        raise ClientError(classic.BAD_FORMAT)
    if number >= SLAB_CLASSES:
        raise ClientError(ILLEGAL_SLAB_ID)
    lines: Lines = []
    room = CACHEDUMP_LIMIT - 6
    # The store's order is by last use; memcached's by last store (a fetch
    # does not move an item within a minute), which the CAS follows.
    for item in sorted(reversed(list(cache.store.items())), key=lambda item: -item.cas):
        if limit and len(lines) >= limit:
            break
        if item.keyBinary or slabClass(item.size, cache.slabSizes) != number:
            continue
        line = b"ITEM %s [%d b; %d s]" % (
            item.key, len(item.value), int(item.expires) if item.expires else 0
        )
        room -= len(line) + 2
        if room < 0:
            break
        lines.append(line)
    lines.append(classic.END)
    return lines
