"""
The meta commands: C{mg}, C{ms}, C{md}, C{ma} and C{me} (C{mn} is in
L{myproto.wire}), as memcached 1.6.18 speaks them.

A meta command is a two-letter verb, a key and single-character flags, some
with a token attached (C{T30}, C{Oabc}).  L{parseMetaRequest} checks the line
as memcached's C{_meta_flag_preparse} does, decoding a base64 key and reading
the numbers, and returns a typed request that keeps the flags in the order
they were sent.  The functions below carry a request out against the same
store the classic commands use.

memcached works through the flags of a request one at a time, in order, and
some of them change the item as they go: C{mg k t T30} reports the TTL from
before the touch, C{mg k T30 t} the TTL after it; and a too-long opaque token
fails the request only when the walk reaches it, after earlier flags have
had their effect.  The functions here make the same walk.

Quiet mode (C{q}) hides only some replies, and never an error, so it is
applied here rather than by the connection: every meta request's C{noreply}
is L{False} (from L{wire.BaseRequest}), and a handler returns no lines for a
reply that C{q} hides.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Union

from myproto import wire
from myproto.errors import ClientError, ServerError, UnknownCommand
from myproto.store import Item

if TYPE_CHECKING:
    from myproto.commands import Cache

Lines = list[bytes]

# Reply codes.
VALUE = b"VA"
HEADER = b"HD"
MISS = b"EN"
NOT_STORED = b"NS"
EXISTS = b"EX"
NOT_FOUND = b"NF"
DEBUG = b"ME"

# Flags that go back in replies.
WON = b"W"
STALE = b"X"
ALREADY_WON = b"Z"

# Error messages, as memcached words them.
BAD_FORMAT = wire.BAD_FORMAT
BAD_TOKEN = b"bad token in command line format"
DUPLICATE_FLAG = b"duplicate flag"
INVALID_FLAG = b"invalid flag"
INVALID_OR_DUPLICATE_FLAG = b"invalid or duplicate flag"
BAD_KEY_ENCODING = b"error decoding key"
BAD_MODE_LENGTH = b"incorrect length for M token"
BAD_INITIAL = b"invalid numeric initial value"
BAD_DELTA = b"invalid numeric delta value"
GET_FLAGS_TOO_LONG = b"options flags are too long"
FLAGS_TOO_LONG = b"options flags too long"
OPAQUE_TOO_LONG = b"opaque token too long"
BAD_SET_MODE = b"invalid mode for ms M token"
BAD_ARITHMETIC_MODE = b"invalid mode for ma M token"
ARITHMETIC_OUT_OF_MEMORY = b"out of memory"
VIVIFY_OUT_OF_MEMORY = b"Out of memory allocating new item"

# memcached refuses a meta command line of more tokens than this, counting
# its terminal token.
MAX_META_TOKENS = 20

# The longest opaque token, its "O" included.
MAX_OPAQUE_LENGTH = 32

# memcached keeps time as whole seconds since a moment it puts this long
# before it started (its ITEM_UPDATE_INTERVAL plus two), so that no item time
# is ever zero.
_SERVER_EPOCH_LEAD = 62

# The chunk sizes of memcached's default slab classes (growth factor 1.25,
# 48-byte minimum chunk, 512 KiB largest chunk); C{me} reports the class an
# item would live in.
_SLAB_CHUNK_MAX = 512 * 1024


def _slabSizes() -> tuple[int, ...]:
    sizes = []
    size = 96
    while size < _SLAB_CHUNK_MAX / 1.25:
        size += -size % 8
        sizes.append(size)
        size = int(size * 1.25)
    sizes.append(_SLAB_CHUNK_MAX)
    return tuple(sizes)


SLAB_SIZES = _slabSizes()

# Modes of ms's M flag.
SET_MODES = {
    None: b"set",
    ord("S"): b"set",
    ord("E"): b"add",
    ord("A"): b"append",
    ord("P"): b"prepend",
    ord("R"): b"replace",
}

# Modes of ma's M flag: whether each increments.
ARITHMETIC_MODES = {None: True, ord("I"): True, ord("+"): True, ord("D"): False, ord("-"): False}

# Numbers are read as memcached's safe_strto* helpers read them.
_strtol = wire._strtol
_strtoul = wire._strtoul
_strtoull = wire._strtoull

_O, _k, _b, _c, _f, _h, _l, _q, _s, _t, _u, _v = (ord(flag) for flag in "Okbcfhlqstuv")
_C, _D, _F, _I, _J, _M, _N, _R, _T, _L, _P = (ord(flag) for flag in "CDFIJMNRTLP")

# Flags that make mg look at the item before bumping it in the LRU.
_LOCKING = frozenset([_N, _T, _R, _l, _h])


# Like wire's requests, these are not declared frozen (see wire.request),
# but nothing changes them once parsed.


@dataclass
class MetaFlags:
    """
    A meta command's key and flags, checked and read.

    @ivar key: the key, base64-decoded when C{binaryKey}.
    @ivar binaryKey: whether the C{b} flag was given.
    @ivar tokens: the flag tokens, in the order they were sent.
    @ivar quiet: C{q}.
    @ivar withValue: C{v}.
    @ivar noBump: C{u}.
    @ivar locked: whether a flag asks about the item before it is bumped.
    @ivar ttl: C{T}'s token, or L{None}.
    @ivar vivifyTtl: C{N}'s token, or L{None}.
    @ivar recacheTtl: C{R}'s token, or L{None}.
    @ivar clientFlags: C{F}'s token, 0 when absent.
    @ivar compareCas: C{C}'s token, or L{None}.
    @ivar mode: the character after C{M}, or L{None}.
    @ivar delta: C{D}'s token, 1 when absent.
    @ivar initial: C{J}'s token, 0 when absent.
    @ivar invalidate: C{I}.
    """

    key: bytes
    binaryKey: bool
    tokens: tuple[bytes, ...]
    quiet: bool = False
    withValue: bool = False
    noBump: bool = False
    locked: bool = False
    ttl: int | None = None
    vivifyTtl: int | None = None
    recacheTtl: int | None = None
    clientFlags: int = 0
    compareCas: int | None = None
    mode: int | None = None
    delta: int = 1
    initial: int = 0
    invalidate: bool = False


@dataclass
class MetaGetRequest(wire.BaseRequest):
    """
    C{mg <key> <flags>*}.
    """

    flags: MetaFlags


@dataclass
class MetaSetRequest(wire.DataBlockRequest):
    """
    C{ms <key> <datalen> <flags>*}; a data block of C{size} bytes and a CRLF
    follow the line.

    @ivar refusal: the error for flags that did not parse, or L{None}.
        memcached reads the data length before it looks at the flags, so a
        bad flag still costs the data block; the error is raised when the
        request is admitted, and the connection swallows the block.
    """

    flags: MetaFlags
    size: int
    refusal: bytes | None


@dataclass
class MetaDeleteRequest(wire.BaseRequest):
    """
    C{md <key> <flags>*}.
    """

    flags: MetaFlags


@dataclass
class MetaArithmeticRequest(wire.BaseRequest):
    """
    C{ma <key> <flags>*}.
    """

    flags: MetaFlags


@dataclass
class MetaDebugRequest(wire.BaseRequest):
    """
    C{me <key> [b]}.
    """

    key: bytes


MetaRequest = Union[
    MetaGetRequest, MetaSetRequest, MetaDeleteRequest, MetaArithmeticRequest, MetaDebugRequest
]


# Keys.

# memcached's base64 alphabet, with "=" decoding as zero.
_BASE64_VALUES = {
    byte: value
    for value, byte in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
}
_BASE64_VALUES[ord("=")] = 0


def decodeKey(encoded: bytes) -> bytes | None:
    """
    Decode a base64 key as memcached does: bytes outside the alphabet are
    skipped, the rest must come in fours, and decoding stops after the first
    group that holds padding.

    @param encoded: the key as sent.
    @return: the key's bytes, or L{None} when memcached would fail (which it
        also does when the result is empty).
    """
    values = [_BASE64_VALUES[byte] for byte in encoded if byte in _BASE64_VALUES]
    if not values or len(values) % 4:
        return None
    decoded = bytearray()
    padding = 0
    group: list[int] = []
    for byte in encoded:
        if byte not in _BASE64_VALUES:
            continue
        if byte == 0x3D:
            padding += 1
        group.append(_BASE64_VALUES[byte])
        if len(group) == 4:
            a, b, c, d = group
            decoded += bytes([(a << 2 | b >> 4) & 0xFF, (b << 4 | c >> 2) & 0xFF, (c << 6 | d) & 0xFF])
            group = []
            if padding:
                if padding > 2:
                    return None
                del decoded[-padding:]
                break
    return bytes(decoded) or None


def encodeKey(key: bytes, binary: bool) -> bytes:
    """
    A key as the C{k} flag returns it: as stored, or base64 with a C{b} flag
    after it for a binary key.
    """
    if binary:
        return b"k" + base64.b64encode(key) + b" b"
    return b"k" + key


# Parsing.


def parseMetaRequest(verb: bytes, tokens: list[bytes], count: int) -> MetaRequest:
    """
    Parse a meta command line other than C{mn}.

    @param verb: the two-letter verb, starting with C{m}.
    @param tokens: the line's space-separated tokens, the verb first.
    @param count: memcached's token count (see L{wire.tokenize}).
    @return: the request.
    @raise ProtocolError: for lines memcached answers with an error.
    """
    if verb == b"me":
        return _parseDebug(tokens, count)
    if verb not in _PARSERS:
        raise UnknownCommand()
    if count < 3:
        raise UnknownCommand()
    if len(tokens[1]) > wire.KEY_MAX_LENGTH:
        raise ClientError(BAD_FORMAT)
    return _PARSERS[verb](tokens, count)


def _parseGet(tokens: list[bytes], count: int) -> MetaGetRequest:
    if count > MAX_META_TOKENS:
        raise ClientError(GET_FLAGS_TOO_LONG)
    flags, error = _readFlags(tokens[1], tokens[2:])
    if error is not None:
        raise ClientError(error)
    return MetaGetRequest(flags)


def _parseSet(tokens: list[bytes], count: int) -> MetaSetRequest:
    if count == 3:
        raise ClientError(BAD_FORMAT)
    if count > MAX_META_TOKENS:
        raise ClientError(FLAGS_TOO_LONG)
    size = _strtol(tokens[2])
    if size is None or size < 0 or size > wire.INT_MAX - 2:
        raise ClientError(BAD_FORMAT)
    flags, error = _readFlags(tokens[1], tokens[3:])
    return MetaSetRequest(flags, size, error)


def _strictFlags(tokens: list[bytes], count: int) -> MetaFlags:
    """
    The flags of C{md} and C{ma}, where memcached words every flag error
    the same way.
    """
    if count > MAX_META_TOKENS:
        raise ClientError(FLAGS_TOO_LONG)
    flags, error = _readFlags(tokens[1], tokens[2:])
    if error is not None:
        raise ClientError(INVALID_OR_DUPLICATE_FLAG)
    return flags


def _parseDelete(tokens: list[bytes], count: int) -> MetaDeleteRequest:
    return MetaDeleteRequest(_strictFlags(tokens, count))


def _parseArithmetic(tokens: list[bytes], count: int) -> MetaArithmeticRequest:
    return MetaArithmeticRequest(_strictFlags(tokens, count))


def _parseDebug(tokens: list[bytes], count: int) -> MetaDebugRequest:
    if count < 3 or len(tokens[1]) > wire.KEY_MAX_LENGTH:
        raise ClientError(BAD_FORMAT)
    key = tokens[1]
    if count >= 4 and tokens[2] == b"b":
        decoded = decodeKey(key)
        if decoded is None:
            raise ClientError(BAD_FORMAT)
        key = decoded
    return MetaDebugRequest(key)


_PARSERS: dict[bytes, Callable[[list[bytes], int], MetaRequest]] = {
    b"mg": _parseGet,
    b"ms": _parseSet,
    b"md": _parseDelete,
    b"ma": _parseArithmetic,
}


def _readFlags(key: bytes, tokens: list[bytes]) -> tuple[MetaFlags, bytes | None]:
    """
    Check and read flag tokens as memcached's C{_meta_flag_preparse} does.

    A repeated flag, a byte above 126 or an unknown flag stops the reading
    at once.  Other errors (a bad number, a key that is not base64) are
    noted and the reading goes on; the last message noted wins, and a bad
    C{F} token notes none of its own, leaving the command's default.

    @param key: the key token.
    @param tokens: the flag tokens.
    @return: the flags, and the error message or L{None}.
    """
    seen: set[int] = set()
    failed = False
    error = BAD_FORMAT
    values: dict[str, object] = {}
    binaryKey = False
    for token in tokens:
        flag = token[0]
        if flag >= 127 or flag in seen:
            return _emptyFlags(key, tokens), DUPLICATE_FLAG
        seen.add(flag)
        argument = token[1:]
        if flag == _b:
            binaryKey = True
            decoded = decodeKey(key)
            if decoded is None:
                error, failed = BAD_KEY_ENCODING, True
                key = b""
            else:
                key = decoded
        elif flag in (_N, _T, _R):
            number = _strtol(argument)
            if number is None:
                error, failed = BAD_TOKEN, True
            else:
                values[{_N: "vivifyTtl", _T: "ttl", _R: "recacheTtl"}[flag]] = number
        elif flag == _F:
            clientFlags = _strtoul(argument)
            if clientFlags is None:
                failed = True
            else:
                values["clientFlags"] = clientFlags
        elif flag == _C:
            cas = _strtoull(argument)
            if cas is None:
                error, failed = BAD_TOKEN, True
            else:
                values["compareCas"] = cas
        elif flag == _M:
            if len(token) != 2:
                error, failed = BAD_MODE_LENGTH, True
            else:
                values["mode"] = token[1]
        elif flag == _J:
            initial = _strtoull(argument)
            if initial is None:
                error, failed = BAD_INITIAL, True
            else:
                values["initial"] = initial
        elif flag == _D:
            delta = _strtoull(argument)
            if delta is None:
                error, failed = BAD_DELTA, True
            else:
                values["delta"] = delta
        elif flag not in _PLAIN_FLAGS:
            return _emptyFlags(key, tokens), INVALID_FLAG
    flags = MetaFlags(
        key,
        binaryKey,
        tuple(tokens),
        quiet=_q in seen,
        withValue=_v in seen,
        noBump=_u in seen,
        locked=not _LOCKING.isdisjoint(seen),
        invalidate=_I in seen,
        **values,  # type: ignore[arg-type]
    )
    return flags, (error if failed else None)


# Flags that take no token, or whose token memcached does not read here.
_PLAIN_FLAGS = frozenset([_O, _P, _L, _k, _s, _t, _c, _f, _v, _h, _l, _u, _q, _I])


def _emptyFlags(key: bytes, tokens: list[bytes]) -> MetaFlags:
    return MetaFlags(key, False, tuple(tokens))


# Time, as memcached counts it.


def _serverTime(cache: Cache, moment: float) -> int:
    """
    @return: memcached's whole-second time for a clock time.
    """
    return math.floor(moment - cache.startedAt + _SERVER_EPOCH_LEAD)


def _expiryTime(cache: Cache, expires: float) -> int:
    """
    @return: memcached's time of an expiry: 0 for never, and at least 1
        (memcached's "already expired") for moments before it started.
    """
    if not expires:
        return 0
    return max(1, _serverTime(cache, expires))


def _remainingTtl(cache: Cache, item: Item) -> bytes:
    """
    The TTL that C{t} reports: -1 for never, else the seconds left, as an
    unsigned 32-bit number (so an item this very request expired shows as a
    huge one, as in memcached).
    """
    if not item.expires:
        return b"-1"
    remaining = _expiryTime(cache, item.expires) - _serverTime(cache, cache.store.now())
    return b"%d" % (remaining & 0xFFFFFFFF,)


def _idleTime(cache: Cache, item: Item) -> int:
    now = _serverTime(cache, cache.store.now())
    return (now - _serverTime(cache, item.lastAccess)) & 0xFFFFFFFF


def _bump(cache: Cache, item: Item) -> None:
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


def _opaque(token: bytes) -> bytes:
    if len(token) > MAX_OPAQUE_LENGTH:
        raise ClientError(OPAQUE_TOO_LONG)
    return token


def _echoes(flags: MetaFlags, key: bytes, binary: bool) -> list[bytes]:
    """
    The C{O} and C{k} flags of a reply that reports nothing else.
    """
    parts = []
    for token in flags.tokens:
        if token[0] == _O:
            parts.append(_opaque(token))
        elif token[0] == _k:
            parts.append(encodeKey(key, binary))
    return parts


# mg


def metaGet(request: MetaGetRequest, cache: Cache) -> Lines:
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
        parts = [MISS] + _echoes(flags, flags.key, flags.binaryKey)
        return [] if flags.quiet else [b" ".join(parts)]
    if not flags.locked and not flags.noBump:
        _bump(cache, item)

    parts = [b"%s %d" % (VALUE, len(item.value)) if flags.withValue else HEADER]
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
                and _expiryTime(cache, item.expires)
                < _expiryTime(cache, cache.expiry(flags.recacheTtl))
            ):
                won = True
        elif flag == _s:
            parts.append(b"s%d" % (len(item.value),))
        elif flag == _t:
            parts.append(b"t" + _remainingTtl(cache, item))
        elif flag == _c:
            parts.append(b"c%d" % (item.cas,))
        elif flag == _f:
            parts.append(b"f%d" % (item.flags,))
        elif flag == _l:
            parts.append(b"l%d" % (_idleTime(cache, item),))
        elif flag == _h:
            parts.append(b"h1" if item.fetched else b"h0")
        elif flag == _O:
            parts.append(_opaque(token))
        elif flag == _k:
            parts.append(encodeKey(item.key, item.keyBinary))
    # A request never sees both Z and W: Z means someone else won first.
    if item.tokenSent:
        parts.append(ALREADY_WON)
    if item.stale:
        parts.append(STALE)
        if not item.tokenSent:
            won = True
    if won:
        parts.append(WON)
        item.tokenSent = True
    if flags.locked and not flags.noBump:
        _bump(cache, item)
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


# ms


def admitMetaSet(request: MetaSetRequest, cache: Cache) -> Lines:
    """
    Check an C{ms} line before its data block is read.

    @raise ProtocolError: for bad flags, a bad mode, a too-long opaque token
        or a value too large to store (which also drops the key's current
        item, as memcached does); the connection swallows the data block.
    """
    if request.refusal is not None:
        raise ClientError(request.refusal)
    flags = request.flags
    opaqueTooLong = any(
        token[0] == _O and len(token) > MAX_OPAQUE_LENGTH for token in flags.tokens
    )
    if flags.mode not in SET_MODES:
        raise ClientError(BAD_SET_MODE)
    if opaqueTooLong:
        raise ClientError(OPAQUE_TOO_LONG)
    if not cache.store.fits(flags.key, request.size, flags.clientFlags):
        cache.stats.storeTooLarge += 1
        cache.store.delete(flags.key)
        raise ServerError(wire.TOO_LARGE)
    return []


def metaSet(request: MetaSetRequest, value: bytes, cache: Cache) -> Lines:
    """
    C{ms} with its data block: store as the mode and C{C}/C{I} flags say.

    @return: C{HD} (hidden by C{q}), C{NS}, C{EX} or C{NF}, with the C{O},
        C{k} and C{c} flags.
    """
    flags = request.flags
    cache.stats.cmdSet += 1
    code, stored = _store(flags, value, cache)
    parts = [code]
    for token in flags.tokens:
        if token[0] == _O:
            parts.append(token)
        elif token[0] == _k:
            parts.append(encodeKey(flags.key, flags.binaryKey))
        elif token[0] == _c:
            parts.append(b"c%d" % (stored.cas if stored is not None else 0,))
    if code == HEADER and flags.quiet:
        return []
    return [b" ".join(parts)]


def _store(flags: MetaFlags, value: bytes, cache: Cache) -> tuple[bytes, Item | None]:
    """
    memcached's C{do_store_item} for a meta set.

    @return: the reply code, and the item stored (L{None} unless C{HD}).
    """
    store = cache.store
    stats = cache.stats
    key = flags.key
    verb = SET_MODES[flags.mode]
    if flags.compareCas is not None and verb in (b"set", b"replace"):
        verb = b"cas"
    expires = cache.expiry(flags.ttl) if flags.ttl is not None else 0.0
    old = store.peek(key)
    if old is None:
        if verb == b"cas":
            stats.casMisses += 1
            return NOT_FOUND, None
        if verb in (b"replace", b"append", b"prepend"):
            return NOT_STORED, None
        return HEADER, _put(cache, flags, value, flags.clientFlags, expires)

    compareCas = flags.compareCas or 0
    casMatches = compareCas == 0 or compareCas == old.cas
    if verb == b"add":
        # Not stored, but the old item counts as used.
        old.lastAccess = store.now()
        return NOT_STORED, None
    if verb in (b"append", b"prepend"):
        if not casMatches:
            return EXISTS, None
        joined = old.value + value if verb == b"append" else value + old.value
        if not store.fits(key, len(joined), old.flags):
            return NOT_STORED, None
        item = store.put(key, joined, old.flags, old.expires)
        if item is None:
            return NOT_STORED, None
        return HEADER, item
    if verb == b"cas":
        if compareCas != 0 and compareCas == old.cas:
            stats.casHits += 1
            return HEADER, _put(cache, flags, value, flags.clientFlags, expires)
        if compareCas != 0 and flags.invalidate and compareCas < old.cas:
            # An older version may replace the item, but only as stale,
            # keeping the TTL and any recache token already handed out.
            stats.casHits += 1
            tokenSent = old.tokenSent
            item = _put(cache, flags, value, flags.clientFlags, old.expires)
            item.stale = True
            item.tokenSent = tokenSent
            return HEADER, item
        stats.casBadval += 1
        return EXISTS, None
    return HEADER, _put(cache, flags, value, flags.clientFlags, expires)


def _put(cache: Cache, flags: MetaFlags, value: bytes, clientFlags: int, expires: float) -> Item:
    item = cache.store.put(flags.key, value, clientFlags, expires)
    if item is None:
        cache.stats.storeNoMemory += 1
        raise ServerError(wire.OUT_OF_MEMORY)
    item.keyBinary = flags.binaryKey
    return item


# md


def metaDelete(request: MetaDeleteRequest, cache: Cache) -> Lines:
    """
    C{md}: remove an item, or with C{I} mark it stale (new CAS, recache
    token free again, C{T} setting its TTL).

    @return: C{HD} (hidden by C{q}), C{NF} or C{EX}, with C{O} and C{k}.
    """
    flags = request.flags
    stats = cache.stats
    store = cache.store
    echoes = _echoes(flags, flags.key, flags.binaryKey)
    item = store.peek(flags.key)
    if item is None:
        stats.deleteMisses += 1
        code = NOT_FOUND
    elif flags.compareCas is not None and item.cas != flags.compareCas:
        stats.deleteMisses += 1
        code = EXISTS
    else:
        if flags.invalidate:
            if flags.ttl is not None:
                store.touch(item, cache.expiry(flags.ttl))
            item.stale = True
            item.tokenSent = False
            item.cas = store.nextCas()
        else:
            stats.deleteHits += 1
            store.delete(flags.key)
        if flags.quiet:
            return []
        code = HEADER
    return [b" ".join([code] + echoes)]


# ma


def metaArithmetic(request: MetaArithmeticRequest, cache: Cache) -> Lines:
    """
    C{ma}: add to or subtract from a decimal counter, or with C{N} create it
    from C{J} on a miss.

    @return: C{HD} or C{VA <size>} and the number (hidden by C{q} unless the
        item was just created), C{NF} or C{EX}.
    """
    flags = request.flags
    if flags.mode not in ARITHMETIC_MODES:
        raise ClientError(BAD_ARITHMETIC_MODE)
    increment = ARITHMETIC_MODES[flags.mode]
    store = cache.store
    stats = cache.stats
    item = store.peek(flags.key)
    created = False
    code = HEADER
    digits = b""
    if item is None:
        if flags.vivifyTtl is not None:
            digits = b"%d" % (flags.initial,)
            item = store.put(flags.key, digits, 0, 0.0)
            if item is None:
                raise ServerError(VIVIFY_OUT_OF_MEMORY)
            created = True
        else:
            if increment:
                stats.incrMisses += 1
            else:
                stats.decrMisses += 1
            code = NOT_FOUND
    elif not item.value:
        raise ClientError(wire.NON_NUMERIC)
    elif flags.compareCas and item.cas != flags.compareCas:
        item = None
        code = EXISTS
    else:
        item, digits = _applyDelta(cache, item, increment, flags.delta)

    if item is None:
        return [b" ".join([code] + _echoes(flags, flags.key, flags.binaryKey))]
    parts = [b"%s %d" % (VALUE, len(digits)) if flags.withValue else HEADER]
    for token in flags.tokens:
        flag = token[0]
        if flag == _c:
            parts.append(b"c%d" % (item.cas,))
        elif flag == _t:
            parts.append(b"t" + _remainingTtl(cache, item))
        elif flag == _T:
            assert flags.ttl is not None
            store.touch(item, cache.expiry(flags.ttl))
        elif flag == _N:
            if created:
                assert flags.vivifyTtl is not None
                store.touch(item, cache.expiry(flags.vivifyTtl))
        elif flag == _O:
            parts.append(_opaque(token))
        elif flag == _k:
            parts.append(encodeKey(flags.key, flags.binaryKey))
    if flags.quiet and not created:
        return []
    lines = [b" ".join(parts)]
    if flags.withValue:
        lines.append(digits)
    return lines


def _applyDelta(cache: Cache, item: Item, increment: bool, delta: int) -> tuple[Item, bytes]:
    """
    memcached's C{do_add_delta} on a found item.

    A result that fits in the old value is written in place, padded with
    spaces, unless a reply not yet written shows the item (see
    L{myproto.commands.Cache.newReplyWindow}).  Otherwise there is a new
    item; as in memcached, the old item is
    what the reply's flags then look at, given the new CAS, so a C{T} flag
    changes only that old copy and the stored TTL stays as it was.

    @return: the item the reply reports on, and the new number's digits.
    @raise ProtocolError: when the value is not a number, or there is no
        memory for the new item.
    """
    current = wire.parseCounter(item.value)
    if current is None:
        raise ClientError(wire.NON_NUMERIC)
    stats = cache.stats
    if increment:
        stats.incrHits += 1
        result = (current + delta) % 2**64
    else:
        stats.decrHits += 1
        result = max(current - delta, 0)
    digits = b"%d" % (result,)
    store = cache.store
    if len(digits) <= len(item.value) and item.replyWindow != cache.replyWindow:
        store.updateInPlace(item, digits.ljust(len(item.value)))
        item.lastAccess = store.now()
        return item, digits
    replacement = store.put(item.key, digits, item.flags, item.expires)
    if replacement is None:
        raise ServerError(ARITHMETIC_OUT_OF_MEMORY)
    item.cas = replacement.cas
    return item, digits


# me


def metaDebug(request: MetaDebugRequest, cache: Cache) -> Lines:
    """
    C{me}: memcached's debug line for an item, without bumping it.

    @return: C{ME <key> exp=.. la=.. cas=.. fetch=.. cls=.. size=..}, or
        C{EN}.
    """
    cache.stats.cmdMeta += 1
    item = cache.store.peek(request.key)
    if item is None:
        return [MISS]
    key = base64.b64encode(item.key) if item.keyBinary else item.key
    if item.expires:
        left = _serverTime(cache, cache.store.now()) - _expiryTime(cache, item.expires)
        expiry = ((left + 2**31) & 0xFFFFFFFF) - 2**31
    else:
        expiry = -1
    return [
        b"%s %s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d"
        % (
            DEBUG,
            key,
            expiry,
            _idleTime(cache, item),
            item.cas,
            b"yes" if item.fetched else b"no",
            slabClass(item.size),
            item.size,
        )
    ]


def slabClass(size: int) -> int:
    """
    @param size: an item's size, as L{myproto.store.itemSize} counts it.
    @return: the memcached slab class an item of that size goes in.
    """
    for index, chunk in enumerate(SLAB_SIZES):
        if size <= chunk:
            return index + 1
    return len(SLAB_SIZES)
