"""
A key and a self-signed certificate, for trying the server out over TLS.

L{selfSignedCertificate} is called at startup only (by the tac file, the
testing fixtures and the tests), so its file I/O never blocks a client. The
C{mtls:} endpoint and certificate reloading are in L{myproto.tls}.
"""

from __future__ import annotations

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.logger import Logger
from twisted.python.filepath import FilePath

KEY_FILE_NAME = "key.pem"
CERTIFICATE_FILE_NAME = "cert.pem"

# How long a generated certificate stays valid.
VALIDITY = datetime.timedelta(days=365)

log = Logger()


def selfSignedCertificate(
    directory: FilePath[str], hostname: str
) -> tuple[FilePath[str], FilePath[str]]:
    """
    Make sure C{directory} holds a private key and a self-signed certificate
    for C{hostname}, creating them if either is missing.

    The key is an elliptic-curve (P-256) key; the certificate names
    C{hostname} as its common name and as a DNS subject alternative name, and
    also carries the IP address 127.0.0.1, so clients that check either form
    of the loopback name accept it. Both are written as PEM; the key file is
    readable by its owner only.

    @param directory: where the files live; created if needed.
    @param hostname: the DNS name clients will check the certificate against.

    @return: the paths of the key file and of the certificate file.
    """
    keyPath = directory.child(KEY_FILE_NAME)
    certPath = directory.child(CERTIFICATE_FILE_NAME)
    if keyPath.exists() and certPath.exists():
        return keyPath, certPath
    if not directory.exists():
        directory.makedirs()
    keyPEM, certPEM = _makeSelfSigned(hostname)
    _write(keyPath, keyPEM, 0o600)
    _write(certPath, certPEM, 0o644)
    log.info(
        "Wrote a self-signed certificate for {hostname} to {certificate}"
        " (private key: {key})",
        hostname=hostname,
        certificate=certPath.path,
        key=keyPath.path,
    )
    return keyPath, certPath


def _write(path: FilePath[str], content: bytes, mode: int) -> None:
    """
    Write a file that is never, even briefly, more readable than C{mode}.

    @param path: the file, replaced if it exists.
    @param content: what to write.
    @param mode: its permission bits.
    """
    descriptor = os.open(path.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as output:
        output.write(content)
    os.chmod(path.path, mode)


def _makeSelfSigned(hostname: str) -> tuple[bytes, bytes]:
    """
    Generate a new key and a certificate for it, signed by itself.

    @param hostname: the name the certificate is for.

    @return: the key and the certificate, both PEM-encoded.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(hostname),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    keyPEM = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return keyPEM, certificate.public_bytes(serialization.Encoding.PEM)
