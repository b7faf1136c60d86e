"""Limits every service and the gateway hold alike, so a bound is stated once."""

MAX_BATCH = 100  # requests in one ChatBatch, searches in one BatchSearch
DEFAULT_BATCH_CONCURRENCY = 4  # turns of a batch answered at once, unless asked
MAX_BATCH_CONCURRENCY = 16
