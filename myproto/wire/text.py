"""
One line of the text protocol, classic or meta, parsed into a request.
"""

from __future__ import annotations

from typing import Union

from myproto.errors import CloseConnection, UnknownCommand
from myproto.wire import classic, meta, tuning

TextRequest = Union[classic.Request, meta.MetaRequest]

_PARSERS = {**classic.PARSERS, **tuning.PARSERS}


def parseRequest(line: bytes) -> TextRequest:
    """
    Parse one command line (without its line ending).

    @param line: the bytes of the line.
    @return: the request.
    @raise ProtocolError: for a line memcached answers with an error.
    @raise CloseConnection: for a line after which memcached hangs up.
    """
    if 0 in line:
        # memcached's C string functions stop at the first NUL.  (Tested as
        # the int 0: a search for the byte string b"\0" takes ten times as
        # long.)
        line = line[: line.index(b"\0")]
    elif line[:4] == b"set ":
        request = classic.parsePlainSet(line)
        if request is not None:
            return request
    tokens, count = classic.tokenize(line)
    if count < 2 or len(tokens[0]) < 2:
        raise UnknownCommand()
    verb = tokens[0]
    parser = _PARSERS.get(verb)
    if parser is not None:
        return parser(verb, tokens, count)
    if verb[0] == 0x6D and len(verb) == 2:
        return meta.parseMetaRequest(verb, tokens, count)
    if verb in classic.UNSUPPORTED_VERBS:
        raise UnknownCommand()
    # memcached hangs up on what looks like HTTP, but only in its last
    # dispatch branch, which verbs starting with these letters never reach.
    if verb[0] not in classic.EARLY_BRANCHES and tokens[count - 2].startswith(b"HTTP/"):
        raise CloseConnection()
    raise UnknownCommand()
