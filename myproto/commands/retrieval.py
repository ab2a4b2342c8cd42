"""
Reading items: C{get}, C{gets}, C{gat}, C{gats} and C{mg}, and touching
them (C{touch}, and the touch C{gat} makes of each item it finds).

memcached works through an C{mg}'s flags one at a time, in order, and some
of them change the item as they go: C{mg k t T30} reports the TTL from
before the touch, C{mg k T30 t} the TTL after it; and a too-long opaque token
fails the request only when the walk reaches it, after earlier flags have
had their effect.  L{metaGet} makes the same walk.
"""

from __future__ import annotations

from typing import Sequence

from myproto.cache import Cache, Lines
from myproto.errors import ClientError
from myproto.store import Item
from myproto.wire import classic, meta

_O, _k, _c, _f, _h, _l, _s, _t = (ord(flag) for flag in "Okcfhlst")
_N, _R, _T = (ord(flag) for flag in "NRT")


def touchItem(cache: Cache, key: bytes, expires: float) -> Item | None:
    """
    Give a live item a new expiry time, counting the touch as memcached
    does for C{touch} and C{gat}.

    @param expires: absolute clock seconds, or 0.0 for never.
    @return: the item, or L{None} when there is no live item.
    """
    stats = cache.stats
    stats.cmdTouch += 1
    item = cache.store.get(key)
    if item is None:
        stats.touchMisses += 1
        return None
    stats.touchHits += 1
    cache.store.touch(item, expires)
    return item


def retrieveItems(
    cache: Cache, keys: tuple[bytes, ...], touchExpires: float | None = None
) -> list[Item]:
    """
    Look items up as C{get} does, or touch them as C{gat} does.

    @param keys: the keys, in order.
    @param touchExpires: for C{gat}, each item's new expiry time.
    @return: each live item found, in order.
    @raise ClientError: at a key longer than memcached allows; memcached has
        served the keys before it, counters and all, but sends only the
        error.
    """
    store = cache.store
    stats = cache.stats
    prefixStats = cache.prefixStats if cache.prefixStats.enabled else None
    found = []
    for key in keys:
        if len(key) > classic.KEY_MAX_LENGTH:
            cache.newReplyWindow()
            raise ClientError(classic.BAD_FORMAT)
        if touchExpires is not None:
            item = touchItem(cache, key, touchExpires)
        else:
            item = store.get(key)
            stats.cmdGet += 1
            if item is None:
                stats.getMisses += 1
            else:
                stats.getHits += 1
        if prefixStats is not None:
            prefixStats.recordGet(key, item is not None)
        if item is not None:
            found.append(item)
    # memcached writes its replies after a get (unlike after mg).
    cache.newReplyWindow()
    return found


def retrieve(request: classic.RetrievalRequest, cache: Cache) -> Lines:
    """
    C{get}/C{gets}, and C{gat}/C{gats}, which give each item found a new
    expiry time and count as touches.
    """
    exptime = request.touchExptime
    if exptime is None and not cache.prefixStats.enabled:
        return getMany(cache, request.keys, request.withCas)
    found = retrieveItems(cache, request.keys, None if exptime is None else cache.expiry(exptime))
    lines: Lines = []
    if request.withCas:
        for item in found:
            value = item.value
            lines.append(classic.VALUE_HEADER_WITH_CAS % (item.key, item.flags, len(value), item.cas))
            lines.append(value)
    else:
        for item in found:
            value = item.value
            lines.append(classic.VALUE_HEADER % (item.key, item.flags, len(value)))
            lines.append(value)
    lines.append(classic.END)
    return lines


def getMany(cache: Cache, keys: Sequence[bytes], withCas: bool) -> Lines:
    """
    C{get}/C{gets} of any number of keys, as L{retrieveItems} and
    L{retrieve} would answer them while C{stats detail} is off, with the
    work per key kept to the lookup and its reply lines: the counters are
    added up once.
    """
    lookup = cache.store.get
    lines: Lines = []
    append = lines.append
    key = b""
    try:
        if withCas:
            for key in keys:
                if len(key) > classic.KEY_MAX_LENGTH:
                    raise ClientError(classic.BAD_FORMAT)
                item = lookup(key)
                if item is not None:
                    value = item.value
                    append(classic.VALUE_HEADER_WITH_CAS % (key, item.flags, len(value), item.cas))
                    append(value)
        else:
            for key in keys:
                if len(key) > classic.KEY_MAX_LENGTH:
                    raise ClientError(classic.BAD_FORMAT)
                item = lookup(key)
                if item is not None:
                    value = item.value
                    append(classic.VALUE_HEADER % (key, item.flags, len(value)))
                    append(value)
    except ClientError:
        # memcached has served (and counted) the keys before the long one.
        _countGets(cache, keys.index(key), len(lines) // 2)
        cache.newReplyWindow()
        raise
    _countGets(cache, len(keys), len(lines) // 2)
    # memcached writes its replies after a get (unlike after mg).
    cache.newReplyWindow()
    append(classic.END)
    return lines


def _countGets(cache: Cache, looked: int, hits: int) -> None:
    stats = cache.stats
    stats.cmdGet += looked
    stats.getHits += hits
    stats.getMisses += looked - hits


def getOne(cache: Cache, key: bytes, replies: Lines) -> None:
    """
    C{get} of one key that memcached accepts (no longer than
    L{classic.KEY_MAX_LENGTH}): what L{retrieve} does for it, counters,
    reply window and all, without a request object or a list of items, for
    the command that comes most often.

    @param replies: where the reply lines go.
    """
    item = cache.store.get(key)
    stats = cache.stats
    stats.cmdGet += 1
    if item is None:
        stats.getMisses += 1
    else:
        stats.getHits += 1
        value = item.value
        replies.append(classic.VALUE_HEADER % (key, item.flags, len(value)))
        replies.append(value)
    if cache.prefixStats.enabled:
        cache.prefixStats.recordGet(key, item is not None)
    # Cache.newReplyWindow, inlined: a get makes memcached write its replies.
    cache.replyWindow += 1
    replies.append(classic.END)


def touch(request: classic.TouchRequest, cache: Cache) -> Lines:
    """
    C{touch}: C{TOUCHED} or C{NOT_FOUND}.
    """
    if touchItem(cache, request.key, cache.expiry(request.exptime)) is None:
        return [classic.NOT_FOUND]
    return [classic.TOUCHED]


def bump(cache: Cache, item: Item) -> None:
    """
    Count a fetch as memcached's segmented LRU does: the first marks the
    item fetched; later ones refresh its last-access time.
    """
    if not item.fetched:
        item.fetched = True
        return
    now = cache.store.now()
    if not (item.expires and item.expires <= now):
        cache.store.get(item.key)


def metaGet(request: meta.MetaGetRequest, cache: Cache) -> Lines:
    """
    C{mg}: look an item up, report what the flags ask for, and touch,
    vivify or hand out a recache token as they say.

    @return: C{VA <size> <flags>} and the value, C{HD <flags>}, or C{EN}
        (hidden by C{q}).
    """
    flags = request.flags
    store = cache.store
    stats = cache.stats
    item = store.peek(flags.key)
    created = False
    if item is None and flags.vivifyTtl is not None:
        item = store.put(flags.key, b"", 0, 0.0)
        created = item is not None
    if item is None:
        stats.cmdGet += 1
        stats.getMisses += 1
        parts = [meta.MISS] + meta.echoes(flags, flags.key, flags.binaryKey)
        return [] if flags.quiet else [b" ".join(parts)]
    if not flags.locked and not flags.noBump:
        bump(cache, item)

    parts = [b"%s %d" % (meta.VALUE, len(item.value)) if flags.withValue else meta.HEADER]
    touched = False
    won = False
    for token in flags.tokens:
        flag = token[0]
        if flag == _T:
            assert flags.ttl is not None
            touched = True
            store.touch(item, cache.expiry(flags.ttl))
        elif flag == _N:
            if created:
                assert flags.vivifyTtl is not None
                store.touch(item, cache.expiry(flags.vivifyTtl))
                won = True
        elif flag == _R:
            assert flags.recacheTtl is not None
            if (
                not item.tokenSent
                and not created
                and item.expires
                and cache.expiryTime(item.expires)
                < cache.expiryTime(cache.expiry(flags.recacheTtl))
            ):
                won = True
        elif flag == _s:
            parts.append(b"s%d" % (len(item.value),))
        elif flag == _t:
            parts.append(b"t" + cache.remainingTtl(item))
        elif flag == _c:
            parts.append(b"c%d" % (item.cas,))
        elif flag == _f:
            parts.append(b"f%d" % (item.flags,))
        elif flag == _l:
            parts.append(b"l%d" % (cache.idleTime(item),))
        elif flag == _h:
            parts.append(b"h1" if item.fetched else b"h0")
        elif flag == _O:
            parts.append(meta.opaque(token))
        elif flag == _k:
            parts.append(meta.encodeKey(item.key, item.keyBinary))
    # A request never sees both Z and W: Z means someone else won first.
    if item.tokenSent:
        parts.append(meta.ALREADY_WON)
    if item.stale:
        parts.append(meta.STALE)
        if not item.tokenSent:
            won = True
    if won:
        parts.append(meta.WON)
        item.tokenSent = True
    if flags.locked and not flags.noBump:
        bump(cache, item)
    item.replyWindow = cache.replyWindow
    if touched:
        stats.cmdTouch += 1
        stats.touchHits += 1
    else:
        stats.cmdGet += 1
        stats.getHits += 1
    lines = [b" ".join(parts)]
    if flags.withValue:
        lines.append(item.value)
    return lines
