"""
Readers of single command-line values (sizes, counts, seconds, masks,
memcached's C{-B} and C{-f}), each refusing bad input with a message in
memcached's words or a plain reason; L{myproto.options} puts them together.
"""

from __future__ import annotations

import re

from myproto.config import MEGABYTE

KILOBYTE = 1024
PROTOCOLS = ("ascii", "binary", "auto")  # memcached's -B

MIN_ITEM_SIZE = KILOBYTE
MAX_ITEM_SIZE = 1024 * MEGABYTE

_SIZE = re.compile(r"([0-9]+)([kKmM]?)")
_UNITS = {"": 1, "k": KILOBYTE, "m": MEGABYTE}


def parseSize(text: str) -> int:
    """
    Read a size the way memcached's C{-I} does: a count of bytes, or a count
    followed by C{k} or C{m} (either case) for kilobytes or megabytes.

    @param text: the size as typed, e.g. C{"1m"}, C{"512k"} or C{"4096"}.

    @return: the size in bytes.

    @raise ValueError: if C{text} is not such a size.
    """
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            "{!r} is not a size: give bytes, or a number followed by k or m".format(
                text
            )
        )
    count, unit = match.groups()
    return int(count) * _UNITS[unit.lower()]


parseSize.coerceDoc = (  # type: ignore[attr-defined]
    "Bytes, or a number followed by k or m; at least 1k, at most 1024m"
    " and at most half the memory limit."
)


def parseInteger(text: str) -> int:
    """
    Read a whole number given on the command line.

    @param text: the number as typed.

    @return: its value.

    @raise ValueError: if C{text} is not a whole number.
    """
    try:
        return int(text)
    except ValueError:
        raise ValueError("{!r} is not a whole number".format(text)) from None


def parseSeconds(text: str) -> float:
    """
    Read a duration given on the command line.

    @param text: a number of seconds, e.g. C{"30"} or C{"2.5"}.

    @return: its value.

    @raise ValueError: if C{text} is not a finite number of seconds, zero or
        more.
    """
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError("{!r} is not a number of seconds".format(text)) from None
    if not 0 <= seconds < float("inf"):
        raise ValueError("{!r} is not a number of seconds".format(text))
    return seconds


parseSeconds.coerceDoc = "Seconds; 0 means never."  # type: ignore[attr-defined]


def parseSnapshotInterval(text: str) -> float:
    """
    Read C{--snapshot-interval}: as L{parseSeconds}, but its help says what 0
    means there (no saves while serving, the one at shutdown still).
    """
    return parseSeconds(text)


parseSnapshotInterval.coerceDoc = "Seconds; 0: only at shutdown."  # type: ignore[attr-defined]


def toSize(value: int | str) -> int:
    """
    Accept a size as L{Options} leaves it (bytes) or as a C{.tac} may write it
    (C{"1m"}).
    """
    if isinstance(value, str):
        return parseSize(value)
    return int(value)


def toBanner(value: str | bytes | None) -> bytes | None:
    """
    Check that a banner fits on one line and encode it.

    @return: the banner as UTF-8 bytes, or L{None} for no banner (an empty
        one included).

    @raise ValueError: if it contains a carriage return or a line feed.
    """
    if not value:
        return None
    banner = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    if b"\r" in banner or b"\n" in banner:
        raise ValueError("The banner must fit on one line")
    return banner


def parseMask(text: str) -> int:
    """
    Read memcached's C{-a}: permission bits in octal, e.g. C{700}.

    @raise ValueError: if C{text} is not an octal number from 0 to 777.
    """
    try:
        mask = int(text, 8)
    except ValueError:
        mask = -1
    if not 0 <= mask <= 0o777:
        raise ValueError("{!r} is not an access mask in octal, e.g. 700".format(text))
    return mask



def parseProtocol(text: str) -> str:
    """
    Read memcached's C{-B}.

    @raise ValueError: in memcached's words, for another name.
    """
    if text not in PROTOCOLS:
        raise ValueError(
            "Invalid value for binding protocol: {} -- should be one of auto,"
            " binary, or ascii".format(text)
        )
    return text


def parseFactor(text: str) -> float:
    """
    Read memcached's C{-f}: a number above 1.

    @raise ValueError: in memcached's words, for another value.
    """
    try:
        factor = float(text)
    except ValueError:
        factor = 0.0
    if not 1.0 < factor < float("inf"):
        raise ValueError("Factor must be greater than 1")
    return factor
