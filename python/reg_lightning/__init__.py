"""The old import name of :mod:`reg.lightning`, kept so existing code and
the ``reg_lightning`` docs keep working. New code: ``import reg.lightning``."""

from typing import Any

from reg.errors import BinaryNotFoundError, RegError, VersionNotFoundError
from reg.fs import RegFileSystem, fetch, register
from reg.registry import Registry

#: The old name of :class:`reg.Registry`.
RegClient = Registry
#: The old name of :class:`reg.BinaryNotFoundError` (the binary is missing).
RegNotFoundError = BinaryNotFoundError

__all__ = [
    "RegClient",
    "Registry",
    "RegError",
    "RegNotFoundError",
    "VersionNotFoundError",
    "BinaryNotFoundError",
    "RegFileSystem",
    "fetch",
    "RegCheckpointIO",
    "RegistryCallback",
]

register()


def __getattr__(name: str) -> Any:
    if name in ("RegCheckpointIO", "RegistryCallback"):
        import reg.lightning

        return getattr(reg.lightning, name)
    raise AttributeError(f"module 'reg_lightning' has no attribute {name!r}")
