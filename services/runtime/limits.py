"""Limits every service and the gateway hold alike, so a bound is stated once."""

from services.runtime.faults import InvalidArgument

MAX_BATCH = 100  # requests in one ChatBatch, searches in one BatchSearch
DEFAULT_BATCH_CONCURRENCY = 4  # turns of a batch answered at once, unless asked
MAX_BATCH_CONCURRENCY = 16
DEFAULT_SEARCH_CONCURRENCY = 8  # searches of a BatchSearch run at once, unless asked
MAX_SEARCH_CONCURRENCY = 32
MAX_TOOL_RESULTS_SCORED = 16  # the caller's own tool results an outcome carries to its scorer
# The largest gRPC message a service sends or takes. A turn carries the
# gateway's 4 MiB body as text, and more on its way to the model: the
# prompt, the context, masking that lengthens what it hides.
MAX_GRPC_MESSAGE_BYTES = 16 * 1024 * 1024

# A message is answered whole, but it is searched for the customer it names
# and the topics it asks only in its first and last READ_EDGE_CHARS
# characters: a question sits at a pasted document's start or end, and the
# search costs microseconds a match, so a message of megabytes costs what
# one of 16 KiB does.
READ_EDGE_CHARS = 8_192


def read_edges(text: str) -> str:
    """The part of a message that is searched: all of a short one, else its
    first and last READ_EDGE_CHARS characters with a paragraph between
    (so no identifier is made of the two ends)."""
    if len(text) <= 2 * READ_EDGE_CHARS:
        return text
    return f"{text[:READ_EDGE_CHARS]}\n\n{text[-READ_EDGE_CHARS:]}"


# A list an operator pages through (experiments, evaluation runs).
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100


def list_limit(requested: int) -> int:
    """How many items a list answers with: `requested`, 0 for the default."""
    if requested < 0 or requested > MAX_LIST_LIMIT:
        raise InvalidArgument(f"limit: 1 to {MAX_LIST_LIMIT} (0: {DEFAULT_LIST_LIMIT})", field="limit")
    return requested or DEFAULT_LIST_LIMIT
