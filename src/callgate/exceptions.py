"""The exception tree: one root, families a caller can catch whole or leaf by leaf.

::

    CallgateError
    ├── ValidationError            bad input; carries ``code`` and ``field``
    │   └── IdempotencyConflict    same key, different payload
    ├── NotFound                   no such job
    ├── InvalidTransition          e.g. retrying a delivered job
    ├── StoreError                 the database failed (driver errors wrapped ``from exc``)
    ├── WorkerFailed               a worker stopped on an unexpected error (see its log)
    ├── ProviderError              the provider failed
    │   ├── TransientProviderError
    │   └── PermanentProviderError
    ├── GuardrailRefusal           a guardrail refused a job
    ├── ConfigurationError         a setting is invalid
    ├── Unauthorized               the HTTP API refused the API key (401)
    ├── ApiUnavailable             the HTTP API cannot be reached, or answered 502/503/504
    └── WaitTimeout                a job did not reach the awaited status in time
                                   (also a built-in ``TimeoutError``)

Each class's docstring is its default message. ``code`` is the stable, documented
machine-readable name the CLI and the HTTP API show. An error raised by
:mod:`callgate.client` is the class matching the API's ``code`` (``ValidationError``
for 400s, ``IdempotencyConflict``, ``InvalidTransition``, ``NotFound``, ``StoreError``
for 503 ``store_error``, ...) with ``code`` and ``field`` as the API sent them and the
HTTP status in ``http_status``.
"""

from __future__ import annotations


class CallgateError(Exception):
    """callgate failed."""

    code = "internal_error"
    #: the HTTP status the API answered with, on errors raised by :mod:`callgate.client`
    http_status: int | None = None

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.field = field
        super().__init__(self.message)

    def to_dict(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "field": self.field}


class ValidationError(CallgateError):
    """The request is invalid."""

    code = "invalid_request"

    def __init__(
        self, message: str | None = None, *, field: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message, field=field)
        if code is not None:
            self.code = code


class IdempotencyConflict(ValidationError):
    """This idempotency key was already used with a different request."""

    code = "idempotency_conflict"


class NotFound(CallgateError):
    """No such job."""

    code = "not_found"


class InvalidTransition(CallgateError):
    """The job is not in a state that allows this."""

    code = "invalid_state"


class StoreError(CallgateError):
    """The database failed."""

    code = "store_error"
    #: the connection was lost: a write may or may not have committed
    maybe_committed = False


class WorkerFailed(CallgateError):
    """The worker stopped on an unexpected error (see its log)."""

    code = "worker_failed"


class ProviderError(CallgateError):
    """The provider failed."""

    code = "provider_error"


class TransientProviderError(ProviderError):
    """The provider failed in a way that may pass."""


class PermanentProviderError(ProviderError):
    """The provider refused the request for good."""


class GuardrailRefusal(CallgateError):
    """A guardrail refused the job."""

    code = "guardrail_refusal"


class ConfigurationError(CallgateError):
    """A setting is invalid."""

    code = "invalid_configuration"


class Unauthorized(CallgateError):
    """The API key is missing, unknown or revoked."""

    code = "unauthorized"


class ApiUnavailable(CallgateError):
    """The callgate API cannot be reached."""

    code = "api_unavailable"


class WaitTimeout(CallgateError, TimeoutError):
    """The job did not reach the awaited status in time."""

    code = "timeout"
