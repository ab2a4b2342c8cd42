"""
The meta commands' grammar: C{mg}, C{ms}, C{md}, C{ma} and C{me} (C{mn} is
in L{myproto.wire.classic}), as memcached 1.6.18 speaks them.

A meta command is a two-letter verb, a key and single-character flags, some
with a token attached (C{T30}, C{Oabc}).  L{parseMetaRequest} checks the line
as memcached's C{_meta_flag_preparse} does, decoding a base64 key and reading
the numbers, and returns a typed request that keeps the flags in the order
they were sent, because memcached works through them in that order (see
L{myproto.commands.retrieval}).  L{echoes} renders the flags a reply repeats.

Quiet mode (C{q}) hides only some replies, and never an error, so the
commands apply it: every meta request's C{noreply} is L{False} (from
L{classic.BaseRequest}).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Callable, Optional, Union

from myproto.errors import ClientError, UnknownCommand
from myproto.wire import classic
from myproto.wire.numbers import strtol, strtoul, strtoull

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
BAD_FORMAT = classic.BAD_FORMAT
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

_O, _k, _b, _c, _f, _h, _l, _q, _s, _t, _u, _v = (ord(flag) for flag in "Okbcfhlqstuv")
_C, _D, _F, _I, _J, _M, _N, _R, _T, _L, _P = (ord(flag) for flag in "CDFIJMNRTLP")

# Flags that make mg look at the item before bumping it in the LRU.
_LOCKING = frozenset([_N, _T, _R, _l, _h])


# Like the classic requests, these are not declared frozen (see classic),
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
class MetaGetRequest(classic.BaseRequest):
    """
    C{mg <key> <flags>*}.
    """

    flags: MetaFlags


@dataclass
class MetaSetRequest(classic.DataBlockRequest):
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
class MetaDeleteRequest(classic.BaseRequest):
    """
    C{md <key> <flags>*}.
    """

    flags: MetaFlags


@dataclass
class MetaArithmeticRequest(classic.BaseRequest):
    """
    C{ma <key> <flags>*}.
    """

    flags: MetaFlags


@dataclass
class MetaDebugRequest(classic.BaseRequest):
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
    @param count: memcached's token count (see L{classic.tokenize}).
    @return: the request.
    @raise ProtocolError: for lines memcached answers with an error.
    """
    if verb == b"me":
        return _parseDebug(tokens, count)
    if verb not in _PARSERS:
        raise UnknownCommand()
    if count < 3:
        raise UnknownCommand()
    if len(tokens[1]) > classic.KEY_MAX_LENGTH:
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
    size = strtol(tokens[2])
    if size is None or size < 0 or size > classic.INT_MAX - 2:
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
    if count < 3 or len(tokens[1]) > classic.KEY_MAX_LENGTH:
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
        elif flag in _NUMBER_FLAGS:
            read, field, message = _NUMBER_FLAGS[flag]
            number = read(argument)
            if number is None:
                failed = True
                if message is not None:
                    error = message
            else:
                values[field] = number
        elif flag == _M:
            if len(token) != 2:
                error, failed = BAD_MODE_LENGTH, True
            else:
                values["mode"] = token[1]
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


# Flags with a number: how memcached reads it, the MetaFlags field it fills,
# and the error it notes when the number does not read (none of its own for
# a bad F, which leaves the command's default).
_NUMBER_FLAGS: dict[int, tuple[Callable[[bytes], Optional[int]], str, Optional[bytes]]] = {
    _N: (strtol, "vivifyTtl", BAD_TOKEN),
    _T: (strtol, "ttl", BAD_TOKEN),
    _R: (strtol, "recacheTtl", BAD_TOKEN),
    _F: (strtoul, "clientFlags", None),
    _C: (strtoull, "compareCas", BAD_TOKEN),
    _J: (strtoull, "initial", BAD_INITIAL),
    _D: (strtoull, "delta", BAD_DELTA),
}

# Flags that take no token, or whose token memcached does not read here.
_PLAIN_FLAGS = frozenset([_O, _P, _L, _k, _s, _t, _c, _f, _v, _h, _l, _u, _q, _I])


def _emptyFlags(key: bytes, tokens: list[bytes]) -> MetaFlags:
    return MetaFlags(key, False, tuple(tokens))




# Rendering.


def opaque(token: bytes) -> bytes:
    """
    An C{O} token as a reply repeats it.

    @raise ClientError: when it is too long; memcached finds out only when
        its walk through the flags reaches it.
    """
    if len(token) > MAX_OPAQUE_LENGTH:
        raise ClientError(OPAQUE_TOO_LONG)
    return token


def echoes(flags: MetaFlags, key: bytes, binary: bool) -> list[bytes]:
    """
    The C{O} and C{k} flags of a reply that reports nothing else.
    """
    parts = []
    for token in flags.tokens:
        if token[0] == _O:
            parts.append(opaque(token))
        elif token[0] == _k:
            parts.append(encodeKey(key, binary))
    return parts
