"""
Numbers as memcached reads them: its C{safe_strto*} helpers on a 64-bit
build, which are C's C{strto(u)l(l)} followed by "the rest must be empty or
start with a space".
"""

from __future__ import annotations

SPACES = b" \t\n\v\f\r"
# What may follow a number: whitespace, or the NUL that ends a C string.
_TERMINATORS = SPACES + b"\0"
_UINT64 = 2**64


def _cNumber(token: bytes) -> tuple[bool, int] | None:
    """
    Read a decimal number the way C's C{strtol} family does.

    @return: C{(negative, magnitude)}, or L{None} when there are no digits or
        the character after them is neither whitespace nor the end.
    """
    start = 0
    end = len(token)
    while start < end and token[start] in SPACES:
        start += 1
    negative = False
    if start < end and token[start] in b"+-":
        negative = token[start] == 0x2D
        start += 1
    stop = start
    while stop < end and 0x30 <= token[stop] <= 0x39:
        stop += 1
    if stop == start:
        return None
    if stop < end and token[stop] not in _TERMINATORS:
        return None
    return negative, int(token[start:stop])


def strtoull(token: bytes) -> int | None:
    """
    memcached's C{safe_strtoull}: an unsigned 64-bit number.  C{strtoull}
    accepts a minus sign and negates modulo 2**64; memcached rejects the
    result only when it then looks negative as a signed number.

    @return: the number, or L{None} when memcached refuses the token.
    """
    if token.isdigit():
        value = int(token)
        return value if value < _UINT64 else None
    parsed = _cNumber(token)
    if parsed is None:
        return None
    negative, magnitude = parsed
    if magnitude >= _UINT64:
        return None
    value = (-magnitude) % _UINT64 if negative else magnitude
    if value >= 2**63 and b"-" in token:
        return None
    return value


def strtoul(token: bytes) -> int | None:
    """
    memcached's C{safe_strtoul} into a 32-bit unsigned int: parsed as an
    unsigned long, then truncated to 32 bits as the C assignment does.
    """
    value = strtoull(token)
    return None if value is None else value & 0xFFFFFFFF


def strtol(token: bytes) -> int | None:
    """
    memcached's C{safe_strtol} into a 32-bit int: parsed as a signed 64-bit
    long, then truncated to 32 bits as the C assignment does.
    """
    if token.isdigit():
        value = int(token)
        if value >= 2**63:
            return None
    else:
        parsed = _cNumber(token)
        if parsed is None:
            return None
        negative, magnitude = parsed
        value = -magnitude if negative else magnitude
        if not -(2**63) <= value < 2**63:
            return None
    return ((value + 2**31) & 0xFFFFFFFF) - 2**31


def parseCounter(value: bytes) -> int | None:
    """
    Read a stored value as C{incr}/C{decr} do.

    @param value: the item's data.
    @return: the number, or L{None} when the value is not a decimal 64-bit
        unsigned number (empty values included).
    """
    if not value:
        return None
    return strtoull(value)
