"""Is the database away? Telling a lost connection from a broken request.

A replica outlives its database's restarts and dropped connections: the pool
checks a connection before lending it (`pool_pre_ping`) and reconnects, so the
next request after an outage works again. What was in flight when the connection
went fails; the server answers those with a retryable 503 instead of a 500, and
this predicate is how it tells them apart from its own bugs.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

__all__ = ["is_unavailable"]

# asyncpg's own names for a connection that is gone or cannot be made (raised
# unwrapped where SQLAlchemy does not translate, e.g. from the connection creator)
_ASYNCPG_UNAVAILABLE = frozenset(
    {
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "CannotConnectNowError",
        "AdminShutdownError",
        "CrashShutdownError",
        "TooManyConnectionsError",
        "InterfaceError",
    }
)


def _one(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return True
    if isinstance(exc, OSError):  # refused, reset, timed out: also TimeoutError
        return True
    module = type(exc).__module__
    return module.startswith("asyncpg") and type(exc).__name__ in _ASYNCPG_UNAVAILABLE


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) means the database could not be reached,
    so that the same request may succeed once it is back."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _one(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
