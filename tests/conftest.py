"""Fixtures every kind of test shares: a real PostgreSQL server (started
once per session, on first use) and the optimizer's stores on it."""

from __future__ import annotations

import itertools
import os

import pytest

from services.optimizer.storage import SqliteStore
from services.optimizer.storage.postgres import PostgresStore
from services.tilores_data.sample import SAMPLE_DAY
from tests.postgres_server import postgres_server

# Every store a test's mesh seeds is dated as the customers the tests
# expect (generate_customers' default day), whatever day the tests run;
# tests of the default (today) unset it.
os.environ["SAMPLE_DAY"] = SAMPLE_DAY.isoformat()

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_url(postgres) -> str:
    """A new empty database of the session's server."""
    return postgres.create_database(f"optimizer_{next(_databases)}")


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request, tmp_path):
    """Opens the optimizer's store on each backend: SQLite (the embedded
    default) and PostgreSQL (the store replicas share). Call it again for
    a second replica's store on the same data."""
    opened = []
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")

        def make():
            opened.append(PostgresStore(url))
            return opened[-1]
    else:
        path = str(tmp_path / "optimizer.db")

        def make():
            opened.append(SqliteStore(path))
            return opened[-1]

    yield make
    for store in opened:
        store.close()
