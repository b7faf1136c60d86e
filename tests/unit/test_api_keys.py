"""The key file: records named, hashes only, refused by field when wrong."""

import re

import pytest
import yaml

from deploy.local_mesh import LocalMesh
from deploy.topology import load_topology
from gateway.api_keys import ApiKeys, KeyFileError, add_key, digest_of, read_key_file, revoke_key
from gateway.openai_errors import OpenAIError


def test_a_key_is_stored_as_a_hash_and_read_back_as_a_record(tmp_path):
    path = tmp_path / "keys.yaml"
    key = add_key(path, "desk-1", ["chat", "models"], tenant="acme")
    assert key not in path.read_text()
    [record] = read_key_file(path.read_text())
    assert (record.id, record.tenant, record.scopes) == ("desk-1", "acme", frozenset({"chat", "models"}))
    assert record.digest == digest_of(key) and record.limits["requests_per_minute"] == 100
    with pytest.raises(KeyFileError, match="desk-1"):
        add_key(path, "desk-1", ["chat"])
    revoke_key(path, "desk-1")
    assert read_key_file(path.read_text()) == []


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"id": "a", "sha256": "xyz"}, "keys[0].sha256"),
        ({"sha256": "0" * 64}, "keys[0].id"),
        ({"id": "a", "sha256": "0" * 64, "scopes": ["root"]}, "keys[0].scopes"),
        ({"id": "a", "sha256": "0" * 64, "limits": {"requests_per_minute": 0}}, "keys[0].limits.requests_per_minute"),
        ({"id": "a", "sha256": "0" * 64, "owner": "me"}, "keys[0].owner"),
    ],
)
def test_a_bad_entry_is_named(entry, field):
    with pytest.raises(KeyFileError, match=re.escape(field)):
        read_key_file(yaml.safe_dump({"keys": [entry]}))


class _Request:
    """What ApiKeys reads of a request: its Authorization header."""

    def __init__(self, key: str):
        self._key = key.encode()

    def header(self, name: bytes) -> bytes:
        return b"Bearer " + self._key if name == b"authorization" else b""


def _clock():
    now = [0.0]

    def clock() -> float:
        now[0] += 2.0  # every check is past the reload interval
        return now[0]

    return clock


def test_a_revoked_key_is_refused_wherever_else_it_is_named(tmp_path):
    path = tmp_path / "keys.yaml"
    key = add_key(path, "desk-1", ["chat"], key="sk-also-in-the-environment")
    keys = ApiKeys(keys=("sk-also-in-the-environment", "sk-env-only"), key_file=str(path), clock=_clock())
    assert keys.verify(_Request(key)).id == "desk-1"
    revoke_key(path, "desk-1")
    with pytest.raises(OpenAIError) as refused:
        keys.verify(_Request(key))
    assert refused.value.status == 401
    # A key given only in GATEWAY_API_KEYS is revoked by its value.
    assert keys.verify(_Request("sk-env-only")).id == "key-2"
    revoke_key(path, key="sk-env-only")
    with pytest.raises(OpenAIError):
        keys.verify(_Request("sk-env-only"))
    # A revoked key never comes back, by the command or by hand.
    with pytest.raises(KeyFileError, match="revoked"):
        add_key(path, "desk-1", ["chat"], key=key)
    data = yaml.safe_load(path.read_text())
    data["keys"].append({"id": "again", "sha256": digest_of(key).hex()})
    with pytest.raises(KeyFileError, match=re.escape("keys[0]: this key was revoked")):
        read_key_file(yaml.safe_dump(data))
    assert {entry["id"] for entry in data["revoked"]} == {"desk-1", "(given by value)"}


def test_a_customer_facing_key_needs_the_public_key_of_its_tokens(tmp_path):
    with pytest.raises(KeyFileError, match=re.escape("keys[0].token_key: a customer-facing key needs")):
        read_key_file(yaml.safe_dump({"keys": [{"id": "w", "sha256": "0" * 64, "audience": "client"}]}))
    entry = {"id": "w", "sha256": "0" * 64, "audience": "client", "token_key": "not a key"}
    with pytest.raises(KeyFileError, match=re.escape("keys[0].token_key: expected a PEM public key")):
        read_key_file(yaml.safe_dump({"keys": [entry]}))
    entry = {"id": "a", "sha256": "0" * 64, "token_key": "x"}
    with pytest.raises(KeyFileError, match=re.escape("keys[0].token_key: only a customer-facing key")):
        read_key_file(yaml.safe_dump({"keys": [entry]}))


def test_make_run_keeps_the_keys_an_operator_added(tmp_path):
    """The local runner puts its dev keys into the key file at every start
    and leaves every other record (and every revocation) as it found it."""
    first = LocalMesh(load_topology("deploy/topology.yaml"), tmp_path, api_key="sk-dev-a")
    path = first._key_file()
    added = add_key(path, "desk-7", ["chat"])
    revoke_key(path, key="sk-old")
    again = LocalMesh(load_topology("deploy/topology.yaml"), tmp_path, api_key="sk-dev-a")
    records = {record.id: record for record in read_key_file(again._key_file().read_text())}
    assert set(records) == {"dev", "dev-admin", "desk-7"}
    assert records["desk-7"].digest == digest_of(added)
    assert "revoked" in yaml.safe_load(path.read_text())
