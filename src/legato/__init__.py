"""Legato: open-source customer journey orchestration.

The public API is what `__all__` lists; everything else is internal and may change.
"""

from __future__ import annotations

from legato.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LegatoError,
    NotFound,
    Permanent,
    ProviderError,
    Retryable,
    Unauthorized,
)
from legato.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "LegatoError",
    "NotFound",
    "Permanent",
    "ProviderError",
    "Retryable",
    "Settings",
    "Unauthorized",
    "__version__",
]
