"""
Storing items: one decision tree for C{set}, C{add}, C{replace}, C{append},
C{prepend} and C{cas}, classic and meta alike, as memcached's
C{do_store_item} is one function for every protocol.

L{admitItem} and L{storeItem} carry the meaning and return an L{Outcome};
the classic commands and C{ms} only read their requests into them and render
the outcome in their own words.
"""

from __future__ import annotations

from myproto.auth import checkCredentials
from myproto.cache import Cache, Lines
from myproto.errors import ClientError, ServerError
from myproto.store import Item
from myproto.wire import classic, meta
from myproto.wire.replies import (
    CLASSIC,
    EXISTS,
    META,
    NO_MEMORY,
    NOT_FOUND,
    NOT_STORED,
    STORED,
    TOO_LARGE,
    Outcome,
)

# The storage modes, by the verbs memcached logs for them.
SET = b"set"
ADD = b"add"
REPLACE = b"replace"
APPEND = b"append"
PREPEND = b"prepend"
CAS = b"cas"


def admitItem(
    cache: Cache, key: bytes, size: int, flags: int, mode: bytes, dropOld: bool, count: bool = True
) -> None:
    """
    Check, before its data block is read, that an item can be stored.

    @param size: the value's length.
    @param mode: the storage mode, as memcached logs it.
    @param dropOld: whether a refusal removes the key's current item, so
        that a stale value does not outlive a failed update (memcached does
        so for a classic C{set} and for every C{ms}).
    @param count: whether a refusal counts in C{store_too_large} (memcached's
        binary protocol does not count it).
    @raise ServerError: when it is too large; the caller swallows the data
        block.
    """
    if cache.store.fits(key, size, flags):
        return
    if cache.watching is not None:
        cache.watching.itemStored(key, TOO_LARGE, mode, 0, 0)
    if count:
        cache.stats.storeTooLarge += 1
    if dropOld:
        cache.store.delete(key)
    raise ServerError(classic.TOO_LARGE)


def storeItem(
    cache: Cache,
    mode: bytes,
    key: bytes,
    value: bytes,
    flags: int,
    expires: float,
    compareCas: int = 0,
    invalidate: bool = False,
    binaryKey: bool = False,
) -> tuple[Outcome, Item | None]:
    """
    Store an item whose data block has arrived intact, as the mode says.

    @param mode: L{SET}, L{ADD}, L{REPLACE}, L{APPEND}, L{PREPEND} or L{CAS}.
    @param expires: absolute clock seconds, or 0.0 for never.
    @param compareCas: the CAS unique the item must have (0: any, except
        for L{CAS}, where 0 matches nothing).
    @param invalidate: for L{CAS}, let an older CAS unique store the item
        as stale (C{ms I}).
    @param binaryKey: whether the key came base64-encoded (C{ms b}).
    @return: the outcome, and the item stored (L{None} unless L{STORED}).
    @raise ServerError: when there is no memory for the item.
    """
    store = cache.store
    stats = cache.stats
    stats.cmdSet += 1
    old = store.peek(key)
    item: Item | None = None
    if old is None:
        if mode == CAS:
            stats.casMisses += 1
            outcome = NOT_FOUND
        elif mode != SET and mode != ADD:
            outcome = NOT_STORED
        else:
            outcome, item = _put(cache, key, value, flags, expires)
    elif mode == SET or mode == REPLACE:
        outcome, item = _put(cache, key, value, flags, expires)
    elif mode == ADD:
        # Not stored, but memcached refreshes the old item's access time
        # (without marking it fetched, which mg's "h" flag would show).
        old.lastAccess = store.now()
        outcome = NOT_STORED
    elif mode == CAS:
        outcome, item = _compareAndSwap(cache, old, key, value, flags, expires, compareCas, invalidate)
    else:
        outcome, item = _join(cache, old, mode, key, value, compareCas)
    if binaryKey and item is not None and mode != APPEND and mode != PREPEND:
        # As in memcached, the item a meta append makes is not marked as
        # having a binary key: only a new value is.
        item.keyBinary = True
    if cache.watching is not None:
        _logStore(cache, key, outcome, mode, expires, item, len(value))
    if outcome is NO_MEMORY:
        raise ServerError(classic.OUT_OF_MEMORY)
    return outcome, item


def _compareAndSwap(
    cache: Cache,
    old: Item,
    key: bytes,
    value: bytes,
    flags: int,
    expires: float,
    compareCas: int,
    invalidate: bool,
) -> tuple[Outcome, Item | None]:
    stats = cache.stats
    if compareCas != 0 and compareCas == old.cas:
        stats.casHits += 1
        return _put(cache, key, value, flags, expires)
    if compareCas != 0 and invalidate and compareCas < old.cas:
        # An older version may replace the item, but only as stale, keeping
        # the TTL and any recache token already handed out.
        stats.casHits += 1
        tokenSent = old.tokenSent
        outcome, item = _put(cache, key, value, flags, old.expires)
        if item is not None:
            item.stale = True
            item.tokenSent = tokenSent
        return outcome, item
    stats.casBadval += 1
    return EXISTS, None


def _join(
    cache: Cache, old: Item, mode: bytes, key: bytes, value: bytes, compareCas: int
) -> tuple[Outcome, Item | None]:
    """
    append and prepend keep the old item's flags and expiry time; one that
    would outgrow the item size limit, or find no memory, is not stored.
    """
    store = cache.store
    if compareCas != 0 and compareCas != old.cas:
        return EXISTS, None
    if not store.fits(key, len(old.value) + len(value), old.flags):
        return NOT_STORED, None
    joined = old.value + value if mode == APPEND else value + old.value
    item = store.put(key, joined, old.flags, old.expires)
    if item is None:
        return NOT_STORED, None
    return STORED, item


def _put(
    cache: Cache, key: bytes, value: bytes, flags: int, expires: float
) -> tuple[Outcome, Item | None]:
    item = cache.store.put(key, value, flags, expires)
    if item is None:
        cache.stats.storeNoMemory += 1
        return NO_MEMORY, None
    return STORED, item


def _logStore(
    cache: Cache,
    key: bytes,
    outcome: Outcome,
    mode: bytes,
    expires: float,
    item: Item | None,
    size: int,
) -> None:
    """
    Tell the watchers a storage outcome, with the TTL and size memcached's
    C{item_store} line shows: the stored item's, or else the request's.
    """
    assert cache.watching is not None
    if outcome is NO_MEMORY:
        cache.watching.itemStored(key, outcome, mode, 0, 0)
        return
    now = cache.store.now()
    if item is not None:
        expires = item.expires
        size = len(item.value)
    ttl = round(expires - now) if expires else 0
    cache.watching.itemStored(key, outcome, mode, ttl, size)


# The classic protocol.


def admitStorage(request: classic.StorageRequest, cache: Cache) -> Lines:
    """
    Check a classic storage line before its data block is read.

    @raise ServerError: when the item is too large (see L{admitItem}).
    """
    if cache.prefixStats.enabled:
        cache.prefixStats.recordSet(request.key)
    admitItem(cache, request.key, request.size, request.flags, request.verb, request.verb == SET)
    return []


def store(request: classic.StorageRequest, value: bytes, cache: Cache) -> Lines:
    """
    A classic storage command with its data block.

    @return: C{STORED}, C{NOT_STORED}, C{EXISTS} or C{NOT_FOUND}.
    """
    outcome, _ = storeItem(
        cache,
        request.verb,
        request.key,
        value,
        request.flags,
        cache.expiry(request.exptime),
        request.cas,
    )
    return [CLASSIC[outcome]]


def admitAuthentication(request: classic.AuthenticationRequest, cache: Cache) -> Lines:
    """
    An authentication C{set} line: its data block is always read.
    """
    return []


def authenticate(request: classic.AuthenticationRequest, payload: bytes, cache: Cache) -> Lines:
    """
    Check the C{"username password"} data block of an authentication C{set}.

    @return: C{STORED} when accepted.
    @raise ClientError: when the token is malformed or not accepted.
    """
    username, password = classic.parseCredentials(payload)
    cache.stats.authCmds += 1
    if checkCredentials(cache.settings.credentials or (), username, password):
        return [classic.STORED]
    cache.stats.authErrors += 1
    raise ClientError(classic.AUTH_FAILURE)


# The meta protocol.

_O, _k, _c = (ord(flag) for flag in "Okc")


def _metaMode(flags: meta.MetaFlags) -> bytes:
    """
    The storage mode of an C{ms}: its C{M} flag, where a C{C} flag turns a
    set or replace into a compare-and-swap.
    """
    mode = meta.SET_MODES.get(flags.mode, SET)
    if flags.compareCas is not None and (mode == SET or mode == REPLACE):
        return CAS
    return mode


def admitMetaSet(request: meta.MetaSetRequest, cache: Cache) -> Lines:
    """
    Check an C{ms} line before its data block is read.

    @raise ProtocolError: for bad flags, a bad mode, a too-long opaque token
        or a value too large to store; the connection swallows the data
        block.
    """
    if request.refusal is not None:
        raise ClientError(request.refusal)
    flags = request.flags
    if flags.mode not in meta.SET_MODES:
        raise ClientError(meta.BAD_SET_MODE)
    for token in flags.tokens:
        if token[0] == _O:
            meta.opaque(token)
    admitItem(cache, flags.key, request.size, flags.clientFlags, _metaMode(flags), True)
    return []


def metaSet(request: meta.MetaSetRequest, value: bytes, cache: Cache) -> Lines:
    """
    C{ms} with its data block: store as the mode and C{C}/C{I} flags say.

    @return: C{HD} (hidden by C{q}), C{NS}, C{EX} or C{NF}, with the C{O},
        C{k} and C{c} flags.
    """
    flags = request.flags
    expires = cache.expiry(flags.ttl) if flags.ttl is not None else 0.0
    outcome, stored = storeItem(
        cache,
        _metaMode(flags),
        flags.key,
        value,
        flags.clientFlags,
        expires,
        flags.compareCas or 0,
        flags.invalidate,
        flags.binaryKey,
    )
    if outcome is STORED and flags.quiet:
        return []
    parts = [META[outcome]]
    for token in flags.tokens:
        if token[0] == _O:
            parts.append(token)
        elif token[0] == _k:
            parts.append(meta.encodeKey(flags.key, flags.binaryKey))
        elif token[0] == _c:
            parts.append(b"c%d" % (stored.cas if stored is not None else 0,))
    return [b" ".join(parts)]
