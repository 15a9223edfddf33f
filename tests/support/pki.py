"""Throw-away X.509 material for test servers: a CA, server certificates, token signing keys.

Everything uses EC P-256 keys: generation takes microseconds, and Go (the registry) and
OpenSSL (Python, skopeo) both accept them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = dt.timedelta(days=2)
_CLOCK_SKEW = dt.timedelta(hours=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _base_builder(subject: x509.Name, issuer: x509.Name, public_key) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _VALIDITY)
    )


def libtrust_key_id(public_key) -> str:
    """The key ID docker/libtrust (and so distribution 2.x) computes for a public key.

    SHA-256 of the DER SubjectPublicKeyInfo, truncated to 240 bits, base32 without
    padding, in 12 colon-separated groups of 4 characters. distribution looks up a JWT's
    `kid` header in a table keyed by this value, built from its rootcertbundle.
    """
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA that issues server certificates; `cert_path` is what clients trust."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_path: Path

    @classmethod
    def create(
        cls, directory: Path, common_name: str = "transship test CA"
    ) -> CertificateAuthority:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            _base_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        cert_path = directory / "ca.crt"
        cert_path.write_bytes(_pem_cert(cert))
        return cls(key=key, cert=cert, cert_path=cert_path)

    def issue_server_certificate(
        self,
        directory: Path,
        hostnames: tuple[str, ...] = ("localhost",),
        ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    ) -> ServerCertificate:
        """A leaf certificate for a TLS server, with the names as subjectAltNames."""
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        san = [x509.DNSName(h) for h in hostnames] + [
            x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses
        ]
        subject = x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, (hostnames or ip_addresses)[0])]
        )
        cert = (
            _base_builder(subject, self.cert.subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_path = directory / "server.crt"
        key_path = directory / "server.key"
        cert_path.write_bytes(_pem_cert(cert))
        key_path.write_bytes(_pem_key(key))
        key_path.chmod(0o600)
        return ServerCertificate(cert_path=cert_path, key_path=key_path, ca_path=self.cert_path)


@dataclass(frozen=True)
class ServerCertificate:
    cert_path: Path
    key_path: Path
    ca_path: Path


@dataclass(frozen=True)
class TokenSigningKey:
    """The key a token issuer signs JWTs with, and its self-signed certificate.

    The registry is given `cert_path` as its `rootcertbundle`.
    """

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    cert_path: Path
    key_id: str  # libtrust key ID, for the JWT `kid` header

    @classmethod
    def create(cls, directory: Path, common_name: str = "transship test token issuer"):
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        cert = (
            _base_builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        cert_path = directory / "token-signing.crt"
        cert_path.write_bytes(_pem_cert(cert))
        return cls(
            key=key, cert=cert, cert_path=cert_path, key_id=libtrust_key_id(key.public_key())
        )

    @property
    def private_key_pem(self) -> bytes:
        return _pem_key(self.key)

    @property
    def x5c(self) -> list[str]:
        """The certificate chain as the JWT `x5c` header wants it (base64 DER, leaf first)."""
        return [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
