"""
Counters: C{incr}, C{decr} and C{ma}, through one decision tree, as
memcached's C{do_add_delta} serves every protocol.

The value is a decimal 64-bit unsigned number; an increment wraps, a
decrement stops at zero.  As in memcached, a result no longer than the old
value is written in place, padded with spaces, unless a reply not yet
written shows the item (see L{myproto.cache.Cache.newReplyWindow}).
"""

from __future__ import annotations

from myproto.cache import Cache, Lines
from myproto.errors import ClientError, ServerError
from myproto.store import Item
from myproto.wire import classic, meta
from myproto.wire.numbers import parseCounter
from myproto.wire.replies import EXISTS, META, NOT_FOUND, STORED, Outcome

# memcached's reply when a counter's new item cannot be allocated.
OUT_OF_MEMORY = b"out of memory"

_O, _k, _c, _t = (ord(flag) for flag in "Okct")
_N, _T = (ord(flag) for flag in "NT")


def addDelta(
    cache: Cache,
    key: bytes,
    increment: bool,
    delta: int,
    compareCas: int = 0,
) -> tuple[Outcome, Item | None, bytes]:
    """
    Add to or subtract from a counter.

    When a new item is needed, the old item is what the result reports on,
    given the new item's CAS unique, as memcached's reply does (so a meta
    C{T} flag changes only that old copy).

    @param compareCas: the CAS unique the item must have, or 0 for any.
    @return: L{STORED} with the item and the new number's digits;
        L{NOT_FOUND} or L{EXISTS} with no item.  As in memcached, the
        protocol counts a miss (C{ma} may create the counter instead).
    @raise ClientError: when the value is not a number.
    @raise ServerError: when there is no memory for a new item.
    """
    store = cache.store
    stats = cache.stats
    item = store.peek(key)
    if item is None:
        return NOT_FOUND, None, b""
    if not item.value:
        raise ClientError(classic.NON_NUMERIC)
    if compareCas and item.cas != compareCas:
        return EXISTS, None, b""
    current = parseCounter(item.value)
    if current is None:
        raise ClientError(classic.NON_NUMERIC)
    if increment:
        stats.incrHits += 1
        result = (current + delta) % 2**64
    else:
        stats.decrHits += 1
        result = max(current - delta, 0)
    digits = b"%d" % (result,)
    if len(digits) <= len(item.value) and item.replyWindow != cache.replyWindow:
        store.updateInPlace(item, digits.ljust(len(item.value)))
        item.lastAccess = store.now()
        return STORED, item, digits
    replacement = store.put(item.key, digits, item.flags, item.expires)
    if replacement is None:
        raise ServerError(OUT_OF_MEMORY)
    item.cas = replacement.cas
    return STORED, item, digits


def createCounter(cache: Cache, key: bytes, initial: int, expires: float) -> tuple[Item | None, bytes]:
    """
    Create the counter a miss asks for (C{ma N}, a binary INCREMENT or
    DECREMENT with an expiration), as memcached does: stored whatever was
    there, and not counted as a set.

    @param expires: absolute clock seconds, or 0.0 for never.
    @return: the new item (L{None} when there is no memory for it) and its
        digits.
    """
    digits = b"%d" % (initial,)
    return cache.store.put(key, digits, 0, expires), digits


def countMiss(cache: Cache, increment: bool) -> None:
    """
    Count a counter not found, as the protocol does when it creates none.
    """
    if increment:
        cache.stats.incrMisses += 1
    else:
        cache.stats.decrMisses += 1


def arithmetic(request: classic.ArithmeticRequest, cache: Cache) -> Lines:
    """
    C{incr}/C{decr}: the new number, or C{NOT_FOUND}.
    """
    outcome, _, digits = addDelta(cache, request.key, request.increment, request.delta)
    if outcome is NOT_FOUND:
        countMiss(cache, request.increment)
        return [classic.NOT_FOUND]
    return [digits]


def metaArithmetic(request: meta.MetaArithmeticRequest, cache: Cache) -> Lines:
    """
    C{ma}: add to or subtract from a decimal counter, or with C{N} create it
    from C{J} on a miss.

    @return: C{HD} or C{VA <size>} and the number (hidden by C{q} unless the
        item was just created), C{NF} or C{EX}.
    """
    flags = request.flags
    if flags.mode not in meta.ARITHMETIC_MODES:
        raise ClientError(meta.BAD_ARITHMETIC_MODE)
    increment = meta.ARITHMETIC_MODES[flags.mode]
    outcome, item, digits = addDelta(
        cache, flags.key, increment, flags.delta, flags.compareCas or 0
    )
    created = False
    if outcome is NOT_FOUND:
        if flags.vivifyTtl is None:
            countMiss(cache, increment)
        else:
            item, digits = createCounter(cache, flags.key, flags.initial, 0.0)
            if item is None:
                raise ServerError(meta.VIVIFY_OUT_OF_MEMORY)
            created = True
    if item is None:
        return [b" ".join([META[outcome]] + meta.echoes(flags, flags.key, flags.binaryKey))]
    store = cache.store
    parts = [b"%s %d" % (meta.VALUE, len(digits)) if flags.withValue else meta.HEADER]
    for token in flags.tokens:
        flag = token[0]
        if flag == _c:
            parts.append(b"c%d" % (item.cas,))
        elif flag == _t:
            parts.append(b"t" + cache.remainingTtl(item))
        elif flag == _T:
            assert flags.ttl is not None
            store.touch(item, cache.expiry(flags.ttl))
        elif flag == _N:
            if created:
                assert flags.vivifyTtl is not None
                store.touch(item, cache.expiry(flags.vivifyTtl))
        elif flag == _O:
            parts.append(meta.opaque(token))
        elif flag == _k:
            parts.append(meta.encodeKey(flags.key, flags.binaryKey))
    if flags.quiet and not created:
        return []
    lines = [b" ".join(parts)]
    if flags.withValue:
        lines.append(digits)
    return lines
