"""The errors of the ``reg`` package: one base class, :class:`RegError`, that
carries reg's own one-line message and its exit code."""

from typing import Optional


class RegError(RuntimeError):
    """``reg`` failed. ``str(err)`` is reg's one-line message (without the
    ``reg: error:`` prefix); ``code`` is its exit code: 1 for a bad input or
    request (unknown ref, unreadable file, existing output), 2 for damage
    found in the registry."""

    def __init__(self, message: str, code: int = 1, command: Optional[str] = None):
        super().__init__(message)
        #: The exit code of the reg process.
        self.code = code
        #: The reg subcommand that failed (``push``, ``show`` ...), when known.
        self.command = command


class VersionNotFoundError(RegError):
    """The name or ref matches no version (``reg``'s "no model named ..." and
    "... matches no version" errors). The only error that means "not there"."""


class BinaryNotFoundError(RegError):
    """No usable ``reg`` binary: not in this package's wheel, not at
    ``$REG_BIN``, not on ``PATH``."""


# Messages reg prints (crates/reg-registry/src/error/mod.rs) when a name or ref
# resolves to nothing; everything else is a real failure.
_NOT_FOUND_PREFIXES = ("no model named ",)
_NOT_FOUND_INFIXES = (" matches no version",)


def classify(message: str, code: int, command: Optional[str] = None) -> RegError:
    """The :class:`RegError` subclass for one failed reg run."""
    if code == 1 and (message.startswith(_NOT_FOUND_PREFIXES) or any(s in message for s in _NOT_FOUND_INFIXES)):
        return VersionNotFoundError(message, code, command)
    return RegError(message, code, command)
