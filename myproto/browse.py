"""
The dashboard's key browser: find keys by prefix or substring over the whole
cache, a page at a time, and show one item's value; sans-IO.

A L{KeySearch} walks the cache the way C{lru_crawler metadump} does
(L{myproto.commands.crawler.Metadump}): it takes a copy of the item
references when it starts, then looks at one batch of them per step, so the
caller (L{myproto.dashboard}) runs one step per reactor turn and clients are
served in between.  Each item is checked with L{MemoryStore.find}, which has
no side effects: browsing neither counts as a use nor reclaims anything, and
unlike a metadump it takes no crawler slot, so the cache and its C{stats}
are left exactly as they were.

The matches are sorted by key without a long pause either: each batch's are
sorted as it is walked (a few thousand at a time), and the sorted runs are
merged a slice per step.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from itertools import islice
from typing import Any
from urllib.parse import unquote_to_bytes

from myproto.cache import Cache
from myproto.commands.watch import uriEncode
from myproto.store import Item

# Rows per page of results.
PAGE_SIZE = 100

# Items examined, and sorted matches merged, per step: each step stays
# around a millisecond (see bench/dashboard_browse.py).
WALK_BATCH = 1000
MERGE_BATCH = 2000

# The longest value shown; the rest is cut.
VALUE_LIMIT = 4096

# memcached's longest key.
MAX_KEY_LENGTH = 250

PREFIX = "prefix"
SUBSTRING = "substring"
MODES = (PREFIX, SUBSTRING)


class KeySearch:
    """
    One search: an iterator whose every step examines one batch; once it is
    exhausted, L{keys} holds the matching keys, sorted.

    @ivar query: the bytes looked for.
    @ivar mode: L{PREFIX} or L{SUBSTRING}.
    @ivar examined: how many items have been looked at so far.
    @ivar total: how many items the walk covers (0 before its first step).
    @ivar keys: the matches, sorted, once the walk is done; else L{None}.
    """

    def __init__(self, cache: Cache, query: bytes, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(mode)
        self.query = query
        self.mode = mode
        self.examined = 0
        self.total = 0
        self.keys: list[bytes] | None = None
        self._cache = cache
        self._steps = self._walk()

    def __iter__(self) -> KeySearch:
        return self

    def __next__(self) -> None:
        next(self._steps)

    def _walk(self) -> Iterator[None]:
        # The references are copied at the first step, not at creation, so
        # the copy is as fresh as the walk.
        items = self._cache.store.allItems()
        self.total = len(items)
        # The copy takes a few milliseconds of a large cache: a step alone.
        yield None
        find = self._cache.store.find
        query = self.query
        prefix = self.mode == PREFIX
        runs: list[list[bytes]] = []
        for start in range(0, len(items), WALK_BATCH):
            found = []
            for item in items[start : start + WALK_BATCH]:
                key = item.key
                if (key.startswith(query) if prefix else query in key) and find(key) is item:
                    found.append(key)
            self.examined = min(start + WALK_BATCH, len(items))
            if found:
                found.sort()
                runs.append(found)
            yield None
        del items
        merged = heapq.merge(*runs)
        keys: list[bytes] = []
        while True:
            before = len(keys)
            keys.extend(islice(merged, MERGE_BATCH))
            if len(keys) - before < MERGE_BATCH:
                break
            yield None
        self.keys = keys

    def page(self, number: int) -> list[dict[str, Any]]:
        """
        @param number: the page, from 0.
        @return: a row for each key of that page whose item still lives, as
            it is now (see L{itemRow}).
        """
        if self.keys is None:
            raise RuntimeError("the search is still running")
        rows = []
        find = self._cache.store.find
        for key in self.keys[number * PAGE_SIZE : (number + 1) * PAGE_SIZE]:
            item = find(key)
            if item is not None:
                rows.append(itemRow(self._cache, item))
        return rows


def displayKey(key: bytes) -> str:
    """
    @return: a key as text for people: UTF-8, with other bytes escaped.
    """
    return key.decode("utf-8", "backslashreplace")


def itemRow(cache: Cache, item: Item) -> dict[str, Any]:
    """
    What the browser shows of one item.

    @return: C{key} (URI-encoded, as C{metadump} writes it, which is how
        the value is asked for), C{text} (the key for display), C{size}
        (the bytes it is charged for), C{length} (its value's), C{flags},
        C{ttl} (seconds left, -1 for never), C{idle} (seconds since its last
        access), C{cas} and C{fetched}.
    """
    now = cache.store.now()
    ttl = -1 if not item.expires else max(0, int(item.expires - now))
    return {
        "key": uriEncode(item.key).decode("ascii"),
        "text": displayKey(item.key),
        "size": item.size,
        "length": len(item.value),
        "flags": item.flags,
        "ttl": ttl,
        "idle": max(0, int(now - item.lastAccess)),
        "cas": item.cas,
        "fetched": item.fetched,
    }


def decodeKey(encoded: bytes) -> bytes | None:
    """
    Read a key as L{itemRow} gives it (URI-encoded).

    @return: the key, or L{None} if it is empty or longer than any key.
    """
    key = unquote_to_bytes(encoded)
    if not key or len(key) > MAX_KEY_LENGTH:
        return None
    return key


def hexDump(data: bytes) -> str:
    """
    @return: C{data} as lines of 16 bytes: offset, hex, and the printable
        ASCII (a dot for the rest).
    """
    lines = []
    for offset in range(0, len(data), 16):
        chunk = data[offset : offset + 16]
        hexes = " ".join("%02x" % (byte,) for byte in chunk)
        text = "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in chunk)
        lines.append("%08x  %-47s  %s" % (offset, hexes, text))
    return "\n".join(lines)


def valueView(cache: Cache, item: Item) -> dict[str, Any]:
    """
    One item's value for display, cut at L{VALUE_LIMIT} bytes.

    @return: the item's row (L{itemRow}) with C{value} (the shown bytes as
        UTF-8 text, other bytes escaped), C{hex} (the same bytes as a hex
        dump), C{binary} (whether they are not all UTF-8 text) and
        C{truncated}.
    """
    shown = item.value[:VALUE_LIMIT]
    row = itemRow(cache, item)
    try:
        text = shown.decode("utf-8")
        binary = any(ord(c) < 0x20 and c not in "\t\r\n" for c in text)
    except UnicodeDecodeError as e:
        # A multi-byte character cut by the limit is still text.
        binary = not (len(item.value) > VALUE_LIMIT and e.start >= len(shown) - 3)
        text = shown.decode("utf-8", "backslashreplace")
    row.update(
        value=text,
        hex=hexDump(shown),
        binary=binary,
        truncated=len(item.value) > VALUE_LIMIT,
    )
    return row
