"""One exception tree for everything vlmkit raises.

Every error derives from :class:`VlmkitError`, so ``except vlmkit.VlmkitError`` catches all
expected failures. Messages say what happened and what to do next; causes are chained with
``raise ... from err``. No message ever contains a credential.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BackendError",
    "BackendNotFound",
    "Blocked",
    "ConfigError",
    "InvalidRequest",
    "MediaError",
    "ParseError",
    "PluginError",
    "RateLimited",
    "SinkError",
    "TransientError",
    "UnsupportedTask",
    "VlmkitError",
    "error_named",
]


class VlmkitError(Exception):
    """Base class of every error vlmkit raises on purpose."""


class ConfigError(VlmkitError, ValueError):
    """An option, setting or argument is invalid (unknown key, value out of range, ...)."""


class ParseError(VlmkitError, ValueError):
    """Model output could not be turned into a result.

    ``raw_text`` keeps the complete text the model produced, so nothing is lost and the answer
    can be re-parsed later (for example after fixing a prompt) without calling the model again.
    """

    def __init__(self, message: str, *, raw_text: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.raw_text = raw_text
        self.reason = reason or message

    def __reduce__(self):  # keep raw_text when pickled across processes
        return (_rebuild_parse_error, (str(self), self.raw_text, self.reason))


def _rebuild_parse_error(message: str, raw_text: str, reason: str) -> ParseError:
    return ParseError(message, raw_text=raw_text, reason=reason)


class MediaError(VlmkitError, ValueError):
    """An image or video could not be loaded or encoded (unreadable, corrupt, too large, ...)."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class PluginError(VlmkitError):
    """A plugin failed to load or registered something invalid or conflicting."""


class BackendNotFound(PluginError, LookupError):
    """No installed plugin provides the requested backend or sink name."""


class UnsupportedTask(VlmkitError):
    """The selected backend does not support a task or medium.

    ``alternatives`` names installed backends that do support it.
    """

    def __init__(self, message: str, *, task: str = "", alternatives: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.task = task
        self.alternatives = alternatives


class BackendError(VlmkitError):
    """A backend (model, API, local runtime) failed to produce an answer."""

    retryable: bool = False


class TransientError(BackendError):
    """A failure that may go away on retry: 5xx, timeout, dropped connection."""

    retryable = True


class RateLimited(TransientError):
    """The provider refused the request for now (HTTP 429). ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AuthError(BackendError):
    """Credentials are missing, invalid or lack permission."""


class InvalidRequest(BackendError):
    """The provider rejected the request as invalid (bad option, unsupported setting, too large)."""


class Blocked(BackendError):
    """The provider refused to answer (safety filter, blocked prompt)."""


class SinkError(VlmkitError):
    """A sink could not write its output."""


def error_named(type_name: str, message: str) -> VlmkitError:
    """The vlmkit error class ``type_name`` (``"AuthError"``) with ``message``: an error raised
    in another process (an engine's worker), raised here as the same kind. A name that is not
    a vlmkit error, or a class that needs more arguments, gives a plain :class:`VlmkitError`."""
    kind = globals().get(type_name)
    if isinstance(kind, type) and issubclass(kind, VlmkitError):
        try:
            return kind(message)
        except TypeError:  # an error class with required extra arguments
            pass
    return VlmkitError(message)
