"""Build the embedded store with sample customers:
`python -m services.tilores_data.seed --db .data/tilores.db --customers 1000`;
`--list 5` prints five customers of an existing store to ask about."""

from __future__ import annotations

import argparse
import os
import sys
import time

from services.tilores_data.sample import generate_customers
from services.tilores_data.store import EmbeddedEntityStore


def seed(path: str, customers: int, seed_value: int = 7) -> int:
    """Write a fresh store at `path`; returns the number of records."""
    tmp = f"{path}.building"
    for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
        if os.path.exists(leftover):
            os.remove(leftover)
    store = EmbeddedEntityStore(tmp)
    try:
        added = store.add_entities((c.entity_id, c.records) for c in generate_customers(customers, seed_value))
        store.checkpoint()
    finally:
        store.close()
    # Replace atomically so a running service never sees a half-built store.
    os.replace(tmp, path)
    return added


def customers_to_try(path: str, count: int) -> list[str]:
    """One line per customer: name, e-mail, client id, phone, Salesforce contact id."""
    store = EmbeddedEntityStore(path)
    try:
        lines = []
        for contact in store.first_contacts(count):
            lines.append(
                f"{contact.get('FIRST_NAME', '')} {contact.get('LAST_NAME', '')}  {contact.get('EMAIL', '')}  "
                f"client id {contact.get('CLIENT_ID', '')}  {contact.get('PHONE_NUMBER', '')}  {contact.get('id', '')}"
            )
        return lines
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True, help="SQLite file to create")
    parser.add_argument("--customers", type=int, default=1000, help="number of customers (default 1000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--list", type=int, metavar="N", help="print N customers of the existing store and exit")
    args = parser.parse_args(argv)
    if args.list is not None:
        if not os.path.exists(args.db):
            parser.error(f"--db {args.db}: no such store (make run or make seed builds it)")
        for line in customers_to_try(args.db, args.list):
            print(line)
        return 0
    if args.customers < 1:
        parser.error("--customers must be at least 1")
    started = time.perf_counter()
    added = seed(args.db, args.customers, args.seed)
    print(
        f"seeded {args.customers} customers ({added} records) into {args.db} in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
