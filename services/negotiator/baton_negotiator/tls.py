"""The listeners' self-signed ECDSA P-256 certificate, made on first start and kept in the state folder.

go-livepeer does the same (``cert.pem`` / ``key.pem`` in its data dir):
gateways skip verification, or pin the certificate as Livepeer's SDK does.
Replicas sharing the state folder share the certificate; the key file is 0600.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from baton_common.errors import ConfigError

__all__ = ["CERT_FILE", "KEY_FILE", "ensure_certificate"]

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALIDITY = datetime.timedelta(days=3650)


def ensure_certificate(state_dir: str | Path, host: str) -> tuple[Path, Path]:
    """(cert, key) in ``state_dir``: the existing pair, else a new one for ``host``; ConfigError if unwritable."""
    folder = Path(state_dir)
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    if cert.exists() and key.exists():
        return cert, key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        private = ec.generate_private_key(ec.SECP256R1())
        key_pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp_key, tmp_cert = key.with_suffix(".tmp"), cert.with_suffix(".tmp")
        fd = os.open(tmp_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        tmp_cert.write_bytes(_certificate(private, host).public_bytes(serialization.Encoding.PEM))
        os.replace(tmp_key, key)  # key first: a cert on disk always has its key
        os.replace(tmp_cert, cert)
    except OSError as exc:
        raise ConfigError(f"BATON_NEGOTIATOR_STATE_DIR: cannot write the TLS certificate in {folder}: "
                          f"{exc.strerror}") from None
    return cert, key


def _certificate(private: ec.EllipticCurvePrivateKey, host: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Baton orchestrator"),
                      x509.NameAttribute(NameOID.COMMON_NAME, host or "localhost")])
    alt: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    if host:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(alt))), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
