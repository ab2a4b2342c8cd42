"""
The classic text protocol's request lines, parsed into typed requests, and
the literal reply lines.

Parsing follows memcached 1.6's C{proto_text.c} to the byte: tokens are split
on spaces only, at most 23 are looked at, numbers are read the way C's
C{strtol} family reads them, and each malformed line gets the error memcached
gives.  Nothing here does I/O or touches the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Union

from myproto.errors import ClientError, CloseConnection, UnknownCommand
from myproto.wire.numbers import strtol, strtoul, strtoull

# Reply literals.
STORED = b"STORED"
NOT_STORED = b"NOT_STORED"
EXISTS = b"EXISTS"
NOT_FOUND = b"NOT_FOUND"
DELETED = b"DELETED"
TOUCHED = b"TOUCHED"
END = b"END"
OK = b"OK"
RESET = b"RESET"
# A value's header line: key, flags and length, then the CAS unique for gets.
VALUE_HEADER = b"VALUE %b %d %d"
VALUE_HEADER_WITH_CAS = b"VALUE %b %d %d %d"
VERSION = b"VERSION "
STAT = b"STAT "
MN = b"MN"
SHUTDOWN_NOT_ENABLED = b"ERROR: shutdown not enabled"
TOO_MANY_CONNECTIONS = b"ERROR Too many open connections"
MEMLIMIT_TOO_SMALL = b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"
MEMLIMIT_NOT_BYTES = b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes"
TLS_NOT_ENABLED = b"Error TLS not enabled"

# Error messages, as memcached words them.
BAD_FORMAT = b"bad command line format"
BAD_DATA_CHUNK = b"bad data chunk"
BAD_EXPTIME = b"invalid exptime argument"
BAD_DELTA = b"invalid numeric delta argument"
NON_NUMERIC = b"cannot increment or decrement non-numeric value"
BAD_DELETE = b"bad command line format.  Usage: delete <key> [noreply]"
BAD_SHUTDOWN_MODE = b"invalid shutdown mode"
TOO_LARGE = b"object too large for cache"
OUT_OF_MEMORY = b"out of memory storing object"
BAD_STATS_DETAIL = b"usage: stats detail on|off|dump"
UNAUTHENTICATED = b"unauthenticated"
BAD_AUTH_TERMINATION = b"bad command line termination"
BAD_AUTH_FORMAT = b"bad authentication token format"
AUTH_FAILURE = b"authentication failure"

NOREPLY = b"noreply"
KEY_MAX_LENGTH = 250

# memcached tokenizes at most this many tokens (and a terminal one); a line
# with more cannot match any fixed-arity command.
MAX_TOKENS = 24

# memcached drops a connection whose pending line reaches this length with no
# newline, unless it is a retrieval (multi-gets may be long).
MAX_COMMAND_LINE = 2048

# memcached reads into a buffer of this size, so a longer line that is not a
# multi-get can never be whole there, and the connection is dropped.
READ_BUFFER_SIZE = 16384

# memcached has no bound on a multi-get line; this one is ours, sized for
# thousands of maximal keys.
MAX_RETRIEVAL_LINE = 1024 * 1024

# The largest value of a C int, which bounds a data block's length.
INT_MAX = 2**31 - 1



# Requests are values nobody changes once parsed.  They are not declared
# frozen: a frozen dataclass assigns each field through object.__setattr__,
# which makes building one, once per command, three times as slow (measured
# 0.42 against 0.14 microseconds).  Nor slotted: that needs Python 3.10, and
# Debian's PyPy is 3.9.


class BaseRequest:
    """
    The base of every request: those that cannot say C{noreply} never do.
    """

    __slots__ = ()
    noreply = False


@dataclass
class StorageRequest(BaseRequest):
    """
    C{set}, C{add}, C{replace}, C{append}, C{prepend} or C{cas}; a data block
    of C{size} bytes and a CRLF follow the line.
    """

    verb: bytes
    key: bytes
    flags: int
    exptime: int
    size: int
    cas: int
    noreply: bool


@dataclass
class RetrievalRequest(BaseRequest):
    """
    C{get}/C{gets}, or with C{touchExptime} set, C{gat}/C{gats}.
    """

    keys: tuple[bytes, ...]
    withCas: bool
    touchExptime: int | None


@dataclass
class DeleteRequest(BaseRequest):
    key: bytes
    noreply: bool


@dataclass
class ArithmeticRequest(BaseRequest):
    key: bytes
    delta: int
    increment: bool
    noreply: bool


@dataclass
class TouchRequest(BaseRequest):
    key: bytes
    exptime: int
    noreply: bool


@dataclass
class FlushRequest(BaseRequest):
    """
    C{flush_all}; C{exptime} is 0 for "now", and L{None} when the delay
    given is not a number (memcached counts the command before refusing it).
    """

    exptime: int | None
    noreply: bool


@dataclass
class VerbosityRequest(BaseRequest):
    level: int
    noreply: bool


@dataclass
class StatsRequest(BaseRequest):
    """
    C{stats} with its arguments (empty for the general statistics).
    """

    arguments: tuple[bytes, ...]


@dataclass
class VersionRequest(BaseRequest):
    pass


@dataclass
class QuitRequest(BaseRequest):
    pass


@dataclass
class ShutdownRequest(BaseRequest):
    """
    C{shutdown}; C{mode} is C{None}, C{b"graceful"} or an invalid word.
    """

    mode: bytes | None


@dataclass
class MemoryLimitRequest(BaseRequest):
    """
    C{cache_memlimit <megabytes>}: change the memory limit at run time.
    """

    megabytes: int
    noreply: bool


@dataclass
class NoOpRequest(BaseRequest):
    """
    The meta no-op, C{mn}.
    """


@dataclass
class RefreshCertificatesRequest(BaseRequest):
    """
    C{refresh_certs}: load the TLS key, certificates and CAs again.  A
    trailing C{noreply} silences only its C{OK}: memcached sends an error
    all the same, so C{noreply} itself stays false.
    """

    quietSuccess: bool


@dataclass
class SlabsAutomoveRequest(BaseRequest):
    """
    C{slabs automove <level>}: memcached's slab rebalancer setting, which
    myproto, with no slabs, only remembers.  C{level} is L{None} for a
    number memcached refuses outright.
    """

    level: int | None
    noreply: bool


@dataclass
class WatchRequest(BaseRequest):
    """
    C{watch [fetchers] [mutations] [evictions] ...}: the event classes named
    (none means fetchers), each one memcached knows.
    """

    events: tuple[bytes, ...]


@dataclass
class LruCrawlerRequest(BaseRequest):
    """
    C{lru_crawler <subcommand> [argument]}, with its arguments unchecked:
    memcached's replies depend on the crawler's state
    (L{myproto.commands.crawler.lruCrawler}).
    """

    arguments: tuple[bytes, ...]


Request = Union[
    StorageRequest,
    RetrievalRequest,
    DeleteRequest,
    ArithmeticRequest,
    TouchRequest,
    FlushRequest,
    VerbosityRequest,
    StatsRequest,
    VersionRequest,
    QuitRequest,
    ShutdownRequest,
    MemoryLimitRequest,
    NoOpRequest,
    RefreshCertificatesRequest,
    WatchRequest,
    LruCrawlerRequest,
    SlabsAutomoveRequest,
]


class DataBlockRequest(BaseRequest):
    """
    Base of requests defined elsewhere that a data block of C{size} bytes and
    a CRLF follows (the meta set, L{myproto.wire.meta.MetaSetRequest}).
    """

    __slots__ = ()
    size: int
    noreply: bool


# Requests followed by a data block of C{size} bytes and a CRLF.
DATA_REQUESTS = (StorageRequest, DataBlockRequest)
DataRequest = Union[StorageRequest, DataBlockRequest, "AuthenticationRequest"]


# Tokenizing.


def tokenize(line: bytes) -> tuple[list[bytes], int]:
    """
    Split a command line as memcached's C{tokenize_command} does.

    @return: the space-separated tokens (all of them), and memcached's token
        count: at most 23 real tokens plus its terminal token.
    """
    tokens = line.split(b" ")
    if b"" in tokens:
        # Runs of spaces, or spaces at either end: rare, so filtered only then.
        tokens = [token for token in tokens if token]
    count = len(tokens) + 1
    return tokens, count if count < MAX_TOKENS else MAX_TOKENS


def saysNoreply(tokens: list[bytes], count: int) -> bool:
    """
    memcached's C{set_noreply_maybe}: the last counted token is C{noreply}.
    """
    return count >= 2 and tokens[count - 2] == NOREPLY


def _wantTokens(count: int, *allowed: int) -> None:
    if count not in allowed:
        raise UnknownCommand()


def _parseStorage(verb: bytes, tokens: list[bytes], count: int) -> StorageRequest:
    withCas = verb == b"cas"
    if withCas:
        if count != 7 and count != 8:
            raise UnknownCommand()
    elif count != 6 and count != 7:
        raise UnknownCommand()
    noreply = saysNoreply(tokens, count)
    key = tokens[1]
    if len(key) > KEY_MAX_LENGTH:
        raise ClientError(BAD_FORMAT, noreply)
    # Plain decimal digits, the usual case, need none of strtol's rules.
    flagsToken, exptimeToken, sizeToken = tokens[2], tokens[3], tokens[4]
    if (
        flagsToken.isdigit()
        and exptimeToken.isdigit()
        and sizeToken.isdigit()
        and len(flagsToken) < 10
        and len(exptimeToken) < 10
        and len(sizeToken) < 10
    ):
        flags: int | None = int(flagsToken)
        exptime: int | None = int(exptimeToken)
        size: int | None = int(sizeToken)
    else:
        flags = strtoul(flagsToken)
        exptime = strtol(exptimeToken)
        size = strtol(sizeToken)
    if flags is None or exptime is None or size is None:
        raise ClientError(BAD_FORMAT, noreply)
    cas = 0
    if withCas:
        parsedCas = strtoull(tokens[5])
        if parsedCas is None:
            raise ClientError(BAD_FORMAT, noreply)
        cas = parsedCas
    if size < 0 or size > INT_MAX - 2:
        raise ClientError(BAD_FORMAT, noreply)
    return StorageRequest(verb, key, flags, exptime, size, cas, noreply)


def parsePlainSet(line: bytes) -> StorageRequest | None:
    """
    Parse the commonest storage line, C{set <key> <flags> <exptime>
    <bytes>} with an optional C{noreply}, single spaces and plain decimal
    numbers, without the general tokenizer: the request L{_parseStorage}
    would make of it.

    @param line: a line starting with C{b"set "}, without NUL bytes.
    @return: the request, or L{None} for any other shape (the general
        parser then decides, errors included).
    """
    tokens = line.split(b" ")
    if len(tokens) == 5:
        noreply = False
    elif len(tokens) == 6 and tokens[5] == NOREPLY:
        noreply = True
    else:
        return None
    key, flags, exptime, size = tokens[1], tokens[2], tokens[3], tokens[4]
    if (
        key
        and len(key) <= KEY_MAX_LENGTH
        and flags.isdigit()
        and exptime.isdigit()
        and size.isdigit()
        and len(flags) < 10
        and len(exptime) < 10
        and len(size) < 10
    ):
        return StorageRequest(tokens[0], key, int(flags), int(exptime), int(size), 0, noreply)
    return None


def _parseRetrieval(verb: bytes, tokens: list[bytes], count: int) -> RetrievalRequest:
    if count < 3:
        raise UnknownCommand()
    # Key lengths are checked as the keys are served (see commands): memcached
    # looks up the keys before a too-long one, then replies only the error.
    if verb == b"get" or verb == b"bget":
        return RetrievalRequest(tuple(tokens[1:]), False, None)
    if verb == b"gets":
        return RetrievalRequest(tuple(tokens[1:]), True, None)
    touchExptime = strtol(tokens[1])
    if touchExptime is None:
        raise ClientError(BAD_EXPTIME)
    return RetrievalRequest(tuple(tokens[2:]), verb == b"gats", touchExptime)


def _parseDelete(verb: bytes, tokens: list[bytes], count: int) -> DeleteRequest:
    if not 3 <= count <= 5:
        raise UnknownCommand()
    noreply = False
    if count > 3:
        holdIsZero = tokens[2] == b"0"
        noreply = saysNoreply(tokens, count)
        valid = (count == 4 and (holdIsZero or noreply)) or (count == 5 and holdIsZero and noreply)
        if not valid:
            raise ClientError(BAD_DELETE, noreply)
    key = tokens[1]
    if len(key) > KEY_MAX_LENGTH:
        raise ClientError(BAD_FORMAT, noreply)
    return DeleteRequest(key, noreply)


def _keyAndNumber(
    tokens: list[bytes], count: int, read: Callable[[bytes], Optional[int]], message: bytes
) -> tuple[bytes, int, bool]:
    """
    The C{<key> <number> [noreply]} of C{incr}, C{decr} and C{touch}.
    """
    _wantTokens(count, 4, 5)
    noreply = saysNoreply(tokens, count)
    key = tokens[1]
    if len(key) > KEY_MAX_LENGTH:
        raise ClientError(BAD_FORMAT, noreply)
    number = read(tokens[2])
    if number is None:
        raise ClientError(message, noreply)
    return key, number, noreply


def _parseArithmetic(verb: bytes, tokens: list[bytes], count: int) -> ArithmeticRequest:
    key, delta, noreply = _keyAndNumber(tokens, count, strtoull, BAD_DELTA)
    return ArithmeticRequest(key, delta, verb == b"incr", noreply)


def _parseTouch(verb: bytes, tokens: list[bytes], count: int) -> TouchRequest:
    key, exptime, noreply = _keyAndNumber(tokens, count, strtol, BAD_EXPTIME)
    return TouchRequest(key, exptime, noreply)


def _parseFlush(verb: bytes, tokens: list[bytes], count: int) -> FlushRequest:
    if not 2 <= count <= 4:
        raise UnknownCommand()
    noreply = saysNoreply(tokens, count)
    exptime: int | None = 0
    if count != (3 if noreply else 2):
        exptime = strtol(tokens[1])
    return FlushRequest(exptime, noreply)


def _parseVerbosity(verb: bytes, tokens: list[bytes], count: int) -> VerbosityRequest:
    _wantTokens(count, 3, 4)
    noreply = saysNoreply(tokens, count)
    level = strtoul(tokens[1])
    if level is None:
        raise ClientError(BAD_FORMAT, noreply)
    return VerbosityRequest(level, noreply)


def _parseMemoryLimit(verb: bytes, tokens: list[bytes], count: int) -> MemoryLimitRequest:
    _wantTokens(count, 3, 4)
    noreply = saysNoreply(tokens, count)
    megabytes = strtoul(tokens[1])
    if megabytes is None:
        raise UnknownCommand(noreply=noreply)
    return MemoryLimitRequest(megabytes, noreply)


def _parseStats(verb: bytes, tokens: list[bytes], count: int) -> StatsRequest:
    return StatsRequest(tuple(tokens[1 : count - 1]))


def _parseShutdown(verb: bytes, tokens: list[bytes], count: int) -> ShutdownRequest:
    if count == 2:
        return ShutdownRequest(None)
    return ShutdownRequest(tokens[1] if count == 3 else b"")


# The event classes C{watch} takes.
WATCH_EVENTS = frozenset(
    [
        b"rawcmds",
        b"evictions",
        b"fetchers",
        b"mutations",
        b"sysevents",
        b"connevents",
        b"proxyreqs",
        b"proxyevents",
        b"proxyuser",
    ]
)


def _parseWatch(verb: bytes, tokens: list[bytes], count: int) -> WatchRequest:
    # A trailing noreply is not an event class, so it silences an ERROR.
    events = tuple(tokens[1 : count - 1])
    for event in events:
        if event not in WATCH_EVENTS:
            raise UnknownCommand(noreply=saysNoreply(tokens, count))
    return WatchRequest(events)


EARLY_BRANCHES = frozenset(b"gsacidt")

# Verbs memcached answers with C{ERROR} whatever follows (never the HTTP
# hang-up); C{lru} and C{extstore} only with too few words (see
# L{myproto.wire.tuning}, which parses them).
UNSUPPORTED_VERBS = frozenset([b"lru", b"extstore"])



@dataclass
class AuthenticationRequest(BaseRequest):
    """
    Before a client authenticates (C{-Y}), every line must be a C{set} whose
    data block is C{"username password"}; key, flags and exptime are ignored.
    """

    size: int
    noreply: bool = False


def parseAuthentication(line: bytes) -> AuthenticationRequest:
    """
    Parse a command line from a client that has not authenticated yet.

    @raise ClientError: C{unauthenticated}, for anything but a C{set}.
    @raise CloseConnection: for a token too large for memcached's buffer.
    """
    tokens, count = tokenize(line.split(b"\0", 1)[0])
    size = strtoul(tokens[4]) if count >= 6 and tokens[0] == b"set" else None
    if size is None:
        raise ClientError(UNAUTHENTICATED)
    if size + 2 > READ_BUFFER_SIZE:
        # memcached waits for the token inside its read buffer, so a larger
        # one can never arrive; it drops the client, and so do we rather
        # than hold an unauthenticated client's bytes.
        raise CloseConnection()
    return AuthenticationRequest(size)


def parseCredentials(payload: bytes) -> tuple[bytes, bytes]:
    """
    Split an authentication data block into username and password.

    @raise ClientError: when it is not two space-separated tokens.
    """
    tokens, count = tokenize(payload.split(b"\0", 1)[0])
    if count < 3:
        raise ClientError(BAD_AUTH_FORMAT)
    return tokens[0], tokens[1]


PARSERS: dict[bytes, Callable[[bytes, list[bytes], int], Request]] = {
    b"get": _parseRetrieval,
    b"gets": _parseRetrieval,
    b"gat": _parseRetrieval,
    b"gats": _parseRetrieval,
    b"bget": _parseRetrieval,
    b"set": _parseStorage,
    b"add": _parseStorage,
    b"replace": _parseStorage,
    b"append": _parseStorage,
    b"prepend": _parseStorage,
    b"cas": _parseStorage,
    b"delete": _parseDelete,
    b"incr": _parseArithmetic,
    b"decr": _parseArithmetic,
    b"touch": _parseTouch,
    b"stats": _parseStats,
    b"flush_all": _parseFlush,
    b"version": lambda verb, tokens, count: VersionRequest(),
    b"quit": lambda verb, tokens, count: QuitRequest(),
    b"verbosity": _parseVerbosity,
    b"shutdown": _parseShutdown,
    b"mn": lambda verb, tokens, count: NoOpRequest(),
    b"cache_memlimit": _parseMemoryLimit,
    b"watch": _parseWatch,
    b"lru_crawler": lambda verb, tokens, count: LruCrawlerRequest(tuple(tokens[1 : count - 1])),
    b"refresh_certs": lambda verb, tokens, count: RefreshCertificatesRequest(
        saysNoreply(tokens, count)
    ),
}
