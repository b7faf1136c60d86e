"""Build the embedded store with sample customers:
`python -m services.tilores_data.seed --db .data/tilores.db --customers 1000`;
`--list 5` prints five customers of an existing store to ask about.

The sample is dated as of the day the store is made (payments up to that
day, the next ones after it), so answers read as current; `--day` (or
SAMPLE_DAY for the service) names another day. One seed and one day give
the same store."""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date

from services.tilores_data.sample import generate_customers
from services.tilores_data.store import EmbeddedEntityStore


def sample_day(text: str) -> date:
    """The day a sample is drawn as of: YYYY-MM-DD, or today when empty."""
    if not text:
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a day as YYYY-MM-DD, got {text[:40]!r}") from None


def seed(path: str, customers: int, seed_value: int = 7, today: date | None = None) -> int:
    """Write a fresh store at `path`, dated as of `today` (default: the
    day it is made); returns the number of records."""
    tmp = f"{path}.building"
    for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
        if os.path.exists(leftover):
            os.remove(leftover)
    store = EmbeddedEntityStore(tmp)
    try:
        added = store.add_entities(
            (c.entity_id, c.records) for c in generate_customers(customers, seed_value, today or date.today())
        )
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
    parser.add_argument(
        "--day", default=os.environ.get("SAMPLE_DAY", ""), help="the day the sample is dated as of (default: today)"
    )
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
    try:
        today = sample_day(args.day)
    except ValueError as error:
        parser.error(f"--day: {error}")
    started = time.perf_counter()
    added = seed(args.db, args.customers, args.seed, today)
    print(
        f"seeded {args.customers} customers ({added} records) as of {today} into {args.db}"
        f" in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
