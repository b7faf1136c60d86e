"""CustomerDirectory: customers named for an auditor, each look on record."""

from __future__ import annotations

import orjson
import pytest

from services.router.customer_directory import MAX_NAMED, CustomerDirectory
from services.router.ports import CustomerMatch, CustomerProfile, NoSuchCustomer
from services.runtime.faults import InvalidArgument

EDWINA = {"FIRST_NAME": "Edwina", "LAST_NAME": "Hawthorne", "EMAIL": "edwina.hawthorne@example.com"}


class Customers:
    """Customer data with two customers, one of them unnamed."""

    def __init__(self):
        self.searched: list[dict[str, str]] = []

    async def find(self, parameters, tenant, timeout_s):
        self.searched.append(parameters)
        if parameters.get("EMAIL") == EDWINA["EMAIL"]:
            return [
                CustomerMatch("e-1", (orjson.dumps({"SOURCE": "Transaction"}).decode(), orjson.dumps(EDWINA).decode()))
            ]
        return []

    async def profile(self, entity_id, tenant, timeout_s):
        names = {"e-1": "Edwina Hawthorne", "e-2": ""}
        if entity_id not in names:
            raise NoSuchCustomer(entity_id)
        return CustomerProfile(entity_id, names[entity_id], {}, {})


class Access:
    def __init__(self):
        self.recorded: list[tuple[list[str], str, set[str]]] = []

    def record(self, entity_ids, action, field_kinds):
        self.recorded.append((entity_ids, action, field_kinds))


async def test_an_identifier_finds_whom_it_names_and_the_look_is_recorded():
    access = Access()
    directory = CustomerDirectory(Customers(), access)
    [edwina] = await directory.find("Edwina.Hawthorne@example.com", "t", 1.0)
    assert (edwina.entity_id, edwina.name) == ("e-1", "Edwina Hawthorne")  # from the record that has a name
    assert access.recorded == [(["e-1"], "access_log.lookup", {"identity"})]
    assert await directory.find("nobody@example.org", "t", 1.0) == []
    assert len(access.recorded) == 1  # nobody found: nobody looked at


async def test_entity_ids_are_named_in_order_and_unknown_ones_left_out():
    access = Access()
    directory = CustomerDirectory(Customers(), access)
    named = await directory.names(["e-2", "e-9", "e-1", "e-2"], "t", 1.0)
    assert [(n.entity_id, n.name) for n in named] == [("e-2", ""), ("e-1", "Edwina Hawthorne")]
    assert access.recorded == [(["e-2", "e-1"], "access_log.lookup", {"identity"})]


async def test_what_is_no_identifier_or_too_many_ids_is_refused_by_name():
    directory = CustomerDirectory(Customers(), None)
    with pytest.raises(InvalidArgument) as refused:
        await directory.find("hello there", "t", 1.0)
    assert refused.value.field == "identifier"
    with pytest.raises(InvalidArgument) as refused:
        await directory.names([f"e-{n}" for n in range(MAX_NAMED + 1)], "t", 1.0)
    assert refused.value.field == "entity_ids"
