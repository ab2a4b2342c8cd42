"""
Tests for mutual TLS: the C{mtls:} endpoint of L{myproto.tls}, certificate
reloading (C{refresh_certs} and SIGHUP) and the TLS handshake timeout.

Every certificate is made here: a CA, a server and a client certificate it
signs, and a client certificate from another CA. The handshake timeout and
the log lines are tested in memory, with a L{Clock} and L{iosim}; the rest
over real TLS connections on 127.0.0.1 (port 0), where the server always
closes first: after C{quit}, or by refusing the client.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IServiceCollection, loadApplication
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import (
    SSL4ClientEndpoint,
    TCP4ClientEndpoint,
    connectProtocol,
    quoteStringArgument,
    serverFromString,
)
from twisted.internet.error import ConnectionAborted
from twisted.internet.interfaces import IReactorCore, IStreamServerEndpointStringParser
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    PrivateCertificate,
    TLSVersion,
    optionsForClientTLS,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.plugin import getPlugins
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from myproto.commands.admin import generalStats
from myproto.config import ServerSettings
from myproto.protocol import CacheServerFactory, CacheServerProtocol
from myproto.store import MemoryStore
from myproto.service import ReloadCertificatesOnSignal
from myproto.tap import makeService
from myproto.tls import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    CertificateError,
    CertificateReloader,
    ServerCertificates,
    TLSServerEndpoint,
    TLSServerFactory,
    TLSServerParser,
)
from tests.helpers import TAC, SetEnvironment

CLIENT_SUBJECT = "CN=client1,O=myproto tests"
INTRUDER_SUBJECT = "CN=intruder,O=elsewhere"

SESSION = b"set k 0 0 2\r\nhi\r\nget k\r\nquit\r\n"
SESSION_REPLY = b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n"


# Certificates.


def _name(commonName: str, organization: str) -> x509.Name:
    # In the usual order, most general first, which RFC 4514 reverses.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, commonName),
        ]
    )


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class Authority:
    """
    A certificate authority made for one test, writing what it issues as
    PEM files.

    @ivar certFile: the CA's own certificate.
    """

    def __init__(self, directory: FilePath[str], organization: str) -> None:
        self.directory = directory
        if not directory.exists():
            directory.makedirs()
        self.organization = organization
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(organization + " CA", organization)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.BasicConstraints(ca=True, path_length=None), critical=True
            )
            .sign(self.key, hashes.SHA256())
        )
        self.certFile = directory.child(organization + "-ca.pem")
        self.certFile.setContent(self.pem())

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def trustRoot(self) -> Certificate:
        """
        @return: the CA, for a client's C{trustRoot}.
        """
        return Certificate.loadPEM(self.pem())

    def issue(
        self, commonName: str, fileName: str, server: bool = False
    ) -> tuple[FilePath[str], FilePath[str]]:
        """
        Make a key and a certificate for it signed by this CA; a server's
        names C{localhost} and 127.0.0.1.

        @return: the key file and the certificate file.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(commonName, self.organization))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.BasicConstraints(ca=False, path_length=None), critical=True
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName("localhost"),
                        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    ]
                ),
                critical=False,
            )
        certificate = builder.sign(self.key, hashes.SHA256())
        keyFile = self.directory.child(fileName + "-key.pem")
        certFile = self.directory.child(fileName + "-cert.pem")
        keyFile.setContent(_pem(key))
        certFile.setContent(certificate.public_bytes(serialization.Encoding.PEM))
        return keyFile, certFile


def privateCertificate(
    keyFile: FilePath[str], certFile: FilePath[str]
) -> PrivateCertificate:
    """
    @return: a client certificate for L{optionsForClientTLS}.
    """
    return PrivateCertificate.loadPEM(certFile.getContent() + keyFile.getContent())


def fingerprint(certificate: Any) -> bytes:
    """
    @param certificate: an C{OpenSSL.crypto.X509} or a PEM file.
    @return: the certificate's SHA-256 digest.
    """
    if isinstance(certificate, FilePath):
        loaded = x509.load_pem_x509_certificate(certificate.getContent())
    else:
        loaded = certificate.to_cryptography()
    return loaded.fingerprint(hashes.SHA256())


class Keys:
    """
    The files one test needs: a CA with a server and a client certificate,
    and a client certificate from another CA.
    """

    def __init__(self, directory: FilePath[str]) -> None:
        self.directory = directory
        self.ca = Authority(directory, "myproto tests")
        self.serverKey, self.serverCert = self.ca.issue(
            "localhost", "server", server=True
        )
        self.clientKey, self.clientCert = self.ca.issue("client1", "client")
        self.other = Authority(directory, "elsewhere")
        self.intruderKey, self.intruderCert = self.other.issue("intruder", "intruder")

    def client(self) -> PrivateCertificate:
        return privateCertificate(self.clientKey, self.clientCert)

    def intruder(self) -> PrivateCertificate:
        return privateCertificate(self.intruderKey, self.intruderCert)

    def description(self, port: int = 0, **options: str) -> str:
        """
        @return: an C{mtls:} description for the server key, certificate and
            CA (unless C{options} say otherwise) on 127.0.0.1.
        """
        values = {
            "interface": "127.0.0.1",
            "privateKey": self.serverKey.path,
            "certKey": self.serverCert.path,
            "caCerts": self.ca.certFile.path,
        }
        values.update(options)
        return "mtls:{}:".format(port) + ":".join(
            "{}={}".format(name, quoteStringArgument(value))
            for name, value in values.items()
            if value
        )


def messages(events: Sequence[LogEvent]) -> list[str]:
    """
    @return: the TLS layer's log lines among C{events}.
    """
    return [
        formatEvent(event)
        for event in events
        if event.get("log_namespace", "").startswith("myproto.tls.")
    ]


# Parsing.


class ParserTests(SynchronousTestCase):
    """
    C{mtls:} descriptions: Twisted finds the parser, options have Twisted's
    names where C{ssl:} has them, and mistakes are named.
    """

    def setUp(self) -> None:
        self.keys = Keys(FilePath(self.mktemp()))
        self.reactor = MemoryReactorClock()

    def parse(self, description: str) -> TLSServerEndpoint:
        endpoint = serverFromString(self.reactor, description)
        self.assertIsInstance(endpoint, TLSServerEndpoint)
        return cast(TLSServerEndpoint, endpoint)

    def test_plugin(self) -> None:
        """
        Twisted's endpoint plugins include ours, for the prefix C{mtls}.
        """
        parsers = [
            parser
            for parser in getPlugins(IStreamServerEndpointStringParser)
            if isinstance(parser, TLSServerParser)
        ]
        self.assertEqual([parser.prefix for parser in parsers], ["mtls"])

    def test_options(self) -> None:
        """
        Every option is read; the endpoint listens on TCP with them, each
        connection wrapped in TLS around the given factory.
        """
        endpoint = self.parse(
            self.keys.description(
                11213,
                backlog="7",
                verify="optional",
                minimumVersion="1.3",
                handshakeTimeout="2.5",
            )
        )
        certificates = endpoint.certificates
        self.assertEqual(certificates.privateKey, self.keys.serverKey.path)
        self.assertEqual(certificates.certificate, self.keys.serverCert.path)
        self.assertEqual(certificates.caCerts, self.keys.ca.certFile.path)
        self.assertEqual(certificates.verify, "optional")
        self.assertEqual(certificates.minimumVersion, "1.3")
        self.assertEqual(endpoint.handshakeTimeout, 2.5)
        factory = Factory()
        endpoint.listen(factory)
        [(port, tlsFactory, backlog, interface)] = self.reactor.tcpServers
        self.assertEqual((port, backlog, interface), (11213, 7, "127.0.0.1"))
        self.assertIsInstance(tlsFactory, TLSServerFactory)
        self.assertIs(tlsFactory.wrappedFactory, factory)
        self.assertEqual(tlsFactory.handshakeTimeout, 2.5)

    def test_defaults(self) -> None:
        """
        With C{caCerts} clients must present a certificate; without, none is
        asked for. TLS 1.2 is the lowest version, as in memcached; the
        handshake timeout is 10 seconds, the backlog 50 and the interface
        all of them, as for C{ssl:}.
        """
        withCA = self.parse(self.keys.description(interface=""))
        self.assertEqual(withCA.certificates.verify, "require")
        self.assertEqual(withCA.certificates.minimumVersion, "1.2")
        self.assertEqual(withCA.handshakeTimeout, DEFAULT_HANDSHAKE_TIMEOUT)
        withCA.listen(Factory())
        [(_, _, backlog, interface)] = self.reactor.tcpServers
        self.assertEqual((backlog, interface), (50, ""))
        withoutCA = self.parse(self.keys.description(caCerts=""))
        self.assertEqual(withoutCA.certificates.verify, "none")

    def test_portAsOption(self) -> None:
        """
        As with C{tcp:}, the port may be given as C{port=}.
        """
        endpoint = self.parse(
            "mtls:port=11213:privateKey={}:certKey={}".format(
                self.keys.serverKey.path, self.keys.serverCert.path
            )
        )
        endpoint.listen(Factory())
        self.assertEqual(self.reactor.tcpServers[0][0], 11213)

    def test_combinedFile(self) -> None:
        """
        As with C{ssl:}, C{certKey} defaults to C{privateKey}: one file may
        hold both.
        """
        combined = self.keys.directory.child("combined.pem")
        combined.setContent(
            self.keys.serverKey.getContent() + self.keys.serverCert.getContent()
        )
        endpoint = self.parse("mtls:0:privateKey=" + combined.path)
        self.assertEqual(endpoint.certificates.certificate, combined.path)

    def test_badValues(self) -> None:
        """
        A wrong option or value is refused with a message naming it.
        """
        key, cert = self.keys.serverKey.path, self.keys.serverCert.path
        files = "privateKey={}:certKey={}".format(key, cert)
        cases = [
            (
                "mtls:x:" + files,
                "mtls: port must be a whole number from 0 to 65535, not 'x'",
            ),
            (
                "mtls:70000:" + files,
                "mtls: port must be a whole number from 0 to 65535, not '70000'",
            ),
            (
                "mtls:" + files,
                "mtls: give one port, as in mtls:11212:privateKey=KEY.pem",
            ),
            (
                "mtls:1:2:" + files,
                "mtls: give one port, as in mtls:11212:privateKey=KEY.pem",
            ),
            ("mtls:1", "mtls: privateKey=FILE is required"),
            (
                "mtls:1:sslmethod=TLS_METHOD:" + files,
                "mtls: unknown option sslmethod; the options are port, interface,"
                " backlog, privateKey, certKey, caCerts, verify, minimumVersion,"
                " handshakeTimeout",
            ),
            (
                "mtls:1:backlog=0:" + files,
                "mtls: backlog must be a whole number from 1 to 65535, not '0'",
            ),
            (
                "mtls:1:handshakeTimeout=-1:" + files,
                "mtls: handshakeTimeout must be a number of seconds, 0 or more, not '-1'",
            ),
            (
                "mtls:1:handshakeTimeout=soon:" + files,
                "mtls: handshakeTimeout must be a number of seconds, 0 or more, not 'soon'",
            ),
            (
                "mtls:1:verify=maybe:caCerts={}:{}".format(
                    self.keys.ca.certFile.path, files
                ),
                "mtls: verify must be require, optional or none, not 'maybe'",
            ),
            (
                "mtls:1:verify=require:" + files,
                "mtls: verify=require needs caCerts=FILE, the CAs that sign client certificates",
            ),
            (
                "mtls:1:verify=none:caCerts={}:{}".format(
                    self.keys.ca.certFile.path, files
                ),
                "mtls: caCerts is for checking client certificates, which verify=none"
                " does not ask for",
            ),
            (
                "mtls:1:minimumVersion=1.1:" + files,
                "mtls: minimumVersion must be 1.2 or 1.3, not '1.1'",
            ),
        ]
        for description, message in cases:
            error = self.assertRaises(
                ValueError, serverFromString, self.reactor, description
            )
            self.assertEqual(str(error), message, description)

    def test_badFiles(self) -> None:
        """
        A file that cannot be loaded is refused with memcached's message for
        C{refresh_certs}: what failed, the file, and OpenSSL's reason.
        """
        keys = self.keys
        garbage = keys.directory.child("garbage.pem")
        garbage.setContent(b"not PEM\n")
        missing = keys.directory.child("missing.pem").path
        cases = [
            (
                {"certKey": missing},
                "Error loading the certificate chain: {} :"
                " error:system library::No such file or directory".format(missing),
            ),
            (
                {"certKey": garbage.path},
                "Error loading the certificate chain: {} :"
                " error:PEM routines::no start line".format(garbage.path),
            ),
            (
                {"privateKey": garbage.path},
                "Error loading the key: {} :"
                " error:DECODER routines::unsupported".format(garbage.path),
            ),
            (
                {"privateKey": keys.clientKey.path},
                "Error loading the key: {} :"
                " error:x509 certificate routines::key values mismatch".format(
                    keys.clientKey.path
                ),
            ),
            (
                {"caCerts": garbage.path},
                "Error loading the CA certificate: {} :"
                " error:x509 certificate routines::no certificate or crl found".format(
                    garbage.path
                ),
            ),
        ]
        for options, message in cases:
            error = self.assertRaises(
                CertificateError,
                serverFromString,
                self.reactor,
                keys.description(**options),
            )
            self.assertEqual(str(error), message)


# In memory: the handshake, its timeout and the log.


class HandshakeTests(SynchronousTestCase):
    """
    The TLS layer of an C{mtls:} connection, driven in memory with a
    L{Clock}: the handshake deadline, the client's certificate logged once
    and exposed to the protocol, and refusals counted.
    """

    def setUp(self) -> None:
        self.keys = Keys(FilePath(self.mktemp()))
        self.clock = Clock()
        self.certificates = ServerCertificates(
            self.keys.serverKey.path,
            self.keys.serverCert.path,
            self.clock,
            self.keys.ca.certFile.path,
            "require",
        )
        self.cacheFactory = CacheServerFactory(
            MemoryStore(self.clock), self.clock, ServerSettings()
        )
        self.factory = TLSServerFactory(
            self.certificates, self.cacheFactory, self.clock, handshakeTimeout=10
        )
        self.address = IPv4Address("TCP", "127.0.0.1", 40000)

    def connect(
        self, clientCertificate: PrivateCertificate | None
    ) -> tuple[iosim.IOPump, Any, Any, Collector]:
        """
        Connect a TLS client to a server connection in memory and pump until
        both are quiet.

        @return: the pump, the server's TLS layer, the client's TLS layer
            and the client protocol.
        """
        options = optionsForClientTLS(
            "localhost",
            trustRoot=self.keys.ca.trustRoot(),
            clientCertificate=clientCertificate,
        )
        collector = Collector()
        clientFactory = TLSMemoryBIOFactory(
            options, True, Factory.forProtocol(lambda: collector), self.clock
        )
        server = self.factory.buildProtocol(self.address)
        client = clientFactory.buildProtocol(self.address)
        pump = iosim.connect(
            server,
            iosim.makeFakeServer(server),
            client,
            iosim.makeFakeClient(client),
            clock=self.clock,
        )
        return pump, server, client, collector

    def test_silentClientDropped(self) -> None:
        """
        A client that never completes its handshake is dropped after
        C{handshakeTimeout} seconds, counted and logged; no timer outlives
        the connection.
        """
        server = self.factory.buildProtocol(self.address)
        transport = StringTransport()
        with capturedLogs() as events:
            server.makeConnection(transport)
            self.clock.advance(9.9)
            self.assertFalse(transport.disconnecting)
            self.clock.advance(0.1)
            self.assertTrue(transport.disconnecting)
            server.connectionLost(Failure(ConnectionAborted()))
        self.assertEqual(self.certificates.handshakeErrors, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.cacheFactory.connections, set())
        self.assertEqual(
            messages(events),
            [
                "Dropping {}: no TLS handshake within 10 seconds".format(
                    transport.getPeer()
                )
            ],
        )

    def test_noTimeout(self) -> None:
        """
        C{handshakeTimeout=0} waits for ever.
        """
        factory = TLSServerFactory(
            self.certificates, self.cacheFactory, self.clock, handshakeTimeout=0
        )
        server = factory.buildProtocol(self.address)
        transport = StringTransport()
        server.makeConnection(transport)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        server.connectionLost(Failure(ConnectionAborted()))

    def test_handshakeStopsTheClock(self) -> None:
        """
        Once the handshake is done the deadline is gone: the client is
        served however long it takes. The protocol sees the client's
        certificate subject, which is logged once for the connection.
        """
        with capturedLogs() as events:
            pump, server, client, collector = self.connect(self.keys.client())
            self.clock.advance(DEFAULT_HANDSHAKE_TIMEOUT * 10)
            for _ in range(3):
                client.write(b"version\r\n")
                pump.flush()
        self.assertFalse(server.disconnecting)
        self.assertEqual(collector.received(), b"VERSION 1.6.18\r\n" * 3)
        [connection] = self.cacheFactory.connections
        self.assertEqual(connection.tlsSubject(), CLIENT_SUBJECT)
        self.assertEqual(
            messages(events),
            [
                "TLS client {} presented certificate {}".format(
                    server.getPeer(), CLIENT_SUBJECT
                )
            ],
        )
        self.assertEqual(self.certificates.handshakeErrors, 0)
        client.write(b"quit\r\n")
        pump.flush()
        self.assertEqual(self.cacheFactory.connections, set())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_otherAuthorityRefused(self) -> None:
        """
        A certificate from another CA ends the handshake: the request sent
        with it is never carried out, and the refusal is counted and logged
        with the certificate's subject and OpenSSL's reason.
        """
        with capturedLogs() as events:
            pump, server, client, collector = self.connect(self.keys.intruder())
            client.write(b"set k 0 0 2\r\nhi\r\n")
            pump.flush()
        self.assertTrue(collector.lost)
        self.assertIsInstance(collector.reason.value, SSL.Error)
        self.assertEqual(collector.received(), b"")
        self.assertIsNone(self.cacheFactory.cache.store.get(b"k"))
        self.assertEqual(self.certificates.handshakeErrors, 1)
        self.assertEqual(
            messages(events),
            [
                "TLS handshake with {} failed: certificate {} refused: unable to get"
                " local issuer certificate".format(server.getPeer(), INTRUDER_SUBJECT)
            ],
        )
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_noCertificateRefused(self) -> None:
        """
        With C{verify=require}, a client without a certificate is refused.
        """
        with capturedLogs() as events:
            pump, server, client, collector = self.connect(None)
            client.write(b"set k 0 0 2\r\nhi\r\n")
            pump.flush()
        self.assertIsInstance(collector.reason.value, SSL.Error)
        self.assertIsNone(self.cacheFactory.cache.store.get(b"k"))
        self.assertEqual(self.certificates.handshakeErrors, 1)
        self.assertEqual(
            messages(events),
            [
                "TLS handshake with {} failed: no client certificate".format(
                    server.getPeer()
                )
            ],
        )

    def test_optionalWithout(self) -> None:
        """
        With C{verify=optional}, a client without a certificate is served;
        the log says it presented none and the protocol sees no subject.
        """
        self.certificates = ServerCertificates(
            self.keys.serverKey.path,
            self.keys.serverCert.path,
            self.clock,
            self.keys.ca.certFile.path,
            "optional",
        )
        self.factory = TLSServerFactory(
            self.certificates, self.cacheFactory, self.clock
        )
        with capturedLogs() as events:
            pump, server, client, collector = self.connect(None)
            client.write(b"version\r\n")
            pump.flush()
        self.assertEqual(collector.received(), b"VERSION 1.6.18\r\n")
        [connection] = self.cacheFactory.connections
        self.assertIsNone(connection.tlsSubject())
        self.assertEqual(
            messages(events),
            ["TLS client {} presented no certificate".format(server.getPeer())],
        )

    def test_plainConnectionHasNoSubject(self) -> None:
        """
        On a connection without TLS, L{CacheServerProtocol.tlsSubject} is
        L{None}.
        """
        protocol = self.cacheFactory.buildProtocol(self.address)
        protocol.makeConnection(StringTransport())
        self.assertIsNone(protocol.tlsSubject())


@implementer(IReactorCore)
class RunningReactor:
    """
    The real reactor, said to be running: trial drives the reactor without
    starting it, so C{callWhenRunning} would wait for ever.
    """

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor

    def callWhenRunning(self, function: Callable[..., object], *args: object) -> None:
        function(*args)

    def callFromThread(self, function: Callable[..., object], *args: object) -> None:
        self._reactor.callFromThread(function, *args)


class Collector(Protocol):
    """
    A client that keeps what it receives and why its connection ended.
    """

    def __init__(self) -> None:
        self._received: list[bytes] = []
        self.lost = False
        self.reason: Failure | None = None
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self._received.append(data)

    def received(self) -> bytes:
        return b"".join(self._received)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        self.reason = reason
        self.done.callback(self.received())


# Wiring: refresh_certs and stats, with and without mtls: endpoints.


class WiringTests(SynchronousTestCase):
    """
    L{makeService} hands the C{mtls:} endpoints' reload to C{refresh_certs},
    C{stats} and SIGHUP.
    """

    def setUp(self) -> None:
        self.keys = Keys(FilePath(self.mktemp()))
        self.reactor = MemoryReactorClock()

    def serve(self, *listen: str) -> tuple[Any, CacheServerProtocol, StringTransport]:
        """
        Build the server and connect a client to it in memory.

        @return: the top service, the client's protocol and its transport.
        """
        top = makeService({"listen": list(listen)}, self.reactor)
        [listener, *_] = [
            child for child in top if isinstance(child, StreamServerEndpointService)
        ]
        protocol = listener.factory.buildProtocol(
            IPv4Address("TCP", "127.0.0.1", 40000)
        )
        transport = StringTransport()
        protocol.makeConnection(transport)
        return top, protocol, transport

    def test_notEnabled(self) -> None:
        """
        Without an C{mtls:} endpoint, C{refresh_certs} gets memcached's reply
        when TLS is not enabled, C{noreply} or not, and C{stats} has no TLS
        lines.
        """
        top, protocol, transport = self.serve(
            "tcp:0",
            "ssl:0:privateKey={}:certKey={}".format(
                self.keys.serverKey.path, self.keys.serverCert.path
            ),
        )
        protocol.dataReceived(b"refresh_certs\r\nrefresh_certs noreply\r\n")
        self.assertEqual(transport.value(), b"Error TLS not enabled\r\n" * 2)
        self.assertFalse(
            [child for child in top if isinstance(child, ReloadCertificatesOnSignal)]
        )
        self.assertNotIn("ssl_handshake_errors", dict(generalStats(protocol.factory.cache)))

    def test_refresh(self) -> None:
        """
        With one, C{refresh_certs} reloads its files: C{OK} (silenced by
        C{noreply}), or memcached's error line (even with C{noreply}) while
        the old certificate stays in use. C{stats} shows the failed
        handshakes and the seconds since the last successful load.
        """
        top, protocol, transport = self.serve(
            "tcp:0", self.keys.description(privateKey=self.keys.serverKey.path)
        )
        [signals] = [
            child for child in top if isinstance(child, ReloadCertificatesOnSignal)
        ]
        [listener] = [
            child
            for child in top
            if isinstance(child, StreamServerEndpointService)
            and isinstance(child.endpoint, TLSServerEndpoint)
        ]
        certificates = listener.endpoint.certificates
        self.assertEqual(signals.reload(), None)
        self.reactor.advance(5)
        protocol.dataReceived(b"refresh_certs\r\nrefresh_certs noreply\r\n")
        self.assertEqual(transport.value(), b"OK\r\n")
        self.assertEqual(certificates.refreshedAt, 5)
        transport.clear()

        self.keys.serverKey.setContent(b"garbage\n")
        self.reactor.advance(7)
        protocol.dataReceived(b"refresh_certs noreply\r\nrefresh_certs extra words\r\n")
        error = "Error loading the key: {} : error:DECODER routines::unsupported\r\n".format(
            self.keys.serverKey.path
        ).encode()
        self.assertEqual(transport.value(), error * 2)
        self.assertEqual(certificates.refreshedAt, 5)

        certificates.handshakeErrors = 3
        stats = dict(generalStats(protocol.factory.cache))
        self.assertEqual(stats["ssl_handshake_errors"], 3)
        self.assertEqual(stats["time_since_server_cert_refresh"], 7)
        # Where memcached puts them: after the logger's, before its NAPI
        # counters and the item counts.
        names = [name for name, _ in generalStats(protocol.factory.cache)]
        self.assertEqual(
            names[names.index("bytes") - 5 : names.index("bytes") + 1],
            [
                "log_watchers",
                "ssl_handshake_errors",
                "time_since_server_cert_refresh",
                "unexpected_napi_ids",
                "round_robin_fallback",
                "bytes",
            ],
        )


# Real TLS on the loopback interface.


class Client(Protocol):
    """
    A memcached client over a real connection: L{ask} sends and waits for a
    reply; C{done} fires when the connection ends.
    """

    def __init__(self) -> None:
        self.received = b""
        self.reason: Failure | None = None
        self.done: Deferred[bytes] = Deferred()
        self._waiting: tuple[int, bytes, Deferred[bytes]] | None = None

    def ask(self, request: bytes, until: bytes) -> Deferred[bytes]:
        """
        Send C{request}; the result fires with what arrives from now on, once
        it ends with C{until}.
        """
        waiting: Deferred[bytes] = Deferred()
        self._waiting = (len(self.received), until, waiting)
        self.transport.write(request)
        return waiting

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self._waiting is not None:
            start, until, waiting = self._waiting
            if self.received.endswith(until):
                self._waiting = None
                waiting.callback(self.received[start:])

    def peerCertificate(self) -> Any:
        return self.transport.getPeerCertificate()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.reason = reason
        if self._waiting is not None:
            waiting, self._waiting = self._waiting[2], None
            waiting.errback(reason)
        self.done.callback(self.received)


class LoopbackTests(TestCase):
    """
    The C{mtls:} endpoint over real TLS connections on 127.0.0.1.
    """

    # A server that never closes fails the test in seconds, not trial's 120.
    timeout = 30

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        self.keys = Keys(FilePath(self.mktemp()))
        self.cacheFactory = CacheServerFactory(
            MemoryStore(reactor), reactor, ServerSettings()
        )

    async def listen(self, **options: str) -> TLSServerEndpoint:
        """
        Serve the cache on an C{mtls:} endpoint on port 0, with
        C{refresh_certs} and C{stats} wired as L{makeService} does.

        @return: the endpoint; C{self.port} is its listening port.
        """
        endpoint = cast(
            TLSServerEndpoint,
            serverFromString(self.reactor, self.keys.description(**options)),
        )
        self.port = await endpoint.listen(self.cacheFactory)
        self.addCleanup(self.port.stopListening)
        reloader = CertificateReloader([endpoint.certificates], self.reactor)
        self.cacheFactory.cache.certificates = reloader
        return endpoint

    async def connect(
        self,
        clientCertificate: PrivateCertificate | None = None,
        options: Any = None,
    ) -> Client:
        """
        Connect a client that checks the server against the CA.
        """
        if options is None:
            options = optionsForClientTLS(
                "localhost",
                trustRoot=self.keys.ca.trustRoot(),
                clientCertificate=clientCertificate,
            )
        endpoint = SSL4ClientEndpoint(
            self.reactor, "127.0.0.1", self.port.getHost().port, options
        )
        return await connectProtocol(endpoint, Client())

    async def assertRefused(self, client: Client, reason: str) -> None:
        """
        The server ends C{client}'s connection in the handshake: whatever the
        client sent is not carried out, and the client learns why.
        """
        client.transport.write(b"set refused 0 0 2\r\nno\r\n")
        self.assertEqual(await client.done, b"")
        self.assertIsNotNone(client.reason)
        self.assertIsInstance(client.reason.value, SSL.Error)
        self.assertIn(reason, str(client.reason.value))
        self.assertIsNone(self.cacheFactory.cache.store.get(b"refused"))

    async def test_trustedClient(self) -> None:
        """
        A client whose certificate the CA signed can set and get; the server
        logs the certificate's subject once for the connection and shows it
        to the protocol.
        """
        await self.listen()
        with capturedLogs() as events:
            client = await self.connect(self.keys.client())
            self.assertEqual(
                await client.ask(b"set k 0 0 2\r\nhi\r\n", b"STORED\r\n"), b"STORED\r\n"
            )
            [connection] = self.cacheFactory.connections
            self.assertEqual(connection.tlsSubject(), CLIENT_SUBJECT)
            client.transport.write(b"get k\r\nget k\r\nquit\r\n")
            self.assertEqual(
                await client.done,
                b"STORED\r\n" + b"VALUE k 0 2\r\nhi\r\nEND\r\n" * 2,
            )
        presented = [m for m in messages(events) if "presented certificate" in m]
        self.assertEqual(len(presented), 1)
        self.assertIn(CLIENT_SUBJECT, presented[0])

    async def test_subjectInStatsConns(self) -> None:
        """
        C{stats conns} shows the subject of the client's certificate.
        """
        await self.listen()
        client = await self.connect(self.keys.client())
        reply = await client.ask(b"stats conns\r\n", b"END\r\n")
        self.assertIn(b":tls_subject " + CLIENT_SUBJECT.encode() + b"\r\n", reply)
        client.transport.write(b"quit\r\n")
        await client.done

    async def test_noCertificate(self) -> None:
        """
        With C{verify=require} (the default with C{caCerts}), a client
        without a certificate is refused in the handshake.
        """
        await self.listen()
        await self.assertRefused(await self.connect(), "certificate required")

    async def test_otherAuthority(self) -> None:
        """
        A client certificate from another CA is refused in the handshake.
        """
        await self.listen()
        await self.assertRefused(await self.connect(self.keys.intruder()), "unknown ca")

    async def test_goodClientsUnaffected(self) -> None:
        """
        Refusing bad clients disturbs neither a trusted client already
        connected nor the next one; the refusals are counted in C{stats}.
        """
        await self.listen()
        first = await self.connect(self.keys.client())
        await first.ask(b"set k 0 0 2\r\nhi\r\n", b"STORED\r\n")
        await self.assertRefused(await self.connect(), "certificate required")
        await self.assertRefused(await self.connect(self.keys.intruder()), "unknown ca")
        self.assertEqual(
            await first.ask(b"get k\r\n", b"END\r\n"), b"VALUE k 0 2\r\nhi\r\nEND\r\n"
        )
        second = await self.connect(self.keys.client())
        stats = await second.ask(b"get k\r\nstats\r\n", b"STAT lru_bumps_dropped 0\r\nEND\r\n")
        self.assertTrue(stats.startswith(b"VALUE k 0 2\r\nhi\r\nEND\r\n"))
        self.assertIn(b"STAT ssl_handshake_errors 2\r\n", stats)
        first.transport.write(b"quit\r\n")
        second.transport.write(b"quit\r\n")
        await first.done
        await second.done

    async def test_optional(self) -> None:
        """
        With C{verify=optional}, a client may come without a certificate or
        with one the CA signed, but not with one from another CA.
        """
        await self.listen(verify="optional")
        anonymous = await self.connect()
        await anonymous.ask(b"set k 0 0 2\r\nhi\r\n", b"STORED\r\n")
        [connection] = self.cacheFactory.connections
        self.assertIsNone(connection.tlsSubject())
        anonymous.transport.write(b"quit\r\n")
        await anonymous.done
        known = await self.connect(self.keys.client())
        known.transport.write(b"get k\r\nquit\r\n")
        self.assertEqual(await known.done, b"VALUE k 0 2\r\nhi\r\nEND\r\n")
        await self.assertRefused(await self.connect(self.keys.intruder()), "unknown ca")

    async def test_minimumVersion(self) -> None:
        """
        With C{minimumVersion=1.3}, a client that offers at most TLS 1.2 is
        refused; one that offers 1.3 is served.
        """
        await self.listen(verify="none", caCerts="", minimumVersion="1.3")
        old = CertificateOptions(
            trustRoot=self.keys.ca.trustRoot(),
            lowerMaximumSecurityTo=TLSVersion.TLSv1_2,
        )
        with capturedLogs() as events:
            client = await self.connect(options=old)
            self.assertEqual(await client.done, b"")
        self.assertIsNotNone(client.reason)
        self.assertIsInstance(client.reason.value, SSL.Error)
        [refusal] = messages(events)
        self.assertTrue(
            refusal.endswith(" failed: protocol version not accepted"), refusal
        )
        current = await self.connect()
        current.transport.write(SESSION)
        self.assertEqual(await current.done, SESSION_REPLY)

    async def test_handshakeTimeout(self) -> None:
        """
        A client that connects and never starts its handshake is dropped.
        """
        endpoint = await self.listen(handshakeTimeout="0.2")
        silent = await connectProtocol(
            TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port.getHost().port),
            Client(),
        )
        self.assertEqual(await silent.done, b"")
        self.assertEqual(endpoint.certificates.handshakeErrors, 1)

    async def test_refreshCertificates(self) -> None:
        """
        C{refresh_certs} reads the files again: new connections get the new
        certificate, an open one carries on. When the new files are bad the
        reply says why and the last good certificate stays.
        """
        keys = self.keys
        await self.listen()
        first = await self.connect(keys.client())
        await first.ask(b"set k 0 0 2\r\nhi\r\n", b"STORED\r\n")
        self.assertEqual(
            fingerprint(first.peerCertificate()), fingerprint(keys.serverCert)
        )
        oldCertificate = keys.serverCert.getContent()

        newKey, newCert = keys.ca.issue("localhost", "renewed", server=True)
        keys.serverKey.setContent(newKey.getContent())
        keys.serverCert.setContent(newCert.getContent())
        self.assertEqual(await first.ask(b"refresh_certs\r\n", b"\r\n"), b"OK\r\n")

        second = await self.connect(keys.client())
        self.assertEqual(
            await second.ask(b"get k\r\n", b"END\r\n"), b"VALUE k 0 2\r\nhi\r\nEND\r\n"
        )
        self.assertEqual(fingerprint(second.peerCertificate()), fingerprint(newCert))
        self.assertNotEqual(newCert.getContent(), oldCertificate)

        keys.serverKey.setContent(b"garbage\n")
        reply = await first.ask(b"refresh_certs\r\n", b"\r\n")
        self.assertEqual(
            reply,
            "Error loading the key: {} : error:DECODER routines::unsupported\r\n".format(
                keys.serverKey.path
            ).encode(),
        )
        third = await self.connect(keys.client())
        await third.ask(b"version\r\n", b"\r\n")
        self.assertEqual(fingerprint(third.peerCertificate()), fingerprint(newCert))

        self.assertEqual(
            await first.ask(b"get k\r\n", b"END\r\n"), b"VALUE k 0 2\r\nhi\r\nEND\r\n"
        )
        for client in (first, second, third):
            client.transport.write(b"quit\r\n")
            await client.done

    async def test_refreshedAuthority(self) -> None:
        """
        Reloading reads the CA file too: once it names another CA, that CA's
        clients are let in and the old one's are refused.
        """
        keys = self.keys
        await self.listen()
        keys.ca.certFile.setContent(keys.other.pem())
        admin = await self.connect(keys.client())
        self.assertEqual(
            await admin.ask(b"refresh_certs\r\nquit\r\n", b"\r\n"), b"OK\r\n"
        )
        await admin.done
        await self.assertRefused(await self.connect(keys.client()), "unknown ca")
        newcomer = await self.connect(keys.intruder())
        newcomer.transport.write(SESSION)
        self.assertEqual(await newcomer.done, SESSION_REPLY)

    async def test_sighup(self) -> None:
        """
        SIGHUP reloads the certificates as C{refresh_certs} does; the handler
        is installed while the service runs and removed when it stops.
        """
        keys = self.keys
        endpoint = await self.listen()
        reloaded: Deferred[str | None] = Deferred()

        def reload() -> str | None:
            result = endpoint.certificates.reload()
            reloaded.callback(result)
            return result

        previous = signal.getsignal(signal.SIGHUP)
        service = ReloadCertificatesOnSignal(RunningReactor(self.reactor), reload)
        service.startService()
        self.addCleanup(service.stopService)
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), previous)

        newKey, newCert = keys.ca.issue("localhost", "renewed", server=True)
        keys.serverKey.setContent(newKey.getContent())
        keys.serverCert.setContent(newCert.getContent())
        os.kill(os.getpid(), signal.SIGHUP)
        self.assertIsNone(await reloaded)

        client = await self.connect(keys.client())
        await client.ask(b"version\r\n", b"\r\n")
        self.assertEqual(fingerprint(client.peerCertificate()), fingerprint(newCert))
        client.transport.write(b"quit\r\n")
        await client.done

        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)


class TacTests(TestCase):
    """
    With C{MYPROTO_TLS_CA} set, C{tac/myproto.tac} adds an C{mtls:}
    endpoint that requires client certificates signed by that CA.
    """

    timeout = 30

    async def test_mutualEndpoint(self) -> None:
        from twisted.internet import reactor

        keys = Keys(FilePath(self.mktemp()))
        SetEnvironment(self)(
            MYPROTO_TCP_PORT="0",
            MYPROTO_TLS_PORT="0",
            MYPROTO_MTLS_PORT="0",
            MYPROTO_TLS_KEY=keys.serverKey.path,
            MYPROTO_TLS_CERT=keys.serverCert.path,
            MYPROTO_TLS_CA=keys.ca.certFile.path,
        )
        application = loadApplication(TAC.path, "python")
        [top] = list(IServiceCollection(application))
        listeners = [
            child for child in top if isinstance(child, StreamServerEndpointService)
        ]
        self.assertEqual(len(listeners), 3)
        mutual = listeners[2]
        self.assertIsInstance(mutual.endpoint, TLSServerEndpoint)
        self.assertEqual(mutual.endpoint.certificates.verify, "require")
        port = await mutual.endpoint.listen(mutual.factory)
        self.addCleanup(port.stopListening)
        self.assertEqual(port.getHost().host, "127.0.0.1")
        options = optionsForClientTLS(
            "localhost", trustRoot=keys.ca.trustRoot(), clientCertificate=keys.client()
        )
        client = await connectProtocol(
            SSL4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port, options),
            Client(),
        )
        client.transport.write(SESSION)
        self.assertEqual(await client.done, SESSION_REPLY)
