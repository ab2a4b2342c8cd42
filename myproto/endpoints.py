"""
From memcached's listening options to Twisted endpoint descriptions, and the
check that a description can be served.

memcached says where to listen with C{-p}, C{-l}, C{-s}, C{-Z} and C{-o
ssl_*}; myproto serves endpoint descriptions (C{tcp:}, C{unix:}, C{mtls:}).
L{memcachedEndpoints} writes the descriptions those options mean, and
L{checkEndpoint} parses one the way serving it would (key and certificate
files read), so that a bad one is refused with the usage text at start-up.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Mapping

from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.task import Clock

DEFAULT_PORT = 11211  # memcached's -p
DEFAULT_INTERFACE = "127.0.0.1"  # memcached's is every interface

# memcached's -o keys that have a meaning here.
TLS_SUBOPTIONS = frozenset(
    ["ssl_chain_cert", "ssl_key", "ssl_ca_cert", "ssl_verify_mode", "ssl_min_version"]
)
# memcached's ssl_verify_mode numbers as the mtls: endpoint's verify= words;
# 3 (verify once) is 2 here: each connection is verified at its handshake.
VERIFY_MODES = {"0": "none", "1": "optional", "2": "require", "3": "require"}
# memcached's ssl_min_version numbers; 0 and 1 (TLS 1.0, 1.1) are not offered.
MINIMUM_VERSIONS = {"2": "1.2", "3": "1.3"}


@dataclass(frozen=True)
class Interface:
    """
    One entry of memcached's C{-l} list.

    @ivar host: an IP address.
    @ivar port: the port it gives, or L{None} for C{-p}'s.
    @ivar tls: L{False} for memcached's C{notls:} prefix.
    """

    host: str
    port: int | None = None
    tls: bool = True


def _address(text: str) -> str | None:
    if text == "localhost":
        return DEFAULT_INTERFACE
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def parseInterfaces(text: str) -> list[Interface] | None:
    """
    Read memcached's C{-l} list: C{ADDRESS}, C{ADDRESS:PORT},
    C{[IPV6]:PORT}, each perhaps with a C{notls:} prefix, comma-separated.

    @return: the interfaces, or L{None} if C{text} is not such a list (it is
        then an endpoint description).
    """
    interfaces = []
    for item in text.split(","):
        item = item.strip()
        tls = not item.startswith("notls:")
        if not tls:
            item = item[len("notls:") :]
        port: str | None = None
        if item.startswith("["):
            host, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                return None
            port = rest[1:] if rest else None
        elif item.count(":") == 1:
            host, port = item.split(":")
        else:
            host = item
        address = _address(host)
        if address is None or (port is not None and not port.isdigit()):
            return None
        if port is not None and int(port) > 65535:
            return None
        interfaces.append(Interface(address, None if port is None else int(port), tls))
    return interfaces


def _tlsKeywords(tls: Mapping[str, str]) -> str:
    """
    Turn memcached's C{-o ssl_*} keys into the C{mtls:} endpoint's keywords.

    @raise ValueError: for a missing certificate or a value memcached's
        options do not have, or one not served here.
    """
    chain = tls.get("ssl_chain_cert")
    if not chain:
        raise ValueError("-Z needs -o ssl_chain_cert=FILE (and ssl_key=FILE)")
    parts = [
        "privateKey=" + quoteStringArgument(tls.get("ssl_key") or chain),
        "certKey=" + quoteStringArgument(chain),
    ]
    verify = VERIFY_MODES.get(tls.get("ssl_verify_mode", "0"))
    if verify is None:
        raise ValueError("ssl_verify_mode must be 0, 1, 2 or 3")
    caCerts = tls.get("ssl_ca_cert")
    if verify != "none" and not caCerts:
        raise ValueError("ssl_verify_mode above 0 needs -o ssl_ca_cert=FILE")
    if verify != "none" and caCerts:
        parts += ["caCerts=" + quoteStringArgument(caCerts), "verify=" + verify]
    minimum = tls.get("ssl_min_version")
    if minimum is not None:
        if minimum not in MINIMUM_VERSIONS:
            raise ValueError(
                "ssl_min_version must be 2 (TLS 1.2) or 3 (TLS 1.3); older"
                " versions are not offered"
            )
        parts.append("minimumVersion=" + MINIMUM_VERSIONS[minimum])
    return ":".join(parts)


def memcachedEndpoints(config: Mapping[str, Any]) -> list[str]:
    """
    The endpoint descriptions memcached's C{-p}, C{-l}, C{-s}, C{-Z} and
    C{-o ssl_*} give (and C{-U}, whose port TCP takes too when neither
    C{-p} nor C{--listen} names one, as in memcached).

    As in memcached, C{-s} serves the Unix socket alone; C{-p 0} turns the
    TCP port off (an interface's own C{:PORT} still counts, C{:0} being a
    port the system picks); C{-Z} makes each TCP listener TLS (an
    C{mtls:} endpoint, so C{refresh_certs} works) but the C{notls:} ones.
    Unlike memcached, the interface is 127.0.0.1 when no C{-l} gives one.

    @param config: L{Options}' keys: C{port}, C{interfaces} (C{-l} lists as
        typed), C{unix-socket}, C{enable-ssl}, C{tls} (the C{-o ssl_*}
        keys).

    @return: the descriptions, without C{backlog=} or C{mode=} (see
        L{myproto.config.withListenDefaults}); none if no such option was
        given.

    @raise ValueError: for a bad interface list or TLS option.
    """
    socket = config.get("unix-socket")
    if socket:
        return ["unix:" + quoteStringArgument(socket)]
    port = config.get("port")
    if port is None and int(config.get("udp-port") or 0) and not config.get("listen"):
        # memcached: -U without -p moves the TCP port to the UDP one.
        port = config.get("udp-port")
    lists = list(config.get("interfaces") or ())
    if port is None and not lists and not config.get("enable-ssl"):
        return []
    interfaces: list[Interface] = []
    for text in lists:
        parsed = parseInterfaces(text)
        if parsed is None:
            raise ValueError("-l {}: not a list of IP addresses".format(text))
        interfaces += parsed
    interfaces = interfaces or [Interface(DEFAULT_INTERFACE)]
    tls = _tlsKeywords(config.get("tls") or {}) if config.get("enable-ssl") else None
    port = DEFAULT_PORT if port is None else int(port)
    descriptions = []
    for interface in interfaces:
        number = port if interface.port is None else interface.port
        if interface.port is None and number == 0:
            continue
        if number == -1:
            # memcached's -p -1: a port the system picks.
            number = 0
        where = "{}:interface={}".format(number, quoteStringArgument(interface.host))
        if tls is not None and interface.tls:
            descriptions.append("mtls:{}:{}".format(where, tls))
        else:
            descriptions.append("tcp:" + where)
    return descriptions


def checkEndpoint(description: str, shown: str | None = None) -> None:
    """
    Parse an endpoint description as serving it would, its certificate and
    key files read, without listening.

    @param shown: the description as the user gave it, for the message.

    @raise ValueError: saying why it cannot be served.
    """
    try:
        # A Clock is enough: parsing only keeps the reactor (and mtls: asks
        # it the time).
        serverFromString(Clock(), description)
    except Exception as e:
        reason = str(e) or type(e).__name__
        if reason.startswith("Unknown endpoint type"):
            reason += " (nor is it a list of IP addresses)"
        raise ValueError(
            "Cannot serve on {}: {}".format(shown or description, reason)
        ) from None
