"""Legato's one exception tree.

    LegatoError
    ├── InvalidInput        bad input from a caller (API → 400/422, CLI → exit 2)
    │   └── PayloadTooLarge (API → 413)
    ├── NotFound            (API → 404)
    ├── Conflict            (API → 409)
    ├── Unauthorized        missing or unknown credentials (API → 401)
    │   └── Forbidden       known credentials without the role (API → 403)
    └── ProviderError       a channel provider or outbound call failed
        ├── Retryable       try again later (timeouts, 429, 5xx)
        └── Permanent       never retry (invalid recipient, 4xx)

Adapters translate driver and HTTP errors into this tree at the boundary; the API maps it to
status codes in one place (`legato.api.errors`). Nothing outside this module defines a new root.
"""

from __future__ import annotations

from typing import Any


class LegatoError(Exception):
    """Root of every error Legato raises on purpose."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The error as the JSON body the API answers with."""
        body: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        body.update(self.details)
        return body


class InvalidInput(LegatoError):
    """The caller sent something malformed; `details` names the field or path at fault."""


class PayloadTooLarge(InvalidInput):
    """A body or message is over a configured size limit."""


class NotFound(LegatoError):
    """The thing asked for does not exist (in this workspace)."""


class Conflict(LegatoError):
    """The request contradicts the current state (duplicate key, wrong lifecycle step)."""


class Unauthorized(LegatoError):
    """Credentials are missing or unknown."""


class Forbidden(Unauthorized):
    """Credentials are valid but lack the role the operation needs."""


class ProviderError(LegatoError):
    """A channel provider or an outbound call failed."""


class Retryable(ProviderError):
    """A failure worth retrying later (timeout, rate limit, server error)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class Permanent(ProviderError):
    """A failure that will not go away by retrying (bad recipient, rejected content)."""
