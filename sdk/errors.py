"""Errors raised by the SDK: one root, a subclass per HTTP status, and the waiting errors.

Catch `TagrecError` for everything, `APIStatusError` for any answer the server refused, or a
status class (e.g. `NotFoundError`) for one case.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResourceFailedError",
    "ServiceUnavailableError",
    "TagrecError",
    "UnprocessableEntityError",
    "WaitTimeoutError",
    "status_error",
]


class TagrecError(Exception):
    """Root of every error the SDK raises."""


class APIConnectionError(TagrecError):
    """The server could not be reached (refused, reset, DNS, ...)."""

    def __init__(self, message: str = "could not connect to the tagrec server") -> None:
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """The request timed out."""

    def __init__(self, message: str = "the request to the tagrec server timed out") -> None:
        super().__init__(message)


class APIStatusError(TagrecError):
    """The server answered with an error status.

    Attributes:
        status_code: The HTTP status.
        error_type: The server's machine-readable error type (e.g. ``validation_error``).
        message: The server's human-readable message.
        field: The request field the error is about, when the server named one.
        request_id: The ``X-Request-Id`` of the answer, to quote when reporting a problem.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_type: str = "error",
        field: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.error_type = error_type
        self.message = message
        self.field = field
        self.request_id = request_id
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"{self.status_code} {self.error_type}: "
        if self.field:
            text += f"field {self.field!r}: "
        text += " ".join(self.message.split())
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class BadRequestError(APIStatusError):
    """400: the request is malformed or invalid."""


class AuthenticationError(APIStatusError):
    """401: missing or wrong API key."""


class PermissionDeniedError(APIStatusError):
    """403: the key may not do this."""


class NotFoundError(APIStatusError):
    """404: no such resource."""


class ConflictError(APIStatusError):
    """409: the resource exists, is busy, or still has children."""


class PayloadTooLargeError(APIStatusError):
    """413: the body is over the server's limit."""


class UnprocessableEntityError(APIStatusError):
    """422: the body failed validation."""


class RateLimitError(APIStatusError):
    """429: too many requests (retried automatically before being raised)."""


class InternalServerError(APIStatusError):
    """5xx: the server failed."""


class ServiceUnavailableError(InternalServerError):
    """503: the server is overloaded or starting (retried automatically before being raised)."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def status_error(
    status_code: int, body: Any, *, request_id: str | None = None, reason: str = ""
) -> APIStatusError:
    """Build the error for an error answer.

    Args:
        status_code: The HTTP status.
        body: The decoded JSON body, ideally ``{"error": {"type", "message", "field"}}``;
            anything else is tolerated.
        request_id: The answer's request id, if any.
        reason: Fallback message (e.g. the status reason phrase) when the body has none.

    Returns:
        An instance of the class for `status_code`.
    """
    cls = _BY_STATUS.get(status_code) or (
        InternalServerError if status_code >= 500 else APIStatusError
    )
    err = body.get("error") if isinstance(body, dict) else None
    if not isinstance(err, dict):
        err = {}
    return cls(
        str(err.get("message") or reason or "no message"),
        status_code=status_code,
        error_type=str(err.get("type") or "http_error"),
        field=err.get("field") or None,
        request_id=request_id,
    )


class ResourceFailedError(TagrecError):
    """A long-running resource ended in ``CREATE_FAILED``.

    Attributes:
        resource: The resource as last retrieved.
        failure_reason: Why it failed, as the server reported it.
    """

    def __init__(self, resource: Any) -> None:
        self.resource = resource
        self.failure_reason: str | None = getattr(resource, "failure_reason", None)
        kind = type(resource).__name__
        name = getattr(resource, "name", "?")
        super().__init__(f"{kind} {name!r} failed: {self.failure_reason or 'no reason given'}")


class WaitTimeoutError(TagrecError):
    """A resource did not reach a terminal status in time.

    Attributes:
        resource: The resource as last retrieved.
        timeout: The timeout in seconds.
    """

    def __init__(self, resource: Any, timeout: float) -> None:
        self.resource = resource
        self.timeout = timeout
        kind = type(resource).__name__
        name = getattr(resource, "name", "?")
        status = getattr(getattr(resource, "status", None), "value", "?")
        super().__init__(f"{kind} {name!r} is still {status} after {timeout:g}s")
