"""The broker link's certificates: a CA per environment, the master's issuing CA, the broker's own.

The controller makes the environment's CA before anything is launched and keeps its key (0600) in
the environment's state; every node and the controller trust only that CA's certificate, so an
agent verifies the broker from its first connection. The CA signs one intermediate for the master
(its key is the one TLS secret in the master's user-data), and the master issues its broker
certificate at each start for the names and addresses it really has: stomp.py checks the broker's
certificate against the address it dials, which is known only once the master runs. The controller,
which may dial a public address the master cannot see, checks the chain and the master's name
(certificate_problem).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_YEARS = 20  # as long as an environment lives: nothing renews it
ISSUER_YEARS = 10
BROKER_DAYS = 825
SKEW = datetime.timedelta(hours=1)  # a node whose clock is a little behind still accepts it


@dataclass(frozen=True)
class CertifiedKey:
    """A certificate and its private key, both PEM (the key never in a repr)."""

    cert_pem: str
    key_pem: str = field(repr=False)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the certificate's DER, shortened: what a log line may show."""
        der = x509.load_pem_x509_certificate(self.cert_pem.encode()).public_bytes(serialization.Encoding.DER)
        return hashlib.sha256(der).hexdigest()[:16]


def make_environment_ca(environment: str) -> CertifiedKey:
    """The environment's root: signs the master's issuing CA and nothing else."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _cn(f"drbootstrap {environment} CA"))])
    cert = _builder(name, name, key.public_key(), datetime.timedelta(days=365 * CA_YEARS)).add_extension(
        x509.BasicConstraints(ca=True, path_length=1), critical=True).add_extension(
        _ca_usage(), critical=True).add_extension(
        x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False).sign(key, hashes.SHA256())
    return CertifiedKey(_pem(cert), _key_pem(key))


def issue_master_ca(ca: CertifiedKey, environment: str) -> CertifiedKey:
    """The master's issuing CA: it may sign broker certificates only (path length 0)."""
    ca_key, ca_cert = _load(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _cn(f"drbootstrap {environment} master"))])
    cert = _builder(subject, ca_cert.subject, key.public_key(), datetime.timedelta(days=365 * ISSUER_YEARS)) \
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True) \
        .add_extension(_ca_usage(), critical=True) \
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False) \
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False) \
        .sign(ca_key, hashes.SHA256())
    return CertifiedKey(_pem(cert), _key_pem(key))


def issue_broker_certificate(issuer: CertifiedKey, names: tuple[str, ...]) -> CertifiedKey:
    """The broker's certificate for NAMES (DNS names and addresses), signed by the master's issuer;
    its PEM carries the issuer's certificate after its own (the chain a client needs)."""
    if not names:
        raise ValueError("a broker certificate needs at least one name or address")
    issuer_key, issuer_cert = _load(issuer)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _cn(names[0]))])
    alternative = x509.SubjectAlternativeName([_general_name(name) for name in dict.fromkeys(names)])
    cert = _builder(subject, issuer_cert.subject, key.public_key(), datetime.timedelta(days=BROKER_DAYS)) \
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True) \
        .add_extension(alternative, critical=False) \
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True) \
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False) \
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False) \
        .sign(issuer_key, hashes.SHA256())
    return CertifiedKey(_pem(cert) + issuer.cert_pem, _key_pem(key))


def certificate_problem(leaf_der: bytes, trusted_pem: str, name: str) -> str | None:
    """Why the broker's certificate (DER) is not one of this environment's for NAME, or None when it
    is: it chains to the CA in TRUSTED_PEM (which also holds the master's issuing CA) and names NAME.
    The controller's check: it may dial an address the master cannot see (a cloud's public address),
    but always knows the master's name."""
    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    certs = x509.load_pem_x509_certificates(trusted_pem.encode())
    anchors = [c for c in certs if c.issuer == c.subject]
    subject: x509.GeneralName = _general_name(name)
    try:
        verifier = PolicyBuilder().store(Store(anchors)).build_server_verifier(subject)  # type: ignore[arg-type]
        verifier.verify(x509.load_der_x509_certificate(leaf_der), [c for c in certs if c not in anchors])
    except (VerificationError, ValueError) as error:
        return f"the broker's certificate is not this environment's for {name}: {error}"
    return None


def broker_keystore(broker: CertifiedKey, password: str) -> bytes:
    """A PKCS#12 keystore (what ActiveMQ's sslContext reads) with the broker's key and its chain."""
    certs = x509.load_pem_x509_certificates(broker.cert_pem.encode())
    key = serialization.load_pem_private_key(broker.key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return pkcs12.serialize_key_and_certificates(
        b"broker", key, certs[0], certs[1:], serialization.BestAvailableEncryption(password.encode()))


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey,
             lifetime: datetime.timedelta) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number()).not_valid_before(now - SKEW)
            .not_valid_after(now + lifetime))


def _ca_usage() -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=False, key_encipherment=False, content_commitment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                         encipher_only=False, decipher_only=False)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _cn(text: str) -> str:
    return text[:64]  # X.509's upper bound for a common name


def _load(material: CertifiedKey) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key(material.key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key, x509.load_pem_x509_certificate(material.cert_pem.encode())


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
