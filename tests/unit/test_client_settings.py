"""tilores_x_client's certificate settings and retry policy: a missing or
wrong file is named, the key never shows, waits grow and stay bounded."""

from __future__ import annotations

import random
from pathlib import Path

import grpc
import pytest
from tilores_x_client import CredentialsError, MeshClient, MeshCredentials, RetryPolicy

from deploy.certificates import MeshCertificates, secret_folders
from deploy.topology import load_topology


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A certificate folder as a kubernetes.io/tls Secret mounts it."""
    topology = load_topology("deploy/topology.yaml")
    return secret_folders(topology, MeshCertificates(tmp_path / "certs"), ("team",), members_too=False)[
        "client-team-tls"
    ]


def test_a_folder_a_secret_mounts_is_read(folder: Path):
    credentials = MeshCredentials.from_dir(folder)
    assert credentials.certificate.startswith(b"-----BEGIN CERTIFICATE-----")
    assert b"PRIVATE KEY" in credentials.private_key
    assert isinstance(credentials.channel_credentials(), grpc.ChannelCredentials)


def test_the_key_never_shows_in_a_repr(folder: Path):
    credentials = MeshCredentials.from_dir(folder)
    assert "PRIVATE" not in repr(credentials) and "BEGIN" not in repr(credentials)


def test_a_missing_file_is_named(folder: Path):
    (folder / "tls.key").unlink()
    with pytest.raises(CredentialsError, match=r"private key '.*client-team-tls/tls\.key': No such file"):
        MeshCredentials.from_dir(folder)


def test_a_file_that_is_not_pem_is_named(folder: Path):
    (folder / "ca.crt").write_bytes(b"\x00\x01 not a certificate")
    with pytest.raises(CredentialsError, match=r"CA '.*ca\.crt': not PEM"):
        MeshCredentials.from_dir(folder)


def test_a_folder_that_is_not_there_is_named(tmp_path: Path):
    with pytest.raises(CredentialsError, match="not a folder"):
        MeshCredentials.from_dir(tmp_path / "nowhere")


def test_the_environment_takes_a_folder_or_three_files(folder: Path):
    assert MeshCredentials.from_env({"TILORES_X_TLS_DIR": str(folder)}).ca.startswith(b"-----BEGIN")
    files = {
        "TILORES_X_TLS_CERT_FILE": str(folder / "tls.crt"),
        "TILORES_X_TLS_KEY_FILE": str(folder / "tls.key"),
        "TILORES_X_TLS_CA_FILE": str(folder / "ca.crt"),
    }
    assert MeshCredentials.from_env(files) == MeshCredentials.from_dir(folder)
    del files["TILORES_X_TLS_KEY_FILE"]
    with pytest.raises(CredentialsError, match="set TILORES_X_TLS_DIR, or TILORES_X_TLS_KEY_FILE beside the others"):
        MeshCredentials.from_env(files)


async def test_the_client_needs_an_address_and_one_kind_of_credentials(folder: Path):
    with pytest.raises(CredentialsError, match="TILORES_X_ADDR"):
        MeshClient.from_env({"TILORES_X_TLS_DIR": str(folder)})
    with pytest.raises(CredentialsError, match="one of them"):
        MeshClient("localhost:9090")
    with pytest.raises(CredentialsError, match="one of them"):
        MeshClient("localhost:9090", tls_dir=folder, credentials=MeshCredentials.from_dir(folder))
    with pytest.raises(ValueError, match="deadline"):
        MeshClient("localhost:9090", tls_dir=folder, deadline=0)
    client = MeshClient.from_env({"TILORES_X_ADDR": "localhost:9090", "TILORES_X_TLS_DIR": str(folder)}, deadline=3)
    assert (client.address, client.deadline, client.chat_deadline) == ("localhost:9090", 3, 120.0)
    await client.close()


def test_only_unavailable_before_any_message_and_within_the_attempts_is_retried():
    policy = RetryPolicy(attempts=3)
    assert policy.retries(grpc.StatusCode.UNAVAILABLE, 1, answered=False)
    assert policy.retries(grpc.StatusCode.UNAVAILABLE, 2, answered=False)
    assert not policy.retries(grpc.StatusCode.UNAVAILABLE, 3, answered=False)
    assert not policy.retries(grpc.StatusCode.UNAVAILABLE, 1, answered=True)
    for code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL):
        assert not policy.retries(code, 1, answered=False)


def test_waits_grow_with_full_jitter_up_to_the_ceiling():
    policy = RetryPolicy(initial_backoff=0.2, max_backoff=1.0, multiplier=2)
    rng = random.Random(7)
    for attempt, ceiling in ((1, 0.2), (2, 0.4), (3, 0.8), (4, 1.0), (9, 1.0)):
        waits = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # the whole range is used, not a fixed step


@pytest.mark.parametrize(
    ("options", "named"),
    [({"attempts": 0}, "attempts"), ({"initial_backoff": 3.0}, "initial_backoff"), ({"multiplier": 0.5}, "multiplier")],
)
def test_a_policy_that_makes_no_sense_is_refused_naming_the_setting(options, named):
    with pytest.raises(ValueError, match=named):
        RetryPolicy(**options)
