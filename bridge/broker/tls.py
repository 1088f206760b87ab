"""A local certificate authority and the broker's TLS server certificate.

Made with the ``cryptography`` library (imported only when a certificate is made
or read, so the rest of powerbridge works without it).  Why not the ``openssl``
command: one code path on Linux, macOS and Windows (a Home Assistant add-on user
may prepare the files on a PC), typed objects instead of parsing tool output,
and no dependence on the OpenSSL/LibreSSL version's flags (``-addext``, strict
X.509 extensions).  See docs/broker.md.

Keys are ECDSA P-256: fast to make on a Pi Zero, accepted by every TLS 1.2+
client we support.  The certificates carry the extensions that strict
verifiers (OpenSSL 3, Python 3.13's ``VERIFY_X509_STRICT``) require.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.errors import NotAvailableError, PowerbridgeError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

CA_DAYS = 3650
"""The local CA lives ten years: it is copied to every PC, so renewing it is a chore."""
SERVER_DAYS = 825
"""The server certificate's lifetime: the longest that macOS/iOS accept for TLS servers."""
CA_COMMON_NAME = "powerbridge local broker CA"

INSTALL_HINT = (
    "making certificates needs the Python package 'cryptography': "
    "`pip install cryptography` (or `sudo apt-get install -y python3-cryptography`)"
)


class TlsError(PowerbridgeError):
    """A certificate or key cannot be used (wrong type, unreadable, not signed by the CA)."""


def require() -> None:
    """Raise :class:`NotAvailableError` with an install hint when ``cryptography`` is missing."""
    _require_crypto()


def _require_crypto() -> None:
    try:
        import cryptography  # noqa: F401  (probe only: a clear message when it is missing)
    except ImportError:
        raise NotAvailableError(INSTALL_HINT) from None


@dataclass(frozen=True, slots=True)
class KeyAndCert:
    key_pem: bytes
    cert_pem: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _certificate(
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    issuer: x509.Name | None,
    days: int,
    *,
    ca: bool,
) -> x509.CertificateBuilder:
    """What a CA and a server certificate share: names, key, validity, constraints, key usage.

    A CA (``issuer`` ``None``: self-signed) may sign certificates only, with path
    length 0; a server certificate may only sign its TLS handshakes.
    """
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "powerbridge"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = _now()
    usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    usage.update(key_cert_sign=ca, crl_sign=ca, digital_signature=not ca)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
    )


def make_ca(common_name: str = CA_COMMON_NAME, days: int = CA_DAYS) -> KeyAndCert:
    """A self-signed CA that may sign server certificates only (path length 0)."""
    _require_crypto()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    key = _new_key()
    cert = (
        _certificate(key, common_name, None, days, ca=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyAndCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def _general_name(host: str) -> x509.GeneralName:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def make_server_cert(ca: KeyAndCert, hosts: list[str], days: int = SERVER_DAYS) -> KeyAndCert:
    """A TLS server certificate for ``hosts`` (names and/or addresses), signed by ``ca``."""
    if not hosts:
        raise ValueError("a server certificate needs at least one host name or address")
    _require_crypto()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TlsError("the CA key is neither an EC nor an RSA key")
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    key = _new_key()
    cert = (
        _certificate(key, hosts[0][:64], ca_cert.subject, days, ca=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyAndCert(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


@dataclass(frozen=True, slots=True)
class CertInfo:
    subject: str
    hosts: tuple[str, ...]
    not_after: dt.datetime
    fingerprint_sha256: str

    def days_left(self, now: dt.datetime | None = None) -> float:
        return (self.not_after - (now or _now())).total_seconds() / 86400


def describe(cert_pem: bytes) -> CertInfo:
    """Subject, host names/addresses, expiry and fingerprint of a PEM certificate."""
    _require_crypto()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    cert = x509.load_pem_x509_certificate(cert_pem)
    hosts: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        hosts += [str(v) for v in san.get_values_for_type(x509.DNSName)]
        hosts += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    return CertInfo(
        cert.subject.rfc4514_string(), tuple(hosts), cert.not_valid_after_utc, fingerprint
    )


def signed_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    """Whether ``cert_pem`` was issued (and signed) by the CA in ``ca_cert_pem``."""
    _require_crypto()
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_cert_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def default_hosts() -> list[str]:
    """Names a client on this machine or the LAN may use for the broker running here."""
    short = socket.gethostname().split(".")[0]
    hosts = [short, f"{short}.local"]
    fqdn = socket.getfqdn()
    if "." in fqdn and not fqdn.endswith(".localdomain"):
        hosts.append(fqdn)
    hosts += ["localhost", "127.0.0.1", "::1"]
    return unique(hosts)


def unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.lower()
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def check_host(host: str) -> str:
    """A DNS name or IP address fit for a certificate, or ``ValueError``."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not host or len(host) > 253 or not all(_label_ok(label) for label in labels):
        raise ValueError(f"{host!r} is neither an IP address nor a DNS name")
    return host.rstrip(".")


def _label_ok(label: str) -> bool:
    return (
        0 < len(label) <= 63
        and label[0] != "-"
        and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c in "-_*") for c in label)
    )
