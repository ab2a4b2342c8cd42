"""
memcached's binary protocol: the 24-byte header, the opcodes and status
codes of C{protocol_binary.h}, requests parsed into L{BinaryRequest}, and
responses rendered to bytes.

A request is a header, then C{extrasLength} bytes of extras, C{keyLength}
bytes of key, and the rest of C{bodyLength} as the value.  As memcached
does, a request is parsed once its header, extras and key have arrived;
the value, which only storage commands have, is read (or swallowed) after
the command has looked at the rest.  Nothing here does I/O or touches the
store.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

REQUEST_MAGIC = 0x80
RESPONSE_MAGIC = 0x81
HEADER_LENGTH = 24

# magic, opcode, key length, extras length, data type, vbucket or status,
# total body length, opaque, CAS.
HEADER = struct.Struct(">BBHBBHIIQ")

# Opcodes.
GET = 0x00
SET = 0x01
ADD = 0x02
REPLACE = 0x03
DELETE = 0x04
INCREMENT = 0x05
DECREMENT = 0x06
QUIT = 0x07
FLUSH = 0x08
GETQ = 0x09
NOOP = 0x0A
VERSION = 0x0B
GETK = 0x0C
GETKQ = 0x0D
APPEND = 0x0E
PREPEND = 0x0F
STAT = 0x10
SETQ = 0x11
ADDQ = 0x12
REPLACEQ = 0x13
DELETEQ = 0x14
INCREMENTQ = 0x15
DECREMENTQ = 0x16
QUITQ = 0x17
FLUSHQ = 0x18
APPENDQ = 0x19
PREPENDQ = 0x1A
VERBOSITY = 0x1B
TOUCH = 0x1C
GAT = 0x1D
GATQ = 0x1E
SASL_LIST_MECHS = 0x20
SASL_AUTH = 0x21
SASL_STEP = 0x22
GATK = 0x23
GATKQ = 0x24

# The quiet opcodes, by the opcode whose meaning they share.
QUIET = {
    GETQ: GET,
    GETKQ: GETK,
    SETQ: SET,
    ADDQ: ADD,
    REPLACEQ: REPLACE,
    DELETEQ: DELETE,
    INCREMENTQ: INCREMENT,
    DECREMENTQ: DECREMENT,
    QUITQ: QUIT,
    FLUSHQ: FLUSH,
    APPENDQ: APPEND,
    PREPENDQ: PREPEND,
    GATQ: GAT,
    GATKQ: GATK,
}

# Response status codes.
SUCCESS = 0x0000
KEY_ENOENT = 0x0001
KEY_EEXISTS = 0x0002
E2BIG = 0x0003
EINVAL = 0x0004
NOT_STORED = 0x0005
DELTA_BADVAL = 0x0006
AUTH_ERROR = 0x0020
AUTH_CONTINUE = 0x0021
UNKNOWN_COMMAND = 0x0081
ENOMEM = 0x0082

# The body memcached's write_bin_error sends with each error status.
ERROR_MESSAGES = {
    KEY_ENOENT: b"Not found",
    KEY_EEXISTS: b"Data exists for key.",
    E2BIG: b"Too large.",
    EINVAL: b"Invalid arguments",
    NOT_STORED: b"Not stored.",
    DELTA_BADVAL: b"Non-numeric server-side value for incr or decr",
    AUTH_ERROR: b"Auth failure.",
    UNKNOWN_COMMAND: b"Unknown command",
    ENOMEM: b"Out of memory",
}

# SASL (-S): the mechanisms listed (memcached's Cyrus SASL with
# "mech_list: plain"), the body of a success, and memcached's
# MAX_SASL_MECH_LEN.
SASL_MECHANISMS = b"PLAIN"
SASL_AUTHENTICATED = b"Authenticated"
SASL_MECHANISM_MAX_LENGTH = 32

# memcached's message when a storage command finds no memory (its
# out_of_memory() strips "SERVER_ERROR " from the text reply).
STORE_NO_MEMORY = b"Out of memory allocating item"

# Extras layouts.
STORAGE_EXTRAS = struct.Struct(">II")  # flags, expiration
ARITHMETIC_EXTRAS = struct.Struct(">QQI")  # delta, initial value, expiration
EXPIRATION_EXTRAS = struct.Struct(">I")  # touch, GAT, flush
FLAGS_EXTRAS = struct.Struct(">I")  # in GET and TOUCH responses
COUNTER_VALUE = struct.Struct(">Q")  # the body of an arithmetic response

# An arithmetic request's expiration that means "do not create the counter".
NO_CREATE = 0xFFFFFFFF


@dataclass
class BinaryRequest:
    """
    A binary request whose header, extras and key have arrived.

    @ivar quiet: whether the opcode is a quiet one; C{command} is then the
        opcode whose meaning it shares.
    @ivar valueLength: the bytes of the body after extras and key.
    """

    opcode: int
    command: int
    quiet: bool
    keyLength: int
    extrasLength: int
    bodyLength: int
    opaque: int
    cas: int
    extras: bytes
    key: bytes

    @property
    def valueLength(self) -> int:
        return self.bodyLength - self.keyLength - self.extrasLength


def headerLengths(buffer: bytes, position: int) -> int | None:
    """
    Read how much of a request must arrive before it can be parsed.

    @param buffer: holds at least L{HEADER_LENGTH} bytes from C{position}.
    @return: the header, extras and key lengths together, or L{None} when
        the magic byte is not a request's (memcached closes the connection).
    """
    if buffer[position] != REQUEST_MAGIC:
        return None
    keyLength = (buffer[position + 2] << 8) | buffer[position + 3]
    return HEADER_LENGTH + buffer[position + 4] + keyLength


def parseRequest(buffer: bytes, position: int) -> BinaryRequest:
    """
    Parse a request whose header, extras and key are in C{buffer} from
    C{position} (see L{headerLengths}).
    """
    (_, opcode, keyLength, extrasLength, _, _, bodyLength, opaque, cas) = HEADER.unpack_from(
        buffer, position
    )
    start = position + HEADER_LENGTH
    extras = buffer[start : start + extrasLength]
    key = buffer[start + extrasLength : start + extrasLength + keyLength]
    command = QUIET.get(opcode, opcode)
    return BinaryRequest(
        opcode,
        command,
        command != opcode,
        keyLength,
        extrasLength,
        bodyLength,
        opaque,
        cas,
        extras,
        key,
    )


def response(
    request: BinaryRequest,
    status: int = SUCCESS,
    cas: int = 0,
    extras: bytes = b"",
    key: bytes = b"",
    valueLength: int = 0,
) -> bytes:
    """
    Render a response's header, extras and key; C{valueLength} bytes of
    value are to follow it (the caller adds them, uncopied).
    """
    return (
        HEADER.pack(
            RESPONSE_MAGIC,
            request.opcode,
            len(key),
            len(extras),
            0,
            status,
            len(extras) + len(key) + valueLength,
            request.opaque,
            cas,
        )
        + extras
        + key
    )


def writtenAtOnce(rendered: bytes) -> bool:
    """
    Whether memcached writes its replies as soon as it has made this one
    (its C{conn_mwrite}): after a NOOP, and after an error it sends with
    C{write_bin_error} (any error but a GETK or GATK miss).  Replies not yet
    written when it hangs up on a bad magic byte are lost.
    """
    status = rendered[6] or rendered[7]
    opcode = rendered[1]
    if status:
        return not (status == KEY_ENOENT and opcode in (GETK, GATK))
    return opcode == NOOP


def errorResponse(request: BinaryRequest, status: int) -> bytes:
    """
    Render an error status with memcached's message for it.
    """
    message = ERROR_MESSAGES[status]
    return response(request, status, valueLength=len(message)) + message
