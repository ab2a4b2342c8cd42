"""
memcached's ASCII authentication and SASL PLAIN: a file of C{username:password}
lines, and the checks of a C{"username password"} token and of a PLAIN
message against it.
"""

from __future__ import annotations

import hmac
from typing import Iterable

# memcached reads each line of the file into a buffer of this size.
MAX_ENTRY_LENGTH = 256


class AuthFileError(ValueError):
    """
    The authentication file cannot be used.
    """


def parseAuthFile(lines: Iterable[bytes]) -> tuple[tuple[bytes, bytes], ...]:
    """
    Read C{username:password} entries, one per line, as memcached's C{-Y}.

    @param lines: the file's lines.
    @return: the C{(username, password)} pairs.
    @raise AuthFileError: for a line without a colon or longer than memcached
        accepts, or a file with no entries.
    """
    entries = []
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        if len(raw) >= MAX_ENTRY_LENGTH:
            raise AuthFileError("line %d is longer than %d bytes" % (number, MAX_ENTRY_LENGTH - 1))
        username, colon, password = line.partition(b":")
        if not colon or not username:
            raise AuthFileError("line %d is not username:password" % (number,))
        entries.append((username, password))
    if not entries:
        raise AuthFileError("no username:password entries")
    return tuple(entries)


def checkCredentials(
    credentials: Iterable[tuple[bytes, bytes]], username: bytes, password: bytes
) -> bool:
    """
    Whether a username and password are among the accepted pairs.

    Every entry is compared in constant time, so the time taken does not
    reveal how much of a guess was right.

    @return: L{True} if the pair is accepted.
    """
    accepted = False
    for knownUser, knownPassword in credentials:
        userMatches = hmac.compare_digest(username, knownUser)
        passwordMatches = hmac.compare_digest(password, knownPassword)
        accepted |= userMatches & passwordMatches
    return accepted


def checkPlain(credentials: Iterable[tuple[bytes, bytes]], message: bytes) -> tuple[bool, bytes]:
    """
    Check a SASL C{PLAIN} message (RFC 4616): C{authzid NUL authcid NUL
    password}, as Cyrus SASL's C{PLAIN} does for memcached: the password
    holds no NUL, and an authorization identity, if any, must be the
    authentication identity (no one may act for another).

    @return: whether it is accepted, and the username it names (for the
        log; never the password).
    """
    parts = message.split(b"\0")
    if len(parts) != 3:
        return False, b""
    authzid, username, password = parts
    # Every entry is compared whatever the shape of the message.
    accepted = checkCredentials(credentials, username, password)
    return accepted and authzid in (b"", username), username
