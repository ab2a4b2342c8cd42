"""
SASL on the binary protocol (C{-S}), as memcached 1.6.18 answers it with
Cyrus SASL offering only C{PLAIN}: the gate every other command passes
first, and SASL_LIST_MECHS, SASL_AUTH and SASL_STEP.

memcached keeps a Cyrus SASL context per connection; what of it shows on
the wire is kept in L{SaslSession}.  Each of these was read from
C{proto_bin.c} and checked against memcached run with C{-S}:

  - Until a client authenticates, every command but VERSION and the three
    SASL ones gets C{Auth failure.} (status 0x20), and the connection is
    closed; quiet commands too.
  - SASL_LIST_MECHS, and every SASL_AUTH or SASL_STEP, first forget an
    earlier authentication.
  - An AUTH without data answers AUTH_CONTINUE (0x21), empty, and the
    credentials come in a STEP.  A STEP counts only after an AUTH that
    succeeded or asked to continue.
  - Once an exchange has succeeded, the context is spent: any further
    check fails (an AUTH without data still asks to continue).
  - Successes count in C{auth_cmds}, failures in C{auth_cmds} and
    C{auth_errors}; a continuation in neither.
"""

from __future__ import annotations

from myproto.auth import checkPlain
from myproto.cache import Cache
from myproto.commands.binary import Next
from myproto.store import SLAB_SIZES, itemSize
from myproto.wire import binary
from myproto.wire.binary import (
    SASL_AUTHENTICATED,
    SASL_MECHANISM_MAX_LENGTH,
    SASL_MECHANISMS,
    BinaryRequest,
    errorResponse,
    response,
)
from myproto.wire.classic import KEY_MAX_LENGTH

# What a client may send before it authenticates.
_OPEN = frozenset([binary.SASL_LIST_MECHS, binary.SASL_AUTH, binary.SASL_STEP, binary.VERSION])


class SaslSession:
    """
    One connection's SASL state.

    @ivar authenticated: whether the client may send other commands.
    @ivar started: whether a SASL_STEP may continue an exchange (memcached's
        C{sasl_started}).
    @ivar spent: whether an exchange has succeeded (Cyrus SASL's
        C{doneflag}): no credentials are checked again.
    """

    __slots__ = ("authenticated", "started", "spent")

    def __init__(self) -> None:
        self.authenticated = False
        self.started = False
        self.spent = False


def carryOut(
    request: BinaryRequest, cache: Cache, session: SaslSession, replies: list[bytes]
) -> tuple[Next, int] | None:
    """
    What SASL does with a request whose header, extras and key have
    arrived, before L{myproto.commands.binary.carryOut} sees it.

    @return: what to read next, and how many bytes of it; or L{None} when
        the request is the binary commands' to carry out.
    """
    if request.keyLength + request.extrasLength > request.bodyLength:
        # Refused before the gate, as memcached refuses it.
        return None
    opcode = request.opcode
    if opcode not in _OPEN:
        if session.authenticated:
            return None
        replies.append(errorResponse(request, binary.AUTH_ERROR))
        return Next.CLOSE, 0
    if opcode == binary.VERSION or request.keyLength > KEY_MAX_LENGTH:
        return None
    if opcode == binary.SASL_LIST_MECHS:
        if request.keyLength or request.extrasLength or request.bodyLength:
            return _invalid(request, replies)
        session.authenticated = False
        replies.append(response(request, valueLength=len(SASL_MECHANISMS)) + SASL_MECHANISMS)
        return Next.COMMAND, 0
    if request.extrasLength or not request.keyLength:
        return _invalid(request, replies)
    size = request.valueLength
    if request.keyLength > SASL_MECHANISM_MAX_LENGTH:
        replies.append(errorResponse(request, binary.EINVAL))
        return Next.SWALLOW, size
    # memcached reads the data into an item, which may not be chunked.
    limit = min(cache.settings.maxItemSize, SLAB_SIZES[-1])
    if itemSize(request.keyLength, size, 0, cache.settings.useCas) > limit:
        replies.append(errorResponse(request, binary.ENOMEM))
        return Next.SWALLOW, size
    return Next.VALUE, size


def _invalid(request: BinaryRequest, replies: list[bytes]) -> tuple[Next, int]:
    replies.append(errorResponse(request, binary.EINVAL))
    return Next.CLOSE, 0


def complete(
    request: BinaryRequest, data: bytes, cache: Cache, session: SaslSession, replies: list[bytes]
) -> str | None:
    """
    Carry out a SASL_AUTH or SASL_STEP whose data has arrived.

    @return: why authentication failed, for the log (never the password),
        or L{None}.
    """
    session.authenticated = False
    if request.opcode == binary.SASL_AUTH:
        # memcached hands Cyrus the key as a C string.
        mechanism = request.key.split(b"\0", 1)[0]
        if mechanism.upper() != SASL_MECHANISMS:
            failure: str | None = "unknown SASL mechanism"
        elif not data:
            session.started = True
            replies.append(response(request, binary.AUTH_CONTINUE))
            return None
        else:
            failure = _checkPlain(cache, session, data)
        session.started = failure is None
    elif not session.started:
        failure = "SASL step without a start"
    else:
        failure = _checkPlain(cache, session, data)
    stats = cache.stats
    stats.authCmds += 1
    if failure is None:
        session.authenticated = True
        replies.append(response(request, valueLength=len(SASL_AUTHENTICATED)) + SASL_AUTHENTICATED)
    else:
        stats.authErrors += 1
        replies.append(errorResponse(request, binary.AUTH_ERROR))
    return failure


def _checkPlain(cache: Cache, session: SaslSession, message: bytes) -> str | None:
    """
    @return: why C{message} is refused, or L{None} if it is accepted.
    """
    if session.spent:
        return "SASL exchange already complete on this connection"
    if not message:
        return "empty SASL PLAIN message"
    accepted, username = checkPlain(cache.settings.saslCredentials or (), message)
    if not accepted:
        return "SASL PLAIN refused for user {!r}".format(username.decode("utf-8", "replace"))
    session.spent = True
    return None
