"""
One result, several renderings.

The commands carry out each semantic once and say what happened as an
L{Outcome}, the way memcached's C{store_item} returns one C{store_item_type}
for every protocol.  The tables here give the words each protocol uses for
it: the classic reply line, the meta code, the binary status, and the
status C{watch} logs.
"""

from __future__ import annotations

from enum import Enum, auto

from myproto.wire import binary, classic, meta


class Outcome(Enum):
    """
    What a storage, deletion or touch did.
    """

    # Members are singletons, so identity is their hash; Enum's own
    # __hash__ is Python code, and tables below are read for every command.
    __hash__ = object.__hash__

    STORED = auto()
    NOT_STORED = auto()
    EXISTS = auto()
    NOT_FOUND = auto()
    DELETED = auto()
    TOUCHED = auto()
    TOO_LARGE = auto()
    NO_MEMORY = auto()


STORED = Outcome.STORED
NOT_STORED = Outcome.NOT_STORED
EXISTS = Outcome.EXISTS
NOT_FOUND = Outcome.NOT_FOUND
DELETED = Outcome.DELETED
TOUCHED = Outcome.TOUCHED
TOO_LARGE = Outcome.TOO_LARGE
NO_MEMORY = Outcome.NO_MEMORY

# The classic protocol's reply lines.
CLASSIC = {
    STORED: classic.STORED,
    NOT_STORED: classic.NOT_STORED,
    EXISTS: classic.EXISTS,
    NOT_FOUND: classic.NOT_FOUND,
    DELETED: classic.DELETED,
    TOUCHED: classic.TOUCHED,
}

# The meta protocol's codes: every success is C{HD}.
META = {
    STORED: meta.HEADER,
    NOT_STORED: meta.NOT_STORED,
    EXISTS: meta.EXISTS,
    NOT_FOUND: meta.NOT_FOUND,
    DELETED: meta.HEADER,
    TOUCHED: meta.HEADER,
}

# The binary protocol's status codes.  memcached words a refusal by
# command: C{ADD} finds the key there, C{REPLACE} finds it missing, and
# only the others say "not stored" (see L{binaryStatus}).
BINARY = {
    STORED: binary.SUCCESS,
    NOT_STORED: binary.NOT_STORED,
    EXISTS: binary.KEY_EEXISTS,
    NOT_FOUND: binary.KEY_ENOENT,
    DELETED: binary.SUCCESS,
    TOUCHED: binary.SUCCESS,
    TOO_LARGE: binary.E2BIG,
    NO_MEMORY: binary.ENOMEM,
}

# The C{status} of memcached's C{item_store} log line (C{watch mutations}).
WATCH = {
    STORED: b"stored",
    NOT_STORED: b"not_stored",
    EXISTS: b"exists",
    NOT_FOUND: b"not_found",
    TOO_LARGE: b"too_large",
    NO_MEMORY: b"no_memory",
}
