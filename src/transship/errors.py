"""Typed errors raised by the library; only cli/ turns them into exit codes and messages.

Every message is one line that says what is wrong and, where it helps, what to do.
Messages never contain passwords or tokens.
"""


class TransshipError(Exception):
    """Base of every error transship raises on purpose."""


class ReferenceError_(TransshipError):
    """An image reference that cannot be parsed."""


class ConfigError(TransshipError):
    """A configuration file or option that is wrong."""


class RegistryError(TransshipError):
    """A registry answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class AuthError(RegistryError):
    """Credentials are missing or wrong."""


class NotFoundError(RegistryError):
    """The manifest, blob or repository does not exist."""


class TransientError(RegistryError):
    """A failure worth retrying: connection reset, timeout, 5xx, 429."""


class DigestMismatchError(TransshipError):
    """Bytes did not hash to the digest they were supposed to have."""


class UnsupportedError(TransshipError):
    """A format or media type transship deliberately does not handle (e.g. schema 1)."""


class BundleError(TransshipError):
    """A bundle is missing files, corrupt, or inconsistent."""


class Cancelled(TransshipError):
    """The user asked the run to stop; work not yet started was skipped."""
