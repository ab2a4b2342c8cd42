"""
One cached item, what memcached charges for it, and what it really costs
in this process.

Two sizes are kept apart.  L{itemSize} is memcached's formula: C{stats}
reports it as C{bytes}, metadump and C{stats items} show it, and the item
size limit (C{-I}) is checked against it, so clients see what memcached
shows them.  L{itemCost} is what the item takes from the process's memory
(the objects, their allocator rounding and the index's share), measured
per interpreter; the store evicts by it, so that C{-m} bounds the memory
items really take.
"""

from __future__ import annotations

import os
import sys

# memcached's per-item header on a 64-bit build.  Counting items the way
# memcached does keeps "bytes", "limit_maxbytes" and the largest storable
# value identical to the reference server.
ITEM_HEADER_SIZE = 48
CAS_SIZE = 8
FLAGS_SIZE = 4


def itemSize(keyLength: int, valueLength: int, flags: int, useCas: bool) -> int:
    """
    The memory an item is charged for, computed as memcached computes it.

    @param keyLength: the key's length in bytes.
    @param valueLength: the value's length in bytes, without its CRLF.
    @param flags: the client flags (nonzero flags take four more bytes).
    @param useCas: whether items carry an eight-byte CAS unique.
    @return: the item's size in bytes.
    """
    size = ITEM_HEADER_SIZE + keyLength + 1 + valueLength + 2
    if useCas:
        size += CAS_SIZE
    if flags:
        size += FLAGS_SIZE
    return size


# What an item costs this process, measured with tracemalloc (CPython) and
# RSS (PyPy) by tests/test_store.py's ItemCostTests and bench/memory.py.
if sys.implementation.name == "pypy":
    # No reference counts, no GC head; objects 8-aligned.  The fixed part
    # (the Item, the CAS unique, the index's share) and an expiry time's
    # are fitted to RSS growth measured for keys of 16 to 200 bytes and
    # values of 8 bytes to 10 KiB (PyPy 7.3.11): within 3%.
    INDEX_COST = 0
    _FIXED = 168
    _BYTES_HEADER = 40
    _ALIGN = 7
    _SMALL = sys.maxsize
    _EXPIRY = 24
    # What replaced items leave behind until the next major collection,
    # which PyPy's GC starts when the heap has grown this many times over
    # what the last one kept (PyPy's default: 1.82), in 256ths.
    _GARBAGE = int(256 * max(1.0, float(os.environ.get("PYPY_GC_MAJOR_COLLECT", "1.82"))))
else:
    # CPython: the Item (8 slots, GC head: 96), a CAS unique (32) and the
    # index's share.  A full cache replaces items all the time, and each
    # new key takes a fresh entry of the dict's table (24 bytes, and 4 for
    # its slot) until the table is rebuilt at three times the items held,
    # rounded up to a power of two: 52 to 105 bytes an item, measured.
    # Objects up to 512 bytes come from pymalloc in 16-byte steps; larger
    # ones from malloc, 8 more bytes and 16-byte steps.  An expiry time
    # adds its float (32) and its ExpiryBuckets entry (8 and the bucket
    # list's slack).
    INDEX_COST = 72
    _FIXED = 96 + 32 + INDEX_COST
    _BYTES_HEADER = 33
    _ALIGN = 15
    _SMALL = 512
    _EXPIRY = 32 + 12


def _objectsCost(keyLength: int, valueLength: int, expires: float) -> int:
    """
    What an item's objects take, as measured for this interpreter (on
    CPython, all of L{itemCost}; PyPy adds its garbage).

    @param keyLength: the key's length in bytes.
    @param valueLength: the value's length in bytes.
    @param expires: its expiry time, or 0 (only whether it has one counts).
    @return: bytes.
    """
    # The key's and the value's bytes objects, in the allocator's steps.
    key = _BYTES_HEADER + keyLength
    value = _BYTES_HEADER + valueLength
    if key > _SMALL:
        key += 8
    if value > _SMALL:
        value += 8
    cost = _FIXED + ((key + _ALIGN) & ~_ALIGN) + ((value + _ALIGN) & ~_ALIGN)
    if expires:
        cost += _EXPIRY
    return cost


if sys.implementation.name == "pypy":

    def itemCost(keyLength: int, valueLength: int, expires: float) -> int:
        """
        What an item takes from this process's memory, its share of the
        garbage the GC lets pile up included.

        @param keyLength: the key's length in bytes.
        @param valueLength: the value's length in bytes.
        @param expires: its expiry time, or 0 (only whether it has one
            counts).
        @return: bytes.
        """
        return _objectsCost(keyLength, valueLength, expires) * _GARBAGE >> 8

else:
    itemCost = _objectsCost


# Bits of L{Item.marks}.  One small int holds them all (CPython shares ints
# up to 256); a slot each made every item 16 bytes larger.
FETCHED = 1
# Fetched again after its first fetch, since the eviction hand last passed
# it: it gets a second chance, as an active item at the tail of memcached's
# cold LRU is moved up instead of being evicted (memcached marks an item
# active only on a fetch after the first).
ACTIVE = 2
_STALE = 4
_TOKEN_SENT = 8
_KEY_BINARY = 16


# The chunk sizes of memcached's slab classes: from the smallest chunk (an
# item header of 48 bytes plus C{-n}), each the last times C{-f}, aligned to
# 8 bytes, up to the 512 KiB largest chunk; C{me} reports the class an item
# would live in.
_SLAB_CHUNK_MAX = 512 * 1024
_ITEM_HEADER = 48


def slabSizes(factor: float = 1.25, minimum: int = 48) -> tuple[int, ...]:
    """
    @param factor: memcached's C{-f}, the growth factor.
    @param minimum: memcached's C{-n}, the smallest chunk for key, value
        and flags.
    @return: the chunk size of each slab class, as memcached 1.6.18 makes
        them (C{slabs_init}).
    """
    sizes = []
    size = _ITEM_HEADER + minimum
    while size < _SLAB_CHUNK_MAX / factor and len(sizes) < 62:
        size += -size % 8
        sizes.append(size)
        # memcached multiplies an unsigned int by a double and truncates.
        size = int(size * factor)
    sizes.append(_SLAB_CHUNK_MAX)
    return tuple(sizes)


SLAB_SIZES = slabSizes()


def slabClass(size: int, sizes: tuple[int, ...] = SLAB_SIZES) -> int:
    """
    @param size: an item's size, as L{itemSize} counts it.
    @param sizes: the classes' chunk sizes (L{slabSizes}).
    @return: the memcached slab class an item of that size goes in.
    """
    for index, chunk in enumerate(sizes):
        if size <= chunk:
            return index + 1
    return len(sizes)


class Item:
    """
    One cached value and what the store knows about it.

    Every stored item pays for this object, so it has eight slots (96
    bytes in CPython; a ninth would make it 112): the size is computed,
    and the booleans share L{marks}.

    @ivar key: the key it is stored under.
    @ivar value: the data, exactly as the client sent it.
    @ivar flags: the client's opaque 32-bit flags.
    @ivar expires: absolute expiry time in clock seconds, or 0.0 (never).
    @ivar cas: the CAS unique of this version (0 when CAS is disabled).
    @ivar lastAccess: clock seconds of the last store or fetch.  The store
        records the start of the whole second it happened in, as memcached
        does, so that items used in the same second share one float.
    @ivar replyWindow: the reply window of the last reply that showed it
        (see L{myproto.cache.Cache.newReplyWindow}), or 0.
    @ivar marks: L{FETCHED}, L{ACTIVE} and the meta commands' bits.
    """

    __slots__ = ("key", "value", "flags", "expires", "cas", "lastAccess", "replyWindow", "marks")

    def __init__(self, key: bytes, value: bytes, flags: int, expires: float, cas: int, now: float) -> None:
        self.key = key
        self.value = value
        self.flags = flags
        self.expires = expires
        self.cas = cas
        self.lastAccess = now
        self.replyWindow = 0
        self.marks = 0

    def __lt__(self, other: Item) -> bool:
        # Only ever compared to break ties in sorted expiry entries; such
        # items may leave in any order.
        return False

    @property
    def size(self) -> int:
        """
        The bytes memcached would charge for it (L{itemSize}).  An in-place
        increment pads the value to its old length, so this never changes
        while the item is held.
        """
        return itemSize(len(self.key), len(self.value), self.flags, self.cas != 0)

    @property
    def cost(self) -> int:
        """
        What it takes from this process's memory (L{itemCost}).
        """
        return itemCost(len(self.key), len(self.value), self.expires)

    @property
    def fetched(self) -> bool:
        """
        Whether a client has read it since it was stored.
        """
        return bool(self.marks & FETCHED)

    @fetched.setter
    def fetched(self, value: bool) -> None:
        self._setBit(FETCHED, value)

    @property
    def stale(self) -> bool:
        """
        Whether a meta delete or meta set marked it stale (C{I}).
        """
        return bool(self.marks & _STALE)

    @stale.setter
    def stale(self, value: bool) -> None:
        self._setBit(_STALE, value)

    @property
    def tokenSent(self) -> bool:
        """
        Whether a meta get has handed out its recache token.
        """
        return bool(self.marks & _TOKEN_SENT)

    @tokenSent.setter
    def tokenSent(self, value: bool) -> None:
        self._setBit(_TOKEN_SENT, value)

    @property
    def keyBinary(self) -> bool:
        """
        Whether a meta set stored it under a base64 key (C{b}), so that meta
        replies return the key in base64.
        """
        return bool(self.marks & _KEY_BINARY)

    @keyBinary.setter
    def keyBinary(self, value: bool) -> None:
        self._setBit(_KEY_BINARY, value)

    def _setBit(self, bit: int, value: bool) -> None:
        if value:
            self.marks |= bit
        else:
            self.marks &= ~bit
