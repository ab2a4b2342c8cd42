"""
The administration commands that tune memcached's slab allocator, LRU and
extstore: C{lru tune|mode|temp_ttl}, C{extstore <setting> <value>}, C{slabs
reassign} and C{slabs automove}.  myproto has none of those mechanisms;
it answers them as memcached 1.6.18 does and remembers what they set, for
C{stats settings} (L{myproto.commands.tuning}).

Their arguments stay bytes here: memcached answers a bad number with a
reply of the command's own (C{ERROR}, or C{CLIENT_ERROR bad command line
format}), which the command decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from myproto.errors import UnknownCommand
from myproto.wire.classic import BaseRequest, SlabsAutomoveRequest, saysNoreply
from myproto.wire.numbers import strtoul


@dataclass
class LruRequest(BaseRequest):
    """
    C{lru <subcommand> <arguments>}.
    """

    arguments: tuple[bytes, ...]
    noreply: bool


@dataclass
class ExtstoreRequest(BaseRequest):
    """
    C{extstore <setting> <value...>}.
    """

    arguments: tuple[bytes, ...]
    noreply: bool


@dataclass
class SlabsReassignRequest(BaseRequest):
    """
    C{slabs reassign <source> <destination>}, the class ids unparsed.
    """

    source: bytes
    destination: bytes


@dataclass
class SlabsAutomoveRatioRequest(BaseRequest):
    """
    C{slabs automove ratio <ratio>}; C{ratio} is L{None} when it is missing.
    """

    ratio: bytes | None
    noreply: bool


def strtod(token: bytes) -> float | None:
    """
    memcached's C{safe_strtod}: the whole token is a C floating-point
    number (decimal or hexadecimal, C{inf}, C{nan}).

    @return: the number, or L{None} when memcached refuses the token.
    """
    if b"_" in token or not token:
        return None
    try:
        value = float(token)
    except ValueError:
        pass
    else:
        # Out of range: C's strtod says ERANGE, which memcached refuses.
        if math.isinf(value) and b"inf" not in token.lower():
            return None
        return value
    try:
        return float.fromhex(token.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None


def _parseLru(verb: bytes, tokens: list[bytes], count: int) -> LruRequest:
    if count < 3:
        raise UnknownCommand()
    return LruRequest(tuple(tokens[1 : count - 1]), saysNoreply(tokens, count))


def _parseExtstore(verb: bytes, tokens: list[bytes], count: int) -> ExtstoreRequest:
    if count < 3:
        raise UnknownCommand()
    return ExtstoreRequest(tuple(tokens[1 : count - 1]), saysNoreply(tokens, count))


def _parseSlabs(verb: bytes, tokens: list[bytes], count: int) -> BaseRequest:
    if count == 5 and tokens[1] == b"reassign":
        return SlabsReassignRequest(tokens[2], tokens[3])
    if count < 4 or tokens[1] != b"automove":
        raise UnknownCommand()
    noreply = saysNoreply(tokens, count)
    if tokens[2] == b"ratio":
        return SlabsAutomoveRatioRequest(tokens[3] if count >= 5 else None, noreply)
    return SlabsAutomoveRequest(strtoul(tokens[2]), noreply)


PARSERS: dict[bytes, Callable[[bytes, list[bytes], int], BaseRequest]] = {
    b"lru": _parseLru,
    b"extstore": _parseExtstore,
    b"slabs": _parseSlabs,
}
