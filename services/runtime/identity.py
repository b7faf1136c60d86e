"""Who is calling: every member of the mesh proves its identity with a
certificate the mesh CA signed (mutual TLS), its identity the SPIFFE id in
the certificate (`spiffe://tilores-x/service/router`). Callers outside the
mesh reach the services through Envoy's gRPC listener with a client
certificate of their own; Envoy checks it and passes the caller's id on in
`x-forwarded-client-cert`, which a service believes only from Envoy.

TLS_CERT_FILE, TLS_KEY_FILE, TLS_CA_FILE   this process's certificate, key
                                           and the mesh CA (PEM); read at
                                           start (restart to rotate)
MESH_PLAINTEXT=true                        no TLS and no identities: a
                                           development mesh only
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import grpc

from services.runtime.settings import SettingsError, env_str

TRUST_DOMAIN = "tilores-x"


def spiffe_id(kind: str, name: str) -> str:
    """The identity of a member of the mesh: `service/<name>` for a service,
    `edge/envoy`, `client/<name>` for a caller from outside."""
    return f"spiffe://{TRUST_DOMAIN}/{kind}/{name}"


def member_host(kind: str, name: str) -> str:
    """The DNS name a member's certificate carries beside its SPIFFE id
    (`router.service.tilores-x`): gRPC checks a server by host name, not by
    URI, so a client channel asks for this name and a server holding any
    other identity (a client's certificate, another service's) is refused."""
    return f"{name.replace('_', '-')}.{kind}.{TRUST_DOMAIN}"


ENVOY = spiffe_id("edge", "envoy")
XFCC_HEADER = "x-forwarded-client-cert"
# A member's name: its kind and a lower-case name, nothing else (no `;`, `,`,
# `=` or quote that could smuggle a second name into a header).
MEMBER_NAME = re.compile(r"(?:service|client|edge)/[a-z0-9][a-z0-9_.-]{0,62}")
_PREFIX = f"spiffe://{TRUST_DOMAIN}/"


def well_formed(spiffe: str) -> bool:
    """A SPIFFE id of this mesh naming one member."""
    return spiffe.startswith(_PREFIX) and MEMBER_NAME.fullmatch(spiffe[len(_PREFIX) :]) is not None


def forwarded_elements(header: str) -> list[list[tuple[str, str]]]:
    """`x-forwarded-client-cert` by its grammar (Envoy's): elements split by
    `,`, each `key=value` pairs split by `;`, a value in double quotes when
    it holds one of `,;="` (a quote inside escaped with a backslash). Raises
    ValueError on an unterminated quote."""
    if '"' not in header:  # what Envoy sends for a well-formed certificate
        return [[_pair(p) for p in element.split(";")] for element in header.split(",")]
    elements: list[list[tuple[str, str]]] = []
    pairs: list[tuple[str, str]] = []
    token: list[str] = []
    key: str | None = None
    quoted = escaped = False
    for char in header:
        if quoted:
            if escaped:
                token.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            else:
                token.append(char)
        elif char == '"':
            quoted = True
        elif char == "=" and key is None:
            key, token = "".join(token), []
        elif char in ";,":
            pairs.append((key or "", "".join(token)))
            key, token = None, []
            if char == ",":
                elements.append(pairs)
                pairs = []
        else:
            token.append(char)
    if quoted:
        raise ValueError("x-forwarded-client-cert: a quoted value does not end")
    pairs.append((key or "", "".join(token)))
    elements.append(pairs)
    return elements


def _pair(text: str) -> tuple[str, str]:
    key, _, value = text.partition("=")
    return key, value


def forwarded_caller(header: str) -> str | None:
    """The SPIFFE id of the client Envoy verified, from the one element Envoy
    sets (SANITIZE_SET): exactly one URI, well formed, not Envoy's own; None
    for anything else (no certificate, two names, a smuggled one)."""
    try:
        elements = forwarded_elements(header)
    except ValueError:
        return None
    if len(elements) != 1:
        return None
    uris = [value for key, value in elements[0] if key.strip().lower() == "uri"]
    if len(uris) != 1 or uris[0] == ENVOY or not well_formed(uris[0]):
        return None
    return uris[0]


@dataclass(frozen=True)
class Caller:
    """A verified caller: its SPIFFE id, and how it was verified."""

    spiffe_id: str
    via_envoy: bool = False

    @property
    def name(self) -> str:
        """`service/router`, `client/ops-console`, `edge/envoy`."""
        return self.spiffe_id.removeprefix(f"spiffe://{TRUST_DOMAIN}/")


CALLER: ContextVar[Caller | None] = ContextVar("caller", default=None)


@dataclass(frozen=True)
class MeshTls:
    cert: bytes
    key: bytes
    ca: bytes

    @classmethod
    def from_files(cls, cert_file: str, key_file: str, ca_file: str) -> MeshTls:
        try:
            return cls(Path(cert_file).read_bytes(), Path(key_file).read_bytes(), Path(ca_file).read_bytes())
        except OSError as error:
            raise SettingsError(f"TLS_CERT_FILE/TLS_KEY_FILE/TLS_CA_FILE: {error}") from None

    def server_credentials(self) -> grpc.ServerCredentials:
        # A connection without a certificate of the mesh CA fails its
        # handshake; callers without one come through Envoy, which passes on
        # who they are (or that they are nobody: UNAUTHENTICATED).
        return grpc.ssl_server_credentials([(self.key, self.cert)], root_certificates=self.ca, require_client_auth=True)

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


_MESH_TLS: list[MeshTls | None] = [None]


def tls_from_env() -> MeshTls | None:
    """This process's TLS settings; None only with MESH_PLAINTEXT=true."""
    files = [env_str(name) for name in ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE")]
    if all(files):
        return MeshTls.from_files(*files)
    if env_str("MESH_PLAINTEXT").lower() == "true":
        return None
    missing = [n for n, f in zip(("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"), files, strict=True) if not f]
    raise SettingsError(
        f"{', '.join(missing)}: required, a certificate of the mesh CA proves who this process is "
        "(MESH_PLAINTEXT=true runs a development mesh without identities)"
    )


def configure_identity(tls: MeshTls | None) -> None:
    """Set once at start: the channels this process opens present it."""
    _MESH_TLS[0] = tls


def mesh_tls() -> MeshTls | None:
    return _MESH_TLS[0]


def caller_of(context: grpc.aio.ServicerContext) -> Caller | None:
    """The verified caller of a call: the peer's certificate, or, when the
    peer is Envoy, the client certificate Envoy verified; None without."""
    # The peer's subject alternative names, not auth_context(): that copies
    # every TLS property (the whole PEM certificate among them) on each call.
    uris = [name for name in context.peer_identities() or () if name.startswith(b"spiffe://")]
    # As gRPC's own peer_spiffe_id: a certificate with one SPIFFE URI, or none.
    if len(uris) != 1:
        return None
    spiffe = uris[0].decode(errors="replace")
    if not well_formed(spiffe):
        return None
    if spiffe != ENVOY:
        return Caller(spiffe)
    forwarded = next((v for k, v in context.invocation_metadata() or () if k == XFCC_HEADER), "")
    # No client certificate behind Envoy: an anonymous caller (Envoy's own
    # health checks need no identity).
    caller = forwarded_caller(forwarded if isinstance(forwarded, str) else forwarded.decode(errors="replace"))
    return Caller(caller, via_envoy=True) if caller else None
