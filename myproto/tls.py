"""
Serving over TLS: the C{mtls:} endpoint for mutual TLS, and its certificates.

Twisted's C{ssl:} endpoint serves server-authenticated TLS but cannot ask
clients for certificates. The C{mtls:} endpoint (found by Twisted through
C{twisted/plugins/myproto_endpoints.py}) can::

    mtls:11212:interface=127.0.0.1:privateKey=key.pem:certKey=cert.pem:caCerts=ca.pem

It is not called C{tls:} because recent Twisted releases have a C{tls:}
server endpoint of their own (a directory of PEM files chosen by SNI, and no
client certificates), and Twisted's own plugins are always found first.

With C{caCerts} a client must present a certificate signed by one of those
CAs (C{verify=require}, the default then) or may present one
(C{verify=optional}); without, or with C{verify=none}, none is asked for.
The handshake must finish within C{handshakeTimeout} seconds (default 10; 0
is never), the lowest TLS version accepted is C{minimumVersion} (C{1.2}, the
default, or C{1.3}), and C{backlog} is as for C{ssl:}.

The key, certificate (chain) and CA files are read when the endpoint is
parsed and again by L{ServerCertificates.reload} (memcached's
C{refresh_certs}, or SIGHUP), never per connection: each load builds a new
OpenSSL context that later handshakes use, while open connections keep the
one they started with. A reload that fails keeps the old context.

L{myproto.certificates} makes a self-signed key and certificate to try the
server out with.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.interfaces import (
    IDelayedCall,
    IListeningPort,
    IOpenSSLServerConnectionCreator,
    IProtocolFactory,
    IReactorTime,
    ISSLTransport,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
    ITransport,
)
from twisted.internet.protocol import connectionDone
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.plugin import IPlugin
from twisted.protocols.tls import BufferingTLSTransport, TLSMemoryBIOFactory
from twisted.python.failure import Failure
from zope.interface import implementer

# The mtls: endpoint.

PREFIX = "mtls"

# What the server asks of a client's certificate, by the verify= word.
VERIFY_MODES = {
    "require": SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
    "optional": SSL.VERIFY_PEER,
    "none": SSL.VERIFY_NONE,
}

# The lowest protocol version accepted, by the minimumVersion= word.
MINIMUM_VERSIONS = {"1.2": TLSVersion.TLSv1_2, "1.3": TLSVersion.TLSv1_3}

DEFAULT_MINIMUM_VERSION = "1.2"  # memcached's ssl_min_version
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_BACKLOG = 50  # as Twisted's ssl: and tcp:

_OPTIONS = (
    "port",
    "interface",
    "backlog",
    "privateKey",
    "certKey",
    "caCerts",
    "verify",
    "minimumVersion",
    "handshakeTimeout",
)

# OpenSSL's words for the certificate verification errors a client most
# often meets; others are shown by number.
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    26: "unsupported certificate purpose",
}

# What the fatal TLS alerts a server sends in a handshake mean, by number.
_FATAL_ALERT = 2
_ALERTS = {
    40: "no protocol or cipher in common",
    42: "bad certificate",
    45: "certificate expired",
    46: "certificate unknown",
    48: "unknown CA",
    50: "malformed handshake message",
    70: "protocol version not accepted",
    116: "no client certificate",
}


class CertificateError(ValueError):
    """
    A key, certificate or CA file could not be loaded. The message is
    memcached's reply to a failed C{refresh_certs}: C{"Error loading the
    key: key.pem : error:..."}, on one line.
    """


def subjectOf(certificate: Any) -> str:
    """
    @param certificate: an C{OpenSSL.crypto.X509}.

    @return: its subject as an RFC 4514 string, e.g. C{"CN=client1,O=Example"}.
    """
    return str(certificate.to_cryptography().subject.rfc4514_string())


def _openSSLReason(error: Exception) -> str:
    """
    Describe an OpenSSL error as memcached does (without the error's number):
    C{"error:PEM routines::no start line"}.
    """
    reasons = error.args[0] if error.args else None
    if isinstance(reasons, list) and reasons and isinstance(reasons[0], tuple):
        return "error:" + ":".join(str(part) for part in reasons[0])
    return str(error) or type(error).__name__


def _load(describe: str, path: str, action: Any, *args: Any) -> None:
    """
    Have OpenSSL load a file, turning its failure into a L{CertificateError}.

    @param describe: how memcached's message starts, e.g. C{"Error loading
        the key: "}.
    @param path: the file.
    @param action: the L{SSL.Context} method that reads it.
    """
    try:
        # OpenSSL gives no words for a system error; Python does.
        with open(path, "rb"):
            pass
        action(*args)
    except OSError as e:
        reason = "error:system library::" + (e.strerror or str(e))
    except Exception as e:
        reason = _openSSLReason(e)
    else:
        return
    message = "{}{} : {}".format(describe, path, reason)
    raise CertificateError(" ".join(message.split()))


@implementer(IOpenSSLServerConnectionCreator)
class ServerCertificates:
    """
    The key, certificate and client CA files of one C{mtls:} endpoint, loaded
    into the OpenSSL context its new connections use.

    @ivar privateKey: the PEM private key file.
    @ivar certificate: the PEM certificate file, optionally followed by the
        chain up to the CA (memcached's C{ssl_chain_cert}).
    @ivar caCerts: the PEM file of CAs whose client certificates are
        accepted, or L{None}.
    @ivar verify: C{"require"}, C{"optional"} or C{"none"}.
    @ivar minimumVersion: C{"1.2"} or C{"1.3"}.
    @ivar refreshedAt: clock seconds of the last successful load.
    @ivar handshakeErrors: how many connections ended before their TLS
        handshake did (refused certificates and handshake timeouts included).
    """

    log = Logger()

    def __init__(
        self,
        privateKey: str,
        certificate: str,
        clock: IReactorTime,
        caCerts: str | None = None,
        verify: str = "none",
        minimumVersion: str = DEFAULT_MINIMUM_VERSION,
    ) -> None:
        """
        Load the files.

        @raise ValueError: if C{verify} or C{minimumVersion} is not one of
            the words above, or C{verify} asks for client certificates
            without C{caCerts} (or the other way round).
        @raise CertificateError: if a file cannot be loaded.
        """
        if verify not in VERIFY_MODES:
            raise ValueError(
                "{}: verify must be require, optional or none, not {!r}".format(
                    PREFIX, verify
                )
            )
        if minimumVersion not in MINIMUM_VERSIONS:
            raise ValueError(
                "{}: minimumVersion must be 1.2 or 1.3, not {!r}".format(
                    PREFIX, minimumVersion
                )
            )
        if verify != "none" and not caCerts:
            raise ValueError(
                "{}: verify={} needs caCerts=FILE, the CAs that sign client"
                " certificates".format(PREFIX, verify)
            )
        if verify == "none" and caCerts:
            raise ValueError(
                "{}: caCerts is for checking client certificates, which"
                " verify=none does not ask for".format(PREFIX)
            )
        self.privateKey = privateKey
        self.certificate = certificate
        self.caCerts = caCerts or None
        self.verify = verify
        self.minimumVersion = minimumVersion
        self.handshakeErrors = 0
        self._clock = clock
        self._context = self._makeContext()
        self.refreshedAt = clock.seconds()

    def reload(self) -> str | None:
        """
        Read the files again; new handshakes use them, open connections keep
        what they have. On failure nothing changes.

        @return: L{None} on success, else memcached's error line for
            C{refresh_certs} (without CRLF).
        """
        try:
            context = self._makeContext()
        except CertificateError as e:
            self.log.error(
                "Keeping the TLS certificate loaded before: {why}", why=str(e)
            )
            return str(e)
        self._context = context
        self.refreshedAt = self._clock.seconds()
        self.log.info(
            "Reloaded the TLS certificate {certificate} and key {key}"
            " (client CAs: {ca})",
            certificate=self.certificate,
            key=self.privateKey,
            ca=self.caCerts,
        )
        return None

    def serverConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        """
        A new connection, made from the context loaded last.
        """
        return SSL.Connection(self._context, None)

    def _makeContext(self) -> SSL.Context:
        """
        Build an OpenSSL context from Twisted's defaults (ciphers, options,
        the minimum version) and the files, checked in memcached's order
        and with its messages.

        @raise CertificateError: if a file cannot be loaded.
        """
        options = CertificateOptions(
            raiseMinimumTo=MINIMUM_VERSIONS[self.minimumVersion]
        )
        context = options.getContext()
        _load(
            "Error loading the certificate chain: ",
            self.certificate,
            context.use_certificate_chain_file,
            self.certificate,
        )
        _load(
            "Error loading the key: ",
            self.privateKey,
            context.use_privatekey_file,
            self.privateKey,
        )
        try:
            context.check_privatekey()
        except SSL.Error as e:
            raise CertificateError(
                "Error validating the certificate: " + _openSSLReason(e)
            ) from None
        if self.caCerts is not None:
            _load(
                "Error loading the CA certificate: ",
                self.caCerts,
                context.load_verify_locations,
                self.caCerts,
            )
            # Tell clients which CAs to pick a certificate from.
            _load(
                "Error loading the CA certificate: ",
                self.caCerts,
                context.load_client_ca,
                os.fsencode(self.caCerts),
            )
        context.set_verify(VERIFY_MODES[self.verify], _verifyCallback)
        context.set_info_callback(_infoCallback)
        return context


def _verifyCallback(
    connection: SSL.Connection, certificate: Any, error: int, depth: int, ok: int
) -> bool:
    """
    OpenSSL's verdict on each certificate a client presents, kept as it is;
    the first refusal is noted for the log.
    """
    transport = connection.get_app_data()
    if not ok and isinstance(transport, TLSServerTransport):
        transport.certificateRefused(certificate, error)
    return bool(ok)


def _infoCallback(connection: SSL.Connection, where: int, ret: int) -> None:
    """
    Tell a connection's TLS layer when its handshake is done, or why the
    server is ending it (the fatal alert it sends).
    """
    transport = connection.get_app_data()
    if not isinstance(transport, TLSServerTransport):
        return
    if where & SSL.SSL_CB_HANDSHAKE_DONE:
        transport.handshakeDone()
    elif where & SSL.SSL_CB_WRITE_ALERT == SSL.SSL_CB_WRITE_ALERT:
        if ret >> 8 == _FATAL_ALERT:
            transport.alertSent(ret & 0xFF)


@implementer(ISSLTransport)
class TLSServerTransport(BufferingTLSTransport):
    """
    The TLS layer of one connection to a C{mtls:} endpoint. On top of
    Twisted's, it drops a client that does not finish its handshake in
    time, logs the client's certificate once, and counts the handshakes
    that fail.

    The protocol it carries gets it as its transport, so
    C{ISSLTransport(transport).getPeerCertificate()} is the client's
    certificate once the handshake is done.
    """

    factory: TLSServerFactory
    log = Logger()

    _deadline: IDelayedCall | None = None
    _secured = False
    _timedOut = False
    _refusal: str | None = None

    def makeConnection(self, transport: ITransport) -> None:
        timeout = self.factory.handshakeTimeout
        if timeout:
            self._deadline = self.factory.clock.callLater(
                timeout, self._handshakeTimedOut
            )
        super().makeConnection(transport)

    def handshakeDone(self) -> None:
        """
        The handshake succeeded: stop the clock and say who the client is.
        (TLS 1.3 can report this more than once.)
        """
        if self._secured:
            return
        self._secured = True
        self._cancelDeadline()
        if self.factory.certificates.verify == "none":
            return
        certificate = self.getPeerCertificate()
        if certificate is None:
            self.log.info(
                "TLS client {peer} presented no certificate", peer=self.getPeer()
            )
        else:
            self.log.info(
                "TLS client {peer} presented certificate {subject}",
                peer=self.getPeer(),
                subject=subjectOf(certificate),
            )

    def certificateRefused(self, certificate: Any, error: int) -> None:
        """
        OpenSSL refused a certificate the client presented.

        @param certificate: the certificate (an C{OpenSSL.crypto.X509}).
        @param error: OpenSSL's verification error number.
        """
        if self._refusal is None:
            self._refusal = "certificate {} refused: {}".format(
                subjectOf(certificate),
                _VERIFY_ERRORS.get(error, "verify error {}".format(error)),
            )

    def alertSent(self, description: int) -> None:
        """
        The server is ending the handshake with a fatal alert.

        @param description: the alert's number (RFC 8446, section 6).
        """
        if self._refusal is None:
            self._refusal = _ALERTS.get(description, "alert {}".format(description))

    def _handshakeTimedOut(self) -> None:
        self._deadline = None
        self._timedOut = True
        self.log.info(
            "Dropping {peer}: no TLS handshake within {timeout} seconds",
            peer=self.getPeer(),
            timeout=self.factory.handshakeTimeout,
        )
        self.abortConnection()

    def _cancelDeadline(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancelDeadline()
        if not self._secured:
            self.factory.certificates.handshakeErrors += 1
            if not self._timedOut:
                self.log.info(
                    "TLS handshake with {peer} failed{detail}",
                    peer=self.getPeer(),
                    detail=": " + self._refusal if self._refusal else "",
                )
        super().connectionLost(reason)


class TLSServerFactory(TLSMemoryBIOFactory):
    """
    Wraps a protocol factory's connections in L{TLSServerTransport}s.

    @ivar certificates: where the connections' OpenSSL contexts come from.
    @ivar clock: schedules the handshake deadline and write batching.
    @ivar handshakeTimeout: seconds a client has to finish its handshake;
        0 is forever.
    """

    protocol = TLSServerTransport

    def __init__(
        self,
        certificates: ServerCertificates,
        wrappedFactory: IProtocolFactory,
        clock: IReactorTime,
        handshakeTimeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(certificates, False, wrappedFactory, clock)
        self.certificates = certificates
        self.clock = clock
        self.handshakeTimeout = handshakeTimeout


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """
    TLS over TCP, with client certificates and certificates that reload:
    what a C{mtls:} description builds.

    @ivar certificates: the endpoint's files and counters.
    """

    def __init__(
        self,
        reactor: Any,
        port: int,
        certificates: ServerCertificates,
        backlog: int = DEFAULT_BACKLOG,
        interface: str = "",
        handshakeTimeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self._reactor = reactor
        self._port = port
        self._backlog = backlog
        self._interface = interface
        self.certificates = certificates
        self.handshakeTimeout = handshakeTimeout

    def listen(self, protocolFactory: IProtocolFactory) -> Deferred[IListeningPort]:
        """
        Listen on TCP, each connection wrapped in TLS.
        """
        factory = TLSServerFactory(
            self.certificates, protocolFactory, self._reactor, self.handshakeTimeout
        )
        endpoint = TCP4ServerEndpoint(
            self._reactor, self._port, self._backlog, self._interface
        )
        return endpoint.listen(factory)


def _integer(name: str, text: str, low: int, high: int) -> int:
    """
    Read a whole-number option, saying which one is wrong if it is.
    """
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ValueError(
            "{}: {} must be a whole number from {} to {}, not {!r}".format(
                PREFIX, name, low, high, text
            )
        )
    return value


def _seconds(name: str, text: str) -> float:
    """
    Read a duration option, saying which one is wrong if it is.
    """
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise ValueError(
            "{}: {} must be a number of seconds, 0 or more, not {!r}".format(
                PREFIX, name, text
            )
        )
    return value


def parseTLSEndpoint(
    reactor: Any, args: Sequence[str], options: Mapping[str, str]
) -> TLSServerEndpoint:
    """
    Build a L{TLSServerEndpoint} from a parsed C{mtls:} description, and load
    its files.

    @param reactor: what to listen with; also the clock.
    @param args: the positional parts (the port).
    @param options: the C{name=value} parts.

    @raise ValueError: naming the option at fault, or a L{CertificateError}
        if a file cannot be loaded.
    """
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ValueError(
            "{}: unknown option {}; the options are {}".format(
                PREFIX, ", ".join(unknown), ", ".join(_OPTIONS)
            )
        )
    ports = list(args) + ([options["port"]] if "port" in options else [])
    if len(ports) != 1:
        raise ValueError(
            "{}: give one port, as in mtls:11212:privateKey=KEY.pem".format(PREFIX)
        )
    port = _integer("port", ports[0], 0, 65535)
    backlog = _integer(
        "backlog", options.get("backlog", str(DEFAULT_BACKLOG)), 1, 65535
    )
    handshakeTimeout = _seconds(
        "handshakeTimeout",
        options.get("handshakeTimeout", str(DEFAULT_HANDSHAKE_TIMEOUT)),
    )
    privateKey = options.get("privateKey")
    if not privateKey:
        raise ValueError("{}: privateKey=FILE is required".format(PREFIX))
    caCerts = options.get("caCerts") or None
    certificates = ServerCertificates(
        privateKey,
        options.get("certKey") or privateKey,
        reactor,
        caCerts,
        options.get("verify", "require" if caCerts else "none"),
        options.get("minimumVersion", DEFAULT_MINIMUM_VERSION),
    )
    return TLSServerEndpoint(
        reactor,
        port,
        certificates,
        backlog,
        options.get("interface", ""),
        handshakeTimeout,
    )


@implementer(IPlugin, IStreamServerEndpointStringParser)
class TLSServerParser:
    """
    Parses C{mtls:} server endpoint descriptions (see this module's
    docstring); shipped as a plugin in C{twisted/plugins/myproto_endpoints.py}.
    """

    prefix = PREFIX

    def parseStreamServer(
        self, reactor: Any, *args: object, **kwargs: object
    ) -> IStreamServerEndpoint:
        return parseTLSEndpoint(
            reactor,
            [str(arg) for arg in args],
            {name: str(value) for name, value in kwargs.items()},
        )


class CertificateReloader:
    """
    The certificates of all of a server's C{mtls:} endpoints, reloaded
    together (by C{refresh_certs} or SIGHUP) and reported together in
    C{stats}.
    """

    def __init__(
        self, certificates: Sequence[ServerCertificates], clock: IReactorTime
    ) -> None:
        self._certificates = list(certificates)
        self._clock = clock

    def reload(self) -> str | None:
        """
        Reload every endpoint's files.

        @return: L{None} if all loaded, else the first error line.
        """
        errors = [error for error in (c.reload() for c in self._certificates) if error]
        return errors[0] if errors else None

    def stats(self) -> list[tuple[str, object]]:
        """
        @return: memcached's TLS lines of C{stats}: failed handshakes, and
            seconds since the oldest successful load.
        """
        now = self._clock.seconds()
        return [
            (
                "ssl_handshake_errors",
                sum(c.handshakeErrors for c in self._certificates),
            ),
            (
                "time_since_server_cert_refresh",
                int(now - min(c.refreshedAt for c in self._certificates)),
            ),
        ]
