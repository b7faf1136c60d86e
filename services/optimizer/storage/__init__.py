"""What the optimizer keeps: prompts and their history, experiments,
outcomes, alerts, improvement cycles and evaluation runs.

- `schema.py`: the tables, as one list of versioned migrations;
- `statements.py`: every statement the optimizer runs, by name;
- `statement.py`: a statement written once, spelled for each driver;
- `store.py`: the surface both engines share (`OptimizerStore`);
- `sqlite.py`: `SqliteStore`, the embedded default (one file);
- `postgres.py`: `PostgresStore`, the store several replicas share.

SQL lives only in this package."""

from services.optimizer.storage.sqlite import SqliteStore
from services.optimizer.storage.store import Connection, OptimizerStore

__all__ = ["Connection", "OptimizerStore", "SqliteStore"]
