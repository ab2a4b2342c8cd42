"""
memcached's tuning commands (L{myproto.wire.tuning}), answered as memcached
1.6.18's C{proto_text.c} answers them; what they set is kept in
L{Cache.tuning} for C{stats settings}.
"""

from __future__ import annotations

from myproto.cache import Cache, Lines
from myproto.errors import ClientError
from myproto.store import SLAB_SIZES, slabClass
from myproto.wire import classic
from myproto.wire.numbers import strtol, strtoul
from myproto.wire.tuning import (
    ExtstoreRequest,
    LruRequest,
    SlabsAutomoveRatioRequest,
    SlabsReassignRequest,
    strtod,
)

OK = [classic.OK]
ERROR = [b"ERROR"]
PCTS_TOO_HIGH = [b"ERROR hot and warm pcts must not exceed 80"]
FACTORS_NOT_POSITIVE = [b"ERROR hot/warm age factors must be greater than 0"]

# slabs reassign's answers.
SAME = [b"SAME src and dst class are identical"]
BAD_CLASS = [b"BADCLASS invalid src or dst class id"]
NO_SPARE = [b"NOSPARE source class has no spare pages"]

# memcached's slab page, which each class takes memory in.
PAGE_SIZE = 1024 * 1024


def lru(request: LruRequest, cache: Cache) -> Lines:
    """
    C{lru tune <hot pct> <warm pct> <hot factor> <warm factor>}, C{lru mode
    flat|segmented} and C{lru temp_ttl <seconds>} (negative: off).
    """
    arguments = request.arguments
    tuning = cache.tuning
    subcommand = arguments[0]
    if subcommand == b"tune" and len(arguments) >= 5:
        hot, warm = strtoul(arguments[1]), strtoul(arguments[2])
        hotFactor, warmFactor = strtod(arguments[3]), strtod(arguments[4])
        if hot is None or warm is None or hotFactor is None or warmFactor is None:
            return ERROR
        if (hot + warm) & 0xFFFFFFFF > 80:
            return PCTS_TOO_HIGH
        if not (warmFactor > 0 and hotFactor > 0):
            return FACTORS_NOT_POSITIVE
        tuning.hotLruPct, tuning.warmLruPct = hot, warm
        tuning.hotMaxFactor, tuning.warmMaxFactor = hotFactor, warmFactor
        return OK
    if subcommand == b"mode" and len(arguments) >= 2:
        if arguments[1] not in (b"flat", b"segmented"):
            return ERROR
        tuning.lruSegmented = arguments[1] == b"segmented"
        return OK
    if subcommand == b"temp_ttl" and len(arguments) >= 2:
        ttl = strtol(arguments[1])
        if ttl is None:
            return ERROR
        tuning.tempLru = ttl >= 0
        if ttl >= 0:
            tuning.temporaryTtl = ttl
        return OK
    return ERROR


# extstore's unsigned settings, by name, and the Tuning attribute each sets.
_EXTSTORE_NUMBERS = {
    b"item_size": "extItemSize",
    b"item_age": "extItemAge",
    b"low_ttl": "extLowTtl",
    b"recache_rate": "extRecacheRate",
    b"compact_under": "extCompactUnder",
    b"drop_under": "extDropUnder",
    b"max_sleep": "extMaxSleep",
}


def extstore(request: ExtstoreRequest, cache: Cache) -> Lines:
    """
    C{extstore <setting> <value>}: memcached accepts these with extstore
    compiled in, configured or not.
    """
    arguments = request.arguments
    if len(arguments) < 2:
        return ERROR
    name, value = arguments[0], arguments[1]
    if name == b"free_memchunks":
        # Deprecated and ignored, but its arguments are checked.
        if len(arguments) < 3:
            return ERROR
        number, limit = strtoul(value), strtoul(arguments[2])
        return OK if number is not None and limit is not None and number < 64 else ERROR
    # memcached parses straight into its settings, which a bad number zeroes.
    attribute = _EXTSTORE_NUMBERS.get(name)
    if attribute is not None:
        number = strtoul(value)
        setattr(cache.tuning, attribute, number or 0)
        return ERROR if number is None else OK
    if name == b"max_frag":
        fraction = strtod(value)
        cache.tuning.extMaxFrag = fraction or 0.0
        return ERROR if fraction is None else OK
    if name == b"drop_unread":
        number = strtoul(value)
        if number is None:
            return ERROR
        cache.tuning.extDropUnread = number != 0
        return OK
    return ERROR


def slabsAutomoveRatio(request: SlabsAutomoveRatioRequest, cache: Cache) -> Lines:
    """
    C{slabs automove ratio <ratio>}.
    """
    ratio = None if request.ratio is None else strtod(request.ratio)
    if ratio is None:
        return ERROR
    cache.tuning.slabAutomoveRatio = ratio
    return OK


def slabPages(cache: Cache, number: int) -> int:
    """
    @return: how many slab pages memcached would hold for the items of a
        class: as many as its chunks of them fill.
    """
    size = SLAB_SIZES[number - 1]
    count = sum(1 for item in cache.store.items() if slabClass(item.size) == number)
    perPage = max(PAGE_SIZE // size, 1)
    return -(-count // perPage)


def slabsReassign(request: SlabsReassignRequest, cache: Cache) -> Lines:
    """
    C{slabs reassign <source> <destination>}: memcached's checks.  A page
    it would move (from a class with a spare one) is only acknowledged, as
    myproto has no pages.
    """
    source, destination = strtol(request.source), strtol(request.destination)
    if source is None or destination is None:
        raise ClientError(classic.BAD_FORMAT)
    if source == destination:
        return SAME
    largest = len(SLAB_SIZES)
    if source == -1:
        # "Any class with a spare page": memcached picks one, or none.
        spare = [n for n in range(1, largest + 1) if n != destination and slabPages(cache, n) > 1]
        source = spare[0] if spare else -1
    if not (0 <= source <= largest and 0 <= destination <= largest):
        return BAD_CLASS
    # Class 0 is memcached's pool of free pages, which myproto never fills.
    if source == 0 or slabPages(cache, source) < 2:
        return NO_SPARE
    return OK
