"""Domain faults: plain exceptions that domain modules raise without knowing
about gRPC. The server interceptor turns each into its gRPC status."""

from __future__ import annotations

# gRPC codes that are the server's fault, not its caller's: what error
# ratios count and what marks a server span as an error.
SERVER_ERRORS = frozenset({"UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"})


class Fault(Exception):
    """A failure the caller should see, with the gRPC status it maps to."""

    code = "INTERNAL"

    def __init__(self, message: str, *, field: str | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.retry_after_s = retry_after_s


class InvalidArgument(Fault):
    """The request is malformed; `field` names the offending field."""

    code = "INVALID_ARGUMENT"


class NotFound(Fault):
    """The named thing does not exist."""

    code = "NOT_FOUND"


class FailedPrecondition(Fault):
    """The request is valid but the system is not set up to serve it."""

    code = "FAILED_PRECONDITION"


class Unavailable(Fault):
    """A dependency is down; retrying later may succeed."""

    code = "UNAVAILABLE"


class DeadlineExceeded(Fault):
    """The caller's deadline ran out."""

    code = "DEADLINE_EXCEEDED"


class ResourceExhausted(Fault):
    """A quota or rate limit was reached."""

    code = "RESOURCE_EXHAUSTED"


class Unauthenticated(Fault):
    """Credentials are missing or wrong."""

    code = "UNAUTHENTICATED"


class PermissionDenied(Fault):
    """The caller is known but may not do this."""

    code = "PERMISSION_DENIED"
