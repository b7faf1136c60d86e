"""Provider faults: one mapping from an upstream failure (an HTTP status, a
timeout, a refused connection, a broken stream) to the fault the caller
sees, shared by every provider. Messages never echo API keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from services.runtime.faults import (
    DeadlineExceeded,
    FailedPrecondition,
    Fault,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    raw = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(raw)) if raw else None
    except ValueError:
        return None


def status_fault(provider: str, status: int, message: str = "", retry_after: float | None = None) -> Fault:
    """The fault for an HTTP status from a provider."""
    if status == 429:
        return ResourceExhausted(f"{provider}: rate limited by the provider", retry_after_s=retry_after)
    if status in (401, 403):
        return FailedPrecondition(f"{provider}: the provider rejected the configured API key")
    if status == 404:
        return NotFound(f"{provider}: the provider does not know this model", field="model")
    if status in (400, 422):
        return InvalidArgument(f"{provider}: {message or 'the provider rejected the request'}")
    if status == 408:
        return DeadlineExceeded(f"{provider}: the provider timed out")
    return Unavailable(f"{provider}: the provider failed with HTTP {status}", retry_after_s=retry_after)


def timeout_fault(provider: str) -> Fault:
    return DeadlineExceeded(f"{provider}: the provider did not answer in time")


def timeout_or_connection_fault(provider: str, error: BaseException) -> Fault:
    """An SDK's timeout error: some HTTP transports report a refused or
    failed connection as a connect timeout, which is no timeout at all."""
    return connection_fault(provider) if is_connect_failure(error) else timeout_fault(provider)


def is_connect_failure(error: BaseException | None) -> bool:
    """A connection that could not be made or broke (refused, reset, no
    route, no such host) somewhere in the exception's cause chain."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, TimeoutError):
            return False
        if isinstance(error, OSError):
            return True
        error = error.__cause__ or error.__context__
    return False


def connection_fault(provider: str) -> Fault:
    return Unavailable(f"{provider}: cannot reach the provider")


def broken_stream_fault(provider: str, what: str) -> Fault:
    return Unavailable(f"{provider}: the provider stream broke ({what})")


def unsupported(provider: str, field: str, why: str = "") -> InvalidArgument:
    detail = f": {why}" if why else ""
    return InvalidArgument(f"{provider} cannot honour '{field}'{detail}", field=field)


def is_transport_error(error: BaseException) -> bool:
    """A network or protocol error of an HTTP stack, raised while the body
    of a stream was being read (httpx, httpx2, httpcore or aiohttp)."""
    return type(error).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2", "aiohttp")


@contextmanager
def translated(translate: Callable[[Exception], Exception]) -> Iterator[None]:
    """An error raised inside becomes the Fault `translate` says it is; a
    Fault, and an error `translate` returns as it is, pass unchanged."""
    try:
        yield
    except Fault:
        raise
    except Exception as error:
        fault = translate(error)
        if fault is error:
            raise
        raise fault from None
