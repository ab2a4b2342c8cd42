"""
The binary protocol's commands: each opcode read into the same semantics
the classic and meta commands call (L{storeItem}, L{addDelta},
L{deleteItem}, L{retrieveItems}, L{flush}, the C{stats} groups), and the
outcome rendered as memcached 1.6.18's C{proto_bin.c} renders it.

L{carryOut} takes a request whose header, extras and key have arrived and
says what the connection reads next: nothing more, the value of a storage
command (then L{completeStorage}), bytes to swallow, or nothing ever (the
connection closes once the replies have gone).

Quiet commands reply only with errors, as in memcached, except that a
quiet get of a missing key says nothing; their replies go out, in order,
with those of the next command that answers.
"""

from __future__ import annotations

from enum import Enum, auto

from myproto.cache import PROTOCOL_VERSION, Cache
from myproto.commands.admin import STAT_GROUPS, resetStats
from myproto.commands.arithmetic import addDelta, countMiss, createCounter
from myproto.commands.items import deleteItem, flush
from myproto.commands.retrieval import retrieveItems
from myproto.commands.stats import generalStats
from myproto.commands.storage import ADD, APPEND, CAS, PREPEND, REPLACE, SET, admitItem, storeItem
from myproto.errors import ClientError, ServerError
from myproto.wire import binary, classic
from myproto.wire.binary import BinaryRequest, errorResponse, response
from myproto.wire.classic import KEY_MAX_LENGTH
from myproto.wire.replies import BINARY, DELETED, NOT_FOUND, NOT_STORED, STORED


class Next(Enum):
    """
    What the connection reads after a request's header, extras and key.
    """

    COMMAND = auto()  # the next request
    VALUE = auto()  # the storage command's value, then completeStorage
    SWALLOW = auto()  # bytes to discard, then the next request
    CLOSE = auto()  # nothing: close once the replies have gone
    QUIT = auto()  # the same, as the client asked


# Storage modes, by the opcode that asks for them.
_MODES = {
    binary.SET: SET,
    binary.ADD: ADD,
    binary.REPLACE: REPLACE,
    binary.APPEND: APPEND,
    binary.PREPEND: PREPEND,
}

_RETRIEVALS = frozenset([binary.GET, binary.GETK, binary.TOUCH, binary.GAT, binary.GATK])
_WITH_KEY = frozenset([binary.GETK, binary.GATK])


def carryOut(request: BinaryRequest, cache: Cache, replies: list[bytes]) -> tuple[Next, int]:
    """
    Carry out a request whose header, extras and key have arrived, as
    memcached's C{dispatch_bin_command} does.

    @param replies: where the responses go.
    @return: what to read next, and how many bytes of it.
    """
    keyLength = request.keyLength
    extrasLength = request.extrasLength
    bodyLength = request.bodyLength
    if keyLength + extrasLength > bodyLength:
        replies.append(errorResponse(request, binary.UNKNOWN_COMMAND))
        return Next.CLOSE, 0
    if keyLength > KEY_MAX_LENGTH:
        return _invalid(request, replies)
    command = request.command
    if command in _MODES:
        if command == binary.APPEND or command == binary.PREPEND:
            valid = keyLength > 0 and extrasLength == 0
        else:
            valid = extrasLength == 8 and keyLength > 0
        if not valid:
            return _invalid(request, replies)
        return _admit(request, cache, replies)
    if command in _RETRIEVALS:
        wanted = 0 if command == binary.GET or command == binary.GETK else 4
        if extrasLength != wanted or keyLength == 0 or (not wanted and bodyLength != keyLength):
            return _invalid(request, replies)
        _retrieve(request, cache, replies)
        return Next.COMMAND, 0
    if command == binary.DELETE:
        if keyLength == 0 or extrasLength or bodyLength != keyLength:
            return _invalid(request, replies)
        _delete(request, cache, replies)
        return Next.COMMAND, 0
    if command == binary.INCREMENT or command == binary.DECREMENT:
        if keyLength == 0 or extrasLength != 20 or bodyLength != keyLength + 20:
            return _invalid(request, replies)
        _arithmetic(request, cache, replies)
        return Next.COMMAND, 0
    if command == binary.FLUSH:
        if keyLength or bodyLength != extrasLength or extrasLength not in (0, 4):
            return _invalid(request, replies)
        _flush(request, cache, replies)
        return Next.COMMAND, 0
    if command == binary.STAT:
        if extrasLength:
            return _invalid(request, replies)
        _stats(request, cache, replies)
        return Next.COMMAND, 0
    if command in (binary.NOOP, binary.VERSION, binary.QUIT):
        if keyLength or extrasLength or bodyLength:
            return _invalid(request, replies)
        if command == binary.VERSION:
            replies.append(response(request, valueLength=len(PROTOCOL_VERSION)))
            replies.append(PROTOCOL_VERSION)
            return Next.COMMAND, 0
        if not request.quiet:
            replies.append(response(request))
        if command == binary.QUIT:
            return Next.QUIT, 0
        # A no-op makes memcached write its replies at once.
        cache.newReplyWindow()
        return Next.COMMAND, 0
    if command == binary.SASL_LIST_MECHS or command == binary.SASL_AUTH or command == binary.SASL_STEP:
        return _withoutSasl(request, replies)
    # memcached 1.6.18 serves no VERBOSITY: like any unknown opcode,
    # refused, and bodyLength more bytes swallowed
    # (the extras and key already read included, as memcached counts).
    replies.append(errorResponse(request, binary.UNKNOWN_COMMAND))
    return Next.SWALLOW, bodyLength


def _withoutSasl(request: BinaryRequest, replies: list[bytes]) -> tuple[Next, int]:
    """
    SASL without C{-S}, as memcached checks it: the lengths first, then
    "unknown command", the value of an AUTH or STEP swallowed.
    """
    if request.command == binary.SASL_LIST_MECHS:
        if request.keyLength or request.extrasLength or request.bodyLength:
            return _invalid(request, replies)
    elif request.extrasLength or not request.keyLength:
        return _invalid(request, replies)
    replies.append(errorResponse(request, binary.UNKNOWN_COMMAND))
    return Next.SWALLOW, request.valueLength


def _invalid(request: BinaryRequest, replies: list[bytes]) -> tuple[Next, int]:
    """
    Lengths that do not fit the opcode: memcached answers C{EINVAL} and
    closes the connection.
    """
    replies.append(errorResponse(request, binary.EINVAL))
    return Next.CLOSE, 0


def _admit(request: BinaryRequest, cache: Cache, replies: list[bytes]) -> tuple[Next, int]:
    """
    Check a storage command before its value is read: one too large is
    refused, and its value swallowed rather than buffered.
    """
    mode = _MODES[request.command]
    flags = 0
    if request.extrasLength:
        flags, _ = binary.STORAGE_EXTRAS.unpack(request.extras)
    if cache.prefixStats.enabled:
        cache.prefixStats.recordSet(request.key)
    size = request.valueLength
    try:
        # A refused set, add or replace drops the key's old item in
        # memcached; a refused append or prepend leaves it.
        admitItem(
            cache, request.key, size, flags, mode, mode != APPEND and mode != PREPEND, count=False
        )
    except ServerError:
        replies.append(errorResponse(request, binary.E2BIG))
        return Next.SWALLOW, size
    return Next.VALUE, size


def completeStorage(request: BinaryRequest, value: bytes, cache: Cache, replies: list[bytes]) -> None:
    """
    Store an admitted storage command's value, as memcached's
    C{complete_update_bin} does: a CAS in the header makes any of set, add
    and replace a compare-and-swap.
    """
    mode = _MODES[request.command]
    flags = 0
    expires = 0.0
    if request.extrasLength:
        flags, exptime = binary.STORAGE_EXTRAS.unpack(request.extras)
        expires = cache.expiry(exptime)
    if request.cas and mode != APPEND and mode != PREPEND:
        mode = CAS
    try:
        outcome, item = storeItem(cache, mode, request.key, value, flags, expires, request.cas)
    except ServerError:
        # No memory for it (the only ServerError after admission; -M).
        # memcached's binary path does not count it in store_no_memory.
        cache.stats.storeNoMemory -= 1
        message = binary.STORE_NO_MEMORY
        replies.append(response(request, binary.ENOMEM, valueLength=len(message)) + message)
        return
    if outcome is STORED:
        if not request.quiet:
            assert item is not None
            replies.append(response(request, cas=item.cas))
        return
    status = BINARY[outcome]
    if outcome is NOT_STORED:
        if mode == ADD:
            status = binary.KEY_EEXISTS
        elif mode == REPLACE:
            status = binary.KEY_ENOENT
    replies.append(errorResponse(request, status))


def _retrieve(request: BinaryRequest, cache: Cache, replies: list[bytes]) -> None:
    """
    GET, GETK, TOUCH, GAT and GATK, quiet or not.
    """
    command = request.command
    touchExpires = None
    if request.extrasLength:
        (exptime,) = binary.EXPIRATION_EXTRAS.unpack(request.extras)
        touchExpires = cache.expiry(exptime)
    found = retrieveItems(cache, (request.key,), touchExpires)
    withKey = command in _WITH_KEY
    if not found:
        if request.quiet:
            return
        if withKey:
            replies.append(response(request, binary.KEY_ENOENT, key=request.key))
        else:
            replies.append(errorResponse(request, binary.KEY_ENOENT))
        return
    item = found[0]
    extras = binary.FLAGS_EXTRAS.pack(item.flags & 0xFFFFFFFF)
    key = request.key if withKey else b""
    if command == binary.TOUCH:
        replies.append(response(request, cas=item.cas, extras=extras))
        return
    value = item.value
    replies.append(response(request, cas=item.cas, extras=extras, key=key, valueLength=len(value)))
    replies.append(value)


def _delete(request: BinaryRequest, cache: Cache, replies: list[bytes]) -> None:
    if cache.prefixStats.enabled:
        cache.prefixStats.recordDelete(request.key)
    outcome = deleteItem(cache, request.key, request.cas or None)
    if outcome is not DELETED:
        replies.append(errorResponse(request, BINARY[outcome]))
    elif not request.quiet:
        replies.append(response(request))


def _arithmetic(request: BinaryRequest, cache: Cache, replies: list[bytes]) -> None:
    """
    INCREMENT and DECREMENT: the counter's new value, or with an
    expiration other than L{binary.NO_CREATE}, a new counter holding the
    initial value (see L{createCounter}).
    """
    delta, initial, exptime = binary.ARITHMETIC_EXTRAS.unpack(request.extras)
    increment = request.command == binary.INCREMENT
    try:
        outcome, item, digits = addDelta(cache, request.key, increment, delta, request.cas)
    except ClientError:
        replies.append(errorResponse(request, binary.DELTA_BADVAL))
        return
    except ServerError:
        replies.append(errorResponse(request, binary.ENOMEM))
        return
    if outcome is NOT_FOUND:
        if exptime == binary.NO_CREATE:
            countMiss(cache, increment)
            replies.append(errorResponse(request, binary.KEY_ENOENT))
            return
        item, digits = createCounter(cache, request.key, initial, cache.expiry(exptime))
        if item is None:
            replies.append(errorResponse(request, binary.ENOMEM))
            return
        outcome = STORED
    if outcome is not STORED:
        replies.append(errorResponse(request, BINARY[outcome]))
        return
    if not request.quiet:
        assert item is not None
        body = binary.COUNTER_VALUE.pack(int(digits))
        replies.append(response(request, cas=item.cas, valueLength=len(body)) + body)


def _flush(request: BinaryRequest, cache: Cache, replies: list[bytes]) -> None:
    if not cache.settings.flushEnabled:
        replies.append(errorResponse(request, binary.AUTH_ERROR))
        return
    exptime = 0
    if request.extrasLength:
        (exptime,) = binary.EXPIRATION_EXTRAS.unpack(request.extras)
    flush(cache, exptime)
    if not request.quiet:
        replies.append(response(request))


def _stats(request: BinaryRequest, cache: Cache, replies: list[bytes]) -> None:
    """
    STAT: one response per statistic, its name as the key and its value as
    the body, then an empty one; C{reset} answers only that end.
    """
    group = request.key
    if not group:
        pairs = generalStats(cache)
    elif group == b"reset":
        resetStats(cache)
        pairs = []
    elif group.startswith(b"detail ") and group[7:] in (b"on", b"off", b"dump"):
        if group[7:] == b"dump":
            lines = cache.prefixStats.dump() + [classic.END]
            pairs = [("detailed", b"".join(line + b"\r\n" for line in lines).decode("latin-1"))]
        else:
            cache.prefixStats.enabled = group[7:] == b"on"
            pairs = []
    elif group in STAT_GROUPS and group != b"conns":
        # memcached lists its connections in text only: "not found" here.
        pairs = STAT_GROUPS[group](cache)
    else:
        replies.append(errorResponse(request, binary.KEY_ENOENT))
        return
    for name, value in pairs:
        key = name.encode("ascii")
        text = str(value).encode("latin-1")
        replies.append(response(request, key=key, valueLength=len(text)) + text)
    replies.append(response(request))
