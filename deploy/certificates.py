"""MeshCertificates: a development certificate authority and the
certificates of the mesh's members, for `make run` and the tests.

Every process of the mesh proves who it is with a certificate the mesh CA
signed, its identity a SPIFFE id in the certificate's URI name:
`spiffe://tilores-x/service/router`, `spiffe://tilores-x/edge/envoy`, or
`spiffe://tilores-x/client/<name>` for a caller outside the mesh (another
team's service, an operator's grpcurl). In Kubernetes the certificates come
from Secrets (cert-manager or your own CA); here they are made once per data
directory and renewed when they near their end. EC P-256 keys; leaf
certificates last 30 days, the CA five years.

For a cluster without cert-manager, the Secrets' contents for every member
of the topology (and client certificates for outside callers):

    python -m deploy.certificates --dir build/certs --client agent-desk
    kubectl -n tilores-x create secret generic router-tls --type=kubernetes.io/tls \
        --from-file=build/certs/secrets/router-tls/
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deploy.topology import Topology, topology_for_command
from services.runtime.identity import TRUST_DOMAIN, member_host, spiffe_id

LEAF_DAYS = 30
CA_DAYS = 5 * 365
RENEW_BEFORE = datetime.timedelta(days=7)


@dataclass(frozen=True)
class IssuedCertificate:
    cert_file: Path
    key_file: Path
    ca_file: Path

    def env(self) -> dict[str, str]:
        """The settings a mesh process reads its identity from."""
        return {
            "TLS_CERT_FILE": str(self.cert_file),
            "TLS_KEY_FILE": str(self.key_file),
            "TLS_CA_FILE": str(self.ca_file),
        }


# Where a pod finds its certificate: a `kubernetes.io/tls` Secret with the
# CA as `ca.crt` (what cert-manager writes), mounted read-only.
MOUNTED = IssuedCertificate(
    Path("/etc/tilores-x/tls/tls.crt"), Path("/etc/tilores-x/tls/tls.key"), Path("/etc/tilores-x/tls/ca.crt")
)


class MeshCertificates:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.ca_file = self.directory / "ca.pem"
        self._ca_key_file = self.directory / "ca-key.pem"

    def _now(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    def ensure_ca(self) -> None:
        if self.ca_file.exists() and self._ca_key_file.exists() and not self._expiring(self.ca_file):
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{TRUST_DOMAIN} development CA")])
        certificate = (
            self._builder(name, name, key, CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        self._write(self._ca_key_file, _key_pem(key))
        self._write(self.ca_file, certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, kind: str, name: str, dns_names: tuple[str, ...] = ()) -> IssuedCertificate:
        """The certificate of one identity (made, or renewed when near its
        end); valid for `localhost`, 127.0.0.1 and `dns_names` as a server."""
        self.ensure_ca()
        cert_file = self.directory / f"{kind}-{name}.pem"
        key_file = self.directory / f"{kind}-{name}-key.pem"
        issued = IssuedCertificate(cert_file, key_file, self.ca_file)
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(spiffe_id(kind, name)),
            x509.DNSName(member_host(kind, name)),
            x509.DNSName("localhost"),
            *(x509.DNSName(dns) for dns in dns_names),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        if key_file.exists() and self._current(cert_file, names):
            return issued
        ca_key = serialization.load_pem_private_key(self._ca_key_file.read_bytes(), password=None)
        ca = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), ca.subject, key, LEAF_DAYS)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        self._write(key_file, _key_pem(key))
        self._write(cert_file, certificate.public_bytes(serialization.Encoding.PEM))
        return issued

    def _builder(self, subject: x509.Name, issuer: x509.Name, key, days: int) -> x509.CertificateBuilder:
        now = self._now()
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
        )

    def _current(self, path: Path, names: list[x509.GeneralName]) -> bool:
        """Kept as it is: signed by this CA, not near its end, for these names."""
        if not path.exists() or self._expiring(path) or not self._signed_by_ca(path):
            return False
        found = x509.load_pem_x509_certificate(path.read_bytes()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        return set(found.value) == set(names)

    def _expiring(self, path: Path) -> bool:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        return certificate.not_valid_after_utc - self._now() < RENEW_BEFORE

    def _signed_by_ca(self, path: Path) -> bool:
        ca = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        try:
            x509.load_pem_x509_certificate(path.read_bytes()).verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(data)
        temporary.chmod(0o600)
        temporary.replace(path)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def secret_folders(
    topology: Topology, certificates: MeshCertificates, clients: tuple[str, ...] = (), members_too: bool = True
) -> dict[str, Path]:
    """Per Kubernetes Secret (`router-tls`, `envoy-tls`, `client-<name>-tls`),
    a folder with `tls.crt`, `tls.key` and `ca.crt`. A service's certificate
    names its cluster DNS names too: its peers dial the headless Service.
    Without `members_too`, the outside callers' folders only."""
    namespace = topology.kubernetes.namespace
    members: list[tuple[str, str, str, tuple[str, ...]]] = []
    if members_too:
        for spec in topology.services.values():
            k8s = spec.k8s_name
            dns = (k8s, f"{k8s}-headless", *(f"{n}.{namespace}.svc.cluster.local" for n in (k8s, f"{k8s}-headless")))
            members.append((f"{k8s}-tls", "service", spec.name, dns))
        members.append(("envoy-tls", "edge", "envoy", ("envoy-grpc", f"envoy-grpc.{namespace}.svc.cluster.local")))
    members.extend((f"client-{name}-tls", "client", name, ()) for name in clients)
    folders = {}
    for secret, kind, name, dns in members:
        issued = certificates.issue(kind, name, dns)
        folder = certificates.directory / "secrets" / secret
        folder.mkdir(parents=True, exist_ok=True)
        for source, target in ((issued.cert_file, "tls.crt"), (issued.key_file, "tls.key"), (issued.ca_file, "ca.crt")):
            shutil.copyfile(source, folder / target)
            (folder / target).chmod(0o600)
        folders[secret] = folder
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topology", default="deploy/topology.yaml")
    parser.add_argument("--dir", required=True, help="where the CA and the certificates are kept")
    parser.add_argument("--client", action="append", default=[], help="a client certificate for an outside caller")
    parser.add_argument(
        "--clients-only",
        action="store_true",
        help="only the --client folders (a team's certificate from an existing CA, e.g. make run's .data/certs)",
    )
    args = parser.parse_args(argv)
    if args.clients_only and not args.client:
        parser.error("--clients-only: name at least one --client")
    topology = topology_for_command(args.topology)
    namespace = topology.kubernetes.namespace
    folders = secret_folders(
        topology, MeshCertificates(args.dir), tuple(args.client), members_too=not args.clients_only
    )
    for secret, folder in folders.items():
        print(f"kubectl -n {namespace} create secret generic {secret} --type=kubernetes.io/tls --from-file={folder}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
