"""router: one chat turn, from question to grounded answer stream."""
