"""MeshCredentials: the caller's client certificate, its key and the mesh
CA, from a folder, three files or the environment.

Every call on the mesh's gRPC port is mutual TLS: the mesh knows the caller
by the `spiffe://tilores-x/client/<name>` in its certificate and grants it
scopes by that name.

The folder is what a `kubernetes.io/tls` Secret mounts (what cert-manager
and `python -m deploy.certificates --client <name>` write): `tls.crt`,
`tls.key`, `ca.crt`.

Environment (`MeshCredentials.from_env`, `MeshClient.from_env`):

TILORES_X_ADDR            the mesh's gRPC address, `envoy-grpc.tilores-x:9090`
TILORES_X_TLS_DIR         the folder above
TILORES_X_TLS_CERT_FILE   or the three files one by one
TILORES_X_TLS_KEY_FILE
TILORES_X_TLS_CA_FILE
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

FILE_SETTINGS = ("TILORES_X_TLS_CERT_FILE", "TILORES_X_TLS_KEY_FILE", "TILORES_X_TLS_CA_FILE")


class CredentialsError(ValueError):
    """The certificate, its key or the CA cannot be read; the message names which."""


@dataclass(frozen=True, repr=False)
class MeshCredentials:
    """PEM bytes of the client certificate (chain), its private key and the mesh CA."""

    certificate: bytes
    private_key: bytes
    ca: bytes

    def __repr__(self) -> str:  # the key never reaches a log line
        return "MeshCredentials(<certificate>, <private key>, <ca>)"

    @classmethod
    def from_files(
        cls, cert_file: str | os.PathLike[str], key_file: str | os.PathLike[str], ca_file: str | os.PathLike[str]
    ) -> MeshCredentials:
        return cls(_read(cert_file, "certificate"), _read(key_file, "private key"), _read(ca_file, "CA"))

    @classmethod
    def from_dir(cls, directory: str | os.PathLike[str]) -> MeshCredentials:
        """A mounted `kubernetes.io/tls` Secret: `tls.crt`, `tls.key`, `ca.crt`."""
        folder = Path(directory)
        if not folder.is_dir():
            raise CredentialsError(f"certificate folder {str(folder)!r}: not a folder")
        return cls.from_files(folder / "tls.crt", folder / "tls.key", folder / "ca.crt")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MeshCredentials:
        env = os.environ if environ is None else environ
        if env.get("TILORES_X_TLS_DIR"):
            return cls.from_dir(env["TILORES_X_TLS_DIR"])
        files = [env.get(name, "") for name in FILE_SETTINGS]
        if all(files):
            return cls.from_files(*files)
        missing = [name for name, value in zip(FILE_SETTINGS, files, strict=True) if not value]
        raise CredentialsError(f"set TILORES_X_TLS_DIR, or {', '.join(missing)} beside the others")

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.private_key, certificate_chain=self.certificate
        )


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise CredentialsError(f"{what} {str(path)!r}: {error.strerror or error}") from None
    if b"-----BEGIN " not in data:
        raise CredentialsError(f"{what} {str(path)!r}: not PEM")
    return data
