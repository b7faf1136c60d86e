"""The key file: records named, hashes only, refused by field when wrong."""

import re

import pytest
import yaml

from gateway.api_keys import KeyFileError, add_key, digest_of, read_key_file, revoke_key


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
